"""Rules and pipelines in the processor: matching, step chaining, parked steps, outputs and failure policies, with
every collaborator faked (tests/fakes.py)."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from picsart_adapter.delay_queue import RetryMessage
from picsart_adapter.jobs import JobStatus
from picsart_adapter.observability import metrics
from picsart_adapter.processing import MAX_INPUT_URL_AGE_SECONDS
from picsart_adapter.rate_limit import Denial, Grant, LimiterState
from picsart_adapter.rules import Rules, parse_rules, pipeline_hash
from tests.fakes import (
    ACCEPTED_BODY,
    NOW,
    PRESIGNED_URL,
    UPLOAD,
    FakeContext,
    answer,
    fresh_metrics,
    only,
    stored_object,
    world,
)

THREE_STEPS = {
    "rules": [{"name": "products", "match": {"prefix": "uploads/"}, "pipelines": ["white"]}],
    "pipelines": {
        "white": {
            "steps": [
                {"tool": "removebg", "parameters": {"bg_color": "#ffffff", "format": "PNG"}},
                {"tool": "upscale", "parameters": {"upscale_factor": 2, "format": "PNG"}},
                {"tool": "adjust", "parameters": {"brightness": 10, "format": "JPG"}},
            ],
            "output": "white/{dir}{stem}.{ext}",
        }
    },
}


def rules_of(document: dict[str, Any]) -> Rules:
    return parse_rules(json.dumps(document))


def step_answer(n: int) -> Any:
    url = f"https://cdn.picsart.io/step-{n}.png?token=t{n}"
    return answer(
        200, {"status": "success", "data": {"id": f"id-{n}", "url": url}}, {"X-Picsart-Correlation-Id": f"c{n}"}
    )


def step_url(n: int) -> str:
    return f"https://cdn.picsart.io/step-{n}.png?token=t{n}"


@pytest.fixture(autouse=True)
def _clear_metrics() -> Iterator[None]:
    yield from fresh_metrics()


def test_each_step_takes_the_step_befores_result_url_as_given_and_one_output_is_stored() -> None:
    w = world(answer(500), rules=rules_of(THREE_STEPS))
    w.client.script = [step_answer(1), step_answer(2), step_answer(3)]

    result = only(w.processor.process(UPLOAD))

    assert result.status is JobStatus.SUCCEEDED
    assert [(tool.name, url) for tool, url, _ in w.client.calls] == [
        ("removebg", PRESIGNED_URL),
        ("upscale", step_url(1)),
        ("adjust", step_url(2)),
    ]
    assert w.client.downloads == [step_url(3)], "only the last step's result passes through Lambda"
    (output,) = w.store.results
    assert output["key"] == result.output_key == "white/uploads/photo.jpg"
    assert output["metadata"]["picsart-correlation-ids"] == "c1,c2,c3"
    assert (output["metadata"]["rule"], output["metadata"]["pipeline"]) == ("products", "white")
    assert w.limiter.acquired == 3, "every step takes its own unit of the fleet's budget"
    steps = [(a["attempt"].step, a["attempt"].tool) for a in w.jobs.finished if a["attempt"]]
    assert steps == [(1, "removebg"), (2, "upscale"), (3, "adjust")]
    assert {a["ref"].pipeline for a in w.jobs.finished} == {"white"}


def test_a_rule_with_three_pipelines_makes_three_outputs() -> None:
    document = {
        "rules": [{"name": "all", "pipelines": ["a", "b", "c"]}],
        "pipelines": {
            name: {"steps": [{"tool": "removebg", "parameters": {"format": fmt}}]}
            for name, fmt in (("a", "PNG"), ("b", "JPG"), ("c", "WEBP"))
        },
    }
    w = world(answer(500), rules=rules_of(document))
    w.client.script = [step_answer(1), step_answer(2), step_answer(3)]

    results = w.processor.process(UPLOAD)

    assert [(r.pipeline, r.status) for r in results] == [(name, JobStatus.SUCCEEDED) for name in "abc"]
    assert [o["key"] for o in w.store.results] == [
        "a/uploads/photo.jpg.png",
        "b/uploads/photo.jpg",
        "c/uploads/photo.jpg.webp",
    ]
    assert all(url == PRESIGNED_URL for _, url, _ in w.client.calls)


def test_a_job_parked_before_it_starts_names_its_pipelines() -> None:
    """The first write of a job's record may be its parking (the fleet's budget is spent): that record names
    the rule, its pipeline and every pipeline of the rule, which tell whether the upload has ended."""
    document = {
        "rules": [{"name": "all", "pipelines": ["a", "b"]}],
        "pipelines": {name: {"steps": [{"tool": "removebg"}]} for name in "ab"},
    }
    w = world(answer(500), rules=rules_of(document))
    # The fleet is known to be out of budget for longer than this invocation waits: both park unstarted.
    w.limiter.known = Denial(NOW + 30, "spike")

    results = w.processor.process(UPLOAD)

    assert [r.status for r in results] == [JobStatus.WAITING, JobStatus.WAITING]
    assert w.jobs.started == []
    assert [(r["ref"].pipeline, r["pipeline"], r["rule"], r["rule_pipelines"]) for r in w.jobs.finished] == [
        ("a", "a", "all", ["a", "b"]),
        ("b", "b", "all", ["a", "b"]),
    ]


def test_a_redelivered_event_costs_no_second_call_for_any_step() -> None:
    w = world(answer(500), rules=rules_of(THREE_STEPS))
    w.client.script = [step_answer(1), step_answer(2), step_answer(3)]
    only(w.processor.process(UPLOAD))

    again = only(w.processor.process(UPLOAD))

    assert (again.status, again.duplicate) == (JobStatus.SUCCEEDED, True)
    assert len(w.client.calls) == 3
    assert len(w.store.results) == 1


def test_a_throttled_step_parks_with_its_index_input_and_correlation_ids_and_resumes_there() -> None:
    w = world(answer(500), rules=rules_of(THREE_STEPS))
    w.client.script = [step_answer(1)]
    w.limiter.script = [Grant(LimiterState()), Denial(NOW + 30, "spike")]

    parked = only(w.processor.process(UPLOAD))

    assert parked.status is JobStatus.WAITING
    (sent,) = w.parked()
    message = RetryMessage.model_validate_json(sent["MessageBody"])
    assert (message.step, message.input_url, message.step_correlation_ids) == (1, step_url(1), ["c1"])
    assert (message.rule, message.pipeline) == ("products", "white")
    assert PRESIGNED_URL not in sent["MessageBody"]

    w.client.script = [step_answer(2), step_answer(3)]
    done = only(w.processor.resume(message.model_copy(update={"due_at": NOW})))

    assert done.status is JobStatus.SUCCEEDED
    assert [url for _, url, _ in w.client.calls] == [PRESIGNED_URL, step_url(1), step_url(2)]
    assert w.store.results[0]["metadata"]["picsart-correlation-ids"] == "c1,c2,c3"


def test_an_asynchronous_step_in_the_middle_is_polled_through_the_queue_then_the_pipeline_goes_on() -> None:
    document = {
        "rules": [{"name": "faces", "pipelines": ["sharp"]}],
        "pipelines": {
            "sharp": {
                "steps": [
                    {"tool": "removebg", "parameters": {"format": "PNG"}},
                    {"tool": "ultra-upscale", "parameters": {"format": "PNG"}},
                    {"tool": "adjust", "parameters": {"format": "JPG"}},
                ]
            }
        },
    }
    w = world(answer(500), rules=rules_of(document))
    w.client.script = [step_answer(1), answer(202, ACCEPTED_BODY)]

    waiting = only(w.processor.process(UPLOAD))

    assert (waiting.status, waiting.transaction_id) == (JobStatus.WAITING, "tx-1")
    message = RetryMessage.model_validate_json(w.parked()[-1]["MessageBody"])
    assert (message.step, message.transaction_id, message.input_url) == (1, "tx-1", step_url(1))

    w.client.poll_answers = [step_answer(2)]
    w.client.script = [step_answer(3)]
    done = only(w.processor.resume(message.model_copy(update={"due_at": NOW})))

    assert done.status is JobStatus.SUCCEEDED
    assert w.client.polls == ["tx-1"]
    assert [(tool.name, url) for tool, url, _ in w.client.calls] == [
        ("removebg", PRESIGNED_URL),
        ("ultra-upscale", step_url(1)),
        ("adjust", step_url(2)),
    ]


@pytest.mark.parametrize("policy", ["fail", "copy-original"])
def test_a_step_that_fails_for_good_follows_the_rules_failure_policy(policy: str) -> None:
    document = {**THREE_STEPS, "rules": [{**THREE_STEPS["rules"][0], "on_failure": policy}]}  # type: ignore[dict-item]
    w = world(answer(500), rules=rules_of(document))
    w.client.script = [step_answer(1), answer(422, {"detail": "upscale_factor is invalid"})]

    result = only(w.processor.process(UPLOAD))

    assert result.status is JobStatus.FAILED
    assert result.reason is not None
    assert result.reason.startswith("step 2 (upscale): Picsart refused the request: HTTP 422")
    record = w.jobs.finished[-1]
    if policy == "fail":
        assert w.store.results == []
        assert result.output_key is None
    else:
        (copy,) = w.store.results
        assert copy["copied_from"] == "uploads/photo.jpg"
        assert copy["key"] == result.output_key == record["output_key"] == "white/uploads/photo.jpg"
        assert copy["metadata"]["fallback"] == "copy-original"
        assert "the original was copied to white/uploads/photo.jpg" in record["reason"]


def test_copy_original_applies_when_a_steps_attempts_are_used_up_too() -> None:
    document = {**THREE_STEPS, "rules": [{**THREE_STEPS["rules"][0], "on_failure": "copy-original"}]}  # type: ignore[dict-item]
    w = world(answer(503), rules=rules_of(document), max_attempts=1)

    result = only(w.processor.process(UPLOAD))

    assert result.status is JobStatus.FAILED
    assert len(w.dead_lettered()) == 1
    assert [r["copied_from"] for r in w.store.results] == ["uploads/photo.jpg"]
    assert w.jobs.finished[-1]["dead_lettered"] is True


def test_an_upload_no_rule_matches_is_skipped_with_that_reason_and_counted() -> None:
    document = {
        "rules": [{"name": "only-png", "match": {"suffix": ".png"}, "pipelines": ["p"]}],
        "pipelines": {"p": {"steps": [{"tool": "removebg"}]}},
    }
    w = world(answer(200), rules=rules_of(document))

    result = only(w.processor.process(UPLOAD))

    assert result.status is JobStatus.SKIPPED
    assert result.reason is not None
    assert "no rule matches" in result.reason
    assert w.jobs.finished[-1]["skip_code"] == "no-rule"
    assert w.jobs.finished[-1]["ref"].pipeline is None
    assert w.client.calls == []
    assert "UploadsUnmatched" in metrics.metric_set


def test_rules_match_on_the_objects_s3_metadata() -> None:
    document = {
        "rules": [
            {"name": "tagged", "match": {"metadata": {"picsart-pipeline": "product"}}, "pipelines": ["p"]},
            {"name": "rest", "pipelines": ["q"]},
        ],
        "pipelines": {
            "p": {"steps": [{"tool": "removebg"}]},
            "q": {"steps": [{"tool": "upscale", "parameters": {"upscale_factor": 2}}]},
        },
    }
    stored = stored_object()
    tagged = type(stored)(**{**vars(stored), "metadata": {"picsart-pipeline": "product"}})
    w = world(step_answer(1), stored=tagged, rules=rules_of(document))

    assert only(w.processor.process(UPLOAD)).pipeline == "p"


def test_a_step_input_too_old_to_reuse_runs_the_pipeline_again_and_the_record_says_so() -> None:
    rules = rules_of(THREE_STEPS)
    w = world(answer(500), rules=rules)
    w.client.script = [step_answer(1), step_answer(2), step_answer(3)]
    message = RetryMessage(
        bucket="input",
        key=UPLOAD.key,
        version_id="v1",
        attempt=0,
        due_at=NOW,
        reason="x",
        rule="products",
        pipeline="white",
        pipeline_hash=pipeline_hash(rules.pipelines["white"]),
        step=2,
        input_url=step_url(2),
        input_url_at=NOW - MAX_INPUT_URL_AGE_SECONDS - 60,
        step_correlation_ids=["old1", "old2"],
    )

    done = only(w.processor.resume(message))

    assert done.status is JobStatus.SUCCEEDED
    assert [url for _, url, _ in w.client.calls] == [PRESIGNED_URL, step_url(1), step_url(2)]
    started = w.jobs.started[0]
    assert started["reruns"] == 1
    assert "too old to reuse" in started["rerun_reason"]
    assert w.store.results[0]["metadata"]["picsart-correlation-ids"] == "c1,c2,c3"


def test_work_parked_under_a_pipeline_since_changed_runs_as_the_pipeline_is_now() -> None:
    w = world(answer(500), rules=rules_of(THREE_STEPS))
    w.client.script = [step_answer(1), step_answer(2), step_answer(3)]
    message = RetryMessage(
        bucket="input",
        key=UPLOAD.key,
        version_id="v1",
        attempt=0,
        due_at=NOW,
        reason="x",
        rule="products",
        pipeline="white",
        pipeline_hash="0000000000000000",
        step=1,
        input_url=step_url(1),
        input_url_at=NOW,
    )

    assert only(w.processor.resume(message)).status is JobStatus.SUCCEEDED
    assert w.client.calls[0][1] == PRESIGNED_URL
    assert "changed while its work was parked" in w.jobs.started[0]["rerun_reason"]


def test_work_parked_for_a_pipeline_the_rules_no_longer_have_is_skipped_with_the_reason() -> None:
    w = world(answer(500), rules=rules_of(THREE_STEPS))
    message = RetryMessage(
        bucket="input", key=UPLOAD.key, version_id="v1", attempt=0, due_at=NOW, reason="x", rule="gone", pipeline="gone"
    )

    result = only(w.processor.resume(message))

    assert result.status is JobStatus.SKIPPED
    assert w.jobs.finished[-1]["skip_code"] == "rules-changed"
    assert w.client.calls == []


def png_head(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk


def test_an_input_over_upscales_pixel_limit_is_skipped_before_any_call() -> None:
    document = {
        "rules": [{"name": "big", "pipelines": ["up"]}],
        "pipelines": {"up": {"steps": [{"tool": "upscale", "parameters": {"upscale_factor": 2}}]}},
    }
    w = world(
        step_answer(1), stored=stored_object(key="uploads/big.png", head=png_head(3000, 2000)), rules=rules_of(document)
    )

    result = only(w.processor.process(UPLOAD))

    assert result.status is JobStatus.SKIPPED
    assert w.jobs.finished[-1]["skip_code"] == "too-many-pixels"
    assert "3000x2000" in (result.reason or "")
    assert w.client.calls == []
    assert w.limiter.acquired == 0


def test_a_data_step_alone_is_stored_as_json_with_its_tags() -> None:
    document = {"rules": [{"name": "t", "pipelines": ["tags"]}], "pipelines": {"tags": {"steps": [{"tool": "tags"}]}}}
    data = {"tags": [{"label": "shoe", "confidence": 0.93}, {"label": "red leather", "confidence": 0.8}]}
    w = world(answer(200, {"status": "success", "data": data}), rules=rules_of(document))

    result = only(w.processor.process(UPLOAD))

    assert result.status is JobStatus.SUCCEEDED
    assert w.client.downloads == []
    (output,) = w.store.results
    assert output["key"] == "tags/uploads/photo.jpg.json"
    assert output["content_type"] == "application/json"
    assert json.loads(output["body"])["data"] == data
    assert output["tags"] == {"shoe": "0.93", "red leather": "0.8"}


def test_a_data_step_after_an_image_step_stores_the_image_with_tags_and_a_sidecar() -> None:
    document = {
        "rules": [{"name": "t", "pipelines": ["cut-tagged"]}],
        "pipelines": {
            "cut-tagged": {"steps": [{"tool": "removebg", "parameters": {"format": "PNG"}}, {"tool": "tags"}]}
        },
    }
    data = {"tags": [{"label": "shoe", "confidence": 0.9}]}
    w = world(answer(500), rules=rules_of(document))
    w.client.script = [step_answer(1), answer(200, {"status": "success", "data": data})]

    result = only(w.processor.process(UPLOAD))

    assert result.status is JobStatus.SUCCEEDED
    assert [url for _, url, _ in w.client.calls] == [PRESIGNED_URL, step_url(1)]
    assert w.client.downloads == [step_url(1)]
    image, sidecar = w.store.results
    assert (image["key"], image["tags"]) == ("cut-tagged/uploads/photo.jpg.png", {"shoe": "0.9"})
    assert sidecar["key"] == "cut-tagged/uploads/photo.jpg.png.json"
    assert w.jobs.finished[-1]["sidecar_key"] == sidecar["key"]


def test_the_next_step_is_left_to_another_invocation_when_this_one_has_no_time() -> None:
    w = world(answer(500), rules=rules_of(THREE_STEPS))
    w.client.script = [step_answer(1)]
    w.processor.register_lambda_context(FakeContext(remaining_ms=w.processor.time_needed_ms + 10))

    def time_runs_out(*args: Any) -> None:
        w.processor.register_lambda_context(FakeContext(remaining_ms=1000))

    w.limiter.observe = lambda *args, **kwargs: time_runs_out()  # type: ignore[method-assign]

    result = only(w.processor.process(UPLOAD))

    assert result.status is JobStatus.WAITING
    (sent,) = w.parked()
    assert sent["DelaySeconds"] == 0
    message = RetryMessage.model_validate_json(sent["MessageBody"])
    assert (message.step, message.input_url) == (1, step_url(1))
    assert len(w.client.calls) == 1
