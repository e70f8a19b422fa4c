"""UploadFunction: S3 ObjectCreated notifications of the input bucket -> rules -> Picsart -> output bucket.

Thin: parse the event, hand each upload to the domain, shape the answer (one result per pipeline the upload's
rule runs, or one skip). A malformed event raises after
the readable records are done, so Lambda retries it and then puts it in the dead-letter queue with the
error message (nothing is dropped silently).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from picsart_adapter.config import get_settings
from picsart_adapter.dependencies import get_processor, init_runs_ahead_of_traffic
from picsart_adapter.observability import logger, metrics, tracer
from picsart_adapter.s3_events import MalformedEventError, parse_s3_event

if TYPE_CHECKING:
    from picsart_adapter.jobs import JobResult

# Checked at cold start: an invalid configuration fails here, naming the variable, before any event. The
# processor is built at the first event that needs it, or here when the init runs ahead of traffic.
get_settings()
if init_runs_ahead_of_traffic():
    get_processor()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    notification = parse_s3_event(event)
    if notification.is_test_event:
        logger.info("s3:TestEvent received; nothing to process")
        return {"results": [], "test_event": True}
    processor = get_processor()
    processor.register_lambda_context(context)
    results = []
    for upload in notification.uploads:
        logger.set_correlation_id(upload.s3_request_id)
        logger.remove_keys(["picsart_correlation_id"])
        logger.append_keys(bucket=upload.bucket, key=upload.key)
        for result in processor.process(upload):
            results.append({"bucket": upload.bucket, "key": upload.key, **_shape(result)})
    if notification.malformed:
        raise MalformedEventError("unreadable S3 records: " + "; ".join(notification.malformed))
    return {"results": results}


def _shape(result: JobResult) -> dict[str, Any]:
    return {
        "rule": result.rule,
        "pipeline": result.pipeline,
        "status": result.status.value,
        "reason": result.reason,
        "output_key": result.output_key,
        "picsart_correlation_id": result.picsart_correlation_id,
        "duplicate": result.duplicate,
    }
