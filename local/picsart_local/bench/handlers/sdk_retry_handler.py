"""Baseline `sdk-retry`: S3 notification -> Picsart, sleeping on 429 as Picsart's TypeScript SDK does."""

from __future__ import annotations

from typing import Any

from picsart_adapter.observability import logger
from picsart_local.bench.baseline import build_processor, handle_s3_event, sdk_retry_delay

processor = build_processor(sdk_retry_delay)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle_s3_event(processor, event)
