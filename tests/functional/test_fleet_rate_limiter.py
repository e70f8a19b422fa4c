"""The fleet's shared rate limit against DynamoDB (moto server, the table built from template.yaml).

Each test uses its own API key, so its own limiter item. Clocks are injected: "the same second" and "after
the reset" are set, not waited for.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

import pytest

from picsart_adapter.picsart_client import RateLimitHeaders
from picsart_adapter.rate_limit import (
    CONFIRMED_WITHIN_MS,
    PROBE_WINDOW_MS,
    SEND_MARGIN_MS,
    Denial,
    FleetRateLimiter,
    Grant,
    key_fingerprint,
)

from .conftest import Clock

T0 = 1_800_000_000.25  # a quarter into a wall-clock second
#: A window's places after its first come once the opener's write is back (no time on these clocks) and a margin.
OPENING = SEND_MARGIN_MS / 1000


def make(table: Any, api_key: str, clock: Clock, spike: int = 300, floor: float = 60.0) -> FleetRateLimiter:
    return FleetRateLimiter(table, lambda: api_key, spike_per_second=spike, no_reset_floor_seconds=floor, clock=clock)


def headers(limit: int, available: int, reset: str) -> RateLimitHeaders:
    return RateLimitHeaders(limit=limit, available=available, reset_time=reset, credits=1000)


def stored(table: Any, api_key: str) -> dict[str, Any]:
    item = table.get_item(Key={"pk": f"ratelimit#{key_fingerprint(api_key)}", "sk": "state"}, ConsistentRead=True)
    return dict(item["Item"])


def learn_window(table: Any, api_key: str, clock: Clock, limit: int, window_s: float, spike: int = 300) -> float:
    """A probe call and its answer: the fleet learns the limit. Returns the window's reset (epoch s)."""
    probe = make(table, api_key, clock, spike)
    assert isinstance(probe.acquire(), Grant)
    reset = clock.now + window_s
    probe.observe(headers(limit, limit - 1, str(int(reset * 1000))), throttled=False)
    return reset


def acquire_concurrently(table: Any, api_key: str, clock: Clock, callers: int, spike: int = 300) -> list[Any]:
    limiters = [make(table, api_key, clock, spike) for _ in range(callers)]
    start = threading.Barrier(callers)
    results: list[Any] = [None] * callers

    def run(index: int) -> None:
        start.wait()
        result = limiters[index].acquire()
        if isinstance(result, Denial):
            # As the processing does: a refusal takes its place in the line. One that read the item once the
            # window was spent was refused from that read, without a write, so without a place yet.
            result = replace(result, turn=limiters[index].place_in_line(result))
        results[index] = result

    threads = [threading.Thread(target=run, args=(i,)) for i in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def grants_in_a_guessed_window(table: Any, api_key: str, clock: Clock, environments: int) -> list[FleetRateLimiter]:
    """After a learned window of 60 calls in 10 s, a new window opens (its end a guess): one grant for each of
    `environments` environments, in order."""
    old_reset = learn_window(table, api_key, clock, limit=60, window_s=10)
    clock.now = old_reset + 0.1
    limiters = [make(table, api_key, clock) for _ in range(environments)]
    assert all(isinstance(limiter.acquire(), Grant) for limiter in limiters)
    return limiters


def test_first_call_is_a_probe_and_its_answer_tells_the_fleet_the_limit(table: Any, api_key: str) -> None:
    clock = Clock(T0)
    first, second = make(table, api_key, clock), make(table, api_key, clock)
    assert isinstance(first.acquire(), Grant)
    refused = second.acquire()
    assert isinstance(refused, Denial), "while the limit is unknown, one probe only"
    assert refused.reason == "quota"
    assert refused.retry_at == pytest.approx(clock.now + PROBE_WINDOW_MS / 1000, abs=0.01)

    reset = clock.now + 5
    first.observe(headers(10, 9, str(int(reset * 1000))), throttled=False)
    state = stored(table, api_key)
    assert (state["limit"], state["granted"], state["provisional"]) == (10, 1, False)
    assert state["credits"] == 1000, "X-Picsart-Credit-Available: the fleet's first figure is written"
    assert int(state["window_reset_ms"]) == pytest.approx(reset * 1000 + 1, abs=2)
    grants = [make(table, api_key, clock).acquire() for _ in range(12)]
    assert sum(isinstance(g, Grant) for g in grants) == 9, "the rest of the window's budget, no more"
    assert api_key not in repr(state), "the key itself is never stored"


def test_the_fleets_first_call_opens_the_first_window_with_one_write(table: Any, api_key: str) -> None:
    """With no item yet there is no window to ask a grant in: asking first would be a failed write before the
    opening one, on the way to the fleet's first call."""
    clock = Clock(T0)
    first = make(table, api_key, clock)
    assert isinstance(first.acquire(), Grant)
    assert first.writes == 1
    opened = stored(table, api_key)
    assert opened["granted"] == 1

    # An environment that read the table before that write: its opening write fails, and it is refused.
    raced = make(table, api_key, clock)
    raced._item.read = lambda: None  # type: ignore[method-assign]
    refused = raced.acquire()
    assert isinstance(refused, Denial), "one probe while the limit is unknown"
    assert raced.writes == 1
    assert stored(table, api_key) == opened, "the window the first call opened is not opened again"


def test_concurrent_callers_get_exactly_the_budget_and_the_rest_a_place_each(table: Any, api_key: str) -> None:
    clock = Clock(T0)
    reset = learn_window(table, api_key, clock, limit=20, window_s=60)
    results = acquire_concurrently(table, api_key, clock, callers=40)
    granted = [r for r in results if isinstance(r, Grant)]
    refused = [r for r in results if isinstance(r, Denial)]
    assert len(granted) == 19, "20 per window, one already taken by the probe"
    assert len(refused) == 21
    assert {r.reason for r in refused} == {"quota"}
    # Places 1-21: the next window's 20, 1/300 s apart after its opener's write (and margin), then the first of
    # the window after.
    turns = sorted(round(r.turn - reset, 4) for r in refused if r.turn is not None)
    expected = [0.001] + [0.001 + OPENING + p / 300 for p in range(1, 20)] + [60.001]
    assert turns == pytest.approx(expected, abs=0.002)
    assert stored(table, api_key)["granted"] == 41, "the window's 20 calls and the 21 places"


def test_spike_arrest_caps_the_fleet_per_second(table: Any, api_key: str) -> None:
    clock = Clock(T0 - 3)
    learn_window(table, api_key, clock, limit=100, window_s=60, spike=5)
    clock.now = T0
    results = acquire_concurrently(table, api_key, clock, callers=20, spike=5)
    assert sum(isinstance(r, Grant) for r in results) == 5
    refused = [r for r in results if isinstance(r, Denial)]
    assert {r.reason for r in refused} == {"spike"}
    assert {r.retry_at for r in refused} == {float(int(T0) + 1)}
    clock.now = T0 + 1
    assert isinstance(make(table, api_key, clock, spike=5).acquire(), Grant), "the next second has budget"


def test_after_the_reset_the_next_window_opens_with_the_learned_length(table: Any, api_key: str) -> None:
    clock = Clock(T0)
    reset = learn_window(table, api_key, clock, limit=3, window_s=10)
    limiter = make(table, api_key, clock)
    assert isinstance(limiter.acquire(), Grant)
    assert isinstance(limiter.acquire(), Grant)
    refused = limiter.acquire()
    assert isinstance(refused, Denial)
    assert refused.retry_at >= reset, "no call before the window resets"
    writes = limiter.writes
    assert isinstance(limiter.acquire(), Denial)
    assert limiter.writes == writes, "an environment that knows the budget is spent stops calling, without writes"

    clock.now = refused.retry_at + 0.01
    assert isinstance(limiter.acquire(), Grant)
    state = stored(table, api_key)
    assert state["provisional"] is True
    assert state["granted"] == 1
    window_ms = int(state["window_reset_ms"]) - int(state["window_start_ms"])
    assert window_ms == pytest.approx(10_000, abs=5), "the guess is the window length learned before"


def test_a_late_answer_from_an_older_window_never_overwrites_newer_state(table: Any, api_key: str) -> None:
    clock = Clock(T0)
    old_reset = learn_window(table, api_key, clock, limit=5, window_s=5)
    clock.now = old_reset + 2  # the next window: the fleet opens it
    limiter = make(table, api_key, clock)
    assert isinstance(limiter.acquire(), Grant)
    before = stored(table, api_key)
    assert before["provisional"] is True

    late = make(table, api_key, clock)
    assert isinstance(late.acquire(), Grant)
    late.observe(headers(5, 0, str(int(old_reset * 1000))), throttled=False)
    after = stored(table, api_key)
    assert after["window_reset_ms"] == before["window_reset_ms"]
    assert after["provisional"] is True, "an answer about the old window cannot confirm the new one"
    assert after["granted"] == 2

    new_reset = clock.now + 5
    limiter.observe(headers(5, 3, str(int(new_reset * 1000))), throttled=False)
    confirmed = stored(table, api_key)
    assert confirmed["provisional"] is False
    assert int(confirmed["window_reset_ms"]) == pytest.approx(new_reset * 1000 + 1, abs=2)
    late.observe(headers(5, 0, str(int(old_reset * 1000))), throttled=True)
    assert stored(table, api_key)["window_reset_ms"] == confirmed["window_reset_ms"]


@pytest.mark.parametrize(
    ("form", "value", "precision_ms"),
    [
        ("epoch milliseconds", lambda t: str(int((t + 30) * 1000)), 1),
        ("epoch seconds", lambda t: str(int(t + 30)), 1000),
        ("seconds from now", lambda t: "30", 1000),
    ],
)
def test_reset_time_in_each_form(table: Any, api_key: str, form: str, value: Any, precision_ms: int) -> None:
    clock = Clock(1_800_000_000.0)
    limiter = make(table, api_key, clock)
    assert isinstance(limiter.acquire(), Grant)
    limiter.observe(headers(10, 9, value(clock.now)), throttled=False)
    expected = (clock.now + 30) * 1000 + precision_ms
    assert int(stored(table, api_key)["window_reset_ms"]) == pytest.approx(expected, abs=2), form


def test_429_without_headers_holds_the_whole_fleet_for_the_floor(table: Any, api_key: str) -> None:
    """Guide: no usable rate-limit header -> wait at least one minute before trying again."""
    clock = Clock(T0)
    limiter = make(table, api_key, clock, floor=60)
    assert isinstance(limiter.acquire(), Grant)
    limiter.observe(RateLimitHeaders(), throttled=True)
    other = make(table, api_key, clock, floor=60)
    refused = other.acquire()
    assert isinstance(refused, Denial)
    assert refused.reason == "blocked"
    assert refused.retry_at == pytest.approx(clock.now + 60, abs=0.01)


def test_one_write_per_call_at_steady_state(table: Any, api_key: str) -> None:
    """Budget: at most 2 write units per call; the goal is 1 once the window is known."""
    clock = Clock(T0)
    limiter = make(table, api_key, clock)
    reset_ms = str(int((clock.now + 60) * 1000))
    assert isinstance(limiter.acquire(), Grant)
    limiter.observe(headers(100, 99, reset_ms), throttled=False)
    start_writes, start_units = limiter.writes, limiter.write_units
    for used in range(2, 32):
        clock.now += 0.1
        assert isinstance(limiter.acquire(), Grant)
        limiter.observe(headers(100, 100 - used, reset_ms), throttled=False)
    assert limiter.writes - start_writes == 30
    assert limiter.write_units - start_units == pytest.approx(30.0)


def test_a_call_granted_too_late_for_its_second_counts_in_the_next_only_and_waits_for_it(
    table: Any, api_key: str
) -> None:
    """Picsart's spike arrest counts arrivals: a call granted at .9 s cannot start before the second turns, so
    it counts in the next second alone and is not sent before it. Each call counts in exactly one second, so
    the fleet can use the spike arrest's whole rate."""
    clock = Clock(float(int(T0)) - 3)
    learn_window(table, api_key, clock, limit=100, window_s=60, spike=5)
    clock.now = float(int(T0)) + 0.9
    grants = [r for r in acquire_concurrently(table, api_key, clock, 8, spike=5) if isinstance(r, Grant)]
    assert len(grants) == 5
    second_end = int(T0) + 2
    assert {(g.valid_from, g.valid_until) for g in grants} == {(float(int(T0) + 1), second_end - SEND_MARGIN_MS / 1000)}
    spike = stored(table, api_key)["spike"]
    assert (spike.get(str(int(T0))), spike[str(int(T0) + 1)]) == (None, 5)
    clock.now = float(int(T0)) + 1.1
    refused = make(table, api_key, clock, spike=5).acquire()
    assert isinstance(refused, Denial), "the next second's budget went to the calls granted at .9 s"
    assert refused.reason == "spike"
    assert refused.retry_at == float(int(T0) + 2)
    clock.now = float(int(T0)) + 2.1
    assert isinstance(make(table, api_key, clock, spike=5).acquire(), Grant)


def test_a_call_early_in_its_second_counts_in_that_second_alone(table: Any, api_key: str) -> None:
    clock = Clock(float(int(T0)) - 3)
    learn_window(table, api_key, clock, limit=100, window_s=60, spike=5)
    clock.now = float(int(T0)) + 0.2
    grant = make(table, api_key, clock, spike=5).acquire()
    assert isinstance(grant, Grant)
    assert grant.valid_from <= clock.now < grant.valid_until == int(T0) + 1 - SEND_MARGIN_MS / 1000
    spike = stored(table, api_key)["spike"]
    assert (spike[str(int(T0))], spike.get(str(int(T0) + 1))) == (1, None)


class SlowWrites:
    """The table, with each write taking `seconds` on the test's clock (a loaded machine, a far region)."""

    def __init__(self, table: Any, clock: Clock, seconds: float) -> None:
        self._table, self._clock, self._seconds = table, clock, seconds

    def update_item(self, **request: Any) -> Any:
        self._clock.now += self._seconds
        return self._table.update_item(**request)

    def get_item(self, **request: Any) -> Any:
        return self._table.get_item(**request)


def test_how_long_writes_take_decides_which_second_a_call_counts_in(table: Any, api_key: str) -> None:
    """A grant must come back in time for the call to start in its second: an environment whose writes take
    0.6 s counts a call asked for at .3 s in the next second, rather than have its grant expire on arrival."""
    clock = Clock(float(int(T0)) - 3)
    learn_window(table, api_key, clock, limit=100, window_s=60)
    slow = FleetRateLimiter(SlowWrites(table, clock, 0.6), lambda: api_key, clock=clock)
    clock.now = float(int(T0)) - 1 + 0.1
    assert isinstance(slow.acquire(), Grant)  # learns how long its writes take
    clock.now = float(int(T0)) + 0.3
    grant = slow.acquire()
    assert isinstance(grant, Grant)
    assert grant.valid_from == float(int(T0) + 1), "counted in the next second"
    assert clock.now < grant.valid_until, "back from its write in time: not expired"
    assert grant.valid_from - clock.now == pytest.approx(0.1, abs=1e-3), "the call waits for its second"


def spent_window_of_three(table: Any, api_key: str, clock: Clock) -> tuple[float, FleetRateLimiter]:
    """A learned window of 3 calls (10 s, 2 a second), spent by its probe and two grants: (reset, limiter)."""
    reset = learn_window(table, api_key, clock, limit=3, window_s=10, spike=2)
    limiter = make(table, api_key, clock, spike=2)
    for _ in range(2):
        clock.now += 0.6
        assert isinstance(limiter.acquire(), Grant)
    return reset, limiter


def test_work_refused_for_quota_queues_for_the_windows_ahead(table: Any, api_key: str) -> None:
    """Each refused call takes a place in the line: a window's limit of places per window, spaced by the
    spike arrest within it, so each reset releases as much work as the window can take, no more."""
    clock = Clock(T0)
    reset, limiter = spent_window_of_three(table, api_key, clock)
    places = []
    for _ in range(7):
        denial = limiter.acquire()
        assert isinstance(denial, Denial)
        assert denial.reason == "quota"
        places.append(round(limiter.place_in_line(denial) - reset, 3))
    # The stored reset carries the header's precision (1 ms); window 10 s; 2 calls a second after the opener's.
    later = [0.501 + OPENING, 1.001 + OPENING]
    assert places == pytest.approx([0.001, *later, 10.001, *(10 + t for t in later), 20.001], abs=0.002)


def test_opening_a_window_moves_the_line_on_by_its_limit(table: Any, api_key: str) -> None:
    """Places 1-2 were for the window that opens: the next refused call's place follows the ones still
    waiting (3, 4, 5), in the window after next."""
    clock = Clock(T0)
    reset = learn_window(table, api_key, clock, limit=2, window_s=10)
    limiter = make(table, api_key, clock)
    clock.now += 0.6
    assert isinstance(limiter.acquire(), Grant)
    for _ in range(5):
        denial = limiter.acquire()
        assert isinstance(denial, Denial)
        limiter.place_in_line(denial)
    clock.now = reset + 0.01
    assert isinstance(limiter.acquire(), Grant), "the new window opens"
    limiter.observe(headers(2, 1, str(int((reset + 10) * 1000))), throttled=False)
    assert isinstance(limiter.acquire(), Grant)
    denial = limiter.acquire()
    assert isinstance(denial, Denial)
    new_reset = stored(table, api_key)["window_reset_ms"] / 1000
    assert limiter.place_in_line(denial) == pytest.approx(float(new_reset) + 10 + OPENING + 1 / 300, abs=0.01)


def test_an_empty_line_starts_again_at_the_next_window(table: Any, api_key: str) -> None:
    clock = Clock(T0)
    reset = learn_window(table, api_key, clock, limit=3, window_s=10)
    limiter = make(table, api_key, clock)
    clock.now += 0.6
    for _ in range(2):
        assert isinstance(limiter.acquire(), Grant)
    denial = limiter.acquire()
    assert isinstance(denial, Denial)
    assert limiter.place_in_line(denial) == pytest.approx(reset + 0.001, abs=0.002)
    clock.now = reset + 0.01
    for _ in range(3):  # the new window's budget, the line's one place among them
        assert isinstance(limiter.acquire(), Grant)
    denial = limiter.acquire()
    assert isinstance(denial, Denial)
    new_reset = float(stored(table, api_key)["window_reset_ms"]) / 1000
    assert limiter.place_in_line(denial) == pytest.approx(new_reset, abs=0.002), "first in an empty line"


def test_a_refusal_takes_its_place_in_the_line_with_one_write(table: Any, api_key: str) -> None:
    """An environment that does not know the window is spent asks for a call: the unit it gets is beyond the
    limit, so that one write is its place (it was a failed write, then a second one for the place). One that
    knows refuses without a write and takes its place with one."""
    clock = Clock(T0)
    reset, knows = spent_window_of_three(table, api_key, clock)
    clock.now += 1  # a second with room: the spike arrest is not what refuses it
    unaware = make(table, api_key, clock, spike=2)
    denial = unaware.acquire()
    assert isinstance(denial, Denial)
    assert denial.reason == "quota"
    assert unaware.place_in_line(denial) == pytest.approx(reset + 0.001, abs=0.002)
    assert unaware.writes == 1

    denial = knows.acquire()
    assert isinstance(denial, Denial)
    writes = knows.writes
    assert knows.place_in_line(denial) == pytest.approx(reset + 0.501 + OPENING, abs=0.002), "after the one waiting"
    assert knows.writes - writes == 1


def test_opening_a_window_carries_the_line_over_as_the_item_counted_it(table: Any, api_key: str) -> None:
    """The window's last count is copied by the opening write itself (DynamoDB reads it as it was before the
    write), so the line carried over is the item's: an opener whose view of the count is stale (in a busy fleet,
    every view is) opens with one write, not a failed one first."""
    clock = Clock(T0)
    reset, limiter = spent_window_of_three(table, api_key, clock)
    opener = make(table, api_key, clock, spike=2)
    clock.now += 0.6
    refused = opener.acquire()
    assert isinstance(refused, Denial)
    opener.place_in_line(refused)  # place 1: its view counts 4 units
    for _ in range(4):  # places 2-5
        denial = limiter.acquire()
        assert isinstance(denial, Denial)
        limiter.place_in_line(denial)
    clock.now = reset + 0.01
    opener._others_open_windows = False  # as an environment alone would: it opens rather than asks first
    writes = opener.writes
    assert isinstance(opener.acquire(), Grant)
    assert opener.writes - writes == 1, "opened with one write, its view of the count stale by four"
    clock.now += 1
    assert all(isinstance(limiter.acquire(), Grant) for _ in range(2)), "the window's other two units"
    clock.now += 1
    refused = limiter.acquire()
    assert isinstance(refused, Denial)
    new_reset = float(stored(table, api_key)["window_reset_ms"]) / 1000
    # Five places, three of them this window's: two wait for the next, so this refusal is the third.
    assert limiter.place_in_line(refused) == pytest.approx(new_reset + OPENING + 1.0, abs=0.002)


def test_the_places_after_a_windows_first_come_once_its_opening_write_is_back(table: Any, api_key: str) -> None:
    """The first place opens the window; the others, arriving before that write was back, each failed to take
    a grant in it and then to open it."""
    clock = Clock(T0)
    reset = learn_window(table, api_key, clock, limit=3, window_s=10, spike=2)
    slow = FleetRateLimiter(SlowWrites(table, clock, 0.3), lambda: api_key, spike_per_second=2, clock=clock)
    for _ in range(3):
        clock.now += 0.6
        outcome = slow.acquire()
    assert isinstance(outcome, Denial), "the probe and two grants spent the window: a place"
    first = slow.place_in_line(outcome)
    second = slow.place_in_line(slow.acquire())  # type: ignore[arg-type]
    assert first == pytest.approx(reset + 0.001, abs=0.002)
    assert second - first == pytest.approx(0.3 + OPENING + 0.5, abs=0.002), "its write's 0.3 s and margin, 2 a second"


def test_only_an_answer_that_says_the_window_is_spent_corrects_the_fleets_count(table: Any, api_key: str) -> None:
    """An answer counting more calls than the fleet has granted is, as a rule, one whose call arrived after
    calls granted later: the fleet has counted them already, and a write to say so would fail.
    An answer saying the window is spent (another client on the key) stops the fleet."""
    clock = Clock(T0)
    learn_window(table, api_key, clock, limit=10, window_s=60)
    limiter = make(table, api_key, clock)
    assert isinstance(limiter.acquire(), Grant)
    reset = str(int(stored(table, api_key)["window_reset_ms"]) - 1)
    writes = limiter.writes
    limiter.observe(headers(10, 5, reset), throttled=False)
    assert (limiter.writes, stored(table, api_key)["granted"]) == (writes, 2)
    limiter.observe(headers(10, 0, reset), throttled=False)
    assert stored(table, api_key)["granted"] == 10
    assert isinstance(limiter.acquire(), Denial)


def test_no_line_is_planned_on_a_guessed_window(table: Any, api_key: str) -> None:
    """Before the first answer the window is a probe (one call, two seconds): work refused then comes back at
    the probe window's end, when the real limit is known, not at places planned on the guess."""
    clock = Clock(T0)
    limiter = make(table, api_key, clock)
    assert isinstance(limiter.acquire(), Grant)
    denial = limiter.acquire()
    assert isinstance(denial, Denial)
    assert limiter.place_in_line(denial) == denial.retry_at
    assert "line_end" not in stored(table, api_key)


def test_a_view_with_many_old_seconds_still_grants(table: Any, api_key: str) -> None:
    """Found by the soak: a view holding more old spike seconds than one write removes named them all, and
    DynamoDB refused the write (unused names)."""
    clock = Clock(T0)
    now_ms, second = int(clock.now * 1000), int(clock.now)
    table.put_item(
        Item={
            "pk": f"ratelimit#{key_fingerprint(api_key)}",
            "sk": "state",
            "window_reset_ms": now_ms + 60_000,
            "window_start_ms": now_ms - 20_000,
            "window_ms": 60_000,
            "limit": 1000,
            "granted": 10,
            "provisional": False,
            "spike": {str(s): 1 for s in range(second - 20, second - 8)},
        }
    )
    limiter = make(table, api_key, clock)
    assert isinstance(limiter.acquire(), Grant)  # learns the state (the first write fails its condition)
    assert isinstance(limiter.acquire(), Grant)
    assert len(stored(table, api_key)["spike"]) < 12, "old seconds are dropped as grants go"


def test_a_grant_that_expired_in_its_write_is_counted_again_keeping_its_unit(table: Any, api_key: str) -> None:
    """On a loaded machine a grant's own write can outlast its second. Dropping it would lose the quota unit;
    counting it again where the call will land keeps it."""
    clock = Clock(T0)
    learn_window(table, api_key, clock, limit=10, window_s=10)
    limiter = make(table, api_key, clock, spike=2)
    grant = limiter.acquire()
    assert isinstance(grant, Grant)
    granted = stored(table, api_key)["granted"]
    clock.now = grant.valid_until + 0.5  # the write was slow: the grant's second is over
    again = limiter.recount(grant)
    assert isinstance(again, Grant)
    assert again.valid_until > clock.now
    state = stored(table, api_key)
    assert state["granted"] == granted, "the same quota unit: no second one is taken"
    assert state["spike"][str(int(clock.now))] == 1, "counted in the second the call now reaches Picsart in"


def test_a_recount_waits_for_a_full_second_and_is_refused_after_its_window(table: Any, api_key: str) -> None:
    clock = Clock(T0)
    reset = learn_window(table, api_key, clock, limit=10, window_s=10)
    clock.now = T0 + 1  # the probe had the first second's one call
    limiter = make(table, api_key, clock, spike=1)
    grant = limiter.acquire()
    assert isinstance(grant, Grant)
    clock.now = float(int(T0) + 2) + 0.1
    assert isinstance(make(table, api_key, clock, spike=1).acquire(), Grant), "this second's one call"
    full = limiter.recount(grant)
    assert isinstance(full, Denial), "the spike arrest's second is full"
    assert (full.reason, full.retry_at) == ("spike", float(int(T0) + 3)), "the unit is still the call's then"
    clock.now = float(int(T0) + 3) + 0.1
    assert isinstance(limiter.recount(grant), Grant)
    state = stored(table, api_key)
    assert state["granted"] == 3, "the probe, the grant and the second's one call: the recount took none"
    clock.now = reset + 0.5
    assert limiter.recount(grant) is None, "the call would land in a window that did not count it"


def test_a_late_answer_from_the_window_before_takes_nothing_from_the_new_one(table: Any, api_key: str) -> None:
    """An answer about the window before, observed once the new window is confirmed, is not taken for calls
    the fleet has not granted: its count (the old window's) would mark the new window's budget spent and leave
    units unused while work waits."""
    clock = Clock(T0)
    old_reset = learn_window(table, api_key, clock, limit=60, window_s=10)
    clock.now = old_reset + 0.5
    limiter = make(table, api_key, clock)
    assert isinstance(limiter.acquire(), Grant), "the new window opens"
    new_reset = clock.now + 10
    limiter.observe(headers(60, 59, str(int(new_reset * 1000))), throttled=False)
    assert stored(table, api_key)["provisional"] is False
    writes = limiter.writes

    limiter.observe(headers(60, 16, str(int(old_reset * 1000))), throttled=False)
    limiter.observe(headers(60, 0, str(int(old_reset * 1000))), throttled=True)
    state = stored(table, api_key)
    assert state["granted"] == 1, "the old window's count is not the new window's"
    assert int(state["window_reset_ms"]) == pytest.approx(new_reset * 1000 + 1, abs=2)
    assert limiter.writes == writes, "an answer about a window that is over is not written at all"


def test_an_answer_from_the_window_before_is_not_written_while_the_new_one_is_a_guess(table: Any, api_key: str) -> None:
    """Its reset is before the guessed window's start, so it cannot confirm it: no write tries to."""
    clock = Clock(T0)
    old_reset = learn_window(table, api_key, clock, limit=60, window_s=10)
    clock.now = old_reset + 0.5
    limiter = make(table, api_key, clock)
    assert isinstance(limiter.acquire(), Grant), "the new window opens, its end a guess"
    writes = limiter.writes
    limiter.observe(headers(60, 3, str(int(old_reset * 1000))), throttled=False)
    assert limiter.writes == writes
    assert stored(table, api_key)["provisional"] is True


def test_a_grant_from_before_its_window_was_confirmed_is_counted_again_in_it(table: Any, api_key: str) -> None:
    """The first answer of a window moves its reset from the fleet's guess to Picsart's. A grant from before
    that, counted again after, is not taken for one from a window that has ended: its unit would be lost."""
    clock = Clock(T0)
    old_reset = learn_window(table, api_key, clock, limit=60, window_s=10)
    clock.now = old_reset + 0.1
    opener, slow = make(table, api_key, clock), make(table, api_key, clock)
    assert isinstance(opener.acquire(), Grant), "the new window opens, its end a guess"
    grant = slow.acquire()
    assert isinstance(grant, Grant)
    assert grant.state.provisional is True
    opener.observe(headers(60, 59, str(int((clock.now + 10.3) * 1000))), throttled=False)
    assert stored(table, api_key)["provisional"] is False, "Picsart's answer confirms the window, later than guessed"
    granted = stored(table, api_key)["granted"]

    clock.now = grant.valid_until + 0.3
    again = slow.recount(grant)
    assert isinstance(again, Grant), "the same window: the unit is kept"
    assert stored(table, api_key)["granted"] == granted


def test_a_guessed_window_is_confirmed_by_its_first_calls_answers_not_by_every_one(table: Any, api_key: str) -> None:
    """Each later answer would find the window confirmed already: a failed write each."""
    clock = Clock(T0)
    limiters = grants_in_a_guessed_window(table, api_key, clock, environments=6)
    new_reset = str(int((clock.now + 10.2) * 1000))
    late = limiters[-1]
    writes = late.writes
    late.observe(headers(60, 54, new_reset), throttled=False)
    assert late.writes == writes, "the sixth call's answer leaves the confirming to the first ones"
    assert stored(table, api_key)["provisional"] is True

    limiters[1].observe(headers(60, 58, new_reset), throttled=False)
    assert stored(table, api_key)["provisional"] is False, "the second call's answer confirms it"

    late.observe(headers(60, 0, new_reset), throttled=True)
    assert stored(table, api_key)["granted"] == 60, "a 429 is always told to the fleet"


def test_after_a_reset_a_busy_fleet_asks_for_grants_and_one_environment_opens_the_window(
    table: Any, api_key: str
) -> None:
    """Every environment's view shows the window over after a reset. Each used to try opening the next window
    and all but one failed (a write each); they ask for a grant in the open window instead, and the one that
    finds none open opens it."""
    clock = Clock(T0)
    reset = learn_window(table, api_key, clock, limit=60, window_s=10)
    limiters = [make(table, api_key, clock) for _ in range(10)]
    for limiter in limiters:
        clock.now += 0.06
        assert isinstance(limiter.acquire(), Grant)
    clock.now = reset + 0.2
    before = sum(limiter.writes for limiter in limiters)
    assert all(isinstance(limiter.acquire(), Grant) for limiter in limiters)
    assert sum(limiter.writes for limiter in limiters) - before == 11, "one failed write: the opener's grant"
    assert stored(table, api_key)["granted"] == 10


def test_a_window_opened_on_a_view_from_before_the_old_windows_last_calls_keeps_their_count(
    table: Any, api_key: str
) -> None:
    """An environment that opens windows itself read the item before the old window's last calls, in the
    second of the reset. The window it opens counts its call on top of the item's count for that second, which
    is full: refused. Writing its own view's counts back would lose those calls' counts (a spike-arrest 429)."""
    clock = Clock(T0)
    reset = learn_window(table, api_key, clock, limit=60, window_s=10, spike=2)
    opener = make(table, api_key, clock, spike=2)
    opener._others_open_windows = False  # as learned by an environment that found no window open at a reset
    clock.now = reset - 1.2
    assert isinstance(opener.acquire(), Grant)
    busy = make(table, api_key, clock, spike=2)
    for before_reset in (0.2, 0.15):
        clock.now = reset - before_reset
        assert isinstance(busy.acquire(), Grant)
    second = str(int(reset))
    assert stored(table, api_key)["spike"][second] == 2, "the second of the reset is full"

    clock.now = reset + 0.01
    refused = opener.acquire()
    assert isinstance(refused, Denial)
    assert (refused.reason, refused.retry_at) == ("spike", float(int(reset) + 1))
    assert stored(table, api_key)["spike"][second] == 2


def test_an_environment_alone_opens_each_window_without_a_failed_write_once_it_has_learned_to(
    table: Any, api_key: str
) -> None:
    clock = Clock(T0)
    reset = learn_window(table, api_key, clock, limit=60, window_s=10)
    alone = make(table, api_key, clock)
    writes = []
    for _ in range(3):
        clock.now = reset + 0.2
        before = alone.writes
        assert isinstance(alone.acquire(), Grant)
        writes.append(alone.writes - before)
        reset = clock.now + 10
        alone.observe(headers(60, 59, str(int(reset * 1000))), throttled=False)
    assert writes == [2, 1, 1], "asked for a grant once, found no window open: opens the next ones itself"


def test_a_guess_its_first_calls_did_not_confirm_is_confirmed_by_a_later_answer(table: Any, api_key: str) -> None:
    """The first calls' answers may tell nothing (no headers, no answer): the window must not stay a guess."""
    clock = Clock(T0)
    limiters = grants_in_a_guessed_window(table, api_key, clock, environments=6)
    clock.now += CONFIRMED_WITHIN_MS / 1000 + 0.5
    limiters[-1].observe(headers(60, 54, str(int((clock.now + 6) * 1000))), throttled=False)
    assert stored(table, api_key)["provisional"] is False


def test_confirming_a_guessed_window_never_lowers_the_fleets_count(table: Any, api_key: str) -> None:
    """The first call's answer counts only the calls that reached Picsart before it. Written over the fleet's
    count of grants, it would take back grants whose calls are still on their way, and the fleet would grant
    more calls than the window has (quota 429s)."""
    clock = Clock(T0)
    limiters = grants_in_a_guessed_window(table, api_key, clock, environments=6)
    first = limiters[0]
    first.observe(headers(60, 58, str(int((clock.now + 10.2) * 1000))), throttled=False)
    item = stored(table, api_key)
    assert item["provisional"] is False, "the answer still confirms the window"
    assert item["granted"] == 6, "six grants, two of them answered: the fleet still counts six"

    clock.now += 0.5
    first.observe(headers(60, 50, str(int((clock.now + 9.7) * 1000))), throttled=False)
    late = make(table, api_key, clock)
    grants = [late.acquire() for _ in range(60)]
    assert sum(isinstance(grant, Grant) for grant in grants) == 54, "60 in the window, whatever the answers said"


def test_the_window_length_kept_is_the_shortest_measured_until_the_limit_changes(table: Any, api_key: str) -> None:
    """Measured from the fleet's opening write, a window seems longer than Picsart's by the time its first call
    took to arrive. The line's turns windows ahead use the length: kept long, they would drift later by as much
    each window."""
    clock = Clock(T0)

    def window_confirmed_after(opened_after_reset: float, lasting: float, limit: int = 60) -> int:
        opener = make(table, api_key, clock)
        assert isinstance(opener.acquire(), Grant)
        reset = clock.now + lasting
        opener.observe(headers(limit, limit - 1, str(int(reset * 1000))), throttled=False)
        clock.now = reset + opened_after_reset
        return int(stored(table, api_key)["window_ms"])

    first = window_confirmed_after(0.2, lasting=10.4)  # the first call arrived 400 ms after the opening write
    assert first == pytest.approx(10_401, abs=2)
    assert window_confirmed_after(0.2, lasting=10.05) == pytest.approx(10_051, abs=2), "a shorter measure"
    assert window_confirmed_after(0.2, lasting=10.5) == pytest.approx(10_051, abs=2), "a longer one is not kept"
    assert window_confirmed_after(0.2, lasting=30.0, limit=100) == pytest.approx(30_001, abs=2), "a new plan"
