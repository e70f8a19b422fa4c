"""`picsart-local`: the local stack from the command line (no AWS account, no Docker).

  picsart-local stack                          run the whole stack in the foreground
  picsart-local invoke FUNCTION -e EVENT.json  one invocation, like `sam local invoke`
  picsart-local sam-invoke FUNCTION -e EVENT.json
                                               the real `sam build` + `sam local invoke`, in Docker, against
                                               the local stack (after `make sam-local`)
  picsart-local sam ARGS...                    the SAM CLI with its Lambda containers on the host's network
  picsart-local process FILE...                upload files, wait for each, print a table
  picsart-local demo                           the samples through the example rules, into out/
  picsart-local bench                          compare rate-limit strategies under a burst of uploads
  picsart-local report KEY                     every attempt for one object, for a support request
  picsart-local rules check FILE               validate a rules file; print its rules, pipelines and calls
  picsart-local plan KEY                       dry run: the rule, steps, output keys and calls for an upload
  picsart-local redrive                        the dead-letter queue's work back for another try
  picsart-local reprocess --prefix P           objects through their rules again, as the rules are now

`--rules FILE` (before the command) gives the functions that rules file, in place of the template's RulesFile.
With PICSART_BASE_URL and PICSART_API_KEY set, the stack calls that server instead of the embedded
emulator. The emulator's knobs are PICSART_EMULATOR_* variables (quota, window, spike, faults).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import boto3

from picsart_adapter.input_checks import SUPPORTED_EXTENSIONS
from picsart_adapter.jobs import JobStore
from picsart_adapter.rules import MatchCriteria, load_rules, output_extension, output_key, pipeline_hash
from picsart_adapter.s3_events import parse_s3_event
from picsart_local.cfn_template import TemplateError
from picsart_local.environment import REPOSITORY_ROOT, LocalEnvironment, LocalOptions, UploadOutcome
from picsart_local.moto_throttle import PARTITION_READ_UNITS, PARTITION_WRITE_UNITS, ThrottleLimits
from picsart_local.plan import (
    DEFAULT_SIZE,
    DEFAULT_VERSION_REF,
    build_plan,
    default_rules_path,
    parse_metadata,
    render_plan,
)
from picsart_local.report import support_report
from picsart_local.samples import write_samples

#: The adapter layer's folder (its ContentUri in template.yaml), relative to the template's.
ADAPTER_LAYER = Path("layers/picsart_adapter")
#: Outcomes that mean the adapter did its job; anything else makes `process` exit non-zero.
EXPECTED = frozenset({"succeeded", "skipped"})


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["sam"]:  # everything after `sam` is SAM's own command line
        from picsart_local.sam_local.hostnet import run_sam

        return run_sam(arguments[1:])
    args = _parser().parse_args(arguments)
    try:
        return int(args.run(args))
    except (ValueError, FileNotFoundError, TemplateError) as error:
        print(f"picsart-local: {error}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="picsart-local", description=__doc__.splitlines()[0])
    parser.add_argument("--template", type=Path, help="SAM template (default: ./template.yaml)")
    parser.add_argument("--log-dir", type=Path, default=Path("out/logs"), help="where function logs go")
    parser.add_argument(
        "--parameter-overrides",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a template parameter, repeatable: PicsartTool=upscale, PicsartToolParameters='{...}'",
    )
    parser.add_argument(
        "--rules",
        type=Path,
        metavar="FILE",
        help="the functions' rules file (PICSART_RULES_FILE), in place of the template's RulesFile: "
        "e.g. layers/picsart_adapter/rules/example.json",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    stack = commands.add_parser("stack", help="run moto, the emulator and the event sources in the foreground")
    stack.add_argument("--no-event-sources", action="store_true", help="uploads trigger nothing")
    stack.set_defaults(run=_run_stack)

    invoke = commands.add_parser("invoke", help="invoke a function once with an event, like sam local invoke")
    invoke.add_argument("function", help="logical id in template.yaml, e.g. UploadFunction")
    invoke.add_argument("-e", "--event", type=Path, required=True, help="event JSON file (see events/)")
    invoke.add_argument("--put", type=Path, help="first upload this file to the bucket and key the event names")
    invoke.set_defaults(run=_run_invoke)

    sam_invoke = commands.add_parser(
        "sam-invoke",
        help="the real `sam build` and `sam local invoke` in Docker, against the local stack (make sam-local first)",
        description="Starts the local stack, builds the application with `sam build` for this machine's architecture "
        "(cached in .aws-sam/sam-local-ARCH), and runs `sam local invoke FUNCTION` through `picsart-local sam` with "
        "the stack's resources as the functions' environment. Prints the answer; SAM's and the function's logs go "
        "to stderr.",
    )
    sam_invoke.add_argument("function", help="logical id in template.yaml, e.g. UploadFunction")
    sam_invoke.add_argument("-e", "--event", type=Path, required=True, help="event JSON file (see events/)")
    sam_invoke.add_argument("--put", type=Path, help="first upload this file to the bucket and key the event names")
    sam_invoke.add_argument(
        "--architecture", choices=["x86_64", "arm64"], help="the functions' architecture (default: this machine's)"
    )
    sam_invoke.add_argument("--build-dir", type=Path, help="sam build's folder (default: .aws-sam/sam-local-ARCH)")
    sam_invoke.set_defaults(run=_run_sam_invoke)

    # Listed for --help; main() hands `sam ...` to SAM before parsing.
    commands.add_parser("sam", help="the SAM CLI with its Lambda containers on the host's network: sam ARGS...")

    process = commands.add_parser("process", help="upload files, wait for each to finish, print a table")
    process.add_argument("files", nargs="+", type=Path)
    process.add_argument("--out", type=Path, help="download the results into this folder")
    process.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for all uploads")
    process.add_argument("--report", action="store_true", help="print the support report of each upload")
    process.set_defaults(run=_run_process)

    report = commands.add_parser(
        "report",
        help="print every attempt for one uploaded object (time, status, correlation id, rate limit, error body)",
        description="Reads the job records of the jobs table through boto3: against a running `picsart-local "
        "stack` (export what it prints) or a deployed stack.",
    )
    report.add_argument("key", help="the object's key in the input bucket, as uploaded")
    report.add_argument("--bucket", default=os.environ.get("INPUT_BUCKET"), help="input bucket (env INPUT_BUCKET)")
    report.add_argument("--table", default=os.environ.get("JOBS_TABLE"), help="jobs table (env JOBS_TABLE)")
    report.set_defaults(run=_run_report)

    rules = commands.add_parser("rules", help="rules files (docs/rules.md)")
    rules_commands = rules.add_subparsers(dest="rules_command", required=True)
    rules_check = rules_commands.add_parser(
        "check",
        help="validate a rules file; print its rules, pipelines, steps and Picsart calls per upload, or its errors",
        description="Loads the file as the functions will: every error names the rule, the pipeline, the step and "
        "the field. Exits 2 when the file is not valid.",
    )
    rules_check.add_argument("file", type=Path, help="the rules file, e.g. layers/picsart_adapter/rules/example.json")
    rules_check.set_defaults(run=_run_rules_check)

    plan = commands.add_parser(
        "plan",
        help="dry run: the rule an upload matches, its pipelines' steps and output keys, and the Picsart calls",
        description="Calls nothing (no AWS, no Picsart): the upload's size, content type and metadata are taken as "
        "given. Exits 2 when the rules file is not valid.",
    )
    plan.add_argument("key", help="the upload's key in the input bucket, e.g. products/x.jpg")
    plan.add_argument("--size", type=int, default=DEFAULT_SIZE, metavar="N", help=f"bytes (default {DEFAULT_SIZE})")
    plan.add_argument(
        "--content-type", metavar="T", help="the sniffed type, e.g. image/png (default: from the key's extension)"
    )
    plan.add_argument(
        "--metadata", action="extend", nargs="+", default=[], metavar="KEY=VALUE", help="S3 user metadata, repeatable"
    )
    # Its own dest: the global --rules (the stack's rules file) is kept, and used when this one is not given.
    plan.add_argument(
        "--rules", dest="plan_rules", type=Path, metavar="FILE", help="rules file (default: the example rules)"
    )
    plan.add_argument(
        "--version", default=DEFAULT_VERSION_REF, metavar="V", help="version ref, e.g. version:ID or etag:ETAG"
    )
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.set_defaults(run=_run_plan)

    _add_operating_commands(commands)

    demo = commands.add_parser(
        "demo", help="the samples through the example rules: outputs and a contact sheet (demo.png) in --out"
    )
    demo.add_argument("--out", type=Path, default=Path("out"))
    demo.add_argument("--timeout", type=float, default=120.0)
    demo.set_defaults(run=_run_demo)

    bench = commands.add_parser(
        "bench",
        help="a burst of uploads against a quota under each strategy; a table, OUT/bench.json and OUT/bench.png",
    )
    bench.add_argument("--uploads", type=int, default=300, help="uploads in the burst (default 300)")
    bench.add_argument("--concurrency", type=int, default=32, help="execution environments at once (default 32)")
    bench.add_argument("--quota", type=int, default=60, help="Picsart calls per window (default 60)")
    bench.add_argument("--window", type=float, default=10.0, help="quota window in seconds (default 10)")
    bench.add_argument("--spike", type=int, default=20, help="spike arrest, calls per second (default 20)")
    bench.add_argument(
        "--strategies",
        default="adapter,sdk-retry,backoff,concurrency-cap,pipeline",
        help="comma-separated, run in this order (default: the four strategies, then the pipeline scenario)",
    )
    bench.add_argument("--out", type=Path, default=Path("out"), help="where bench.json and bench.png go")
    bench.add_argument("--timeout", type=float, default=900.0, help="seconds one strategy may take (default 900)")
    bench.add_argument("--latency-ms", type=float, default=0.0, help="emulator latency added to each call")
    bench.add_argument(
        "--cap-concurrency", type=int, help="MaximumConcurrency for concurrency-cap (default: from quota and latency)"
    )
    bench.add_argument(
        "--adapter-reset-form",
        choices=["epoch_ms", "epoch_s", "seconds"],
        default="epoch_ms",
        help="Reset-Time form the emulator writes for the adapter (the baselines get the form they expect)",
    )
    bench.add_argument("--import-runs", type=int, default=9, help="fresh interpreters per import time (default 9)")
    bench.add_argument("--skip-cold-start", action="store_true", help="no import times and no layer size")
    bench.add_argument("--skip-layer-size", action="store_true", help="no layer size (it needs pip and an index)")
    bench.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    bench.add_argument(
        "--docs",
        type=Path,
        help="a docs page whose part between <!-- bench:begin --> and <!-- bench:end --> gets the run's table "
        "(its plot is copied beside it as bench.png); `make bench` passes docs/benchmark.md",
    )
    bench.set_defaults(run=_run_bench)
    add_burst_parser(commands)

    soak = commands.add_parser(
        "soak",
        help="thousands of uploads with Picsart faults and killed invocations; every upload accounted for",
        description="Uploads through the local stack while the emulator injects faults and execution "
        "environments are killed before the Picsart call, after it, or after the output; then accounts for "
        "every upload (job records, dead-letter queues), counts successful calls per version and orphan "
        "outputs, scans every log line, queue message and table item for the API key and signed-URL "
        "signatures (secret_leaks), prints the figures and writes them to --out. Exits 1 when an upload is "
        "lost, an output has no succeeded record, a version was called successfully more often than kills and "
        "faults explain, or a secret leaked.",
    )
    soak.add_argument("--uploads", type=int, default=2000, help="uploads (default 2000)")
    soak.add_argument("--concurrency", type=int, default=16, help="upload function environments (default 16)")
    soak.add_argument("--upload-threads", type=int, default=8, help="threads putting objects (default 8)")
    soak.add_argument(
        "--max-backlog", type=int, default=400, help="uploads put and not yet taken up, at most (default 400)"
    )
    soak.add_argument("--server-errors", type=float, default=0.05, help="share of 500/503 answers (default 0.05)")
    soak.add_argument("--drops", type=float, default=0.02, help="share of dropped connections (default 0.02)")
    soak.add_argument("--slow", type=float, default=0.02, help="share of answers slower than --client-timeout")
    soak.add_argument("--bare-429", type=float, default=0.01, help="share of 429s without headers (default 0.01)")
    soak.add_argument(
        "--result-faults", type=float, default=0.02, help="share of result downloads answered 503 (default 0.02)"
    )
    soak.add_argument("--client-timeout", type=float, default=2.0, help="PICSART_TIMEOUT_SECONDS (default 2)")
    soak.add_argument("--slow-seconds", type=float, default=4.0, help="how long a slow answer takes (default 4)")
    soak.add_argument("--kill-before-call", type=float, default=0.01, help="kill rate before the call (0.01)")
    soak.add_argument("--kill-after-call", type=float, default=0.01, help="kill rate after a 200, before the output")
    soak.add_argument(
        "--kill-after-output", type=float, default=0.01, help="kill rate after the output, before the record"
    )
    soak.add_argument(
        "--kill-after-event", type=float, default=0.01, help="kill rate after the completion event, before the record"
    )
    soak.add_argument("--max-attempts", type=int, help="MaxAttempts template parameter (default: the template's)")
    soak.add_argument(
        "--function-timeout", type=float, help="every function's Timeout locally (default: the template's)"
    )
    soak.add_argument(
        "--visibility-timeout", type=int, help="delay queue's visibility timeout (default: function timeout)"
    )
    soak.add_argument("--quota", type=int, default=100_000, help="emulator quota per window (default 100000)")
    soak.add_argument("--window-seconds", type=float, default=60.0, help="emulator quota window (default 60)")
    soak.add_argument("--floor-seconds", type=float, default=2.0, help="RATE_LIMIT_FLOOR_SECONDS (default 2)")
    soak.add_argument("--retry-base-seconds", type=float, default=0.5, help="RETRY_BASE_SECONDS (default 0.5)")
    soak.add_argument("--seed", type=int, help="seed of the emulator's faults and the kills")
    soak.add_argument("--timeout", type=float, default=1800.0, help="seconds to settle after the last upload")
    soak.add_argument("--progress-every", type=float, default=10.0, help="seconds between progress lines")
    soak.add_argument("--no-prewarm", action="store_true", help="do not start the environments before the uploads")
    soak.add_argument("--out", type=Path, default=Path("out/soak.json"), help="where the figures go")
    add_item_throttle_arguments(soak)
    soak.set_defaults(run=_run_soak)
    return parser


def _options(args: argparse.Namespace, **overrides: Any) -> LocalOptions:
    parameters = {}
    for item in args.parameter_overrides:
        name, separator, value = item.partition("=")
        if not separator:
            raise ValueError(f"--parameter-overrides takes NAME=VALUE, got {item!r}")
        parameters[name] = value
    if args.template:
        overrides["template_path"] = args.template
    if args.rules:
        overrides["rules_file"] = args.rules
    return LocalOptions.from_environment(parameters=parameters, log_dir=args.log_dir, **overrides)


def _parameters_with_rules(options: LocalOptions) -> dict[str, str]:
    """The template parameters of a command that builds its stack from parameters alone (bench, soak): --rules
    becomes RulesFile, an absolute path, which the functions get as PICSART_RULES_FILE, as LocalStack sets it."""
    parameters = dict(options.parameters)
    if options.rules_file is not None:
        if not options.rules_file.is_file():
            raise FileNotFoundError(f"no such rules file: {options.rules_file}")
        parameters["RulesFile"] = str(options.rules_file.resolve())
    return parameters


def _sam_invoke_options(args: argparse.Namespace) -> LocalOptions:
    """sam-invoke's options. Its functions run in a container that sees only what `sam build` ships, so --rules
    becomes RulesFile relative to the layer's root (as deployed: /opt/python/rules/...), and the file must be in
    the layer's rules/ folder, which the layer's Makefile ships."""
    options = _options(args, event_sources=False)
    if options.rules_file is None:
        return options
    layer_root = options.template_path.resolve().parent / ADAPTER_LAYER
    rules_file = options.rules_file.resolve()
    if not rules_file.is_file():
        raise FileNotFoundError(f"no such rules file: {options.rules_file}")
    if not rules_file.is_relative_to(layer_root / "rules"):
        raise ValueError(
            f"sam-invoke runs the functions in Docker, where only the layer's files exist: put {rules_file.name} "
            f"in {layer_root / 'rules'}/ (the layer ships that folder)"
        )
    options.parameters["RulesFile"] = rules_file.relative_to(layer_root).as_posix()
    options.rules_file = None
    return options


def _run_stack(args: argparse.Namespace) -> int:
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    with LocalEnvironment(_options(args, event_sources=not args.no_event_sources)) as env:
        assert env.stack is not None
        print("Local stack is up. Point the AWS CLI or boto3 at it with:\n")
        for name, value in sorted(env.stack.aws_environment().items()):
            print(f"  export {name}={value}")
        print(f"  export INPUT_BUCKET={env.input_bucket}")
        print(f"  export JOBS_TABLE={env.outputs['JobsTableName']}")
        print(f"  export DELAY_QUEUE_URL={env.outputs['DelayQueueUrl']}")
        print(f"  export DEAD_LETTER_QUEUE_URL={env.outputs['DeadLetterQueueUrl']}")
        print("\nResources (from template.yaml):")
        for name, value in sorted(env.outputs.items()):
            print(f"  {name:22} {value}")
        if env.emulator is not None:
            print(f"\nPicsart emulator: {env.emulator.base_url}")
        print(f"Function logs: {args.log_dir}/")
        print(f"\nTry: aws s3 cp samples/red-mug.png s3://{env.input_bucket}/uploads/red-mug.png")
        print("Ctrl-C stops everything.", flush=True)
        stopping.wait()
    return 0


def _put(env: LocalEnvironment, event: dict[str, Any], args: argparse.Namespace) -> None:
    """--put: upload the file to the key the event names; the event then names the local input bucket."""
    uploads = parse_s3_event(event).uploads
    if not uploads:
        raise ValueError(f"--put needs an event that names an upload; {args.event} names none")
    # The event names a bucket; locally the input bucket stands in for it.
    event["Records"][0]["s3"]["bucket"]["name"] = env.input_bucket
    env.upload(uploads[0].key, args.put.read_bytes())


def _run_invoke(args: argparse.Namespace) -> int:
    event = json.loads(args.event.read_text())
    with LocalEnvironment(_options(args, event_sources=False)) as env:
        assert env.runner is not None
        if args.put:
            _put(env, event, args)
        result = env.runner.invoke(args.function, event)
    print(
        json.dumps(
            result.payload if result.ok else {"errorType": result.error_type, "errorMessage": result.error_message},
            indent=2,
        )
    )
    print(f"\nlogs: {args.log_dir}/", file=sys.stderr)
    return 0 if result.ok else 1


def _run_sam_invoke(args: argparse.Namespace) -> int:
    from picsart_local.sam_local import invoke as sam_local
    from picsart_local.sam_local.base_image import host_architecture
    from picsart_local.sam_local.prepare import readiness

    architecture = args.architecture or host_architecture()
    reason = readiness(architecture)
    if reason is not None:
        raise ValueError(f"sam local invoke cannot run here: {reason}")
    event = json.loads(args.event.read_text())
    options = _sam_invoke_options(args)
    template = options.template_path.resolve()
    build_dir = (args.build_dir or template.parent / ".aws-sam" / f"sam-local-{architecture}").resolve()
    print(f"sam build ({architecture}) into {build_dir}", file=sys.stderr, flush=True)
    built = sam_local.build(template, build_dir, architecture, cached=True)
    with LocalEnvironment(options) as env, tempfile.TemporaryDirectory(prefix="sam-invoke-") as folder:
        assert env.stack is not None
        if args.put:
            _put(env, event, args)
        event_path, env_vars = Path(folder) / "event.json", Path(folder) / "env-vars.json"
        event_path.write_text(json.dumps(event))
        env_vars.write_text(json.dumps(sam_local.env_vars_document(env.stack, [args.function])))
        result = sam_local.invoke(
            built, args.function, event_path, env_vars, env.stack, architecture, stderr=sys.stderr
        )
    print(json.dumps(result.payload, indent=2))
    return 0 if result.ok else 1


def _run_process(args: argparse.Namespace) -> int:
    for path in args.files:
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {path}")
    with LocalEnvironment(_options(args)) as env:
        keys = {env.upload_file(path): path for path in args.files}
        outcomes = env.wait_for(keys, timeout=args.timeout)
        if args.out:
            _download(env, outcomes.values(), args.out)
        if getattr(args, "report", False):
            for key in keys:
                print(support_report(env.input_bucket, key, env.jobs.for_object(env.input_bucket, key)))
    _print_table([outcomes[key] for key in keys])
    return 0 if all(o.status in EXPECTED for o in outcomes.values()) else 1


def _run_report(args: argparse.Namespace) -> int:
    if not args.bucket or not args.table:
        raise ValueError("report needs --bucket and --table (or INPUT_BUCKET and JOBS_TABLE; `stack` prints them)")
    table = boto3.session.Session().resource("dynamodb").Table(args.table)
    records = JobStore(table).for_object(args.bucket, args.key)
    print(support_report(args.bucket, args.key, records), end="")
    return 0 if records else 1


def _run_rules_check(args: argparse.Namespace) -> int:
    loaded = load_rules(args.file)
    print(f"{args.file}: valid, {len(loaded.rules)} rules, {len(loaded.pipelines)} pipelines (first match wins)")
    for rule in loaded.rules:
        print(f"\nrule {rule.name!r}")
        print(f"  match: {_criteria(rule.match) or 'every upload'}")
        print(f"  on failure: {rule.on_failure}")
        if rule.credit_floor is not None:
            print(f"  credit floor: waits while the balance is at or below {rule.credit_floor}")
        calls = sum(len(pipeline.steps) for pipeline in rule.pipelines)
        print(f"  Picsart calls per upload: {calls}")
        for pipeline in rule.pipelines:
            print(f"  pipeline {pipeline.name!r} (hash {pipeline_hash(pipeline)})")
            extension = output_extension(pipeline)
            example = output_key(pipeline, rule, "folder/photo.jpg", "version:VERSION", extension or "EXT")
            print(f"    output: {pipeline.output or 'default'}, e.g. folder/photo.jpg -> {example}")
            for index, step in enumerate(pipeline.steps, start=1):
                parameters = json.dumps(step.parameters.model_dump(mode="json", exclude_none=True), sort_keys=True)
                kind = "data" if step.catalogued.result == "data" else "image"
                print(f"    {index}. {step.tool} {parameters} ({kind})")
    return 0


def _run_plan(args: argparse.Namespace) -> int:
    chosen = args.plan_rules or getattr(args, "rules", None)
    path = Path(chosen) if chosen else default_rules_path(REPOSITORY_ROOT)
    found = build_plan(
        load_rules(path),
        args.key,
        size=args.size,
        content_type=args.content_type,
        metadata=parse_metadata(args.metadata),
        version_ref=args.version,
    )
    if args.json:
        print(json.dumps({"rules": str(path), **found.to_json()}, indent=2))
    else:
        print(render_plan(found, source=str(path)), end="")
    return 0


def _add_operating_commands(commands: Any) -> None:
    """`redrive` and `reprocess` (docs/failure-handling.md): against a deployed stack (`--stack NAME`, its outputs) or
    the local stack (the variables `picsart-local stack` prints)."""
    redrive = commands.add_parser(
        "redrive",
        help="move the dead-letter queue's messages back to the delay queue, each with its reason shown first",
        description="Lists the dead-letter queue, shows each message's reason and what goes back for it, asks, "
        "then moves them: work the adapter gave up as a new run with its attempts reset, work SQS moved as it is "
        "(SQS's own redrive when every message is such), failed upload invocations as new jobs. Messages that are "
        "none of these stay. Exits 1 when the answer is no.",
    )
    redrive.add_argument("--limit", type=int, default=1000, metavar="N", help="at most N messages (default 1000)")
    reprocess = commands.add_parser(
        "reprocess",
        help="send objects already uploaded through their rules again; up-to-date outputs are skipped",
        description="Matches every current object version under the prefix to its rule as the functions would, "
        "skips the pipelines whose outputs are of their current definition (or whose work is under way), prints "
        "the Picsart calls the rest costs, asks above 50 calls, then queues them at a pace the fleet's limiter "
        "takes. Exits 1 when the answer is no.",
    )
    reprocess.add_argument("--prefix", required=True, metavar="P", help="key prefix in the input bucket ('' for all)")
    reprocess.add_argument("--rule", metavar="R", help="only objects whose rule is R")
    reprocess.add_argument(
        "--since", metavar="T", help="only objects modified since T: 2h, 30m, 7d, or ISO 8601 (2026-12-01T10:00Z)"
    )
    reprocess.add_argument("--pace", type=float, metavar="N", help="Picsart calls per second (default: the limiter's)")
    for command in (redrive, reprocess):
        command.add_argument("--stack", metavar="NAME", help="a deployed stack: its outputs name the resources")
        command.add_argument("--dry-run", action="store_true", help="show what would be done; move or send nothing")
        command.add_argument("--yes", action="store_true", help="do not ask")
    redrive.set_defaults(run=_run_redrive)
    reprocess.set_defaults(run=_run_reprocess)


def _confirm(question: str, assume_yes: bool) -> bool:
    if assume_yes:
        return True
    print(f"{question} [y/N] ", end="", flush=True)
    try:
        answer = input()
    except EOFError:
        answer = ""
    return answer.strip().lower() in {"y", "yes"}


def _run_redrive(args: argparse.Namespace) -> int:
    import time

    from botocore.config import Config

    from picsart_local import redrive
    from picsart_local.stack_names import find_names

    session = boto3.session.Session()
    names = find_names(session, args.stack, _options(args).template_path, _options(args).parameters)
    sqs = session.client("sqs")
    jobs = JobStore(session.resource("dynamodb").Table(names.jobs_table))
    plan = redrive.plan_redrive(
        redrive.list_dead_letters(sqs, names.dead_letter_queue_url, args.limit), time.time(), jobs.get
    )
    print(f"(names from {names.source})")
    print(redrive.render_plan(plan, names.dead_letter_queue_url), end="")
    if not plan.movable or args.dry_run:
        redrive.release_all(sqs, names.dead_letter_queue_url, plan)
        print("Nothing to send back." if not plan.movable else "Dry run: nothing was moved.")
        return 0
    if not _confirm(f"Send {len(plan.movable)} of them back to the delay queue?", args.yes):
        redrive.release_all(sqs, names.dead_letter_queue_url, plan)
        print("Nothing was moved.")
        return 1
    # One try for SQS's move task: a service without it answers an error, which retries would only repeat.
    mover = session.client("sqs", config=Config(retries={"total_max_attempts": 1}))
    result = redrive.carry_out(plan, sqs, jobs, names.delay_queue_url, names.dead_letter_queue_url, mover=mover)
    removed = f"; removed {result.removed} s3:TestEvent{'s' if result.removed != 1 else ''}" if result.removed else ""
    print(f"Moved {result.moved}, {result.jobs_sent} jobs to the delay queue: {result.how}{removed}")
    for note in result.notes:
        print(f"  {note}")
    if result.left:
        print(f"{result.left} left in the dead-letter queue (see their reasons above)")
    return 0


def _run_reprocess(args: argparse.Namespace) -> int:
    import time
    from datetime import UTC, datetime

    from picsart_local import reprocess
    from picsart_local.plan import calls_text
    from picsart_local.stack_names import find_names, functions_rules

    session = boto3.session.Session()
    names = find_names(session, args.stack, _options(args).template_path, _options(args).parameters)
    rules, source = functions_rules(names.parameters, args.rules)
    now = time.time()
    since = reprocess.parse_since(args.since, datetime.now(UTC)) if args.since else None
    table = session.resource("dynamodb").Table(names.jobs_table)
    plan = reprocess.plan_reprocess(
        session.client("s3"),
        JobStore(table),
        rules,
        names.input_bucket,
        args.prefix,
        rules_source=source,
        now=now,
        since=since,
        rule=args.rule,
    )
    print(f"(names from {names.source})")
    print(reprocess.render_plan(plan, since), end="")
    if not plan.jobs:
        print("Nothing to queue.")
        return 0
    secrets = session.client("secretsmanager")
    state = reprocess.read_limiter(
        table, lambda: str(secrets.get_secret_value(SecretId=names.api_key_secret)["SecretString"]).strip()
    )
    spike = int(names.parameters.get("SpikeArrestPerSecond") or 300)
    pace = reprocess.choose_pace(state, spike, args.pace)
    print(reprocess.render_pace(plan, pace), end="")
    if args.dry_run:
        print("Dry run: nothing was sent.")
        return 0
    calls = calls_text(plan.calls, plan.polls)
    if reprocess.asks_before_sending(plan.calls) and not _confirm(
        f"Queue {len(plan.jobs)} jobs, {calls} to Picsart?", args.yes
    ):
        print("Nothing was sent.")
        return 1
    result = reprocess.send(
        plan,
        session.client("sqs"),
        JobStore(table),
        names.delay_queue_url,
        names.dead_letter_queue_url,
        pace,
        time.time(),
        progress=reprocess.Progress(len(plan.jobs)),
    )
    print(
        f"Queued {result.sent} jobs ({calls}); the last is due in {result.last_delay_seconds:.0f} s. "
        "`picsart-local report KEY` follows one."
    )
    return 0


def _criteria(match: MatchCriteria) -> str:
    given = match.model_dump(exclude_none=True)
    return ", ".join(f"{name} {json.dumps(value, sort_keys=True)}" for name, value in given.items())


def _run_demo(args: argparse.Namespace) -> int:
    """The samples through the example rules (or `--rules`): each under the prefix that picks a rule, the outputs
    downloaded, and a contact sheet of each source beside its outputs."""
    from picsart_local.contact_sheet import SheetItem, SheetRow, write_contact_sheet  # Pillow drawing only here

    folder = REPOSITORY_ROOT / "samples"
    samples = sorted(p for p in folder.glob("*") if p.suffix.lower() in SUPPORTED_EXTENSIONS)
    if not samples:
        samples = write_samples(args.out / "samples")
    options = _options(args) if args.rules else _options(args, rules_file=default_rules_path(REPOSITORY_ROOT))
    print(f"Processing {len(samples)} sample images with {options.rules_file}", flush=True)
    rows: list[SheetRow] = []
    with LocalEnvironment(options) as env:
        keys = {env.upload_file(path, _demo_key(path, index)): path for index, path in enumerate(samples)}
        outcomes = env.wait_for(keys, timeout=args.timeout)
        _download(env, outcomes.values(), args.out / "results")
        for key, path in keys.items():
            outputs = [
                SheetItem(env.download_output(written), f"{pipeline}\n{written}")
                for pipeline, written in _outputs_of(outcomes[key])
            ]
            rows.append(SheetRow(SheetItem(path, f"{key}\n{outcomes[key].status}"), outputs))
    sheet = write_contact_sheet(rows, args.out / "demo.png", title="Picsart adapter: the example rules")
    print(f"wrote {sheet.path}")
    _print_table([outcomes[key] for key in keys])
    return 0 if all(o.status in EXPECTED for o in outcomes.values()) else 1


#: Where the demo puts the samples, in turn: a prefix each of the example rules picks (products on white, then
#: upscaled; a face enhanced; anything else as a thumbnail plus tags).
DEMO_PREFIXES = ("products/", "avatars/", "misc/")


def _demo_key(path: Path, index: int) -> str:
    return f"{DEMO_PREFIXES[index % len(DEMO_PREFIXES)]}{path.name}"


def _outputs_of(outcome: UploadOutcome) -> list[tuple[str, str]]:
    """(pipeline, key) of every object an upload's pipelines wrote: outputs, sidecars and copied originals."""
    records = outcome.pipelines or ({"": outcome.record} if outcome.record else {})
    found: list[tuple[str, str]] = []
    for pipeline, record in records.items():
        for field in ("output_key", "sidecar_key"):
            key = record.get(field)
            if key and (pipeline, str(key)) not in found:
                found.append((pipeline, str(key)))
    return found


def _run_bench(args: argparse.Namespace) -> int:
    from picsart_local.bench.run import BenchOptions, run_bench  # the bench's imports (matplotlib) only here

    base = _options(args)
    options = BenchOptions(
        uploads=args.uploads,
        concurrency=args.concurrency,
        quota=args.quota,
        window_s=args.window,
        spike=args.spike,
        strategies=tuple(name.strip() for name in args.strategies.split(",") if name.strip()),
        out=args.out,
        log_dir=args.log_dir / "bench",
        template_path=base.template_path,
        parameters=_parameters_with_rules(base),
        timeout_s=args.timeout,
        latency_ms=args.latency_ms,
        cap_concurrency=args.cap_concurrency,
        adapter_reset_form=args.adapter_reset_form,
        import_runs=args.import_runs,
        skip_cold_start=args.skip_cold_start,
        skip_layer_size=args.skip_layer_size,
        progress=not args.no_progress,
        docs=args.docs,
        command=_command_line(args),
    )
    run_bench(options)
    return 0


def _command_line(args: argparse.Namespace, always: tuple[str, ...] = ()) -> str:
    """A command's line as given, for the docs page its figures go to: the options that differ from their
    defaults, and those named in `always` (which shape the figures) whatever their value."""
    defaults = vars(_parser().parse_args([args.command]))
    leading = ("template", "log_dir", "parameter_overrides", "rules")  # the options that come before the command
    options = [name for name in vars(args) if name not in {*leading, "command", "run"}]
    words = ["picsart-local"]
    for name in (*leading, "command", *options):
        value = getattr(args, name)
        if name == "command":
            words.append(value)
        elif (value != defaults.get(name) or name in always) and value is not None and value is not False:
            flag = "--" + name.replace("_", "-")
            for item in value if isinstance(value, list) else [value]:
                shown = f"{item:g}" if isinstance(item, float) else str(item)
                words.append(flag if item is True else f"{flag} {shlex.quote(shown)}")
    return " ".join(words)


def _run_soak(args: argparse.Namespace) -> int:
    from picsart_local.soak import SoakSettings, run_soak

    # Stopped by a signal, the soak still stops its stack and every worker process (a background job started
    # by a script ignores SIGINT unless told otherwise).
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)
    base = _options(args)
    settings = SoakSettings(
        uploads=args.uploads,
        concurrency=args.concurrency,
        upload_threads=args.upload_threads,
        max_backlog=args.max_backlog,
        server_error_rate=args.server_errors,
        drop_connection_rate=args.drops,
        slow_answer_rate=args.slow,
        bare_429_rate=args.bare_429,
        result_fault_rate=args.result_faults,
        client_timeout_s=args.client_timeout,
        slow_answer_s=args.slow_seconds,
        kill_before_call=args.kill_before_call,
        kill_after_call=args.kill_after_call,
        kill_after_output=args.kill_after_output,
        kill_after_event=args.kill_after_event,
        max_attempts=args.max_attempts,
        function_timeout_s=args.function_timeout,
        visibility_timeout_s=args.visibility_timeout,
        quota=args.quota,
        window_s=args.window_seconds,
        floor_s=args.floor_seconds,
        retry_base_s=args.retry_base_seconds,
        seed=args.seed,
        timeout_s=args.timeout,
        progress_every_s=args.progress_every,
        prewarm=not args.no_prewarm,
        template_path=base.template_path,
        parameters=_parameters_with_rules(base),
        log_dir=args.log_dir / "soak",
        out=args.out,
        item_throttle=item_throttle(args),
    )
    report = run_soak(settings, echo=lambda line: print(line, flush=True))
    return 0 if report.ok else 1


def add_burst_parser(commands: Any) -> None:
    burst = commands.add_parser(
        "burst",
        help="a catalogue-sized burst at Picsart's real numbers; makespan, requests, units and cost per upload",
        description="Uploads a burst through the adapter on the local stack with Picsart's published limits (500 "
        "calls a minute, spike arrest 300/s), answers taking 1-3 s, and DynamoDB's per-item cap (1,000 write, "
        "3,000 read units a second) on the table; reports the makespan against the floor, Lambda invocations, "
        "SQS requests and DynamoDB units per upload, the limiter item's peak writes a second, delay-queue hops "
        "per upload and the cost per 1,000 uploads at AWS list prices, measured and extrapolated to ten times "
        "the uploads (docs/burst.md).",
    )
    burst.add_argument("--uploads", type=int, default=10_000, help="uploads in the burst (default 10000)")
    burst.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        metavar="N",
        help="run N times slower (every duration times N, every rate divided by N); below 1, faster (default 1)",
    )
    burst.add_argument("--concurrency", type=int, default=32, help="execution environments at once (default 32)")
    burst.add_argument("--timeout", type=float, default=7200.0, help="seconds the run may take (default 7200)")
    burst.add_argument("--out", type=Path, default=Path("out"), help="where burst.json goes")
    burst.add_argument("--no-item-cap", action="store_true", help="no DynamoDB per-item cap on the local table")
    burst.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    burst.add_argument(
        "--docs",
        type=Path,
        help="a docs page whose part between <!-- burst:begin --> and <!-- burst:end --> gets "
        "the run's table (docs/burst.md)",
    )
    add_item_throttle_arguments(burst, scaled=True)
    burst.set_defaults(run=_run_burst)


def _run_burst(args: argparse.Namespace) -> int:
    from picsart_local.bench.burst import BurstOptions, run_burst

    base = _options(args)
    options = BurstOptions(
        uploads=args.uploads,
        time_scale=args.time_scale,
        concurrency=args.concurrency,
        item_throttle=None if args.no_item_cap else (item_throttle(args) or ThrottleLimits()),
        timeout_s=args.timeout,
        out=args.out,
        log_dir=args.log_dir / "burst",
        template_path=base.template_path,
        progress=not args.no_progress,
        docs=args.docs,
        command=_command_line(args, always=("uploads", "time_scale")),
    )
    run_burst(options)
    return 0


def add_item_throttle_arguments(parser: argparse.ArgumentParser, scaled: bool = False) -> None:
    """DynamoDB's per-item throughput cap on the local stack (moto_throttle.py): off unless one is given."""
    also = ", divided by --time-scale" if scaled else ""
    parser.add_argument(
        "--item-wcu",
        type=float,
        metavar="UNITS",
        help=f"cap each DynamoDB item at UNITS write units a second (DynamoDB's per-partition cap: 1000{also})",
    )
    parser.add_argument(
        "--item-rcu",
        type=float,
        metavar="UNITS",
        help=f"cap each DynamoDB item at UNITS read units a second (default with --item-wcu: 3000{also})",
    )
    parser.add_argument(
        "--capped-items",
        metavar="PREFIXES",
        help="cap only the items whose partition key starts with one of these comma-separated prefixes (e.g. "
        "ratelimit,circuit); default: every item, as DynamoDB does",
    )


def item_throttle(args: argparse.Namespace, time_scale: float = 1.0) -> ThrottleLimits | None:
    """The cap `add_item_throttle_arguments` asked for (None: no cap), for a run `time_scale` times slower."""
    if args.item_wcu is None and args.item_rcu is None and args.capped_items is None:
        return None
    prefixes = tuple(p.strip() for p in args.capped_items.split(",") if p.strip()) if args.capped_items else None
    limits = ThrottleLimits(
        write_units_per_second=args.item_wcu if args.item_wcu is not None else PARTITION_WRITE_UNITS,
        read_units_per_second=args.item_rcu if args.item_rcu is not None else PARTITION_READ_UNITS,
        prefixes=prefixes,
    )
    return limits.scaled(time_scale)


def _download(env: LocalEnvironment, outcomes: Any, folder: Path) -> None:
    for outcome in outcomes:
        for _, written in _outputs_of(outcome):
            target = folder / written
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(env.download_output(written))
            print(f"wrote {target}")


def _print_table(outcomes: Sequence[UploadOutcome]) -> None:
    """One row per upload and pipeline: its status, output key (or reason) and last Picsart correlation id."""
    rows = [("file", "pipeline", "status", "output key", "Picsart correlation id")]
    for o in outcomes:
        for pipeline, record in (o.pipelines or {"-": o.record or {}}).items():
            # An upload that did not end in time, or whose work was dead-lettered, says so whatever its records say.
            status = o.status if o.status in {"lost", "dead-lettered"} else str(record.get("status") or o.status)
            detail = str(record.get("output_key") or record.get("reason") or o.reason or "")
            rows.append((o.key, pipeline, status, detail, str(record.get("picsart_correlation_id") or "-")))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    print()
    for index, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if index == 0:
            print("  ".join("-" * width for width in widths))


if __name__ == "__main__":
    sys.exit(main())
