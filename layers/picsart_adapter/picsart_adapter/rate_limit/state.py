"""The fleet's limiter item, and what follows from it alone: pure calculations, no reads, no writes.

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
  credits          the balance as the fleet knows it: the balance check's figure, or an answer's
                   X-Picsart-Credit-Available when it matters (`rate_limit.credits`; each answer's value is a metric)
  credits_at_ms    when that figure was taken
  line_before, granted_before   the window before's line at its opening and its final count, copied by the
                   write that opens this window (DynamoDB reads `granted` as it is before that write, so the
                   opener needs no exact view of it). From them, the fleet's line of work refused for quota as
                   this window opened: the line before, and the refusals of the window before, less that
                   window's limit (the places this window is for). A refusal in this window takes the next
                   place, `line at opening + granted - limit`, and is parked until its place's window and
                   second, so released work does not all come back at the next reset only to be refused again
                   (test_work_refused_for_quota_queues_for_the_windows_ahead).

Times are epoch milliseconds (`now_ms`) unless a name says otherwise; what a caller acts on (`Grant`,
`Denial`) is in epoch seconds.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: Picsart's spike arrest (troubleshooting guide): requests per second, separate from the quota.
SPIKE_ARREST_PER_SECOND = 300
#: Calls allowed while the limit is unknown: one probe, whose answer tells the fleet the limit
#: (test_first_call_is_a_probe_and_its_answer_tells_the_fleet_the_limit).
PROBE_BUDGET = 1
#: A granted call starts at least this long before its counted second (or its window) ends: its way to
#: Picsart's gateway. A smaller margin lets a call on a loaded machine land in the next, full second (a 429).
SEND_MARGIN_MS = 250
#: How long a grant's write is taken to last until this environment has timed one: a call is counted in the
#: second it can still start in once the write is back, so each call counts in exactly one second.
ASSUMED_WRITE_MS = 250
#: Old spike-arrest seconds dropped from the item by one grant.
MAX_SECONDS_REMOVED_PER_WRITE = 8
#: A guessed window is confirmed by the answers to its first few calls: the answers to later ones would, as a
#: rule, only find it confirmed already (a failed write each). Any answer confirms a window still a guess
#: this long after it opened (when its first calls' answers tell nothing: no headers, no answer).
#: (test_a_guessed_window_is_confirmed_by_its_first_calls_answers_not_by_every_one,
#: test_a_guess_its_first_calls_did_not_confirm_is_confirmed_by_a_later_answer)
CONFIRMING_CALLS = 3
CONFIRMED_WITHIN_MS = 3_000
#: How long a probe's window is assumed to last when nothing is known yet.
PROBE_WINDOW_MS = 2_000


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
    credits: int | None = None
    credits_at_ms: int = 0

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
            credits=int(item["credits"]) if item.get("credits") is not None else None,
            credits_at_ms=number("credits_at_ms"),
        )

    @property
    def learned(self) -> bool:
        """Whether an answer has told the window's limit and length (before that, one probe at a time)."""
        return self.window_ms is not None

    @property
    def line_at_opening(self) -> int:
        """Places waiting for the windows after this one when it opened
        (test_opening_a_window_moves_the_line_on_by_its_limit, test_an_empty_line_starts_again_at_the_next_window)."""
        return max(0, self.line_before + max(0, self.granted_before - self.limit) - self.limit)

    @property
    def line_after(self) -> int:
        """Places waiting for the windows after this one: the line at its opening, and its own refusals."""
        return self.line_at_opening + max(0, self.granted - self.limit)

    def window_open(self, now_ms: int) -> bool:
        return self.window_reset_ms > now_ms

    def confirming_answer(self, now_ms: int) -> bool:
        """Whether an answer received at `now_ms` is one of the window's first (one of those confirms a guessed
        window): the window has granted at most `CONFIRMING_CALLS`, or it opened `CONFIRMED_WITHIN_MS` ago."""
        return self.granted <= CONFIRMING_CALLS or now_ms >= self.window_start_ms + CONFIRMED_WITHIN_MS


@dataclass(frozen=True)
class Grant:
    """Go ahead: one call is the fleet's, if it starts between `valid_from` and `valid_until` (epoch seconds).

    The grant is counted in the one second the call should reach Picsart in, which Picsart's spike arrest
    counts it in too: a call started earlier (its write came back before the second began) waits for it,
    and one started later (a slow write, a paused process) could land in a second, or a window, that did not
    count it (test_a_call_granted_too_late_for_its_second_counts_in_the_next_only_and_waits_for_it).
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


def second_counted(now_ms: int, write_ms: float) -> int:
    """The wall-clock second a call granted by a write starting at `now_ms` reaches Picsart in, where its spike
    arrest counts it: this one when the write (taking `write_ms`) leaves time to start the call in it, else the
    next, which the call then waits for (test_a_call_early_in_its_second_counts_in_that_second_alone,
    test_how_long_writes_take_decides_which_second_a_call_counts_in)."""
    second = now_ms // 1000
    return second if now_ms + write_ms + SEND_MARGIN_MS < (second + 1) * 1000 else second + 1


def grant_in(view: LimiterState, counted: int) -> Grant:
    """A grant counted in second `counted`: valid while the call reaches Picsart in that second (and in the
    window)."""
    valid_until_ms = min((counted + 1) * 1000, view.window_reset_ms) - SEND_MARGIN_MS
    return Grant(view, valid_until=valid_until_ms / 1000.0, valid_from=float(counted))


def denial_from(view: LimiterState, now_ms: int, write_ms: float, spike_per_second: int) -> Denial | None:
    """The refusal `view` already implies at `now_ms`, if any: blocked, the window's quota spent, or the second
    a call would count in full."""
    if view.blocked_until_ms > now_ms:
        return Denial(view.blocked_until_ms / 1000.0, "blocked")
    if view.window_open(now_ms) and view.granted >= view.limit:
        return Denial(view.window_reset_ms / 1000.0, "quota")
    counted = second_counted(now_ms, write_ms)
    if view.spike.get(str(counted), 0) >= spike_per_second:
        return Denial(float(counted + 1), "spike")
    return None


def turn(view: LimiterState, place: int, write_ms: float, spike_per_second: int) -> float:
    """When place `place` (from 1) in the line comes, as epoch seconds: a window's limit of places per
    window after this one, spaced by the spike arrest within it. The first place of a window opens it; the
    others come once that write is back (`write_ms`, as long as this environment's writes take, and a margin),
    since each arriving before would fail to take a grant in the window, then to open it (a write each)
    (test_the_places_after_a_windows_first_come_once_its_opening_write_is_back)."""
    window_ms = view.window_ms or (view.window_reset_ms - view.window_start_ms)
    windows_ahead, position = divmod(place - 1, view.limit)
    opening_ms = write_ms + SEND_MARGIN_MS if position > 0 else 0.0
    return (view.window_reset_ms + windows_ahead * window_ms + opening_ms) / 1000.0 + position / spike_per_second
