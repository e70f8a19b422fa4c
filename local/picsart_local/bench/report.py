"""The bench's report: the adapter's targets, a table on the terminal, bench.json and bench.png."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

Result = Mapping[str, Any]


@dataclass(frozen=True)
class Target:
    name: str
    text: str
    check: Callable[[Result, list[Result]], bool | None]


def _fewest(field: str) -> Callable[[Result, list[Result]], bool | None]:
    def check(adapter: Result, others: list[Result]) -> bool | None:
        return all(adapter[field] <= other[field] for other in others) if others else None

    return check


#: What the adapter must achieve (reported as pass/fail; the command does not fail on them).
TARGETS: tuple[Target, ...] = (
    Target(
        "makespan_within_10pct_of_floor",
        "<= 1.10",
        lambda r, _: r["makespan_over_floor"] is not None and r["makespan_over_floor"] <= 1.10,
    ),
    Target("no_429_after_first_answer_of_window", "0", lambda r, _: r["http_429_after_first_answer"] == 0),
    Target("limiter_write_units_per_call_at_most_2", "<= 2", lambda r, _: r["ddb_limiter_write_units_per_call"] <= 2),
    Target("lost_zero", "0", lambda r, _: r["lost"] == 0),
    Target("duplicates_zero", "0", lambda r, _: r["duplicate_calls"] == 0),
    Target("fewest_429s", "<= others", _fewest("http_429")),
    Target("fewest_calls_wasted", "<= others", _fewest("calls_wasted")),
)


def evaluate_targets(strategies: Mapping[str, Result]) -> dict[str, Any]:
    """The adapter's targets: {name: {"target", "value", "pass"}} ("pass" None when not applicable)."""
    adapter = strategies.get("adapter")
    if adapter is None:
        return {}
    others = [result for name, result in strategies.items() if name != "adapter"]
    fields = {
        "makespan_within_10pct_of_floor": "makespan_over_floor",
        "no_429_after_first_answer_of_window": "http_429_after_first_answer",
        "limiter_write_units_per_call_at_most_2": "ddb_limiter_write_units_per_call",
        "lost_zero": "lost",
        "duplicates_zero": "duplicate_calls",
        "fewest_429s": "http_429",
        "fewest_calls_wasted": "calls_wasted",
    }
    return {
        "adapter": {
            target.name: {
                "target": target.text,
                "value": adapter[fields[target.name]],
                "pass": target.check(adapter, others),
            }
            for target in TARGETS
        }
    }


# ----------------------------------------------------------------------------------------------- table

#: (label, field, format, the adapter target shown on that row)
ROWS: tuple[tuple[str, str, str, str | None], ...] = (
    ("makespan (s)", "makespan_s", "{:.1f}", None),
    ("floor (s)", "floor_s", "{:.1f}", None),
    ("makespan / floor", "makespan_over_floor", "{:.2f}", "makespan_within_10pct_of_floor"),
    ("  upload to 1st call (s)", "makespan_parts.to_first_call_s", "{:.1f}", None),
    ("  quota idle after resets (s)", "makespan_parts.idle_after_resets_s", "{:.1f}", None),
    ("  last window, 1st to last call (s)", "makespan_parts.last_window_s", "{:.1f}", None),
    ("  last call to last output (s)", "makespan_parts.after_last_call_s", "{:.1f}", None),
    ("calls", "calls", "{}", None),
    ("HTTP 429", "http_429", "{}", "fewest_429s"),
    ("429 after window's 1st answer", "http_429_after_first_answer", "{}", "no_429_after_first_answer_of_window"),
    ("calls wasted", "calls_wasted", "{}", "fewest_calls_wasted"),
    ("lost", "lost", "{}", "lost_zero"),
    ("duplicate calls", "duplicate_calls", "{}", "duplicates_zero"),
    ("DynamoDB WCU / call (all)", "ddb_write_units_per_call", "{:.2f}", None),
    (
        "DynamoDB WCU / call (limiter)",
        "ddb_limiter_write_units_per_call",
        "{:.2f}",
        "limiter_write_units_per_call_at_most_2",
    ),
    ("DynamoDB RCU / call", "ddb_read_units_per_call", "{:.2f}", None),
    ("SQS requests / upload", "sqs_requests_per_upload", "{:.2f}", None),
    ("  of which by the functions", "sqs_function_requests_per_upload", "{:.2f}", None),
    ("latency p50 (s)", "latency_p50_s", "{:.1f}", None),
    ("latency p95 (s)", "latency_p95_s", "{:.1f}", None),
    ("Lambda busy (s)", "lambda_busy_s", "{:.0f}", None),
    ("invocation p50 (s)", "lambda_duration_p50_s", "{:.2f}", None),
    ("local AWS+emulator CPU (cores)", "stack_cpu_share", "{:.2f}", None),
    ("Lambda errors (timeouts)", "lambda_errors", "{}", None),
)


def table_lines(report: Mapping[str, Any]) -> list[str]:
    strategies: Mapping[str, Result] = report["strategies"]
    targets: Mapping[str, Any] = (report.get("targets") or {}).get("adapter", {})
    names = list(strategies)
    header = ["", *names] + (["adapter target"] if targets else [])
    rows = [header]
    for label, field, form, target_name in ROWS:
        row = [label]
        for name in names:
            value = _field(strategies[name], field)
            cell = "-" if value is None else form.format(value)
            if field == "lambda_errors":
                cell += f" ({strategies[name]['lambda_timeouts']})"
            row.append(cell)
        if targets:
            target = targets.get(target_name) if target_name else None
            row.append(_verdict(target) if target else "")
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for index, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        if targets:
            cells[-1] = row[-1].ljust(widths[-1])
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return lines


def _field(result: Result, path: str) -> Any:
    """A result's field by its dotted path ("makespan_parts.last_window_s"); None where any part is missing."""
    value: Any = result
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _verdict(target: Mapping[str, Any]) -> str:
    verdict = {True: "PASS", False: "FAIL", None: "n/a"}[target["pass"]]
    return f"{verdict} ({target['target']})"


def cold_start_lines(report: Mapping[str, Any]) -> list[str]:
    lines: list[str] = []
    cold = report.get("cold_start")
    if cold:
        lines.append(
            f"Cold start: median import of each handler module, {cold['runs']} fresh interpreters "
            f"(Python {cold['python']}; {cold.get('interpreter', 'this venv')})"
        )
        rows = [("module", "import ms", "x bare", "first event ms", "process ms")]
        for module, measured in cold["modules"].items():
            if "error" in measured:
                rows.append((module, "error", measured["error"], "", ""))
            else:
                ratio = measured.get("import_vs_bare")
                rows.append(
                    (
                        module,
                        f"{measured['import_ms']:.0f}",
                        f"{ratio:.2f}" if ratio is not None else "",
                        f"{measured.get('first_event_ms', 0.0):.0f}",
                        f"{measured['process_ms']:.0f}",
                    )
                )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for index, row in enumerate(rows):
            numbers = (cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True))
            cells = [row[0].ljust(widths[0]), *numbers]
            lines.append("  " + "  ".join(cells))
            if index == 0:
                lines.append("  " + "  ".join("-" * width for width in widths))
        target = cold.get("target")
        if target:
            worst = "" if target["value"] is None else f", slowest {target['value']:.2f}x"
            lines.append(f"  handler import against the bare handler's: {_verdict(target)}{worst}")
    layer = report.get("layer")
    if layer:
        where = f"{layer['platform']}, Python {layer['python']}"
        if layer.get("measured"):
            largest = ", ".join(f"{item['name']} {_mb(item['bytes'])}" for item in layer["largest"][:4])
            lines.append(
                f"Layer as sam build ships it ({where}): {_mb(layer['unzipped_bytes'])} unzipped, "
                f"{_mb(layer['zipped_bytes'])} zipped, {layer['files']} files; largest: {largest}"
            )
        else:
            lines.append(f"Layer size not measured ({where}): {layer['reason']}")
    return lines


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def print_report(report: Mapping[str, Any], stream: TextIO) -> None:
    settings = report["settings"]
    print(
        f"\n{settings['uploads']} uploads, {settings['concurrency']} at a time, quota {settings['quota']} per "
        f"{settings['window_s']:g} s, spike arrest {settings['spike_per_second']}/s"
        + (
            f", concurrency-cap N = {settings['cap_concurrency']}"
            if "concurrency-cap" in settings["strategies"]
            else ""
        ),
        file=stream,
    )
    for line in table_lines(report):
        print(line, file=stream)
    extra = cold_start_lines(report)
    if extra:
        print(file=stream)
        for line in extra:
            print(line, file=stream)


# ------------------------------------------------------------------------------------------ JSON, PNG


def write_json(report: Mapping[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")


def write_plot(report: Mapping[str, Any], path: Path) -> None:
    """Calls per second over time, one panel per strategy, with quota/window and the spike arrest drawn in."""
    from matplotlib.figure import Figure  # imported here: only the bench needs matplotlib (Agg, no pyplot)

    settings = report["settings"]
    strategies: Mapping[str, Result] = report["strategies"]
    quota_rate = settings["quota"] / settings["window_s"]
    figure = Figure(figsize=(11, 1.0 + 2.3 * len(strategies)))
    axes = figure.subplots(len(strategies), 1, sharex=True, squeeze=False)[:, 0]
    for axis, (name, result) in zip(axes, strategies.items(), strict=True):
        seconds = result["per_second"]
        t = [point["t"] for point in seconds]
        ok = [point["ok"] for point in seconds]
        refused = [point["http_429"] for point in seconds]
        other = [point["other"] for point in seconds]
        axis.bar(t, ok, width=1.0, align="edge", color="#2e7d32", label="200")
        axis.bar(t, refused, bottom=ok, width=1.0, align="edge", color="#c62828", label="429")
        if any(other):
            stacked = [a + b for a, b in zip(ok, refused, strict=True)]
            axis.bar(t, other, bottom=stacked, width=1.0, align="edge", color="#757575", label="other")
        axis.axhline(
            quota_rate, color="#1565c0", linestyle="--", linewidth=1.2, label=f"quota/window = {quota_rate:.3g}/s"
        )
        axis.axhline(
            settings["spike_per_second"],
            color="#6a1b9a",
            linestyle=":",
            linewidth=1.0,
            label=f"spike arrest {settings['spike_per_second']}/s",
        )
        if result["makespan_s"] is not None:
            axis.axvline(result["makespan_s"], color="black", linewidth=0.8, label="last output")
        makespan = "-" if result["makespan_s"] is None else f"{result['makespan_s']:.1f}"
        axis.set_title(
            f"{name}: makespan {makespan} s (floor {result['floor_s']:.1f} s), {result['calls']} calls, "
            f"{result['http_429']} x 429, lost {result['lost']}",
            fontsize="medium",
            loc="left",
        )
        axis.set_ylabel("calls / s")
        axis.grid(axis="y", alpha=0.3)
    axes[0].legend(loc="upper right", fontsize="small", ncols=3)
    axes[-1].set_xlabel("seconds since the first upload")
    figure.suptitle(
        f"{settings['uploads']} uploads, {settings['concurrency']} at a time, quota {settings['quota']} per "
        f"{settings['window_s']:g} s, spike arrest {settings['spike_per_second']}/s"
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
