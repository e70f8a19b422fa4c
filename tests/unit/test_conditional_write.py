"""The shared conditional write, against a fake table (no server)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from picsart_adapter.conditional_write import Written, update_item

KEY = {"pk": "p", "sk": "s"}


class FakeTable:
    """Answers `update_item` with `answer`, or raises it; keeps each request."""

    def __init__(self, answer: dict[str, Any] | Exception) -> None:
        self.answer = answer
        self.requests: list[dict[str, Any]] = []

    def update_item(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def client_error(code: str, item: dict[str, Any] | None = None) -> ClientError:
    response: dict[str, Any] = {"Error": {"Code": code, "Message": code}}
    if item is not None:
        response["Item"] = item
    return ClientError(response, "UpdateItem")  # type: ignore[arg-type]


def test_written_returns_the_attributes_asked_for() -> None:
    table = FakeTable({"Attributes": {"granted": 3}})
    written = update_item(table, KEY, "SET a = :a", "b = :b", {"#n": "n"}, {":a": 1}, returned="ALL_NEW")  # type: ignore[arg-type]
    assert written == Written(True, {"granted": 3})
    assert table.requests == [
        {
            "Key": KEY,
            "UpdateExpression": "SET a = :a",
            "ConditionExpression": "b = :b",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            "ExpressionAttributeNames": {"#n": "n"},
            "ExpressionAttributeValues": {":a": 1},
            "ReturnValues": "ALL_NEW",
        }
    ]


def test_an_unconditional_write_sends_no_condition_and_no_names_or_values_it_was_not_given() -> None:
    table = FakeTable({})
    assert update_item(table, KEY, "REMOVE a") == Written(True, {})  # type: ignore[arg-type]
    assert table.requests == [{"Key": KEY, "UpdateExpression": "REMOVE a"}]


def test_a_failed_condition_returns_the_item_as_it_was() -> None:
    table = FakeTable(client_error("ConditionalCheckFailedException", {"granted": {"N": "5"}, "sk": {"S": "state"}}))
    written = update_item(table, KEY, "SET a = :a", "b = :b", values={":a": 1})  # type: ignore[arg-type]
    assert written == Written(False, {"granted": 5, "sk": "state"})


def test_a_failed_condition_on_no_item_returns_none() -> None:
    table = FakeTable(client_error("ConditionalCheckFailedException"))
    assert update_item(table, KEY, "SET a = :a", "attribute_exists(pk)", values={":a": 1}) == Written(False, None)  # type: ignore[arg-type]


@pytest.mark.parametrize("code", ["ProvisionedThroughputExceededException", "ValidationException"])
def test_any_other_client_error_is_raised(code: str) -> None:
    table = FakeTable(client_error(code))
    with pytest.raises(ClientError) as raised:
        update_item(table, KEY, "SET a = :a", "b = :b", values={":a": 1})  # type: ignore[arg-type]
    assert raised.value.response["Error"]["Code"] == code
