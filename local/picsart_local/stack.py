"""The local stack: moto in server mode in this process, with the resources of template.yaml created in it.

Resource names and settings come from the resolved template (cfn_template), never from a second list.
S3 notifications of each function go to an internal SQS queue, so moto itself decides which uploads
trigger which function; the runner (runner.py) delivers them.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, cast, overload
from urllib.parse import quote_plus

import boto3
from botocore.exceptions import ClientError
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.s3 import notifications as moto_s3_notifications

from picsart_local.cfn_template import (
    BUCKET,
    QUEUE,
    TABLE,
    FunctionSpec,
    PhysicalResource,
    ResolvedTemplate,
    ResourceSpec,
    load_template,
    physical_resource,
    plan_physical_resources,
    resolve_parameters,
    resolve_template,
)
from picsart_local.moto_atomic import serialize_dynamodb_writes, serialize_sqs_queues
from picsart_local.moto_speedups import speed_up_moto
from picsart_local.moto_throttle import ItemThrottle, ThrottleLimits, release_table, throttle_table
from picsart_local.wsgi_server import make_threaded_server

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient, DynamoDBServiceResource
    from mypy_boto3_s3 import S3Client, S3ServiceResource
    from mypy_boto3_s3.type_defs import (
        DeleteTypeDef,
        NotificationConfigurationTypeDef,
    )
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient, SQSServiceResource

logger = logging.getLogger(__name__)

DUMMY_ACCESS_KEY_ID: Final = "testing"
DUMMY_SECRET_ACCESS_KEY: Final = "testing"  # noqa: S105 -- moto's conventional dummy credential
DUMMY_SESSION_TOKEN: Final = "testing"  # noqa: S105 -- Lambda always sets one; moto ignores it
#: The variable the adapter reads its rules file from (the template's RulesFile parameter).
RULES_FILE_VARIABLE: Final = "PICSART_RULES_FILE"
# Lambda's own bound on how long an init may take; notification queues leave room for it.
INIT_ALLOWANCE_S: Final = 10


# ------------------------------------------------------------------------------------- S3 event fields


class _S3EventEnrichment:
    """Makes moto's S3 notification records carry the fields real S3 sends.

    moto builds records in moto.s3.notifications._get_s3_event; the server runs in this process, so
    wrapping that function is enough. Added: s3.object.versionId (versioned buckets), s3.object.sequencer,
    responseElements (fresh x-amz-request-id / x-amz-id-2 per event), requestParameters.sourceIPAddress,
    userIdentity.principalId, s3.bucket.ownerIdentity, eventTime as real S3 writes it, and the key encoded
    as real S3 does it (form encoding, + for space, "/" left as is, where moto's own encoding escapes "/").
    Installed while at least one LocalStack runs.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._original: Callable[..., dict[str, Any]] | None = None
        self._last_sequencer = 0

    def install(self) -> None:
        with self._lock:
            if self._users == 0:
                original = moto_s3_notifications._get_s3_event
                self._original = original
                moto_s3_notifications._get_s3_event = self._build
            self._users += 1

    def uninstall(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0 and self._original is not None:
                moto_s3_notifications._get_s3_event = self._original
                self._original = None

    def _sequencer(self) -> str:
        # Real sequencers are hex strings that grow with each event on a key; time-based and strictly
        # increasing here, which satisfies that for every key.
        with self._lock:
            self._last_sequencer = max(self._last_sequencer + 1, time.time_ns())
            return f"{self._last_sequencer:018X}"

    def _build(self, event_name: str, bucket: Any, key: Any, notification_id: str) -> dict[str, Any]:
        assert self._original is not None
        event = self._original(event_name, bucket, key, notification_id)
        records = []
        for record in event["Records"]:
            s3 = record["s3"]
            s3["bucket"] = {
                "name": s3["bucket"]["name"],
                "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                "arn": s3["bucket"]["arn"],
            }
            s3["object"]["key"] = quote_plus(key.name, safe="/")
            if bucket.is_versioned:
                s3["object"]["versionId"] = key.version_id
            s3["object"]["sequencer"] = self._sequencer()
            records.append(
                {
                    "eventVersion": record["eventVersion"],
                    "eventSource": record["eventSource"],
                    "awsRegion": record["awsRegion"],
                    "eventTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                    "eventName": record["eventName"],
                    "userIdentity": {"principalId": "AWS:AIDAJDPLRKLG7UEXAMPLE"},
                    "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                    "responseElements": {
                        "x-amz-request-id": uuid.uuid4().hex[:16].upper(),
                        "x-amz-id-2": base64.b64encode(os.urandom(48)).decode(),
                    },
                    "s3": s3,
                }
            )
        return {"Records": records}


_s3_event_enrichment = _S3EventEnrichment()


class _SharedSecrets:
    """Secrets are not stack resources: two stacks in one process (one moto) may name the same secret.

    The first creates it, later ones set its value, the last one to stop deletes it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: Counter[str] = Counter()

    def acquire(self, client: SecretsManagerClient, name: str, value: str) -> None:
        with self._lock:
            if self._users[name]:
                client.put_secret_value(SecretId=name, SecretString=value)
            else:
                client.create_secret(Name=name, SecretString=value)
            self._users[name] += 1

    def release(self, client: SecretsManagerClient, name: str) -> None:
        with self._lock:
            self._users[name] -= 1
            if self._users[name] <= 0:
                del self._users[name]
                client.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)


_shared_secrets = _SharedSecrets()


# ---------------------------------------------------------------------------------------- moto server


class _QuietRequestHandler(MotoRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """One line per request would drown what the developer wants to read."""


class _RoutingDispatcher(DomainDispatcherApplication):
    """moto's dispatcher with each host's backend looked up once, not at every request (it lists moto's
    package directory and tries every service's URL patterns, holding the one process's GIL and a lock every
    request takes)."""

    def __init__(self, create_app: Callable[[Any], Any]) -> None:
        super().__init__(create_app)
        self._backend_of_host: dict[str | None, Any] = {}

    def get_backend_for_host(self, host: str | None) -> Any:
        if host not in self._backend_of_host:
            self._backend_of_host[host] = super().get_backend_for_host(host)
        return self._backend_of_host[host]


class _MotoServer(ThreadedMotoServer):
    """ThreadedMotoServer with a quiet request handler, cached routing and connections accepted at once
    (wsgi_server.py); port 0 picks a free port."""

    def _server_entry(self) -> None:
        app = _RoutingDispatcher(create_backend_app)
        self._server = make_threaded_server(self._ip_address, self._port, app, _QuietRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever(poll_interval=0.05)  # stop() waits up to one poll interval

    def stop(self) -> None:
        super().stop()
        if self._server is not None:
            self._server.server_close()


# --------------------------------------------------------------------------- template -> API parameters


def _bool_str(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _lifecycle_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """A CloudFormation lifecycle rule in PutBucketLifecycleConfiguration's shape."""
    converted: dict[str, Any] = {"ID": rule.get("Id", ""), "Status": rule["Status"]}
    converted["Filter"] = {"Prefix": rule.get("Prefix", "")}
    expiration: dict[str, Any] = {}
    for key, value in rule.items():
        if key in ("Id", "Status", "Prefix"):
            continue
        if key == "ExpirationInDays":
            expiration["Days"] = int(value)
        elif key == "ExpiredObjectDeleteMarker":
            expiration["ExpiredObjectDeleteMarker"] = bool(value)
        elif key == "NoncurrentVersionExpiration":
            converted[key] = {k: int(v) for k, v in value.items()}
        elif key == "NoncurrentVersionExpirationInDays":
            converted["NoncurrentVersionExpiration"] = {"NoncurrentDays": int(value)}
        elif key == "AbortIncompleteMultipartUpload":
            converted[key] = {"DaysAfterInitiation": int(value["DaysAfterInitiation"])}
        elif key == "Transitions":
            converted[key] = [{"StorageClass": t["StorageClass"], "Days": int(t["TransitionInDays"])} for t in value]
        elif key == "NoncurrentVersionTransitions":
            converted[key] = [
                {"StorageClass": t["StorageClass"], "NoncurrentDays": int(t["TransitionInDays"])} for t in value
            ]
        else:
            logger.warning("lifecycle rule %s: %s is not applied locally", rule.get("Id"), key)
    if expiration:
        converted["Expiration"] = expiration
    return converted


def _bucket_settings(resource: ResourceSpec) -> list[tuple[str, dict[str, Any]]]:
    """(S3 client method, its arguments but Bucket) for each bucket property that applies locally."""
    settings: list[tuple[str, dict[str, Any]]] = []
    for key, value in resource.properties.items():
        if key == "BucketName":
            continue
        if key == "VersioningConfiguration":
            settings.append(("put_bucket_versioning", {"VersioningConfiguration": {"Status": value["Status"]}}))
        elif key == "BucketEncryption":
            # CloudFormation's ServerSideEncryptionByDefault is the API's ApplyServerSideEncryptionByDefault.
            rules = [
                {
                    ("ApplyServerSideEncryptionByDefault" if k == "ServerSideEncryptionByDefault" else k): v
                    for k, v in rule.items()
                }
                for rule in value["ServerSideEncryptionConfiguration"]
            ]
            settings.append(("put_bucket_encryption", {"ServerSideEncryptionConfiguration": {"Rules": rules}}))
        elif key == "PublicAccessBlockConfiguration":
            block = {k: bool(v) for k, v in value.items()}
            settings.append(("put_public_access_block", {"PublicAccessBlockConfiguration": block}))
        elif key == "LifecycleConfiguration":
            rules = [_lifecycle_rule(rule) for rule in value["Rules"]]
            settings.append(("put_bucket_lifecycle_configuration", {"LifecycleConfiguration": {"Rules": rules}}))
        elif key == "Tags":
            settings.append(("put_bucket_tagging", {"Tagging": {"TagSet": value}}))
        elif key == "OwnershipControls":
            settings.append(("put_bucket_ownership_controls", {"OwnershipControls": value}))
        elif key == "CorsConfiguration":
            renamed = {"ExposedHeaders": "ExposeHeaders", "MaxAge": "MaxAgeSeconds", "Id": "ID"}
            cors_rules = [{renamed.get(k, k): v for k, v in rule.items()} for rule in value["CorsRules"]]
            settings.append(("put_bucket_cors", {"CORSConfiguration": {"CORSRules": cors_rules}}))
        else:
            logger.warning("bucket %s: property %s is not applied locally", resource.logical_id, key)
    return settings


def _queue_attributes(properties: Mapping[str, Any]) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for key, value in properties.items():
        if key in ("QueueName", "Tags"):
            continue
        if key in ("RedrivePolicy", "RedriveAllowPolicy") and isinstance(value, dict):
            policy = dict(value)
            if "maxReceiveCount" in policy:
                policy["maxReceiveCount"] = int(policy["maxReceiveCount"])
            attributes[key] = json.dumps(policy)
        else:
            attributes[key] = _bool_str(value)
    return attributes


def _notification_queue_name(stack_name: str, function_logical_id: str) -> str:
    name = f"{stack_name}-s3-notifications-{function_logical_id}"
    return name[:80]


# ------------------------------------------------------------------------------------------ the stack


class LocalStack:
    """moto server on 127.0.0.1 (free port) in this process, holding the resources of a SAM template."""

    def __init__(
        self,
        template_path: Path | str = Path("template.yaml"),
        stack_name: str = "picsart-local",
        parameter_overrides: Mapping[str, str] | None = None,
        secrets: Mapping[str, str] | None = None,
        region: str = "us-east-1",
        function_environment: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        rules_file: Path | None = None,
        item_throttle: ThrottleLimits | None = None,
    ) -> None:
        self.template_path = Path(template_path).resolve()
        self.stack_name = stack_name
        self.region = region
        self.host = host
        self._parameter_overrides = dict(parameter_overrides or {})
        self._secrets = dict(secrets or {})
        self._extra_environment = dict(function_environment or {})
        # Absolute, so it names the same file whatever folder a worker runs in; checked here so that a wrong path
        # stops the stack before anything starts, not every function at its first cold start.
        self.rules_file = Path(rules_file).resolve() if rules_file is not None else None
        if self.rules_file is not None and not self.rules_file.is_file():
            raise FileNotFoundError(f"no such rules file: {rules_file}")
        self._document = load_template(self.template_path)
        # Fail before anything starts when a parameter breaks the template's constraints.
        self._parameters = resolve_parameters(self._document, self._parameter_overrides)
        self._server: _MotoServer | None = None
        self._endpoint_url: str | None = None
        self._template: ResolvedTemplate | None = None
        self._notification_queues: dict[str, str] = {}
        self._session_lock = threading.Lock()
        self._session: boto3.session.Session | None = None
        self._created: list[tuple[str, str]] = []  # (kind, identifier) to delete on stop, in creation order
        #: Each item's throughput cap on the stack's tables, off (None) unless asked for (moto_throttle.py).
        self.item_throttle = item_throttle
        #: The cap's model per table while the stack runs: what it refused.
        self.throttles: dict[str, ItemThrottle] = {}

    # -- lifecycle

    def start(self) -> LocalStack:
        """Start moto and create every resource of the template; on failure, undo what was done."""
        if self._server is not None:
            raise RuntimeError("the local stack is already started")
        _s3_event_enrichment.install()
        serialize_dynamodb_writes()
        serialize_sqs_queues()
        speed_up_moto()
        self._server = _MotoServer(ip_address=self.host, port=0, verbose=False)
        try:
            self._server.start()
            host, port = self._server.get_host_and_port()
            self._endpoint_url = f"http://{host}:{port}"
            self._session = boto3.session.Session(
                aws_access_key_id=DUMMY_ACCESS_KEY_ID,
                aws_secret_access_key=DUMMY_SECRET_ACCESS_KEY,
                region_name=self.region,
            )
            self._create_resources()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Delete what was created (moto's state is per process) and stop the server."""
        if self._server is None:
            return
        for kind, identifier in reversed(self._created):
            try:
                self._delete(kind, identifier)
            except Exception as error:  # cleanup is best effort; the server goes away next anyway
                logger.warning("could not delete %s %s: %s", kind, identifier, error)
        self._created.clear()
        try:
            self._server.stop()
        finally:
            self._server = None
            self._template = None
            self._notification_queues = {}
            _s3_event_enrichment.uninstall()

    def __enter__(self) -> LocalStack:
        return self if self._server is not None else self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # -- what the rest reads

    @property
    def endpoint_url(self) -> str:
        if self._endpoint_url is None or self._server is None:
            raise RuntimeError("the local stack is not started")
        return self._endpoint_url

    @property
    def template(self) -> ResolvedTemplate:
        if self._template is None:
            raise RuntimeError("the local stack is not started")
        return self._template

    @property
    def outputs(self) -> dict[str, str]:
        return dict(self.template.outputs)

    @property
    def notification_queues(self) -> dict[str, str]:
        """Function logical id -> URL of the internal queue its S3 notifications go to."""
        _ = self.template  # raises when not started
        return dict(self._notification_queues)

    def queue_url(self, logical_id: str) -> str:
        return self.template.resources[logical_id].ref

    def function_environment(self, function_logical_id: str) -> dict[str, str]:
        """The environment a worker of this function gets, as Lambda would set it."""
        function = self.template.function(function_logical_id)
        environment = {**function.environment, **self._extra_environment}
        if self.rules_file is not None:  # in place of the template's RulesFile parameter, as given
            environment[RULES_FILE_VARIABLE] = str(self.rules_file)
        # Lambda's reserved variables win over anything the template or the caller set.
        environment.update(self.aws_environment())
        environment.update(
            {
                "AWS_SESSION_TOKEN": DUMMY_SESSION_TOKEN,
                "AWS_LAMBDA_FUNCTION_NAME": function.name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
                "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
                "LAMBDA_TASK_ROOT": str(function.code_uri),
                "_HANDLER": function.handler,
                "AWS_EXECUTION_ENV": f"AWS_Lambda_{function.runtime}",
            }
        )
        return environment

    def aws_environment(self) -> dict[str, str]:
        """What to export so `aws` / boto3 reach this stack."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": DUMMY_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET_ACCESS_KEY,
        }

    @overload
    def client(self, service_name: Literal["s3"]) -> S3Client: ...
    @overload
    def client(self, service_name: Literal["sqs"]) -> SQSClient: ...
    @overload
    def client(self, service_name: Literal["dynamodb"]) -> DynamoDBClient: ...
    @overload
    def client(self, service_name: Literal["secretsmanager"]) -> SecretsManagerClient: ...
    @overload
    def client(self, service_name: str) -> Any: ...
    def client(self, service_name: str) -> Any:
        """A boto3 client for the moto server (dummy credentials, the stack's region)."""
        endpoint_url = self.endpoint_url
        assert self._session is not None
        with self._session_lock:  # boto3 sessions are not thread-safe; the clients they make are
            return self._session.client(service_name, endpoint_url=endpoint_url)  # type: ignore[call-overload]

    @overload
    def resource(self, service_name: Literal["s3"]) -> S3ServiceResource: ...
    @overload
    def resource(self, service_name: Literal["sqs"]) -> SQSServiceResource: ...
    @overload
    def resource(self, service_name: Literal["dynamodb"]) -> DynamoDBServiceResource: ...
    @overload
    def resource(self, service_name: str) -> Any: ...
    def resource(self, service_name: str) -> Any:
        """A boto3 service resource for the moto server."""
        endpoint_url = self.endpoint_url
        assert self._session is not None
        with self._session_lock:
            return self._session.resource(service_name, endpoint_url=endpoint_url)  # type: ignore[call-overload]

    # -- creation

    def _create_resources(self) -> None:
        planned = plan_physical_resources(
            self._document,
            stack_name=self.stack_name,
            region=self.region,
            parameters=self._parameters,
            sqs_endpoint=self.endpoint_url,
        )
        template = self._resolve(planned)
        actual = dict(planned)
        for resource in template.creation_order((BUCKET, TABLE, QUEUE)):
            if resource.resource_type == BUCKET:
                self._create_bucket(resource)
            elif resource.resource_type == TABLE:
                self._create_table(resource)
            else:
                url = self._create_queue(resource)
                if url != resource.ref:  # the URL moto answers with is the one handlers must use
                    attributes = {**resource.physical.attributes, "QueueUrl": url}
                    actual[resource.logical_id] = PhysicalResource(resource.logical_id, QUEUE, url, attributes)
        self._template = template if actual == planned else self._resolve(actual)
        for name, value in self._secrets.items():
            _shared_secrets.acquire(self.client("secretsmanager"), name, value)
            self._created.append(("secret", name))
        self._create_event_bus(self._template)
        self._configure_notifications(self._template)

    def _resolve(self, physical: Mapping[str, PhysicalResource]) -> ResolvedTemplate:
        return resolve_template(
            self.template_path,
            stack_name=self.stack_name,
            region=self.region,
            parameter_overrides=self._parameter_overrides,
            physical=physical,
            document=self._document,
        )

    def _create_bucket(self, resource: ResourceSpec) -> None:
        s3 = self.client("s3")
        name = resource.ref
        request: dict[str, Any] = {"Bucket": name}
        if self.region != "us-east-1":  # us-east-1 rejects its own name as a location constraint
            request["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        # In us-east-1 creating an existing bucket of one's own succeeds (so moto too): ask first.
        if any(bucket["Name"] == name for bucket in s3.list_buckets().get("Buckets", [])):
            raise RuntimeError(
                f"bucket {name} already exists: moto's state is per process, so two LocalStacks running in one "
                "process need distinct stack names"
            )
        s3.create_bucket(**request)
        self._created.append(("bucket", name))
        for method, arguments in _bucket_settings(resource):
            getattr(s3, method)(Bucket=name, **arguments)

    def _create_table(self, resource: ResourceSpec) -> None:
        dynamodb = self.client("dynamodb")
        properties = resource.properties
        name = resource.ref
        request: dict[str, Any] = {
            "TableName": name,
            "KeySchema": properties["KeySchema"],
            "AttributeDefinitions": properties["AttributeDefinitions"],
            "BillingMode": properties.get("BillingMode", "PROVISIONED"),
        }
        later: list[str] = []
        for key, value in properties.items():
            if key in ("TableName", "KeySchema", "AttributeDefinitions", "BillingMode"):
                continue
            if key == "ProvisionedThroughput":
                request[key] = {k: int(v) for k, v in value.items()}
            elif key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
                request[key] = [
                    {k: v for k, v in index.items() if k != "ContributorInsightsSpecification"} for index in value
                ]
            elif key == "StreamSpecification":
                request[key] = {"StreamEnabled": True, "StreamViewType": value["StreamViewType"]}
            elif key == "SSESpecification":
                sse = {"Enabled": bool(value.get("SSEEnabled", False))}
                sse.update({k: v for k, v in value.items() if k in ("SSEType", "KMSMasterKeyId")})
                request[key] = sse
            elif key in ("TableClass", "DeletionProtectionEnabled", "Tags"):
                request[key] = value
            elif key in ("TimeToLiveSpecification", "PointInTimeRecoverySpecification"):
                later.append(key)
            else:
                logger.warning("table %s: property %s is not applied locally", resource.logical_id, key)
        dynamodb.create_table(**request)
        self._created.append(("table", name))
        if self.item_throttle is not None:
            self.throttles[name] = throttle_table(name, self.item_throttle)
        if "TimeToLiveSpecification" in later:
            ttl = properties["TimeToLiveSpecification"]
            if bool(ttl.get("Enabled", False)):
                dynamodb.update_time_to_live(
                    TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]}
                )
        if "PointInTimeRecoverySpecification" in later:
            enabled = bool(properties["PointInTimeRecoverySpecification"].get("PointInTimeRecoveryEnabled", False))
            dynamodb.update_continuous_backups(
                TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": enabled}
            )

    def _create_queue(self, resource: ResourceSpec, attributes: Mapping[str, str] | None = None) -> str:
        sqs = self.client("sqs")
        name = resource.attribute("QueueName")
        request: dict[str, Any] = {"QueueName": name}
        request["Attributes"] = dict(attributes) if attributes is not None else _queue_attributes(resource.properties)
        tags = resource.properties.get("Tags")
        if tags:
            request["tags"] = {tag["Key"]: tag["Value"] for tag in tags}
        url = sqs.create_queue(**request)["QueueUrl"]
        self._created.append(("queue", url))
        return url

    def _create_event_bus(self, template: ResolvedTemplate) -> None:
        """The bus the completion events go to (EventBusName) when it is not the default one: in AWS it is the
        deployer's, outside the stack; moto starts with the default bus only. Rules the template makes
        (FailedJobsNotificationRule, when NotificationTopicArn is set) are not made locally: their target is an
        SNS topic outside the stack, and moto cannot deliver to one."""
        bus = str(template.parameters.get("EventBusName") or "default")
        if bus == "default":
            return
        try:
            self.client("events").create_event_bus(Name=bus)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ResourceAlreadyExistsException":
                raise
            return  # another stack of this process made it, and deletes it
        self._created.append(("event-bus", bus))

    def _configure_notifications(self, template: ResolvedTemplate) -> None:
        """Each function's S3 events become queue notifications to its own internal queue."""
        by_bucket: dict[str, list[dict[str, Any]]] = {}
        for function in template.functions.values():
            if not function.s3_events:
                continue
            queue_url, queue_arn = self._create_notification_queue(function)
            self._notification_queues[function.logical_id] = queue_url
            for event in function.s3_events:
                configuration: dict[str, Any] = {
                    "Id": event.name,
                    "QueueArn": queue_arn,
                    "Events": list(event.events),
                }
                if event.filter_rules:
                    rules = [{"Name": rule.name, "Value": rule.value} for rule in event.filter_rules]
                    configuration["Filter"] = {"Key": {"FilterRules": rules}}
                by_bucket.setdefault(event.bucket_logical_id, []).append(configuration)
        s3 = self.client("s3")
        for bucket_logical_id, configurations in by_bucket.items():
            ids = [c["Id"] for c in configurations]
            if len(set(ids)) != len(ids):
                # Ids must be unique per bucket; two functions may use the same event name.
                for index, configuration in enumerate(configurations):
                    configuration["Id"] = f"{configuration['Id']}-{index}"
            bucket = template.resources[bucket_logical_id].ref
            notification = cast("NotificationConfigurationTypeDef", {"QueueConfigurations": configurations})
            s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=notification)

    def _create_notification_queue(self, function: FunctionSpec) -> tuple[str, str]:
        name = _notification_queue_name(self.stack_name, function.logical_id)
        # Invisible while the runner works on it: every attempt may take the whole timeout.
        attempts = 1 + function.maximum_retry_attempts
        visibility = min(43200, (function.timeout_s + INIT_ALLOWANCE_S) * attempts + 30)
        physical = physical_resource(
            function.logical_id, QUEUE, name, region=self.region, sqs_endpoint=self.endpoint_url
        )
        resource = ResourceSpec(function.logical_id, QUEUE, physical, {}, frozenset())
        url = self._create_queue(resource, {"VisibilityTimeout": str(visibility)})
        return url, physical.attributes["Arn"]

    # -- cleanup

    def _delete(self, kind: str, identifier: str) -> None:
        if kind == "bucket":
            s3 = self.client("s3")
            s3.put_bucket_notification_configuration(Bucket=identifier, NotificationConfiguration={})
            # Listed in full before any is deleted: deleting page by page, the listing skips a page each time and
            # the bucket, not empty, cannot be deleted.
            objects = [
                {"Key": item["Key"], "VersionId": item["VersionId"]}
                for page in s3.get_paginator("list_object_versions").paginate(Bucket=identifier)
                for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
            ]
            for start in range(0, len(objects), 1000):
                chunk = cast("DeleteTypeDef", {"Objects": objects[start : start + 1000]})
                s3.delete_objects(Bucket=identifier, Delete=chunk)
            s3.delete_bucket(Bucket=identifier)
        elif kind == "table":
            release_table(identifier)
            self.throttles.pop(identifier, None)
            self.client("dynamodb").delete_table(TableName=identifier)
        elif kind == "queue":
            self.client("sqs").delete_queue(QueueUrl=identifier)
        elif kind == "secret":
            _shared_secrets.release(self.client("secretsmanager"), identifier)
        elif kind == "event-bus":
            events = self.client("events")
            for rule in events.list_rules(EventBusName=identifier).get("Rules", []):
                targets = events.list_targets_by_rule(Rule=rule["Name"], EventBusName=identifier).get("Targets", [])
                if targets:
                    ids = [target["Id"] for target in targets]
                    events.remove_targets(Rule=rule["Name"], EventBusName=identifier, Ids=ids)
                events.delete_rule(Name=rule["Name"], EventBusName=identifier)
            events.delete_event_bus(Name=identifier)
