"""Writing a pipeline's output: the last step's image, or a data step's answer as a JSON sidecar (and, where it
fits, as the output's S3 tags), each with metadata naming its source, rule, pipeline and every step's Picsart
correlation id; and the rule's failure policy, which copies the original to the output key (`copy-original`).

Output keys come from the pipeline's template (`rules.output_key`).
"""

from __future__ import annotations

import json
import re
from pathlib import PurePosixPath
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from picsart_adapter.job import Job, ProcessorSettings
from picsart_adapter.observability import MetricUnit, logger, metrics
from picsart_adapter.rules import output_extension, output_key
from picsart_adapter.storage import ObjectStore
from picsart_adapter.tools import FORMAT_MEDIA

__all__ = ["Outputs", "output_metadata", "tags_from_data"]

#: S3 keeps at most 10 tags an object, keys up to 128 characters and values up to 256, of these characters.
MAX_TAGS: Final = 10
_TAG_CHARACTERS = re.compile(r"[^\w +\-=.:/@]")
_EXTENSION_OF_MEDIA: Final = {media: extension for media, extension in FORMAT_MEDIA.values()}


class Outputs:
    def __init__(self, settings: ProcessorSettings, store: ObjectStore) -> None:
        self._settings = settings
        self._store = store

    @property
    def bucket(self) -> str:
        return self._settings.output_bucket

    def write_image(
        self, job: Job, body: bytes, content_type: str, metadata: dict[str, str], tags: dict[str, str] | None = None
    ) -> str:
        """Store the image the pipeline made at its output key (the extension of its last image step's format, or
        of the answer's content type when the spec names none); return the key."""
        extension = output_extension(job.pipeline) if job.pipeline else None
        if extension is None or extension == "json":
            extension = _EXTENSION_OF_MEDIA.get(content_type.split(";")[0].strip(), "bin")
        if not content_type.startswith("image/"):
            content_type = FORMAT_MEDIA.get(extension.upper(), (content_type, ""))[0]
        key = self._key(job, extension)
        self._store.put_result(self.bucket, key, body, content_type, metadata, tags)
        return key

    def write_data(
        self, job: Job, data: Any, correlation_id: str | None, image: tuple[bytes, str] | None
    ) -> tuple[str, str]:
        """Store a data step's answer: as the output itself (a JSON object at the output key) when the pipeline
        has no image before it, else beside the image the step before made (stored at the output key, with the
        data as its tags where they fit) as `<output key>.json`. Returns (output key, sidecar key)."""
        metadata = output_metadata(job, correlation_id)
        tags = tags_from_data(data)
        sidecar = json.dumps({"tool": job.current_step.tool, "source": metadata, "data": data}, ensure_ascii=False)
        if image is None:
            key = self._key(job, "json")
            self._store.put_result(self.bucket, key, sidecar.encode(), "application/json", metadata, tags)
            return key, key
        body, content_type = image
        key = self.write_image(job, body, content_type, metadata, tags)
        self._store.put_result(self.bucket, f"{key}.json", sidecar.encode(), "application/json", metadata)
        return key, f"{key}.json"

    def copy_original(self, job: Job, reason: str) -> tuple[str, dict[str, Any]]:
        """Apply the rule's failure policy to a job that failed for good: the reason to record and the details to
        add to the record (the copy's key, or why the copy could not be made)."""
        rule, pipeline, stored = job.rule, job.pipeline, job.stored
        if rule is None or pipeline is None or stored is None or rule.on_failure != "copy-original":
            return reason, {}
        key = self._key(job, PurePosixPath(stored.key).suffix.lstrip(".").lower() or "bin")
        metadata = {**output_metadata(job), "fallback": "copy-original"}
        try:
            self._store.copy_original(stored, self.bucket, key, metadata)
        except (ClientError, BotoCoreError) as error:
            logger.error("the original could not be copied", extra={"output_key": key, "error": str(error)})
            return f"{reason}; copying the original failed: {error}", {"fallback": "copy-original"}
        metrics.add_metric(name="OriginalsCopied", unit=MetricUnit.Count, value=1)
        logger.warning("job failed: the original is copied to its output key", extra={"output_key": key})
        copied = f"{reason}; the original was copied to {key} (rule {rule.name!r}: on_failure copy-original)"
        return copied, {"fallback": "copy-original", "output_bucket": self.bucket, "output_key": key}

    @staticmethod
    def _key(job: Job, extension: str) -> str:
        stored, pipeline, rule = job.stored, job.pipeline, job.rule
        assert stored is not None
        assert pipeline is not None
        assert rule is not None
        return output_key(pipeline, rule, stored.key, stored.version_ref, extension)


def output_metadata(job: Job, last_correlation_id: str | None = None) -> dict[str, str]:
    """What every output carries: its source, the rule and pipeline that made it, and each step's Picsart
    correlation id (comma-separated, in step order)."""
    stored, pipeline = job.stored, job.pipeline
    assert stored is not None
    assert pipeline is not None
    ids = [*job.step_correlation_ids, *([last_correlation_id or ""] if last_correlation_id is not None else [])]
    return {
        "source-bucket": stored.bucket,
        "source-key": stored.key,
        "source-version": stored.version_ref,
        "rule": job.rule.name if job.rule else "",
        "pipeline": pipeline.name,
        "tool": job.current_step.tool,
        "picsart-correlation-id": ids[-1] if ids else "",
        "picsart-correlation-ids": ",".join(ids),
    }


def tags_from_data(data: Any) -> dict[str, str]:
    """S3 tags from a data answer that is a list of labels (the tagging tool's): `{"tags": [{"label": "dog",
    "confidence": 0.9}, ...]}` or a plain list, labels as keys and confidences as values, the first ten. Any other
    answer has no tags that fit (it is in the sidecar)."""
    items = data.get("tags") if isinstance(data, dict) else data
    if not isinstance(items, list):
        return {}
    tags: dict[str, str] = {}
    for item in items:
        label, value = (item, "") if isinstance(item, str) else _label_of(item)
        name = _TAG_CHARACTERS.sub("_", label).strip()[:128]
        if name and name not in tags:
            tags[name] = _TAG_CHARACTERS.sub("_", value)[:256]
        if len(tags) == MAX_TAGS:
            break
    return tags


def _label_of(item: Any) -> tuple[str, str]:
    if not isinstance(item, dict):
        return "", ""
    label = next((str(item[name]) for name in ("label", "tag", "name") if item.get(name)), "")
    confidence = item.get("confidence", item.get("score"))
    return label, "" if confidence is None else str(confidence)
