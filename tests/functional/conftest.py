"""Adapter modules against DynamoDB on a moto server, with the table built from template.yaml."""

from __future__ import annotations

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
