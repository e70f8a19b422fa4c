"""What keeps the local stack's moto server fast under the bench's load without giving up DynamoDB's
guarantees: writes atomic per partition key (not one lock for all), moto's SQS retention check without
counting the queue, connections served without the accept loop waiting for their threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core.base_backend import backend_lock
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends
from moto.sqs.models import sqs_backends
from werkzeug.serving import WSGIRequestHandler

from picsart_local import moto_atomic
from picsart_local.moto_atomic import serialize_dynamodb_writes
from picsart_local.moto_speedups import speed_up_moto
from picsart_local.wsgi_server import make_threaded_server

REGION = "us-east-1"
#: Long enough for a write that is free to go to finish on a busy machine; a write that waits never does.
FINISHES_WITHIN_S = 5.0
STILL_WAITING_AFTER_S = 0.3


@pytest.fixture
def table() -> Iterator[str]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        client.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        serialize_dynamodb_writes()
        yield "t"


def _put_in_thread(table: str, pk: str) -> threading.Event:
    done = threading.Event()

    def put() -> None:
        boto3.client("dynamodb", region_name=REGION).put_item(
            TableName=table, Item={"pk": {"S": pk}, "sk": {"S": "state"}, "n": {"N": "1"}}
        )
        done.set()

    threading.Thread(target=put, daemon=True).start()
    return done


def test_a_write_waits_for_one_in_progress_on_its_partition_key_and_not_for_others(table: str) -> None:
    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION]
    busy_lock = moto_atomic._stripe(backend, table, {"pk": {"S": "ratelimit#a"}})
    other = next(
        f"object#{n}"
        for n in range(1000)
        if moto_atomic._stripe(backend, table, {"pk": {"S": f"object#{n}"}}) is not busy_lock
    )
    with busy_lock:  # a write to ratelimit#a in progress
        same_key = _put_in_thread(table, "ratelimit#a")
        other_key = _put_in_thread(table, other)
        assert other_key.wait(FINISHES_WITHIN_S), "a write to another partition key waited"
        assert not same_key.wait(STILL_WAITING_AFTER_S), "a write to the same partition key did not wait"
    assert same_key.wait(FINISHES_WITHIN_S)


def test_concurrent_conditional_writes_to_one_item_succeed_exactly_once_each_value(table: str) -> None:
    client = boto3.client("dynamodb", region_name=REGION)
    client.put_item(TableName=table, Item={"pk": {"S": "counter"}, "sk": {"S": "state"}, "n": {"N": "0"}})
    won: list[int] = []
    lock = threading.Lock()

    def take(seen: int) -> None:
        try:
            client.update_item(
                TableName=table,
                Key={"pk": {"S": "counter"}, "sk": {"S": "state"}},
                UpdateExpression="SET n = n + :one",
                ConditionExpression="n = :seen",
                ExpressionAttributeValues={":one": {"N": "1"}, ":seen": {"N": str(seen)}},
            )
        except client.exceptions.ConditionalCheckFailedException:
            return
        with lock:
            won.append(seen)

    # Twenty writers all believe the counter is 0: exactly one may move it.
    threads = [threading.Thread(target=take, args=(0,)) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert won == [0]


def test_a_write_returns_the_item_as_it_left_it_not_as_later_writes_change_it(table: str) -> None:
    """moto's response reads the returned item after the write's lock is released: a live item would show a
    later write's values (a grant answered with the count of the write after it)."""
    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION]
    key = {"pk": {"S": "ratelimit#x"}, "sk": {"S": "state"}}
    backend.put_item(table, {**key, "granted": {"N": "0"}})

    def grant() -> Any:
        return backend.update_item(
            table, key, "SET granted = granted + :one", {}, {":one": {"N": "1"}}, condition_expression=None
        )

    first = grant()
    grant()

    assert first.to_json()["Attributes"]["granted"] == {"N": "1"}


def test_sqs_still_drops_messages_older_than_the_queues_retention_period() -> None:
    with mock_aws():
        speed_up_moto()
        sqs = boto3.client("sqs", region_name=REGION)
        url = sqs.create_queue(QueueName="q", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="old")
        sqs.send_message(QueueUrl=url, MessageBody="new")
        queue = sqs_backends[DEFAULT_ACCOUNT_ID][REGION].get_queue("q")
        old = next(m for m in queue._messages if m.body == "old")
        old.sent_timestamp = int((time.time() - 61) * 1000)  # type: ignore[assignment]

        bodies: list[str] = []
        for _ in range(3):
            bodies += [m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])]

        # The message past retention is never handed out; the one within it is.
        assert bodies == ["new"]


def test_the_accept_loop_does_not_wait_for_a_connections_thread_to_run() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    server = make_threaded_server("127.0.0.1", 0, app, WSGIRequestHandler)
    started, release = threading.Event(), threading.Event()

    def slow_connection(request: Any, client_address: Any) -> None:
        started.set()
        release.wait(FINISHES_WITHIN_S)

    server.process_request_thread = slow_connection  # type: ignore[attr-defined]
    try:
        server.process_request(None, ("127.0.0.1", 0))  # type: ignore[arg-type]
        # Back here while the connection's thread is still at work: the next connection can be accepted.
        assert started.wait(FINISHES_WITHIN_S)
        assert not release.is_set()
    finally:
        release.set()
        server.server_close()


def test_an_existing_accounts_backend_is_found_while_another_thread_holds_motos_lock() -> None:
    """A request thread preempted while holding moto's lookup lock no longer holds up every other request."""
    with mock_aws():
        speed_up_moto()
        boto3.client("sqs", region_name=REGION).list_queues()  # the account's backend exists now
        held, release = threading.Event(), threading.Event()

        def hold_the_lock() -> None:
            with backend_lock:
                held.set()
                release.wait(5)

        holder = threading.Thread(target=hold_the_lock)
        holder.start()
        assert held.wait(5)
        found: list[Any] = []
        looker = threading.Thread(target=lambda: found.append(sqs_backends[DEFAULT_ACCOUNT_ID][REGION]))
        looker.start()
        looker.join(2.0)
        found_while_held = bool(found)
        release.set()
        holder.join()
        looker.join()

        assert found_while_held, "the lookup waited for the lock"
        other_account = "111122223333"
        assert other_account not in sqs_backends
        assert sqs_backends[other_account][REGION] is not sqs_backends[DEFAULT_ACCOUNT_ID][REGION], (
            "a new account's backend is still created"
        )
