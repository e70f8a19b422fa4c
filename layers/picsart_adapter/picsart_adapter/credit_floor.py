"""A rule's credit floor: work under a rule whose floor the fleet's balance has reached waits, without a call.

A rule may keep the last credits for others (`"credit_floor": 500`: it runs while the balance is above 500). The
balance is the figure on the fleet's limiter item (`rate_limit.credits`), checked twice, neither time at the cost
of a write (docs/credits.md):

- **before the grant**, on this environment's view of the item (as its last grant or answer returned it, read
  again when older than `VIEW_MAX_AGE_SECONDS`): work whose floor is reached is parked with no budget spent;
- **after the grant**, on the item as the grant's own write returned it: a figure that reached the floor since
  the view was taken holds the work there, the unit unused (as a probe's turn that finds no budget).

So a call is made under a reached floor only when its grant was written before the answer that showed the floor
reached (`rate_limit.credits` writes every answer that crosses a floor): the calls in flight at that moment
(test_a_call_is_made_under_a_reached_floor_only_when_granted_before_the_crossing_was_written).
"""

from __future__ import annotations

from dataclasses import dataclass

from picsart_adapter.job import Job
from picsart_adapter.rate_limit import FleetRateLimiter, LimiterState
from picsart_adapter.rules import Rule

__all__ = ["VIEW_MAX_AGE_SECONDS", "CreditFloor", "FloorReached", "floor_reached"]

#: The oldest view of the item a hold is decided on (and never older than the hold's wait): older, the item is
#: read again (read units, no write), so an environment that only holds work still sees a top-up. Held work
#: waits `CREDIT_FLOOR_HOLD_SECONDS` (config.py) before it looks again: a top-up on the item (an answer of
#: another rule's call, the hourly balance check, or the balance function invoked by hand after a top-up)
#: releases it within that wait and a delay-queue hop.
VIEW_MAX_AGE_SECONDS = 10.0


def floor_reached(floor: int | None, credits: int | None) -> bool:
    """Whether a rule with `floor` holds its work at a balance of `credits`: at or below the floor. No floor, or
    no figure known yet (no answer or balance check has told one): it runs."""
    return floor is not None and credits is not None and credits <= floor


@dataclass(frozen=True)
class FloorReached:
    """The job's rule keeps the last `floor` credits, and the fleet knows `credits`."""

    rule: str
    floor: int
    credits: int

    @property
    def reason(self) -> str:
        return f'credit floor: {self.credits} credits left, rule "{self.rule}" keeps the last {self.floor}'


class CreditFloor:
    """The floor checks of one environment, from the fleet limiter's item."""

    def __init__(self, limiter: FleetRateLimiter, hold_seconds: float) -> None:
        self._limiter = limiter
        self._max_age = min(VIEW_MAX_AGE_SECONDS, hold_seconds)

    def before_grant(self, job: Job) -> FloorReached | None:
        """The floor reached as the view of the item (at most VIEW_MAX_AGE_SECONDS old) shows, or None. A rule
        without a floor costs nothing here."""
        rule = self._floored_rule(job)
        return self._reached(rule, self._limiter.known_credits(self._max_age)) if rule else None

    def after_grant(self, job: Job, granted: LimiterState) -> FloorReached | None:
        """The floor reached as the grant's own write found the item, or None."""
        rule = self._floored_rule(job)
        return self._reached(rule, granted.credits) if rule else None

    @staticmethod
    def _floored_rule(job: Job) -> Rule | None:
        """The job's rule when it has a floor and the job's next call costs credits: a poll of work Picsart
        accepted is free, and already paid for (test_a_poll_is_never_held_by_the_floor)."""
        rule = job.rule
        if rule is None or rule.credit_floor is None or job.transaction_id is not None:
            return None
        return rule

    @staticmethod
    def _reached(rule: Rule, credits: int | None) -> FloorReached | None:
        floor = rule.credit_floor
        if floor is None or credits is None or not floor_reached(floor, credits):
            return None
        return FloorReached(rule.name, floor, credits)
