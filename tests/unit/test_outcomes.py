"""The table of outcomes: what each Picsart answer means for the job.

Guide rules: 404/406 are deployment faults ("Typographical errors in the URL", missing Accept); 413 "input file
is too big" and 422 "don't pass validations" are not fixed by retrying ("Choosing to disregard ongoing
validation errors could lead to your application being suspended"); 429 means pause; 5xx "unforeseen failures".
"""

from __future__ import annotations

import pytest

from picsart_adapter.outcomes import Outcome, classify

TABLE: list[tuple[int, Outcome]] = [
    (200, Outcome.SUCCESS),
    (202, Outcome.ACCEPTED),
    (400, Outcome.PERMANENT),
    (413, Outcome.PERMANENT),
    (415, Outcome.PERMANENT),
    (422, Outcome.PERMANENT),
    (431, Outcome.PERMANENT),
    (401, Outcome.CONFIGURATION),
    (403, Outcome.CONFIGURATION),
    (404, Outcome.CONFIGURATION),
    (405, Outcome.CONFIGURATION),
    (406, Outcome.CONFIGURATION),
    (402, Outcome.CREDITS),
    (429, Outcome.THROTTLED),
    (408, Outcome.TRANSIENT),
    (500, Outcome.TRANSIENT),
    (502, Outcome.TRANSIENT),
    (503, Outcome.TRANSIENT),
    (504, Outcome.TRANSIENT),
]


@pytest.mark.parametrize(("status", "expected"), TABLE)
def test_status_table(status: int, expected: Outcome) -> None:
    """Guide, "Avoid overlooking errors": every status the spec declares has one meaning (docs/picsart-api.md)."""
    assert classify(status) is expected


@pytest.mark.parametrize("status", [418, 409, 410, 451, 499])
def test_unlisted_4xx_is_permanent(status: int) -> None:
    """Guide: repeated 4xx are not to be retried blindly ("could lead to your application being suspended")."""
    assert classify(status) is Outcome.PERMANENT


@pytest.mark.parametrize("status", [501, 505, 520, 599])
def test_unlisted_5xx_is_transient(status: int) -> None:
    """Guide, "Handling Unspecified Errors": unforeseen server failures may pass (status page incidents)."""
    assert classify(status) is Outcome.TRANSIENT


@pytest.mark.parametrize(
    ("outcome", "retryable"),
    [
        (Outcome.SUCCESS, False),
        (Outcome.ACCEPTED, False),
        (Outcome.PERMANENT, False),
        (Outcome.CONFIGURATION, True),
        (Outcome.CREDITS, True),
        (Outcome.THROTTLED, True),
        (Outcome.TRANSIENT, True),
    ],
)
def test_retryable_flags(outcome: Outcome, retryable: bool) -> None:
    """Guide, 422: validation errors are never resent; rate limits and outages are, after a wait."""
    assert outcome.retryable is retryable


def test_every_outcome_is_reachable_from_a_status() -> None:
    """No outcome in the enum is dead: each is the answer to some status of the table."""
    assert {expected for _, expected in TABLE} == set(Outcome)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirect_is_a_configuration_fault(status: int) -> None:
    """A redirect from the API means a wrong base URL (e.g. http for https): not worth hammering."""
    assert classify(status) is Outcome.CONFIGURATION
