"""Adapter modules against DynamoDB on a moto server, with the table built from template.yaml."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from picsart_local.stack import LocalStack


@pytest.fixture(scope="module")
def stack(repository_root: Path) -> Iterator[LocalStack]:
    local = LocalStack(template_path=repository_root / "template.yaml", stack_name="functional-tests").start()
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="module")
def table(stack: LocalStack) -> Any:
    return stack.resource("dynamodb").Table(stack.outputs["JobsTableName"])


class Clock:
    """A settable clock: "the same second" and "after the reset" are set, not waited for."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def api_key() -> str:
    """Each test its own key, so its own limiter and circuit items."""
    return f"key-{uuid.uuid4()}"
