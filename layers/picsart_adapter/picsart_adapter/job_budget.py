"""The job's side of the fleet's rate-limit budget: a grant taken right before the call, short waits for a
budget about to return, recounts of grants that expired in their own write, the job's place in the fleet's
line, and how early work is brought back before its turn."""

from __future__ import annotations

from collections.abc import Callable

from picsart_adapter.job import Job
from picsart_adapter.observability import MetricUnit, metrics
from picsart_adapter.rate_limit import Denial, FleetRateLimiter, Grant
from picsart_adapter.rate_limit.hot_item import GRANT_EXPIRED, ITEM_PRESSURE, throttled_job_due_at
from picsart_adapter.retry_policy import RetryPolicy

__all__ = [
    "ASSUMED_PREPARATION_SECONDS",
    "DELAY_ROUNDING_SECONDS",
    "MAX_PREPARATION_SECONDS",
    "MAX_RECOUNTS",
    "MAX_SHORT_WAITS",
    "SHORT_WAIT_SECONDS",
    "JobBudget",
]

#: A budget that returns sooner than this is waited for in the invocation. A delay-queue hop takes longer
#: (SQS delays are whole seconds, then a receive and an invocation) and costs a message and a write.
SHORT_WAIT_SECONDS = 1.5
#: Short waits in a row before the job is parked (each one ends at a reset or a second's turn).
MAX_SHORT_WAITS = 3
#: How many times a grant that expired during its own (slow) write is counted again before the job waits.
MAX_RECOUNTS = 2
#: SQS delays are whole seconds (rounded up): parked work arrives up to this much after it is due.
DELAY_ROUNDING_SECONDS = 1.0
#: What a job's preparation (reading the object, its records, the circuit) is taken to last until this
#: environment has timed one, and the most that is planned for (a slower one, e.g. a job that first waited
#: for a duplicate, would bring work back so early that it parks again).
ASSUMED_PREPARATION_SECONDS = 0.5
MAX_PREPARATION_SECONDS = 3.0


class JobBudget:
    """Takes the fleet's budget for one job at a time, and times the return of work that must wait for it."""

    def __init__(
        self,
        limiter: FleetRateLimiter,
        retry_policy: RetryPolicy,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        has_time_for: Callable[[float], bool],
    ) -> None:
        self._limiter = limiter
        self._retry_policy = retry_policy
        self._clock = clock
        self._sleep = sleep
        #: Whether the invocation has time left for a wait of so many seconds and one more job.
        self._has_time_for = has_time_for
        #: How long this environment's last job took from being taken up to asking for budget (seconds).
        self._preparation_seconds = ASSUMED_PREPARATION_SECONDS

    def take(self, job: Job) -> Grant | Denial:
        """The fleet's shared budget, taken right before the call so that it reaches Picsart in the second it
        was counted in: no call is made that the quota or the spike arrest would refuse. A budget that returns
        within SHORT_WAIT_SECONDS (the next second, a reset about to happen) is waited for here. A Denial: the
        job waits for the budget elsewhere."""
        self._preparation_seconds = self._clock() - job.taken_up_at
        #: When the last look at the item that may clear the call began.
        looked_at = self._clock()
        decision = self._limiter.acquire()
        #: A unit this job holds whose grant expired during its own (slow) write: it is counted again where
        #: the call will land rather than lost (and a 429 is not worth risking).
        held: Grant | None = None
        recounts = waits = 0
        while True:
            if isinstance(decision, Denial):
                self.join_line(job, decision)
            if isinstance(decision, Grant) and self._clock() > decision.valid_until and recounts < MAX_RECOUNTS:
                held, recounts = decision, recounts + 1
                metrics.add_metric(name="GrantsRecounted", unit=MetricUnit.Count, value=1)
            elif (
                isinstance(decision, Denial)
                and waits < MAX_SHORT_WAITS
                and self.can_wait_until(until := self.wait_target(job, decision))
            ):
                self._sleep(max(0.0, until - self._clock()))
                waits += 1
            else:
                break
            looked_at = self._clock()
            recounted = self._limiter.recount(held) if held is not None else None
            if recounted is None:
                held = None  # its window is over, and the unit with it: a new one is needed
            decision = recounted or self._limiter.acquire()
        if isinstance(decision, Grant) and looked_at < decision.valid_from:
            # Counted in a second that had not begun when it asked: sent before it, it would land in one that did
            # not count it, so it waits for it (or its write took until then).
            if self._clock() < decision.valid_from:
                self._sleep(decision.valid_from - self._clock())
            # A 429 recorded meanwhile holds it until the reset it named: the call looks at the item once more, so
            # that every call is sent straight after a look begun in the second it is counted in
            # (test_a_grant_waiting_for_its_second_is_parked_by_a_429_recorded_meanwhile,
            # test_a_grant_whose_write_lasted_into_its_second_is_held_by_a_429_recorded_meanwhile).
            decision = self._limiter.recheck() or decision
        if isinstance(decision, Grant) and self._clock() > decision.valid_until:
            decision = Denial(self._clock() + 1.0, GRANT_EXPIRED)
        return decision

    @staticmethod
    def wait_target(job: Job, denial: Denial) -> float:
        """When to ask again: when the budget returns, and for quota not before the job's turn in the fleet's
        line, so that the work a reset releases asks in line order, spaced by the spike arrest, rather than
        all at once (all but one of such a crowd would fail to open the window, a write each)."""
        if denial.reason == "quota" and job.turn_at is not None:
            return max(denial.retry_at, job.turn_at)
        return denial.retry_at

    def join_line(self, job: Job, denial: Denial) -> None:
        """Work refused for quota takes a place in the fleet's line (the refusal's own write may have taken it),
        even when the reset is a short wait away: work that waits for the reset and then asks all at once fails,
        all but one, to open the window and then to take a grant in it, two writes each
        (test_work_refused_for_quota_takes_its_place_even_when_the_reset_is_a_short_wait_away)."""
        if denial.reason == "quota" and not job.in_line:
            job.turn_at = self._limiter.place_in_line(denial)
            job.in_line = True

    @property
    def preparation_planned(self) -> float:
        """How long a job taken up here is expected to take before it asks for budget."""
        return min(self._preparation_seconds, MAX_PREPARATION_SECONDS)

    def can_wait_until(self, until: float) -> bool:
        """A wait shorter than a delay-queue hop, with time left in the invocation for it and the call."""
        wait = until - self._clock()
        return wait <= SHORT_WAIT_SECONDS and self._has_time_for(wait)

    def can_wait_once_prepared(self, job: Job, denial: Denial) -> bool:
        """Whether work the budget is known to be spent for may be prepared and then wait in the invocation. Its
        wait starts once it is prepared, as the lead its due time was given assumes: judged from the moment it
        is taken up, work back on time finds its turn too far off and goes round the delay queue again, at once
        when the lead is longer than a short wait
        (test_work_back_on_time_for_its_turn_is_prepared_then_waits_rather_than_going_round_the_queue)."""
        return self.can_wait_until(self.wait_target(job, denial) - self.preparation_planned)

    def due_back_at(self, job: Job, denial: Denial, now: float) -> float:
        """When work refused `denial` is due back: for quota, its place in the fleet's line (taken now if it has
        none) less the lead it needs to be prepared by its turn; for an item under pressure, within a spread that
        widens with each such refusal in a row; otherwise when the budget returns."""
        if denial.reason in ITEM_PRESSURE:
            job.throttled_in_a_row += 1
            return max(denial.retry_at, throttled_job_due_at(now, job.throttled_in_a_row))
        self.join_line(job, denial)
        if (
            denial.reason == "quota"
            and job.turn_at is not None
            and job.turn_at > now
            and job.turn_at >= denial.retry_at
        ):
            # Its place in the fleet's line, still ahead: the window and the moment this job's budget will be
            # there.
            budget_back_at = job.turn_at
        else:
            # For quota: it had a place, and its window had not begun by then (windows start with their first
            # call, so they drift later than planned), whether it came back to find that or learnt it before its
            # turn: it keeps its turn at the head, right after the reset. Due back for a turn the reset has
            # passed, it would be due at once, and go round the queue again and again until the reset was a
            # short wait away (test_work_whose_turn_the_reset_has_passed_is_due_at_the_reset_not_at_once).
            budget_back_at = self._retry_policy.after_budget_returns(denial.retry_at, now)
        lead = 0.0
        if denial.reason == "quota":
            job.turn_at = budget_back_at
            # Due early enough to be prepared (S3 read, records: as long as this environment's last job took)
            # by its turn, whatever SQS's whole-second rounding: it then waits at most DELAY_ROUNDING_SECONDS
            # for its turn, in the invocation.
            lead = self.preparation_planned + DELAY_ROUNDING_SECONDS
        return max(budget_back_at - lead, now)
