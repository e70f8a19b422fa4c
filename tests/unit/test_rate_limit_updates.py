"""The limiter's conditional updates as built, no server: what each write sets and what must hold for it.

Against DynamoDB, tests/functional/test_fleet_rate_limiter.py shows what the writes do; here, that each one
says what it must (the blocked check, the spike room of the right second, the window it is about, ...).
"""

from __future__ import annotations

from picsart_adapter.rate_limit import updates
from picsart_adapter.rate_limit.state import (
    MAX_SECONDS_REMOVED_PER_WRITE,
    PROBE_BUDGET,
    PROBE_WINDOW_MS,
    LimiterState,
)
from picsart_adapter.rate_limit.updates import (
    BEYOND_LIMIT,
    NO_SPIKE_COUNTS,
    NO_WINDOW_OPEN,
    NOT_BLOCKED,
    QUOTA_ROOM,
    SAME_RESET,
    SAME_START,
    SPIKE_COUNT,
    SPIKE_ROOM,
    WINDOW_OPEN,
    ConditionalUpdate,
)

NOW_MS = 1_800_000_000_250
SECOND = NOW_MS // 1000
#: A learned window of 60 calls in 10 s, opened 4 s ago, 12 units taken.
VIEW = LimiterState(
    window_reset_ms=NOW_MS + 6_000,
    provisional=False,
    window_start_ms=NOW_MS - 4_000,
    window_ms=10_000,
    limit=60,
    granted=12,
    spike={str(SECOND - 1): 3, str(SECOND): 2},
    line_before=70,
    granted_before=65,
)


def conditions(update: ConditionalUpdate) -> list[str]:
    return update.condition.split(" AND ")


def test_the_named_parts_are_the_rules_they_name() -> None:
    assert NOT_BLOCKED == "(attribute_not_exists(blocked_until_ms) OR blocked_until_ms <= :now)"
    assert WINDOW_OPEN == "window_reset_ms > :now"
    assert NO_WINDOW_OPEN == "(attribute_not_exists(window_reset_ms) OR window_reset_ms <= :now)"
    assert QUOTA_ROOM == "(granted < #limit OR attribute_exists(window_ms))"
    assert SPIKE_ROOM == "(attribute_not_exists(#spike.#counted) OR #spike.#counted < :spike_max)"
    assert updates.spike_room_or_beyond_limit(SPIKE_ROOM) == f"({SPIKE_ROOM} OR {BEYOND_LIMIT})"


def test_a_grant_takes_a_unit_in_the_open_window_with_the_spike_room_of_its_counted_second() -> None:
    grant = updates.grant_update(VIEW, NOW_MS, SECOND + 1, spike_per_second=300)
    assert grant.update == f"SET granted = granted + :one, {SPIKE_COUNT}"
    assert conditions(grant) == [WINDOW_OPEN, QUOTA_ROOM, f"({SPIKE_ROOM} OR {BEYOND_LIMIT})", NOT_BLOCKED]
    assert grant.names == {"#spike": "spike", "#limit": "limit", "#counted": str(SECOND + 1)}
    assert grant.values == {":now": NOW_MS, ":one": 1, ":zero": 0, ":spike_max": 300}


def test_a_grant_removes_a_few_old_seconds_and_names_only_those() -> None:
    old = {str(SECOND - 20 + i): 1 for i in range(12)}
    view = LimiterState(window_reset_ms=NOW_MS + 1, spike={**old, str(SECOND - 1): 4, str(SECOND): 1})
    grant = updates.grant_update(view, NOW_MS, SECOND, spike_per_second=300)
    removed = [name for name in grant.names if name.startswith("#old")]
    assert len(removed) == MAX_SECONDS_REMOVED_PER_WRITE
    assert {grant.names[name] for name in removed} <= set(old), "the second before and this one are kept"
    assert grant.update.endswith(" REMOVE " + ", ".join(f"#spike.{name}" for name in removed))


def test_a_grant_with_no_old_seconds_removes_nothing() -> None:
    assert "REMOVE" not in updates.grant_update(VIEW, NOW_MS, SECOND, spike_per_second=300).update


def test_opening_a_window_guesses_its_end_and_copies_the_line() -> None:
    opening = updates.opening_update(VIEW, NOW_MS + 7_000, SECOND + 7, spike_per_second=300)
    assert "window_reset_ms = :now + if_not_exists(window_ms, :probe_ms)" in opening.update
    assert "provisional = :true" in opening.update
    assert "window_start_ms = :now, granted = :one" in opening.update
    assert "line_before = :line_before, granted_before = if_not_exists(granted, :zero)" in opening.update
    assert opening.values[":line_before"] == VIEW.line_at_opening == 70 + 5 - 60
    assert (opening.values[":probe"], opening.values[":probe_ms"]) == (PROBE_BUDGET, PROBE_WINDOW_MS)
    assert conditions(opening) == [NO_WINDOW_OPEN, "window_start_ms = :view_start", SPIKE_ROOM, NOT_BLOCKED]
    assert opening.values[":view_start"] == VIEW.window_start_ms, "the window the opener's view describes"
    assert SPIKE_COUNT in opening.update, "its call counts in its second as the item has it"


def test_the_fleets_first_call_opens_on_no_item_with_its_own_spike_count() -> None:
    first = updates.opening_update(None, NOW_MS, SECOND, spike_per_second=300)
    assert "#spike = :spike" in first.update
    assert first.values[":spike"] == {str(SECOND): 1}
    assert conditions(first) == [NO_WINDOW_OPEN, "attribute_not_exists(window_start_ms)", NO_SPIKE_COUNTS, NOT_BLOCKED]
    assert first.values[":line_before"] == 0
    assert "#counted" not in first.names


def test_a_recount_keeps_its_unit_in_the_window_known_by_its_start() -> None:
    recount = updates.recount_update(VIEW.window_start_ms, NOW_MS + 500, NOW_MS, SECOND + 1, spike_per_second=2)
    assert recount.update == f"SET {SPIKE_COUNT}"
    assert "granted" not in recount.update, "no second quota unit"
    assert conditions(recount) == [SAME_START, "window_reset_ms > :arrival", SPIKE_ROOM, NOT_BLOCKED]
    assert recount.names["#counted"] == str(SECOND + 1)
    assert (recount.values[":start"], recount.values[":arrival"], recount.values[":spike_max"]) == (
        VIEW.window_start_ms,
        NOW_MS + 500,
        2,
    )


def test_a_place_in_line_is_a_unit_beyond_the_limit_of_the_window_it_knows() -> None:
    place = updates.place_update(VIEW, NOW_MS)
    assert place.update == "SET granted = granted + :one"
    assert conditions(place) == [SAME_RESET, WINDOW_OPEN, BEYOND_LIMIT]
    assert place.values == {":known": VIEW.window_reset_ms, ":now": NOW_MS, ":one": 1}


def test_confirming_a_guess_sets_the_reset_and_raises_the_count_only() -> None:
    guess = LimiterState(window_reset_ms=NOW_MS + 10_000, window_start_ms=NOW_MS, window_ms=10_000, limit=60, granted=6)
    reset_ms = NOW_MS + 10_300
    confirm = updates.confirm_update(guess, reset_ms, limit=60, used=8)
    assert conditions(confirm) == ["provisional = :true", SAME_START, "window_start_ms < :reset", "granted < :used"]
    assert "granted = :used" in confirm.update
    assert "window_ms" not in confirm.update, "a longer measure is not kept"
    assert (confirm.values[":reset"], confirm.values[":limit"]) == (reset_ms, 60)
    assert "credits" not in confirm.update, "the credits have writes of their own"
    fewer = updates.confirm_update(guess, reset_ms, limit=60, used=2)
    assert "granted" not in fewer.update, "never lowered"
    assert "granted < :used" not in fewer.condition


def test_confirming_keeps_a_shorter_window_length_or_a_new_plans() -> None:
    guess = LimiterState(window_reset_ms=NOW_MS + 10_000, window_start_ms=NOW_MS, window_ms=10_000, limit=60)
    assert updates.confirm_update(guess, NOW_MS + 9_000, 60, None).values[":window_ms"] == 9_000
    assert updates.confirm_update(guess, NOW_MS + 30_000, 100, None).values[":window_ms"] == 30_000


def test_an_answer_from_the_next_window_opens_it_with_its_count_and_the_line() -> None:
    reset_ms = VIEW.window_reset_ms + 10_000
    answer = updates.next_window_update(VIEW, reset_ms, limit=60, used=3, received_ms=NOW_MS + 6_100)
    assert conditions(answer) == ["provisional = :false", SAME_RESET, "window_start_ms = :view_start"]
    assert "granted = :used, window_start_ms = :received, line_before = :line_before" in answer.update
    assert (answer.values[":used"], answer.values[":received"], answer.values[":known"]) == (
        3,
        NOW_MS + 6_100,
        VIEW.window_reset_ms,
    )


def test_correcting_the_count_needs_the_same_window_and_a_lower_count() -> None:
    correct = updates.correct_update(VIEW, 60)
    assert correct.update == "SET #granted = :used"
    assert conditions(correct) == [SAME_RESET, "#granted < :used"]
    assert correct.values == {":used": 60, ":known": VIEW.window_reset_ms}


def test_which_answer_is_written() -> None:
    def answer(view: LimiterState, reset_ms: int, used: int | None, **flags: bool) -> ConditionalUpdate | None:
        flags = {"confirming": True, "throttled": False, **flags}
        return updates.answer_update(view, reset_ms, 60, used, NOW_MS, NOW_MS, **flags)

    same_reset = VIEW.window_reset_ms
    assert answer(VIEW, same_reset, 40) is None, "nothing new: not written"
    assert answer(VIEW, same_reset, 60) == updates.correct_update(VIEW, 60), "the window is spent"
    assert answer(VIEW, same_reset - 5_000, 60) is None, "an older window's answer"
    assert answer(VIEW, same_reset + 9_000, 3) == updates.next_window_update(VIEW, same_reset + 9_000, 60, 3, NOW_MS)
    guess = LimiterState(window_reset_ms=NOW_MS + 5_000, window_start_ms=NOW_MS - 1_000, granted=8)
    assert answer(guess, NOW_MS - 2_000, 1) is None, "the window before's cannot confirm a guess"
    assert answer(guess, NOW_MS + 6_000, 1, confirming=False) is None, "left to the first calls' answers"
    assert answer(guess, NOW_MS + 6_000, 1, confirming=False, throttled=True) is not None, "a 429 is always told"
    assert answer(guess, NOW_MS + 6_000, 1) == updates.confirm_update(guess, NOW_MS + 6_000, 60, 1)
    assert updates.answer_update(None, NOW_MS, 60, 1, NOW_MS, NOW_MS, confirming=True, throttled=False) is None


def test_blocking_only_moves_the_block_later() -> None:
    block = updates.block_update(NOW_MS + 60_000)
    assert block.update == "SET #blocked = :until"
    assert block.condition == "attribute_not_exists(#blocked) OR #blocked < :until"
    assert (block.names, block.values) == ({"#blocked": "blocked_until_ms"}, {":until": NOW_MS + 60_000})
