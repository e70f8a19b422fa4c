"""`picsart-local report KEY`: a support report, one section per version and pipeline, attempts step by step."""

from __future__ import annotations

from picsart_local.report import support_report

RECORD = {
    "sk": "version:v1#white",
    "status": "waiting",
    "rule": "products",
    "steps": ["removebg", "upscale", "adjust"],
    "steps_done": 1,
    "attempts": [
        {
            "number": 1,
            "step": 1,
            "tool": "removebg",
            "started_at": "t1",
            "http_status": 200,
            "outcome": "success",
            "picsart_correlation_id": "c1",
        },
        {
            "number": 1,
            "step": 2,
            "tool": "upscale",
            "started_at": "t2",
            "http_status": 503,
            "outcome": "transient",
            "picsart_correlation_id": "c2",
            "error_body": '{"code": 503}',
        },
    ],
}


def test_a_pipelines_attempts_are_reported_step_by_step() -> None:
    lines = support_report("input", "uploads/a.jpg", [RECORD]).splitlines()

    assert "version version:v1, pipeline white" in lines
    step_lines = [line.strip() for line in lines if line.strip().startswith("step ")]
    assert step_lines == [
        "step 1 (removebg): done, X-Picsart-Correlation-Id c1",
        "step 2 (upscale): 1 attempt, waiting",
        "step 3 (adjust): not reached",
    ]
    upscale_at = lines.index("  step 2 (upscale): 1 attempt, waiting")
    assert "HTTP 503" in lines[upscale_at + 1]
    assert lines[upscale_at + 2].strip() == "X-Picsart-Correlation-Id: c2"


def test_a_record_without_steps_lists_its_attempts_as_before() -> None:
    record = {"sk": "version:v1", "status": "skipped", "reason": "no rule matches it", "attempts": []}
    text = support_report("input", "a.gif", [record])
    assert "version version:v1\n" in text
    assert "no rule matches it" in text
    assert "step " not in text


def test_a_fetch_of_an_answered_result_is_not_reported_as_a_call() -> None:
    record = {
        "sk": "version:v1",
        "status": "succeeded",
        "attempts": [
            {"number": 1, "started_at": "t1", "http_status": 200, "outcome": "success", "error": "download failed"},
            {"number": 2, "started_at": "t2", "outcome": "success", "result_fetch": True},
        ],
    }
    lines = support_report("input", "a.jpg", [record]).splitlines()
    (first,) = [line for line in lines if "attempt #1" in line]
    (fetch,) = [line for line in lines if "attempt #2" in line]
    assert "HTTP 200" in first
    assert "fetched again (no call)" in fetch
    assert "HTTP" not in fetch
