"""LocalStack: every resource of the template created in moto with the template's settings; S3 events."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from picsart_adapter.jobs import JobStore
from picsart_adapter.s3_events import parse_s3_event
from picsart_local import cli, soak
from picsart_local import environment as local_environment
from picsart_local.bench import run as bench_run
from picsart_local.cfn_template import ParameterValidationError, load_template
from picsart_local.runner import LocalRunner
from picsart_local.stack import LocalStack

from .conftest import REAL_TEMPLATE, receive_all, unique_stack_name

LAYER_ROOT = REAL_TEMPLATE.parent / "layers" / "picsart_adapter"
EXAMPLE_RULES = LAYER_ROOT / "rules" / "example.json"
FUNCTIONS = ("UploadFunction", "RetryFunction")
EVENT_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest.fixture
def real_stack(make_stack: Callable[..., LocalStack]) -> LocalStack:
    return make_stack(
        REAL_TEMPLATE,
        parameter_overrides={"PicsartBaseUrl": "http://127.0.0.1:9/tools/1.0"},
        secrets={"picsart/api-key": "the-key"},
        function_environment={"PICSART_TOOL_PARAMETERS": '{"upscale_factor": 2}', "AWS_REGION": "eu-west-1"},
    )


def test_every_resource_of_the_real_template_exists_with_its_settings(real_stack: LocalStack) -> None:
    raw = load_template(REAL_TEMPLATE)["Resources"]
    template = real_stack.template
    s3, sqs, dynamodb = real_stack.client("s3"), real_stack.client("sqs"), real_stack.client("dynamodb")

    assert {b["Name"] for b in s3.list_buckets()["Buckets"]} >= {r.ref for r in template.buckets}
    for bucket in template.buckets:
        declared = raw[bucket.logical_id]["Properties"]
        encryption = s3.get_bucket_encryption(Bucket=bucket.ref)["ServerSideEncryptionConfiguration"]["Rules"][0]
        assert encryption["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
        block = s3.get_public_access_block(Bucket=bucket.ref)["PublicAccessBlockConfiguration"]
        assert block == declared["PublicAccessBlockConfiguration"]
        versioning = s3.get_bucket_versioning(Bucket=bucket.ref).get("Status")
        assert versioning == declared.get("VersioningConfiguration", {}).get("Status")
    input_bucket = template.resources["InputBucket"]
    (rule,) = s3.get_bucket_lifecycle_configuration(Bucket=input_bucket.ref)["Rules"]
    declared_rule = raw["InputBucket"]["Properties"]["LifecycleConfiguration"]["Rules"][0]
    assert rule["ID"] == declared_rule["Id"]
    assert rule["NoncurrentVersionExpiration"] == declared_rule["NoncurrentVersionExpiration"]
    assert rule["AbortIncompleteMultipartUpload"] == declared_rule["AbortIncompleteMultipartUpload"]

    (table,) = template.tables
    description = dynamodb.describe_table(TableName=table.ref)["Table"]
    declared_table = raw["JobsTable"]["Properties"]
    assert description["KeySchema"] == declared_table["KeySchema"]
    assert description["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = dynamodb.describe_time_to_live(TableName=table.ref)["TimeToLiveDescription"]
    assert ttl == {
        "TimeToLiveStatus": "ENABLED",
        "AttributeName": declared_table["TimeToLiveSpecification"]["AttributeName"],
    }
    backups = dynamodb.describe_continuous_backups(TableName=table.ref)["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"

    for queue in template.queues:
        declared = raw[queue.logical_id]["Properties"]
        attributes = sqs.get_queue_attributes(QueueUrl=queue.ref, AttributeNames=["All"])["Attributes"]
        assert attributes["QueueArn"] == queue.attribute("Arn")
        assert attributes["MessageRetentionPeriod"] == str(declared["MessageRetentionPeriod"])
        assert attributes["VisibilityTimeout"] == str(declared.get("VisibilityTimeout", 30))
    delay = sqs.get_queue_attributes(QueueUrl=real_stack.outputs["DelayQueueUrl"], AttributeNames=["All"])
    redrive = json.loads(delay["Attributes"]["RedrivePolicy"])
    assert redrive["maxReceiveCount"] == raw["DelayQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"]
    assert redrive["deadLetterTargetArn"] == template.resources["DeadLetterQueue"].attribute("Arn")
    assert delay["Attributes"]["VisibilityTimeout"] == "360"

    secret = real_stack.client("secretsmanager").get_secret_value(SecretId="picsart/api-key")
    assert secret["SecretString"] == "the-key"


def test_outputs_and_function_environment_point_at_the_local_stack(real_stack: LocalStack) -> None:
    outputs = real_stack.outputs
    assert set(outputs) == set(load_template(REAL_TEMPLATE)["Outputs"])
    assert outputs["DelayQueueUrl"].startswith(real_stack.endpoint_url + "/123456789012/")
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", real_stack.endpoint_url)

    environment = real_stack.function_environment("UploadFunction")
    assert environment["OUTPUT_BUCKET"] == outputs["OutputBucketName"]
    assert environment["DELAY_QUEUE_URL"] == outputs["DelayQueueUrl"]
    assert environment["PICSART_BASE_URL"] == "http://127.0.0.1:9/tools/1.0"
    assert environment["PICSART_TOOL_PARAMETERS"] == '{"upscale_factor": 2}'  # the caller's extra wins
    assert environment["PICSART_RULES_FILE"] == ""  # the RulesFile parameter's default: no rules file
    assert environment["AWS_REGION"] == "us-east-1"  # ... but not over Lambda's reserved variables
    assert environment["AWS_ENDPOINT_URL"] == real_stack.endpoint_url
    assert environment["AWS_LAMBDA_FUNCTION_NAME"] == outputs["UploadFunctionName"]
    assert environment["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "512"
    assert environment["LAMBDA_TASK_ROOT"] == str(REAL_TEMPLATE.parent / "functions" / "upload")
    assert environment["_HANDLER"] == "upload_handler.lambda_handler"
    assert environment["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.13"
    assert real_stack.aws_environment().items() <= environment.items()


def test_s3_notifications_mirror_the_template_event_without_a_key_filter(real_stack: LocalStack) -> None:
    raw_events = load_template(REAL_TEMPLATE)["Resources"]["UploadFunction"]["Properties"]["Events"]
    bucket = real_stack.outputs["InputBucketName"]
    configurations = real_stack.client("s3").get_bucket_notification_configuration(Bucket=bucket)["QueueConfigurations"]

    (configuration,) = configurations
    (event_name,) = raw_events
    assert configuration["Id"] == event_name
    assert configuration["Events"] == ["s3:ObjectCreated:*"]
    assert "Filter" not in configuration  # a filter here would drop keys the template delivers
    queue_arn = real_stack.client("sqs").get_queue_attributes(
        QueueUrl=real_stack.notification_queues["UploadFunction"], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    assert configuration["QueueArn"] == queue_arn
    output_bucket = real_stack.outputs["OutputBucketName"]
    assert "QueueConfigurations" not in real_stack.client("s3").get_bucket_notification_configuration(
        Bucket=output_bucket
    )


def test_every_created_object_is_delivered_with_the_fields_real_s3_sends(real_stack: LocalStack) -> None:
    s3 = real_stack.client("s3")
    bucket = real_stack.outputs["InputBucketName"]
    queue_url = real_stack.notification_queues["UploadFunction"]
    # Setting the notification configuration made moto send one s3:TestEvent; take it out of the way.
    (test_event,) = [json.loads(m["Body"]) for m in receive_all(real_stack, queue_url)]
    assert test_event["Event"] == "s3:TestEvent"
    assert test_event["Bucket"] == bucket

    put = s3.put_object(Bucket=bucket, Key="uploads/my photo (1).png", Body=b"png")
    second = s3.put_object(Bucket=bucket, Key="uploads/my photo (1).png", Body=b"png again")
    # Extensions in any case, and none an image has: the function decides, and records what it skips.
    others = ["uploads/photo.WEBP", "uploads/scan.TIF", "uploads/shot.MPO", "uploads/IMG.Jpg", "uploads/notes.txt"]
    for key in others:
        s3.put_object(Bucket=bucket, Key=key, Body=b"any bytes")

    messages = receive_all(real_stack, queue_url)
    records: list[dict[str, Any]] = [json.loads(m["Body"])["Records"][0] for m in messages]
    assert len(records) == 2 + len(others)
    first, other = records[:2]
    assert [record["s3"]["object"]["key"] for record in records[2:]] == others
    assert {record["s3"]["configurationId"] for record in records} == {"Upload"}
    assert first["eventName"] == "ObjectCreated:Put"
    assert first["s3"]["object"]["key"] == "uploads/my+photo+%281%29.png"
    assert first["s3"]["object"]["versionId"] == put["VersionId"]
    assert other["s3"]["object"]["versionId"] == second["VersionId"]
    assert re.fullmatch(r"[0-9A-F]{18}", first["s3"]["object"]["sequencer"])
    assert other["s3"]["object"]["sequencer"] > first["s3"]["object"]["sequencer"]
    assert re.fullmatch(r"[0-9A-F]{16}", first["responseElements"]["x-amz-request-id"])
    assert first["responseElements"]["x-amz-request-id"] != other["responseElements"]["x-amz-request-id"]
    assert first["responseElements"]["x-amz-id-2"]
    assert first["requestParameters"]["sourceIPAddress"] == "127.0.0.1"
    assert first["userIdentity"]["principalId"]
    assert EVENT_TIME.fullmatch(first["eventTime"])
    assert first["s3"]["bucket"]["name"] == bucket


def test_uploads_with_any_extension_reach_the_upload_function_and_leave_a_record(
    make_stack: Callable[..., LocalStack], make_runner: Callable[..., LocalRunner]
) -> None:
    stack = make_stack(
        REAL_TEMPLATE,
        parameter_overrides={"PicsartBaseUrl": "http://127.0.0.1:9/tools/1.0"},
        secrets={"picsart/api-key": "the-key"},
    )
    runner = make_runner(stack, upload_concurrency=2)
    bucket = stack.outputs["InputBucketName"]
    keys = ["photo.WEBP", "scans/scan.TIF", "shot.MPO", "IMG.Jpg", "notes.txt"]
    for key in keys:
        # Not an image by its first bytes: skipped before any call to Picsart, whatever the extension says.
        stack.client("s3").put_object(Bucket=bucket, Key=key, Body=b"not an image")
    runner.wait_idle(timeout=60)

    delivered = [
        upload.key
        for record in runner.history("UploadFunction")
        if record.source == "s3" and "Records" in record.event
        for upload in parse_s3_event(record.event).uploads
    ]
    assert sorted(set(delivered)) == sorted(keys)
    jobs = JobStore(stack.resource("dynamodb").Table(stack.outputs["JobsTableName"]))
    for key in keys:
        (job,) = jobs.for_object(bucket, key)
        assert job["status"] == "skipped", (key, job)
        assert job.get("reason"), key


def test_an_invalid_parameter_fails_before_anything_starts() -> None:
    with pytest.raises(ParameterValidationError, match="'PicsartTool'"):
        LocalStack(REAL_TEMPLATE, parameter_overrides={"PicsartTool": "bogus"})


def test_stop_deletes_what_start_created(make_stack: Callable[..., LocalStack]) -> None:
    name = unique_stack_name()
    options: dict[str, Any] = {"stack_name": name, "secrets": {"picsart/api-key": "k"}}
    first = make_stack(REAL_TEMPLATE, **options)
    s3, output = first.client("s3"), first.outputs["OutputBucketName"]
    s3.put_object(Bucket=first.outputs["InputBucketName"], Key="a.png", Body=b"x")
    # More than one page of versions (1,000): deleted page by page as listed, a page was left each time.
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: s3.put_object(Bucket=output, Key=f"r{n:04d}.png", Body=b"x"), range(1001)))
    first.stop()

    # Same stack name, same input bucket name and secret: this fails if the first left them behind.
    second = make_stack(REAL_TEMPLATE, **options)
    assert second.outputs["InputBucketName"] == f"{name}-input-123456789012-us-east-1"
    assert second.client("s3").list_objects_v2(Bucket=second.outputs["InputBucketName"]).get("KeyCount") == 0
    with pytest.raises(ClientError, match="404"):
        second.client("s3").head_bucket(Bucket=output)


def test_two_stacks_in_one_process_share_a_secret_but_not_a_stack_name(make_stack: Callable[..., LocalStack]) -> None:
    name = unique_stack_name()
    first = make_stack(REAL_TEMPLATE, stack_name=name, secrets={"picsart/api-key": "first"})
    with pytest.raises(RuntimeError, match="distinct stack names"):
        make_stack(REAL_TEMPLATE, stack_name=name)
    second = make_stack(REAL_TEMPLATE, secrets={"picsart/api-key": "second"})

    secrets = first.client("secretsmanager")
    assert secrets.get_secret_value(SecretId="picsart/api-key")["SecretString"] == "second"
    second.stop()
    assert secrets.get_secret_value(SecretId="picsart/api-key")["SecretString"] == "second"  # first still uses it
    first.stop()
    with pytest.raises(ClientError, match="ResourceNotFoundException"):  # deleted with its last user
        make_stack(REAL_TEMPLATE).client("secretsmanager").get_secret_value(SecretId="picsart/api-key")


# ------------------------------------------------------------------------------------------- the rules file


def test_a_rules_file_given_to_the_stack_reaches_every_function_as_an_absolute_path(
    make_stack: Callable[..., LocalStack], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = tmp_path / "mine.json"
    rules.write_text('{"rules": []}', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    # Given relative to the current folder, and over a RulesFile parameter: the file given wins, absolute.
    stack = make_stack(
        REAL_TEMPLATE, rules_file=Path("mine.json"), parameter_overrides={"RulesFile": "rules/example.json"}
    )
    for function in FUNCTIONS:
        assert stack.function_environment(function)["PICSART_RULES_FILE"] == str(rules.resolve()), function


def test_without_a_rules_file_every_function_gets_the_templates_value_as_is(
    make_stack: Callable[..., LocalStack],
) -> None:
    stack = make_stack(REAL_TEMPLATE, parameter_overrides={"RulesFile": "rules/example.json"})
    for function in FUNCTIONS:
        # Relative, as deployed: the adapter resolves it against the layer's root (here LAYER_ROOT).
        assert stack.function_environment(function)["PICSART_RULES_FILE"] == "rules/example.json", function
    assert (LAYER_ROOT / "rules" / "example.json").is_file()


def test_a_missing_rules_file_fails_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such rules file"):
        LocalStack(REAL_TEMPLATE, rules_file=tmp_path / "missing.json")


class _StackStopped(Exception):
    """Raised by the stand-in LocalStack: the command got as far as starting the stack."""


@pytest.fixture
def stacks_started(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The arguments every command gives LocalStack; the stand-in stops the command there, before moto starts."""
    started: list[dict[str, Any]] = []

    def stand_in(**arguments: Any) -> LocalStack:
        started.append(arguments)
        raise _StackStopped

    monkeypatch.setattr(local_environment, "LocalStack", stand_in)
    # A Picsart server named, so no emulator starts for a stack that never comes up.
    monkeypatch.setenv("PICSART_BASE_URL", "http://127.0.0.1:9/tools/1.0")
    monkeypatch.setenv("PICSART_API_KEY", "the-key")
    monkeypatch.setattr(cli.signal, "signal", lambda *_: None)  # `stack` would keep its handlers in pytest
    return started


COMMANDS_STARTING_THE_STACK = {
    "stack": ["stack"],
    "invoke": ["invoke", "UploadFunction", "-e", str(REAL_TEMPLATE.parent / "events" / "s3-put.json")],
    "process": ["process", str(REAL_TEMPLATE.parent / "samples" / "red-mug.png")],
    "demo": ["demo", "--out", "{tmp}"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS_STARTING_THE_STACK))
def test_the_rules_option_reaches_the_stack_of_every_command(
    command: str, stacks_started: list[dict[str, Any]], tmp_path: Path
) -> None:
    words = [word.replace("{tmp}", str(tmp_path)) for word in COMMANDS_STARTING_THE_STACK[command]]
    with pytest.raises(_StackStopped):
        cli.main(["--template", str(REAL_TEMPLATE), "--rules", str(EXAMPLE_RULES), *words])
    with pytest.raises(_StackStopped):
        cli.main(["--template", str(REAL_TEMPLATE), *words])
    with_rules, without = stacks_started
    assert with_rules["rules_file"] == EXAMPLE_RULES
    # The demo shows the example rules unless told otherwise; the other commands keep the template's RulesFile.
    assert without["rules_file"] == (EXAMPLE_RULES if command == "demo" else None)
    assert with_rules["template_path"] == without["template_path"] == REAL_TEMPLATE


def test_the_rules_option_reaches_the_bench_and_the_soak_as_the_rules_file_parameter(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    given: list[Any] = []

    def run_bench(options: bench_run.BenchOptions) -> None:
        given.append(options)

    def run_soak(settings: soak.SoakSettings, echo: Callable[[str], None]) -> Any:
        given.append(settings)
        return SimpleNamespace(ok=True)

    monkeypatch.setattr(bench_run, "run_bench", run_bench)
    monkeypatch.setattr(soak, "run_soak", run_soak)
    monkeypatch.setattr(cli.signal, "signal", lambda *_: None)
    monkeypatch.chdir(EXAMPLE_RULES.parent)
    leading = ["--rules", EXAMPLE_RULES.name, "--parameter-overrides", "MaxAttempts=3"]
    assert cli.main([*leading, "bench", "--out", str(tmp_path)]) == 0
    assert cli.main([*leading, "soak", "--out", str(tmp_path / "soak.json")]) == 0
    bench, soak_settings = given
    for parameters in (bench.parameters, soak_settings.parameters):
        # Absolute: the stack's functions do not run in this folder.
        assert parameters == {"MaxAttempts": "3", "RulesFile": str(EXAMPLE_RULES)}
    # The bench writes its command on the docs page: --rules stays before the command, where it was given.
    leading_command = f"picsart-local --parameter-overrides MaxAttempts=3 --rules {EXAMPLE_RULES.name} bench"
    assert bench.command.startswith(leading_command)


def test_sam_invoke_names_the_rules_file_as_the_layer_ships_it(tmp_path: Path) -> None:
    event = str(REAL_TEMPLATE.parent / "events" / "s3-put.json")

    def options(rules: Path) -> local_environment.LocalOptions:
        arguments = ["--template", str(REAL_TEMPLATE), "--rules", str(rules), "sam-invoke", "UploadFunction"]
        return cli._sam_invoke_options(cli._parser().parse_args([*arguments, "-e", event]))

    # In Docker the host's path does not exist: the file is named relative to the layer's root, as deployed
    # (/opt/python/rules/example.json), and the template parameter carries it.
    shipped = options(EXAMPLE_RULES)
    assert shipped.rules_file is None
    assert shipped.parameters["RulesFile"] == "rules/example.json"

    elsewhere = tmp_path / "mine.json"
    elsewhere.write_text("{}", encoding="utf-8")
    with pytest.raises(ValueError, match="only the layer's files exist"):
        options(elsewhere)
    with pytest.raises(FileNotFoundError, match="no such rules file"):
        options(tmp_path / "missing.json")
