"""The balance check (docs/credits.md): one grant of the fleet's budget, one `GET /balance`, its answer told to
the limiter like any answer, its figure on the item and in `CreditsAvailable`; no budget, no call."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from picsart_adapter.balance_check import MAX_WAIT_SECONDS, BalanceCheck
from picsart_adapter.observability import metrics
from picsart_adapter.picsart_client import PicsartResponse, PicsartTransportError, RateLimitHeaders
from picsart_adapter.rate_limit import Denial, Grant, LimiterState
from tests.fakes import NOW, Clock, FakeLimiter, answer, fresh_metrics

HEADERS = {"X-Picsart-Credit-Available": "4321", "X-Picsart-RateLimit-Limit": "500"}


@pytest.fixture(autouse=True)
def _clear_metrics() -> Iterator[None]:
    yield from fresh_metrics()


@dataclass
class BalanceLimiter(FakeLimiter):
    balances: list[tuple[int, float, float]] = field(default_factory=list)
    sent: list[float | None] = field(default_factory=list)

    def record_balance(self, balance: int, sent_at: float, received_at: float) -> None:
        self.balances.append((balance, sent_at, received_at))

    def observe(
        self,
        headers: RateLimitHeaders,
        throttled: bool,
        received_at: float | None = None,
        sent_at: float | None = None,
    ) -> None:
        super().observe(headers, throttled, received_at, sent_at)
        self.sent.append(sent_at)


class BalanceClient:
    def __init__(self, reply: PicsartResponse | Exception) -> None:
        self.reply = reply
        self.calls = 0

    def balance(self) -> PicsartResponse:
        self.calls += 1
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply


def check(limiter: BalanceLimiter, client: BalanceClient, clock: Clock) -> BalanceCheck:
    return BalanceCheck(cast(Any, limiter), cast(Any, client), clock=clock, sleep=clock.sleep)


def test_one_grant_one_call_and_the_figure_on_the_item_and_in_the_metric() -> None:
    clock = Clock(NOW)
    limiter, client = BalanceLimiter(), BalanceClient(answer(200, {"credits": 4321}, HEADERS))
    result = check(limiter, client, clock).run()
    assert (result.status, result.credits, result.http_status) == ("checked", 4321, 200)
    assert (limiter.acquired, client.calls) == (1, 1)
    ((headers, throttled),) = limiter.observed
    assert (headers.credits, headers.limit, throttled) == (4321, 500, False), "its headers, like any answer's"
    assert limiter.sent == [NOW]
    assert limiter.balances == [(4321, NOW, NOW)]
    assert metrics.metric_set["CreditsAvailable"]["Value"] == [4321.0]


def test_a_budget_far_off_ends_the_check_without_a_call() -> None:
    clock = Clock(NOW)
    limiter = BalanceLimiter(denial=Denial(NOW + MAX_WAIT_SECONDS + 1, "quota"))
    client = BalanceClient(answer(200, {"credits": 1}))
    result = check(limiter, client, clock).run()
    assert result.status == "no-budget"
    assert "quota" in str(result.reason)
    assert (client.calls, limiter.balances, clock.now) == (0, [], NOW), "no call, no wait"
    assert "BalanceChecksSkipped" in metrics.metric_set


def test_a_budget_back_within_a_few_seconds_is_waited_for() -> None:
    clock = Clock(NOW)
    limiter = BalanceLimiter(script=[Denial(NOW + 1, "spike")])
    client = BalanceClient(answer(200, {"credits": 7}))
    assert check(limiter, client, clock).run().status == "checked"
    assert (limiter.acquired, client.calls, clock.now) == (2, 1, NOW + 1)


def test_a_grant_counted_in_the_next_second_waits_for_it() -> None:
    clock = Clock(NOW)
    limiter = BalanceLimiter(script=[Grant(LimiterState(), valid_from=NOW + 0.4, valid_until=NOW + 1.2)])
    assert check(limiter, BalanceClient(answer(200, {"credits": 7})), clock).run().status == "checked"
    assert clock.now == NOW + 0.4


def test_a_refusal_is_reported_and_leaves_the_figure_alone() -> None:
    clock = Clock(NOW)
    limiter = BalanceLimiter()
    result = check(limiter, BalanceClient(answer(401, {"code": 401, "message": "Unauthorized"})), clock).run()
    assert (result.status, result.http_status, result.picsart_correlation_id) == ("refused", 401, "corr-401")
    assert limiter.balances == []
    assert len(limiter.observed) == 1


def test_a_throttled_balance_call_tells_the_limiter_it_was() -> None:
    clock = Clock(NOW)
    limiter = BalanceLimiter()
    check(limiter, BalanceClient(answer(429, {"code": 429})), clock).run()
    assert [throttled for _, throttled in limiter.observed] == [True]


def test_no_answer_is_reported_without_a_figure() -> None:
    clock = Clock(NOW)
    limiter = BalanceLimiter()
    result = check(limiter, BalanceClient(PicsartTransportError("timeout", "ReadTimeoutError")), clock).run()
    assert result.status == "no-answer"
    assert (limiter.observed, limiter.balances) == ([], [])


def test_the_result_never_holds_the_api_key() -> None:
    clock = Clock(NOW)
    result = check(BalanceLimiter(), BalanceClient(answer(200, {"credits": 3})), clock).run()
    assert result.as_dict() == {
        "status": "checked",
        "credits": 3,
        "http_status": 200,
        "picsart_correlation_id": "corr-200",
    }
