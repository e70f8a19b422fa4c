"""One conditional UpdateItem, shared by the limiter, the circuit and the job records.

A write whose condition does not hold is not an error to its caller but news: another invocation moved the
item first. `update_item` returns that as a `Written` result, `written` False, with the item as it was (DynamoDB
returns it with the failure, `ReturnValuesOnConditionCheckFailure="ALL_OLD"`, at no extra cost). Any other
ClientError is raised.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

#: What DynamoDB answers when a write's condition does not hold.
CONDITION_FAILED = "ConditionalCheckFailedException"

ReturnValues = Literal["NONE", "ALL_OLD", "UPDATED_OLD", "ALL_NEW", "UPDATED_NEW"]

_DESERIALIZER = TypeDeserializer()


@dataclass(frozen=True)
class Written:
    """How a conditional write went. `written`: its condition held and the item was updated. `item`: when
    written, the attributes `ReturnValues` asked for (empty for NONE); when not, the item as it was (None when
    there was no item)."""

    written: bool
    item: dict[str, Any] | None


def update_item(
    table: Table,
    key: Mapping[str, Any],
    update: str,
    condition: str | None = None,
    names: Mapping[str, str] | None = None,
    values: Mapping[str, Any] | None = None,
    returned: ReturnValues = "NONE",
) -> Written:
    """Update the item at `key` if `condition` holds (always, when None). Names and values are sent only when
    given (DynamoDB refuses an empty or unused map)."""
    request: dict[str, Any] = {"Key": key, "UpdateExpression": update}
    if condition is not None:
        request["ConditionExpression"] = condition
        request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    if names:
        request["ExpressionAttributeNames"] = names
    if values:
        request["ExpressionAttributeValues"] = values
    if returned != "NONE":
        request["ReturnValues"] = returned
    try:
        answer = table.update_item(**request)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != CONDITION_FAILED:
            raise
        raw: dict[str, Any] = dict(error.response.get("Item") or {})  # type: ignore[call-overload]
        return Written(False, {k: _DESERIALIZER.deserialize(v) for k, v in raw.items()} if raw else None)
    return Written(True, dict(answer.get("Attributes", {})))


def write_units_of(item: Mapping[str, Any]) -> float:
    """Write units DynamoDB bills for writing this item: one per started KB (names and values counted).

    Counted from the item rather than read from ConsumedCapacity, which moto reports as 0.5 for any update.
    """
    size = sum(len(name.encode()) + _size_of(value) for name, value in item.items())
    return float(max(1, math.ceil(size / 1024)))


def _size_of(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, int | float) or hasattr(value, "as_tuple"):
        return 21  # DynamoDB numbers take up to 21 bytes
    if isinstance(value, Mapping):
        return 3 + sum(len(str(k).encode()) + _size_of(v) + 1 for k, v in value.items())
    if isinstance(value, list | tuple | set):
        return 3 + sum(_size_of(v) + 1 for v in value)
    if isinstance(value, bytes | bytearray):
        return len(value)
    return len(str(value).encode())
