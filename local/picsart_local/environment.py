"""The whole local stack in one object: moto server + resources from template.yaml, the Picsart emulator
(or any Picsart-compatible server), and the runner playing Lambda and its event sources.

The command line and the integration tests both use this, so what a developer runs is what is tested.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from picsart_adapter.jobs import JobStatus, JobStore, split_sort_key
from picsart_adapter.s3_events import MalformedEventError, parse_s3_event
from picsart_local.emulator import EmulatorSettings, PicsartEmulator
from picsart_local.moto_throttle import ThrottleLimits
from picsart_local.runner import LocalRunner
from picsart_local.stack import LocalStack

#: Same stack name as samconfig.toml, so the sample events' bucket name is the local input bucket's too.
DEFAULT_STACK_NAME = "picsart-adapter"
#: The key the embedded emulator accepts; it is stored in the local Secrets Manager like a real one.
LOCAL_API_KEY = "local-emulator-key"
REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
TERMINAL = frozenset({JobStatus.SUCCEEDED.value, JobStatus.FAILED.value, JobStatus.SKIPPED.value})


def default_template() -> Path:
    """template.yaml of the current folder when there is one, else the repository's."""
    here = Path.cwd() / "template.yaml"
    return here if here.exists() else REPOSITORY_ROOT / "template.yaml"


@dataclass
class LocalOptions:
    template_path: Path = field(default_factory=default_template)
    stack_name: str = DEFAULT_STACK_NAME
    #: Template parameter overrides, as `sam deploy --parameter-overrides` takes them.
    parameters: dict[str, str] = field(default_factory=dict)
    #: Extra environment for every function (settings the template leaves at their defaults).
    function_environment: dict[str, str] = field(default_factory=dict)
    #: The functions' rules file (PICSART_RULES_FILE, as an absolute path) in place of the RulesFile parameter.
    rules_file: Path | None = None
    emulator: EmulatorSettings | None = None
    #: A Picsart-compatible server to call instead of the embedded emulator (PICSART_BASE_URL).
    picsart_base_url: str | None = None
    picsart_api_key: str | None = None
    log_dir: Path = field(default_factory=lambda: Path("out") / "logs")
    upload_concurrency: int = 16
    #: False: no S3 notification or queue triggers functions (for one-off `invoke`s).
    event_sources: bool = True
    #: Initialise every execution environment before the first event (see LocalRunner.prewarm).
    prewarm: bool = False
    #: DynamoDB's per-item throughput cap on the stack's tables (moto_throttle.py); None: no cap (moto's own).
    item_throttle: ThrottleLimits | None = None

    @classmethod
    def from_environment(cls, **overrides: Any) -> LocalOptions:
        """Options honouring PICSART_BASE_URL / PICSART_API_KEY and the emulator's PICSART_EMULATOR_* knobs."""
        options = cls(**overrides)
        options.picsart_base_url = options.picsart_base_url or os.environ.get("PICSART_BASE_URL") or None
        options.picsart_api_key = options.picsart_api_key or os.environ.get("PICSART_API_KEY") or None
        if options.picsart_base_url and not options.picsart_api_key:
            raise ValueError("PICSART_BASE_URL is set: set PICSART_API_KEY to the key that server accepts")
        return options


@dataclass(frozen=True)
class UploadOutcome:
    """Where one upload ended, read from its job record (or the dead-letter queue)."""

    key: str
    status: str  # a JobStatus value, "dead-lettered", or "lost"
    reason: str | None = None
    output_key: str | None = None
    picsart_correlation_id: str | None = None
    record: Mapping[str, Any] | None = None
    #: Each pipeline's record of the version, by pipeline name (empty when it reached no pipeline).
    pipelines: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def of_records(cls, key: str, records: list[dict[str, Any]]) -> UploadOutcome | None:
        """Where the newest version stands, from the key's job records (oldest first), or None while it has
        none. A version whose rule runs several pipelines has one record each: it has ended when every pipeline
        of its rule has, and its status is `succeeded` when each succeeded, else the first other ending."""
        if not records:
            return None
        record = records[-1]
        version = split_sort_key(str(record.get("sk", "")))[0]
        # A pipeline's record is named by its sort key, which every write carries; `rule_pipelines` may be on
        # any of them (test_an_upload_has_not_ended_while_one_pipeline_record_lacks_the_rule_pipelines).
        of_version = [(split_sort_key(str(r.get("sk", ""))), r) for r in records]
        pipelines = {pipeline: r for (ref, pipeline), r in of_version if pipeline and ref == version}
        status = str(record.get("status"))
        if pipelines:
            named = [str(name) for r in pipelines.values() for name in r.get("rule_pipelines") or []]
            expected = list(dict.fromkeys([*named, *pipelines]))
            statuses = [str(pipelines[name].get("status")) if name in pipelines else "processing" for name in expected]
            unfinished = [each for each in statuses if each not in TERMINAL]
            ended_otherwise = [each for each in statuses if each != "succeeded"]
            status = (unfinished or ended_otherwise or ["succeeded"])[0]
            record = next((r for r in pipelines.values() if str(r.get("status")) == status), record)
        return cls(
            key=key,
            status=status,
            reason=_text(record.get("reason")),
            output_key=_text(record.get("output_key")),
            picsart_correlation_id=_text(record.get("picsart_correlation_id")),
            record=record,
            pipelines=pipelines,
        )

    @property
    def output_keys(self) -> dict[str, str]:
        return {name: str(r["output_key"]) for name, r in self.pipelines.items() if r.get("output_key")}


class LocalEnvironment:
    def __init__(self, options: LocalOptions | None = None) -> None:
        self.options = options or LocalOptions.from_environment()
        self.emulator: PicsartEmulator | None = None
        self.stack: LocalStack | None = None
        self.runner: LocalRunner | None = None

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> LocalEnvironment:
        options = self.options
        try:
            if options.picsart_base_url:
                base_url, api_key = options.picsart_base_url, options.picsart_api_key or ""
            else:
                settings = options.emulator or EmulatorSettings.from_env()
                settings = settings.model_copy(update={"api_key": LOCAL_API_KEY})
                self.emulator = PicsartEmulator(settings)
                self.emulator.start(host="127.0.0.1", port=0)
                base_url, api_key = self.emulator.base_url, LOCAL_API_KEY
            parameters = {"PicsartBaseUrl": base_url, **options.parameters}
            secret_name = parameters.get("PicsartApiKeySecretName", "picsart/api-key")
            self.stack = LocalStack(
                template_path=options.template_path,
                stack_name=options.stack_name,
                parameter_overrides=parameters,
                secrets={secret_name: api_key},
                function_environment=options.function_environment,
                rules_file=options.rules_file,
                item_throttle=options.item_throttle,
            )
            self.stack.start()
            options.log_dir.mkdir(parents=True, exist_ok=True)
            self.runner = LocalRunner(
                self.stack,
                log_dir=options.log_dir,
                upload_concurrency=options.upload_concurrency,
                event_sources=options.event_sources,
                prewarm=options.prewarm,
            )
            self.runner.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for part in (self.runner, self.stack, self.emulator):
            if part is not None:
                part.stop()
        self.runner = self.stack = self.emulator = None

    def __enter__(self) -> LocalEnvironment:
        return self if self.stack is not None else self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # -- resources -------------------------------------------------------------------------------------
    @property
    def outputs(self) -> dict[str, str]:
        return dict(self._stack.outputs)

    @property
    def input_bucket(self) -> str:
        return self._stack.outputs["InputBucketName"]

    @property
    def output_bucket(self) -> str:
        return self._stack.outputs["OutputBucketName"]

    def client(self, service: str) -> Any:
        return self._stack.client(service)

    @property
    def jobs(self) -> JobStore:
        table = self._stack.resource("dynamodb").Table(self._stack.outputs["JobsTableName"])
        return JobStore(table)

    # -- uploads ---------------------------------------------------------------------------------------
    def upload(self, key: str, body: bytes, content_type: str | None = None) -> None:
        extra = {"ContentType": content_type} if content_type else {}
        self.client("s3").put_object(Bucket=self.input_bucket, Key=key, Body=body, **extra)

    def upload_file(self, path: Path, key: str | None = None) -> str:
        key = key or f"uploads/{path.name}"
        self.upload(key, path.read_bytes())
        return key

    def outcome(self, key: str) -> UploadOutcome | None:
        """Where the newest version of `key` stands, or None while it has no record."""
        return UploadOutcome.of_records(key, self.jobs.for_object(self.input_bucket, key))

    def wait_for(self, keys: Iterable[str], timeout: float = 120.0) -> dict[str, UploadOutcome]:
        """Wait until every upload has ended (succeeded, failed, skipped or dead-lettered).

        Those that have not ended by `timeout` are reported as "lost" — which a caller treats as an error.
        """
        pending = list(dict.fromkeys(keys))
        ended: dict[str, UploadOutcome] = {}
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            dead = self.dead_lettered_keys()
            for key in list(pending):
                found = self.outcome(key)
                if found is not None and found.status in TERMINAL:
                    ended[key] = found
                    pending.remove(key)
                elif key in dead:
                    ended[key] = UploadOutcome(
                        key, "dead-lettered", reason=dead[key], record=found.record if found else None
                    )
                    pending.remove(key)
            if pending:
                time.sleep(0.2)
        for key in pending:
            last = self.outcome(key)
            ended[key] = UploadOutcome(
                key, "lost", reason=f"not finished after {timeout:.0f} s", record=last.record if last else None
            )
        return ended

    def dead_lettered_keys(self) -> dict[str, str]:
        """Keys named by messages in the dead-letter queue, with each message's reason (peeked, not taken)."""
        sqs = self.client("sqs")
        found: dict[str, str] = {}
        answer = sqs.receive_message(
            QueueUrl=self._stack.outputs["DeadLetterQueueUrl"],
            MaxNumberOfMessages=10,
            VisibilityTimeout=0,
            MessageAttributeNames=["All"],
        )
        for message in answer.get("Messages", []):
            attributes = message.get("MessageAttributes", {})
            reason = (attributes.get("reason") or attributes.get("ErrorMessage") or {}).get("StringValue", "")
            for key in _keys_in(message.get("Body", "")):
                found[key] = reason
        return found

    def download_output(self, output_key: str) -> bytes:
        answer = self.client("s3").get_object(Bucket=self.output_bucket, Key=output_key)
        return bytes(answer["Body"].read())

    @property
    def _stack(self) -> LocalStack:
        if self.stack is None:
            raise RuntimeError("the local environment is not started")
        return self.stack


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _keys_in(body: str) -> list[str]:
    """Object keys named by a dead-letter message: a retry message, or an S3 event Lambda gave up on."""
    try:
        document = json.loads(body)
    except json.JSONDecodeError:
        return []
    if not isinstance(document, dict):
        return []
    if isinstance(document.get("key"), str):
        return [document["key"]]
    try:
        return [upload.key for upload in parse_s3_event(document).uploads]
    except MalformedEventError:
        return []
