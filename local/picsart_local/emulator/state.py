"""Shared gateway state: quota window, spike arrest, credits, fault draws and the call log.

Everything here sits behind one lock. It holds only counters, so the lock is held for microseconds;
image fetching and processing happen outside it and concurrent requests overlap.
"""

from __future__ import annotations

import math
import random
import threading
from collections import deque
from dataclasses import dataclass
from typing import Literal

from .settings import EmulatorSettings, ResetTimeFormat

Throttle = Literal["quota", "spike"]

# Bound on the call log, so that a long-running emulator does not grow without limit.
MAX_CALL_RECORDS = 100_000


@dataclass(frozen=True)
class CallRecord:
    """One request as the emulator saw it.

    ``image_url_path`` is only the path of the ``image_url`` given: the query string of a presigned
    URL is its signature and is never stored. Of the query, only ``X-Amz-Expires`` (the URL's lifetime in
    seconds, not a secret) is kept, as ``image_url_expires``.
    """

    at: float
    method: str
    path: str
    status: int
    correlation_id: str
    tool: str | None
    image_url_path: str | None
    ratelimit_available: int | None
    throttled: Throttle | None
    duration_ms: float
    image_url_expires: int | None = None
    #: The reset the answer's `X-Picsart-RateLimit-Reset-Time` named, as epoch seconds (None: no such header),
    #: so a test can hold the client to the guide's "after a 429, no request until the reset time".
    reset_at: float | None = None


@dataclass(frozen=True)
class RateSnapshot:
    """What the rate-limit headers say about the window at one moment."""

    limit: int
    available: int
    reset_at: float  # epoch seconds


@dataclass(frozen=True)
class Admission:
    """Outcome of the spike, quota and credit checks for one request."""

    snapshot: RateSnapshot
    throttled: Throttle | None
    payment_required: bool
    credit_reserved: bool


@dataclass(frozen=True)
class FaultDraw:
    """Which injected faults hit one request."""

    drop_connection: bool
    slow_answer: bool
    error_500: bool
    error_503: bool
    bare_429: bool


def format_reset_time(reset_at: float, now: float, fmt: ResetTimeFormat) -> str:
    """Write a reset moment as `X-Picsart-RateLimit-Reset-Time` in the configured form.

    Values are rounded up, so that a client waiting until the stated time is never early.
    """
    if fmt == "epoch_ms":
        return str(math.ceil(reset_at * 1000))
    if fmt == "epoch_s":
        return str(math.ceil(reset_at))
    return str(max(1, math.ceil(reset_at - now)))


def named_reset(reset_at: float, now: float, fmt: ResetTimeFormat) -> float:
    """The moment `format_reset_time` names, as epoch seconds (its rounding up included)."""
    if fmt == "epoch_ms":
        return math.ceil(reset_at * 1000) / 1000.0
    if fmt == "epoch_s":
        return float(math.ceil(reset_at))
    return now + max(1, math.ceil(reset_at - now))


class GatewayState:
    """Counters shared by all request threads, and the settings they are judged against."""

    def __init__(self, settings: EmulatorSettings) -> None:
        self._lock = threading.Lock()
        self._settings = settings
        self._rng = random.Random(settings.seed)
        self._credits = settings.credits
        self._window_start: float | None = None
        self._available = settings.quota
        self._spike_counts: dict[int, int] = {}
        self._calls: deque[CallRecord] = deque(maxlen=MAX_CALL_RECORDS)

    @property
    def settings(self) -> EmulatorSettings:
        """The settings in force (an immutable snapshot)."""
        return self._settings

    @property
    def credits(self) -> int:
        """Credits left on the balance."""
        with self._lock:
            return self._credits

    def configure(self, settings: EmulatorSettings) -> None:
        """Swap in new settings, resetting only the state the change makes stale."""
        with self._lock:
            old = self._settings
            self._settings = settings
            if (settings.quota, settings.window_seconds) != (old.quota, old.window_seconds):
                self._window_start = None
                self._available = settings.quota
            if settings.credits != old.credits:
                self._credits = settings.credits
            if settings.seed != old.seed:
                self._rng = random.Random(settings.seed)

    def reset(self) -> None:
        """Forget counters, window, spike bucket and call log; restore credits and the RNG seed."""
        with self._lock:
            settings = self._settings
            self._rng = random.Random(settings.seed)
            self._credits = settings.credits
            self._window_start = None
            self._available = settings.quota
            self._spike_counts = {}
            self._calls.clear()

    def record(self, call: CallRecord) -> None:
        """Append a call to the log."""
        with self._lock:
            self._calls.append(call)

    def calls(self) -> list[CallRecord]:
        """The call log in arrival order (records are immutable, the list is a copy)."""
        with self._lock:
            return sorted(self._calls, key=lambda c: c.at)

    def draw_faults(self) -> FaultDraw:
        """Draw the injected faults for one request.

        Always five draws in a fixed order, so a seeded run gives the same sequence whatever the
        outcomes; a rate of 1.0 always hits because `random()` is below 1.
        """
        with self._lock:
            s = self._settings
            draws = [self._rng.random() for _ in range(5)]
        return FaultDraw(
            drop_connection=draws[0] < s.drop_connection_rate,
            slow_answer=draws[1] < s.slow_answer_rate,
            error_500=draws[2] < s.fault_500_rate,
            error_503=draws[3] < s.fault_503_rate,
            bare_429=draws[4] < s.bare_429_rate,
        )

    def draw_result_fault(self) -> bool:
        """Whether one result download is answered 503 (its own draw, so the API's draws keep their order)."""
        with self._lock:
            return self._rng.random() < self._settings.result_fault_rate

    def snapshot(self, now: float) -> RateSnapshot:
        """The window as it stands, without counting a request."""
        with self._lock:
            return self._snapshot_locked(now)

    def _snapshot_locked(self, now: float) -> RateSnapshot:
        s = self._settings
        if self._window_start is None or now >= self._window_start + s.window_seconds:
            # No window running: the next request would open a full one.
            return RateSnapshot(limit=s.quota, available=s.quota, reset_at=now + s.window_seconds)
        return RateSnapshot(limit=s.quota, available=self._available, reset_at=self._window_start + s.window_seconds)

    def admit(self, now: float, *, charges_credit: bool) -> Admission:
        """Run spike arrest, then the quota, then (for tool calls) reserve one credit.

        Requests rejected by spike arrest or quota consume neither quota nor spike allowance.
        A reserved credit is given back with `refund_credit` if the call does not succeed.
        """
        with self._lock:
            s = self._settings
            # Requests are admitted at their arrival instant, which may be a little out of order across
            # threads: each second keeps its own count.
            second = math.floor(now)
            if self._spike_counts.get(second, 0) >= s.spike_per_second:
                return Admission(self._snapshot_locked(now), "spike", False, False)
            self._spike_counts[second] = self._spike_counts.get(second, 0) + 1
            for old in [k for k in self._spike_counts if k < second - 5]:
                del self._spike_counts[old]

            if self._window_start is None or now >= self._window_start + s.window_seconds:
                self._window_start = now
                self._available = s.quota
            if self._available <= 0:
                return Admission(self._snapshot_locked(now), "quota", False, False)
            self._available -= 1
            snapshot = self._snapshot_locked(now)

            if not charges_credit:
                return Admission(snapshot, None, False, False)
            if self._credits <= 0:
                return Admission(snapshot, None, True, False)
            self._credits -= 1
            return Admission(snapshot, None, False, True)

    def refund_credit(self) -> None:
        """Give back a credit reserved by `admit` for a call that failed."""
        with self._lock:
            self._credits += 1
