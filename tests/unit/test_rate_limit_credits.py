"""When an answer's `X-Picsart-Credit-Available` is written to the fleet's item (`rate_limit.credits`): the first
figure, a floor crossed, a step, a top-up; never a figure that tells nothing, nor a late answer's higher one."""

from __future__ import annotations

import pytest

from picsart_adapter.rate_limit import LimiterState
from picsart_adapter.rate_limit.credits import CREDITS_STEP, answer_credits_update, balance_update, crosses_a_floor

NOW_MS = 1_800_000_000_000
STORED_AT_MS = NOW_MS - 5_000
FLOORS = frozenset({500, 2_000})


def view(credits: int | None) -> LimiterState:
    return LimiterState(window_reset_ms=NOW_MS + 30_000, credits=credits, credits_at_ms=STORED_AT_MS)


@pytest.mark.parametrize(
    ("before", "after", "crossed"),
    [(501, 500, True), (501, 499, True), (500, 501, True), (500, 499, False), (2_500, 400, True), (600, 501, False)],
)
def test_a_floor_is_crossed_between_above_it_and_at_or_below_it(before: int, after: int, crossed: bool) -> None:
    assert crosses_a_floor(before, after, FLOORS) is crossed


def test_the_first_figure_is_written_only_where_the_item_has_none() -> None:
    update = answer_credits_update(view(None), 900, NOW_MS - 800, NOW_MS, FLOORS)
    assert update is not None
    assert "attribute_not_exists(credits)" in update.condition
    assert update.values == {":reported": 900, ":received": NOW_MS, ":sent": NOW_MS - 800}
    assert answer_credits_update(None, 900, None, NOW_MS, FLOORS) is None, "no item yet: the next grant makes it"


@pytest.mark.parametrize("reported", [1_000 - CREDITS_STEP + 1, 1_000, 1_000 + CREDITS_STEP - 1])
def test_a_figure_within_a_step_that_crosses_no_floor_costs_no_write(reported: int) -> None:
    assert answer_credits_update(view(1_000), reported, NOW_MS - 800, NOW_MS, FLOORS) is None


@pytest.mark.parametrize(("stored", "reported"), [(501, 500), (1_000, 1_000 - CREDITS_STEP)])
def test_a_lower_figure_across_a_floor_or_a_step_lowers_the_item_only_if_it_is_lower_there(
    stored: int, reported: int
) -> None:
    update = answer_credits_update(view(stored), reported, NOW_MS - 800, NOW_MS, FLOORS)
    assert update is not None
    assert update.update == "SET credits = :reported, credits_at_ms = :received"
    assert "credits > :reported" in update.condition, "of concurrent answers, the lowest figure stays"
    assert "credits_since_ms <= :sent" in update.condition, "an answer from before a top-up does not undo it"
    assert update.values[":step_above"] == reported + CREDITS_STEP, "news only if the item is a step above..."
    assert update.values[":floor"] == min(f for f in FLOORS if f >= reported), "... or above a floor it reached"


def test_a_lower_figure_of_unknown_send_time_lowers_only_a_figure_no_top_up_raised() -> None:
    update = answer_credits_update(view(501), 480, None, NOW_MS, FLOORS)
    assert update is not None
    assert update.values[":sent"] == 0


def test_a_higher_figure_is_a_top_up_only_from_a_call_sent_after_the_stored_figure_came() -> None:
    late = answer_credits_update(view(400), 5_000, STORED_AT_MS - 1, NOW_MS, FLOORS)
    assert late is None, "sent before the stored figure came: an older answer arriving late"
    assert answer_credits_update(view(400), 5_000, None, NOW_MS, FLOORS) is None, "unknown: not a top-up"
    top_up = answer_credits_update(view(400), 5_000, STORED_AT_MS + 1, NOW_MS, FLOORS)
    assert top_up is not None
    assert top_up.update == "SET credits = :reported, credits_at_ms = :received, credits_since_ms = :sent"
    assert "credits < :reported" in top_up.condition
    assert "credits_at_ms < :sent" in top_up.condition


def test_the_balance_check_writes_its_figure_whatever_is_stored() -> None:
    update = balance_update(12_345, NOW_MS - 300, NOW_MS)
    assert update.condition == "attribute_exists(pk)"
    assert update.values == {":reported": 12_345, ":received": NOW_MS, ":sent": NOW_MS - 300}
