"""The bench's numbers, from what was recorded: pure functions, so each definition is tested on its own.

Definitions (times are epoch seconds):
- makespan: from the first upload (its S3 write) to the last output written.
- floor: the least time Picsart's quota allows from the first call to the last answer, for C calls (one per
  upload; one per step of each upload for the pipeline) under Q calls per fixed window of W s and at most S
  calls per wall-clock second: ``(ceil(C/Q) - 1) * W`` (the last window cannot open earlier)
  ``+ max(0, ceil(r/S) - 2)`` (its r calls span at least that many whole seconds) ``+ t_call`` (the last
  call's own duration: the median duration of the run's successful calls, as the emulator measured them). It
  leaves out what no strategy can skip either way — the notification, reading the object, storing the result
  — which is in the makespan, so the ratio makespan/floor is slightly above 1 even for a perfect limiter.
- calls: tool calls the emulator received; http_429: those answered 429 (quota or spike arrest).
- http_429_after_first_answer: 429s that arrived after the first answer of the window they fell in had
  been received (from then on the fleet could know the window's state).
- calls_wasted: calls that did not produce the one useful result of an upload: answered 429 or another
  error, or repeated after that upload's first success.
- duplicate_calls: successful calls for an upload (object version) that already had one.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Call:
    """One tool call as the emulator recorded it."""

    at: float  # arrival, epoch seconds
    status: int  # 0: dropped
    duration_s: float
    image: str | None  # path of the image_url: which upload the call was for
    throttled: str | None = None  # "quota", "spike" or None

    @property
    def answered_at(self) -> float:
        return self.at + self.duration_s


def floor_seconds(calls: int, quota: int, window_s: float, spike_per_second: int, call_s: float) -> float:
    """The least time from the first call to the last answer the quota allows (module docstring)."""
    if calls <= 0:
        return 0.0
    windows = math.ceil(calls / quota)
    in_last = calls - (windows - 1) * quota
    return (windows - 1) * window_s + max(0, math.ceil(in_last / spike_per_second) - 2) + call_s


def windows(calls: Sequence[Call], window_s: float) -> list[tuple[float, list[Call]]]:
    """The emulator's fixed windows: (start, calls in it). A window opens at the first call after the
    previous one ended that reached the quota check (spike-arrested calls never do)."""
    found: list[tuple[float, list[Call]]] = []
    for call in sorted(calls, key=lambda c: c.at):
        opens = call.throttled != "spike" and (not found or call.at >= found[-1][0] + window_s)
        if opens:
            found.append((call.at, []))
        if found and call.at < found[-1][0] + window_s:
            found[-1][1].append(call)
    return found


@dataclass(frozen=True)
class MakespanParts:
    """Where a run's time went, beyond the windows the quota imposes: makespan = to_first_call +
    (windows - 1) * W + idle_after_resets + last_window + after_last_call."""

    #: First upload to the first call's arrival (notification, cold start, reading, the first grant).
    to_first_call_s: float
    #: Summed over the windows: from a window's end to the next window's first call, when the quota lay idle.
    idle_after_resets_s: float
    #: The last window's first call to its last call.
    last_window_s: float
    #: The last call's arrival to the last output written (the call itself and storing its result).
    after_last_call_s: float


def makespan_parts(calls: Sequence[Call], start: float, end: float, window_s: float) -> MakespanParts | None:
    """The makespan split as MakespanParts, from the emulator's windows; None without calls."""
    opened = windows(calls, window_s)
    if not opened:
        return None
    starts = [at for at, _ in opened]
    last_call = max(call.at for call in calls)
    return MakespanParts(
        to_first_call_s=starts[0] - start,
        idle_after_resets_s=sum(later - (earlier + window_s) for earlier, later in itertools.pairwise(starts)),
        last_window_s=last_call - starts[-1],
        after_last_call_s=end - last_call,
    )


def late_429s(calls: Sequence[Call], window_s: float) -> int:
    """429s that arrived after the first answer of their window had been received."""
    late = 0
    for _, members in windows(calls, window_s):
        first_answer = min(call.answered_at for call in members)
        late += sum(1 for call in members if call.status == 429 and call.at > first_answer)
    return late


def successes_by_image(calls: Iterable[Call]) -> dict[str | None, int]:
    counts: dict[str | None, int] = {}
    for call in calls:
        if call.status == 200:
            counts[call.image] = counts.get(call.image, 0) + 1
    return counts


def duplicate_calls(calls: Iterable[Call]) -> int:
    return sum(count - 1 for count in successes_by_image(calls).values())


def calls_wasted(calls: Sequence[Call]) -> int:
    """Every call but the first success of each upload."""
    return len(calls) - len(successes_by_image(calls))


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float | None:
    return percentile(values, 0.5)


@dataclass(frozen=True)
class Second:
    """Calls that arrived in one second of the run (counted from the first upload)."""

    second: int
    ok: int
    throttled: int
    other: int


def per_second(calls: Iterable[Call], start: float, end: float | None = None) -> list[Second]:
    """Calls per wall-clock second (the seconds the spike arrest counts in), numbered from the second of
    `start`; every second listed (zeros too) up to the last call or `end`."""
    counts: dict[int, list[int]] = {}
    for call in calls:
        second = math.floor(call.at) - math.floor(start)
        row = counts.setdefault(second, [0, 0, 0])
        row[0 if call.status == 200 else 1 if call.status == 429 else 2] += 1
    last = max([*counts, math.floor(end) - math.floor(start) if end is not None else 0, 0])
    first = min([*counts, 0])
    return [Second(s, *counts.get(s, [0, 0, 0])) for s in range(first, last + 1)]


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator
