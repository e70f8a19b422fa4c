"""When a job that could not finish is tried again.

Guide rules ("Manage rate limit errors effectively"): with a reset time, "wait ... until the time specified by
this header has been reached"; without one, "wait at least one minute", then "increase the wait time
exponentially with each retry"; "Persisting in sending requests while facing rate limitations can lead to the
suspension of your integration".
"""

from __future__ import annotations

import itertools
import random

import pytest

from picsart_adapter.outcomes import Outcome
from picsart_adapter.retry_policy import MAX_BACKOFF_SECONDS, RESET_SPREAD_SECONDS, RetryPolicy

NOW = 1_700_000_000.0
POLICY = RetryPolicy()  # floor 60 s, base 2 s
SEEDS = range(8)


def wait(outcome: Outcome, attempt: int, seed: int, reset_at: float | None = None) -> float:
    return POLICY.due_at(outcome, attempt, NOW, reset_at, rng=random.Random(seed)) - NOW


def test_defaults_are_the_guides_minute() -> None:
    """Guide: "wait at least one minute"."""
    assert POLICY.floor_seconds == 60.0


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("attempt", [1, 3])
def test_throttled_with_future_reset_is_due_at_the_reset_plus_a_small_spread(seed: int, attempt: int) -> None:
    """Guide: wait "until the time specified by this header has been reached" -- not before it, and not a
    backoff on top of it; the spread keeps the fleet's parked work from returning in one spike."""
    reset_at = NOW + 37.0
    due = POLICY.due_at(Outcome.THROTTLED, attempt, NOW, reset_at, rng=random.Random(seed))
    assert reset_at <= due <= reset_at + RESET_SPREAD_SECONDS


def test_throttled_reset_spread_actually_spreads() -> None:
    """Parked work released by one reset does not all come back at the same instant."""
    reset_at = NOW + 10.0
    dues = {POLICY.due_at(Outcome.THROTTLED, 1, NOW, reset_at, rng=random.Random(seed)) for seed in SEEDS}
    assert len(dues) > 1


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("reset_at", [None, NOW, NOW - 5.0])
def test_throttled_without_usable_reset_waits_at_least_the_floor(seed: int, reset_at: float | None) -> None:
    """Guide: "If neither condition applies, it's advisable to wait at least one minute" (a reset time in the
    past is no help either)."""
    assert wait(Outcome.THROTTLED, 1, seed, reset_at) >= 60.0


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5, 6])
def test_throttled_without_reset_grows_exponentially(seed: int, attempt: int) -> None:
    """Guide: "increase the wait time exponentially with each retry". Attempt n waits in
    [floor * 2^(n-1), floor * 2^(n-1) * 1.25]: the ranges of successive attempts do not overlap."""
    step = 60.0 * 2 ** (attempt - 1)
    assert step <= wait(Outcome.THROTTLED, attempt, seed) <= step * 1.25


@pytest.mark.parametrize("seed", SEEDS)
def test_throttled_wait_strictly_increases_with_attempts_for_the_same_draws(seed: int) -> None:
    waits = [wait(Outcome.THROTTLED, attempt, seed) for attempt in range(1, 8)]
    assert all(later > 1.5 * earlier for earlier, later in itertools.pairwise(waits))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5, 6, 7, 8])
def test_transient_backoff_grows_with_attempts_with_full_jitter(seed: int, attempt: int) -> None:
    """Guide, "Handling Unspecified Errors": retry outages with exponential backoff; attempt n waits in
    [base * 2^(n-1) / 2, base * 2^(n-1)]."""
    step = 2.0 * 2 ** (attempt - 1)
    assert step / 2 <= wait(Outcome.TRANSIENT, attempt, seed) <= step


@pytest.mark.parametrize("seed", SEEDS)
def test_transient_wait_increases_with_attempts_for_the_same_draws(seed: int) -> None:
    waits = [wait(Outcome.TRANSIENT, attempt, seed) for attempt in range(1, 10)]
    assert waits == sorted(waits)
    assert waits[-1] > waits[0] * 10


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("attempt", [20, 30, 50])
def test_transient_backoff_is_bounded(seed: int, attempt: int) -> None:
    """A step never exceeds MAX_BACKOFF_SECONDS (a day), whatever the attempt (MAX_ATTEMPTS allows 50)."""
    assert MAX_BACKOFF_SECONDS / 2 <= wait(Outcome.TRANSIENT, attempt, seed) <= MAX_BACKOFF_SECONDS


@pytest.mark.parametrize("seed", SEEDS)
def test_throttled_backoff_is_bounded(seed: int) -> None:
    assert wait(Outcome.THROTTLED, 50, seed) <= MAX_BACKOFF_SECONDS * 1.25


@pytest.mark.parametrize("seed", SEEDS)
def test_floor_and_base_come_from_the_policy(seed: int) -> None:
    """RATE_LIMIT_FLOOR_SECONDS / RETRY_BASE_SECONDS reach the policy."""
    policy = RetryPolicy(floor_seconds=120.0, base_seconds=10.0)
    throttled = policy.due_at(Outcome.THROTTLED, 1, NOW, None, rng=random.Random(seed)) - NOW
    transient = policy.due_at(Outcome.TRANSIENT, 1, NOW, None, rng=random.Random(seed)) - NOW
    assert 120.0 <= throttled <= 150.0
    assert 5.0 <= transient <= 10.0


@pytest.mark.parametrize("outcome", [Outcome.CONFIGURATION, Outcome.CREDITS])
@pytest.mark.parametrize("seed", [0, 1])
def test_configuration_and_credit_faults_wait_at_least_the_floor(outcome: Outcome, seed: int) -> None:
    """Guide, "Avoid overlooking errors" (401/403/404/406, 402): a wrong deployment or an empty balance is
    not fixed by the next second, and hammering gets the integration suspended: at least the floor."""
    assert wait(outcome, 1, seed) >= POLICY.floor_seconds


@pytest.mark.parametrize("outcome", [Outcome.CONFIGURATION, Outcome.CREDITS])
@pytest.mark.parametrize("seed", SEEDS)
def test_configuration_and_credit_faults_wait_far_longer_than_transient_ones(outcome: Outcome, seed: int) -> None:
    """Whatever the exact bound, a configuration or credit fault is not retried on the transient schedule."""
    assert wait(outcome, 1, seed) >= POLICY.floor_seconds / 2
    assert wait(outcome, 1, seed) > wait(Outcome.TRANSIENT, 1, seed)
