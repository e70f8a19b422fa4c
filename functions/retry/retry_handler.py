"""RetryFunction: parked work from the delay queue, in batches with partial batch failures.

A record that raises is reported in `batchItemFailures` and comes back after the visibility timeout;
after the queue's maxReceiveCount SQS moves it to the dead-letter queue. A message that cannot be read
is dead-lettered at once with the reason, since no retry can make it readable.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from picsart_adapter.delay_queue import RetryMessage
from picsart_adapter.dependencies import get_processor
from picsart_adapter.observability import logger, metrics, tracer

processor = get_processor()
batch = BatchProcessor(event_type=EventType.SQS)


def handle_record(record: SQSRecord) -> dict[str, Any]:
    # Indexing (not .get) gives Powertools' typed attribute, or None when the attribute is absent.
    s3_request_id = record.message_attributes["s3_request_id"]
    logger.set_correlation_id(s3_request_id.string_value if s3_request_id else None)
    logger.remove_keys(["picsart_correlation_id"])
    try:
        message = RetryMessage.model_validate_json(record.body)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in error.errors())
        processor.dead_letter_unreadable(record.body, f"unreadable delay-queue message: {problems}")
        return {"status": "dead-lettered"}
    logger.append_keys(bucket=message.bucket, key=message.key, attempt=message.attempt + 1)
    if not processor.has_time_for():
        # Not enough time left for one more call: hand the work straight back to the queue rather than
        # risk a timeout that would hold the whole batch until the visibility timeout.
        processor.hand_back(message)
        return {"status": "handed back"}
    result = processor.resume(message)
    return {"status": result.status.value if result else "re-delayed"}


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    processor.register_lambda_context(context)
    return process_partial_response(event=event, record_handler=handle_record, processor=batch, context=context)
