"""Load a SAM template and resolve it into the small model the local stack and runner need.

Everything local knows about resources (names, settings, event sources) comes from here, so the
template stays the single source of truth.
"""

from __future__ import annotations

import logging
import re
import secrets
import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

logger = logging.getLogger(__name__)

ACCOUNT_ID: Final = "123456789012"
PARTITION: Final = "aws"

BUCKET: Final = "AWS::S3::Bucket"
TABLE: Final = "AWS::DynamoDB::Table"
QUEUE: Final = "AWS::SQS::Queue"
FUNCTION: Final = "AWS::Serverless::Function"
LAYER: Final = "AWS::Serverless::LayerVersion"

# Lambda's defaults for what a template may leave out.
DEFAULT_TIMEOUT_S: Final = 3
DEFAULT_MEMORY_MB: Final = 128
DEFAULT_MAXIMUM_RETRY_ATTEMPTS: Final = 2
DEFAULT_MAXIMUM_EVENT_AGE_S: Final = 21600
DEFAULT_SQS_BATCH_SIZE: Final = 10


class TemplateError(Exception):
    """The template cannot be loaded or resolved locally."""


class ParameterValidationError(TemplateError):
    """A parameter value breaks the constraints the template declares for it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"Parameter {parameter!r}: {message}")
        self.parameter = parameter


class UnsupportedIntrinsicError(TemplateError):
    """The template uses an intrinsic function the local resolver does not implement."""


# --------------------------------------------------------------------------------------------- loading

_SHORT_FORM_TAGS: Final = (
    "Base64",
    "Cidr",
    "FindInMap",
    "GetAZs",
    "ImportValue",
    "Join",
    "Select",
    "Split",
    "Sub",
    "Transform",
    "If",
    "Equals",
    "Not",
    "And",
    "Or",
    "Length",
    "ToJsonString",
)


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns CloudFormation short-form tags into their long forms."""


def _construct_node(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    raise yaml.constructor.ConstructorError(None, None, f"unexpected node {node!r}", node.start_mark)


def _function_constructor(key: str) -> Callable[[yaml.SafeLoader, yaml.Node], dict[str, Any]]:
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        return {key: _construct_node(loader, node)}

    return construct


def _construct_getatt(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
    value = _construct_node(loader, node)
    if isinstance(value, str):
        # "Resource.Attribute"; attribute names may themselves contain dots (Endpoint.Address).
        logical_id, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [logical_id, attribute]}
    return {"Fn::GetAtt": value}


_CfnLoader.add_constructor("!Ref", _function_constructor("Ref"))
_CfnLoader.add_constructor("!Condition", _function_constructor("Condition"))
_CfnLoader.add_constructor("!GetAtt", _construct_getatt)
for _tag in _SHORT_FORM_TAGS:
    _CfnLoader.add_constructor(f"!{_tag}", _function_constructor(f"Fn::{_tag}"))


def load_template(path: Path | str) -> dict[str, Any]:
    """Read a (SAM) CloudFormation template, short-form tags turned into long forms."""
    with Path(path).open(encoding="utf-8") as stream:
        document = yaml.load(stream, Loader=_CfnLoader)  # noqa: S506 -- a SafeLoader subclass
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError(f"{path}: not a CloudFormation template (no Resources mapping)")
    return document


# ------------------------------------------------------------------------------------------ parameters


def _scalar_str(value: Any) -> str:
    # CloudFormation hands every scalar to properties as a string; YAML booleans become "true"/"false".
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def resolve_parameters(
    template: Mapping[str, Any], overrides: Mapping[str, str] | None = None
) -> dict[str, str | list[str]]:
    """Template defaults plus overrides, each validated against the parameter's declared constraints."""
    declared: Mapping[str, Any] = template.get("Parameters") or {}
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise ParameterValidationError(unknown[0], "is not declared in the template's Parameters")
    values: dict[str, str | list[str]] = {}
    for name, spec in declared.items():
        if name in overrides:
            raw = _scalar_str(overrides[name])
        elif "Default" in spec:
            default = spec["Default"]
            raw = ",".join(map(_scalar_str, default)) if isinstance(default, list) else _scalar_str(default)
        else:
            raise ParameterValidationError(name, "has no Default and no value was given")
        values[name] = _validate_parameter(name, spec, raw)
    return values


def _validate_parameter(name: str, spec: Mapping[str, Any], raw: str) -> str | list[str]:
    kind = str(spec.get("Type", "String"))
    hint = f" ({spec['ConstraintDescription']})" if "ConstraintDescription" in spec else ""
    if kind.startswith("AWS::SSM::Parameter"):
        raise ParameterValidationError(name, f"type {kind} needs SSM and is not supported locally")
    is_list = kind == "CommaDelimitedList" or kind.startswith("List<")
    items = [item.strip() for item in raw.split(",")] if is_list else [raw]
    for item in items:
        if "AllowedValues" in spec:
            allowed = [_scalar_str(v) for v in spec["AllowedValues"]]
            if item not in allowed:
                raise ParameterValidationError(name, f"{item!r} is not one of the AllowedValues {allowed}{hint}")
        if "AllowedPattern" in spec and not re.fullmatch(str(spec["AllowedPattern"]), item):
            raise ParameterValidationError(
                name, f"{item!r} does not match the AllowedPattern {spec['AllowedPattern']!r}{hint}"
            )
        if "MinLength" in spec and len(item) < int(spec["MinLength"]):
            raise ParameterValidationError(name, f"{item!r} is shorter than MinLength {spec['MinLength']}{hint}")
        if "MaxLength" in spec and len(item) > int(spec["MaxLength"]):
            raise ParameterValidationError(name, f"{item!r} is longer than MaxLength {spec['MaxLength']}{hint}")
        if kind in ("Number", "List<Number>"):
            try:
                number = float(item)
            except ValueError:
                raise ParameterValidationError(name, f"{item!r} is not a Number{hint}") from None
            if "MinValue" in spec and number < float(spec["MinValue"]):
                raise ParameterValidationError(name, f"{item} is less than MinValue {spec['MinValue']}{hint}")
            if "MaxValue" in spec and number > float(spec["MaxValue"]):
                raise ParameterValidationError(name, f"{item} is greater than MaxValue {spec['MaxValue']}{hint}")
    return items if is_list else raw


# ---------------------------------------------------------------------------------- physical resources


@dataclass(frozen=True)
class PhysicalResource:
    """What Ref and Fn::GetAtt return for one resource."""

    logical_id: str
    resource_type: str
    ref: str
    attributes: Mapping[str, str] = field(default_factory=dict)


def _random_suffix(length: int = 12) -> str:
    return "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(length))


def _cfn_name(stack_name: str, logical_id: str, max_length: int) -> str:
    # CloudFormation's own scheme: <stack>-<LogicalId>-<RANDOM>, the front cut to fit.
    suffix = f"-{_random_suffix()}"
    return f"{stack_name}-{logical_id}"[: max_length - len(suffix)] + suffix


def physical_resource(
    logical_id: str, resource_type: str, name: str, *, region: str, sqs_endpoint: str
) -> PhysicalResource:
    """The Ref value and attributes of a resource with the given physical name."""
    arn_prefix = f"arn:{PARTITION}"
    if resource_type == BUCKET:
        attributes = {
            "Arn": f"{arn_prefix}:s3:::{name}",
            "DomainName": f"{name}.s3.amazonaws.com",
            "RegionalDomainName": f"{name}.s3.{region}.amazonaws.com",
        }
        return PhysicalResource(logical_id, resource_type, name, attributes)
    if resource_type == TABLE:
        attributes = {"Arn": f"{arn_prefix}:dynamodb:{region}:{ACCOUNT_ID}:table/{name}"}
        return PhysicalResource(logical_id, resource_type, name, attributes)
    if resource_type == QUEUE:
        url = f"{sqs_endpoint.rstrip('/')}/{ACCOUNT_ID}/{name}"
        attributes = {"Arn": f"{arn_prefix}:sqs:{region}:{ACCOUNT_ID}:{name}", "QueueName": name, "QueueUrl": url}
        return PhysicalResource(logical_id, resource_type, url, attributes)
    if resource_type in (FUNCTION, "AWS::Lambda::Function"):
        attributes = {"Arn": f"{arn_prefix}:lambda:{region}:{ACCOUNT_ID}:function:{name}"}
        return PhysicalResource(logical_id, resource_type, name, attributes)
    if resource_type in (LAYER, "AWS::Lambda::LayerVersion"):
        return PhysicalResource(logical_id, resource_type, f"{arn_prefix}:lambda:{region}:{ACCOUNT_ID}:layer:{name}:1")
    return PhysicalResource(logical_id, resource_type, name)


def _generated_name(resource_type: str, logical_id: str, properties: Mapping[str, Any], stack_name: str) -> str:
    if resource_type == BUCKET:
        suffix = f"-{_random_suffix().lower()}"
        return f"{stack_name}-{logical_id}".lower()[: 63 - len(suffix)] + suffix
    if resource_type == QUEUE:
        fifo = _as_bool(properties.get("FifoQueue", False))
        name = _cfn_name(stack_name, logical_id, 75 if fifo else 80)
        return f"{name}.fifo" if fifo else name
    if resource_type in (FUNCTION, "AWS::Lambda::Function"):
        return _cfn_name(stack_name, logical_id, 64)
    if resource_type in (LAYER, "AWS::Lambda::LayerVersion"):
        return logical_id  # SAM names a layer after its logical id
    return _cfn_name(stack_name, logical_id, 255)


_NAME_PROPERTY: Final = {
    BUCKET: "BucketName",
    TABLE: "TableName",
    QUEUE: "QueueName",
    FUNCTION: "FunctionName",
    "AWS::Lambda::Function": "FunctionName",
    LAYER: "LayerName",
    "AWS::Lambda::LayerVersion": "LayerName",
}


class _NotYetPlanned(TemplateError):
    def __init__(self, logical_id: str) -> None:
        super().__init__(f"resource {logical_id} is referenced before it has a physical name")
        self.logical_id = logical_id


def plan_physical_resources(
    template: Mapping[str, Any],
    *,
    stack_name: str,
    region: str,
    parameters: Mapping[str, str | list[str]],
    sqs_endpoint: str | None = None,
) -> dict[str, PhysicalResource]:
    """Name every resource: its name property if set, else a CloudFormation-style generated name."""
    sqs_endpoint = sqs_endpoint or f"https://sqs.{region}.amazonaws.com"
    planned: dict[str, PhysicalResource] = {}
    resolver = _Resolver(template, stack_name=stack_name, region=region, parameters=parameters, resources=planned)
    pending = [lid for lid, res in template["Resources"].items() if resolver.resource_enabled(lid, res)]
    # A name may reference another resource (rarely); plan in passes until nothing is left.
    while pending:
        deferred: list[str] = []
        for logical_id in pending:
            resource = template["Resources"][logical_id]
            kind = str(resource["Type"])
            properties = resource.get("Properties") or {}
            name_property = _NAME_PROPERTY.get(kind)
            try:
                explicit = resolver.resolve(properties[name_property]) if name_property in properties else None
            except _NotYetPlanned:
                deferred.append(logical_id)
                continue
            name = str(explicit) if explicit not in (None, _NO_VALUE) else None
            name = name or _generated_name(kind, logical_id, properties, stack_name)
            planned[logical_id] = physical_resource(logical_id, kind, name, region=region, sqs_endpoint=sqs_endpoint)
        if len(deferred) == len(pending):
            raise TemplateError(f"cannot name resources with circular name references: {sorted(deferred)}")
        pending = deferred
    return planned


# ---------------------------------------------------------------------------------------- intrinsics


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


_NO_VALUE: Final = _NoValue()
_SUB_VARIABLE: Final = re.compile(r"\$\{([^}]*)\}")
_SUPPORTED: Final = (
    "Ref, Fn::GetAtt, Fn::Sub, Fn::Join, Fn::Select, Fn::Split, Fn::If, Fn::Equals, "
    "Fn::Not, Fn::And, Fn::Or, Fn::Base64, Condition"
)


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise TemplateError(f"expected a boolean, got {value!r}")


def _intrinsic_name(node: Any) -> str | None:
    if isinstance(node, dict) and len(node) == 1:
        (key,) = node
        if key == "Ref" or key == "Condition" or str(key).startswith("Fn::"):
            return str(key)
    return None


class _Resolver:
    """Evaluates intrinsic functions against parameters, pseudo parameters, conditions and resources."""

    def __init__(
        self,
        template: Mapping[str, Any],
        *,
        stack_name: str,
        region: str,
        parameters: Mapping[str, str | list[str]],
        resources: Mapping[str, PhysicalResource],
    ) -> None:
        self._template = template
        self._parameters = parameters
        self._resources = resources
        self._pseudo: dict[str, Any] = {
            "AWS::StackName": stack_name,
            "AWS::Region": region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": PARTITION,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": f"arn:{PARTITION}:cloudformation:{region}:{ACCOUNT_ID}:stack/{stack_name}/local",
            "AWS::NoValue": _NO_VALUE,
        }
        self._conditions: dict[str, bool] = {}
        self._evaluating: set[str] = set()

    # conditions

    def condition(self, name: str) -> bool:
        if name in self._conditions:
            return self._conditions[name]
        declared = self._template.get("Conditions") or {}
        if name not in declared:
            raise TemplateError(f"condition {name!r} is not declared in Conditions")
        if name in self._evaluating:
            raise TemplateError(f"condition {name!r} refers to itself")
        self._evaluating.add(name)
        try:
            value = self.resolve(declared[name])
        finally:
            self._evaluating.discard(name)
        if not isinstance(value, bool):
            raise TemplateError(f"condition {name!r} does not evaluate to a boolean: {value!r}")
        self._conditions[name] = value
        return value

    def all_conditions(self) -> dict[str, bool]:
        return {name: self.condition(name) for name in self._template.get("Conditions") or {}}

    def resource_enabled(self, logical_id: str, resource: Mapping[str, Any]) -> bool:
        return "Condition" not in resource or self.condition(str(resource["Condition"]))

    # values

    def resolve(self, node: Any) -> Any:
        name = _intrinsic_name(node)
        if name is not None:
            return self._intrinsic(name, node[name])
        if isinstance(node, dict):
            resolved = {key: self.resolve(value) for key, value in node.items()}
            return {key: value for key, value in resolved.items() if value is not _NO_VALUE}
        if isinstance(node, list):
            return [item for item in (self.resolve(v) for v in node) if item is not _NO_VALUE]
        return node

    def _intrinsic(self, name: str, args: Any) -> Any:
        handler = self._handlers.get(name)
        if handler is None:
            raise UnsupportedIntrinsicError(f"{name} is not supported by the local resolver (supported: {_SUPPORTED})")
        return handler(self, args)

    def _ref(self, target: Any) -> Any:
        target = self.resolve(target)
        if not isinstance(target, str):
            raise TemplateError(f"Ref needs a name, got {target!r}")
        if target in self._pseudo:
            return self._pseudo[target]
        if target in self._parameters:
            return self._parameters[target]
        return self._resource(target).ref

    def _resource(self, logical_id: str) -> PhysicalResource:
        if logical_id in self._resources:
            return self._resources[logical_id]
        resource = (self._template.get("Resources") or {}).get(logical_id)
        if resource is None:
            raise TemplateError(f"{logical_id!r} is neither a parameter, a pseudo parameter nor a resource")
        if not self.resource_enabled(logical_id, resource):
            raise TemplateError(f"resource {logical_id!r} is referenced but its condition is false")
        raise _NotYetPlanned(logical_id)

    def _get_att(self, args: Any) -> str:
        args = self.resolve(args)
        if isinstance(args, str):
            args = args.split(".", 1)
        if not (isinstance(args, list) and len(args) == 2 and all(isinstance(a, str) for a in args)):
            raise TemplateError(f"Fn::GetAtt needs [LogicalId, Attribute], got {args!r}")
        resource = self._resource(args[0])
        if args[1] not in resource.attributes:
            raise TemplateError(
                f"Fn::GetAtt {args[0]}.{args[1]}: attribute not available locally for {resource.resource_type} "
                f"(known: {sorted(resource.attributes)})"
            )
        return resource.attributes[args[1]]

    def _sub(self, args: Any) -> str:
        if isinstance(args, list):
            if len(args) != 2 or not isinstance(args[1], dict):
                raise TemplateError(f"Fn::Sub needs a string or [string, {{variables}}], got {args!r}")
            text, variables = args[0], {k: self.resolve(v) for k, v in args[1].items()}
        else:
            text, variables = args, {}
        if not isinstance(text, str):
            raise TemplateError(f"Fn::Sub needs a string, got {text!r}")

        def substitute(match: re.Match[str]) -> str:
            expression = match.group(1)
            if expression.startswith("!"):
                return "${" + expression[1:] + "}"  # ${!Literal} stays literal
            if expression in variables:
                value = variables[expression]
            elif "." in expression and expression not in self._pseudo:
                value = self._get_att(expression.split(".", 1))
            else:
                value = self._ref(expression)
            if isinstance(value, (list, dict)) or value is _NO_VALUE:
                raise TemplateError(f"Fn::Sub variable ${{{expression}}} is not a string: {value!r}")
            return _scalar_str(value)

        return _SUB_VARIABLE.sub(substitute, text)

    def _join(self, args: Any) -> str:
        args = self.resolve(args)
        if not (isinstance(args, list) and len(args) == 2 and isinstance(args[1], list)):
            raise TemplateError(f"Fn::Join needs [delimiter, [values]], got {args!r}")
        return str(args[0]).join(_scalar_str(v) for v in args[1])

    def _select(self, args: Any) -> Any:
        args = self.resolve(args)
        if not (isinstance(args, list) and len(args) == 2 and isinstance(args[1], list)):
            raise TemplateError(f"Fn::Select needs [index, [values]], got {args!r}")
        index = int(args[0])
        if not 0 <= index < len(args[1]):
            raise TemplateError(f"Fn::Select index {index} is out of range for {args[1]!r}")
        return args[1][index]

    def _split(self, args: Any) -> list[str]:
        args = self.resolve(args)
        if not (isinstance(args, list) and len(args) == 2 and isinstance(args[1], str)):
            raise TemplateError(f"Fn::Split needs [delimiter, string], got {args!r}")
        return args[1].split(str(args[0]))

    def _if(self, args: Any) -> Any:
        if not (isinstance(args, list) and len(args) == 3):
            raise TemplateError(f"Fn::If needs [condition, value_if_true, value_if_false], got {args!r}")
        # Only the chosen branch is resolved, as CloudFormation does.
        return self.resolve(args[1] if self.condition(str(args[0])) else args[2])

    def _equals(self, args: Any) -> bool:
        args = self.resolve(args)
        if not (isinstance(args, list) and len(args) == 2):
            raise TemplateError(f"Fn::Equals needs two values, got {args!r}")
        left, right = (_scalar_str(a) if not isinstance(a, (list, dict)) else a for a in args)
        return bool(left == right)

    def _condition_list(self, name: str, args: Any) -> list[bool]:
        values = self.resolve(args)
        if not isinstance(values, list) or not all(isinstance(v, bool) for v in values):
            raise TemplateError(f"{name} needs a list of conditions, got {values!r}")
        return values

    def _not(self, args: Any) -> bool:
        values = self._condition_list("Fn::Not", args)
        if len(values) != 1:
            raise TemplateError(f"Fn::Not needs one condition, got {values!r}")
        return not values[0]

    def _and(self, args: Any) -> bool:
        return all(self._condition_list("Fn::And", args))

    def _or(self, args: Any) -> bool:
        return any(self._condition_list("Fn::Or", args))

    def _base64(self, args: Any) -> str:
        import base64

        return base64.b64encode(_scalar_str(self.resolve(args)).encode()).decode()

    _handlers: Final[dict[str, Callable[[_Resolver, Any], Any]]] = {
        "Ref": _ref,
        "Fn::GetAtt": _get_att,
        "Fn::Sub": _sub,
        "Fn::Join": _join,
        "Fn::Select": _select,
        "Fn::Split": _split,
        "Fn::If": _if,
        "Fn::Equals": _equals,
        "Fn::Not": _not,
        "Fn::And": _and,
        "Fn::Or": _or,
        "Fn::Base64": _base64,
        "Condition": lambda self, name: self.condition(str(name)),
    }


def _references(node: Any) -> set[str]:
    """Logical ids (or parameter names) a node refers to through Ref, Fn::GetAtt or Fn::Sub."""
    found: set[str] = set()
    name = _intrinsic_name(node)
    if name == "Ref" and isinstance(node[name], str):
        found.add(node[name])
    elif name == "Fn::GetAtt":
        target = node[name]
        if isinstance(target, str):
            found.add(target.split(".", 1)[0])
        elif isinstance(target, list) and target and isinstance(target[0], str):
            found.add(target[0])
    elif name == "Fn::Sub":
        text = node[name][0] if isinstance(node[name], list) else node[name]
        if isinstance(text, str):
            found.update(m.split(".", 1)[0] for m in _SUB_VARIABLE.findall(text) if not m.startswith("!"))
    if isinstance(node, dict):
        for value in node.values():
            found |= _references(value)
    elif isinstance(node, list):
        for item in node:
            found |= _references(item)
    return found


# ---------------------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class KeyFilterRule:
    """One S3 key filter rule: name is "prefix" or "suffix"."""

    name: str
    value: str


@dataclass(frozen=True)
class S3EventSource:
    """An S3 event of a function: which bucket, which events, which keys."""

    name: str
    bucket_logical_id: str
    events: tuple[str, ...]
    filter_rules: tuple[KeyFilterRule, ...]


@dataclass(frozen=True)
class SqsEventSource:
    """An SQS event source mapping of a function."""

    name: str
    queue_logical_id: str
    batch_size: int
    maximum_batching_window_s: float
    function_response_types: tuple[str, ...]
    maximum_concurrency: int | None
    enabled: bool = True

    @property
    def report_batch_item_failures(self) -> bool:
        return "ReportBatchItemFailures" in self.function_response_types


@dataclass(frozen=True)
class ScheduleEventSource:
    """A schedule of a function (SAM's Schedule or ScheduleV2). Locally nothing runs it by the clock: the runner
    delivers its event on demand (`LocalRunner.run_schedule`)."""

    name: str
    expression: str
    enabled: bool = True


@dataclass(frozen=True)
class FunctionSpec:
    """What it takes to run one AWS::Serverless::Function locally."""

    logical_id: str
    name: str
    arn: str
    code_uri: Path
    handler: str
    runtime: str
    timeout_s: int
    memory_mb: int
    tracing: str
    environment: Mapping[str, str]
    s3_events: tuple[S3EventSource, ...]
    sqs_events: tuple[SqsEventSource, ...]
    dead_letter_queue_logical_id: str | None
    maximum_retry_attempts: int
    maximum_event_age_s: int
    schedules: tuple[ScheduleEventSource, ...] = ()

    @property
    def handler_module(self) -> str:
        return self.handler.rsplit(".", 1)[0]

    @property
    def handler_function(self) -> str:
        return self.handler.rsplit(".", 1)[1]


@dataclass(frozen=True)
class ResourceSpec:
    """A resolved resource: its physical identity and, for buckets, tables and queues, its properties."""

    logical_id: str
    resource_type: str
    physical: PhysicalResource
    properties: Mapping[str, Any]
    depends_on: frozenset[str]

    @property
    def ref(self) -> str:
        return self.physical.ref

    def attribute(self, name: str) -> str:
        return self.physical.attributes[name]


@dataclass(frozen=True)
class ResolvedTemplate:
    """The template as the local stack sees it: every value resolved for one stack."""

    path: Path
    stack_name: str
    region: str
    account_id: str
    parameters: Mapping[str, str | list[str]]
    conditions: Mapping[str, bool]
    resources: Mapping[str, ResourceSpec]
    functions: Mapping[str, FunctionSpec]
    outputs: Mapping[str, str]

    def of_type(self, resource_type: str) -> list[ResourceSpec]:
        return [r for r in self.resources.values() if r.resource_type == resource_type]

    @property
    def buckets(self) -> list[ResourceSpec]:
        return self.of_type(BUCKET)

    @property
    def tables(self) -> list[ResourceSpec]:
        return self.of_type(TABLE)

    @property
    def queues(self) -> list[ResourceSpec]:
        return self.of_type(QUEUE)

    def function(self, logical_id: str) -> FunctionSpec:
        try:
            return self.functions[logical_id]
        except KeyError:
            raise KeyError(f"no function {logical_id!r} in {self.path} (have {sorted(self.functions)})") from None

    def creation_order(self, resource_types: Iterable[str]) -> list[ResourceSpec]:
        """Resources of these types, each after the ones it refers to (e.g. a DLQ before its source)."""
        wanted = {r.logical_id: r for r in self.resources.values() if r.resource_type in set(resource_types)}
        ordered: list[ResourceSpec] = []
        seen: set[str] = set()

        def visit(logical_id: str) -> None:
            if logical_id in seen:
                return
            seen.add(logical_id)
            for dependency in sorted(wanted[logical_id].depends_on & set(wanted)):
                visit(dependency)
            ordered.append(wanted[logical_id])

        for logical_id in wanted:
            visit(logical_id)
        return ordered


def _merge_globals(global_value: Any, own_value: Any) -> Any:
    # SAM's rules: maps merge (the function's keys win), lists concatenate, scalars are replaced.
    if isinstance(global_value, dict) and isinstance(own_value, dict):
        merged = dict(global_value)
        for key, value in own_value.items():
            merged[key] = _merge_globals(global_value[key], value) if key in global_value else value
        return merged
    if isinstance(global_value, list) and isinstance(own_value, list):
        return global_value + own_value
    return own_value


def function_properties(template: Mapping[str, Any], logical_id: str) -> dict[str, Any]:
    """A serverless function's Properties with Globals.Function merged in (unresolved)."""
    globals_ = (template.get("Globals") or {}).get("Function") or {}
    own = template["Resources"][logical_id].get("Properties") or {}
    merged = _merge_globals(globals_, own)
    assert isinstance(merged, dict)
    return merged


def resolve_template(
    template_path: Path | str,
    *,
    stack_name: str = "picsart-local",
    region: str = "us-east-1",
    parameter_overrides: Mapping[str, str] | None = None,
    physical: Mapping[str, PhysicalResource] | None = None,
    sqs_endpoint: str | None = None,
    document: Mapping[str, Any] | None = None,
) -> ResolvedTemplate:
    """Resolve a template for one stack.

    physical gives the names of resources that already exist; without it, names are planned here
    (queue URLs then use sqs_endpoint, by default the real SQS endpoint's shape). document is the
    already loaded template, to save reading it again.
    """
    path = Path(template_path).resolve()
    document = document if document is not None else load_template(path)
    parameters = resolve_parameters(document, parameter_overrides)
    if physical is None:
        physical = plan_physical_resources(
            document, stack_name=stack_name, region=region, parameters=parameters, sqs_endpoint=sqs_endpoint
        )
    resolver = _Resolver(document, stack_name=stack_name, region=region, parameters=parameters, resources=physical)
    resources: dict[str, ResourceSpec] = {}
    for logical_id, resource in document["Resources"].items():
        if not resolver.resource_enabled(logical_id, resource):
            continue
        kind = str(resource["Type"])
        raw_properties = resource.get("Properties") or {}
        # Only what gets created locally is resolved in full; the rest (policies, layers) may use
        # intrinsics that only mean something in the cloud.
        properties = resolver.resolve(raw_properties) if kind in (BUCKET, TABLE, QUEUE) else {}
        depends = resource.get("DependsOn") or []
        depends_on = _references(raw_properties) | set([depends] if isinstance(depends, str) else depends)
        resources[logical_id] = ResourceSpec(
            logical_id, kind, physical[logical_id], properties, frozenset(depends_on & set(document["Resources"]))
        )
    functions = {
        logical_id: _function_spec(document, logical_id, path.parent, resolver, resources)
        for logical_id, spec in resources.items()
        if spec.resource_type == FUNCTION
    }
    outputs: dict[str, str] = {}
    for name, output in (document.get("Outputs") or {}).items():
        if "Condition" in output and not resolver.condition(str(output["Condition"])):
            continue
        value = resolver.resolve(output["Value"])
        outputs[name] = ",".join(map(_scalar_str, value)) if isinstance(value, list) else _scalar_str(value)
    return ResolvedTemplate(
        path=path,
        stack_name=stack_name,
        region=region,
        account_id=ACCOUNT_ID,
        parameters=parameters,
        conditions=resolver.all_conditions(),
        resources=resources,
        functions=functions,
        outputs=outputs,
    )


def _lookup(resources: Mapping[str, ResourceSpec], kind: str, attribute: str | None, value: Any, what: str) -> str:
    for spec in resources.values():
        if (
            spec.resource_type == kind
            and (spec.ref if attribute is None else spec.physical.attributes.get(attribute)) == value
        ):
            return spec.logical_id
    raise TemplateError(f"{what} {value!r} is not a {kind} of this template")


def _function_spec(
    template: Mapping[str, Any],
    logical_id: str,
    template_dir: Path,
    resolver: _Resolver,
    resources: Mapping[str, ResourceSpec],
) -> FunctionSpec:
    properties = function_properties(template, logical_id)
    where = f"{logical_id}:"

    def prop(name: str, default: Any = None) -> Any:
        return resolver.resolve(properties[name]) if name in properties else default

    code_uri = prop("CodeUri")
    if not isinstance(code_uri, str):
        raise TemplateError(f"{where} CodeUri must be a local directory to run locally, got {code_uri!r}")
    handler = prop("Handler")
    if not isinstance(handler, str) or "." not in handler:
        raise TemplateError(f"{where} Handler must be 'module.function', got {handler!r}")

    variables = prop("Environment", {}).get("Variables") or {}
    environment: dict[str, str] = {}
    for key, value in variables.items():
        if isinstance(value, (list, dict)):
            raise TemplateError(f"{where} environment variable {key} resolves to a non-scalar {value!r}")
        environment[str(key)] = _scalar_str(value)

    s3_events: list[S3EventSource] = []
    sqs_events: list[SqsEventSource] = []
    schedules: list[ScheduleEventSource] = []
    for event_name, event in (properties.get("Events") or {}).items():
        kind = event.get("Type")
        event_properties = resolver.resolve(event.get("Properties") or {})
        if kind == "S3":
            bucket = _lookup(
                resources, BUCKET, None, event_properties.get("Bucket"), f"{where} S3 event {event_name} Bucket"
            )
            events = event_properties.get("Events")
            rules = ((event_properties.get("Filter") or {}).get("S3Key") or {}).get("Rules") or []
            s3_events.append(
                S3EventSource(
                    name=event_name,
                    bucket_logical_id=bucket,
                    events=tuple([events] if isinstance(events, str) else events or ()),
                    filter_rules=tuple(KeyFilterRule(str(r["Name"]), str(r["Value"])) for r in rules),
                )
            )
        elif kind == "SQS":
            queue = _lookup(
                resources, QUEUE, "Arn", event_properties.get("Queue"), f"{where} SQS event {event_name} Queue"
            )
            if "FilterCriteria" in event_properties:
                logger.warning("%s SQS event %s: FilterCriteria is not applied locally", logical_id, event_name)
            scaling = event_properties.get("ScalingConfig") or {}
            types = event_properties.get("FunctionResponseTypes") or []
            sqs_events.append(
                SqsEventSource(
                    name=event_name,
                    queue_logical_id=queue,
                    batch_size=int(event_properties.get("BatchSize", DEFAULT_SQS_BATCH_SIZE)),
                    maximum_batching_window_s=float(event_properties.get("MaximumBatchingWindowInSeconds", 0)),
                    function_response_types=tuple(str(t) for t in types),
                    maximum_concurrency=(
                        int(scaling["MaximumConcurrency"]) if "MaximumConcurrency" in scaling else None
                    ),
                    enabled=_as_bool(event_properties.get("Enabled", True)),
                )
            )
        elif kind in ("Schedule", "ScheduleV2"):
            expression = event_properties.get("Schedule", event_properties.get("ScheduleExpression"))
            enabled = event_properties.get("Enabled", event_properties.get("State", True) != "DISABLED")
            schedules.append(ScheduleEventSource(event_name, str(expression), enabled=_as_bool(enabled)))
        else:
            logger.warning("%s event %s of type %s has no local event source", logical_id, event_name, kind)

    dead_letter = prop("DeadLetterQueue")
    dead_letter_queue: str | None = None
    if dead_letter:
        if dead_letter.get("Type") != "SQS":
            raise TemplateError(f"{where} DeadLetterQueue Type {dead_letter.get('Type')!r}: only SQS runs locally")
        dead_letter_queue = _lookup(resources, QUEUE, "Arn", dead_letter.get("TargetArn"), f"{where} DeadLetterQueue")

    invoke_config = prop("EventInvokeConfig", {})
    function = resources[logical_id].physical
    return FunctionSpec(
        logical_id=logical_id,
        name=function.ref,
        arn=function.attributes["Arn"],
        code_uri=(template_dir / code_uri).resolve(),
        handler=handler,
        runtime=str(prop("Runtime", "python3.13")),
        timeout_s=int(prop("Timeout", DEFAULT_TIMEOUT_S)),
        memory_mb=int(prop("MemorySize", DEFAULT_MEMORY_MB)),
        tracing=str(prop("Tracing", "PassThrough")),
        environment=environment,
        s3_events=tuple(s3_events),
        sqs_events=tuple(sqs_events),
        dead_letter_queue_logical_id=dead_letter_queue,
        maximum_retry_attempts=int(invoke_config.get("MaximumRetryAttempts", DEFAULT_MAXIMUM_RETRY_ATTEMPTS)),
        maximum_event_age_s=int(invoke_config.get("MaximumEventAgeInSeconds", DEFAULT_MAXIMUM_EVENT_AGE_S)),
        schedules=tuple(schedules),
    )
