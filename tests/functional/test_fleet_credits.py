"""The balance on the fleet's limiter item against DynamoDB (moto server, the table built from template.yaml):
how close the stored figure follows the answers and at what write cost, no figure at a floor lost, top-ups kept,
and the bound on calls made under a reached floor (docs/credits.md)."""

from __future__ import annotations

import threading
from typing import Any

from picsart_adapter.credit_floor import VIEW_MAX_AGE_SECONDS, CreditFloor
from picsart_adapter.job import Job
from picsart_adapter.picsart_client import RateLimitHeaders
from picsart_adapter.rate_limit import FleetRateLimiter, Grant, key_fingerprint
from picsart_adapter.rate_limit.credits import CREDITS_STEP
from picsart_adapter.rules import Rule, Rules
from picsart_adapter.s3_events import UploadedObject

from .conftest import Clock

T0 = 1_800_000_000.25
FLOOR = 500
RULE = Rule(name="bulk", pipelines=(), credit_floor=FLOOR)
FLOORS = Rules(rules=(RULE,)).credit_floors
HOLD_SECONDS = 300.0


def make(table: Any, api_key: str, clock: Clock) -> FleetRateLimiter:
    return FleetRateLimiter(table, lambda: api_key, clock=clock, credit_floors=FLOORS)


def credits_header(credits: int) -> RateLimitHeaders:
    """An answer that tells only the balance (its window, unchanged, costs no write)."""
    return RateLimitHeaders(credits=credits)


def stored(table: Any, api_key: str) -> dict[str, Any]:
    item = table.get_item(Key={"pk": f"ratelimit#{key_fingerprint(api_key)}", "sk": "state"}, ConsistentRead=True)
    return dict(item["Item"])


def job() -> Job:
    return Job(UploadedObject(bucket="input", key="bulk/a.png", size=10, etag="e"), 0, rule=RULE)


def fleet_with_figure(table: Any, api_key: str, clock: Clock, credits: int) -> FleetRateLimiter:
    """The fleet's first call and its answer: the item, a window of 10,000 calls in 10 minutes, and the first
    figure."""
    first = make(table, api_key, clock)
    assert isinstance(first.acquire(), Grant)
    reset = str(int((clock.now + 600) * 1000))
    answer = RateLimitHeaders(limit=10_000, available=9_999, reset_time=reset, credits=credits)
    first.observe(answer, throttled=False, sent_at=clock.now - 0.5)
    assert int(stored(table, api_key)["credits"]) == credits
    return first


def test_the_stored_figure_follows_the_answers_within_a_step_at_one_write_per_step(table: Any, api_key: str) -> None:
    """600 calls a credit apart from 10 environments in turn, each taking its grant first as the processing does:
    the item stays within CREDITS_STEP of the lowest figure told, exact at the floor, and costs one write per
    CREDITS_STEP credits and per floor crossed, besides the grants (docs/credits.md, "What it costs")."""
    clock = Clock(T0)
    fleet_with_figure(table, api_key, clock, 1_000)
    environments = [make(table, api_key, clock) for _ in range(10)]
    writes_before = sum(e.writes for e in environments)
    for told in range(999, 399, -1):
        environment = environments[told % len(environments)]
        clock.now += 0.01
        assert isinstance(environment.acquire(), Grant)
        environment.observe(credits_header(told), throttled=False, sent_at=clock.now - 0.005)
        figure = int(stored(table, api_key)["credits"])
        assert told <= figure < told + CREDITS_STEP, (told, figure)
        if told <= FLOOR:
            assert figure <= FLOOR, "the answer that reaches the floor is written at once"
    figure_writes = sum(e.writes for e in environments) - writes_before - 600
    assert figure_writes <= 600 // CREDITS_STEP + len(FLOORS), figure_writes


def test_no_answer_at_or_below_a_floor_is_lost_to_a_concurrent_one(table: Any, api_key: str) -> None:
    """16 environments, each with a view from before the floor was reached, answer at once with figures at or
    below it: the item ends at or below the floor, within a step of the lowest, whatever order the writes land
    in."""
    clock = Clock(T0)
    fleet_with_figure(table, api_key, clock, 600)
    environments = [make(table, api_key, clock) for _ in range(16)]
    for environment in environments:
        environment.known_credits(VIEW_MAX_AGE_SECONDS)
    figures = [FLOOR - 3 * index for index in range(16)]
    start = threading.Barrier(len(environments))

    def answer(index: int) -> None:
        start.wait()
        environments[index].observe(credits_header(figures[index]), throttled=False, sent_at=T0 + 0.1)

    threads = [threading.Thread(target=answer, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    figure = int(stored(table, api_key)["credits"])
    assert figure <= FLOOR, "whatever order the writes landed in, the floor is reached on the item"
    assert min(figures) <= figure < min(figures) + CREDITS_STEP
    assert figure in figures


def test_an_answer_from_before_a_top_up_does_not_take_it_back(table: Any, api_key: str) -> None:
    clock = Clock(T0)
    environment = fleet_with_figure(table, api_key, clock, 400)
    clock.now += 10
    environment.record_balance(5_000, sent_at=clock.now - 0.2, received_at=clock.now)
    late = make(table, api_key, clock)
    late.known_credits(VIEW_MAX_AGE_SECONDS)
    late.observe(credits_header(390), throttled=False, sent_at=clock.now - 1.0, received_at=clock.now + 0.5)
    assert int(stored(table, api_key)["credits"]) == 5_000, "a call sent before the top-up tells the old balance"
    late.observe(credits_header(4_800), throttled=False, sent_at=clock.now + 1.0, received_at=clock.now + 2.0)
    assert int(stored(table, api_key)["credits"]) == 4_800, "one sent after it lowers it"


def test_a_top_up_an_answer_shows_is_kept_and_a_late_answer_is_not_taken_for_one(table: Any, api_key: str) -> None:
    clock = Clock(T0)
    environment = fleet_with_figure(table, api_key, clock, 420)
    stored_at = clock.now
    environment.observe(credits_header(430), throttled=False, sent_at=stored_at - 1.0)  # sent before: late
    environment.observe(credits_header(3_000), throttled=False, sent_at=stored_at - 0.1)  # still late
    assert int(stored(table, api_key)["credits"]) == 420
    clock.now += 1
    environment.observe(credits_header(3_000), throttled=False, sent_at=stored_at + 0.5)
    item = stored(table, api_key)
    assert int(item["credits"]) == 3_000, "sent after the stored figure came: credits rose, a top-up"
    assert int(item["credits_since_ms"]) == int((stored_at + 0.5) * 1000)


def test_a_call_is_made_under_a_reached_floor_only_when_granted_before_the_crossing_was_written(
    table: Any, api_key: str
) -> None:
    """B is granted while the item says 600; A's answer then says 499 (the floor of 500 reached) and is written.
    C's view, from before, says 600: it asks for a grant, whose own write returns 499, and holds the work there.
    D's view is older than VIEW_MAX_AGE_SECONDS: it reads the item and holds the work before asking (no write).
    Only B's call, granted before the crossing was written, is made under the floor."""
    clock = Clock(T0)
    a = fleet_with_figure(table, api_key, clock, 600)
    b, c, d = make(table, api_key, clock), make(table, api_key, clock), make(table, api_key, clock)
    floors = {name: CreditFloor(limiter, HOLD_SECONDS) for name, limiter in {"b": b, "c": c, "d": d}.items()}
    d.known_credits(VIEW_MAX_AGE_SECONDS)
    assert floors["c"].before_grant(job()) is None
    assert floors["b"].before_grant(job()) is None
    granted_b = b.acquire()
    assert isinstance(granted_b, Grant)
    assert floors["b"].after_grant(job(), granted_b.state) is None, "B's call goes: the floor is not reached yet"

    clock.now += 0.2
    a.observe(credits_header(FLOOR - 1), throttled=False, sent_at=clock.now - 0.1)
    granted_c = c.acquire()
    assert isinstance(granted_c, Grant)
    held = floors["c"].after_grant(job(), granted_c.state)
    assert held is not None, "C's grant returned the figure at the floor: no call"
    assert (held.credits, held.floor) == (FLOOR - 1, FLOOR)

    clock.now += VIEW_MAX_AGE_SECONDS + 0.1
    writes = d.writes
    assert floors["d"].before_grant(job()) is not None, "an old view is read again before it decides"
    assert d.writes == writes, "a read, no write"


def test_a_balance_check_releases_held_work_at_its_next_look(table: Any, api_key: str) -> None:
    clock = Clock(T0)
    fleet_with_figure(table, api_key, clock, FLOOR)
    held_here = make(table, api_key, clock)
    floor = CreditFloor(held_here, HOLD_SECONDS)
    assert floor.before_grant(job()) is not None
    make(table, api_key, clock).record_balance(10_000, sent_at=clock.now + 1, received_at=clock.now + 1.2)
    clock.now += HOLD_SECONDS  # the held work's next look
    assert floor.before_grant(job()) is None
    assert int(stored(table, api_key)["credits"]) == 10_000
