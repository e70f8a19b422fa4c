"""S3 event notifications read into uploads (AWS event message structure, version 2.1).

Keys arrive URL-encoded with `+` for a space; decoding them once and exactly matters because the object is
then fetched and presigned by that key (a wrong key is a 404 on S3, then a useless Picsart call or skip).
"""

from __future__ import annotations

from typing import Any

import pytest

from picsart_adapter.s3_events import MalformedEventError, UploadedObject, is_s3_test_event, parse_s3_event

from .conftest import S3_PUT_EVENT, s3_record


def test_sample_event_is_read_into_one_upload(s3_put_event: dict[str, Any]) -> None:
    notification = parse_s3_event(s3_put_event)
    assert notification.malformed == []
    assert notification.is_test_event is False
    assert notification.uploads == [
        UploadedObject(
            bucket="input-bucket-123456789012",
            key="uploads/my photo!.jpg",
            size=1024,
            etag="d41d8cd98f00b204e9800998ecf8427e",
            version_id="096fKKXTRTtl3on89fVO.nfljtsv6qko",
            s3_request_id="C3D13FE58DE4C810",
            event_time="2024-05-06T07:08:09.123Z",
        )
    ]


def test_fixture_is_not_modified_by_parsing(s3_put_event: dict[str, Any]) -> None:
    parse_s3_event(s3_put_event)
    assert s3_put_event == S3_PUT_EVENT


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        ("my+photo%21.jpg", "my photo!.jpg"),
        ("caf%C3%A9.png", "café.png"),
        ("100%25+real.png", "100% real.png"),
        ("a%2Bb.png", "a+b.png"),
        ("folder/sub+dir/%E5%86%99%E7%9C%9F.webp", "folder/sub dir/写真.webp"),
        ("plain.jpg", "plain.jpg"),
        ("x%3Dy%26z%3F.jpg", "x=y&z?.jpg"),
    ],
)
def test_keys_are_url_decoded_with_plus_as_space(encoded: str, decoded: str) -> None:
    event = {"Records": [s3_record(encoded)]}
    assert [upload.key for upload in parse_s3_event(event).uploads] == [decoded]


def test_quoted_etag_is_unquoted_and_absent_version_is_none(s3_put_event: dict[str, Any]) -> None:
    obj = s3_put_event["Records"][0]["s3"]["object"]
    obj["eTag"] = '"0123abcd"'
    del obj["versionId"]
    del s3_put_event["Records"][0]["responseElements"]
    (upload,) = parse_s3_event(s3_put_event).uploads
    assert upload.etag == "0123abcd"
    assert upload.version_id is None
    assert upload.s3_request_id is None


def test_s3_test_event_announces_no_upload() -> None:
    """S3 sends `s3:TestEvent` when a notification is configured: acknowledged, never processed."""
    event = {
        "Service": "Amazon S3",
        "Event": "s3:TestEvent",
        "Time": "2024-05-06T07:08:09.123Z",
        "Bucket": "input-bucket-123456789012",
        "RequestId": "5582815E1AEA5ADF",
        "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE",
    }
    assert is_s3_test_event(event)
    notification = parse_s3_event(event)
    assert notification.is_test_event is True
    assert notification.uploads == []
    assert notification.malformed == []


def test_ordinary_event_is_not_a_test_event(s3_put_event: dict[str, Any]) -> None:
    assert not is_s3_test_event(s3_put_event)


@pytest.mark.parametrize("event", [{}, {"Records": None}, {"Records": {"s3": {}}}, {"detail-type": "Object Created"}])
def test_event_without_records_list_is_malformed(event: dict[str, Any]) -> None:
    with pytest.raises(MalformedEventError, match="Records"):
        parse_s3_event(event)


def test_event_that_is_not_an_object_is_malformed() -> None:
    with pytest.raises(MalformedEventError):
        parse_s3_event(["Records"])  # type: ignore[arg-type]


def test_one_bad_record_among_good_ones_is_listed_and_the_good_ones_are_kept() -> None:
    """One unreadable record never costs the others; it is never silently dropped either."""
    bad = s3_record("ignored.jpg")
    del bad["s3"]["object"]["key"]
    event = {"Records": [s3_record("first.jpg"), bad, s3_record("third.png")]}
    notification = parse_s3_event(event)
    assert [u.key for u in notification.uploads] == ["first.jpg", "third.png"]
    assert len(notification.malformed) == 1
    assert notification.malformed[0].startswith("Records[1]")
    assert "s3.object.key" in notification.malformed[0]


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (lambda r: r["s3"]["bucket"].pop("name"), "s3.bucket.name"),
        (lambda r: r["s3"]["object"].update(key=""), "s3.object.key"),
        (lambda r: r.pop("s3"), "'s3'"),
        (lambda r: r.update(eventSource="aws:sqs"), "eventSource"),
    ],
)
def test_malformed_record_names_what_is_wrong(damage: Any, named: str) -> None:
    record = s3_record("photo.jpg")
    damage(record)
    notification = parse_s3_event({"Records": [record]})
    assert notification.uploads == []
    assert len(notification.malformed) == 1
    assert named in notification.malformed[0]


def test_record_that_is_not_an_object_is_listed() -> None:
    notification = parse_s3_event({"Records": ["not a record", s3_record("ok.jpg")]})
    assert [u.key for u in notification.uploads] == ["ok.jpg"]
    assert notification.malformed == ["Records[0]: record is not an object"]


@pytest.mark.parametrize(
    "event_name", ["ObjectRemoved:Delete", "ObjectRemoved:DeleteMarkerCreated", "ObjectRestore:Post"]
)
def test_non_creation_records_are_ignored(event_name: str) -> None:
    event = {"Records": [s3_record("gone.jpg", event_name=event_name), s3_record("new.jpg")]}
    notification = parse_s3_event(event)
    assert [u.key for u in notification.uploads] == ["new.jpg"]
    assert notification.malformed == []


@pytest.mark.parametrize(
    "event_name",
    ["ObjectCreated:Put", "ObjectCreated:Post", "ObjectCreated:Copy", "ObjectCreated:CompleteMultipartUpload"],
)
def test_every_creation_kind_is_an_upload(event_name: str) -> None:
    assert len(parse_s3_event({"Records": [s3_record("a.jpg", event_name=event_name)]}).uploads) == 1
