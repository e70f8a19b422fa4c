"""Baseline `backoff`: S3 notification -> Picsart, sleeping with exponential backoff and jitter on 429."""

from __future__ import annotations

from typing import Any

from picsart_adapter.observability import logger
from picsart_local.bench.baseline import backoff_delay, build_processor, handle_s3_event

processor = build_processor(backoff_delay)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle_s3_event(processor, event)
