"""When a job that could not finish should be tried again.

- Throttled with a usable reset time: at the reset, plus a small spread so that released work does not
  reach the API as one spike.
- Throttled without one: at least the floor (60 s by default, the guide's "wait at least one minute"),
  doubling with each further rate-limit answer, with jitter.
- A configuration fault or spent credits: when the fleet's circuit lets the next probe through (the
  circuit gives that time), else at least the floor.
- Any other retryable outcome: exponential backoff with full jitter from a small base.
The wait is never slept through in a Lambda: the job goes to the delay queue with this due time.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from picsart_adapter.outcomes import Outcome

#: Spread added after a reset so that the fleet's parked work does not all return in the same second.
RESET_SPREAD_SECONDS = 2.0
#: Upper bound of one backoff step: SQS can carry a longer wait in hops, but a day is plenty.
MAX_BACKOFF_SECONDS = 86_400.0
#: Polls of an asynchronous job's result: the first after a second, doubling up to a minute; after
#: MAX_POLLS answers of "still processing" (about 15 minutes in all) the job is dead-lettered.
FIRST_POLL_SECONDS = 1.0
MAX_POLL_INTERVAL_SECONDS = 60.0
MAX_POLLS = 20
_RNG = random.Random()


@dataclass(frozen=True)
class RetryPolicy:
    floor_seconds: float = 60.0
    base_seconds: float = 2.0
    reset_spread_seconds: float = RESET_SPREAD_SECONDS

    def due_at(
        self,
        outcome: Outcome,
        attempt: int,
        now: float,
        reset_at: float | None = None,
        rng: random.Random | None = None,
    ) -> float:
        """Epoch seconds at which attempt `attempt + 1` may start. `attempt` counts attempts made (>= 1)."""
        draw = (rng or _RNG).random
        exponent = max(0, attempt - 1)
        if outcome is Outcome.THROTTLED:
            if reset_at is not None and reset_at > now:
                return reset_at + draw() * self.reset_spread_seconds
            step = min(self.floor_seconds * 2.0**exponent, MAX_BACKOFF_SECONDS)
            # Never less than the floor; the jitter only spreads the wait above it.
            return now + step + draw() * step * 0.25
        step = min(self.base_seconds * 2.0**exponent, MAX_BACKOFF_SECONDS)
        # Configuration and credit faults are not fixed by the next second: wait for the circuit's probe,
        # or at least the floor.
        if outcome in {Outcome.CONFIGURATION, Outcome.CREDITS}:
            if reset_at is not None and reset_at > now:
                return reset_at + draw() * self.reset_spread_seconds
            step = max(step, self.floor_seconds)
            return now + step + draw() * step * 0.25
        return now + step / 2 + draw() * step / 2

    def after_budget_returns(self, budget_returns_at: float, now: float, rng: random.Random | None = None) -> float:
        """When work the limiter refused may try again: when the budget returns, spread a little so the
        fleet's parked work does not come back as one spike."""
        return max(budget_returns_at, now) + (rng or _RNG).random() * self.reset_spread_seconds

    def poll_due_at(self, polls: int, now: float) -> float:
        """When to ask again for the result of an asynchronous job that has been polled `polls` times."""
        return now + min(FIRST_POLL_SECONDS * 2.0**polls, MAX_POLL_INTERVAL_SECONDS)
