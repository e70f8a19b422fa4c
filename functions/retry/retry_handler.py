"""RetryFunction: parked work from the delay queue, in batches with partial batch failures.

A record that raises is reported in `batchItemFailures` and comes back after the visibility timeout;
after the queue's maxReceiveCount SQS moves it to the dead-letter queue. A message that cannot be read
is dead-lettered at once with the reason, since no retry can make it readable.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from picsart_adapter.config import get_settings
from picsart_adapter.delay_queue import RetryMessage, in_turn_order
from picsart_adapter.dependencies import get_processor, init_runs_ahead_of_traffic
from picsart_adapter.observability import logger, metrics, tracer

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch import BatchProcessor
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

# Checked at cold start: an invalid configuration fails here, naming the variable, before any event. The
# processor is built at the first event that needs it, or here when the init runs ahead of traffic.
get_settings()


@cache
def batch_processor() -> BatchProcessor:
    # Loaded at the first batch, like the processor: Powertools' batch utility imports every event data class
    # it supports, about a tenth of a bare Powertools cold start.
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType

    return BatchProcessor(event_type=EventType.SQS)


if init_runs_ahead_of_traffic():
    get_processor()
    batch_processor()


def handle_record(record: SQSRecord) -> dict[str, Any]:
    # Indexing (not .get) gives Powertools' typed attribute, or None when the attribute is absent.
    s3_request_id = record.message_attributes["s3_request_id"]
    logger.set_correlation_id(s3_request_id.string_value if s3_request_id else None)
    logger.remove_keys(["picsart_correlation_id"])
    processor = get_processor()
    try:
        message = RetryMessage.model_validate_json(record.body)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in error.errors())
        processor.dead_letter_unreadable(record.body, f"unreadable delay-queue message: {problems}")
        return {"status": "dead-lettered"}
    logger.append_keys(
        bucket=message.bucket,
        key=message.key,
        pipeline=message.pipeline,
        step=message.step + 1,
        attempt=message.attempt + 1,
    )
    if not processor.has_time_for():
        # Not enough time left for one more call: hand the work straight back to the queue rather than
        # risk a timeout that would hold the whole batch until the visibility timeout.
        processor.hand_back(message)
        return {"status": "handed back"}
    results = processor.resume(message)
    if results is None:
        return {"status": "re-delayed"}
    return {"status": ", ".join(result.status.value for result in results)}


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    from aws_lambda_powertools.utilities.batch import process_partial_response

    get_processor().register_lambda_context(context)
    event = {**event, "Records": in_turn_order(event.get("Records", []))}
    return process_partial_response(
        event=event, record_handler=handle_record, processor=batch_processor(), context=context
    )
