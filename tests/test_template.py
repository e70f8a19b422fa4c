"""The template: valid SAM, clean under cfn-lint and checkov, least privilege, and alarms on what the code emits.

The three scanners run here (not in the Makefile), so `make test` runs each of them once:
- `sam validate --lint`: the SAM transform and cfn-lint's errors and warnings, as before a deploy;
- `cfn-lint --include-checks I`: the informational checks too (for example explicit deletion policies);
- `checkov`: the security checks. It lives in its own environment (its exact boto3 and packaging pins cannot
  share one with aws-sam-cli and pytest); `make test` and `make validate` install it and link it next to
  this interpreter. Every check it skips is named, with its reason, in the resource's Metadata.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from picsart_local.cfn_template import load_template

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = REPOSITORY_ROOT / "template.yaml"
ADAPTER_PACKAGE = REPOSITORY_ROOT / "layers" / "picsart_adapter" / "picsart_adapter"
FUNCTIONS = ("UploadFunction", "RetryFunction", "BalanceFunction")
TOOL_ENVIRONMENT = {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1"}

# What the adapter's code calls (storage.py, jobs.py, rate_limit.py, circuit.py, idempotency.py,
# delay_queue.py, dependencies.py), plus writing its logs and traces.
COMMON_ACTIONS = {
    "s3:GetObject",  # head_object, ranged get_object, the presigned GET Picsart fetches
    "s3:GetObjectVersion",  # the same with a VersionId
    "s3:ListBucket",  # head_object of a deleted upload answers 404 (skipped), not 403
    "s3:PutObject",  # outputs, sidecars, copied originals (copy_object reads the source with GetObjectVersion)
    "s3:PutObjectTagging",  # a data step's labels as the output's tags
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",  # Powertools Idempotency
    "dynamodb:Query",
    "sqs:SendMessage",  # delay queue and dead-letter queue
    "secretsmanager:GetSecretValue",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "events:PutEvents",  # completion_events.py: one event per job that ends
}
EXPECTED_ACTIONS = {
    "UploadFunction": COMMON_ACTIONS,
    # The delay queue's event source mapping polls with the function's role.
    "RetryFunction": COMMON_ACTIONS | {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"},
    # balance_check.py: the fleet limiter's item (acquire's first read, the grant, the answer, the balance) and
    # the API key; no S3, no queues, no job records.
    "BalanceFunction": {
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "secretsmanager:GetSecretValue",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    },
}
RESTRICTABLE_SERVICES = ("s3", "dynamodb", "sqs", "secretsmanager", "logs", "events")

# Alarm -> the metrics it watches. The custom ones must be emitted by the adapter's code.
ALARMED_METRICS = {
    "CircuitOpenAlarm": {"CircuitOpened", "CircuitBlocked"},
    "PicsartClientErrorsAlarm": {"PicsartClientErrors"},
    "PicsartThrottledAlarm": {"PicsartThrottled"},
    "PicsartServerErrorsAlarm": {"PicsartServerErrors"},
    "CreditsLowAlarm": {"CreditsAvailable"},
    "CompletionEventsUndeliveredAlarm": {"CompletionEventsUndelivered"},
}
DASHBOARD_METRICS = {
    "PicsartCalls",
    "PicsartThrottled",
    "PicsartClientErrors",
    "PicsartServerErrors",
    "PicsartLatency",
    "JobsSucceeded",
    "JobsFailed",
    "JobsDeadLettered",
    "JobsDelayed",
    "CompletionEventsUndelivered",
}


@cache
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


def resources_of_type(resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template()["Resources"].items() if r["Type"] == resource_type}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def tool(name: str) -> Path:
    path = Path(sys.executable).with_name(name)
    if not path.exists():
        pytest.fail(f"{name} is not installed next to {sys.executable}: run `make validate` (or `make test`)")
    return path


def run_tool(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(command), capture_output=True, text=True, timeout=300, env=TOOL_ENVIRONMENT, check=False)


@cache
def emitted_metric_names() -> frozenset[str]:
    """Every metric name the adapter's code emits: `add_metric(name="...")` (or `single_metric(name="...")`)."""
    names: set[str] = set()
    for source in ADAPTER_PACKAGE.glob("*.py"):
        names.update(re.findall(r'metric\(\s*name="(\w+)"', source.read_text(encoding="utf-8")))
    return frozenset(names)


# ------------------------------------------------------------------------------------------- scanners


def test_sam_validate_lint_passes() -> None:
    result = run_tool(str(tool("sam")), "validate", "--lint", "--template", str(TEMPLATE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout


def test_cfn_lint_passes_with_informational_checks() -> None:
    result = run_tool(str(tool("cfn-lint")), "--include-checks", "I", "--", str(TEMPLATE))
    assert result.returncode == 0, result.stdout + result.stderr


def declared_checkov_skips() -> dict[tuple[str, str], str]:
    """(check id, resource) -> the reason given in the resource's Metadata."""
    skips: dict[tuple[str, str], str] = {}
    for name, resource in template()["Resources"].items():
        for skip in ((resource.get("Metadata") or {}).get("checkov") or {}).get("skip") or []:
            skips[(skip["id"], f"{resource['Type']}.{name}")] = str(skip.get("comment", ""))
    return skips


def test_every_checkov_suppression_gives_its_reason() -> None:
    skips = declared_checkov_skips()
    assert skips, "expected the template's suppressions in Metadata"
    for (check_id, resource), reason in skips.items():
        assert len(reason.split()) >= 8, f"{check_id} on {resource}: say why it does not apply"


def test_checkov_passes_and_each_suppression_is_still_needed() -> None:
    result = run_tool(
        str(tool("checkov")),
        "--file",
        str(TEMPLATE),
        "--framework",
        "cloudformation",
        "--skip-download",  # no Prisma Cloud calls: the scan is offline and repeatable
        "--output",
        "json",
    )
    report = json.loads(result.stdout)
    summary, results = report["summary"], report["results"]
    failed = [f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in results["failed_checks"]]
    assert failed == [], "\n".join(failed)
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 0
    assert result.returncode == 0, result.stderr
    skipped = {(c["check_id"], c["resource"]) for c in results["skipped_checks"]}
    # A suppression for a check that would pass anyway hides nothing and only misleads: remove it.
    assert skipped == set(declared_checkov_skips())


# ---------------------------------------------------------------------------------------- functions


def test_functions_run_python313_on_arm64_with_tracing() -> None:
    function_globals = template()["Globals"]["Function"]
    assert function_globals["Runtime"] == "python3.13"
    # arm64 in AWS; the parameter lets `sam local invoke` run x86_64 on an x86_64 machine (tests/sam/).
    architecture = template()["Parameters"]["Architecture"]
    assert (architecture["Default"], architecture["AllowedValues"]) == ("arm64", ["arm64", "x86_64"])
    assert function_globals["Architectures"] == [{"Ref": "Architecture"}]
    layer = template()["Resources"]["AdapterLayer"]
    assert layer["Properties"]["CompatibleArchitectures"] == [{"Ref": "Architecture"}]
    assert layer["Metadata"]["BuildArchitecture"] == {"Ref": "Architecture"}
    assert function_globals["Tracing"] == "Active"
    variables = function_globals["Environment"]["Variables"]
    assert {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL"} <= set(variables)


def test_every_object_created_in_the_input_bucket_reaches_the_upload_function() -> None:
    """One S3 event and no key filter: S3's filters are case-sensitive, so a suffix filter loses `photo.WEBP` or
    `IMG.Jpg` without a record. The function matches keys in any case and records every upload it skips."""
    s3_events = {
        (function, name): event["Properties"]
        for function, resource in resources_of_type("AWS::Serverless::Function").items()
        for name, event in (resource["Properties"].get("Events") or {}).items()
        if event["Type"] == "S3"
    }
    assert list(s3_events) == [("UploadFunction", "Upload")]
    # The whole of its properties: a Filter (or a narrower event type) added back fails here.
    assert s3_events["UploadFunction", "Upload"] == {"Bucket": {"Ref": "InputBucket"}, "Events": "s3:ObjectCreated:*"}
    # Results go to the other bucket, which triggers nothing: the function's writes never invoke it.
    for bucket in resources_of_type("AWS::S3::Bucket").values():
        assert "NotificationConfiguration" not in bucket["Properties"]


def test_the_balance_is_checked_once_an_hour_by_its_own_function() -> None:
    """docs/credits.md: one GET /balance an hour keeps the fleet's figure fresh when no uploads arrive."""
    events = template()["Resources"]["BalanceFunction"]["Properties"]["Events"]
    assert [(event["Type"], event["Properties"]["Schedule"]) for event in events.values()] == [
        ("Schedule", "rate(1 hour)")
    ]
    properties = template()["Resources"]["BalanceFunction"]["Properties"]
    assert properties["Handler"] == "balance_handler.lambda_handler"
    assert properties["LoggingConfig"] == {"LogGroup": {"Ref": "BalanceFunctionLogGroup"}}
    assert "CreditsAvailable" in emitted_metric_names()


def test_the_rules_file_is_a_parameter_every_function_read() -> None:
    parameter = template()["Parameters"]["RulesFile"]
    # Empty by default: no rules file, so PicsartTool and PicsartToolParameters still make the one rule.
    assert (parameter["Type"], parameter["Default"]) == ("String", "")
    assert "/opt/python/" in parameter["Description"]
    assert "relative" in parameter["Description"]
    assert re.fullmatch(parameter["AllowedPattern"], "rules/example.json")
    assert not re.fullmatch(parameter["AllowedPattern"], "rules/example.json ")
    assert template()["Globals"]["Function"]["Environment"]["Variables"]["PICSART_RULES_FILE"] == {"Ref": "RulesFile"}
    for function in FUNCTIONS:
        own = (template()["Resources"][function]["Properties"].get("Environment") or {}).get("Variables") or {}
        assert "PICSART_RULES_FILE" not in own, f"{function} must read the parameter, not its own value"


def function_role(function: str) -> str:
    properties = template()["Resources"][function]["Properties"]
    # SAM adds its managed policies (logs and SQS actions on every resource) to roles it makes: each
    # function has its own role instead, and no SAM Policies.
    assert "Policies" not in properties
    assert "Policies" not in template()["Globals"]["Function"]
    role = properties["Role"]["Fn::GetAtt"]
    assert role[1] == "Arn"
    return str(role[0])


def policy_documents(role: str) -> Iterator[dict[str, Any]]:
    """The role's inline policies and the template's managed policies attached to it."""
    resources = template()["Resources"]
    properties = resources[role]["Properties"]
    for inline in properties.get("Policies") or []:
        yield inline["PolicyDocument"]
    for arn in properties.get("ManagedPolicyArns") or []:
        assert isinstance(arn, dict), f"{role}: only the template's own managed policies, got {arn!r}"
        assert set(arn) == {"Ref"}, f"{role}: only the template's own managed policies, got {arn!r}"
        yield resources[arn["Ref"]]["Properties"]["PolicyDocument"]


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    return as_list(document["Statement"])


def all_iam_statements() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, role in resources_of_type("AWS::IAM::Role").items():
        for inline in role["Properties"].get("Policies") or []:
            for statement in statements(inline["PolicyDocument"]):
                yield name, statement
    for kind in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
        for name, policy in resources_of_type(kind).items():
            for statement in statements(policy["Properties"]["PolicyDocument"]):
                yield name, statement


def resource_texts(resource: Any) -> list[str]:
    """The ARN text(s) a Resource entry can become: both branches of an Fn::If, the template of an Fn::Sub."""
    if isinstance(resource, str):
        return [resource]
    if isinstance(resource, dict) and len(resource) == 1:
        ((key, value),) = resource.items()
        if key == "Fn::If":
            return resource_texts(value[1]) + resource_texts(value[2])
        if key == "Fn::Sub":
            return [value if isinstance(value, str) else value[0]]
        if key == "Fn::GetAtt":
            return [f"${{{value[0]}.{value[1]}}}"]
        if key == "Ref":
            return [f"${{{value}}}"]
    raise AssertionError(f"unexpected Resource {resource!r}")


def test_each_function_has_exactly_the_permissions_its_code_uses() -> None:
    for function in FUNCTIONS:
        actions = {
            action
            for document in policy_documents(function_role(function))
            for statement in statements(document)
            if statement["Effect"] == "Allow"
            for action in as_list(statement["Action"])
        }
        assert actions == EXPECTED_ACTIONS[function], function


def test_no_iam_statement_grants_a_wildcard_action_or_resource() -> None:
    for policy, statement in all_iam_statements():
        if statement["Effect"] != "Allow":
            continue
        actions = as_list(statement["Action"])
        assert not [a for a in actions if "*" in a], f"{policy}: {actions}"
        if not any(a.split(":")[0] in RESTRICTABLE_SERVICES for a in actions):
            continue  # X-Ray's write actions take no resource
        for resource in as_list(statement["Resource"]):
            for text in resource_texts(resource):
                # "bucket/*" names the bucket's objects; nothing else may be a wildcard.
                assert "*" not in text.removesuffix("/*"), f"{policy}: {actions} on {text}"


def test_the_api_key_secret_is_readable_by_exactly_the_functions() -> None:
    expected_resource = {
        "Fn::If": [
            "SecretIsArn",
            {"Ref": "PicsartApiKeySecretName"},
            {
                "Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}"
                ":secret:${PicsartApiKeySecretName}-??????"
            },
        ]
    }
    readers = set()
    for function in FUNCTIONS:
        for document in policy_documents(function_role(function)):
            for statement in statements(document):
                if "secretsmanager:GetSecretValue" in as_list(statement["Action"]):
                    assert as_list(statement["Resource"]) == [expected_resource]
                    readers.add(function)
    assert readers == set(FUNCTIONS)

    # ... and nothing else: every policy that reads secrets belongs to, or is attached only to, their roles.
    roles = resources_of_type("AWS::IAM::Role")
    function_roles = {function_role(f) for f in FUNCTIONS}
    for name, statement in all_iam_statements():
        if not any(a.startswith("secretsmanager:") for a in as_list(statement["Action"])):
            continue
        holders = {name} & set(roles) or {
            role for role, r in roles.items() if {"Ref": name} in (r["Properties"].get("ManagedPolicyArns") or [])
        }
        assert holders, f"{name} reads secrets for a role this test does not know"
        assert holders <= function_roles, f"{name} reads secrets for {holders}"
        assert not {"Roles", "Users", "Groups"} & set(template()["Resources"][name]["Properties"]), name


def test_the_input_bucket_name_is_built_not_referenced_in_policies() -> None:
    # The bucket's notification names the upload function, so the function's permissions must not !Ref the
    # bucket (a circular dependency): they build its name, exactly as the bucket does.
    built = template()["Resources"]["InputBucket"]["Properties"]["BucketName"]["Fn::Sub"]
    assert built == "${AWS::StackName}-input-${AWS::AccountId}-${AWS::Region}"
    for policy, statement in all_iam_statements():
        assert "InputBucket" not in json.dumps(statement), policy
    reads = [
        text
        for _, statement in all_iam_statements()
        if {"s3:GetObject", "s3:ListBucket"} & set(as_list(statement["Action"]))
        for resource in as_list(statement["Resource"])
        for text in resource_texts(resource)
    ]
    assert reads
    assert all(f"s3:::{built}" in text for text in reads)


# ----------------------------------------------------------------------------------------- storage


def test_buckets_block_public_access_encrypt_and_refuse_plain_http() -> None:
    buckets = resources_of_type("AWS::S3::Bucket")
    policies = {p["Properties"]["Bucket"]["Ref"]: p for p in resources_of_type("AWS::S3::BucketPolicy").values()}
    assert set(buckets) == {"InputBucket", "OutputBucket"}
    for name, bucket in buckets.items():
        properties = bucket["Properties"]
        assert set(properties["PublicAccessBlockConfiguration"].values()) == {True}, name
        (encryption,) = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}, name

        assert name in policies, f"{name} has no bucket policy"
        deny = [
            s
            for s in statements(policies[name]["Properties"]["PolicyDocument"])
            if s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
        ]
        assert deny, f"{name}: no TLS-only statement"
        (statement,) = deny
        assert statement["Principal"] == "*"
        assert statement["Action"] == "s3:*"
        assert statement["Resource"] == [
            {"Fn::GetAtt": [name, "Arn"]},
            {"Fn::Sub": f"${{{name}.Arn}}/*"},
        ]


def test_versioned_buckets_expire_what_the_adapter_no_longer_needs() -> None:
    for name, bucket in resources_of_type("AWS::S3::Bucket").items():
        properties = bucket["Properties"]
        assert properties["VersioningConfiguration"]["Status"] == "Enabled", name
        rules = [r for r in properties["LifecycleConfiguration"]["Rules"] if r["Status"] == "Enabled"]
        assert any("NoncurrentVersionExpiration" in r for r in rules), name
        assert any("AbortIncompleteMultipartUpload" in r for r in rules), name
        assert any(r.get("ExpiredObjectDeleteMarker") is True for r in rules), name
        # Current objects stay: uploads are the user's, results are the product.
        assert not any({"ExpirationInDays", "ExpirationDate"} & set(r) for r in rules), name


def test_queues_are_encrypted() -> None:
    queues = resources_of_type("AWS::SQS::Queue")
    assert set(queues) == {"DelayQueue", "DeadLetterQueue"}
    for name, queue in queues.items():
        properties = queue["Properties"]
        assert properties.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in properties, name


def test_the_jobs_table_keeps_point_in_time_recovery_and_encryption() -> None:
    properties = template()["Resources"]["JobsTable"]["Properties"]
    assert properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert properties["SSESpecification"]["SSEEnabled"] is True


# ------------------------------------------------------------------------------------------- alarms


def metric_identity() -> tuple[str, list[dict[str, str]]]:
    """The namespace and dimensions Powertools emits under, from the functions' environment."""
    variables = template()["Globals"]["Function"]["Environment"]["Variables"]
    return variables["POWERTOOLS_METRICS_NAMESPACE"], [
        {"Name": "service", "Value": variables["POWERTOOLS_SERVICE_NAME"]}
    ]


def watched_metrics(alarm: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(namespace, metric name, dimensions) of every metric an alarm reads, metric math included."""
    properties = alarm["Properties"]
    if "MetricName" in properties:
        return [(properties["Namespace"], properties["MetricName"], properties.get("Dimensions"))]
    found = []
    for query in properties["Metrics"]:
        if "MetricStat" in query:
            metric = query["MetricStat"]["Metric"]
            found.append((metric["Namespace"], metric["MetricName"], metric.get("Dimensions")))
    return found


@pytest.mark.parametrize("alarm_name", sorted(ALARMED_METRICS))
def test_alarm_watches_a_metric_the_code_emits(alarm_name: str) -> None:
    alarm = template()["Resources"][alarm_name]
    assert alarm["Type"] == "AWS::CloudWatch::Alarm"
    namespace, dimensions = metric_identity()
    watched = watched_metrics(alarm)
    assert {name for _, name, _ in watched} == ALARMED_METRICS[alarm_name]
    for metric_namespace, name, metric_dimensions in watched:
        assert (metric_namespace, metric_dimensions) == (namespace, dimensions), name
        assert name in emitted_metric_names(), f"{alarm_name} watches {name}, which the adapter never emits"


def test_alarm_conditions_and_thresholds() -> None:
    resources = template()["Resources"]
    parameters = template()["Parameters"]

    dead_letter = resources["DeadLetterQueueAlarm"]["Properties"]
    assert (dead_letter["Namespace"], dead_letter["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert dead_letter["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}}
    ]
    assert (dead_letter["ComparisonOperator"], dead_letter["Threshold"]) == ("GreaterThanThreshold", 0)

    circuit = resources["CircuitOpenAlarm"]["Properties"]
    (expression,) = [q for q in circuit["Metrics"] if q.get("ReturnData", True)]
    assert "opened" in expression["Expression"]
    assert "blocked" in expression["Expression"]
    assert (circuit["ComparisonOperator"], circuit["Threshold"]) == ("GreaterThanOrEqualToThreshold", 1)

    for alarm, parameter in (
        ("PicsartClientErrorsAlarm", "ClientErrorsAlarmThreshold"),
        ("PicsartThrottledAlarm", "ThrottledAlarmThreshold"),
        ("PicsartServerErrorsAlarm", "ServerErrorsAlarmThreshold"),
    ):
        properties = resources[alarm]["Properties"]
        assert properties["Threshold"] == {"Ref": parameter}
        assert (properties["Statistic"], properties["ComparisonOperator"]) == ("Sum", "GreaterThanOrEqualToThreshold")
        assert parameters[parameter]["Default"] >= 1

    credits = resources["CreditsLowAlarm"]["Properties"]
    assert credits["Threshold"] == {"Ref": "CreditsLowThreshold"}
    assert (credits["Statistic"], credits["ComparisonOperator"]) == ("Minimum", "LessThanThreshold")
    assert parameters["CreditsLowThreshold"]["Default"] == 500


def test_every_alarm_notifies_the_optional_topic() -> None:
    assert template()["Parameters"]["AlarmTopicArn"]["Default"] == ""
    assert template()["Conditions"]["HasAlarmTopic"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]}
    notify = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    alarms = resources_of_type("AWS::CloudWatch::Alarm")
    assert set(alarms) == {"DeadLetterQueueAlarm", *ALARMED_METRICS}
    for name, alarm in alarms.items():
        assert alarm["Properties"]["AlarmActions"] == notify, name
        assert alarm["Properties"]["OKActions"] == notify, name
    names = template()["Outputs"]["AlarmNames"]["Value"]["Fn::Join"][1]
    assert {ref["Ref"] for ref in names} == set(alarms)


def test_the_dashboard_shows_calls_errors_latency_jobs_and_queue_depth() -> None:
    (dashboard,) = resources_of_type("AWS::CloudWatch::Dashboard").values()
    body_template = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    # ${X} -> X keeps the JSON valid and shows which resource each substitution names.
    body = json.loads(re.sub(r"\$\{([^}!]+)\}", r"\1", body_template))
    namespace, _ = metric_identity()
    rows = [row for widget in body["widgets"] for row in widget["properties"].get("metrics", [])]
    custom = {row[1] for row in rows if row[0] == namespace}
    assert custom >= DASHBOARD_METRICS
    assert custom <= emitted_metric_names(), f"the dashboard shows {custom - emitted_metric_names()}, never emitted"
    latency_stats = {row[-1]["stat"] for row in rows if row[1] == "PicsartLatency"}
    assert latency_stats == {"p50", "p95"}
    queue_depth = {row[3] for row in rows if row[:3] == ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName"]}
    assert queue_depth == {"DelayQueue.QueueName", "DeadLetterQueue.QueueName"}
    assert "Dashboard" in json.dumps(template()["Outputs"]["DashboardName"])


def test_sam_build_makes_a_lean_arm64_layer_without_python313_or_docker(repository_root: Path, tmp_path: Path) -> None:
    """The layer holds the package and its dependencies as arm64 wheels, minus what the python3.13 runtime
    already ships (boto3, botocore, ...); the functions are their handlers alone."""
    sam = Path(sys.executable).with_name("sam")
    build_dir = tmp_path / "build"
    result = subprocess.run(
        [str(sam), "build", "--template", str(repository_root / "template.yaml"), "--build-dir", str(build_dir)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=repository_root,
        # The Architecture parameter's default (arm64), whatever LAYER_ARCH the caller has exported.
        env={**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1", "LAYER_ARCH": "arm64"},
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    layer = build_dir / "AdapterLayer" / "python"
    shipped = {path.name for path in layer.iterdir()}
    assert {"picsart_adapter", "aws_lambda_powertools", "aws_xray_sdk", "pydantic", "urllib3"} <= shipped
    assert not shipped & {"boto3", "botocore", "s3transfer", "jmespath"}, "the runtime has these"
    assert list(layer.glob("pydantic_core/_pydantic_core.cpython-313-aarch64-linux-gnu.so")), "arm64 wheels"
    # The rules files beside the package, as in the repository: a relative PICSART_RULES_FILE names the same file.
    for rules_file in (ADAPTER_PACKAGE.parent / "rules").glob("*.json"):
        assert (layer / "rules" / rules_file.name).read_bytes() == rules_file.read_bytes(), rules_file.name
    assert (layer / "rules" / "example.json").is_file()
    assert sorted(p.name for p in (build_dir / "UploadFunction").iterdir()) == ["upload_handler.py"]
    assert sorted(p.name for p in (build_dir / "RetryFunction").iterdir()) == ["retry_handler.py"]
    assert sorted(p.name for p in (build_dir / "BalanceFunction").iterdir()) == ["balance_handler.py"]
    size = sum(path.stat().st_size for path in layer.rglob("*") if path.is_file())
    assert size < 30 * 1024 * 1024, f"the layer grew to {size / 1e6:.0f} MB"


@pytest.mark.parametrize(("architecture", "platform"), [("arm64", "aarch64"), ("x86_64", "x86_64")])
def test_the_layer_is_built_for_its_architecture(repository_root: Path, architecture: str, platform: str) -> None:
    printed = subprocess.run(
        ["make", "-n", "build-AdapterLayer", "ARTIFACTS_DIR=/nowhere"],
        cwd=repository_root / "layers" / "picsart_adapter",
        env={**os.environ, "LAYER_ARCH": architecture},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"--platform manylinux2014_{platform} " in printed


def test_an_unknown_layer_architecture_stops_the_build(repository_root: Path) -> None:
    result = subprocess.run(
        ["make", "-n", "build-AdapterLayer", "ARTIFACTS_DIR=/nowhere"],
        cwd=repository_root / "layers" / "picsart_adapter",
        env={**os.environ, "LAYER_ARCH": "sparc"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "LAYER_ARCH must be arm64 or x86_64" in result.stderr


def test_completion_events_go_to_the_named_bus_and_only_there() -> None:
    parameter = template()["Parameters"]["EventBusName"]
    assert (parameter["Type"], parameter["Default"]) == ("String", "default")
    assert re.fullmatch(parameter["AllowedPattern"], "orders-bus")
    assert not re.fullmatch(parameter["AllowedPattern"], "arn:aws:events:us-east-1:123456789012:event-bus/x")
    variables = template()["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["EVENT_BUS_NAME"] == {"Ref": "EventBusName"}
    bus_arn = {"Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${EventBusName}"}
    # The functions that end jobs put their events; the balance check ends none and may put none.
    for function in FUNCTIONS:
        granted = [
            statement["Resource"]
            for document in policy_documents(function_role(function))
            for statement in statements(document)
            if "events:PutEvents" in as_list(statement["Action"])
        ]
        assert granted == ([] if function == "BalanceFunction" else [bus_arn]), function


def test_failed_jobs_reach_the_optional_notification_topic_through_one_rule() -> None:
    parameter = template()["Parameters"]["NotificationTopicArn"]
    assert parameter["Default"] == ""
    assert re.fullmatch(parameter["AllowedPattern"], "arn:aws:sns:us-east-1:123456789012:failed-jobs")
    assert "events.amazonaws.com" in parameter["Description"]
    condition = {"Fn::Not": [{"Fn::Equals": [{"Ref": "NotificationTopicArn"}, ""]}]}
    assert template()["Conditions"]["HasNotificationTopic"] == condition
    (rule,) = resources_of_type("AWS::Events::Rule").values()
    assert rule["Condition"] == "HasNotificationTopic"
    properties = rule["Properties"]
    assert properties["EventBusName"] == {"Ref": "EventBusName"}
    assert properties["EventPattern"] == {"source": ["picsart.adapter"], "detail-type": ["Picsart Job Failed"]}
    assert [target["Arn"] for target in properties["Targets"]] == [{"Ref": "NotificationTopicArn"}]
