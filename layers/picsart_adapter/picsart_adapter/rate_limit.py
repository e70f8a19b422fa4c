"""One rate limit for the whole fleet: Picsart's quota and spike arrest, shared in DynamoDB.

Many invocations run at once. Before each call an invocation takes one unit of budget with a single
write on one item per API key; once the limit is known, a unit beyond it is a place in the fleet's line, so a
refusal costs that one write too. Every answer's `X-Picsart-RateLimit-*` headers correct that item when they
tell something new (a new window, or a window spent that the fleet counts as not). So the fleet stays under
the quota and the spike arrest together. A refused call goes to the delay queue, due at its place in the line
(processing.py waits in the invocation only when that is sooner than a delay-queue hop).

The item (pk `ratelimit#<sha256 of the key>`, sk `state`; the key itself is never stored):
  window_reset_ms  end of the current window, epoch ms, with the header's precision added (conservative)
  provisional      True while that end is the fleet's guess (a window began, no answer has confirmed it)
  window_start_ms  when the fleet opened the current window
  window_ms        the window's length: the shortest measured since the limit was learned (for the next guess
                   and the line's turns)
  limit            calls per window (a probe budget of 1 until an answer tells the real limit)
  granted          units taken in the current window: calls up to `limit`, places in the line beyond it
  spike            {second: calls granted in that wall-clock second} for the last few seconds
  blocked_until_ms no calls before this (a 429 without a usable reset time: the guide's one-minute floor)
  credits          X-Picsart-Credit-Available as of the last window change (each answer's value is a metric)
  line_before, granted_before   the window before's line at its opening and its final count, copied by the
                   write that opened this window (DynamoDB reads `granted` as it was before that write, so the
                   opener needs no exact view of it). From them, the fleet's line of work refused for quota as
                   this window opened: the line before, and the refusals of the window before, less that
                   window's limit (the places this window is for). A refusal in this window takes the next
                   place, `line at opening + granted - limit`, and is parked until its place's window and
                   second, so released work does not all come back at the next reset only to be refused again.

`X-Picsart-RateLimit-Reset-Time` comes in three forms depending on the source (FACTS.md): the guide says
UTC epoch milliseconds, the TypeScript SDK treats it as seconds to wait, others as epoch seconds. They are
told apart by magnitude: no wait is decades long, and no epoch in milliseconds is below 10^12.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

    from picsart_adapter.picsart_client import RateLimitHeaders

#: Above this a value is epoch milliseconds (10^12 ms is September 2001).
_EPOCH_MS_THRESHOLD = 1e12
#: Above this a value is epoch seconds (10^9 s is September 2001); below it, seconds from now.
_EPOCH_S_THRESHOLD = 1e9
#: Picsart's spike arrest (troubleshooting guide): requests per second, separate from the quota.
SPIKE_ARREST_PER_SECOND = 300
#: Calls allowed while the limit is unknown: one probe, whose answer tells the fleet the limit.
PROBE_BUDGET = 1
#: A granted call must start at least this long before its counted second (or its window) ends: its way to
#: Picsart's gateway. At 150 ms, a call on a loaded machine took 211 ms and landed in a full second (a 429).
SEND_MARGIN_MS = 250
#: How long a grant's write is taken to last until this environment has timed one: a call is counted in the
#: second it can still start in once the write is back, so each call counts in exactly one second.
ASSUMED_WRITE_MS = 250
#: Old spike-arrest seconds dropped from the item by one grant.
MAX_SECONDS_REMOVED_PER_WRITE = 8
#: A guessed window is confirmed by the answers to its first few calls: the answers to later ones would, as a
#: rule, only find it confirmed already (a failed write each). Any answer confirms a window still a guess
#: this long after it opened (its first calls' answers told nothing: no headers, no answer).
CONFIRMING_CALLS = 3
CONFIRMED_WITHIN_MS = 3_000
#: How long a probe's window is assumed to last when nothing is known yet.
PROBE_WINDOW_MS = 2_000
#: Resets closer than this are the same window's (the header's second forms are precise to one second).
_SAME_WINDOW_MS = 1000
#: No call while the fleet is blocked (a 429 without a usable reset time); `:now` is the write's clock.
_NOT_BLOCKED = "(attribute_not_exists(blocked_until_ms) OR blocked_until_ms <= :now)"


@dataclass(frozen=True)
class ResetTime:
    """When a window resets, as epoch seconds, and how precisely the header said so."""

    at: float
    precision: float


def parse_reset_time(raw: str | None, now: float) -> float | None:
    """The reset instant as epoch seconds, or None when the header is absent or unreadable.

    `now` is the epoch time at which the answer was received (for the "seconds from now" form).
    """
    reset = read_reset_time(raw, now)
    return reset.at if reset else None


def read_reset_time(raw: str | None, now: float) -> ResetTime | None:
    """Like `parse_reset_time`, with the precision of the form used (1 ms, or 1 s for the second forms)."""
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except (ValueError, OverflowError):
        return None
    if not math.isfinite(value) or value < 0:
        return None
    if value >= _EPOCH_MS_THRESHOLD:
        return ResetTime(value / 1000.0, precision=0.001)
    if value >= _EPOCH_S_THRESHOLD:
        return ResetTime(value, precision=1.0)
    return ResetTime(now + value, precision=1.0)


def key_fingerprint(api_key: str) -> str:
    """What identifies an API key's rate limit in the table: a hash, never the key."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class LimiterState:
    """The shared item as one write returned it."""

    window_reset_ms: int = 0
    provisional: bool = True
    window_start_ms: int = 0
    window_ms: int | None = None
    limit: int = PROBE_BUDGET
    granted: int = 0
    spike: Mapping[str, int] = field(default_factory=dict)
    blocked_until_ms: int = 0
    line_before: int = 0
    granted_before: int = 0

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> LimiterState:
        def number(name: str, default: int = 0) -> int:
            value = item.get(name)
            return int(value) if value is not None else default

        spike = item.get("spike") or {}
        return cls(
            window_reset_ms=number("window_reset_ms"),
            provisional=bool(item.get("provisional", True)),
            window_start_ms=number("window_start_ms"),
            window_ms=int(item["window_ms"]) if item.get("window_ms") is not None else None,
            limit=number("limit", PROBE_BUDGET),
            granted=number("granted"),
            spike={str(k): int(v) for k, v in spike.items()},
            blocked_until_ms=number("blocked_until_ms"),
            line_before=number("line_before"),
            granted_before=number("granted_before"),
        )

    @property
    def learned(self) -> bool:
        """Whether an answer has told the window's limit and length (before that, one probe at a time)."""
        return self.window_ms is not None

    @property
    def line_at_opening(self) -> int:
        """Places waiting for the windows after this one when it opened."""
        return max(0, self.line_before + max(0, self.granted_before - self.limit) - self.limit)

    @property
    def line_after(self) -> int:
        """Places waiting for the windows after this one: the line at its opening, and its own refusals."""
        return self.line_at_opening + max(0, self.granted - self.limit)

    def window_open(self, now_ms: int) -> bool:
        return self.window_reset_ms > now_ms


@dataclass(frozen=True)
class Grant:
    """Go ahead: one call is the fleet's, if it starts between `valid_from` and `valid_until` (epoch seconds).

    The grant was counted in the one second the call should reach Picsart in, which Picsart's spike arrest
    counts it in too: a call started earlier (its write came back before the second began) must wait for it,
    and one started later (a slow write, a paused process) could land in a second, or a window, that did not
    count it.
    """

    state: LimiterState
    valid_until: float = math.inf
    valid_from: float = 0.0


@dataclass(frozen=True)
class Denial:
    """Not now: the budget returns at `retry_at` (epoch seconds). `reason`: quota, spike or blocked.

    `turn`: set when the refusal took a place in the fleet's line, the moment that place comes."""

    retry_at: float
    reason: str
    turn: float | None = None


class FleetRateLimiter:
    """The fleet's shared budget for one API key. One instance per execution environment."""

    def __init__(
        self,
        table: Table,
        api_key: Callable[[], str],
        spike_per_second: int = SPIKE_ARREST_PER_SECOND,
        no_reset_floor_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._table = table
        self._api_key = api_key
        self._spike = spike_per_second
        self._floor_ms = int(no_reset_floor_seconds * 1000)
        self._clock = clock
        self._view: LimiterState | None = None
        self._fingerprint: tuple[str, str] | None = None
        #: How long this environment's last write to the item took (ms): how late a grant comes back.
        self._write_ms = float(ASSUMED_WRITE_MS)
        #: Whether, when its view shows the window over, another invocation has as a rule opened the next one
        #: already (a busy fleet), so a grant is asked for rather than a window opened: learned from which
        #: of the two last failed. In a busy fleet every environment tried to open each window, and all but
        #: one failed (a write each, 34 a window in the bench).
        self._others_open_windows = True
        #: DynamoDB write units this instance consumed (failed conditional writes are charged too).
        self.write_units = 0.0
        self.writes = 0

    @property
    def _item_key(self) -> dict[str, str]:
        key = self._api_key()
        if self._fingerprint is None or self._fingerprint[0] != key:
            self._fingerprint = (key, key_fingerprint(key))
        return {"pk": f"ratelimit#{self._fingerprint[1]}", "sk": "state"}

    # -- before a call ---------------------------------------------------------------------------------
    def acquire(self) -> Grant | Denial:
        """Take one call from the fleet's budget, or learn when to come back. At most a few writes; none
        when this environment already knows the budget is spent (it stops calling for the batch)."""
        if self._view is None:
            # A new environment reads the item first (read units, not write units): while the fleet's probe is
            # out, a write would fail on the probe's budget (8-16 failed writes in a bench run).
            self._view = self._read()
        if self._view is not None:
            denial = self._denial(self._view, self._now_ms())
            if denial is not None:
                return denial
        for _ in range(4):
            now_ms = self._now_ms()
            counted = self._second_counted(now_ms)
            view = self._view
            # No item yet (the fleet's very first call): no window to ask a grant in, so it is opened at once.
            opening = view is None or (not view.window_open(now_ms) and not self._others_open_windows)
            try:
                item = self._write(**self._grant_update(view, now_ms, counted, opening))
            except _ConditionFailed as failed:
                # Another invocation moved the state on: decide again from what it is now.
                self._view = LimiterState.from_item(failed.item) if failed.item else None
                window_was_open = self._view is not None and self._view.window_open(now_ms)
                if opening == window_was_open:
                    self._others_open_windows = window_was_open
                if self._view is not None:
                    denial = self._denial(self._view, self._now_ms())
                    if denial is not None:
                        return denial
                continue
            self._view = state = LimiterState.from_item(item)
            if state.granted > state.limit:
                # The window was spent: the unit taken is a place in the line (no failed write, no second one).
                return Denial(state.window_reset_ms / 1000.0, "quota", turn=self._turn(state, state.line_after))
            return self._grant(counted)
        # Contention so high that four tries lost: come back in a moment rather than spin.
        return Denial(retry_at=(now_ms + 1000) / 1000.0, reason="contention")

    def recount(self, grant: Grant) -> Grant | Denial | None:
        """Count a granted call again in the second it will reach Picsart in now, when its grant expired
        before the call could start (the write was slow). It keeps its quota unit: one write, and no unit is
        lost to a slow write. A Denial when that second is full (the unit is still the call's: count it
        again then); None when its window has ended, and the unit with it.

        The window is known by its start: an answer confirming it in the meantime moves its reset, not its start.
        """
        now_ms = self._now_ms()
        counted = self._second_counted(now_ms)
        window_start_ms = grant.state.window_start_ms
        view = self._view if self._view and self._view.window_start_ms == window_start_ms else grant.state
        arrival_by_ms = max(now_ms, counted * 1000) + SEND_MARGIN_MS
        if arrival_by_ms >= view.window_reset_ms:
            return None  # it would reach Picsart in the next window, which has not counted it
        names: dict[str, str] = {"#spike": "spike"}
        values: dict[str, Any] = {":start": window_start_ms, ":arrival": arrival_by_ms, ":now": now_ms}
        count, room = self._spike_terms(counted, names, values)
        try:
            item = self._write(
                update=f"SET {count}",
                condition=f"window_start_ms = :start AND window_reset_ms > :arrival AND {room} AND {_NOT_BLOCKED}",
                names=names,
                values=values,
            )
        except _ConditionFailed as failed:
            if not failed.item:
                return None
            self._view = now_view = LimiterState.from_item(failed.item)
            if now_view.window_start_ms != window_start_ms or now_view.window_reset_ms <= arrival_by_ms:
                return None
            if now_view.blocked_until_ms > now_ms:
                return Denial(now_view.blocked_until_ms / 1000.0, "blocked")
            return Denial(float(counted + 1), "spike")
        self._view = LimiterState.from_item(item)
        return self._grant(counted)

    def _grant(self, counted: int) -> Grant:
        """A grant counted in second `counted`: valid while the call reaches Picsart in that second (and in the
        window)."""
        assert self._view is not None
        valid_until_ms = min((counted + 1) * 1000, self._view.window_reset_ms) - SEND_MARGIN_MS
        return Grant(self._view, valid_until=valid_until_ms / 1000.0, valid_from=float(counted))

    def _spike_terms(self, counted: int, names: dict[str, str], values: dict[str, Any]) -> tuple[str, str]:
        """The spike-arrest count a call counted in second `counted` adds, and the room it needs (names and
        values added)."""
        values.update({":one": 1, ":zero": 0, ":spike_max": self._spike})
        names["#counted"] = str(counted)
        count = "#spike.#counted = if_not_exists(#spike.#counted, :zero) + :one"
        return count, "(attribute_not_exists(#spike.#counted) OR #spike.#counted < :spike_max)"

    def known_denial(self) -> Denial | None:
        """The refusal `acquire` would give from what this environment already knows (no read, no write):
        work that cannot go yet is parked before anything is spent on it."""
        return self._denial(self._view, self._now_ms()) if self._view is not None else None

    def _denial(self, view: LimiterState, now_ms: int) -> Denial | None:
        if view.blocked_until_ms > now_ms:
            return Denial(view.blocked_until_ms / 1000.0, "blocked")
        if view.window_open(now_ms) and view.granted >= view.limit:
            return Denial(view.window_reset_ms / 1000.0, "quota")
        counted = self._second_counted(now_ms)
        if view.spike.get(str(counted), 0) >= self._spike:
            return Denial(float(counted + 1), "spike")
        return None

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
            # Before the first answer the window is a probe: no line is planned on its guessed limit.
            return denial.retry_at
        try:
            item = self._write(
                update="SET granted = granted + :one",
                condition="window_reset_ms = :known AND window_reset_ms > :now AND granted >= #limit",
                names={"#limit": "limit"},
                values={":known": view.window_reset_ms, ":now": now_ms, ":one": 1},
            )
        except _ConditionFailed as failed:
            self._view = LimiterState.from_item(failed.item) if failed.item else None
            return denial.retry_at  # the window moved on: come back at the reset, and queue then
        self._view = state = LimiterState.from_item(item)
        return self._turn(state, state.line_after)

    def _turn(self, view: LimiterState, place: int) -> float:
        """When place `place` (from 1) in the line comes, as epoch seconds: a window's limit of places per
        window after this one, spaced by the spike arrest within it. The first place of a window opens it; the
        others come once that write is back (as long as this environment's writes take, and a margin), since
        each arriving before would fail to take a grant in the window, then to open it (a write each)."""
        window_ms = view.window_ms or (view.window_reset_ms - view.window_start_ms)
        windows_ahead, position = divmod(place - 1, view.limit)
        opening_ms = self._write_ms + SEND_MARGIN_MS if position > 0 else 0.0
        return (view.window_reset_ms + windows_ahead * window_ms + opening_ms) / 1000.0 + position / self._spike

    def _second_counted(self, now_ms: int) -> int:
        """The wall-clock second a call granted by a write starting now reaches Picsart in, where its spike
        arrest counts it: this one when the write (as long as this environment's last) leaves time to start
        the call in it, else the next, which the call then waits for."""
        second = now_ms // 1000
        return second if now_ms + self._write_ms + SEND_MARGIN_MS < (second + 1) * 1000 else second + 1

    def _grant_update(self, view: LimiterState | None, now_ms: int, counted: int, opening: bool) -> dict[str, Any]:
        second = now_ms // 1000
        values: dict[str, Any] = {":now": now_ms, ":one": 1}
        names = {"#spike": "spike", "#limit": "limit"}
        if view is None:
            # No item yet (the fleet's first call, which opens the first window): its seconds start with this call.
            values[":spike"] = {str(counted): 1}
            count, room = "#spike = :spike", "attribute_not_exists(#spike)"
        else:
            # The call is counted in its second as the item has it, never as this environment last saw it: a view
            # from before the reset misses the old window's last grants in that second, and writing it back to
            # the item lost them (a spike-arrest 429 in a bench run).
            count, room = self._spike_terms(counted, names, values)
        # A few old seconds per write keep the item small; each name given must be used (DynamoDB refuses
        # unused names), so only those removed are named.
        known_seconds = view.spike if view is not None else {}
        old_seconds = [s for s in known_seconds if int(s) < second - 1][:MAX_SECONDS_REMOVED_PER_WRITE]
        for index, old_second in enumerate(old_seconds):
            names[f"#old{index}"] = old_second
        remove = (" REMOVE " + ", ".join(f"#spike.#old{i}" for i in range(len(old_seconds)))) if old_seconds else ""
        if not opening:
            # A grant in the window that is open, whoever opened it (its condition checks it is). Once the limit
            # is learned a unit beyond it is a place in the line: the write does not fail on the quota, nor on
            # the spike arrest then (no call is made in this second).
            return {
                "update": f"SET granted = granted + :one, {count}{remove}",
                "condition": f"window_reset_ms > :now AND (granted < #limit OR attribute_exists(window_ms)) "
                f"AND ({room} OR granted >= #limit) AND {_NOT_BLOCKED}",
                "names": names,
                "values": values,
            }
        # No window open: open one. Its end is a guess from the last window's length (a short probe window at
        # first) until an answer confirms it.
        values.update({":probe": PROBE_BUDGET, ":probe_ms": PROBE_WINDOW_MS, ":true": True})
        carried, same_window = self._line_carried(view, values)
        return {
            "update": (
                "SET window_reset_ms = :now + if_not_exists(window_ms, :probe_ms), provisional = :true, "
                f"window_start_ms = :now, granted = :one, {count}, #limit = if_not_exists(#limit, :probe), "
                f"{carried}{remove}"
            ),
            "condition": f"(attribute_not_exists(window_reset_ms) OR window_reset_ms <= :now) AND {same_window} "
            f"AND {room} AND {_NOT_BLOCKED}",
            "names": names,
            "values": values,
        }

    @staticmethod
    def _line_carried(view: LimiterState | None, values: dict[str, Any]) -> tuple[str, str]:
        """Moving on to the next window: what it keeps of the line (the window before's line at its opening,
        and its final count as the item has it), and the condition that the item is still in the window
        `view` describes, whose line at opening the view knows exactly (it does not change in a window)."""
        values[":line_before"] = view.line_at_opening if view is not None else 0
        carried = "line_before = :line_before, granted_before = if_not_exists(granted, :zero)"
        values[":zero"] = 0
        if view is None:
            return carried, "attribute_not_exists(window_start_ms)"
        values[":view_start"] = view.window_start_ms
        return carried, "window_start_ms = :view_start"

    # -- after an answer -------------------------------------------------------------------------------
    def observe(self, headers: RateLimitHeaders, throttled: bool, received_at: float | None = None) -> None:
        """Correct the shared state with what an answer said, writing only when it tells something new.

        A late answer from an older window never overwrites newer state: each write is conditional on the
        window it describes.
        """
        now = self._clock() if received_at is None else received_at
        now_ms = int(now * 1000)
        reset = read_reset_time(headers.reset_time, now)
        if reset is None:
            if throttled:
                self._block_until(now_ms + self._floor_ms)
            return
        # Store the reset with the header's precision added: the fleet never opens a window early.
        reset_ms = math.ceil((reset.at + reset.precision) * 1000)
        limit = headers.limit
        used = limit - headers.available if limit is not None and headers.available is not None else None
        if throttled and limit is not None:
            used = limit  # a 429 means this window is spent, whatever the headers say
        view = self._view
        # Whether this answer is one of the window's first (one of those confirms a guessed window), as the
        # environment's view before any retry tells: a failed write's fresh item counts the grants made since.
        confirming = view is not None and (
            view.granted <= CONFIRMING_CALLS or now_ms >= view.window_start_ms + CONFIRMED_WITHIN_MS
        )
        for _ in range(3):
            try:
                update = self._observe_update(
                    view, reset_ms, limit, used, headers.credits, now_ms, confirming=confirming, throttled=throttled
                )
                if update is None:
                    return
                self._view = LimiterState.from_item(self._write(**update))
                return
            except _ConditionFailed as failed:
                view = LimiterState.from_item(failed.item) if failed.item else None
                self._view = view

    def _observe_update(
        self,
        view: LimiterState | None,
        reset_ms: int,
        limit: int | None,
        used: int | None,
        credits: int | None,
        received_ms: int,
        *,
        confirming: bool,
        throttled: bool,
    ) -> dict[str, Any] | None:
        if view is None:
            return None  # no state yet: the next acquire creates it
        # An answer about a window that is over (the call was answered late) says nothing about this one: its
        # count is not this window's. A guessed window is known by its start, a confirmed one by its reset.
        if view.provisional:
            window_over = reset_ms <= view.window_start_ms
        else:
            window_over = reset_ms < view.window_reset_ms - _SAME_WINDOW_MS
        if window_over:
            return None
        if view.provisional and not confirming and not throttled:
            return None  # the answers to the window's first calls confirm it
        values: dict[str, Any] = {":reset": reset_ms, ":false": False}
        names = {"#provisional": "provisional"}
        sets = ["window_reset_ms = :reset", "#provisional = :false"]
        if limit is not None:
            names["#limit"] = "limit"
            values[":limit"] = limit
            sets.append("#limit = :limit")
        if credits is not None:
            values[":credits"] = credits
            sets.append("credits = :credits")
        newer_window = view.provisional or reset_ms > view.window_reset_ms + _SAME_WINDOW_MS
        if newer_window:
            if view.provisional:
                # Confirm the window the fleet opened; an answer from the window before cannot (its reset
                # is before this window's start).
                values[":start"] = view.window_start_ms
                condition = "provisional = :true AND window_start_ms = :start AND window_start_ms < :reset"
                values[":true"] = True
                # Measured from the fleet's opening write, a window seems longer than Picsart's by the time its
                # first call took to arrive (200-650 ms in the bench while writes were slow), and the line's
                # turns windows ahead drifted late by as much per window. The shortest measure is kept, unless
                # the limit changed (a new plan).
                measured = reset_ms - view.window_start_ms
                if view.window_ms is None or measured < view.window_ms or (limit is not None and limit != view.limit):
                    values[":window_ms"] = measured
                    sets.append("window_ms = :window_ms")
                if used is not None and used > view.granted:
                    # Raised only: the fleet's count may have passed Picsart's (grants whose calls have not
                    # arrived yet). Lowered, it let the fleet grant 64 calls in a window of 60 (the bench).
                    values[":used"] = used
                    sets.append("granted = :used")
                    condition += " AND granted < :used"
            else:
                # An answer from a window the fleet has not opened yet (the call crossed the reset). It is a new
                # window: a new start too (grants of the last one are not counted again in it), the line carried.
                values[":known"] = view.window_reset_ms
                carried, same_window = self._line_carried(view, values)
                condition = f"provisional = :false AND window_reset_ms = :known AND {same_window}"
                values[":used"] = used if used is not None else 1
                values[":received"] = received_ms
                sets.extend(["granted = :used", "window_start_ms = :received", carried])
            return {"update": "SET " + ", ".join(sets), "condition": condition, "names": names, "values": values}
        if used is not None and limit is not None and used >= limit > view.granted and view.window_open(self._now_ms()):
            # Picsart says the window is spent and the fleet counts fewer (another client on the same key): it
            # stops calling. A smaller difference is as a rule calls granted after this one that arrived before
            # it, which the fleet has counted already (the write failed, 17-34 times a bench run).
            return {
                "update": "SET #granted = :used",
                "condition": "window_reset_ms = :known AND #granted < :used",
                "names": {"#granted": "granted"},
                "values": {":used": used, ":known": view.window_reset_ms},
            }
        return None

    def _block_until(self, until_ms: int) -> None:
        try:
            item = self._write(
                update="SET #blocked = :until",
                condition="attribute_not_exists(#blocked) OR #blocked < :until",
                names={"#blocked": "blocked_until_ms"},
                values={":until": until_ms},
            )
            self._view = LimiterState.from_item(item)
        except _ConditionFailed as failed:
            self._view = LimiterState.from_item(failed.item) if failed.item else self._view

    # -- DynamoDB --------------------------------------------------------------------------------------
    def _read(self) -> LimiterState | None:
        """The item as it is now (a consistent read)."""
        item = self._table.get_item(Key=self._item_key, ConsistentRead=True).get("Item")
        return LimiterState.from_item(item) if item else None

    def _write(self, update: str, condition: str, names: dict[str, str], values: dict[str, Any]) -> dict[str, Any]:
        self.writes += 1
        started = self._clock()
        try:
            answer = self._table.update_item(
                Key=self._item_key,
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            self._write_ms = (self._clock() - started) * 1000
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            raw: dict[str, Any] = dict(error.response.get("Item") or {})  # type: ignore[call-overload]
            item = {k: _DESERIALIZER.deserialize(v) for k, v in raw.items()} if raw else None
            # DynamoDB charges a failed conditional write like a write.
            self.write_units += write_units_of(item or {})
            raise _ConditionFailed(item) from None
        self._write_ms = (self._clock() - started) * 1000
        item = dict(answer.get("Attributes", {}))
        self.write_units += write_units_of(item)
        return item

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)


_DESERIALIZER = TypeDeserializer()


def write_units_of(item: Mapping[str, Any]) -> float:
    """Write units DynamoDB bills for writing this item: one per started KB (names and values counted).

    Counted from the item rather than read from ConsumedCapacity, which moto reports as 0.5 for any update.
    """
    size = sum(len(name.encode()) + _size_of(value) for name, value in item.items())
    return float(max(1, math.ceil(size / 1024)))


def _size_of(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, int | float) or hasattr(value, "as_tuple"):
        return 21  # DynamoDB numbers take up to 21 bytes
    if isinstance(value, Mapping):
        return 3 + sum(len(str(k).encode()) + _size_of(v) + 1 for k, v in value.items())
    if isinstance(value, list | tuple | set):
        return 3 + sum(_size_of(v) + 1 for v in value)
    if isinstance(value, bytes | bytearray):
        return len(value)
    return len(str(value).encode())


class _ConditionFailed(Exception):
    def __init__(self, item: dict[str, Any] | None) -> None:
        super().__init__("condition failed")
        self.item = item
