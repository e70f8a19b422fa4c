"""A circuit breaker for the whole fleet, in DynamoDB: faults no retry can fix stop every invocation at once.

The troubleshooting guide warns that ignoring repeated 4xx answers can get an integration suspended. So when
Picsart answers 401/403/404/405/406 (the deployment is wrong), 402 (the credits are spent), or a run of
400/422 answers shows that the configured parameters are refused, one conditional write opens the circuit:
no invocation calls Picsart while it is open, and their work waits in the delay queue. When the probe time
comes, one invocation (the one that wins a conditional write) makes a single probe call. A success closes
the circuit. An answer that shows the fault is still there keeps it open and doubles the wait, up to a cap.

The item (pk `circuit#<sha256 of the key>`, sk `state`; the key itself is never stored):
  state              `open` (absent or `closed`: calls go ahead)
  reason, http_status, picsart_correlation_id, opened_at   why it opened, for the alarm and for reports
  probe_at_ms        when the next probe call may be made
  probe_lease_ms     a probe is in flight until then (one at a time; a crashed probe's lease runs out)
  failed_probes      probes that found the fault still there (each doubles the wait)
  validation_streak  consecutive 400/422 answers while closed; a success resets it

Reads are eventually consistent: a call may slip through within a second of the circuit opening, which is
not "keeps calling", and it halves the cost of the read every call makes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from picsart_adapter.conditional_write import update_item
from picsart_adapter.outcomes import Outcome
from picsart_adapter.rate_limit import key_fingerprint
from picsart_adapter.rate_limit.hot_item import is_throttle, throttled_denial

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

#: Statuses that count towards the validation streak: the request as configured is refused.
VALIDATION_STATUSES = frozenset({400, 422})
OPEN = "open"
CLOSED = "closed"


@dataclass(frozen=True)
class Closed:
    """Calls go ahead. `validation_streak` is the run of validation failures so far."""

    validation_streak: int = 0


@dataclass(frozen=True)
class Probe:
    """The circuit is open and this call is the one probe; `lease_ms` identifies it."""

    lease_ms: int


@dataclass(frozen=True)
class Open:
    """No call now: the circuit is open until at least `retry_at` (epoch seconds)."""

    retry_at: float
    reason: str


Admission = Closed | Probe | Open


@dataclass(frozen=True)
class Tripped:
    """After an answer: the circuit is open, and calls wait until `probe_at` (epoch seconds)."""

    probe_at: float
    reason: str
    #: This answer opened it (the CircuitOpened metric and its alarm count these).
    opened_now: bool = False


@dataclass(frozen=True)
class CircuitSettings:
    #: First wait before a probe (the guide's minute), doubled for each failed probe up to the cap.
    probe_seconds: float = 60.0
    max_probe_seconds: float = 900.0
    #: Consecutive 400/422 answers that open the circuit.
    validation_failure_threshold: int = 10
    #: How long one probe may take before another invocation may probe instead (a crashed probe).
    probe_lease_seconds: float = 90.0


class FleetCircuit:
    """The fleet's circuit for one API key. One instance per execution environment."""

    def __init__(
        self,
        table: Table,
        api_key: Callable[[], str],
        settings: CircuitSettings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._table = table
        self._api_key = api_key
        self._settings = settings or CircuitSettings()
        self._clock = clock

    @property
    def _item_key(self) -> dict[str, str]:
        return {"pk": f"circuit#{key_fingerprint(self._api_key())}", "sk": "state"}

    # -- before a call ---------------------------------------------------------------------------------
    def admit(self) -> Admission:
        """May this invocation call Picsart now? One read while closed; one conditional write to probe. The item
        throttled by DynamoDB (every attempt reads it): no call, the job waits a short jittered while, as for the
        limiter's item (test_a_throttled_circuit_read_holds_the_job_without_a_call)."""
        try:
            item = self._table.get_item(Key=self._item_key).get("Item") or {}
        except ClientError as error:
            if not is_throttle(error):
                raise
            denial = throttled_denial(self._clock(), "circuit read")
            return Open(denial.retry_at, "the circuit item is throttled by DynamoDB (the circuit is not open)")
        if item.get("state") != OPEN:
            return Closed(_int(item.get("validation_streak")))
        now_ms = self._now_ms()
        reason = str(item.get("reason", "circuit open"))
        probe_at_ms = _int(item.get("probe_at_ms"))
        lease_ms = _int(item.get("probe_lease_ms"))
        if probe_at_ms > now_ms:
            return Open(probe_at_ms / 1000.0, reason)
        if lease_ms > now_ms:
            return Open(lease_ms / 1000.0, reason)  # another invocation's probe is in flight
        new_lease_ms = now_ms + int(self._settings.probe_lease_seconds * 1000)
        if self._update(
            "SET probe_lease_ms = :lease",
            "#state = :open AND probe_at_ms <= :now "
            "AND (attribute_not_exists(probe_lease_ms) OR probe_lease_ms <= :now)",
            {":lease": new_lease_ms, ":open": OPEN, ":now": now_ms},
        ):
            return Probe(new_lease_ms)
        return Open(new_lease_ms / 1000.0, reason)  # another invocation won the probe

    # -- after an answer -------------------------------------------------------------------------------
    def record(
        self,
        admission: Admission,
        outcome: Outcome | None,
        http_status: int | None,
        reason: str,
        correlation_id: str | None = None,
    ) -> Tripped | None:
        """Tell the circuit what the call admitted by `admission` got (`outcome` None: no answer).
        Returns how the circuit stands when this answer keeps it (or leaves it) open, None otherwise."""
        status = http_status or 0
        fault = outcome in {Outcome.CONFIGURATION, Outcome.CREDITS}
        validation_failure = outcome is Outcome.PERMANENT and status in VALIDATION_STATUSES
        if isinstance(admission, Probe):
            if outcome is Outcome.SUCCESS:
                self._close(admission)
                return None
            if fault or validation_failure:
                return self._probe_failed(admission, status, reason, correlation_id)
            # Throttled, a server error or no answer: the probe proved nothing. Another may try soon.
            self._release(admission)
            return None
        if fault:
            return self._open(status, reason, correlation_id)
        if validation_failure:
            streak = self._count_validation_failure()
            if streak >= self._settings.validation_failure_threshold:
                return self._open(status, f"{streak} validation failures in a row; last: {reason}", correlation_id)
            return None
        if outcome is Outcome.SUCCESS and isinstance(admission, Closed) and admission.validation_streak:
            self._update("SET validation_streak = :zero", "attribute_exists(pk)", {":zero": 0})
        return None

    def state(self) -> dict[str, Any]:
        """The stored state, for reports (strongly consistent)."""
        return dict(self._table.get_item(Key=self._item_key, ConsistentRead=True).get("Item") or {})

    def _open(self, status: int, reason: str, correlation_id: str | None) -> Tripped:
        """Open the circuit unless it is open already (the first invocation to see the fault writes)."""
        now_ms = self._now_ms()
        probe_at_ms = now_ms + int(self._settings.probe_seconds * 1000)
        opened = self._update(
            "SET #state = :open, reason = :reason, http_status = :status, picsart_correlation_id = :cid, "
            "opened_at = :opened_at, probe_at_ms = :probe_at, failed_probes = :zero, validation_streak = :zero "
            "REMOVE probe_lease_ms",
            "attribute_not_exists(#state) OR #state <> :open",
            {
                ":open": OPEN,
                ":reason": reason[:1000],
                ":status": status,
                ":cid": correlation_id or "",
                ":opened_at": _iso(now_ms),
                ":probe_at": probe_at_ms,
                ":zero": 0,
            },
        )
        if opened:
            return Tripped(probe_at_ms / 1000.0, reason, opened_now=True)
        current = self.state()
        probe_at_ms = _int(current.get("probe_at_ms")) or probe_at_ms  # the circuit was opened by another
        return Tripped(probe_at_ms / 1000.0, str(current.get("reason", reason)))

    def _probe_failed(self, probe: Probe, status: int, reason: str, correlation_id: str | None) -> Tripped:
        item = self.state()
        failed = _int(item.get("failed_probes")) + 1
        wait = min(self._settings.probe_seconds * 2.0**failed, self._settings.max_probe_seconds)
        probe_at_ms = self._now_ms() + int(wait * 1000)
        self._update(
            "SET failed_probes = :failed, probe_at_ms = :probe_at, reason = :reason, http_status = :status, "
            "picsart_correlation_id = :cid REMOVE probe_lease_ms",
            "#state = :open AND probe_lease_ms = :lease",
            {
                ":failed": failed,
                ":probe_at": probe_at_ms,
                ":reason": reason[:1000],
                ":status": status,
                ":cid": correlation_id or "",
                ":open": OPEN,
                ":lease": probe.lease_ms,
            },
        )
        return Tripped(probe_at_ms / 1000.0, reason)

    def _close(self, probe: Probe) -> None:
        self._update(
            "SET #state = :closed, failed_probes = :zero, validation_streak = :zero, closed_at = :now "
            "REMOVE probe_lease_ms",
            "#state = :open AND probe_lease_ms = :lease",
            {":closed": CLOSED, ":zero": 0, ":now": _iso(self._now_ms()), ":open": OPEN, ":lease": probe.lease_ms},
        )

    def _release(self, probe: Probe) -> None:
        self._update(
            "REMOVE probe_lease_ms",
            "#state = :open AND probe_lease_ms = :lease",
            {":open": OPEN, ":lease": probe.lease_ms},
        )

    def _count_validation_failure(self) -> int:
        answer = self._table.update_item(
            Key=self._item_key,
            UpdateExpression="ADD validation_streak :one",
            ExpressionAttributeValues={":one": 1},
            ReturnValues="UPDATED_NEW",
        )
        return _int(answer.get("Attributes", {}).get("validation_streak")) or 1

    def _update(self, expression: str, condition: str, values: dict[str, Any]) -> bool:
        """One conditional write; False when the condition did not hold (another invocation moved first).
        `#state` is named only where used (DynamoDB refuses an unused name)."""
        names = {"#state": "state"} if "#state" in expression or "#state" in condition else None
        return update_item(self._table, self._item_key, expression, condition, names, values).written

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)


def _int(value: object) -> int:
    """A number attribute (DynamoDB gives Decimals), 0 when absent."""
    return int(value) if isinstance(value, int | float | Decimal | str) else 0


def _iso(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
