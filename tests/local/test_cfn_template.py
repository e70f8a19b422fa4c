"""The template loader and resolver: short forms, intrinsics, parameters, Globals, the real template's model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from picsart_local.cfn_template import (
    BUCKET,
    QUEUE,
    TABLE,
    ParameterValidationError,
    TemplateError,
    UnsupportedIntrinsicError,
    load_template,
    resolve_template,
)

from .conftest import FIXTURE_TEMPLATE, REAL_TEMPLATE

SHORT_FORMS = """
Parameters:
  Name:
    Type: String
    Default: photos
Conditions:
  IsPhotos: !Equals [!Ref Name, photos]
  NotPhotos: !Not [!Condition IsPhotos]
Resources:
  Bucket:
    Type: AWS::S3::Bucket
    Properties:
      BucketName: !Sub "${AWS::StackName}-${Name}"
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      Tags:
        - Key: arn
          Value: !GetAtt Queue.Arn
        - Key: listed
          Value: !GetAtt [Bucket, Arn]
        - Key: sub-list
          Value: !Sub ["${Greeting}-${!Literal}-${Bucket.Arn}", {Greeting: !Join ["-", [a, b]]}]
        - Key: select
          Value: !Select [1, !Split [",", "x,y,z"]]
        - Key: if
          Value: !If [NotPhotos, wrong, right]
        - Key: pseudo
          Value: !Sub "${AWS::AccountId}/${AWS::Region}/${AWS::Partition}"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "template.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_short_form_tags_load_as_long_forms(tmp_path: Path) -> None:
    document = load_template(write(tmp_path, SHORT_FORMS))

    tags = document["Resources"]["Queue"]["Properties"]["Tags"]
    assert tags[0]["Value"] == {"Fn::GetAtt": ["Queue", "Arn"]}
    assert tags[1]["Value"] == {"Fn::GetAtt": ["Bucket", "Arn"]}
    assert tags[2]["Value"] == {
        "Fn::Sub": ["${Greeting}-${!Literal}-${Bucket.Arn}", {"Greeting": {"Fn::Join": ["-", ["a", "b"]]}}]
    }
    assert tags[3]["Value"] == {"Fn::Select": [1, {"Fn::Split": [",", "x,y,z"]}]}
    assert document["Conditions"]["IsPhotos"] == {"Fn::Equals": [{"Ref": "Name"}, "photos"]}
    assert document["Conditions"]["NotPhotos"] == {"Fn::Not": [{"Condition": "IsPhotos"}]}


def test_intrinsics_resolve_against_parameters_pseudo_parameters_conditions_and_resources(tmp_path: Path) -> None:
    template = resolve_template(write(tmp_path, SHORT_FORMS), stack_name="demo", region="eu-west-1")

    tags = {tag["Key"]: tag["Value"] for tag in template.resources["Queue"].properties["Tags"]}
    queue_name = template.resources["Queue"].attribute("QueueName")
    assert template.resources["Bucket"].ref == "demo-photos"
    assert tags["arn"] == f"arn:aws:sqs:eu-west-1:123456789012:{queue_name}"
    assert tags["listed"] == "arn:aws:s3:::demo-photos"
    assert tags["sub-list"] == "a-b-${Literal}-arn:aws:s3:::demo-photos"
    assert tags["select"] == "y"
    assert tags["if"] == "right"
    assert tags["pseudo"] == "123456789012/eu-west-1/aws"
    assert template.conditions == {"IsPhotos": True, "NotPhotos": False}


def test_unsupported_intrinsic_is_a_clear_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "Mappings: {M: {a: {b: c}}}\n"
        "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      QueueName: !FindInMap [M, a, b]\n",
    )
    with pytest.raises(UnsupportedIntrinsicError, match="Fn::FindInMap is not supported"):
        resolve_template(path)


def test_reference_to_an_unknown_name_is_a_clear_error(tmp_path: Path) -> None:
    path = write(
        tmp_path, "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      DelaySeconds: !Ref Nope\n"
    )
    with pytest.raises(TemplateError, match="'Nope' is neither a parameter"):
        resolve_template(path)


@pytest.mark.parametrize(
    ("parameter", "value", "constraint"),
    [
        ("PicsartTool", "bogus", "AllowedValues"),
        ("PresignedUrlTtlSeconds", "30", "MinValue"),
        ("MaxAttempts", "51", "MaxValue"),
        ("MaxAttempts", "many", "not a Number"),
        ("PicsartBaseUrl", "https://api.example.com/", "AllowedPattern"),
        ("PicsartApiKeySecretName", "", "MinLength"),
        ("NoSuchParameter", "x", "not declared"),
    ],
)
def test_parameter_overrides_are_validated(parameter: str, value: str, constraint: str) -> None:
    with pytest.raises(ParameterValidationError, match=re.escape(constraint)) as raised:
        resolve_template(REAL_TEMPLATE, parameter_overrides={parameter: value})
    assert raised.value.parameter == parameter
    assert f"Parameter {parameter!r}" in str(raised.value)


def test_valid_overrides_reach_the_functions_and_conditions() -> None:
    secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:picsart-abc"
    template = resolve_template(
        REAL_TEMPLATE,
        parameter_overrides={"PicsartTool": "upscale", "MaxAttempts": "3", "PicsartApiKeySecretName": secret_arn},
    )
    environment = template.function("UploadFunction").environment
    assert environment["PICSART_TOOL"] == "upscale"
    assert environment["MAX_ATTEMPTS"] == "3"
    assert environment["PICSART_API_KEY_SECRET"] == secret_arn
    assert template.conditions["SecretIsArn"] is True
    assert resolve_template(REAL_TEMPLATE).conditions["SecretIsArn"] is False


def test_the_rules_file_parameter_reaches_both_functions_as_given() -> None:
    for function in resolve_template(REAL_TEMPLATE).functions.values():
        assert function.environment["PICSART_RULES_FILE"] == "", function.logical_id  # no rules file by default
    template = resolve_template(REAL_TEMPLATE, parameter_overrides={"RulesFile": "rules/example.json"})
    for function in template.functions.values():
        # As given: a relative path is the adapter's to resolve, against the layer's root.
        assert function.environment["PICSART_RULES_FILE"] == "rules/example.json", function.logical_id


def test_an_s3_event_without_a_filter_has_no_filter_rules(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
Transform: AWS::Serverless-2016-10-31
Resources:
  Uploads:
    Type: AWS::S3::Bucket
  OnUpload:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: .
      Handler: handler.handle
      Runtime: python3.13
      Events:
        Everything:
          Type: S3
          Properties:
            Bucket: !Ref Uploads
            Events: [s3:ObjectCreated:*, s3:ObjectRemoved:*]
        Pngs:
          Type: S3
          Properties:
            Bucket: !Ref Uploads
            Events: s3:ObjectCreated:*
            Filter: {S3Key: {Rules: [{Name: prefix, Value: in/}, {Name: suffix, Value: .png}]}}
""",
    )
    everything, pngs = resolve_template(path).function("OnUpload").s3_events
    assert everything.events == ("s3:ObjectCreated:*", "s3:ObjectRemoved:*")
    assert everything.filter_rules == ()
    assert [(rule.name, rule.value) for rule in pngs.filter_rules] == [("prefix", "in/"), ("suffix", ".png")]


def test_globals_merge_into_functions_and_the_functions_own_values_win() -> None:
    template = resolve_template(FIXTURE_TEMPLATE, parameter_overrides={"FunctionTimeout": "7"})

    on_upload, on_work = template.function("OnUpload"), template.function("OnWork")
    assert on_upload.environment["OVERRIDDEN"] == "from-function"
    assert on_work.environment["OVERRIDDEN"] == "from-globals"
    assert on_upload.environment["GREETING"] == "hello"
    assert on_upload.environment["RECORD_BUCKET"] == template.resources["RecordBucket"].ref
    assert (on_upload.timeout_s, on_upload.memory_mb, on_upload.tracing) == (7, 256, "Active")
    assert on_upload.code_uri == (FIXTURE_TEMPLATE.parent / "functions").resolve()


def test_real_template_model() -> None:
    raw = load_template(REAL_TEMPLATE)
    template = resolve_template(REAL_TEMPLATE, stack_name="picsart-local")

    assert set(template.functions) == {"UploadFunction", "RetryFunction", "BalanceFunction"}
    upload, retry = template.function("UploadFunction"), template.function("RetryFunction")
    resources = template.resources
    for function in (upload, retry):
        environment = function.environment
        assert environment["OUTPUT_BUCKET"] == resources["OutputBucket"].ref
        assert environment["JOBS_TABLE"] == resources["JobsTable"].ref
        assert environment["DELAY_QUEUE_URL"] == resources["DelayQueue"].ref
        assert re.fullmatch(
            r"https://sqs\.us-east-1\.amazonaws\.com/123456789012/picsart-local-DelayQueue-\w+",
            environment["DELAY_QUEUE_URL"],
        )
        assert environment["DEAD_LETTER_QUEUE_URL"] == resources["DeadLetterQueue"].ref
        assert environment["PICSART_BASE_URL"] == raw["Parameters"]["PicsartBaseUrl"]["Default"]
        assert environment["PRESIGNED_URL_TTL_SECONDS"] == "300"
        assert function.timeout_s == raw["Globals"]["Function"]["Timeout"]
        assert function.code_uri.is_dir()
    assert upload.handler_module == "upload_handler"
    assert upload.handler_function == "lambda_handler"

    # One event for every object created in the input bucket: no key filter, so no key is left out locally.
    (created,) = upload.s3_events
    assert (created.name, created.bucket_logical_id) == ("Upload", "InputBucket")
    assert created.events == ("s3:ObjectCreated:*",)
    assert created.filter_rules == ()
    assert retry.s3_events == ()
    assert upload.dead_letter_queue_logical_id == "DeadLetterQueue"
    assert upload.maximum_retry_attempts == 2

    (delayed,) = retry.sqs_events
    assert delayed.queue_logical_id == "DelayQueue"
    assert (delayed.batch_size, delayed.maximum_batching_window_s, delayed.maximum_concurrency) == (5, 0.0, 25)
    assert delayed.report_batch_item_failures

    # The balance check's hourly schedule: modelled, run on demand by the runner (LocalRunner.run_schedule).
    balance = template.function("BalanceFunction")
    assert [(s.name, s.expression, s.enabled) for s in balance.schedules] == [("Hourly", "rate(1 hour)", True)]
    assert (balance.s3_events, balance.sqs_events, upload.schedules) == ((), (), ())

    assert template.outputs["InputBucketName"] == "picsart-local-input-123456789012-us-east-1"
    assert template.outputs["DelayQueueUrl"] == resources["DelayQueue"].ref
    assert template.outputs["UploadFunctionName"] == upload.name
    assert set(template.outputs) == set(raw["Outputs"])
    assert {r.logical_id for r in template.of_type(BUCKET)} == {"InputBucket", "OutputBucket"}
    assert {r.logical_id for r in template.of_type(TABLE)} == {"JobsTable"}
    order = [r.logical_id for r in template.creation_order((QUEUE,))]
    assert order.index("DeadLetterQueue") < order.index("DelayQueue")
