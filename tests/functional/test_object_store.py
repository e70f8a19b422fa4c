"""Describing an upload against S3 (moto server, the input bucket built from template.yaml, versioned)."""

from __future__ import annotations

from typing import Any

import pytest

from picsart_adapter.image_header import HEADER_BYTES
from picsart_adapter.storage import ObjectStore
from picsart_local.stack import LocalStack


@pytest.fixture(scope="module")
def s3(stack: LocalStack) -> Any:
    return stack.client("s3")


@pytest.fixture(scope="module")
def bucket(stack: LocalStack) -> str:
    return stack.outputs["InputBucketName"]


@pytest.mark.parametrize("size", [0, 3, 5000, HEADER_BYTES, HEADER_BYTES + 5000])
def test_one_request_tells_size_identity_and_first_bytes(s3: Any, bucket: str, size: int) -> None:
    body = bytes(range(256)) * (size // 256 + 1)
    put = s3.put_object(Bucket=bucket, Key=f"describe/{size}.bin", Body=body[:size])
    described = ObjectStore(s3).describe(bucket, f"describe/{size}.bin", put["VersionId"])
    assert described is not None
    assert described.size == size, "the total size, not the size of the range read"
    assert described.head == body[: min(size, HEADER_BYTES)]
    assert (described.version_id, described.etag) == (put["VersionId"], put["ETag"].strip('"'))


def test_the_version_named_is_described_not_the_latest(s3: Any, bucket: str) -> None:
    first = s3.put_object(Bucket=bucket, Key="describe/versions.bin", Body=b"first version")
    s3.put_object(Bucket=bucket, Key="describe/versions.bin", Body=b"second, longer version")
    described = ObjectStore(s3).describe(bucket, "describe/versions.bin", first["VersionId"])
    assert described is not None
    assert (described.size, described.head) == (13, b"first version")
    latest = ObjectStore(s3).describe(bucket, "describe/versions.bin", None)
    assert latest is not None
    assert latest.size == 22


def test_a_deleted_object_or_version_is_described_as_gone(s3: Any, bucket: str) -> None:
    put = s3.put_object(Bucket=bucket, Key="describe/gone.bin", Body=b"soon gone")
    s3.delete_object(Bucket=bucket, Key="describe/gone.bin", VersionId=put["VersionId"])
    store = ObjectStore(s3)
    assert store.describe(bucket, "describe/gone.bin", put["VersionId"]) is None
    assert store.describe(bucket, "describe/gone.bin", None) is None
    assert store.describe(bucket, "describe/never-there.bin", None) is None
