"""S3: reading what was uploaded, handing Picsart a short-lived URL to it, and writing results."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from botocore.exceptions import ClientError

from picsart_adapter.image_header import HEADER_BYTES

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_MISSING = {"404", "NoSuchKey", "NoSuchVersion", "NotFound"}


@dataclass(frozen=True)
class StoredObject:
    """What S3 says of one object version right now."""

    bucket: str
    key: str
    size: int
    etag: str
    version_id: str | None
    head: bytes
    #: S3 user metadata, the names without `x-amz-meta-` (what a rule's `metadata` matches).
    metadata: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None

    @property
    def version_ref(self) -> str:
        """The version this job is about: the version id when the bucket is versioned, else the ETag."""
        return f"version:{self.version_id}" if self.version_id else f"etag:{self.etag}"


class ObjectStore:
    def __init__(self, s3: S3Client) -> None:
        self._s3 = s3

    def describe(self, bucket: str, key: str, version_id: str | None) -> StoredObject | None:
        """Size, identity and first bytes of the object, or None when it no longer exists.

        One ranged GET tells all of it (the total size is in Content-Range); an empty object, which has no
        byte 0 to give (InvalidRange), is described by a HEAD instead.
        """
        version: dict[str, Any] = {"VersionId": version_id} if version_id else {}
        try:
            try:
                part = self._s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{HEADER_BYTES - 1}", **version)
                answer: Mapping[str, Any] = part
                first = part["Body"].read()
                size = _total_size(part.get("ContentRange"), int(part["ContentLength"]))
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "InvalidRange":
                    raise
                answer, first = self._s3.head_object(Bucket=bucket, Key=key, **version), b""
                size = int(answer["ContentLength"])
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise
        found = answer.get("VersionId")
        return StoredObject(
            bucket=bucket,
            key=key,
            size=size,
            etag=str(answer.get("ETag", "")).strip('"'),
            # "null" is the version id S3 gives objects written before versioning was enabled.
            version_id=found if found and found != "null" else None,
            head=first,
            metadata={str(name).lower(): str(value) for name, value in (answer.get("Metadata") or {}).items()},
            content_type=answer.get("ContentType"),
        )

    def presigned_get_url(self, obj: StoredObject, ttl_seconds: int) -> str:
        """A GET URL for exactly this version, valid `ttl_seconds`. It is a credential: never log it."""
        params: dict[str, Any] = {"Bucket": obj.bucket, "Key": obj.key}
        if obj.version_id:
            params["VersionId"] = obj.version_id
        return self._s3.generate_presigned_url("get_object", Params=params, ExpiresIn=ttl_seconds)

    def put_result(
        self,
        bucket: str,
        key: str,
        body: bytes,
        content_type: str,
        metadata: dict[str, str],
        tags: dict[str, str] | None = None,
    ) -> None:
        extra: dict[str, Any] = {"Tagging": urlencode(tags)} if tags else {}
        self._s3.put_object(
            Bucket=bucket, Key=key, Body=body, ContentType=content_type, Metadata=_safe_metadata(metadata), **extra
        )

    def copy_original(self, obj: StoredObject, bucket: str, key: str, metadata: dict[str, str]) -> None:
        """Copy exactly this version of the source to `bucket`/`key` (a rule's `copy-original` failure policy),
        with the metadata given instead of the source's."""
        source: dict[str, Any] = {"Bucket": obj.bucket, "Key": obj.key}
        if obj.version_id:
            source["VersionId"] = obj.version_id
        request: dict[str, Any] = {"ContentType": obj.content_type} if obj.content_type else {}
        self._s3.copy_object(
            Bucket=bucket,
            Key=key,
            CopySource=source,  # type: ignore[arg-type]
            MetadataDirective="REPLACE",
            Metadata=_safe_metadata(metadata),
            # The source's tags are not copied: reading them would need s3:GetObjectTagging for nothing.
            TaggingDirective="REPLACE",
            **request,
        )


def _safe_metadata(metadata: dict[str, str]) -> dict[str, str]:
    """S3 user metadata travels as HTTP headers: ASCII only, so values are percent-encoded."""
    return {name: quote(value, safe="/:@=+,;-_.~") for name, value in metadata.items()}


def _total_size(content_range: str | None, content_length: int) -> int:
    """The object's size from a ranged GET: `bytes 0-31/5000` -> 5000 (no Content-Range: the whole object)."""
    if content_range and "/" in content_range:
        total = content_range.rpartition("/")[2]
        if total.isdigit():
            return int(total)
    return content_length
