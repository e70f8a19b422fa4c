"""S3 event notifications, read into the uploads they announce.

Keys arrive URL-encoded with `+` for a space (S3 notification format), so they are decoded here, once.
`s3:TestEvent` (sent by S3 when a notification is configured) announces no upload.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus


class MalformedEventError(ValueError):
    """The event is not an S3 notification this adapter can read; the message says what is missing."""


@dataclass(frozen=True)
class UploadedObject:
    """One object version to process, and the S3 request that created it (the correlation id)."""

    bucket: str
    key: str
    size: int | None = None
    etag: str | None = None
    version_id: str | None = None
    s3_request_id: str | None = None
    event_time: str | None = None


@dataclass(frozen=True)
class S3Notification:
    uploads: list[UploadedObject]
    #: Records that could not be read, each with what was wrong (never silently dropped).
    malformed: list[str]
    is_test_event: bool = False


def is_s3_test_event(event: Mapping[str, Any]) -> bool:
    return event.get("Event") == "s3:TestEvent"


def parse_s3_event(event: Mapping[str, Any]) -> S3Notification:
    """All ObjectCreated uploads of an S3 notification.

    Raises MalformedEventError when the event as a whole is not an S3 notification; a single bad record
    is reported in `malformed` so the good records of the same event are still processed.
    """
    if not isinstance(event, Mapping):
        raise MalformedEventError(f"event must be a JSON object, got {type(event).__name__}")
    if is_s3_test_event(event):
        return S3Notification(uploads=[], malformed=[], is_test_event=True)
    records = event.get("Records")
    if not isinstance(records, list):
        raise MalformedEventError("not an S3 notification: 'Records' is missing or not a list")
    uploads: list[UploadedObject] = []
    malformed: list[str] = []
    for index, record in enumerate(records):
        try:
            upload = _parse_record(record)
        except MalformedEventError as error:
            malformed.append(f"Records[{index}]: {error}")
            continue
        if upload is not None:
            uploads.append(upload)
    return S3Notification(uploads=uploads, malformed=malformed)


def _parse_record(record: Any) -> UploadedObject | None:
    if not isinstance(record, Mapping):
        raise MalformedEventError("record is not an object")
    if record.get("eventSource") not in (None, "aws:s3"):
        raise MalformedEventError(f"eventSource is {record.get('eventSource')!r}, not 'aws:s3'")
    event_name = str(record.get("eventName", ""))
    if event_name and not event_name.startswith("ObjectCreated"):
        return None  # only creations are uploads; others need no processing
    s3 = record.get("s3")
    if not isinstance(s3, Mapping):
        raise MalformedEventError("'s3' is missing")
    bucket = _field(s3, "bucket", "name")
    raw_key = _field(s3, "object", "key")
    obj = s3["object"]
    size = obj.get("size")
    response = record.get("responseElements")
    request_id = response.get("x-amz-request-id") if isinstance(response, Mapping) else None
    return UploadedObject(
        bucket=bucket,
        key=unquote_plus(raw_key),
        size=int(size) if isinstance(size, int | float) else None,
        etag=str(obj["eTag"]).strip('"') if obj.get("eTag") else None,
        version_id=str(obj["versionId"]) if obj.get("versionId") else None,
        s3_request_id=str(request_id) if request_id else None,
        event_time=str(record["eventTime"]) if record.get("eventTime") else None,
    )


def _field(s3: Mapping[str, Any], section: str, name: str) -> str:
    part = s3.get(section)
    value = part.get(name) if isinstance(part, Mapping) else None
    if not isinstance(value, str) or not value:
        raise MalformedEventError(f"'s3.{section}.{name}' is missing or empty")
    return value
