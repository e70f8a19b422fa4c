"""Fixtures of the local stack and runner tests: stacks on free ports, stopped by the test that started them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from picsart_local.runner import LocalRunner
from picsart_local.stack import LocalStack

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE_TEMPLATE = FIXTURES / "template.yaml"
REAL_TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


def unique_stack_name(prefix: str = "t") -> str:
    # moto keeps its state per process: distinct names keep one test's leftovers out of the next.
    return f"{prefix}{uuid.uuid4().hex[:8]}"


@pytest.fixture
def make_stack() -> Iterator[Callable[..., LocalStack]]:
    """Start a LocalStack of the fixture template (or another); every one is stopped at teardown."""
    started: list[LocalStack] = []

    def make(template: Path = FIXTURE_TEMPLATE, **options: Any) -> LocalStack:
        options.setdefault("stack_name", unique_stack_name())
        stack = LocalStack(template_path=template, **options)
        started.append(stack)
        return stack.start()

    yield make
    for stack in reversed(started):
        stack.stop()


@pytest.fixture
def fixture_stack(make_stack: Callable[..., LocalStack]) -> LocalStack:
    return make_stack()


@pytest.fixture
def make_runner(tmp_path: Path) -> Iterator[Callable[..., LocalRunner]]:
    started: list[LocalRunner] = []

    def make(stack: LocalStack, **options: Any) -> LocalRunner:
        runner = LocalRunner(stack, log_dir=tmp_path / "logs", **options)
        started.append(runner)
        return runner.start()

    yield make
    for runner in reversed(started):
        runner.stop()


@pytest.fixture
def runner(fixture_stack: LocalStack, make_runner: Callable[..., LocalRunner]) -> LocalRunner:
    return make_runner(fixture_stack)


def recorded(stack: LocalStack, kind: str) -> list[dict[str, Any]]:
    """What the fixture handlers recorded (kind "s3" or "sqs"), oldest first."""
    s3 = stack.client("s3")
    bucket = stack.outputs["RecordBucketName"]
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{kind}/").get("Contents", [])
    documents = [json.loads(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()) for item in listed]
    return sorted(documents, key=lambda document: float(document["recorded_at"]))


def receive_all(stack: LocalStack, queue_url: str) -> list[dict[str, Any]]:
    """Every message currently visible in a queue (received, so hidden for the queue's visibility timeout)."""
    sqs = stack.client("sqs")
    messages: list[dict[str, Any]] = []
    while True:
        answer = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], AttributeNames=["All"]
        )
        if not answer.get("Messages"):
            return messages
        messages.extend(dict(message) for message in answer["Messages"])
