"""Baseline `concurrency-cap`: S3 notifications through an SQS queue whose event source's
MaximumConcurrency keeps the rate under the quota; a 429 fails the delivery, SQS retries it later."""

from __future__ import annotations

from typing import Any

from picsart_adapter.observability import logger
from picsart_local.bench.baseline import build_processor, handle_sqs_event, no_retry

processor = build_processor(no_retry)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle_sqs_event(processor, event)
