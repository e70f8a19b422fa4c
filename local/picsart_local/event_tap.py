"""A subscriber to the adapter's completion events on the local stack, as a user would subscribe in AWS: an
EventBridge rule on the stack's bus (EventBusName) matching source `picsart.adapter` and the stack's input
bucket, with an SQS queue as its target. moto delivers a rule's matches to an SQS target in server mode, so the
functions' PutEvents (through AWS_ENDPOINT_URL) land in the queue as EventBridge would put them there.

moto keeps its state per process: stacks started in one process share the default bus, hence the bucket in the
rule's pattern. The integration tests (tests/integration/test_completion_events.py) and the soak use it.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from picsart_local.stack import LocalStack

SOURCE = "picsart.adapter"


@dataclass
class EventTap:
    stack: LocalStack
    #: The events received so far, in the order the queue gave them.
    received: list[dict[str, Any]] = field(default_factory=list)
    name: str = field(default_factory=lambda: f"completion-events-{uuid.uuid4().hex[:8]}")
    queue_url: str | None = None

    @property
    def bus_name(self) -> str:
        return str(self.stack.template.parameters.get("EventBusName") or "default")

    def start(self) -> EventTap:
        sqs, events = self.stack.client("sqs"), self.stack.client("events")
        self.queue_url = sqs.create_queue(QueueName=self.name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        input_bucket = self.stack.outputs["InputBucketName"]
        pattern = {"source": [SOURCE], "detail": {"bucket": [input_bucket]}}
        events.put_rule(Name=self.name, EventBusName=self.bus_name, EventPattern=json.dumps(pattern), State="ENABLED")
        events.put_targets(Rule=self.name, EventBusName=self.bus_name, Targets=[{"Id": "tap", "Arn": arn}])
        return self

    def stop(self) -> None:
        if self.queue_url is None:
            return
        events = self.stack.client("events")
        events.remove_targets(Rule=self.name, EventBusName=self.bus_name, Ids=["tap"])
        events.delete_rule(Name=self.name, EventBusName=self.bus_name)
        self.stack.client("sqs").delete_queue(QueueUrl=self.queue_url)
        self.queue_url = None

    def __enter__(self) -> EventTap:
        return self.start() if self.queue_url is None else self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def drain(self) -> list[dict[str, Any]]:
        """Take every event waiting in the queue (each a JSON document as EventBridge delivers it) and return
        everything received so far."""
        assert self.queue_url is not None, "the tap is not started"
        sqs = self.stack.client("sqs")
        while True:
            messages = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
                "Messages", []
            )
            if not messages:
                return list(self.received)
            for message in messages:
                self.received.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def for_key(self, key: str) -> list[dict[str, Any]]:
        return [event for event in self.drain() if event["detail"]["key"] == key]


def events_per_job(events: list[dict[str, Any]]) -> Counter[tuple[str, str, str | None]]:
    """How many events each job got: (key, version ref, pipeline) -> count."""
    return Counter(
        (str(e["detail"]["key"]), str(e["detail"]["version_ref"]), e["detail"].get("pipeline")) for e in events
    )
