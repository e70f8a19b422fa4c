"""`FleetRateLimiter`: one environment's side of the fleet's shared budget, its view of the item and its retries.

What the item holds and what follows from it is in `state`; the writes, as conditional updates, in `updates`;
reading and writing the item (timed, counted, throttled) in `item`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from picsart_adapter.rate_limit import credits, updates
from picsart_adapter.rate_limit.item import LimiterItem
from picsart_adapter.rate_limit.reset_header import read_reset_time
from picsart_adapter.rate_limit.state import (
    SEND_MARGIN_MS,
    SPIKE_ARREST_PER_SECOND,
    Denial,
    Grant,
    LimiterState,
    denial_from,
    grant_in,
    second_counted,
    turn,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

    from picsart_adapter.picsart_client import RateLimitHeaders


class FleetRateLimiter:
    """The fleet's shared budget for one API key. One instance per execution environment."""

    def __init__(
        self,
        table: Table,
        api_key: Callable[[], str],
        spike_per_second: int = SPIKE_ARREST_PER_SECOND,
        no_reset_floor_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
        credit_floors: Collection[int] = (),
    ) -> None:
        self._item = LimiterItem(table, api_key, clock)
        self._spike = spike_per_second
        self._floor_ms = int(no_reset_floor_seconds * 1000)
        self._clock = clock
        #: The rules' credit floors: an answer whose figure crosses one is written (`credits`).
        self._credit_floors = frozenset(credit_floors)
        self._view_state: LimiterState | None = None
        self._view_at = 0.0
        #: Whether, when its view shows the window over, another invocation has as a rule opened the next one
        #: already (a busy fleet), so a grant is asked for rather than a window opened: learned from which of the
        #: two last failed. In a busy fleet, were every environment to open each window, all but one would fail
        #: (a write each) (test_after_a_reset_a_busy_fleet_asks_for_grants_and_one_environment_opens_the_window,
        #: test_an_environment_alone_opens_each_window_without_a_failed_write_once_it_has_learned_to).
        self._others_open_windows = True

    @property
    def writes(self) -> int:
        """Conditional writes this environment made to the item, failed ones too."""
        return self._item.writes

    @property
    def write_units(self) -> float:
        """DynamoDB write units this environment consumed (failed conditional writes are charged too)."""
        return self._item.write_units

    @property
    def _view(self) -> LimiterState | None:
        """The item as this environment's last read or write returned it."""
        return self._view_state

    @_view.setter
    def _view(self, view: LimiterState | None) -> None:
        self._view_state, self._view_at = view, self._clock()

    # -- before a call ---------------------------------------------------------------------------------
    def acquire(self) -> Grant | Denial:
        """Take one call from the fleet's budget, or learn when to come back. At most a few writes; none
        when this environment already knows the budget is spent: it stops calling for the batch
        (test_after_the_reset_the_next_window_opens_with_the_learned_length). The item throttled: a
        `throttled` Denial, no call (test_a_throttled_acquire_is_a_short_jittered_denial_not_an_error)."""
        try:
            return self._acquire()
        except ClientError as error:
            return self._item.throttled(error, "acquire")

    def _acquire(self) -> Grant | Denial:
        if (left_alone := self._item.left_alone()) is not None:
            return left_alone
        if self._view is None:
            # A new environment reads the item first (read units, not write units): while the fleet's probe is
            # out, a write would fail on the probe's budget.
            self._view = self._item.read()
        if self._view is not None:
            denial = self._denial(self._view, self._now_ms())
            if denial is not None:
                return denial
        for _ in range(4):
            now_ms = self._now_ms()
            counted = self._second_counted(now_ms)
            view = self._view
            # No item yet (the fleet's very first call): no window to ask a grant in, so it is opened at once
            # (test_the_fleets_first_call_opens_the_first_window_with_one_write).
            opening = view is None or (not view.window_open(now_ms) and not self._others_open_windows)
            build = updates.opening_update if opening else updates.grant_update
            written = self._item.write(build(view, now_ms, counted, self._spike))
            if not written.written:
                # Another invocation moved the state on: decide again from what it is now.
                self._view = LimiterState.from_item(written.item) if written.item else None
                window_was_open = self._view is not None and self._view.window_open(now_ms)
                if opening == window_was_open:
                    self._others_open_windows = window_was_open
                if self._view is not None:
                    denial = self._denial(self._view, self._now_ms())
                    if denial is not None:
                        return denial
                continue
            self._view = state = LimiterState.from_item(written.item or {})
            if state.granted > state.limit:
                # The window is spent: the unit taken is a place in the line (no failed write, no second one).
                return Denial(state.window_reset_ms / 1000.0, "quota", turn=self._turn(state, state.line_after))
            return grant_in(state, counted)
        # Contention so high that four tries lost: come back in a moment rather than spin.
        return Denial(retry_at=(now_ms + 1000) / 1000.0, reason="contention")

    def recount(self, grant: Grant) -> Grant | Denial | None:
        """Count a granted call again in the second it will reach Picsart in now, when its grant expired
        before the call could start (the write was slow). It keeps its quota unit: one write, and no unit is
        lost to a slow write. A Denial when that second is full (the unit is still the call's: count it
        again then); None when its window has ended, and the unit with it
        (test_a_recount_waits_for_a_full_second_and_is_refused_after_its_window).

        The window is known by its start: an answer confirming it in the meantime moves its reset, not its start.
        """
        try:
            return self._recount(grant)
        except ClientError as error:
            return self._item.throttled(error, "recount")

    def _recount(self, grant: Grant) -> Grant | Denial | None:
        now_ms = self._now_ms()
        counted = self._second_counted(now_ms)
        window_start_ms = grant.state.window_start_ms
        view = self._view if self._view and self._view.window_start_ms == window_start_ms else grant.state
        arrival_by_ms = max(now_ms, counted * 1000) + SEND_MARGIN_MS
        if arrival_by_ms >= view.window_reset_ms:
            return None  # it would reach Picsart in the next window, which has not counted it
        written = self._item.write(updates.recount_update(window_start_ms, arrival_by_ms, now_ms, counted, self._spike))
        if not written.written:
            if not written.item:
                return None
            self._view = now_view = LimiterState.from_item(written.item)
            if now_view.window_start_ms != window_start_ms or now_view.window_reset_ms <= arrival_by_ms:
                return None
            if now_view.blocked_until_ms > now_ms:
                return Denial(now_view.blocked_until_ms / 1000.0, "blocked")
            return Denial(float(counted + 1), "spike")
        self._view = state = LimiterState.from_item(written.item or {})
        return grant_in(state, counted)

    def recheck(self) -> Denial | None:
        """Look at the item once more (one consistent read, no write) for a granted call that waited for its
        second: a 429 recorded meanwhile anywhere in the fleet holds it until the reset it named. The call is
        then sent straight after this look, so no call of the fleet is sent after a 429 was recorded except
        those whose last look came before it, in that second
        (test_a_grant_waiting_for_its_second_is_held_by_a_429_another_environment_recorded)."""
        view = self._item.read()
        if view is None:
            return None
        self._view = view
        if view.blocked_until_ms > self._now_ms():
            return Denial(view.blocked_until_ms / 1000.0, "blocked")
        return None

    def known_denial(self) -> Denial | None:
        """The refusal `acquire` would give from what this environment already knows (no read, no write):
        work that cannot go yet is parked before anything is spent on it, and while the item is throttled, every
        job is (test_an_environment_that_found_the_item_throttled_leaves_it_alone_for_a_while)."""
        if (left_alone := self._item.left_alone()) is not None:
            return left_alone
        return self._denial(self._view, self._now_ms()) if self._view is not None else None

    def place_in_line(self, denial: Denial) -> float:
        """When work refused for quota should come back: its place in the fleet's line decides which window
        (the next one, or a later one when the line is longer than a window's limit) and which moment in
        it (places are spaced by the spike arrest), so each window's budget meets as many calls as it
        has. No write when the refusal took its place already; else one, beyond the window's limit. On any
        surprise, the reset itself (the work is refused again and takes a place then)."""
        if denial.turn is not None:
            return denial.turn
        view, now_ms = self._view, self._now_ms()
        if denial.reason != "quota" or view is None or not view.window_open(now_ms) or not view.learned:
            # Before the first answer the window is a probe: no line is planned on its guessed limit
            # (test_no_line_is_planned_on_a_guessed_window).
            return denial.retry_at
        try:
            written = self._item.write(updates.place_update(view, now_ms))
        except ClientError as error:
            self._item.throttled(error, "place in line")
            return denial.retry_at  # no place: it comes back at the reset and queues then
        if not written.written:
            self._view = LimiterState.from_item(written.item) if written.item else None
            return denial.retry_at  # the window moved on: come back at the reset, and queue then
        self._view = state = LimiterState.from_item(written.item or {})
        return self._turn(state, state.line_after)

    # -- after an answer -------------------------------------------------------------------------------
    def observe(
        self,
        headers: RateLimitHeaders,
        throttled: bool,
        received_at: float | None = None,
        sent_at: float | None = None,
    ) -> None:
        """Correct the shared state with what an answer said, writing only when it tells something new
        (test_one_write_per_call_at_steady_state): the window, then the credits (`credits`; `sent_at`, when the
        call was sent, tells a top-up from a late answer).

        A late answer from an older window never overwrites newer state: each write is conditional on the
        window it describes.
        """
        now = self._clock() if received_at is None else received_at
        self._observe_window(headers, throttled, now)
        if headers.credits is not None:
            sent_ms = int(sent_at * 1000) if sent_at is not None else None
            update = credits.answer_credits_update(
                self._view, headers.credits, sent_ms, int(now * 1000), self._credit_floors
            )
            if update is not None:
                self._write_and_view(update)

    def record_balance(self, balance: int, sent_at: float, received_at: float) -> None:
        """The balance check's figure on the item, whatever was stored (`credits.balance_update`)."""
        self._write_and_view(credits.balance_update(balance, int(sent_at * 1000), int(received_at * 1000)))

    def known_credits(self, max_age_seconds: float) -> int | None:
        """The balance as the item had it at most `max_age_seconds` ago: this environment's view, read again
        (read units, no write) when older. None: no figure yet."""
        if self._view is None or self._clock() - self._view_at > max_age_seconds:
            self._view = self._item.read()
        return self._view.credits if self._view is not None else None

    def _observe_window(self, headers: RateLimitHeaders, throttled: bool, now: float) -> None:
        now_ms = int(now * 1000)
        reset = read_reset_time(headers.reset_time, now)
        if reset is None:
            if throttled:
                self._block_until(now_ms + self._floor_ms)
            return
        # Store the reset with the header's precision added: the fleet never opens a window early.
        reset_ms = math.ceil((reset.at + reset.precision) * 1000)
        view = self._view
        # Whether this answer is one of the window's first, as the environment's view before any retry tells: a
        # failed write's fresh item counts the grants made since.
        confirming = view is not None and view.confirming_answer(now_ms)
        if throttled and reset_ms > now_ms and (view is None or view.blocked_until_ms < reset_ms):
            # Guide: after a 429 with a reset time, no request until that time. The whole fleet is held with
            # the floor's own field, whatever the window the 429 describes (a spike-arrest 429 names the
            # quota window's reset, which may be later than the fleet's end of it)
            # (test_a_429_with_a_reset_holds_the_whole_fleet_until_that_reset).
            self._block_until(reset_ms)
        limit = headers.limit
        used = limit - headers.available if limit is not None and headers.available is not None else None
        if throttled and limit is not None:
            used = limit  # a 429 means this window is spent, whatever the headers say
        view = self._view  # as the block's write, if any, returned it
        for _ in range(3):
            update = updates.answer_update(
                view,
                reset_ms,
                limit,
                used,
                now_ms,
                self._now_ms(),
                confirming=confirming,
                throttled=throttled,
            )
            if update is None:
                return
            written = self._item.write_unless_throttled(update)
            if written is None:
                return  # the call is paid for: its job goes on (test_a_throttled_answer_write_is_skipped_not_failed)
            if written.written:
                self._view = LimiterState.from_item(written.item or {})
                return
            view = LimiterState.from_item(written.item) if written.item else None
            self._view = view

    def _block_until(self, until_ms: int) -> None:
        self._write_and_view(updates.block_update(until_ms))

    def _write_and_view(self, update: updates.ConditionalUpdate) -> None:
        """One write whose outcome only refreshes the view: the item as written, or as it was. Throttled, it is
        skipped like an answer's write (test_a_throttled_answer_write_is_skipped_not_failed)."""
        written = self._item.write_unless_throttled(update)
        if written is None:
            return
        if written.written:
            self._view = LimiterState.from_item(written.item or {})
        else:
            self._view = LimiterState.from_item(written.item) if written.item else self._view

    # -- from the view, with this environment's write time and spike arrest ----------------------------
    def _second_counted(self, now_ms: int) -> int:
        return second_counted(now_ms, self._item.write_ms)

    def _denial(self, view: LimiterState, now_ms: int) -> Denial | None:
        return denial_from(view, now_ms, self._item.write_ms, self._spike)

    def _turn(self, view: LimiterState, place: int) -> float:
        return turn(view, place, self._item.write_ms, self._spike)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)
