"""`picsart-local burst`: a catalogue-sized burst at Picsart's real numbers, on the adapter alone.

The burst is the bench's adapter strategy (`run.run_strategy`: the same stack, uploads, metering and figures) with
Picsart's published limits (500 calls a minute, spike arrest 300 a second), an answer time of 1-3 s, and DynamoDB's
per-item cap (1,000 write and 3,000 read units a second) on the stack's table. `--time-scale N` runs it N times
slower (every duration times N, every rate divided by N: the window, the answer time, the spike arrest, the
item's cap), for a machine that cannot keep up; N below 1 runs it faster. The figures are given back in real
seconds.

It reports what a team importing a whole catalogue meets (docs/burst.md): the makespan against the floor, Lambda
invocations, SQS requests and DynamoDB units per upload, the limiter item's peak writes a second, the hops through
the delay queue per upload, and the cost per 1,000 uploads at AWS list prices (`PRICES`). The figures for ten
times the uploads are extrapolated by a model (`extrapolate`): what grows with the burst's length is the number of
hops a parked upload makes through the delay queue (one per 900 s of its wait).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO

from picsart_local.bench import metrics
from picsart_local.bench.report import DocsMarkersError, rewrite_between_markers, write_json
from picsart_local.bench.run import BenchOptions, bench_images, run_strategy
from picsart_local.bench.strategies import plan_strategy
from picsart_local.cfn_template import load_template
from picsart_local.environment import default_template
from picsart_local.moto_throttle import ThrottleLimits

#: Picsart's published limits (docs/picsart-api.md): calls per window, the window, the spike arrest.
PICSART_QUOTA: Final = 500
PICSART_WINDOW_S: Final = 60.0
PICSART_SPIKE_PER_S: Final = 300
#: A realistic answer time: 1 to 3 s, drawn uniformly.
ANSWER_MS: Final = (1000.0, 3000.0)
#: SQS's longest delay: work due later hops through the delay queue once per this many seconds of its wait.
SQS_MAX_DELAY_S: Final = 900.0

#: AWS list prices, us-east-1, USD, as published on 2025-07-01 on the pages "AWS Lambda pricing" (arm64, first
#: tier), "Amazon SQS pricing" (standard queue, beyond the free tier), "Amazon DynamoDB pricing for on-demand
#: capacity" (Standard table class, after the November 2024 reduction) and "Amazon S3 pricing" (S3 Standard).
#: Free tiers are left out. Check the pages before quoting a figure: prices change.
PRICES_AS_OF: Final = "2025-07-01"
PRICES: Final = {
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_second": 0.0000133334,
    "sqs_request": 0.40 / 1e6,
    "ddb_write_request_unit": 0.625 / 1e6,
    "ddb_read_request_unit": 0.125 / 1e6,
    "s3_put": 0.005 / 1000,
    "s3_get": 0.0004 / 1000,
}
DOCS_BEGIN: Final = "<!-- burst:begin -->"
DOCS_END: Final = "<!-- burst:end -->"


@dataclass(frozen=True)
class BurstOptions:
    uploads: int = 10_000
    time_scale: float = 1.0
    concurrency: int = 32
    #: Each item's cap at real speed (divided by the time scale for the run); None: no cap.
    item_throttle: ThrottleLimits | None = field(default_factory=ThrottleLimits)
    #: Longest wait for the burst to finish, in the run's own seconds.
    timeout_s: float = 7200.0
    out: Path = Path("out")
    log_dir: Path = Path("out/logs/burst")
    template_path: Path = field(default_factory=default_template)
    progress: bool = True
    docs: Path | None = None
    command: str = "picsart-local burst"

    def __post_init__(self) -> None:
        if self.uploads < 1:
            raise ValueError("--uploads must be at least 1")
        if self.time_scale <= 0:
            raise ValueError("--time-scale must be positive")

    def bench(self) -> BenchOptions:
        """The bench's options for this burst: Picsart's numbers and the item's cap, scaled in time."""
        scale = self.time_scale
        low, high = ANSWER_MS
        return BenchOptions(
            uploads=self.uploads,
            concurrency=self.concurrency,
            quota=PICSART_QUOTA,
            window_s=PICSART_WINDOW_S * scale,
            spike=max(1, round(PICSART_SPIKE_PER_S / scale)),
            strategies=("adapter",),
            out=self.out,
            log_dir=self.log_dir,
            template_path=self.template_path,
            timeout_s=self.timeout_s,
            latency_ms=low * scale,
            latency_spread_ms=(high - low) * scale,
            item_throttle=self.item_throttle.scaled(scale) if self.item_throttle else None,
            skip_cold_start=True,
            progress=self.progress,
        )


def run_burst(options: BurstOptions, stdout: TextIO | None = None, stderr: TextIO | None = None) -> dict[str, Any]:
    """Run the burst, print its figures, write burst.json (and the docs page's table); return the report."""
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    if options.docs is not None:
        _rewritten(options.docs, [])  # a page without its markers fails before the run
    started, started_at = time.monotonic(), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    bench = options.bench()
    plan = plan_strategy(
        "adapter",
        load_template(bench.template_path),
        bench.template_path.parent.resolve(),
        window_s=bench.window_s,
        max_concurrency=2,
        reset_time_format="epoch_ms",
    )
    result = run_strategy(plan, bench, bench_images(), stderr if options.progress else None)
    figures = burst_figures(result, options)
    report = {
        "settings": {
            "uploads": options.uploads,
            "time_scale": options.time_scale,
            "concurrency": options.concurrency,
            "picsart": {"quota": PICSART_QUOTA, "window_s": PICSART_WINDOW_S, "spike_per_s": PICSART_SPIKE_PER_S},
            "answer_ms": list(ANSWER_MS),
            "item_throttle": vars(options.item_throttle) if options.item_throttle else None,
            "started_at": started_at,
            "prices_as_of": PRICES_AS_OF,
        },
        "figures": figures,
        "extrapolated": extrapolate(figures, options.uploads * 10, figures["arrivals_per_s"]),
        "extrapolated_at_once": extrapolate(figures, options.uploads * 10, None),
        "adapter": result,
        "duration_s": time.monotonic() - started,
    }
    write_json(report, options.out / "burst.json")
    for line in table_lines(report):
        print(line, file=stdout)
    print(f"\nwrote {options.out / 'burst.json'}", file=stdout)
    if options.docs is not None:
        options.docs.write_text(_rewritten(options.docs, ["", *markdown_lines(report, options.command), ""]))
        print(f"wrote the run's table into {options.docs}", file=stdout)
    return report


def burst_figures(result: dict[str, Any], options: BurstOptions) -> dict[str, Any]:
    """The burst's figures per upload, in real seconds (the run's divided by its time scale)."""
    uploads, scale = result["uploads"], options.time_scale
    delay_sends = sum(n for queue, n in result["sqs_function_sends_by_queue"].items() if "DelayQueue" in queue)
    arrival_s = (result.get("arrival_s") or 0.0) / scale
    figures: dict[str, Any] = {
        "uploads": uploads,
        "finished": result["finished"],
        "lost": result["lost"],
        "calls": result["calls"],
        "duplicate_calls": result["duplicate_calls"],
        "http_429": result["http_429"],
        "makespan_s": _scaled(result["makespan_s"], scale),
        "floor_s": _scaled(result["floor_s"], scale),
        "makespan_over_floor": result["makespan_over_floor"],
        "arrival_s": arrival_s,
        "arrivals_per_s": uploads / arrival_s if arrival_s > 0 else None,
        "lambda_invocations_per_upload": result["lambda_invocations"] / uploads,
        "lambda_gb_s_per_upload": result["lambda_busy_s"] * _memory_gb(options.template_path) / uploads,
        "sqs_requests_per_upload": result["sqs_requests_per_upload"],
        "sqs_function_requests_per_upload": result["sqs_function_requests_per_upload"],
        "ddb_write_units_per_upload": result["ddb_write_units"] / uploads,
        "ddb_read_units_per_upload": result["ddb_read_units"] / uploads,
        "ddb_limiter_write_units_per_upload": result["ddb_write_units_by_partition"].get("ratelimit", 0.0) / uploads,
        # Each environment's first read and each waiting grant's second look (`FleetRateLimiter.recheck`).
        "ddb_limiter_read_units_per_upload": result["ddb_read_units_by_partition"].get("ratelimit", 0.0) / uploads,
        # Per real second: the run's count in one of its seconds covers 1/scale real seconds.
        "limiter_peak_writes_per_s": result["ddb_limiter_peak_writes_per_s"] * scale,
        "limiter_peak_reads_per_s": result["ddb_limiter_peak_reads_per_s"] * scale,
        # Counted by the cap's model: a throttled request never reaches moto's handler, nor the meter behind it.
        "ddb_throttled_requests": sum(result["ddb_throttled_by_partition"].values()),
        "ddb_throttled_by_partition": result["ddb_throttled_by_partition"],
        "delay_queue_hops_per_upload": delay_sends / uploads,
        # S3: the output written, and reads of the upload (each take-up reads its head; Picsart fetches it once).
        "s3_puts_per_upload": 1.0,
        "s3_gets_per_upload": 1.0 + 1.0 + delay_sends / uploads,
    }
    figures["cost_per_1000_uploads_usd"] = cost_per_1000(figures)
    return figures


def cost_per_1000(figures: dict[str, Any]) -> dict[str, float]:
    """USD per 1,000 uploads at `PRICES`, by service (Picsart's own price not included)."""
    per_upload = {
        "lambda": figures["lambda_invocations_per_upload"] * PRICES["lambda_request"]
        + figures["lambda_gb_s_per_upload"] * PRICES["lambda_gb_second"],
        "sqs": figures["sqs_requests_per_upload"] * PRICES["sqs_request"],
        "dynamodb": figures["ddb_write_units_per_upload"] * PRICES["ddb_write_request_unit"]
        + figures["ddb_read_units_per_upload"] * PRICES["ddb_read_request_unit"],
        "s3": figures["s3_puts_per_upload"] * PRICES["s3_put"] + figures["s3_gets_per_upload"] * PRICES["s3_get"],
    }
    costs = {name: value * 1000 for name, value in per_upload.items()}
    costs["total"] = sum(per_upload.values()) * 1000
    return costs


#: What one park of a job and its return cost beyond the job itself, from the code path (processing.py,
#: parking.py): before parking, the circuit's read, the upload's head read, the idempotency record put and
#: released, the job's record started and set waiting, and the limiter's place; then one trip through the delay
#: queue (a send, a receive, a delete) and a share of a retry invocation (batches of up to 5, counted as 1).
PARK_COSTS: Final = {"invocations": 1.0, "sqs": 3.0, "ddb_write_units": 5.0, "ddb_read_units": 0.5, "s3_gets": 1.0}
#: A re-delay (work due more than 900 s ahead) costs its trip and a share of an invocation, no DynamoDB.
REDELAY_COSTS: Final = {"invocations": 1.0, "sqs": 3.0}
PICSART_CALLS_PER_S: Final = PICSART_QUOTA / PICSART_WINDOW_S


def line_waits(uploads: int, arrivals_per_s: float | None) -> tuple[float, float]:
    """The share of a burst's uploads that wait in the line, and the mean re-delays of an upload, when `uploads`
    arrive at `arrivals_per_s` (None: all at once) and Picsart takes PICSART_CALLS_PER_S. The i-th upload waits
    i * (1/P - 1/A): waits spread evenly from 0 to the line's length; each wait makes one re-delay per
    SQS_MAX_DELAY_S."""
    behind = 1.0 / PICSART_CALLS_PER_S - (1.0 / arrivals_per_s if arrivals_per_s else 0.0)
    if behind <= 0:
        return 0.0, 0.0
    waiting = 1.0 - (PICSART_CALLS_PER_S / arrivals_per_s if arrivals_per_s else 0.0)
    length = uploads * behind
    steps = 1000
    redelays = sum(math.floor((length * (i + 0.5) / steps) / SQS_MAX_DELAY_S) for i in range(steps)) / steps
    return waiting, redelays


def extrapolate(figures: dict[str, Any], uploads: int, arrivals_per_s: float | None) -> dict[str, Any]:
    """The figures for `uploads` arriving at `arrivals_per_s` (None: all at once), from a measured burst's: its
    per-upload costs, plus the parks and re-delays the line adds over the measured burst's own (`PARK_COSTS`,
    `REDELAY_COSTS`, `line_waits`). The makespan is the larger of the floor plus what the measured burst added
    to its floor, and the time the uploads take to arrive."""
    waiting, redelays = line_waits(uploads, arrivals_per_s)
    measured_waiting, measured_redelays = line_waits(figures["uploads"], figures.get("arrivals_per_s"))
    parks = max(0.0, waiting - max(measured_waiting, figures["delay_queue_hops_per_upload"]))
    more = max(0.0, redelays - measured_redelays)
    out = dict(figures)
    out["uploads"] = uploads
    out["arrivals_per_s"] = arrivals_per_s
    floor = metrics.floor_seconds(uploads, PICSART_QUOTA, PICSART_WINDOW_S, PICSART_SPIKE_PER_S, sum(ANSWER_MS) / 2000)
    out["floor_s"] = floor
    # What the burst adds to the floor (its first call, the quota idle between windows, its last answer and
    # output) is taken as it was measured.
    overhead = (figures["makespan_s"] or floor) - (figures["floor_s"] or 0.0)
    arrival_s = uploads / arrivals_per_s if arrivals_per_s else 0.0
    out["makespan_s"] = max(floor + overhead, arrival_s)
    out["makespan_over_floor"] = out["makespan_s"] / floor if floor else None
    out["delay_queue_hops_per_upload"] = figures["delay_queue_hops_per_upload"] + parks + more
    out["lambda_invocations_per_upload"] = (
        figures["lambda_invocations_per_upload"]
        + parks * PARK_COSTS["invocations"]
        + more * REDELAY_COSTS["invocations"]
    )
    out["sqs_requests_per_upload"] = (
        figures["sqs_requests_per_upload"] + parks * PARK_COSTS["sqs"] + more * REDELAY_COSTS["sqs"]
    )
    out["ddb_write_units_per_upload"] = figures["ddb_write_units_per_upload"] + parks * PARK_COSTS["ddb_write_units"]
    out["ddb_read_units_per_upload"] = figures["ddb_read_units_per_upload"] + parks * PARK_COSTS["ddb_read_units"]
    out["ddb_limiter_write_units_per_upload"] = figures["ddb_limiter_write_units_per_upload"] + parks
    out["s3_gets_per_upload"] = figures["s3_gets_per_upload"] + parks * PARK_COSTS["s3_gets"]
    for name in ("finished", "lost", "calls", "duplicate_calls", "http_429", "arrival_s", "ddb_throttled_requests"):
        out.pop(name, None)
    if arrivals_per_s is None:
        # All at once: as fast as Lambda takes them up.
        out.pop("limiter_peak_writes_per_s", None)
        out.pop("limiter_peak_reads_per_s", None)
    out["cost_per_1000_uploads_usd"] = cost_per_1000(out)
    return out


def _scaled(seconds: float | None, scale: float) -> float | None:
    return seconds / scale if seconds is not None else None


def _memory_gb(template_path: Path) -> float:
    """The functions' memory (the template's Globals), in GB."""
    document = load_template(template_path)
    memory = document.get("Globals", {}).get("Function", {}).get("MemorySize", 512)
    return float(memory) / 1024.0


ROWS: Final = (
    ("uploads", "uploads", "{:,.0f}"),
    ("lost", "lost (no output)", "{:,.0f}"),
    ("http_429", "429s", "{:,.0f}"),
    ("duplicate_calls", "calls paid twice", "{:,.0f}"),
    ("makespan_s", "makespan (s)", "{:,.0f}"),
    ("floor_s", "floor (s)", "{:,.0f}"),
    ("makespan_over_floor", "makespan / floor", "{:.3f}"),
    ("arrivals_per_s", "arrival rate (uploads/s)", "{:,.0f}"),
    ("lambda_invocations_per_upload", "Lambda invocations / upload", "{:.2f}"),
    ("lambda_gb_s_per_upload", "Lambda GB-s / upload", "{:.3f}"),
    ("sqs_requests_per_upload", "SQS requests / upload", "{:.2f}"),
    ("ddb_write_units_per_upload", "DynamoDB write units / upload", "{:.2f}"),
    ("ddb_read_units_per_upload", "DynamoDB read units / upload", "{:.2f}"),
    ("ddb_limiter_write_units_per_upload", "limiter item write units / upload", "{:.2f}"),
    ("limiter_peak_writes_per_s", "limiter item peak writes / s", "{:,.0f}"),
    ("ddb_throttled_requests", "DynamoDB requests throttled", "{:,.0f}"),
    ("delay_queue_hops_per_upload", "delay-queue hops / upload", "{:.2f}"),
)


def table_rows(report: dict[str, Any]) -> list[list[str]]:
    columns = [report["figures"], report["extrapolated"], report["extrapolated_at_once"]]
    rows = [
        [
            "figure",
            f"measured ({columns[0]['uploads']:,})",
            f"extrapolated ({columns[1]['uploads']:,}, same arrival rate)",
            f"extrapolated ({columns[2]['uploads']:,}, all at once)",
        ]
    ]
    for name, label, shape in ROWS:
        rows.append([label, *(_shown(column.get(name), shape) for column in columns)])
    for service in ("lambda", "sqs", "dynamodb", "s3", "total"):
        costs = [f"{column['cost_per_1000_uploads_usd'][service]:.4f}" for column in columns]
        rows.append([f"cost / 1,000 uploads, {service} (USD)", *costs])
    return rows


def _shown(value: Any, shape: str) -> str:
    return "-" if value is None else shape.format(value)


def table_lines(report: dict[str, Any]) -> list[str]:
    rows = table_rows(report)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))
        for row in rows
    ]


def markdown_lines(report: dict[str, Any], command: str) -> list[str]:
    settings = report["settings"]
    minutes, seconds = divmod(round(report["duration_s"]), 60)
    lines = [
        f"Run {settings['started_at']}, command `{command}`, {minutes} min {seconds} s, time scale "
        f"{settings['time_scale']:g} (figures in real seconds), prices as of {settings['prices_as_of']}.",
        "",
    ]
    rows = table_rows(report)
    lines.append("| " + " | ".join(rows[0]) + " |")
    lines.append("| --- | --: | --: | --: |")
    lines.extend("| " + " | ".join(row) + " |" for row in rows[1:])
    return lines


def _rewritten(path: Path, block: list[str]) -> str:
    try:
        return rewrite_between_markers(path.read_text(encoding="utf-8"), block, DOCS_BEGIN, DOCS_END)
    except DocsMarkersError as error:
        raise DocsMarkersError(f"{path}: {error}") from None
