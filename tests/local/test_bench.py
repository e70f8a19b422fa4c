"""The bench's pure parts: its definitions (floor, windows, late 429s, waste), the baselines' retry delays,
DynamoDB's billing rule, who sent a request, the strategies' templates as the local stack reads them, and the
pipeline scenario's rules file and the tracing of each call to its upload and step."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from picsart_adapter.rate_limit import write_units_of
from picsart_adapter.rules import RulesError, load_rules
from picsart_local.bench import baseline, coldstart, metering, metrics, report
from picsart_local.bench.pipeline import (
    BENCH_PIPELINE,
    IDEMPOTENCY_PK,
    SOAK_PIPELINE,
    PipelineStep,
    StepOf,
    attribute_calls,
    producers_from_items,
    step_counts,
    write_rules,
)
from picsart_local.bench.run import BenchOptions
from picsart_local.bench.strategies import (
    BASELINE_TIMEOUT_S,
    HANDLERS_DIR,
    cap_concurrency,
    cap_visibility_timeout,
    plan_strategy,
)
from picsart_local.cfn_template import load_template, resolve_template
from picsart_local.cli import _command_line, _parser, main

from .conftest import REAL_TEMPLATE


def call(at: float, status: int = 200, image: str = "/b/a.png", duration: float = 0.1, throttled: str | None = None):
    return metrics.Call(at, status, duration, image, throttled)


# ----------------------------------------------------------------------------------------------- floor


@pytest.mark.parametrize(
    ("calls", "quota", "window", "spike", "expected"),
    [
        (300, 60, 10.0, 20, 40.0 + 1 + 0.5),  # 5 windows; the last one's 60 calls span >= 1 s at 20/s
        (60, 60, 10.0, 20, 1 + 0.5),  # one window
        (61, 60, 10.0, 20, 10.0 + 0.5),  # one call into the second window
        (12, 4, 2.0, 3, 4.0 + 0.5),
        (0, 4, 2.0, 3, 0.0),
    ],
)
def test_floor(calls: int, quota: int, window: float, spike: int, expected: float) -> None:
    assert metrics.floor_seconds(calls, quota, window, spike, call_s=0.5) == pytest.approx(expected)


# ------------------------------------------------------------------------------------ windows and 429s


def test_windows_open_at_the_first_counted_call_after_the_previous_one_ended() -> None:
    calls = [call(0.0), call(1.0), call(2.0, 429, throttled="spike"), call(10.5), call(12.0), call(20.6)]
    found = metrics.windows(calls, window_s=10.0)
    assert [start for start, _ in found] == [0.0, 10.5, 20.6]
    assert [len(members) for _, members in found] == [3, 2, 1]


def test_a_spike_arrested_call_does_not_open_a_window() -> None:
    calls = [call(0.0), call(10.2, 429, throttled="spike"), call(10.6)]
    assert [start for start, _ in metrics.windows(calls, window_s=10.0)] == [0.0, 10.6]


def test_the_makespan_splits_into_the_windows_and_where_the_rest_went() -> None:
    """Uploads from t=-1.5; windows of 10 s opening at 0, 10.5 and 20.6; the last output at 22.0."""
    calls = [call(0.0), call(1.0), call(10.5), call(12.0), call(20.6), call(21.1)]
    parts = metrics.makespan_parts(calls, start=-1.5, end=22.0, window_s=10.0)
    assert parts == metrics.MakespanParts(
        to_first_call_s=1.5,
        idle_after_resets_s=pytest.approx(0.6),
        last_window_s=pytest.approx(0.5),
        after_last_call_s=pytest.approx(0.9),
    )
    windows = 2 * 10.0
    assert sum(vars(parts).values()) + windows == pytest.approx(22.0 + 1.5), "the parts add up to the makespan"
    assert metrics.makespan_parts([], start=0.0, end=1.0, window_s=10.0) is None


def test_only_429s_after_the_windows_first_answer_are_late() -> None:
    calls = [
        call(0.0, duration=0.5),  # first answer of the window at 0.5
        call(0.2, 429, duration=0.05),  # before it: the fleet could not know
        call(0.6, 429),  # after it: late
        call(10.0, duration=0.3),  # next window, first answer at 10.3
        call(10.1, 429),
        call(10.4, 429),  # late
    ]
    assert metrics.late_429s(calls, window_s=10.0) == 2


def test_waste_and_duplicates() -> None:
    calls = [
        call(0.0, 429, "/b/1.png"),
        call(1.0, 200, "/b/1.png"),
        call(1.5, 200, "/b/1.png"),  # a second success for the same upload
        call(2.0, 200, "/b/2.png"),
        call(3.0, 503, "/b/3.png"),
    ]
    assert metrics.duplicate_calls(calls) == 1
    assert metrics.calls_wasted(calls) == 3  # the 429, the duplicate, the 503


def test_percentiles_interpolate_between_ranks() -> None:
    assert metrics.percentile([1.0, 2.0, 3.0, 4.0], 0.5) == pytest.approx(2.5)
    assert metrics.percentile([5.0], 0.95) == 5.0
    assert metrics.percentile([], 0.5) is None
    assert metrics.percentile(list(map(float, range(101))), 0.95) == pytest.approx(95.0)


def test_per_second_lists_every_second_from_the_start() -> None:
    seconds = metrics.per_second([call(100.2), call(100.7, 429), call(103.1, 503)], start=100.4, end=104.5)
    assert [(s.second, s.ok, s.throttled, s.other) for s in seconds] == [
        (0, 1, 1, 0),
        (1, 0, 0, 0),
        (2, 0, 0, 0),
        (3, 0, 0, 1),
        (4, 0, 0, 0),
    ]


# ------------------------------------------------------------------------------- the baselines' delays


def test_sdk_retry_waits_the_reset_seconds_plus_one_to_two() -> None:
    rng = random.Random(1)
    delays = [baseline.sdk_retry_delay(429, "7", 1, rng) for _ in range(200)]
    assert all(delay is not None and 8.0 <= delay <= 9.0 for delay in delays)
    assert baseline.sdk_retry_delay(429, "not a number", 1, rng) == 0.0  # NaN -> setTimeout(0)
    assert baseline.sdk_retry_delay(429, "7", baseline.SDK_RETRIES + 1, rng) is None  # retries used up
    assert baseline.sdk_retry_delay(422, "7", 1, rng) is None  # not retryable
    five_hundred = baseline.sdk_retry_delay(503, None, 3, rng)
    assert five_hundred is not None
    assert 0.8 <= five_hundred <= 0.96  # axios-retry: 2**3 * 100 ms plus up to 20 %


def test_backoff_doubles_up_to_its_cap_and_ignores_the_headers() -> None:
    rng = random.Random(2)
    for retry, low in [(1, 1.0), (2, 2.0), (3, 4.0), (7, 60.0), (9, 60.0)]:
        delay = baseline.backoff_delay(429, "1", retry, rng)
        assert delay is not None
        assert low <= delay <= low + baseline.BACKOFF_JITTER_S
    assert baseline.backoff_delay(429, "1", baseline.BACKOFF_ATTEMPTS, rng) is None
    assert baseline.backoff_delay(0, None, 1, rng) is not None  # no answer: retried too
    assert baseline.no_retry(429, "1", 1, rng) is None


# ------------------------------------------------------------------------------ metering's definitions


def test_write_and_read_units_follow_dynamodbs_rule() -> None:
    assert metering.write_units(None, 10) == 1.0  # at least one, even for a new small item
    assert metering.write_units(1500, 900) == 2.0  # the larger image counts
    assert metering.write_units(None, None) == 1.0  # a failed conditional write on nothing
    assert metering.read_units(5000, consistent=True) == 2.0
    assert metering.read_units(100, consistent=False) == 0.5
    assert metering.read_units(None, consistent=True) == 1.0  # no item still costs a read


def test_write_units_agree_with_the_adapters_rule_for_a_small_item() -> None:
    item = {"pk": "ratelimit#abc", "sk": "state", "granted": 3, "limit": 60, "spike": {"1800000000": 2}}
    size = sum(len(k) + len(str(v)) for k, v in item.items())
    assert metering.write_units(None, size) == write_units_of(item) == 1.0


@pytest.mark.parametrize(
    ("user_agent", "origin"),
    [
        (
            "Boto3/1.35 md/Botocore#1.35 ua/2.0 os/linux exec-env/AWS_Lambda_python3.13 cfg/retry-mode#legacy",
            "function",
        ),
        ("Boto3/1.35 md/Botocore#1.35 ua/2.0 os/linux picsart-bench", "bench"),
        ("Boto3/1.35 md/Botocore#1.35 ua/2.0 os/linux", "local"),
    ],
)
def test_who_sent_a_request(user_agent: str, origin: str) -> None:
    assert metering.origin_of(user_agent) == origin


# ------------------------------------------------------------------------------------ the strategies


def test_concurrency_cap_uses_littles_law_with_lambdas_minimum() -> None:
    assert cap_concurrency(quota=60, window_s=10, call_latency_s=2.0) == 12
    assert cap_concurrency(quota=60, window_s=10, call_latency_s=0.05) == 2
    assert cap_visibility_timeout(10.0) == 10
    assert cap_visibility_timeout(2.0) == 10
    assert cap_visibility_timeout(60.0) == 60


def _derived(name: str, tmp_path: Path) -> tuple[Path, dict]:
    document = load_template(REAL_TEMPLATE)
    plan = plan_strategy(name, document, REAL_TEMPLATE.parent, window_s=10.0, max_concurrency=3)
    path = plan.write_template(tmp_path, REAL_TEMPLATE)
    return path, json.loads(path.read_text())


def test_the_adapter_runs_the_projects_own_template(tmp_path: Path) -> None:
    plan = plan_strategy("adapter", load_template(REAL_TEMPLATE), REAL_TEMPLATE.parent, window_s=10, max_concurrency=2)
    assert plan.write_template(tmp_path, REAL_TEMPLATE) == REAL_TEMPLATE
    assert plan.reset_time_format == "epoch_ms"


@pytest.mark.parametrize(("name", "handler"), [("sdk-retry", "sdk_retry_handler"), ("backoff", "backoff_handler")])
def test_sleeping_baselines_replace_the_upload_handler(tmp_path: Path, name: str, handler: str) -> None:
    path, _ = _derived(name, tmp_path)
    resolved = resolve_template(path, stack_name="bench-test")
    upload = resolved.function("UploadFunction")
    assert upload.code_uri == HANDLERS_DIR
    assert upload.handler == f"{handler}.lambda_handler"
    assert (HANDLERS_DIR / f"{handler}.py").exists()
    assert upload.timeout_s == BASELINE_TIMEOUT_S
    assert upload.s3_events, "uploads still trigger it"
    assert all(not source.enabled for source in resolved.function("RetryFunction").sqs_events)


def test_concurrency_cap_consumes_a_work_queue_at_most_n_at_a_time(tmp_path: Path) -> None:
    path, document = _derived("concurrency-cap", tmp_path)
    resolved = resolve_template(path, stack_name="bench-test")
    upload = resolved.function("UploadFunction")
    assert not upload.s3_events
    (source,) = upload.sqs_events
    assert (source.queue_logical_id, source.batch_size, source.maximum_concurrency) == ("WorkQueue", 1, 3)
    queue = document["Resources"]["WorkQueue"]["Properties"]
    assert queue["VisibilityTimeout"] == upload.timeout_s == 10
    assert queue["RedrivePolicy"]["maxReceiveCount"] >= 1
    assert "WorkQueueUrl" in resolved.outputs


# ----------------------------------------------------------------------------------------- targets


def _result(**values: object) -> dict[str, object]:
    base: dict[str, object] = {
        "makespan_over_floor": 1.05,
        "http_429_after_first_answer": 0,
        "ddb_limiter_write_units_per_call": 1.0,
        "lost": 0,
        "duplicate_calls": 0,
        "http_429": 0,
        "calls_wasted": 0,
    }
    return {**base, **values}


def test_targets_pass_and_fail() -> None:
    verdicts = report.evaluate_targets(
        {"adapter": _result(makespan_over_floor=1.2), "backoff": _result(http_429=10, calls_wasted=10)}
    )["adapter"]
    assert verdicts["makespan_within_10pct_of_floor"]["pass"] is False
    assert verdicts["fewest_429s"]["pass"] is True
    assert all(v["pass"] for k, v in verdicts.items() if k != "makespan_within_10pct_of_floor")
    alone = report.evaluate_targets({"adapter": _result()})["adapter"]
    assert alone["fewest_429s"]["pass"] is None, "no other strategy to compare with"
    assert report.evaluate_targets({"backoff": _result()}) == {}


@pytest.mark.parametrize(
    ("upload", "retry", "verdict"),
    [(1.44, 1.41, True), (1.44, 1.52, False), (1.44, None, None)],
)
def test_the_cold_start_target_is_the_slowest_handlers_import_against_the_bare_one(
    upload: float, retry: float | None, verdict: bool | None
) -> None:
    def measured(ratio: float) -> dict[str, float]:
        return {"import_ms": 180.0 * ratio, "first_event_ms": 150.0, "process_ms": 600.0, "import_vs_bare": ratio}

    modules = {
        "functions/upload/upload_handler.py": measured(upload),
        "functions/retry/retry_handler.py": {"error": "ImportError"} if retry is None else measured(retry),
        coldstart.BARE_LABEL: measured(1.0),
    }
    target = coldstart.import_target(modules)
    assert target["pass"] is verdict
    assert target["value"] == (max(upload, retry) if retry is not None else upload)
    lines = report.cold_start_lines(
        {"cold_start": {"runs": 9, "python": "3.13.0", "modules": modules, "target": target}}
    )
    expected = {True: "PASS (<= 1.5x bare)", False: "FAIL (<= 1.5x bare)", None: "n/a (<= 1.5x bare)"}[verdict]
    assert f"handler import against the bare handler's: {expected}" in lines[-1]


def test_layer_size_says_why_when_the_layer_cannot_be_built(tmp_path: Path, repository_root: Path) -> None:
    layer = tmp_path / "layers" / "picsart_adapter"
    (layer / "picsart_adapter").mkdir(parents=True)
    (layer / "Makefile").write_text((repository_root / "layers" / "picsart_adapter" / "Makefile").read_text())
    (layer / "requirements.txt").write_text("this is not a requirement !!\n")  # refused before any download
    measured = coldstart.layer_size(tmp_path, timeout_s=120)
    assert measured["measured"] is False
    assert measured["reason"].startswith("the layer could not be built")


# ------------------------------------------------------------------------------------------ docs page


def _report_for_docs() -> dict[str, object]:
    def strategy(**values: object) -> dict[str, object]:
        figures = {"makespan_s": 45.0, "floor_s": 41.2, "calls": 300, "lambda_errors": 0, "lambda_timeouts": 0}
        return {**_result(**values), **figures, "makespan_parts": {"to_first_call_s": 1.1}}

    strategies = {"adapter": strategy(makespan_over_floor=1.09), "backoff": strategy(http_429=263, calls_wasted=263)}
    return {
        "settings": {
            "uploads": 300,
            "concurrency": 32,
            "quota": 60,
            "window_s": 10.0,
            "spike_per_second": 20,
            "strategies": list(strategies),
            "started_at": "2026-11-25T17:55:00Z",
            "python": "3.11.7",
            "cpus": 2,
        },
        "strategies": strategies,
        "targets": report.evaluate_targets(strategies),
        "duration_s": 341.0,
    }


PAGE = f"""# Benchmark

Method, written by hand.

{report.DOCS_BEGIN}
an earlier run's table
{report.DOCS_END}

What it shows, written by hand.
"""


def test_the_docs_page_gets_the_runs_table_between_its_markers_and_nothing_else(tmp_path: Path) -> None:
    page, plot = tmp_path / "docs" / "benchmark.md", tmp_path / "out" / "bench.png"
    page.parent.mkdir()
    plot.parent.mkdir()
    page.write_text(PAGE)
    plot.write_bytes(b"\x89PNG\r\n\x1a\n a plot")
    report.write_docs(_report_for_docs(), page, "picsart-local bench --docs docs/benchmark.md", plot=plot)

    written = page.read_text()
    before, _, rest = written.partition(report.DOCS_BEGIN)
    block, _, after = rest.partition(report.DOCS_END)
    assert before == PAGE.partition(report.DOCS_BEGIN)[0], "what comes before the markers is kept as it was"
    assert after == PAGE.partition(report.DOCS_END)[2], "what comes after the markers is kept as it was"
    assert "an earlier run's table" not in block
    assert "Run 2026-11-25T17:55:00Z, command `picsart-local bench --docs docs/benchmark.md`, 5 min 41 s" in block
    assert "| makespan / floor | 1.09 | 1.05 | PASS (<= 1.10) |" in block
    assert "| &nbsp;&nbsp;upload to 1st call (s) | 1.1 | 1.1 |  |" in block, "a part of the row above, indented"
    assert "| HTTP 429 | 0 | 263 | PASS (<= others) |" in block
    assert "![calls per second over time, per strategy, with the quota](bench.png)" in block
    assert (page.parent / "bench.png").read_bytes() == plot.read_bytes(), "the plot is copied beside the page"
    report.write_docs(_report_for_docs(), page, "picsart-local bench --docs docs/benchmark.md")
    assert page.read_text() == written, "a second run with the same figures leaves the page as it was"


@pytest.mark.parametrize(
    "page",
    [
        "# Benchmark\n\nno markers at all\n",
        f"# Benchmark\n\n{report.DOCS_BEGIN}\nthe end marker is missing\n",
        f"# Benchmark\n\nthe begin marker is missing\n{report.DOCS_END}\n",
        f"{report.DOCS_END}\nin the wrong order\n{report.DOCS_BEGIN}\n",
        f"{report.DOCS_BEGIN}\n{report.DOCS_END}\n{report.DOCS_BEGIN}\n{report.DOCS_END}\n",
    ],
    ids=["none", "no-end", "no-begin", "reversed", "twice"],
)
def test_a_docs_page_without_its_markers_fails_loudly_and_is_left_alone(tmp_path: Path, page: str) -> None:
    path = tmp_path / "benchmark.md"
    path.write_text(page)
    with pytest.raises(report.DocsMarkersError, match=r"<!-- bench:begin --> and <!-- bench:end -->"):
        report.check_docs(path)
    with pytest.raises(report.DocsMarkersError):
        report.write_docs(_report_for_docs(), path, "picsart-local bench")
    assert path.read_text() == page
    assert not (tmp_path / "bench.png").exists()


def test_the_bench_command_refuses_a_docs_page_without_markers_before_it_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "benchmark.md"
    page.write_text("# Benchmark\n")
    out = tmp_path / "out"
    argv = ["--log-dir", str(tmp_path / "logs"), "bench", "--docs", str(page), "--out", str(out), "--no-progress"]
    assert main(argv) == 2
    assert f"picsart-local: {page}: the docs page needs the lines <!-- bench:begin -->" in capsys.readouterr().err
    assert not out.exists(), "nothing ran"


def test_the_command_on_the_docs_page_is_the_one_given() -> None:
    def command(*argv: str) -> str:
        return _command_line(_parser().parse_args(argv))

    assert (
        command("bench", "--out", "out", "--docs", "docs/benchmark.md")
        == "picsart-local bench --docs docs/benchmark.md"
    )
    assert (
        command("--parameter-overrides", "PicsartTool=upscale", "bench", "--window", "5", "--skip-cold-start")
        == "picsart-local --parameter-overrides PicsartTool=upscale bench --window 5 --skip-cold-start"
    )
    burst = _parser().parse_args(["burst", "--item-wcu", "20", "--capped-items", "ratelimit,circuit"])
    assert (
        _command_line(burst, always=("uploads", "time_scale"))
        == "picsart-local burst --uploads 10000 --time-scale 1 --item-wcu 20 --capped-items ratelimit,circuit"
    )


def test_the_projects_benchmark_page_has_its_markers(repository_root: Path) -> None:
    report.check_docs(repository_root / "docs" / "benchmark.md")


# -------------------------------------------------------------------------------------- the pipeline


def test_the_pipeline_scenario_runs_the_projects_template_with_its_steps(tmp_path: Path) -> None:
    document = load_template(REAL_TEMPLATE)
    plan = plan_strategy("pipeline", document, REAL_TEMPLATE.parent, window_s=10, max_concurrency=2)
    assert plan.write_template(tmp_path, REAL_TEMPLATE) == REAL_TEMPLATE
    assert plan.pipeline == BENCH_PIPELINE
    assert plan.reset_time_format == "epoch_ms"
    adapter = plan_strategy("adapter", document, REAL_TEMPLATE.parent, window_s=10, max_concurrency=2)
    assert adapter.pipeline == (), "the adapter runs without a rules file"


@pytest.mark.parametrize("steps", [BENCH_PIPELINE, SOAK_PIPELINE], ids=["bench", "soak"])
def test_the_rules_file_written_is_one_rule_for_every_upload_with_the_steps_given(tmp_path: Path, steps) -> None:
    written = write_rules(tmp_path / "rules" / "pipeline.json", steps)
    loaded = load_rules(written.path)  # as the functions read it
    assert loaded == written.rules
    (rule,) = loaded.rules
    assert rule.match.matches("any/key.png", "image/png", 10, {}), "every upload matches"
    (pipeline,) = rule.pipelines
    assert [(step.tool, step.parameters.model_dump(exclude_none=True)) for step in pipeline.steps] == [
        (step.tool, {**step.parameters}) for step in steps
    ]
    assert written.steps == len(steps) >= 2
    assert written.output_key("uploads/pipeline-0001.png") == "pipeline/uploads/pipeline-0001.png"


def test_a_step_that_cannot_be_chained_fails_before_the_file_is_written(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    with pytest.raises(RulesError, match="only the last step may"):
        write_rules(path, (PipelineStep("tags"), PipelineStep("upscale", {"upscale_factor": 2})))
    assert not path.exists()


def test_the_pipeline_makes_as_many_calls_as_the_other_strategies_unless_told_otherwise() -> None:
    assert BenchOptions(uploads=300).uploads_of_pipeline(3) == 100
    assert BenchOptions(uploads=2).uploads_of_pipeline(3) == 1, "at least one upload"
    assert BenchOptions(uploads=300, pipeline_uploads=7).uploads_of_pipeline(3) == 7
    assert "pipeline" in BenchOptions().strategies
    with pytest.raises(ValueError, match="at least 1"):
        BenchOptions(pipeline_uploads=0)


@dataclass(frozen=True)
class Recorded:
    correlation_id: str
    image_url_path: str | None


def test_producers_are_read_from_the_idempotency_records_that_keep_a_result() -> None:
    def record(data: object, pk: str = IDEMPOTENCY_PK) -> dict[str, object]:
        return {"pk": pk, "sk": "picsart-call#x", "status": "COMPLETED", "data": json.dumps(data)}

    items = [
        record({"result_url": "http://127.0.0.1:9/results/ab.png?x=1", "picsart_correlation_id": "c1", "step": 1}),
        record({"result_url": None, "output_key": "pipeline/a.png", "picsart_correlation_id": "c2", "step": 2}),
        record({"result_url": "http://127.0.0.1:9/results/cd.png", "picsart_correlation_id": "c3"}, pk="object#b/a"),
        {"pk": IDEMPOTENCY_PK, "sk": "picsart-call#y", "status": "INPROGRESS"},
        {"pk": IDEMPOTENCY_PK, "sk": "picsart-call#z", "data": "not json"},
    ]
    assert producers_from_items(items) == {"/results/ab.png": "c1"}


def test_each_call_is_traced_to_its_upload_and_step_through_the_results_it_was_given() -> None:
    calls = [
        Recorded("a1", "/in/uploads/a%20b.png"),  # step 1 of "uploads/a b.png"
        Recorded("a2", "/results/ra1.png"),  # step 2, given a1's result
        Recorded("a3", "/results/ra2.png"),  # step 3
        Recorded("b1", "/in/uploads/b.png"),
        Recorded("b1-again", "/in/uploads/b.png"),  # step 1 of b a second time
        Recorded("b2", "/results/rb1.png"),
        Recorded("b2-other", "/results/rb1-again.png"),  # step 2 of b on the second step 1's result
        Recorded("x", "/results/unknown.png"),  # a result nobody recorded
        Recorded("y", None),
        Recorded("z", "/elsewhere/c.png"),
    ]
    producers = {
        "/results/ra1.png": "a1",
        "/results/ra2.png": "a2",
        "/results/rb1.png": "b1",
        "/results/rb1-again.png": "b1-again",
    }
    traced = attribute_calls(calls, "/in/", producers)
    assert traced == [
        StepOf("uploads/a b.png", 1),
        StepOf("uploads/a b.png", 2),
        StepOf("uploads/a b.png", 3),
        StepOf("uploads/b.png", 1),
        StepOf("uploads/b.png", 1),
        StepOf("uploads/b.png", 2),
        StepOf("uploads/b.png", 2),
        None,
        None,
        None,
    ]
    counts = step_counts([200, 200, 200, 200, 200, 429, 200, 200, 200, 503], traced, steps=3)
    assert counts.calls == [3, 3, 1]
    assert counts.ok == [3, 2, 1]
    assert counts.http_429 == [0, 1, 0]
    assert counts.duplicates == [1, 0, 0], "b's step 1 twice; its step 2 succeeded once (one was a 429)"
    assert counts.duplicated == {StepOf("uploads/b.png", 1): 2}
    assert counts.complete == 1, "only a has a success at every step"
    assert (counts.unattributed, counts.unattributed_ok) == (3, 2)
    assert counts.useful == 5


def test_a_step_called_twice_on_different_inputs_is_one_duplicate() -> None:
    calls = [Recorded("1", "/in/k.png"), Recorded("1b", "/in/k.png"), Recorded("2", "/results/r1.png")]
    calls.append(Recorded("2b", "/results/r1b.png"))
    traced = attribute_calls(calls, "/in/", {"/results/r1.png": "1", "/results/r1b.png": "1b"})
    counts = step_counts([200] * 4, traced, steps=2)
    assert counts.duplicates == [1, 1]
    assert counts.duplicate_calls == 2
    assert counts.complete == 1


def test_the_pipelines_targets_are_its_own_and_it_is_not_among_the_adapters_others() -> None:
    verdicts = report.evaluate_targets(
        {
            "adapter": _result(http_429=2, calls_wasted=2),
            "backoff": _result(http_429=10, calls_wasted=10),
            "pipeline": _result(http_429=1, duplicate_calls=1, ddb_limiter_write_units_per_call=2.4),
        }
    )
    assert verdicts["adapter"]["fewest_429s"]["pass"] is True, "the pipeline's fewer 429s are not compared"
    pipeline = verdicts["pipeline"]
    assert set(pipeline) == {
        "makespan_within_10pct_of_floor",
        "no_429",
        "limiter_write_units_per_call_at_most_2",
        "lost_zero",
        "duplicates_zero",
    }
    assert pipeline["no_429"] == {"target": "0", "value": 1, "pass": False}
    assert pipeline["duplicates_zero"]["pass"] is False
    assert pipeline["limiter_write_units_per_call_at_most_2"]["pass"] is False
    assert pipeline["makespan_within_10pct_of_floor"]["pass"] is True
    assert list(report.evaluate_targets({"pipeline": _result()})) == ["pipeline"]


def _pipeline_result() -> dict[str, object]:
    figures = {"makespan_s": 46.0, "floor_s": 41.3, "calls": 300, "lambda_errors": 0, "lambda_timeouts": 0}
    steps = {
        "uploads": 100,
        "calls_per_upload": 3,
        "calls_expected": 300,
        "pipeline_steps": ["removebg", "upscale", "upscale"],
        "calls_by_step": [100, 100, 100],
        "duplicate_calls_by_step": [0, 0, 0],
        "unattributed_calls": 0,
    }
    return {**_result(makespan_over_floor=1.11), **figures, **steps, "makespan_parts": {"to_first_call_s": 1.0}}


def test_the_docs_page_gets_the_pipelines_table_after_the_strategies(tmp_path: Path) -> None:
    run = _report_for_docs()
    run["strategies"]["pipeline"] = _pipeline_result()  # type: ignore[index]
    run["settings"]["pipeline"] = {"image_size": [96, 72]}  # type: ignore[index]
    run["targets"] = report.evaluate_targets(run["strategies"])  # type: ignore[arg-type]
    page = tmp_path / "benchmark.md"
    page.write_text(PAGE)
    report.write_docs(run, page, "picsart-local bench --docs docs/benchmark.md")
    block = page.read_text().partition(report.DOCS_BEGIN)[2].partition(report.DOCS_END)[0]
    strategies, _, pipeline = block.partition("Pipeline: ")
    assert "|  | adapter | backoff | adapter target |" in strategies, "the pipeline is not a column there"
    assert pipeline.startswith(
        "100 uploads through removebg -> upscale -> upscale (300 calls), 96x72 PNG, 32 at a time, quota 60 per "
        "10 s, spike arrest 20/s:"
    )
    assert "|  | pipeline | target |" in pipeline
    assert "| makespan / floor | 1.11 | FAIL (<= 1.10) |" in pipeline
    assert "| HTTP 429 | 0 | PASS (0) |" in pipeline
    assert "| duplicate paid calls | 0 | PASS (0) |" in pipeline
    assert "| &nbsp;&nbsp;by step | 0 / 0 / 0 |  |" in pipeline
    assert "| DynamoDB WCU / call (limiter) | 1.00 | PASS (<= 2) |" in pipeline

    alone = {**run, "strategies": {"pipeline": _pipeline_result()}}
    alone["targets"] = report.evaluate_targets(alone["strategies"])  # type: ignore[arg-type]
    lines = report.markdown_lines(alone, "picsart-local bench --strategies pipeline")
    assert not any("adapter target" in line for line in lines), "no empty table of strategies"
    assert any(line.startswith("Pipeline: 100 uploads") for line in lines)
