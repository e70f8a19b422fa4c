"""What each Picsart answer means for the job: the one table of outcomes, in one place.

| answer                         | outcome        | what happens                                            |
|--------------------------------|----------------|---------------------------------------------------------|
| 200                            | SUCCESS        | store the result, record success                        |
| 202                            | ACCEPTED       | async tool: keep the transaction id, poll it through    |
|                                |                | the delay queue (a sync tool answering 202: failed)     |
| 400, 413, 415, 422, 431        | PERMANENT      | record status, error body, correlation id; no retry     |
| 401, 403, 404, 405, 406, 3xx   | CONFIGURATION  | the deployment is wrong: open the fleet's circuit, park |
| 402                            | CREDITS        | credits exhausted: the same circuit, park the work      |
| 429                            | THROTTLED      | wait for the reset time (or the 60 s floor), then retry |
| 5xx, 408, timeout, no answer   | TRANSIENT      | exponential backoff with jitter through the queue       |
Work that keeps failing goes to the dead-letter queue with its reason after MAX_ATTEMPTS. A run of 400/422
answers (a bad parameter in the configuration) opens the circuit too (see `circuit`).
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    SUCCESS = "success"
    ACCEPTED = "accepted"
    PERMANENT = "permanent"
    CONFIGURATION = "configuration"
    CREDITS = "credits"
    THROTTLED = "throttled"
    TRANSIENT = "transient"

    @property
    def retryable(self) -> bool:
        return self in {Outcome.CONFIGURATION, Outcome.CREDITS, Outcome.THROTTLED, Outcome.TRANSIENT}


_BY_STATUS: dict[int, Outcome] = {
    200: Outcome.SUCCESS,
    202: Outcome.ACCEPTED,
    400: Outcome.PERMANENT,
    413: Outcome.PERMANENT,
    415: Outcome.PERMANENT,
    422: Outcome.PERMANENT,
    431: Outcome.PERMANENT,
    401: Outcome.CONFIGURATION,
    403: Outcome.CONFIGURATION,
    404: Outcome.CONFIGURATION,
    405: Outcome.CONFIGURATION,
    406: Outcome.CONFIGURATION,
    402: Outcome.CREDITS,
    408: Outcome.TRANSIENT,
    429: Outcome.THROTTLED,
}


def classify(status: int) -> Outcome:
    """The outcome of an HTTP status. Statuses the table does not name are never ignored: an unknown
    4xx fails the job permanently (retrying cannot fix a request Picsart refuses), any other is transient."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if 400 <= status < 500:
        return Outcome.PERMANENT
    if 300 <= status < 400:
        return Outcome.CONFIGURATION  # a redirect means a wrong base URL (e.g. http for https)
    return Outcome.TRANSIENT
