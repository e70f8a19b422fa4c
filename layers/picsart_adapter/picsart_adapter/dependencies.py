"""Builds the processor from the settings, once per execution environment.

The settings are checked at cold start (the handlers call `get_settings()` at import, so a bad deployment
fails before any event). The AWS SDK, the clients and the domain modules are imported and built here, at
the first event that needs them (an S3 test event never does): an on-demand init and the first event are
both on that event's path, and the cold start stays close to a bare Powertools handler's. An init that runs
ahead of traffic (provisioned concurrency, SnapStart) builds the processor in the init instead, off every
event's path.

AWS clients honour AWS_ENDPOINT_URL, which is how the local stack points them at its moto server.
"""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING

from picsart_adapter.config import AdapterSettings, ConfigurationError, get_settings

if TYPE_CHECKING:
    from boto3.session import Session
    from mypy_boto3_dynamodb.service_resource import Table

    from picsart_adapter.balance_check import BalanceCheck
    from picsart_adapter.completion_events import PutsEvents
    from picsart_adapter.processing import UploadProcessor
    from picsart_adapter.rate_limit import FleetRateLimiter

#: Lambda's initialization types (AWS_LAMBDA_INITIALIZATION_TYPE) whose init runs before any event waits on it.
INIT_AHEAD_OF_TRAFFIC = frozenset({"provisioned-concurrency", "snap-start"})
#: How long a fetched API key is reused before Secrets Manager is asked again (rotation takes effect then).
SECRET_MAX_AGE_SECONDS = 300


class SecretApiKey:
    """Reads the API key from Secrets Manager through Powertools Parameters (cached), never logging it."""

    def __init__(self, secret_id: str) -> None:
        self._secret_id = secret_id

    def __call__(self) -> str:
        # Imported at the first call: Powertools Parameters imports boto3, which the init leaves to the first event.
        from aws_lambda_powertools.utilities import parameters

        value = parameters.get_secret(self._secret_id, max_age=SECRET_MAX_AGE_SECONDS)
        if not isinstance(value, str) or not value.strip():
            raise ConfigurationError(f"secret {self._secret_id!r} must hold the Picsart API key as a plain string")
        return value.strip()

    def __repr__(self) -> str:
        return f"SecretApiKey(secret_id={self._secret_id!r})"


def build_processor(settings: AdapterSettings) -> UploadProcessor:
    import boto3
    from botocore.config import Config

    from picsart_adapter.circuit import CircuitSettings, FleetCircuit
    from picsart_adapter.completion_events import CompletionEvents
    from picsart_adapter.delay_queue import DelayQueue
    from picsart_adapter.idempotency import OncePerStep
    from picsart_adapter.jobs import JobStore
    from picsart_adapter.picsart_client import PicsartClient
    from picsart_adapter.processing import ProcessorSettings, UploadProcessor
    from picsart_adapter.retry_policy import RetryPolicy
    from picsart_adapter.storage import ObjectStore

    session = boto3.session.Session()
    table = session.resource("dynamodb").Table(settings.jobs_table)
    hot_items = hot_items_table(session, settings)
    api_key = SecretApiKey(settings.api_key_secret)
    # SigV4 presigned URLs: their lifetime is bounded by ExpiresIn (and the role's session).
    s3 = session.client("s3", config=Config(signature_version="s3v4"))
    return UploadProcessor(
        settings=ProcessorSettings(
            rules=settings.rules,
            output_bucket=settings.output_bucket,
            presigned_url_ttl_seconds=settings.presigned_url_ttl_seconds,
            max_attempts=settings.max_attempts,
            request_timeout_seconds=settings.request_timeout_seconds,
            credit_floor_hold_seconds=settings.credit_floor_hold_seconds,
        ),
        store=ObjectStore(s3),
        jobs=JobStore(table),
        queue=DelayQueue(session.client("sqs"), settings.delay_queue_url, settings.dead_letter_queue_url),
        client=PicsartClient(
            settings.picsart_base_url,
            api_key,
            timeout_seconds=settings.request_timeout_seconds,
        ),
        retry_policy=RetryPolicy(
            floor_seconds=settings.rate_limit_floor_seconds, base_seconds=settings.retry_base_seconds
        ),
        limiter=fleet_limiter(settings, hot_items, api_key),
        circuit=FleetCircuit(
            hot_items,
            api_key,
            CircuitSettings(
                probe_seconds=settings.circuit_probe_seconds,
                max_probe_seconds=settings.circuit_max_probe_seconds,
                validation_failure_threshold=settings.circuit_validation_failures,
                # One probe call at most: after its timeout (and a margin) another invocation may probe.
                probe_lease_seconds=settings.request_timeout_seconds * 2,
            ),
        ),
        # A plain client: the table resource's own client would serialize Powertools' typed values again.
        once=OncePerStep(settings.jobs_table, session.client("dynamodb")),
        events=CompletionEvents(events_client(session), settings.event_bus_name),
    )


def events_client(session: Session) -> PutsEvents:
    """The EventBridge client completion events are put with. Short timeouts: a bus out of reach must not hold the
    invocation for the SDK's default minute per connection. No retry of the SDK's own: `CompletionEvents` tries
    again itself and logs each try that raised, and a try whose answer was lost may have delivered the event, so
    every second delivery is one the logs name
    (test_each_try_of_a_put_is_one_request_and_each_failed_one_is_logged)."""
    from botocore.config import Config

    config = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "total_max_attempts": 1})
    client: PutsEvents = session.client("events", config=config)
    return client


def hot_items_table(session: Session, settings: AdapterSettings) -> Table:
    """The table as the limiter and the circuit use it. Their items are touched by every upload: a throttle on
    them is given back to the adapter after a few retries, which parks the job rather than hold the invocation
    (rate_limit/hot_item.py)."""
    from botocore.config import Config

    from picsart_adapter.rate_limit.hot_item import LIMITER_SDK_ATTEMPTS

    config = Config(retries={"mode": "standard", "total_max_attempts": LIMITER_SDK_ATTEMPTS})
    return session.resource("dynamodb", config=config).Table(settings.jobs_table)


def fleet_limiter(settings: AdapterSettings, table: Table, api_key: SecretApiKey) -> FleetRateLimiter:
    """The fleet's limiter as every function shares it: the same item, spike arrest, floor and credit floors."""
    from picsart_adapter.rate_limit import FleetRateLimiter

    return FleetRateLimiter(
        table,
        api_key,
        spike_per_second=settings.spike_per_second,
        no_reset_floor_seconds=settings.rate_limit_floor_seconds,
        credit_floors=settings.rules.credit_floors,
    )


def build_balance_check(settings: AdapterSettings) -> BalanceCheck:
    import boto3

    from picsart_adapter.balance_check import BalanceCheck
    from picsart_adapter.picsart_client import PicsartClient

    table = hot_items_table(boto3.session.Session(), settings)
    api_key = SecretApiKey(settings.api_key_secret)
    client = PicsartClient(settings.picsart_base_url, api_key, timeout_seconds=settings.request_timeout_seconds)
    return BalanceCheck(fleet_limiter(settings, table, api_key), client)


@cache
def get_processor() -> UploadProcessor:
    return build_processor(get_settings())


@cache
def get_balance_check() -> BalanceCheck:
    return build_balance_check(get_settings())


def init_runs_ahead_of_traffic() -> bool:
    """Whether this environment's init runs before any event waits on it, so work done in it costs no event
    any time (provisioned concurrency; SnapStart's snapshot)."""
    return os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") in INIT_AHEAD_OF_TRAFFIC
