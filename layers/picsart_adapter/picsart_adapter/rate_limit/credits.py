"""The balance on the fleet's limiter item: which figures are written, and the conditions that keep it right.

Every answer carries `X-Picsart-Credit-Available` (a metric each time), but writing it at every call would
double the writes on the fleet's busiest item. So an answer writes its figure only when it tells something the
fleet acts on, and the hourly balance check writes its own (docs/credits.md):

- **the first figure**: the item has none yet;
- **down**: the figure crossed a rule's credit floor (so no decision at a floor ever waits for a step), or fell
  `CREDITS_STEP` or more below the stored one;
- **up, a top-up**: a figure above the stored one from a call sent after the stored figure was received. Credits
  only go down between top-ups, so such a figure is a top-up; a higher figure from a call sent before is an
  older answer arriving late, and is not written. Written when it crosses a floor upwards or rises by
  `CREDITS_STEP` or more (`CREDITS_STEP` of top-up is found by the next balance check).

Each write's condition reads the item, not the environment's view of it (which only decides whether to try):

- a figure lowers the stored one only when it is lower (`credits > :reported`) and the stored one is a step
  above it or above a floor it reached: so whatever order concurrent answers land in, the item ends at or below
  every floor one of them reached, within a step of the lowest
  (test_no_answer_at_or_below_a_floor_is_lost_to_a_concurrent_one), and a stale view's write fails rather than
  adding a write per environment per step;
- and only when its call was sent after the last top-up was taken (`credits_since_ms`): an answer from before a
  top-up never takes it back (test_an_answer_from_before_a_top_up_does_not_take_it_back).

The item's attributes: `credits` the figure, `credits_at_ms` when it was received, `credits_since_ms` when the
call that last raised it (a top-up, or the balance check) was sent.
"""

from __future__ import annotations

from collections.abc import Collection

from picsart_adapter.rate_limit.state import LimiterState
from picsart_adapter.rate_limit.updates import ConditionalUpdate, all_of, either

__all__ = ["CREDITS_STEP", "answer_credits_update", "balance_update", "crosses_a_floor"]

#: How far the figure falls (or rises) before an answer writes it when it crosses no floor: the stored figure is
#: then within this of the lowest answer (reports, `picsart-local report`), at one write per this many credits
#: spent at most (test_the_stored_figure_follows_the_answers_within_a_step_at_one_write_per_step).
CREDITS_STEP = 100

_ITEM_EXISTS = "attribute_exists(pk)"
_NO_FIGURE = "attribute_not_exists(credits)"
#: The call was sent after the last top-up was taken: its figure is from this balance's time.
_SINCE_LAST_TOP_UP = either("attribute_not_exists(credits_since_ms)", "credits_since_ms <= :sent")


def crosses_a_floor(before: int, after: int, floors: Collection[int]) -> bool:
    """Whether the balance going from `before` to `after` moves it across a floor: from above it to at or
    below it, or back (a floor is reached at or below it, `credit_floor.floor_reached`)."""
    low, high = min(before, after), max(before, after)
    return any(low <= floor < high for floor in floors)


def answer_credits_update(
    view: LimiterState | None, reported: int, sent_ms: int | None, received_ms: int, floors: Collection[int]
) -> ConditionalUpdate | None:
    """The write an answer's `X-Picsart-Credit-Available` calls for, None when it tells nothing the fleet acts on.
    `sent_ms`: when its call was sent (None when not known: the figure can then only lower the stored one)."""
    if view is None:
        return None  # no item yet: the next acquire creates it, and the next answer tells the figure
    values: dict[str, int] = {":reported": reported, ":received": received_ms}
    sets = "SET credits = :reported, credits_at_ms = :received"
    stored = view.credits
    if stored is None:
        values[":sent"] = sent_ms if sent_ms is not None else received_ms
        return ConditionalUpdate(f"{sets}, credits_since_ms = :sent", all_of(_ITEM_EXISTS, _NO_FIGURE), {}, values)
    moved = crosses_a_floor(stored, reported, floors) or abs(stored - reported) >= CREDITS_STEP
    if not moved:
        return None
    if reported < stored:
        # A call sent before the last top-up cannot be placed after it: with no send time, it is taken as sent
        # at the epoch's start, so it lowers only a figure no top-up has raised since.
        values[":sent"] = sent_ms if sent_ms is not None else 0
        # What the item must show for the write to be news, whatever this environment's view: a step above the
        # figure, or above a floor the figure is at or below.
        values[":step_above"] = reported + CREDITS_STEP
        news = ["credits >= :step_above"]
        floors_reached = [floor for floor in floors if floor >= reported]
        if floors_reached:
            values[":floor"] = min(floors_reached)
            news.append("credits > :floor")
        return ConditionalUpdate(
            sets, all_of(_ITEM_EXISTS, "credits > :reported", _SINCE_LAST_TOP_UP, either(*news)), {}, values
        )
    if sent_ms is None or sent_ms <= view.credits_at_ms:
        return None  # possibly an older answer arriving late: only a call sent after the stored figure tells a top-up
    values[":sent"] = sent_ms
    return ConditionalUpdate(
        f"{sets}, credits_since_ms = :sent",
        all_of(
            _ITEM_EXISTS, "credits < :reported", either("attribute_not_exists(credits_at_ms)", "credits_at_ms < :sent")
        ),
        {},
        values,
    )


def balance_update(credits: int, sent_ms: int, received_ms: int) -> ConditionalUpdate:
    """The balance check's figure, written whatever is stored: it is Picsart's balance as its call was answered,
    a top-up included. Answers of calls sent before it no longer lower it (`credits_since_ms`)."""
    return ConditionalUpdate(
        "SET credits = :reported, credits_at_ms = :received, credits_since_ms = :sent",
        _ITEM_EXISTS,
        {},
        {":reported": credits, ":received": received_ms, ":sent": sent_ms},
    )
