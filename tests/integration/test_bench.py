"""`picsart-local bench` runs every strategy on the local stack and writes well-formed results.

A tiny setting (12 uploads, 4 at a time, quota 4 per 2 s): this checks the command and the shape of what it
reports, not the timings, which `make bench` measures. The pipeline scenario on its own, as tiny: every upload's
output, one successful call per step of each upload, no step paid twice.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from picsart_local.cli import main

pytestmark = pytest.mark.integration

STRATEGIES = ("adapter", "sdk-retry", "backoff", "concurrency-cap")
NUMBERS = {
    "makespan_s": float,
    "floor_s": float,
    "makespan_over_floor": float,
    "calls": int,
    "http_429": int,
    "http_429_after_first_answer": int,
    "calls_wasted": int,
    "lost": int,
    "duplicate_calls": int,
    "ddb_write_units_per_call": float,
    "ddb_limiter_write_units_per_call": float,
    "ddb_read_units_per_call": float,
    "sqs_requests_per_upload": float,
    "latency_p50_s": float,
    "latency_p95_s": float,
}


@pytest.mark.timeout(600)
def test_bench_runs_every_strategy_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    stale = tmp_path / "logs" / "bench" / "adapter" / "RetryFunction-0001.log"
    stale.parent.mkdir(parents=True)
    stale.write_text("START RequestId: an-earlier-run\n")
    argv = [
        "--log-dir",
        str(tmp_path / "logs"),
        "bench",
        "--uploads=12",
        "--concurrency=4",
        "--quota=4",
        "--window=2",
        "--spike=3",
        f"--strategies={','.join(STRATEGIES)}",
        f"--out={out}",
        "--timeout=150",
        "--import-runs=1",
        "--skip-layer-size",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr()

    report = json.loads((out / "bench.json").read_text())
    assert report["settings"]["uploads"] == 12
    assert report["settings"]["cap_concurrency"] >= 2
    assert list(report["strategies"]) == list(STRATEGIES)
    for name, result in report["strategies"].items():
        for field, kind in NUMBERS.items():
            assert isinstance(result[field], int | float), f"{name}.{field} is {result[field]!r}"
            if kind is int:
                assert isinstance(result[field], int), f"{name}.{field} counts"
        assert result["calls"] >= result["uploads"] - result["lost"], "at least one call per finished upload"
        assert result["per_second"], "calls per second for the plot"
        assert {"t", "ok", "http_429", "other"} <= set(result["per_second"][0])
    adapter = report["strategies"]["adapter"]
    assert adapter["lost"] == 0
    assert adapter["ddb_write_units_per_call"] > 0, "the adapter's DynamoDB requests were counted"
    assert report["strategies"]["sdk-retry"]["reset_time_format"] == "seconds"
    for name in ("sdk-retry", "backoff"):
        assert report["strategies"][name]["ddb_write_units_per_call"] == 0, "baselines share no state"
    assert report["strategies"]["concurrency-cap"]["max_concurrency"] == report["settings"]["cap_concurrency"]

    targets = report["targets"]["adapter"]
    assert {target["pass"] for target in targets.values()} <= {True, False}
    modules = report["cold_start"]["modules"]
    assert {"functions/upload/upload_handler.py", "functions/retry/retry_handler.py", "bare Powertools handler"} <= set(
        modules
    )
    assert all(module["import_ms"] > 0 for module in modules.values())
    bare = modules["bare Powertools handler"]
    for name in ("functions/upload/upload_handler.py", "functions/retry/retry_handler.py"):
        assert modules[name]["first_event_ms"] > 0, "the first event (building the processor) is timed"
        assert modules[name]["import_vs_bare"] == pytest.approx(modules[name]["import_ms"] / bare["import_ms"])
    assert report["layer"] is None

    adapter_logs = [path.read_text() for path in stale.parent.glob("*.log")]
    assert adapter_logs, "the functions' logs are kept"
    assert not any("an-earlier-run" in log for log in adapter_logs), "an earlier run's logs are not mixed in"
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = printed.out
    for label in ("makespan / floor", "HTTP 429", "calls wasted", "lost", "latency p95 (s)", "adapter target"):
        assert label in table
    assert all(name in table for name in STRATEGIES)
    assert "bare Powertools handler" in table
    assert "first event ms" in table
    assert "handler import against the bare handler's: " in table
    assert report["cold_start"]["target"]["pass"] in (True, False)
    assert "12/12 adapter" in printed.err, "the progress bar"


@pytest.mark.timeout(300)
def test_the_pipeline_scenario_calls_each_step_of_each_upload_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = [
        "--log-dir",
        str(tmp_path / "logs"),
        "bench",
        "--strategies=pipeline",
        "--uploads=18",  # 6 uploads through 3 steps: as many calls
        "--concurrency=4",
        "--quota=4",
        "--window=2",
        "--spike=3",
        f"--out={out}",
        "--timeout=150",
        "--skip-cold-start",
        "--no-progress",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out

    report = json.loads((out / "bench.json").read_text())
    assert list(report["strategies"]) == ["pipeline"]
    steps = [step["tool"] for step in report["settings"]["pipeline"]["steps"]]
    assert len(steps) == 3
    result = report["strategies"]["pipeline"]
    uploads = 6
    assert result["pipeline_steps"] == steps
    assert (result["uploads"], result["calls_per_upload"], result["calls_expected"]) == (uploads, 3, 3 * uploads)
    assert (result["finished"], result["lost"]) == (uploads, 0), "every upload's output was written"
    assert result["calls_ok"] == 3 * uploads
    assert result["calls_ok_by_step"] == [uploads] * 3, "each step of each upload succeeded"
    assert result["uploads_with_every_step"] == uploads
    assert result["duplicate_calls"] == 0
    assert result["duplicate_calls_by_step"] == [0, 0, 0]
    assert result["unattributed_calls"] == 0, "every call was traced to its upload and step"
    assert result["calls"] == sum(result["calls_by_step"])
    assert result["ddb_limiter_write_units_per_call"] > 0, "every step took its unit from the fleet's limiter"
    rules = json.loads((out / "bench-templates" / "pipeline-rules.json").read_text())
    assert [step["tool"] for step in rules["pipelines"]["pipeline"]["steps"]] == steps
    assert set(report["targets"]) == {"pipeline"}
    assert {target["pass"] for target in report["targets"]["pipeline"].values()} <= {True, False}
    assert "Pipeline: 6 uploads through " in printed
    assert "duplicate paid calls" in printed
