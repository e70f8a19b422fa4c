"""The limiter's conditional updates of its item, as pure builders: each returns one `ConditionalUpdate`.

Each condition is assembled from the named parts below, so what a write requires reads as a list of rules.
`:now` is always the writer's clock, in epoch ms. DynamoDB refuses a name given to it that an expression does
not use, so each builder names only what its expressions use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from picsart_adapter.rate_limit.state import (
    MAX_SECONDS_REMOVED_PER_WRITE,
    PROBE_BUDGET,
    PROBE_WINDOW_MS,
    LimiterState,
)

#: Resets closer than this are the same window's (the header's second forms are precise to one second).
_SAME_WINDOW_MS = 1000


@dataclass(frozen=True)
class ConditionalUpdate:
    """One UpdateItem of the limiter's item: what it sets, what must hold for it, and its names and values."""

    update: str
    condition: str
    names: dict[str, str]
    values: dict[str, Any]


def all_of(*parts: str) -> str:
    return " AND ".join(parts)


def either(*parts: str) -> str:
    return "(" + " OR ".join(parts) + ")"


# -- the parts conditions are made of -------------------------------------------------------------------------
#: No call while the fleet is blocked (a 429 without a usable reset time).
NOT_BLOCKED = either("attribute_not_exists(blocked_until_ms)", "blocked_until_ms <= :now")
#: The item's window is still open.
WINDOW_OPEN = "window_reset_ms > :now"
#: No window is open: the item is new, or its window has reset.
NO_WINDOW_OPEN = either("attribute_not_exists(window_reset_ms)", "window_reset_ms <= :now")
#: A unit may be taken: the window's budget is not spent, or the limit is learned, when a unit beyond it is a
#: place in the line rather than a refusal (test_a_refusal_takes_its_place_in_the_line_with_one_write).
QUOTA_ROOM = either("granted < #limit", "attribute_exists(window_ms)")
#: The window's budget is spent: a unit taken now is a place in the line.
BEYOND_LIMIT = "granted >= #limit"
#: The window this write is about is still the item's: known by its reset (`:known`)...
SAME_RESET = "window_reset_ms = :known"
#: ... or by its start (`:start`), which an answer confirming it does not move.
SAME_START = "window_start_ms = :start"
#: The fleet's first call: the item has no spike-arrest counts yet.
NO_SPIKE_COUNTS = "attribute_not_exists(#spike)"
#: The count of the second a call is counted in (`#spike.#counted`).
SPIKE_COUNT = "#spike.#counted = if_not_exists(#spike.#counted, :zero) + :one"
#: That second has room left under Picsart's spike arrest (`:spike_max`).
SPIKE_ROOM = either("attribute_not_exists(#spike.#counted)", "#spike.#counted < :spike_max")


def spike_room_or_beyond_limit(room: str) -> str:
    """A call needs room in its second; a place in the line does not (no call is made in this second)."""
    return either(room, BEYOND_LIMIT)


# -- before a call ---------------------------------------------------------------------------------------------
def grant_update(view: LimiterState | None, now_ms: int, counted: int, spike_per_second: int) -> ConditionalUpdate:
    """A grant in the window that is open, whoever opened it (its condition checks it is). Once the limit is
    learned a unit beyond it is a place in the line: the write does not fail on the quota, nor on the spike
    arrest then (test_concurrent_callers_get_exactly_the_budget_and_the_rest_a_place_each)."""
    names, values, count, room, remove = _counting(view, now_ms, counted, spike_per_second)
    return ConditionalUpdate(
        update=f"SET granted = granted + :one, {count}{remove}",
        condition=all_of(WINDOW_OPEN, QUOTA_ROOM, spike_room_or_beyond_limit(room), NOT_BLOCKED),
        names=names,
        values=values,
    )


def opening_update(view: LimiterState | None, now_ms: int, counted: int, spike_per_second: int) -> ConditionalUpdate:
    """No window open: open one, with this call its first grant. Its end is a guess from the last window's length
    (a short probe window at first) until an answer confirms it
    (test_after_the_reset_the_next_window_opens_with_the_learned_length). The write copies the line over
    (`_carry_line`) and requires the item to be in the window `view` describes."""
    names, values, count, room, remove = _counting(view, now_ms, counted, spike_per_second)
    values.update({":probe": PROBE_BUDGET, ":probe_ms": PROBE_WINDOW_MS, ":true": True})
    carried, same_window = _carry_line(view, values)
    return ConditionalUpdate(
        update=(
            "SET window_reset_ms = :now + if_not_exists(window_ms, :probe_ms), provisional = :true, "
            f"window_start_ms = :now, granted = :one, {count}, #limit = if_not_exists(#limit, :probe), "
            f"{carried}{remove}"
        ),
        condition=all_of(NO_WINDOW_OPEN, same_window, room, NOT_BLOCKED),
        names=names,
        values=values,
    )


def recount_update(
    window_start_ms: int, arrival_by_ms: int, now_ms: int, counted: int, spike_per_second: int
) -> ConditionalUpdate:
    """Count a granted call again in second `counted`, keeping its quota unit: the window that granted it (known
    by its start) is still the item's and lasts past the call's arrival, and the second has room
    (test_a_grant_that_expired_in_its_write_is_counted_again_keeping_its_unit,
    test_a_grant_from_before_its_window_was_confirmed_is_counted_again_in_it)."""
    names: dict[str, str] = {"#spike": "spike"}
    values: dict[str, Any] = {":start": window_start_ms, ":arrival": arrival_by_ms, ":now": now_ms}
    count = _spike_terms(counted, spike_per_second, names, values)
    return ConditionalUpdate(
        update=f"SET {count}",
        condition=all_of(SAME_START, "window_reset_ms > :arrival", SPIKE_ROOM, NOT_BLOCKED),
        names=names,
        values=values,
    )


def place_update(view: LimiterState, now_ms: int) -> ConditionalUpdate:
    """A place in the line for a refusal that took none: one unit beyond the limit of the window `view` knows,
    while it is open and spent (test_a_refusal_takes_its_place_in_the_line_with_one_write)."""
    return ConditionalUpdate(
        update="SET granted = granted + :one",
        condition=all_of(SAME_RESET, WINDOW_OPEN, BEYOND_LIMIT),
        names={"#limit": "limit"},
        values={":known": view.window_reset_ms, ":now": now_ms, ":one": 1},
    )


def _counting(
    view: LimiterState | None, now_ms: int, counted: int, spike_per_second: int
) -> tuple[dict[str, str], dict[str, Any], str, str, str]:
    """What a write taking a unit shares: its names and values, the count it adds to second `counted`, the room
    that needs, and the old seconds it removes."""
    second = now_ms // 1000
    values: dict[str, Any] = {":now": now_ms, ":one": 1}
    names = {"#spike": "spike", "#limit": "limit"}
    if view is None:
        # No item yet (the fleet's first call, which opens the first window): its seconds start with this call.
        values[":spike"] = {str(counted): 1}
        count, room = "#spike = :spike", NO_SPIKE_COUNTS
    else:
        # The call is counted in its second as the item has it, never as this environment last saw it: a view
        # from before the reset misses the old window's last grants in that second, and writing it back would
        # lose them (test_a_window_opened_on_a_view_from_before_the_old_windows_last_calls_keeps_their_count).
        count, room = _spike_terms(counted, spike_per_second, names, values), SPIKE_ROOM
    # A few old seconds per write keep the item small; only those removed are named
    # (test_a_view_with_many_old_seconds_still_grants).
    known_seconds = view.spike if view is not None else {}
    old_seconds = [s for s in known_seconds if int(s) < second - 1][:MAX_SECONDS_REMOVED_PER_WRITE]
    for index, old_second in enumerate(old_seconds):
        names[f"#old{index}"] = old_second
    remove = (" REMOVE " + ", ".join(f"#spike.#old{i}" for i in range(len(old_seconds)))) if old_seconds else ""
    return names, values, count, room, remove


def _spike_terms(counted: int, spike_per_second: int, names: dict[str, str], values: dict[str, Any]) -> str:
    """The spike-arrest count a call counted in second `counted` adds (its room is `SPIKE_ROOM`); the names and
    values both use are added."""
    values.update({":one": 1, ":zero": 0, ":spike_max": spike_per_second})
    names["#counted"] = str(counted)
    return SPIKE_COUNT


def _carry_line(view: LimiterState | None, values: dict[str, Any]) -> tuple[str, str]:
    """Moving on to the next window: what it keeps of the line (the window before's line at its opening, and its
    final count as the item has it: DynamoDB reads `granted` as it is before the write), and the condition that
    the item is still in the window `view` describes, whose line at opening the view knows exactly (it does not
    change in a window) (test_opening_a_window_carries_the_line_over_as_the_item_counted_it)."""
    values[":line_before"] = view.line_at_opening if view is not None else 0
    carried = "line_before = :line_before, granted_before = if_not_exists(granted, :zero)"
    values[":zero"] = 0
    if view is None:
        return carried, "attribute_not_exists(window_start_ms)"
    values[":view_start"] = view.window_start_ms
    return carried, "window_start_ms = :view_start"


# -- after an answer -------------------------------------------------------------------------------------------
def answer_update(
    view: LimiterState | None,
    reset_ms: int,
    limit: int | None,
    used: int | None,
    received_ms: int,
    now_ms: int,
    *,
    confirming: bool,
    throttled: bool,
) -> ConditionalUpdate | None:
    """The write an answer calls for, None when it tells nothing new. `reset_ms` is its reset with the header's
    precision added, `used` the calls it counts in its window, `received_ms` when it came, `now_ms` the clock now.

    A late answer from an older window never overwrites newer state: each write is conditional on the window it
    describes (test_a_late_answer_from_an_older_window_never_overwrites_newer_state)."""
    if view is None:
        return None  # no state yet: the next acquire creates it
    # An answer about a window that is over (the call was answered late) says nothing about this one: its count
    # is not this window's. A guessed window is known by its start, a confirmed one by its reset
    # (test_a_late_answer_from_the_window_before_takes_nothing_from_the_new_one,
    # test_an_answer_from_the_window_before_is_not_written_while_the_new_one_is_a_guess).
    if view.provisional:
        window_over = reset_ms <= view.window_start_ms
    else:
        window_over = reset_ms < view.window_reset_ms - _SAME_WINDOW_MS
    if window_over:
        return None
    if view.provisional and not confirming and not throttled:
        return None  # the answers to the window's first calls confirm it
    if view.provisional:
        return confirm_update(view, reset_ms, limit, used)
    if reset_ms > view.window_reset_ms + _SAME_WINDOW_MS:
        return next_window_update(view, reset_ms, limit, used, received_ms)
    if used is not None and limit is not None and used >= limit > view.granted and view.window_open(now_ms):
        return correct_update(view, used)
    return None


def confirm_update(view: LimiterState, reset_ms: int, limit: int | None, used: int | None) -> ConditionalUpdate:
    """Confirm the guessed window the fleet opened, with Picsart's reset; an answer from the window before
    cannot (its reset is before this window's start)."""
    sets, names, values = _answer_sets(reset_ms, limit)
    values[":start"] = view.window_start_ms
    parts = ["provisional = :true", SAME_START, "window_start_ms < :reset"]
    values[":true"] = True
    # Measured from the fleet's opening write, a window seems longer than Picsart's by the time its first call
    # takes to arrive, and the line's turns windows ahead would drift late by as much per window. The shortest
    # measure is kept, unless the limit changed (a new plan)
    # (test_the_window_length_kept_is_the_shortest_measured_until_the_limit_changes).
    measured = reset_ms - view.window_start_ms
    if view.window_ms is None or measured < view.window_ms or (limit is not None and limit != view.limit):
        values[":window_ms"] = measured
        sets.append("window_ms = :window_ms")
    if used is not None and used > view.granted:
        # Raised only: the fleet's count may be ahead of Picsart's (grants whose calls have not arrived yet), and
        # lowered it would let the fleet grant more calls than the window's limit
        # (test_confirming_a_guessed_window_never_lowers_the_fleets_count).
        values[":used"] = used
        sets.append("granted = :used")
        parts.append("granted < :used")
    return ConditionalUpdate("SET " + ", ".join(sets), all_of(*parts), names, values)


def next_window_update(
    view: LimiterState, reset_ms: int, limit: int | None, used: int | None, received_ms: int
) -> ConditionalUpdate:
    """An answer from a window the fleet has not opened yet (the call crossed the reset). It is a new window: a
    new start too (grants of the last one are not counted again in it), the line carried."""
    sets, names, values = _answer_sets(reset_ms, limit)
    values[":known"] = view.window_reset_ms
    carried, same_window = _carry_line(view, values)
    values[":used"] = used if used is not None else 1
    values[":received"] = received_ms
    sets.extend(["granted = :used", "window_start_ms = :received", carried])
    return ConditionalUpdate(
        "SET " + ", ".join(sets), all_of("provisional = :false", SAME_RESET, same_window), names, values
    )


def correct_update(view: LimiterState, used: int) -> ConditionalUpdate:
    """Picsart says the window is spent and the fleet counts fewer (another client on the same key): it stops
    calling. A smaller difference is as a rule calls granted after this one that arrived before it, which the
    fleet has counted already, so it is not written
    (test_only_an_answer_that_says_the_window_is_spent_corrects_the_fleets_count)."""
    return ConditionalUpdate(
        update="SET #granted = :used",
        condition=all_of(SAME_RESET, "#granted < :used"),
        names={"#granted": "granted"},
        values={":used": used, ":known": view.window_reset_ms},
    )


def block_update(until_ms: int) -> ConditionalUpdate:
    """No call from the fleet before `until_ms` (a 429 without a usable reset time), unless it is blocked longer
    already (test_429_without_headers_holds_the_whole_fleet_for_the_floor)."""
    return ConditionalUpdate(
        update="SET #blocked = :until",
        condition="attribute_not_exists(#blocked) OR #blocked < :until",
        names={"#blocked": "blocked_until_ms"},
        values={":until": until_ms},
    )


def _answer_sets(reset_ms: int, limit: int | None) -> tuple[list[str], dict[str, str], dict[str, Any]]:
    """What any answer that is written sets: its reset (confirmed), and its limit when it told it. Not the
    credits: the figure has its own writes, conditional on the stored one (`credits`)."""
    values: dict[str, Any] = {":reset": reset_ms, ":false": False}
    names = {"#provisional": "provisional"}
    sets = ["window_reset_ms = :reset", "#provisional = :false"]
    if limit is not None:
        names["#limit"] = "limit"
        values[":limit"] = limit
        sets.append("#limit = :limit")
    return sets, names, values
