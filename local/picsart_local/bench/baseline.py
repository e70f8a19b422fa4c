"""The baselines `picsart-local bench` compares the adapter with: the same upload, done the usual ways.

Each baseline runs in the local runner's Lambda-like execution environments (its handler is in
`handlers/`) and reuses the adapter's own parts: the settings model, the Picsart client, the object store,
the result keys. What differs is what happens when Picsart answers 429 (or another retryable status):

- ``sdk-retry``: as Picsart's TypeScript SDK with retries on: after a 429 wait the Reset-Time header read
  as seconds to wait, plus 1000-2000 ms at random; after another retryable answer axios-retry's
  exponential delay. The invocation sleeps; ``SDK_RETRIES`` retries, then it fails.
- ``backoff``: plain exponential backoff with jitter, as tenacity's ``wait_exponential_jitter(initial=1,
  max=60, jitter=1)`` with ``stop_after_attempt(10)`` (urllib3's ``Retry`` is the same shape): the
  invocation sleeps between attempts, then fails.
- ``concurrency-cap``: one attempt per delivery. Uploads reach the function through an SQS queue whose
  event source's MaximumConcurrency keeps the rate under the quota; a retryable answer fails the delivery
  and SQS brings the message back after its visibility timeout.

No job records, no shared state: every invocation works on its own. A failed invocation is retried by
Lambda (asynchronous invocations) or by SQS, as the real services do.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from picsart_adapter.config import AdapterSettings, get_settings
from picsart_adapter.dependencies import SecretApiKey
from picsart_adapter.outcomes import Outcome, classify
from picsart_adapter.picsart_client import PicsartClient, PicsartResponse, PicsartTransportError
from picsart_adapter.rules import result_key
from picsart_adapter.s3_events import MalformedEventError, UploadedObject, parse_s3_event
from picsart_adapter.storage import ObjectStore
from picsart_adapter.tools import FORMAT_MEDIA

#: The SDK's `retries` (its users choose it; without it the SDK does not retry at all).
SDK_RETRIES = 10
#: tenacity's stop_after_attempt and wait_exponential_jitter parameters for the backoff baseline.
BACKOFF_ATTEMPTS = 10
BACKOFF_INITIAL_S = 1.0
BACKOFF_MAX_S = 60.0
BACKOFF_JITTER_S = 1.0

#: Delay after an answer (None: do not retry). Arguments: the answer's status (0: no answer), its
#: Reset-Time header, the number of the retry about to be made (1 for the first) and a random source.
RetryDelay = Callable[[int, str | None, int, random.Random], float | None]


def sdk_retry_delay(status: int, reset_time: str | None, retry_number: int, rng: random.Random) -> float | None:
    """Seconds the TypeScript SDK waits before retry `retry_number` (src/core/api-base.ts, axios-retry).

    429: ``parseInt(Reset-Time) * 1000 + randomInteger(1000, 2000)`` ms; an unreadable header makes that
    NaN, which setTimeout treats as 0. Other retryable answers: axios-retry's ``exponentialDelay``,
    ``2 ** retry * 100`` ms plus up to 20 % (axios-retry's own condition would not retry a POST at all;
    the baseline assumes one that does, as the SDK's 429 delay intends).
    """
    if retry_number > SDK_RETRIES or not _retryable(status):
        return None
    if status == 429:
        try:
            seconds = math.trunc(float((reset_time or "").strip()))
        except (ValueError, OverflowError):
            return 0.0
        return seconds + rng.randint(1000, 2000) / 1000.0
    delay = 0.1 * 2.0**retry_number
    return delay + delay * 0.2 * rng.random()


def backoff_delay(status: int, reset_time: str | None, retry_number: int, rng: random.Random) -> float | None:
    """Seconds to wait before retry `retry_number`: ``min(max, initial * 2 ** (retry - 1)) + U(0, jitter)``.

    The headers are not read: that is the point of this baseline.
    """
    if retry_number >= BACKOFF_ATTEMPTS or not _retryable(status):
        return None
    return min(BACKOFF_MAX_S, BACKOFF_INITIAL_S * 2.0 ** (retry_number - 1)) + rng.uniform(0, BACKOFF_JITTER_S)


def no_retry(status: int, reset_time: str | None, retry_number: int, rng: random.Random) -> float | None:
    """The concurrency-cap baseline retries through SQS, never in the invocation."""
    return None


def _retryable(status: int) -> bool:
    return status == 0 or classify(status) in {Outcome.THROTTLED, Outcome.TRANSIENT}


class RetryableFailure(Exception):
    """The upload could not be done in this invocation; Lambda or SQS will deliver it again."""


@dataclass
class BaselineProcessor:
    """One upload: read the object, hand Picsart a presigned URL, store the result, retrying as told."""

    settings: AdapterSettings
    store: ObjectStore
    client: PicsartClient
    retry_delay: RetryDelay
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random | None = None

    def process(self, upload: UploadedObject) -> dict[str, Any]:
        stored = self.store.describe(upload.bucket, upload.key, upload.version_id)
        if stored is None:
            return {"key": upload.key, "status": "gone"}
        image_url = self.store.presigned_get_url(stored, self.settings.presigned_url_ttl_seconds)
        tool, parameters = self.settings.tool, self.settings.tool_parameters
        rng = self.rng or random.Random()
        retry = 0
        while True:
            response: PicsartResponse | None = None
            try:
                response = self.client.call_tool(tool, image_url, parameters)
                status, reset_time = response.status, response.rate_limit.reset_time
            except PicsartTransportError:
                status, reset_time = 0, None
            if response is not None and status == 200:
                break
            retry += 1
            delay = self.retry_delay(status, reset_time, retry, rng)
            if delay is None:
                detail = response.error_detail if response is not None else "no answer"
                if _retryable(status):
                    raise RetryableFailure(f"HTTP {status} after {retry} attempt(s): {detail}")
                return {"key": upload.key, "status": "failed", "http_status": status, "reason": detail}
            self.sleep(delay)
        url = response.result_url
        if url is None:
            return {"key": upload.key, "status": "failed", "http_status": 200, "reason": "no data.url"}
        body, content_type = self.client.download_result(url)
        media_type, extension = FORMAT_MEDIA[tool.output_format(parameters)]
        output_key = result_key(stored.key, tool.name, extension)
        self.store.put_result(
            self.settings.output_bucket,
            output_key,
            body,
            content_type if content_type.startswith("image/") else media_type,
            {
                "source-bucket": stored.bucket,
                "source-key": stored.key,
                "source-version": stored.version_ref,
                "tool": tool.name,
                "picsart-correlation-id": response.correlation_id or "",
            },
        )
        return {"key": upload.key, "status": "succeeded", "output_key": output_key, "attempts": retry + 1}


def build_processor(retry_delay: RetryDelay) -> BaselineProcessor:
    """The processor of one execution environment, from the function's environment (as the adapter's)."""
    settings = get_settings()
    session = boto3.session.Session()
    store = ObjectStore(session.client("s3", config=Config(signature_version="s3v4")))
    client = PicsartClient(
        settings.picsart_base_url,
        SecretApiKey(settings.api_key_secret),
        timeout_seconds=settings.request_timeout_seconds,
    )
    return BaselineProcessor(settings, store, client, retry_delay)


def handle_s3_event(processor: BaselineProcessor, event: dict[str, Any]) -> dict[str, Any]:
    """Every upload an S3 notification names; a retryable failure fails the whole invocation."""
    notification = parse_s3_event(event)
    results = [processor.process(upload) for upload in notification.uploads]
    if notification.malformed:
        raise MalformedEventError("unreadable S3 records: " + "; ".join(notification.malformed))
    return {"results": results, "test_event": notification.is_test_event}


def handle_sqs_event(processor: BaselineProcessor, event: dict[str, Any]) -> dict[str, Any]:
    """S3 notifications delivered through SQS (one per message); a failure fails the batch, whose messages
    come back after the queue's visibility timeout."""
    return {"batch": [handle_s3_event(processor, json.loads(record["body"])) for record in event["Records"]]}
