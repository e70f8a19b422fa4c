"""A support report for one uploaded object, read from its job records.

Picsart's troubleshooting guide, "Reporting issues": give the `X-Picsart-Correlation-Id`, the error body and
the details of the request. This prints, for every version of one key, every attempt with its time, HTTP
status, Picsart correlation id, rate-limit headers and error body, ready to paste into a support request. A
version has one record per pipeline its rule ran, and a pipeline's attempts are printed step by step.
It reads the jobs table through boto3, so it works against the local stack (AWS_ENDPOINT_URL) and a
deployed stack alike.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from picsart_adapter.jobs import split_sort_key

#: Record fields worth a line of their own in the header of each version, in this order.
_HEADER_FIELDS = (
    ("status", "status"),
    ("reason", "reason"),
    ("rule", "rule"),
    ("pipeline_hash", "pipeline definition"),
    ("rerun_reason", "run again"),
    ("replay", "sent again by"),
    ("size", "size (bytes)"),
    ("s3_request_id", "S3 request id"),
    ("transaction_id", "Picsart transaction id"),
    ("output_key", "output key"),
    ("sidecar_key", "sidecar key"),
    ("fallback", "failure policy"),
    ("due_at", "next attempt due"),
    ("created_at", "first seen"),
    ("completed_at", "completed"),
)


def support_report(bucket: str, key: str, records: Sequence[Mapping[str, Any]]) -> str:
    """The report as text: one section per version of the object, oldest first."""
    lines = [f"Picsart support report for s3://{bucket}/{key}"]
    if not records:
        lines.append("No job record: the object was never seen by the adapter (check the bucket and key).")
        return "\n".join(lines) + "\n"
    for record in records:
        lines.append("")
        version, pipeline = split_sort_key(str(record.get("sk", "?")))
        lines.append(f"version {version}" + (f", pipeline {pipeline}" if pipeline else ""))
        for field, label in _HEADER_FIELDS:
            if record.get(field) not in (None, ""):
                lines.append(f"  {label + ':':24}{record[field]}")
        attempts = list(record.get("attempts") or [])
        lines.append(f"  {'attempts:':24}{len(attempts)}")
        steps = list(record.get("steps") or [])
        for number, tool in enumerate(steps, start=1):
            of_step = [attempt for attempt in attempts if int(attempt.get("step") or 1) == number]
            lines.append(f"  step {number} ({tool}): {_step_state(record, number, of_step)}")
            for attempt in of_step:
                lines.extend("  " + line for line in _attempt_lines(attempt))
        for attempt in attempts if not steps else []:
            lines.extend(_attempt_lines(attempt))
    return "\n".join(lines) + "\n"


def _step_state(record: Mapping[str, Any], number: int, attempts: Sequence[Mapping[str, Any]]) -> str:
    """How far one step got: done (with its answer's correlation id), being worked on, or not reached."""
    done = int(record.get("steps_done") or 0)
    if record.get("status") == "succeeded" or number <= done:
        last = attempts[-1].get("picsart_correlation_id") if attempts else None
        return "done" + (f", X-Picsart-Correlation-Id {last}" if last else "")
    if attempts:
        return f"{len(attempts)} attempt{'s' if len(attempts) > 1 else ''}, {record.get('status', '?')}"
    return "not reached"


def _attempt_lines(attempt: Mapping[str, Any]) -> list[str]:
    number = f"#{attempt.get('number', '?')}" + (f" poll {attempt['poll']}" if attempt.get("poll") else "")
    status = attempt.get("http_status")
    if attempt.get("result_fetch"):
        answer = "the answered result fetched again (no call)"
    else:
        answer = f"HTTP {status if status is not None else '(no answer)'}"
    lines = [
        f"  - attempt {number} at {attempt.get('started_at', '?')}: {answer}, {attempt.get('outcome', '?')}",
        f"      X-Picsart-Correlation-Id: {attempt.get('picsart_correlation_id') or '(none)'}",
    ]
    rate_limit = attempt.get("rate_limit") or {}
    if rate_limit:
        names = {
            "limit": "X-Picsart-RateLimit-Limit",
            "available": "X-Picsart-RateLimit-Available",
            "reset_time": "X-Picsart-RateLimit-Reset-Time",
            "credits": "X-Picsart-Credit-Available",
        }
        for field, header in names.items():
            if field in rate_limit:
                lines.append(f"      {header}: {rate_limit[field]}")
    if attempt.get("duration_ms") is not None:
        lines.append(f"      duration: {attempt['duration_ms']} ms")
    if attempt.get("error"):
        lines.append(f"      error: {attempt['error']}")
    if attempt.get("error_body"):
        lines.append(f"      error body: {_compact(str(attempt['error_body']))}")
    return lines


def _compact(body: str) -> str:
    """A JSON body on one line (as Picsart sent it, re-serialised compactly); anything else as it is."""
    try:
        return json.dumps(json.loads(body), separators=(",", ":"), ensure_ascii=False)
    except ValueError:
        return body
