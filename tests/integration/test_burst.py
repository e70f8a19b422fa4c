"""`picsart-local burst` runs a tiny burst through the adapter and reports every figure it promises.

Five uploads at a twentieth of Picsart's time (a 3 s window): this checks the command and the shape of what it
reports, not the figures, which `picsart-local burst` measures (docs/burst.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from picsart_local.bench.burst import DOCS_BEGIN, DOCS_END
from picsart_local.cli import main

pytestmark = pytest.mark.integration

PER_UPLOAD = (
    "lambda_invocations_per_upload",
    "lambda_gb_s_per_upload",
    "sqs_requests_per_upload",
    "ddb_write_units_per_upload",
    "ddb_read_units_per_upload",
    "delay_queue_hops_per_upload",
)


@pytest.mark.timeout(600)
def test_burst_runs_and_reports_every_figure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs = tmp_path / "burst.md"
    docs.write_text(f"# Burst\n\n{DOCS_BEGIN}\nold\n{DOCS_END}\n\nAfter.\n")
    code = main(
        [
            "--log-dir",
            str(tmp_path / "logs"),
            "burst",
            "--uploads",
            "5",
            "--time-scale",
            "0.05",
            "--concurrency",
            "4",
            "--out",
            str(tmp_path),
            "--docs",
            str(docs),
            "--no-progress",
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "burst.json").read_text())
    measured, extrapolated = report["figures"], report["extrapolated"]
    assert (measured["uploads"], measured["finished"], measured["lost"], measured["http_429"]) == (5, 5, 0, 0)
    assert measured["calls"] == 5
    throttle = report["settings"]["item_throttle"]
    assert (throttle["write_units_per_second"], throttle["read_units_per_second"]) == (1000.0, 3000.0)
    for name in PER_UPLOAD:
        assert measured[name] >= 0, name
        assert extrapolated[name] >= measured[name], name
    assert measured["lambda_invocations_per_upload"] >= 1, "every upload invoked a function"
    assert measured["limiter_peak_writes_per_s"] > 0
    # Every environment reads the limiter item once before its first grant: reads are counted, not only writes.
    assert measured["ddb_limiter_read_units_per_upload"] > 0
    assert measured["limiter_peak_reads_per_s"] > 0
    assert measured["cost_per_1000_uploads_usd"]["total"] > 0
    assert extrapolated["uploads"] == 50
    page = docs.read_text()
    assert "old" not in page
    assert "After." in page
    assert "limiter item peak writes / s" in page
    assert "cost / 1,000 uploads, total (USD)" in page
    assert "limiter item peak writes / s" in capsys.readouterr().out


def test_burst_refuses_a_time_scale_that_is_not_positive(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["burst", "--uploads", "5", "--time-scale", "0"]) == 2
    assert "--time-scale must be positive" in capsys.readouterr().err
