"""The scheduled balance check: one `GET /balance` an hour, through the fleet's limiter like any call, keeps the
balance on the fleet's item fresh when no uploads arrive (answers then tell nothing), and finds top-ups an answer
would not show (docs/credits.md).

The call takes one grant from the fleet's budget; a budget back within `MAX_WAIT_SECONDS` (the next second, a
reset about to come) is waited for, a longer refusal ends the check (the next hour tries again: held work then
waits one more hour at most). Its answer tells the limiter where the rate limit stands, like every answer; its
figure is written to the item whatever was stored, and emitted as `CreditsAvailable`, which the credits alarm
watches. `GET /balance` costs no credits (docs/picsart-api.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from picsart_adapter.observability import MetricUnit, logger, metrics
from picsart_adapter.picsart_client import PicsartClient, PicsartResponse, PicsartTransportError
from picsart_adapter.rate_limit import Denial, FleetRateLimiter, Grant
from picsart_adapter.rate_limit.hot_item import GRANT_EXPIRED

__all__ = ["MAX_WAIT_SECONDS", "BalanceCheck", "BalanceResult"]

#: A refusal whose budget returns sooner than this is waited for; a later one ends the check.
MAX_WAIT_SECONDS = 5.0
#: Grants asked for at most: a wait, or a grant that expired in its own write, asks again.
MAX_TRIES = 3


@dataclass(frozen=True)
class BalanceResult:
    """`status`: `checked` (the figure is `credits`), `no-budget` (the fleet's budget was not there), `no-answer`
    or `refused` (Picsart answered an error: `http_status`)."""

    status: str
    credits: int | None = None
    http_status: int | None = None
    picsart_correlation_id: str | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {key: value for key, value in vars(self).items() if value is not None}


class BalanceCheck:
    """One balance check: a grant, the call, its answer recorded."""

    def __init__(
        self,
        limiter: FleetRateLimiter,
        client: PicsartClient,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._limiter = limiter
        self._client = client
        self._clock = clock
        self._sleep = sleep

    def run(self) -> BalanceResult:
        denial = self._take_grant()
        if denial is not None:
            reason = f"the fleet's {denial.reason} budget is spent until {denial.retry_at:.0f}: the next check tries"
            metrics.add_metric(name="BalanceChecksSkipped", unit=MetricUnit.Count, value=1)
            logger.info("balance not checked", extra={"reason": reason})
            return BalanceResult("no-budget", reason=reason)
        sent_at = self._clock()
        try:
            response = self._client.balance()
        except PicsartTransportError as error:
            metrics.add_metric(name="PicsartNoAnswer", unit=MetricUnit.Count, value=1)
            logger.warning("Picsart gave no answer to the balance check", extra={"error": str(error)})
            return BalanceResult("no-answer", reason=str(error))
        received_at = self._clock()
        self._limiter.observe(
            response.rate_limit, throttled=response.status == 429, received_at=received_at, sent_at=sent_at
        )
        metrics.add_metric(name="PicsartCalls", unit=MetricUnit.Count, value=1)
        credits = _balance_of(response)
        if response.status != 200 or credits is None:
            logger.warning(
                "the balance check was refused",
                extra={"http_status": response.status, "error_body": response.raw_body},
            )
            return BalanceResult(
                "refused",
                http_status=response.status,
                picsart_correlation_id=response.correlation_id,
                reason=response.error_detail,
            )
        self._limiter.record_balance(credits, sent_at, received_at)
        metrics.add_metric(name="CreditsAvailable", unit=MetricUnit.Count, value=credits)
        logger.info("balance checked", extra={"credits": credits, "picsart_correlation_id": response.correlation_id})
        return BalanceResult(
            "checked", credits=credits, http_status=200, picsart_correlation_id=response.correlation_id
        )

    def _take_grant(self) -> Denial | None:
        """One grant of the fleet's budget, valid now; the refusal that ends the check otherwise."""
        decision: Grant | Denial = self._limiter.acquire()
        for tries in range(1, MAX_TRIES + 1):
            if isinstance(decision, Grant):
                if self._clock() < decision.valid_from:
                    self._sleep(decision.valid_from - self._clock())  # counted in the second about to begin
                if self._clock() <= decision.valid_until:
                    return None
                if tries < MAX_TRIES:
                    # Expired in its own (slow) write: counted again where the call will land, or a new one.
                    decision = self._limiter.recount(decision) or self._limiter.acquire()
                continue
            wait = decision.retry_at - self._clock()
            if wait > MAX_WAIT_SECONDS or tries == MAX_TRIES:
                return decision
            self._sleep(max(0.0, wait))
            decision = self._limiter.acquire()
        return Denial(self._clock() + 1.0, GRANT_EXPIRED)


def _balance_of(response: PicsartResponse) -> int | None:
    """`{"credits": N}` (docs/picsart-api.md), or the answer's `X-Picsart-Credit-Available` when the body has
    no number."""
    value = (response.body or {}).get("credits")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    return response.rate_limit.credits
