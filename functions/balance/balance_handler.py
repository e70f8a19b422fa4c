"""BalanceFunction: the scheduled balance check, once an hour (an EventBridge schedule), or by hand after a top-up.

One `GET /balance` through the fleet's limiter; its figure goes on the fleet's item and into the `CreditsAvailable`
metric (`balance_check.py`, docs/credits.md). The event's content is not read: any event runs one check.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from picsart_adapter.config import get_settings
from picsart_adapter.dependencies import get_balance_check, init_runs_ahead_of_traffic
from picsart_adapter.observability import logger, metrics, tracer

# Checked at cold start: an invalid configuration fails here, naming the variable, before any event.
get_settings()

if init_runs_ahead_of_traffic():
    get_balance_check()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, object]:
    return get_balance_check().run().as_dict()
