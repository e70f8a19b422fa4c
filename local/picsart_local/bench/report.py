"""The bench's report: the adapter's and the pipeline's targets, tables on the terminal, bench.json and bench.png,
and the run's tables in Markdown on a docs page (between its two markers, so the page is never edited by hand
there). The rate-limit strategies share one table; the pipeline, which makes as many calls from fewer uploads,
has its own, against its floor and its targets."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

Result = Mapping[str, Any]
#: The scenario with a table of its own (strategies.py).
PIPELINE = "pipeline"


@dataclass(frozen=True)
class Target:
    name: str
    text: str
    check: Callable[[Result, list[Result]], bool | None]
    #: The result's figure the target is about.
    field: str


def _fewest(field: str) -> Callable[[Result, list[Result]], bool | None]:
    def check(adapter: Result, others: list[Result]) -> bool | None:
        return all(adapter[field] <= other[field] for other in others) if others else None

    return check


_WITHIN_10PCT = Target(
    "makespan_within_10pct_of_floor",
    "<= 1.10",
    lambda r, _: r["makespan_over_floor"] is not None and r["makespan_over_floor"] <= 1.10,
    "makespan_over_floor",
)
_LIMITER_WRITES = Target(
    "limiter_write_units_per_call_at_most_2",
    "<= 2",
    lambda r, _: r["ddb_limiter_write_units_per_call"] <= 2,
    "ddb_limiter_write_units_per_call",
)
_LOST = Target("lost_zero", "0", lambda r, _: r["lost"] == 0, "lost")
_DUPLICATES = Target("duplicates_zero", "0", lambda r, _: r["duplicate_calls"] == 0, "duplicate_calls")

#: What the adapter must achieve (reported as pass/fail; the command does not fail on them).
TARGETS: tuple[Target, ...] = (
    _WITHIN_10PCT,
    Target(
        "no_429_after_first_answer_of_window",
        "0",
        lambda r, _: r["http_429_after_first_answer"] == 0,
        "http_429_after_first_answer",
    ),
    _LIMITER_WRITES,
    _LOST,
    _DUPLICATES,
    Target("fewest_429s", "<= others", _fewest("http_429"), "http_429"),
    Target("fewest_calls_wasted", "<= others", _fewest("calls_wasted"), "calls_wasted"),
)
#: What the adapter must achieve running a pipeline, every step a call: the same budget, no 429 at all.
PIPELINE_TARGETS: tuple[Target, ...] = (
    _WITHIN_10PCT,
    Target("no_429", "0", lambda r, _: r["http_429"] == 0, "http_429"),
    _LIMITER_WRITES,
    _LOST,
    _DUPLICATES,
)


def evaluate_targets(strategies: Mapping[str, Result]) -> dict[str, Any]:
    """The adapter's and the pipeline's targets, for those that ran: {"adapter": {name: {"target", "value",
    "pass"}}, "pipeline": {...}} ("pass" None when not applicable). The adapter is compared with the other
    rate-limit strategies only: the pipeline makes its calls from fewer uploads."""
    verdicts: dict[str, Any] = {}
    adapter = strategies.get("adapter")
    if adapter is not None:
        others = [result for name, result in strategies.items() if name not in ("adapter", PIPELINE)]
        verdicts["adapter"] = _verdicts(TARGETS, adapter, others)
    pipeline = strategies.get(PIPELINE)
    if pipeline is not None:
        verdicts[PIPELINE] = _verdicts(PIPELINE_TARGETS, pipeline, [])
    return verdicts


def _verdicts(targets: Sequence[Target], result: Result, others: list[Result]) -> dict[str, Any]:
    return {
        target.name: {"target": target.text, "value": result[target.field], "pass": target.check(result, others)}
        for target in targets
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


#: The pipeline's table: (label, field, format, its target on that row). A list is shown step by step.
PIPELINE_ROWS: tuple[tuple[str, str, str, str | None], ...] = (
    ("uploads", "uploads", "{}", None),
    ("calls per upload", "calls_per_upload", "{}", None),
    *ROWS[:8],
    ("  by step", "calls_by_step", "{}", None),
    ("HTTP 429", "http_429", "{}", "no_429"),
    ("lost", "lost", "{}", "lost_zero"),
    ("duplicate paid calls", "duplicate_calls", "{}", "duplicates_zero"),
    ("  by step", "duplicate_calls_by_step", "{}", None),
    ("calls not traced to an upload", "unattributed_calls", "{}", None),
    *ROWS[13:],
)


def rate_limit_names(report: Mapping[str, Any]) -> list[str]:
    """The strategies of the comparison table: all that ran but the pipeline."""
    return [name for name in report["strategies"] if name != PIPELINE]


def table_rows(report: Mapping[str, Any]) -> list[list[str]]:
    """The comparison as rows of cells: a header (the strategies, and the adapter's target when there are
    targets), then one row per line of ROWS. Labels keep their leading spaces (a part of the row above)."""
    targets: Mapping[str, Any] = (report.get("targets") or {}).get("adapter", {})
    return _rows(report["strategies"], rate_limit_names(report), ROWS, targets, "adapter target")


def pipeline_rows(report: Mapping[str, Any]) -> list[list[str]]:
    """The pipeline's figures as rows of cells, with its targets (PIPELINE_ROWS); [] when it did not run."""
    if PIPELINE not in report["strategies"]:
        return []
    targets: Mapping[str, Any] = (report.get("targets") or {}).get(PIPELINE, {})
    return _rows(report["strategies"], [PIPELINE], PIPELINE_ROWS, targets, "target")


def _rows(
    strategies: Mapping[str, Result],
    names: Sequence[str],
    lines: Sequence[tuple[str, str, str, str | None]],
    targets: Mapping[str, Any],
    target_header: str,
) -> list[list[str]]:
    rows = [["", *names] + ([target_header] if targets else [])]
    for label, field, form, target_name in lines:
        row = [label]
        for name in names:
            value = _field(strategies[name], field)
            if value is None:
                cell = "-"
            elif isinstance(value, list):
                cell = " / ".join(form.format(item) for item in value)
            else:
                cell = form.format(value)
            if field == "lambda_errors":
                cell += f" ({strategies[name]['lambda_timeouts']})"
            row.append(cell)
        if targets:
            target = targets.get(target_name) if target_name else None
            row.append(_verdict(target) if target else "")
        rows.append(row)
    return rows


def table_lines(report: Mapping[str, Any]) -> list[str]:
    return _text_table(table_rows(report), bool((report.get("targets") or {}).get("adapter")))


def pipeline_lines(report: Mapping[str, Any]) -> list[str]:
    rows = pipeline_rows(report)
    return _text_table(rows, bool((report.get("targets") or {}).get(PIPELINE))) if rows else []


def _text_table(rows: Sequence[Sequence[str]], targets: bool) -> list[str]:
    header = rows[0]
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


def cold_start_heading(cold: Mapping[str, Any]) -> str:
    return (
        f"Cold start: median import of each handler module, {cold['runs']} fresh interpreters "
        f"(Python {cold['python']}; {cold.get('interpreter', 'this venv')})"
    )


def cold_start_rows(cold: Mapping[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """Each handler module's import time against the bare handler's, as rows of cells (a header first)."""
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
    return rows


def cold_start_verdict(cold: Mapping[str, Any]) -> str | None:
    target = cold.get("target")
    if not target:
        return None
    worst = "" if target["value"] is None else f", slowest {target['value']:.2f}x"
    return f"handler import against the bare handler's: {_verdict(target)}{worst}"


def layer_line(layer: Mapping[str, Any]) -> str:
    where = f"{layer['platform']}, Python {layer['python']}"
    if layer.get("measured"):
        largest = ", ".join(f"{item['name']} {_mb(item['bytes'])}" for item in layer["largest"][:4])
        return (
            f"Layer as sam build ships it ({where}): {_mb(layer['unzipped_bytes'])} unzipped, "
            f"{_mb(layer['zipped_bytes'])} zipped, {layer['files']} files; largest: {largest}"
        )
    return f"Layer size not measured ({where}): {layer['reason']}"


def cold_start_lines(report: Mapping[str, Any]) -> list[str]:
    lines: list[str] = []
    cold = report.get("cold_start")
    if cold:
        lines.append(cold_start_heading(cold))
        rows = cold_start_rows(cold)
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for index, row in enumerate(rows):
            numbers = (cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True))
            cells = [row[0].ljust(widths[0]), *numbers]
            lines.append("  " + "  ".join(cells))
            if index == 0:
                lines.append("  " + "  ".join("-" * width for width in widths))
        verdict = cold_start_verdict(cold)
        if verdict:
            lines.append(f"  {verdict}")
    layer = report.get("layer")
    if layer:
        lines.append(layer_line(layer))
    return lines


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def pipeline_settings_line(report: Mapping[str, Any]) -> str:
    """The pipeline's burst: uploads, steps, calls, and the shared settings."""
    settings, result = report["settings"], report["strategies"][PIPELINE]
    size = settings.get("pipeline", {}).get("image_size")
    images = f", {size[0]}x{size[1]} PNG" if size else ""
    return (
        f"Pipeline: {result['uploads']} uploads through {' -> '.join(result.get('pipeline_steps', []))} "
        f"({result.get('calls_expected', '?')} calls){images}, {settings['concurrency']} at a time, quota "
        f"{settings['quota']} per {settings['window_s']:g} s, spike arrest {settings['spike_per_second']}/s"
    )


def settings_line(report: Mapping[str, Any]) -> str:
    settings = report["settings"]
    return (
        f"{settings['uploads']} uploads, {settings['concurrency']} at a time, quota {settings['quota']} per "
        f"{settings['window_s']:g} s, spike arrest {settings['spike_per_second']}/s"
        + (
            f", concurrency-cap N = {settings['cap_concurrency']}"
            if "concurrency-cap" in settings["strategies"]
            else ""
        )
    )


def print_report(report: Mapping[str, Any], stream: TextIO) -> None:
    if rate_limit_names(report):
        print(f"\n{settings_line(report)}", file=stream)
        for line in table_lines(report):
            print(line, file=stream)
    if PIPELINE in report["strategies"]:
        print(f"\n{pipeline_settings_line(report)}", file=stream)
        for line in pipeline_lines(report):
            print(line, file=stream)
    extra = cold_start_lines(report)
    if extra:
        print(file=stream)
        for line in extra:
            print(line, file=stream)


# ------------------------------------------------------------------------------------------ docs page

#: The part of a docs page the bench writes: everything between these two lines is replaced by each run.
DOCS_BEGIN = "<!-- bench:begin -->"
DOCS_END = "<!-- bench:end -->"
#: The plot's name beside the docs page (the Markdown links to it).
DOCS_PLOT = "bench.png"


class DocsMarkersError(ValueError):
    """The docs page does not have the two markers, once each and in order: nothing is written."""


def markdown_lines(report: Mapping[str, Any], command: str) -> list[str]:
    """The run as Markdown: when and how it ran, the comparison table, the cold start, the layer, the plot."""
    settings = report["settings"]
    when = str(settings.get("started_at", "at an unknown time"))
    facts = [f"Run {when}", f"command `{command}`"]
    if report.get("duration_s") is not None:
        minutes, seconds = divmod(round(report["duration_s"]), 60)
        facts.append(f"{minutes} min {seconds} s")
    if settings.get("cpus"):
        facts.append(f"{settings['cpus']} cores")
    if settings.get("python"):
        facts.append(f"Python {settings['python']}")
    lines = [", ".join(facts) + "."]
    tables: list[tuple[str, list[list[str]], int]] = []
    if rate_limit_names(report):
        tables.append((settings_line(report), table_rows(report), len(rate_limit_names(report))))
    if PIPELINE in report["strategies"]:
        tables.append((pipeline_settings_line(report), pipeline_rows(report), 1))
    for heading, rows, numbers in tables:
        alignments = ["---", *["--:"] * numbers, *["---"] * (len(rows[0]) - 1 - numbers)]
        lines.extend(["", f"{heading}:", "", *_markdown_table(rows, alignments)])
    cold = report.get("cold_start")
    if cold:
        cold_rows = [list(row) for row in cold_start_rows(cold)]
        lines.extend(["", f"{cold_start_heading(cold)}:", ""])
        lines.extend(_markdown_table(cold_rows, ["---", *["--:"] * (len(cold_rows[0]) - 1)]))
        verdict = cold_start_verdict(cold)
        if verdict:
            lines.extend(["", verdict[0].upper() + verdict[1:] + "."])
    layer = report.get("layer")
    if layer:
        lines.extend(["", layer_line(layer) + "."])
    lines.extend(["", f"![calls per second over time, per strategy, with the quota]({DOCS_PLOT})"])
    return lines


def _markdown_table(rows: Sequence[Sequence[str]], alignments: Sequence[str]) -> list[str]:
    """A Markdown table: the first row is the header; `alignments` are `---` (left) or `--:` (right)."""
    return [_markdown_row(rows[0]), "| " + " | ".join(alignments) + " |", *(_markdown_row(row) for row in rows[1:])]


def _markdown_row(cells: Sequence[str]) -> str:
    """One table row; a label's leading spaces (a part of the row above) kept visible, pipes escaped."""
    shown = []
    for cell in cells:
        indent = len(cell) - len(cell.lstrip(" "))
        shown.append("&nbsp;" * indent + cell.strip().replace("|", "\\|"))
    return "| " + " | ".join(shown) + " |"


def rewrite_between_markers(text: str, block: Sequence[str], begin: str = DOCS_BEGIN, end: str = DOCS_END) -> str:
    """`text` with the lines between DOCS_BEGIN and DOCS_END replaced by `block`; the markers and all else kept.

    Raises DocsMarkersError unless each marker is on a line of its own, once, the begin before the end.
    """
    lines = text.splitlines(keepends=True)
    begins = [index for index, line in enumerate(lines) if line.strip() == begin]
    ends = [index for index, line in enumerate(lines) if line.strip() == end]
    if len(begins) != 1 or len(ends) != 1 or begins[0] > ends[0]:
        raise DocsMarkersError(
            f"the docs page needs the lines {begin} and {end}, once each and in that order "
            f"(found {len(begins)} and {len(ends)}); it is not written"
        )
    replaced = [line + "\n" for line in block]
    return "".join(lines[: begins[0] + 1] + replaced + lines[ends[0] :])


def _rewritten(path: Path, block: Sequence[str]) -> str:
    try:
        return rewrite_between_markers(path.read_text(encoding="utf-8"), block)
    except DocsMarkersError as error:
        raise DocsMarkersError(f"{path}: {error}") from None


def check_docs(path: Path) -> None:
    """Fail now, before the runs, when the run's table could not be written to the docs page."""
    _rewritten(path, [])


def write_docs(report: Mapping[str, Any], path: Path, command: str, plot: Path | None = None) -> None:
    """Write the run's Markdown between the docs page's markers, and copy its plot beside the page."""
    path.write_text(_rewritten(path, ["", *markdown_lines(report, command), ""]), encoding="utf-8")
    if plot is not None:
        shutil.copyfile(plot, path.parent / DOCS_PLOT)


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
        label = name
        if result.get("pipeline_steps"):
            label += f" ({result['uploads']} uploads x {len(result['pipeline_steps'])} steps)"
        axis.set_title(
            f"{label}: makespan {makespan} s (floor {result['floor_s']:.1f} s), {result['calls']} calls, "
            f"{result['http_429']} x 429, lost {result['lost']}",
            fontsize="medium",
            loc="left",
        )
        axis.set_ylabel("calls / s")
        axis.grid(axis="y", alpha=0.3)
    axes[0].legend(loc="upper right", fontsize="small", ncols=3)
    axes[-1].set_xlabel("seconds since the first upload")
    figure.suptitle(settings_line(report) if rate_limit_names(report) else pipeline_settings_line(report))
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
