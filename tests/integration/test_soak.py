"""A small soak: faults from Picsart and killed invocations, then every upload accounted for, and nothing
secret in what the functions logged, queued or recorded.

One soak runs for the module (80 uploads, 8 at a time, the default fault mix, kill rates raised so kills
happen in so few uploads), every upload through the soak's two-step pipeline. Its figures are checked by the
first tests; what it left behind (function logs, every queue message, every item of the table, the emulator's
call log) by the others. How one upload's records and dead letters make its end (`upload_entry`) is checked on
its own at the end.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import urllib3
from botocore.config import Config

from picsart_adapter.completion_events import PUT_FAILED_MESSAGE
from picsart_adapter.rules import parse_rules
from picsart_local.bench.pipeline import SOAK_PIPELINE, PipelineStep, rules_document
from picsart_local.cli import main
from picsart_local.emulator.state import CallRecord
from picsart_local.environment import LOCAL_API_KEY, LocalEnvironment
from picsart_local.soak import (
    DeadLetter,
    SoakReport,
    SoakSettings,
    answers_logged,
    completion_event_figures,
    leaks_in,
    retried_puts,
    run_soak,
    scan_table,
    upload_entry,
)
from tests.fakes import job_event_validator

pytestmark = pytest.mark.integration

UPLOADS, CONCURRENCY, KILL_RATE = 80, 8, 0.03
#: Not the template's default, so that the check shows the parameter is what sets the URLs' lifetime.
PRESIGNED_TTL_S = 120


@dataclass
class Soaked:
    report: SoakReport
    settings: SoakSettings
    #: name -> text, for every file under the log folder (function logs, X-Ray segments, the crash log).
    logs: dict[str, str] = field(default_factory=dict)
    items: list[dict[str, Any]] = field(default_factory=list)
    calls: list[CallRecord] = field(default_factory=list)
    ttl_parameter: str = ""
    secret_value: str = ""
    #: HTTP status moto answers to a presigned GET after its expiry.
    expired_url_status: int = 0


def _inspect(soaked: Soaked) -> Any:
    def inspect(env: LocalEnvironment, report: SoakReport) -> None:
        assert env.runner is not None
        assert env.emulator is not None
        assert env.stack is not None
        soaked.items = scan_table(env)
        soaked.calls = env.emulator.calls()
        soaked.ttl_parameter = str(env.stack.template.parameters["PresignedUrlTtlSeconds"])
        secret_name = str(env.stack.template.parameters["PicsartApiKeySecretName"])
        soaked.secret_value = env.client("secretsmanager").get_secret_value(SecretId=secret_name)["SecretString"]
        soaked.expired_url_status = _expired_url_status(env)
        for path in sorted(soaked.settings.log_dir.rglob("*")):
            if path.is_file():
                soaked.logs[str(path)] = path.read_text(encoding="utf-8", errors="replace")

    return inspect


def _expired_url_status(env: LocalEnvironment) -> int:
    """Presign a GET of an uploaded object for one second, wait past it, and ask moto for the object."""
    assert env.stack is not None
    aws = env.stack.aws_environment()
    signing = boto3.client(
        "s3",
        endpoint_url=aws["AWS_ENDPOINT_URL"],
        region_name=aws["AWS_REGION"],
        aws_access_key_id=aws["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=aws["AWS_SECRET_ACCESS_KEY"],
        config=Config(signature_version="s3v4"),  # as the adapter signs (dependencies.py)
    )
    key = "soak/00000.png"
    url = signing.generate_presigned_url("get_object", Params={"Bucket": env.input_bucket, "Key": key}, ExpiresIn=1)
    time.sleep(2.5)
    return int(urllib3.PoolManager().request("GET", url, retries=False).status)


@pytest.fixture(scope="module")
def soaked(tmp_path_factory: pytest.TempPathFactory) -> Soaked:
    folder = tmp_path_factory.mktemp("soak")
    settings = SoakSettings(
        uploads=UPLOADS,
        concurrency=CONCURRENCY,
        # Reached before each step's call: the same kills before a call per upload as with one step, so the
        # kills (and the leases they leave to expire) do not lengthen the soak.
        kill_before_call=KILL_RATE / len(SOAK_PIPELINE),
        kill_after_call=KILL_RATE,
        kill_after_output=KILL_RATE,
        kill_after_event=KILL_RATE,
        # The uploader waits for the upload function to take up what it put: the bound is reached and left.
        max_backlog=CONCURRENCY,
        # Raised so that some of so few uploads' downloads fail (80 downloads: none fails one run in thousands).
        result_fault_rate=0.1,
        # A killed job's idempotency lease lasts until its invocation's deadline: shorter, so it ends sooner.
        function_timeout_s=20,
        parameters={"PresignedUrlTtlSeconds": str(PRESIGNED_TTL_S)},
        stack_name="it-soak",
        log_dir=folder / "logs",
        out=folder / "soak.json",
        progress_every_s=15,
        # Below pytest's 300 s per test, so that a run that never settles still ends in the soak's own
        # accounting (which names the uploads left and their records) rather than in pytest's timeout.
        timeout_s=180,
    )
    soaked = Soaked(report=SoakReport({}, {}, []), settings=settings)
    soaked.report = run_soak(settings, echo=print, inspect=_inspect(soaked))  # shown when a test fails
    return soaked


# ------------------------------------------------------------------------------------------- accounting


def test_every_upload_is_accounted_for(soaked: Soaked) -> None:
    figures = soaked.report.figures
    assert figures["settled"] is True
    assert figures["uploads_put"] == UPLOADS
    assert figures["lost"] == 0, figures["lost_uploads"]
    assert figures["accounted"] == UPLOADS
    assert figures["processed"] + figures["failed"] + figures["skipped"] + figures["dead_lettered"] == UPLOADS
    for key, upload in soaked.report.uploads.items():
        assert upload["status"] in {"succeeded", "failed", "skipped", "dead-lettered"}, key
        if upload["status"] != "succeeded":
            assert upload["reason"], key


def test_kills_happened_at_the_points_asked_for(soaked: Soaked) -> None:
    kills = soaked.report.figures["kills"]
    assert kills["total"] > 0
    assert set(kills["by_point"]) <= {"before_call", "after_call", "after_output", "after_event"}
    # Each kill is an invocation that failed as a crashed runtime does.
    errors = soaked.report.figures["invocations"]["errors"]
    assert sum(errors.values()) >= kills["total"]


def test_no_output_without_a_succeeded_record(soaked: Soaked) -> None:
    figures = soaked.report.figures
    assert figures["orphan_outputs"] == 0, figures["orphan_output_keys"]
    assert figures["missing_outputs"] == 0


def test_every_upload_went_through_the_two_step_pipeline(soaked: Soaked) -> None:
    figures = soaked.report.figures
    assert figures["rules"]["pipelines"] == {"pipeline": [step.tool for step in SOAK_PIPELINE]}
    assert len(SOAK_PIPELINE) == 2
    calls = figures["picsart_calls"]
    processed = figures["processed"]
    assert processed > 0
    assert calls["versions_with_every_step"] >= processed
    assert all(successes >= processed for successes in calls["successful_by_step"]), "a call per step each"
    assert calls["untraced"] == 0, "every call was traced to its upload and step"
    for key, upload in soaked.report.uploads.items():
        if upload["status"] == "succeeded":
            assert upload["output_keys"] == [f"pipeline/{key}"], key
    records = [item for item in soaked.items if str(item.get("pk", "")).startswith("object#")]
    assert records
    assert {str(item["sk"]).partition("#")[2] for item in records} == {"pipeline"}, "one job record per pipeline"
    steps = {attempt.get("step") for item in records for attempt in item.get("attempts", [])}
    assert steps == {1, 2}, "both steps were attempted and recorded"


def test_duplicate_successful_calls_only_where_a_kill_or_a_fault_made_them_necessary(soaked: Soaked) -> None:
    figures = soaked.report.figures
    duplicates, calls = figures["duplicate_successes"], figures["picsart_calls"]
    assert duplicates["unexplained"] == 0, duplicates["unexplained_keys"]
    assert calls["untraced_successful"] == 0
    timeouts = sum(figures["invocations"]["timeouts"].values())
    allowed = figures["kills"]["after_a_successful_call"] + calls["late_successes"] + timeouts
    assert duplicates["extra_successful_calls"] <= allowed
    by_step = duplicates["by_step"]
    assert [step["step"] for step in by_step] == [1, 2]
    assert sum(step["extra_successful_calls"] for step in by_step) == duplicates["extra_successful_calls"]
    assert all(step["unexplained"] == 0 for step in by_step)
    # A kill after a successful call is at the output's write, after the last step: the first step kept its
    # result in its idempotency record, so it is never called again for it.
    assert by_step[0]["with_a_kill_after_a_successful_call"] == 0


def test_a_failed_result_download_is_fetched_again_and_the_step_paid_once(soaked: Soaked) -> None:
    figures = soaked.report.figures
    downloads = figures["result_downloads"]
    assert downloads["by_status"].get("503", 0) > 0, "the result fault hit some downloads"
    assert downloads["fetched_again"] > 0
    # A step paid twice after a failed download would be an extra successful call no kill or late answer explains.
    assert figures["duplicate_successes"]["unexplained"] == 0


def test_every_ended_job_has_exactly_one_completion_event(soaked: Soaked) -> None:
    figures = soaked.report.figures
    events = figures["completion_events"]
    assert events["jobs_ended"] == figures["processed"] + figures["failed"] + figures["skipped"] > 0
    assert events["jobs_without_an_event"] == 0, events["jobs_without_an_event_keys"]
    assert events["unexplained"] == 0, events["unexplained_keys"]
    assert events["events_of_no_ended_job"] == 0
    assert events["undelivered_logged"] == 0
    assert events["received"] == events["jobs_ended"] + events["extra_events"]
    assert events["jobs_with_one_event"] + events["jobs_with_2_or_more"] == events["jobs_ended"]
    after_event_kills = figures["kills"]["by_point"].get("after_event", 0)
    timeouts = sum(figures["invocations"]["timeouts"].values())
    assert events["extra_events"] <= after_event_kills + timeouts
    assert events["dead_lettered_without_code"] == figures["dead_lettered"]
    assert len(soaked.report.completion_events) == events["received"]
    for event in soaked.report.completion_events:
        job_event_validator().validate(event)


def test_completion_events_hold_no_key_and_no_signature(soaked: Soaked) -> None:
    texts = {f"event {index}": json.dumps(event) for index, event in enumerate(soaked.report.completion_events)}
    assert texts
    assert leaks_in(texts, soaked.secret_value) == []


def test_the_figures_are_written(soaked: Soaked) -> None:
    assert soaked.settings.out is not None
    written = json.loads(soaked.settings.out.read_text())
    assert written["lost"] == soaked.report.figures["lost"] == 0
    assert written["uploads"] == UPLOADS
    assert written["settings"]["uploads"] == UPLOADS
    assert {"picsart_calls", "duplicate_successes", "kills", "dead_letter_messages", "seconds"} <= set(written)
    assert written["completion_events"] == soaked.report.figures["completion_events"]


# ----------------------------------------------------------------------------------- secrets and logs


def test_the_secret_is_the_one_the_functions_used(soaked: Soaked) -> None:
    # The soak's scan looks for the secret's value: it must be the key the emulator accepted.
    assert soaked.secret_value == LOCAL_API_KEY
    assert any(call.status == 200 for call in soaked.calls)


def test_logs_messages_and_records_hold_no_key_and_no_signature(soaked: Soaked) -> None:
    """The soak's own scan (`scan_for_secrets`, reported as `secret_leaks`): every log line, queue message and
    table item, for the API key and for signed-URL signatures."""
    figures = soaked.report.figures
    function_logs = {name: text for name, text in soaked.logs.items() if name.endswith(".log")}
    assert any("Picsart answered" in text for text in function_logs.values()), "the logs scanned are the calls'"
    scanned = figures["secrets_scanned"]
    assert scanned["log_files"] >= len(function_logs) > 0
    assert scanned["queue_messages"] >= UPLOADS, "every upload's S3 event, at least"
    assert scanned["table_items"] >= UPLOADS
    assert figures["secret_leaks"] == 0, figures["secret_leak_places"]
    assert soaked.settings.out is not None
    assert json.loads(soaked.settings.out.read_text())["secret_leaks"] == 0, "reported in the soak's JSON"


def test_presigned_urls_live_as_long_as_configured(soaked: Soaked) -> None:
    assert soaked.ttl_parameter == str(PRESIGNED_TTL_S)
    tool_calls = [call for call in soaked.calls if call.tool == "removebg"]
    assert tool_calls
    assert {call.image_url_expires for call in tool_calls} == {PRESIGNED_TTL_S}


def test_an_expired_presigned_url_is_refused(soaked: Soaked) -> None:
    if soaked.expired_url_status == 200:
        pytest.xfail("moto does not enforce X-Amz-Expires: it serves a presigned GET after its expiry")
    assert soaked.expired_url_status == 403


# ------------------------------------------------------------------------------------------ command line


def test_soak_command_refuses_slow_answers_within_the_client_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["soak", "--uploads", "1", "--client-timeout", "3", "--slow-seconds", "2"]) == 2
    assert "slow answers must take longer than the client timeout" in capsys.readouterr().err


def test_soak_accepts_every_number_as_a_flag(tmp_path: Path) -> None:
    from picsart_local.cli import _parser

    args = _parser().parse_args(
        ["soak", "--uploads", "5", "--concurrency", "2", "--kill-after-call", "0.5", "--out", str(tmp_path / "s.json")]
    )
    assert (args.uploads, args.concurrency, args.kill_after_call) == (5, 2, 0.5)
    assert args.run.__name__ == "_run_soak"


# ------------------------------------------------------------------------------------- one upload's end


PIPELINES = (
    parse_rules(
        json.dumps(
            {
                "rules": [{"name": "two", "match": {}, "pipelines": ["pipeline", "other"]}],
                "pipelines": {
                    **rules_document(SOAK_PIPELINE)["pipelines"],
                    "other": {"steps": [{"tool": "removebg"}], "output": "other/{dir}{stem}.{ext}"},
                },
            }
        )
    )
    .rules[0]
    .pipelines
)
ONE = PIPELINES[:1]


def _record(sk: str, status: str, **values: object) -> dict[str, object]:
    return {"pk": "object#in/soak/1.png", "sk": sk, "status": status, **values}


def _letter(pipeline: str | None, reason: str = "gave up after 6 attempts: HTTP 503") -> DeadLetter:
    return DeadLetter("url", "{}", {}, {}, ["soak/1.png"], "attempts", reason, pipeline)


def test_an_upload_succeeds_when_its_pipelines_record_says_so() -> None:
    records = [
        _record("version:v0#pipeline", "failed", reason="an older version"),
        _record("version:v1#pipeline", "succeeded", output_key="pipeline/soak/1.png"),
    ]
    entry = upload_entry(records, "v1", ONE, [])
    assert entry["status"] == "succeeded"
    assert entry["output_keys"] == ["pipeline/soak/1.png"], "the other version's record is not this upload's"


def test_an_upload_skipped_before_any_pipeline_ends_with_its_reason() -> None:
    entry = upload_entry([_record("version:v1", "skipped", reason="no rule matches it")], "v1", (), [])
    assert (entry["status"], entry["reason"]) == ("skipped", "no rule matches it")


@pytest.mark.parametrize(
    ("letters", "settled", "status"),
    [
        ([_letter("pipeline")], True, "dead-lettered"),
        ([_letter(None)], True, "dead-lettered"),  # an S3 event Lambda gave up on names no pipeline
        ([_letter("other")], True, "lost"),  # another pipeline's message is not this one's end
        ([], True, "lost"),
        ([], False, "unfinished"),
    ],
)
def test_a_pipeline_not_ended_by_its_record_is_dead_lettered_or_lost(
    letters: list[DeadLetter], settled: bool, status: str
) -> None:
    entry = upload_entry([_record("version:v1#pipeline", "waiting")], "v1", ONE, letters, settled=settled)
    assert entry["status"] == status
    assert entry["reason"]


def test_an_upload_with_two_pipelines_ends_with_the_one_that_did_not_succeed() -> None:
    records = [
        _record("version:v1#pipeline", "succeeded", output_key="pipeline/soak/1.png"),
        _record("version:v1#other", "failed", reason="step 1 (removebg): HTTP 422"),
    ]
    entry = upload_entry(records, "v1", PIPELINES, [])
    assert (entry["status"], entry["reason"]) == ("failed", "pipeline other: step 1 (removebg): HTTP 422")
    assert entry["pipelines"]["pipeline"]["status"] == "succeeded"
    records[1] = _record("version:v1#other", "succeeded", output_key="other/soak/1.png")
    assert upload_entry(records, "v1", PIPELINES, [])["output_keys"] == ["pipeline/soak/1.png", "other/soak/1.png"]
    assert upload_entry(records[:1], "v1", PIPELINES, [])["status"] == "lost", "a pipeline with no record is lost"


def test_the_soak_writes_its_pipeline_unless_a_rules_file_is_given(tmp_path: Path) -> None:
    steps = (PipelineStep("removebg"), PipelineStep("upscale", {"upscale_factor": 2}))
    own = SoakSettings(log_dir=tmp_path / "logs", pipeline=steps)
    written = own.write_rules()
    assert own.rules_file == (tmp_path / "logs" / "soak-rules.json").resolve()
    assert [step.tool for step in written.rules[0].pipelines[0].steps] == ["removebg", "upscale"]
    assert own.options().rules_file == own.rules_file, "the functions get it in place of RulesFile"
    given = tmp_path / "given.json"
    given.write_text(json.dumps(rules_document(SOAK_PIPELINE[:1], "mine")))
    theirs = SoakSettings(log_dir=tmp_path / "other", parameters={"RulesFile": str(given)})
    assert theirs.rules_file == given
    assert list(theirs.write_rules().pipelines) == ["mine"]
    assert theirs.options().rules_file is None, "the RulesFile parameter reaches the functions"
    assert not (tmp_path / "other" / "soak-rules.json").exists()


def _event(key: str, pipeline: str | None = "pipeline") -> dict[str, Any]:
    status = "succeeded"
    return {"detail-type": "Picsart Job Succeeded", "detail": {"key": key, "pipeline": pipeline, "status": status}}


def test_completion_events_are_matched_to_the_jobs_that_ended() -> None:
    uploads = {
        "a.png": upload_entry([_record("version:v1#pipeline", "succeeded", output_key="o")], "v1", ONE, []),
        "b.png": upload_entry([_record("version:v1#pipeline", "succeeded", output_key="o")], "v1", ONE, []),
        "c.png": upload_entry([_record("version:v1#pipeline", "failed", reason="HTTP 413")], "v1", ONE, []),
        "d.png": upload_entry([_record("version:v1", "skipped", reason="no rule")], "v1", (), []),
        "e.png": upload_entry([_record("version:v1#pipeline", "waiting")], "v1", ONE, [_letter("pipeline")]),
    }
    assert uploads["e.png"]["status"] == "dead-lettered"
    events = [_event("a.png"), _event("b.png"), _event("b.png"), _event("d.png", None), _event("e.png")]

    figures = completion_event_figures(uploads, events, Counter(), Counter())

    assert (figures["jobs_ended"], figures["received"], figures["jobs_with_one_event"]) == (4, 5, 2)
    assert figures["jobs_without_an_event_keys"] == ["c.png (pipeline)"]
    assert (figures["jobs_with_2_or_more"], figures["extra_events"]) == (1, 1)
    assert figures["unexplained_keys"] == ["b.png (pipeline)"]
    assert figures["events_of_no_ended_job"] == 1, "e.png ended in a dead-letter queue with no code running"
    assert figures["dead_lettered_without_code"] == 1
    explained = completion_event_figures(uploads, events, Counter({"b.png": 1}), Counter())
    assert (explained["unexplained"], explained["with_a_kill_after_the_event"]) == (0, 1)
    assert completion_event_figures(uploads, events, Counter(), Counter({"b.png": 1}))["unexplained"] == 0
    tried_again = completion_event_figures(uploads, events, Counter(), Counter(), Counter({"b.png": 1}))
    assert (tried_again["unexplained"], tried_again["with_a_put_tried_again"]) == (0, 1)


def test_the_logs_tell_the_answers_received_and_the_puts_tried_again(tmp_path: Path) -> None:
    """As the adapter logs them (Powertools' JSON lines): an answer received, and a put that raised."""
    answered = {"level": "INFO", "message": "Picsart answered", "picsart_correlation_id": "c1", "key": "a.png"}
    put_failed = {"level": "WARNING", "message": PUT_FAILED_MESSAGE, "event_key": "b.png", "error": "ReadTimeout"}
    log = tmp_path / "soak" / "RetryFunction-0001.log"
    log.parent.mkdir()
    lines = [json.dumps(answered, separators=(",", ":")), json.dumps(put_failed, separators=(",", ":")), "START x"]
    log.write_text("\n".join(lines) + "\n")
    assert answers_logged(tmp_path) == {"c1"}
    assert retried_puts(tmp_path) == Counter({"b.png": 1})
