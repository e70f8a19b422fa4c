"""Work parked by the invocation that holds its version, delivered by the queue at once (moto's DynamoDB holds
the once-per-version records; Picsart, S3 and the limiter are faked).

SQS may deliver a message with no delay the moment it is sent. The upload function parks work while its
once-per-version record says "in progress"; the retry function that receives the message must not take it for
a duplicate of that same invocation and park it again for a request timeout.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from typing import Any, cast

from picsart_adapter.delay_queue import DelayQueue, RetryMessage
from picsart_adapter.idempotency import OncePerStep
from picsart_adapter.jobs import JobResult, JobStatus
from picsart_adapter.processing import ProcessorSettings, UploadProcessor
from picsart_adapter.rate_limit import Denial
from picsart_adapter.retry_policy import RetryPolicy
from picsart_adapter.rules import default_rules
from picsart_adapter.tools import TOOLS, RemoveBackgroundParameters
from picsart_local.stack import LocalStack
from tests.fakes import (
    NOW,
    SUCCESS_BODY,
    UPLOAD,
    FakeCircuit,
    FakeClient,
    FakeContext,
    FakeJobs,
    FakeLimiter,
    FakeStore,
    answer,
    stored_object,
)


@dataclass
class DeliveringSqs:
    """An SQS delay queue that hands each message to the retry side the moment it is sent, whatever its delay:
    the fastest delivery SQS may make."""

    deliver: Any = None
    sent: list[dict[str, Any]] = field(default_factory=list)
    delivered: list[JobResult | None] = field(default_factory=list)

    def send_message(self, **kwargs: Any) -> dict[str, str]:
        self.sent.append(kwargs)
        if kwargs["QueueUrl"] == "https://sqs/delay" and self.deliver is not None:
            deliver, self.deliver = self.deliver, None  # the first message only: a re-parked one just waits
            self.delivered.append(deliver(RetryMessage.model_validate_json(kwargs["MessageBody"])))
        return {"MessageId": f"m{len(self.sent)}"}


def processor(stack: LocalStack, limiter: FakeLimiter, client: FakeClient, sqs: DeliveringSqs) -> UploadProcessor:
    once = OncePerStep(stack.outputs["JobsTableName"], stack.client("dynamodb"))
    built = UploadProcessor(
        settings=ProcessorSettings(
            rules=default_rules(TOOLS["removebg"], RemoveBackgroundParameters.model_validate({})),
            output_bucket="output",
            presigned_url_ttl_seconds=300,
            max_attempts=6,
        ),
        store=cast(Any, FakeStore(stored_object())),
        jobs=cast(Any, FakeJobs()),
        queue=DelayQueue(cast(Any, sqs), "https://sqs/delay", "https://sqs/dlq"),
        client=cast(Any, client),
        retry_policy=RetryPolicy(),
        limiter=cast(Any, limiter),
        circuit=cast(Any, FakeCircuit()),
        once=once,
        clock=lambda: NOW,
        sleep=lambda seconds: None,
    )
    built.register_lambda_context(cast(Any, FakeContext(remaining_ms=60_000)))
    return built


def test_work_parked_by_the_invocation_holding_its_version_is_not_its_own_duplicate(stack: LocalStack) -> None:
    """The upload side is refused for quota with its turn already come (due at once); the queue delivers the
    message before `process` has returned. The retry side makes the call: no duplicate parking."""
    client = FakeClient(answer(200, SUCCESS_BODY))
    sqs = DeliveringSqs()
    quota_spent = Denial(NOW, "quota", turn=NOW)
    upload_side = processor(
        stack, FakeLimiter(script=[quota_spent, quota_spent, quota_spent, quota_spent]), client, sqs
    )
    retry_side = processor(stack, FakeLimiter(), client, sqs)
    sqs.deliver = retry_side.resume

    (parked,) = upload_side.process(replace(UPLOAD, key=f"uploads/{uuid.uuid4()}.jpg"))

    assert parked.status is JobStatus.WAITING
    (delivered,) = sqs.delivered
    assert delivered is not None
    (resumed,) = delivered
    assert (resumed.status, resumed.duplicate) == (JobStatus.SUCCEEDED, False)
    assert len(client.calls) == 1
    assert [m["QueueUrl"] for m in sqs.sent] == ["https://sqs/delay"], "parked once, never as a duplicate"
