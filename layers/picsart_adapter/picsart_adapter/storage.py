"""S3: reading what was uploaded, handing Picsart a short-lived URL to it, and writing results."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from botocore.exceptions import ClientError

from picsart_adapter.input_checks import SNIFF_BYTES

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

    @property
    def version_ref(self) -> str:
        """The version this job is about: the version id when the bucket is versioned, else the ETag."""
        return f"version:{self.version_id}" if self.version_id else f"etag:{self.etag}"


_SAME_FORMAT = {"jpg": {".jpg", ".jpeg"}, "png": {".png"}, "webp": {".webp"}}


def result_key(source_key: str, tool_name: str, extension: str) -> str:
    """Output key: the tool, then the source key, with the output format's extension added when the source
    has another (`a.jpg` -> `removebg/a.jpg.png`), so `a.jpg` and `a.png` never overwrite each other."""
    if PurePosixPath(source_key).suffix.lower() in _SAME_FORMAT.get(extension, set()):
        return f"{tool_name}/{source_key}"
    return f"{tool_name}/{source_key}.{extension}"


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
                part = self._s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{SNIFF_BYTES - 1}", **version)
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
        )

    def presigned_get_url(self, obj: StoredObject, ttl_seconds: int) -> str:
        """A GET URL for exactly this version, valid `ttl_seconds`. It is a credential: never log it."""
        params: dict[str, Any] = {"Bucket": obj.bucket, "Key": obj.key}
        if obj.version_id:
            params["VersionId"] = obj.version_id
        return self._s3.generate_presigned_url("get_object", Params=params, ExpiresIn=ttl_seconds)

    def put_result(self, bucket: str, key: str, body: bytes, content_type: str, metadata: dict[str, str]) -> None:
        # S3 user metadata travels as HTTP headers: ASCII only, so values are percent-encoded.
        safe = {name: quote(value, safe="/:@=+,;-_.~") for name, value in metadata.items()}
        self._s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type, Metadata=safe)


def _total_size(content_range: str | None, content_length: int) -> int:
    """The object's size from a ranged GET: `bytes 0-31/5000` -> 5000 (no Content-Range: the whole object)."""
    if content_range and "/" in content_range:
        total = content_range.rpartition("/")[2]
        if total.isdigit():
            return int(total)
    return content_length
