"""moto's server, with its CloudFormation completed for the pipeline's template.

Usage: .venv/bin/python tests/moto/server.py [-H HOST] [-p PORT] [moto_server's other options]

Starts exactly what `moto_server` starts (same options, same MOTO_PORT handling: this calls
moto.server.main), after patching moto 5.2.5 so that `aws cloudformation create-stack` of the
translated SAM template (infra/translate.py) deploys all of it, or fails saying why:

1. A resource type moto's CloudFormation does not know fails the stack, naming the type; moto
   skips it with a warning, and every Ref to it silently vanishes from the Lambdas' environment.
2. A resource that cannot be created fails the stack (CREATE_FAILED, with the resource's logical
   ID and reason in describe-stack-events); moto lets the exception escape and leaves the stack
   CREATE_IN_PROGRESS. moto does not roll back: what was created stays, as with
   `--disable-rollback`.
3. Fn::GetAtt of an attribute moto does not implement fails; moto logs it and leaves the
   unresolved Fn::GetAtt object in the property.
4. AWS::StepFunctions::StateMachine: the definition comes from DefinitionString,
   DefinitionS3Location or Definition, DefinitionSubstitutions are applied (a placeholder without
   one fails), the machine is made in the store Step Functions' API reads (execute mode keeps a
   separate one), and Fn::GetAtt Arn works.
5. Models for AWS::SecretsManager::Secret, AWS::Scheduler::Schedule,
   AWS::CloudFront::Distribution, AWS::CloudFront::Function, AWS::CloudFront::OriginAccessControl,
   AWS::S3::BucketPolicy and AWS::SNS::Subscription, each made on moto's own backend of that
   service.
6. AWS::S3::Bucket applies PublicAccessBlockConfiguration, VersioningConfiguration and
   LifecycleConfiguration; AWS::Lambda::Function keeps Architectures (moto ignores them) and
   gets its environment values as strings (moto passes a Number parameter on as a number).
7. Step Functions' SendTaskFailure keeps its `cause` (moto's API layer passes on only the
   error, so a rejected release would fail without the operator's reason).
8. An EC2 instance tagged LocalStackInterruption=spot is terminated with the state reason EC2
   gives a spot instance it reclaimed (Server.SpotInstanceTermination) instead of moto's
   Client.UserInitiatedShutdown: the local worker tags an instance so to simulate an
   interruption (tests/src/worker.rs), and hhvm-get-instances-state reports it as interrupted.
9. Step Functions' GetExecutionHistory pages as AWS's does (maxResults, default 100 and at most
   1000; reverseOrder; nextToken); moto answers the whole history, oldest first, every time.
   `hhvmctl`'s watch and the tests' followers read only the events after the last one they
   saw, newest first; against moto's answer each refresh made moto serialize every growing
   history again, most of moto's work in a test run.

Each patch depends on moto's internals: the version is pinned (bin/requirements.txt) and checked
below, and every internal used is checked before anything is patched, so a moto upgrade fails
here, loudly, instead of deploying something else.
"""

import datetime
import inspect
import json
import re
import sys

import moto

EXPECTED_MOTO = "5.2.5"
if moto.__version__ != EXPECTED_MOTO:
    sys.exit(
        f"tests/moto/server.py patches moto {EXPECTED_MOTO}'s internals, but moto "
        f"{moto.__version__} is installed: pin moto[server]=={EXPECTED_MOTO} "
        "(bin/requirements.txt) or port the patches"
    )

from moto.awslambda.models import LambdaFunction  # noqa: E402
from moto.cloudformation import models as cf_models  # noqa: E402
from moto.cloudformation import parsing  # noqa: E402
from moto.cloudformation.exceptions import (  # noqa: E402
    UnformattedGetAttTemplateException,
    ValidationError,
)
from moto.cloudfront.models import CloudFrontBackend, cloudfront_backends  # noqa: E402
from moto.core.common_models import CloudFormationModel  # noqa: E402
from moto.s3.models import FakeBucket, S3Backend, s3_backends  # noqa: E402
from moto.scheduler.models import EventBridgeSchedulerBackend, scheduler_backends  # noqa: E402
from moto.secretsmanager.models import SecretsManagerBackend, secretsmanager_backends  # noqa: E402
from moto.sns.models import SNSBackend, sns_backends  # noqa: E402
from moto.stepfunctions import responses as sfn_responses  # noqa: E402
from moto.stepfunctions.models import StateMachine  # noqa: E402
from moto.stepfunctions.utils import cfn_to_api_tags  # noqa: E402
from moto.utilities.utils import get_partition  # noqa: E402


def expect(condition, what):
    if not condition:
        sys.exit(f"tests/moto/server.py: moto {moto.__version__} is not as expected: {what}")


def parameters(function):
    return list(inspect.signature(function).parameters)


expect(
    parameters(parsing.parse_and_create_resource)
    == ["logical_id", "resource_json", "resources_map", "account_id", "region_name"],
    "parsing.parse_and_create_resource(logical_id, resource_json, resources_map, account_id, region_name)",
)
expect(
    parameters(parsing.resource_class_from_type) == ["resource_type"]
    and isinstance(parsing.NULL_MODELS, list),
    "parsing.resource_class_from_type(resource_type) and parsing.NULL_MODELS",
)
expect(
    parameters(parsing.clean_json) == ["resource_json", "resources_map"],
    "parsing.clean_json(resource_json, resources_map)",
)
for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
    expect(hasattr(cached, "cache_clear"), f"parsing.{cached.__name__} is an lru_cache")
expect(
    parameters(cf_models.CloudFormationBackend.create_stack)[:2] == ["self", "name"],
    "CloudFormationBackend.create_stack(self, name, ...)",
)
expect(
    isinstance(inspect.getattr_static(cf_models.Stack, "stack_resources"), property)
    and parameters(parsing.OutputMap) == ["resources", "template", "stack_id"],
    "Stack.stack_resources is a property; OutputMap(resources, template, stack_id)",
)
expect(
    parameters(cf_models.Event)
    == [
        "stack_id",
        "stack_name",
        "logical_resource_id",
        "physical_resource_id",
        "resource_type",
        "resource_status",
        "resource_status_reason",
        "resource_properties",
    ],
    "cloudformation.models.Event(stack_id, stack_name, logical_resource_id, ...)",
)
expect(
    parameters(sfn_responses.get_backend) == ["account", "region"],
    "stepfunctions.responses.get_backend(account, region) picks the execute-mode store",
)
expect(
    "sm_type" in parameters(StateMachine.__init__),
    "stepfunctions StateMachine(..., sm_type)",
)
expect(
    all(
        hasattr(S3Backend, method)
        for method in (
            "put_bucket_policy",
            "delete_bucket_policy",
            "put_public_access_block",
            "put_bucket_versioning",
            "put_bucket_lifecycle",
        )
    ),
    "S3Backend.put_bucket_policy/put_public_access_block/put_bucket_versioning/put_bucket_lifecycle",
)
expect(
    "secret_string" in parameters(SecretsManagerBackend.create_secret)
    and "target" in parameters(EventBridgeSchedulerBackend.create_schedule)
    and "distribution_config" in parameters(CloudFrontBackend.create_distribution)
    and "config_dict" in parameters(CloudFrontBackend.create_origin_access_control)
    and parameters(CloudFrontBackend.create_function) == ["self", "name", "function_config", "function_code", "tags"]
    and parameters(SNSBackend.subscribe) == ["self", "topic_arn", "endpoint", "protocol"],
    "the create methods of the secretsmanager, scheduler, cloudfront and sns backends",
)


# --- 1. Unknown resource types fail ----------------------------------------------------------


class UnsupportedResourceType(ValidationError):
    def __init__(self, resource_type):
        super().__init__(
            message=f"Resource type {resource_type} is not supported by moto's CloudFormation "
            "(nor by tests/moto/server.py's additions to it)"
        )


original_resource_class_from_type = parsing.resource_class_from_type


def resource_class_from_type(resource_type):
    resource_class = original_resource_class_from_type(resource_type)
    # NULL_MODELS (wait conditions) are no-ops on purpose; anything else without a model fails.
    if resource_class is None and resource_type not in parsing.NULL_MODELS:
        raise UnsupportedResourceType(resource_type)
    return resource_class


parsing.resource_class_from_type = resource_class_from_type


# --- 2. A resource that fails fails the stack ------------------------------------------------


class ResourceCreationFailed(ValidationError):
    """Carries the first resource that failed out of moto's lazy, recursive creation."""

    def __init__(self, logical_id, resource_type, reason):
        self.logical_id = logical_id
        self.resource_type = resource_type
        self.reason = reason
        super().__init__(message=f"{logical_id} ({resource_type}): {reason}")


class TemplateError(Exception):
    """What this file finds wrong with a resource; its message is the whole reason."""


def describe_error(error):
    if isinstance(error, TemplateError):
        return str(error)
    # moto's errors carry a `code` (ServiceException) or an `error_type` (RESTError, whose
    # `code` is the HTTP status) and a `message`; str() of a RESTError is an HTTP status line.
    message = getattr(error, "message", None) or str(error)
    code = next(
        (c for c in (getattr(error, "code", None), getattr(error, "error_type", None)) if isinstance(c, str)),
        type(error).__name__,
    )
    return f"{code}: {message}"


original_parse_and_create_resource = parsing.parse_and_create_resource


def parse_and_create_resource(logical_id, resource_json, resources_map, account_id, region_name):
    try:
        return original_parse_and_create_resource(
            logical_id, resource_json, resources_map, account_id, region_name
        )
    except ResourceCreationFailed:
        raise  # a resource this one refers to failed: report that one
    except Exception as error:
        raise ResourceCreationFailed(
            logical_id, resource_json.get("Type", "?"), describe_error(error)
        ) from error


parsing.parse_and_create_resource = parse_and_create_resource

original_create_stack = cf_models.CloudFormationBackend.create_stack


def create_stack(self, name, *args, **kwargs):
    # Resources are created inside create_stack (also while it computes exports), so the
    # failure is caught around all of it, once the stack exists.
    try:
        return original_create_stack(self, name, *args, **kwargs)
    except ResourceCreationFailed as failure:
        stack = next((s for s in self.stacks.values() if s.name == name), None)
        if stack is None:
            raise
        stack.events.append(
            cf_models.Event(
                stack_id=stack.stack_id,
                stack_name=stack.name,
                logical_resource_id=failure.logical_id,
                physical_resource_id="",
                resource_type=failure.resource_type,
                resource_status="CREATE_FAILED",
                resource_status_reason=failure.reason,
                resource_properties=None,
            )
        )
        stack.status = "CREATE_FAILED"
        stack._add_stack_event(
            "CREATE_FAILED",
            resource_status_reason=f"The following resource(s) failed to create: [{failure.logical_id}].",
        )
        # Outputs are computed lazily from resources, and would try to create them again.
        stack.output_map = parsing.OutputMap(stack.resource_map, {"Outputs": {}}, stack.stack_id)
        return stack


cf_models.CloudFormationBackend.create_stack = create_stack


def created_resources(self):
    # moto's version iterates the lazy resource map, which creates what does not exist yet
    # (again, after a failure) and yields None for resources whose Condition is false.
    created = self.resource_map._parsed_resources
    return [
        created[logical_id]
        for logical_id in self.resource_map._resource_json_map
        if created.get(logical_id) is not None
    ]


cf_models.Stack.stack_resources = property(created_resources)


# --- 3. Fn::GetAtt of an attribute moto lacks fails ------------------------------------------

original_clean_json = parsing.clean_json


def clean_json(resource_json, resources_map):
    getatt = resource_json.get("Fn::GetAtt") if isinstance(resource_json, dict) else None
    # The same precedence as moto's clean_json: Ref and Fn::FindInMap are looked at first.
    if (
        isinstance(getatt, list)
        and len(getatt) == 2
        and "Ref" not in resource_json
        and "Fn::FindInMap" not in resource_json
    ):
        logical_id, attribute = getatt
        resource = resources_map.get(logical_id)
        if resource is not None and hasattr(resource, "get_cfn_attribute"):
            try:
                return resource.get_cfn_attribute(attribute)
            except (NotImplementedError, UnformattedGetAttTemplateException):
                raise ValidationError(
                    message=f"Fn::GetAtt {logical_id}.{attribute}: "
                    f"{getattr(resource, 'cf_resource_type', type(resource).__name__)} "
                    "has no such attribute in moto"
                )
    return original_clean_json(resource_json, resources_map)


parsing.clean_json = clean_json


# --- 4. State machines -----------------------------------------------------------------------

# The names the project uses (tests/src/machines.rs reads them the same way).
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


def substitution_text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def state_machine_definition(properties, machine, account_id, region_name):
    """The definition text with DefinitionSubstitutions applied, as CloudFormation makes it."""
    if "DefinitionString" in properties:
        # Intrinsics in it (a Fn::Join of lines, a Fn::Sub) were resolved by moto's parser.
        text = properties["DefinitionString"]
    elif "DefinitionS3Location" in properties:
        location = properties["DefinitionS3Location"]
        backend = s3_backends[account_id][get_partition(region_name)]
        key = backend.get_object(location["Bucket"], location["Key"], version_id=location.get("Version"))
        if key is None:
            raise TemplateError(f"state machine {machine}: no object s3://{location['Bucket']}/{location['Key']}")
        text = key.value.decode("utf-8")
    elif "Definition" in properties:
        # moto's parser has already dropped null values from this object (`"ResultPath": null`
        # would be lost): DefinitionString, which infra/translate.py writes, keeps them.
        text = json.dumps(properties["Definition"])
    else:
        raise TemplateError(f"state machine {machine} has no DefinitionString, DefinitionS3Location or Definition")
    substitutions = properties.get("DefinitionSubstitutions") or {}
    missing = sorted({name for name in PLACEHOLDER.findall(text) if name not in substitutions})
    if missing:
        raise TemplateError(
            f"state machine {machine}: its definition uses "
            f"{', '.join('${' + name + '}' for name in missing)} but DefinitionSubstitutions "
            f"has no such key (it has: {', '.join(sorted(substitutions)) or 'none'})"
        )
    return PLACEHOLDER.sub(lambda match: substitution_text(substitutions[match.group(1)]), text)


def create_state_machine(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    properties = cloudformation_json["Properties"]
    name = properties.get("StateMachineName", resource_name)
    definition = state_machine_definition(
        properties, f"{kwargs.get('LogicalId', name)} ({name})", account_id, region_name
    )
    # The store StartExecution/DescribeStateMachine read: execute mode's when it is on.
    backend = sfn_responses.get_backend(account_id, region_name)
    return backend.create_state_machine(
        name,
        definition,
        properties.get("RoleArn", ""),
        tags=cfn_to_api_tags(properties.get("Tags", [])),
        loggingConfiguration=properties.get("LoggingConfiguration"),
        tracingConfiguration=properties.get("TracingConfiguration"),
        sm_type=properties.get("StateMachineType"),
    )


def delete_state_machine(cls, resource_name, cloudformation_json, account_id, region_name):
    sfn_responses.get_backend(account_id, region_name).delete_state_machine(resource_name)


def update_state_machine(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name):
    properties = cloudformation_json.get("Properties", {})
    name = properties.get("StateMachineName", original_resource.name)
    if name != original_resource.name:
        replacement = create_state_machine(cls, name, cloudformation_json, account_id, region_name)
        delete_state_machine(cls, original_resource.arn, cloudformation_json, account_id, region_name)
        return replacement
    definition = state_machine_definition(properties, name, account_id, region_name)
    backend = sfn_responses.get_backend(account_id, region_name)
    return backend.update_state_machine(
        original_resource.arn, definition=definition, role_arn=properties.get("RoleArn")
    )


original_state_machine_attribute = StateMachine.get_cfn_attribute
original_state_machine_has_attribute = StateMachine.has_cfn_attr.__func__


def state_machine_attribute(self, attribute_name):
    if attribute_name == "Arn":
        return self.arn
    return original_state_machine_attribute(self, attribute_name)


StateMachine.create_from_cloudformation_json = classmethod(create_state_machine)
StateMachine.delete_from_cloudformation_json = classmethod(delete_state_machine)
StateMachine.update_from_cloudformation_json = classmethod(update_state_machine)
StateMachine.get_cfn_attribute = state_machine_attribute
StateMachine.has_cfn_attr = classmethod(
    lambda cls, attr: attr == "Arn" or original_state_machine_has_attribute(cls, attr)
)


# --- 5. Models for the types moto lacks ------------------------------------------------------

# moto files every model class under the service named by its module's second component
# (moto.<service>.models); this file's module is __main__, so each class states one.
MODULE = "moto.cloudformation.server_patch"


class Resource:
    """What the models below share: the properties they understand (any other fails, rather
    than being ignored), what Ref returns, and the attributes Fn::GetAtt can read."""

    TYPE = ""
    NAME_PROPERTY = ""
    PROPERTIES = ()
    ATTRIBUTES = ()

    def __init__(self, ref, **attributes):
        self.ref = ref
        self.attributes = attributes

    @classmethod
    def cloudformation_type(cls):
        return cls.TYPE

    @classmethod
    def cloudformation_name_type(cls):
        return cls.NAME_PROPERTY

    @classmethod
    def has_cfn_attr(cls, attr):
        return attr in cls.ATTRIBUTES

    @classmethod
    def properties_of(cls, cloudformation_json, logical_id):
        properties = cloudformation_json.get("Properties") or {}
        unknown = sorted(set(properties) - set(cls.PROPERTIES))
        if unknown:
            raise TemplateError(
                f"{logical_id} ({cls.TYPE}): tests/moto/server.py does not implement "
                f"{', '.join(unknown)} (it implements {', '.join(cls.PROPERTIES)})"
            )
        return properties

    def get_cfn_attribute(self, attribute_name):
        if attribute_name in self.attributes:
            return self.attributes[attribute_name]
        raise UnformattedGetAttTemplateException()

    @property
    def physical_resource_id(self):
        return self.ref

    def is_created(self):
        return True


class Secret(Resource, CloudFormationModel):
    __module__ = MODULE
    TYPE = "AWS::SecretsManager::Secret"
    NAME_PROPERTY = "Name"
    PROPERTIES = ("Name", "Description", "SecretString", "KmsKeyId", "Tags")
    ATTRIBUTES = ("Id",)

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = cls.properties_of(cloudformation_json, kwargs.get("LogicalId"))
        # No SecretString: a secret without a value, which an operator sets after the deploy.
        created = secretsmanager_backends[account_id][region_name].create_secret(
            name=resource_name,
            secret_string=properties.get("SecretString"),
            secret_binary=None,
            description=properties.get("Description"),
            tags=properties.get("Tags"),
            kms_key_id=properties.get("KmsKeyId"),
            client_request_token=None,
            replica_regions=[],
            force_overwrite=False,
        )
        arn = json.loads(created)["ARN"]
        return cls(arn, Id=arn)

    @classmethod
    def delete_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name):
        secretsmanager_backends[account_id][region_name].delete_secret(
            resource_name, recovery_window_in_days=None, force_delete_without_recovery=True
        )


def epoch_seconds(timestamp):
    # CloudFormation takes ISO 8601 dates; moto's scheduler compares epoch seconds.
    if timestamp is None:
        return None
    return datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


class Schedule(Resource, CloudFormationModel):
    __module__ = MODULE
    TYPE = "AWS::Scheduler::Schedule"
    NAME_PROPERTY = "Name"
    PROPERTIES = (
        "Name",
        "GroupName",
        "Description",
        "ScheduleExpression",
        "ScheduleExpressionTimezone",
        "FlexibleTimeWindow",
        "Target",
        "State",
        "KmsKeyArn",
        "StartDate",
        "EndDate",
    )
    ATTRIBUTES = ("Arn",)

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = cls.properties_of(cloudformation_json, kwargs.get("LogicalId"))
        schedule = scheduler_backends[account_id][region_name].create_schedule(
            description=properties.get("Description"),
            end_date=epoch_seconds(properties.get("EndDate")),
            flexible_time_window=properties["FlexibleTimeWindow"],
            group_name=properties.get("GroupName"),
            kms_key_arn=properties.get("KmsKeyArn"),
            name=resource_name,
            schedule_expression=properties["ScheduleExpression"],
            schedule_expression_timezone=properties.get("ScheduleExpressionTimezone"),
            start_date=epoch_seconds(properties.get("StartDate")),
            state=properties.get("State"),
            target=properties["Target"],
            action_after_completion=None,
        )
        resource = cls(schedule.name, Arn=schedule.arn)
        resource.group_name = schedule.group_name
        return resource

    def delete(self, account_id, region_name):
        scheduler_backends[account_id][region_name].delete_schedule(self.group_name, self.ref)


def api_list(items, convert=lambda item: item):
    """A CloudFormation list as CloudFront's API shapes it."""
    return {"Quantity": len(items), "Items": [convert(item) for item in items]}


def cache_behavior(cfn):
    behavior = dict(cfn)
    allowed = behavior.pop("AllowedMethods", ["GET", "HEAD"])
    cached = behavior.pop("CachedMethods", ["GET", "HEAD"])
    behavior["AllowedMethods"] = dict(api_list(allowed), CachedMethods=api_list(cached))
    for key in ("TrustedSigners", "TrustedKeyGroups", "LambdaFunctionAssociations", "FunctionAssociations"):
        if key in behavior:
            behavior[key] = api_list(behavior[key])
    return behavior


def origin(cfn):
    converted = dict(cfn)
    if "S3OriginConfig" in converted:
        # With an origin access control the identity is empty; moto requires the key.
        converted["S3OriginConfig"] = {"OriginAccessIdentity": "", **converted["S3OriginConfig"]}
    if "CustomOriginConfig" in converted:
        custom = dict(converted["CustomOriginConfig"])
        if "OriginSSLProtocols" in custom:
            custom["OriginSslProtocols"] = api_list(custom.pop("OriginSSLProtocols"))
        converted["CustomOriginConfig"] = custom
    if "OriginCustomHeaders" in converted:
        converted["CustomHeaders"] = api_list(converted.pop("OriginCustomHeaders"))
    return converted


def distribution_config(cfn, caller_reference):
    """CloudFormation's DistributionConfig in the shape of CloudFront's API (and moto's model)."""
    config = dict(cfn)
    config["CallerReference"] = caller_reference
    config["Origins"] = api_list(config.get("Origins", []), origin)
    config["DefaultCacheBehavior"] = cache_behavior(config["DefaultCacheBehavior"])
    if "CacheBehaviors" in config:
        config["CacheBehaviors"] = api_list(config["CacheBehaviors"], cache_behavior)
    for key in ("Aliases", "CustomErrorResponses"):
        if key in config:
            config[key] = api_list(config[key])
    if "IPV6Enabled" in config:
        config["IsIPV6Enabled"] = config.pop("IPV6Enabled")
    if "ViewerCertificate" in config:
        certificate = dict(config["ViewerCertificate"])
        for cfn_key, api_key in (("AcmCertificateArn", "ACMCertificateArn"), ("IamCertificateId", "IAMCertificateId")):
            if cfn_key in certificate:
                certificate[api_key] = certificate.pop(cfn_key)
        config["ViewerCertificate"] = certificate
    geo = config.get("Restrictions", {}).get("GeoRestriction")
    if geo is not None:
        locations = geo.get("Locations", [])
        config["Restrictions"] = {
            "GeoRestriction": {
                "RestrictionType": geo["RestrictionType"],
                "Quantity": len(locations),
                "Items": locations,
            }
        }
    return config


class Distribution(Resource, CloudFormationModel):
    __module__ = MODULE
    TYPE = "AWS::CloudFront::Distribution"
    PROPERTIES = ("DistributionConfig", "Tags")
    ATTRIBUTES = ("DomainName", "Id")

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = cls.properties_of(cloudformation_json, kwargs.get("LogicalId"))
        backend = cloudfront_backends[account_id][get_partition(region_name)]
        distribution, _, _ = backend.create_distribution(
            distribution_config=distribution_config(
                properties["DistributionConfig"], f"{kwargs.get('StackId')}/{kwargs.get('LogicalId')}"
            ),
            tags=properties.get("Tags", []),
        )
        return cls(distribution.id, DomainName=distribution.domain_name, Id=distribution.id)


class CloudFrontFunction(Resource, CloudFormationModel):
    __module__ = MODULE
    TYPE = "AWS::CloudFront::Function"
    NAME_PROPERTY = "Name"
    PROPERTIES = ("Name", "AutoPublish", "FunctionConfig", "FunctionCode")
    ATTRIBUTES = ("FunctionARN", "FunctionMetadata.FunctionARN", "Stage")

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = cls.properties_of(cloudformation_json, kwargs.get("LogicalId"))
        config = dict(properties["FunctionConfig"])
        if "KeyValueStoreAssociations" in config:
            config["KeyValueStoreAssociations"] = api_list(config["KeyValueStoreAssociations"])
        backend = cloudfront_backends[account_id][get_partition(region_name)]
        function = backend.create_function(resource_name, config, properties["FunctionCode"].encode("utf-8"), [])
        if properties.get("AutoPublish"):
            # moto has no PublishFunction; a published function's code is in its LIVE stage.
            function.stage = "LIVE"
        attributes = {
            "FunctionARN": function.arn,
            "FunctionMetadata.FunctionARN": function.arn,
            "Stage": function.stage,
        }
        return cls(function.arn, **attributes)


class OriginAccessControl(Resource, CloudFormationModel):
    __module__ = MODULE
    TYPE = "AWS::CloudFront::OriginAccessControl"
    PROPERTIES = ("OriginAccessControlConfig",)
    ATTRIBUTES = ("Id",)

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = cls.properties_of(cloudformation_json, kwargs.get("LogicalId"))
        backend = cloudfront_backends[account_id][get_partition(region_name)]
        control = backend.create_origin_access_control(properties["OriginAccessControlConfig"])
        return cls(control.id, Id=control.id)


class BucketPolicy(Resource, CloudFormationModel):
    __module__ = MODULE
    TYPE = "AWS::S3::BucketPolicy"
    PROPERTIES = ("Bucket", "PolicyDocument")

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = cls.properties_of(cloudformation_json, kwargs.get("LogicalId"))
        document = properties["PolicyDocument"]
        text = document if isinstance(document, str) else json.dumps(document)
        backend = s3_backends[account_id][get_partition(region_name)]
        backend.put_bucket_policy(properties["Bucket"], text.encode("utf-8"))
        return cls(properties["Bucket"])

    @classmethod
    def delete_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name):
        s3_backends[account_id][get_partition(region_name)].delete_bucket_policy(resource_name)


class Subscription(Resource, CloudFormationModel):
    __module__ = MODULE
    TYPE = "AWS::SNS::Subscription"
    ATTRIBUTE_PROPERTIES = (
        "FilterPolicy",
        "FilterPolicyScope",
        "RawMessageDelivery",
        "RedrivePolicy",
        "DeliveryPolicy",
    )
    PROPERTIES = ("TopicArn", "Protocol", "Endpoint", "Region") + ATTRIBUTE_PROPERTIES
    ATTRIBUTES = ("Arn",)

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = cls.properties_of(cloudformation_json, kwargs.get("LogicalId"))
        backend = sns_backends[account_id][properties.get("Region", region_name)]
        subscription = backend.subscribe(properties["TopicArn"], properties.get("Endpoint"), properties["Protocol"])
        for name in cls.ATTRIBUTE_PROPERTIES:
            if name in properties:
                value = properties[name]
                text = json.dumps(value) if isinstance(value, dict) else substitution_text(value)
                backend.set_subscription_attributes(subscription.arn, name, text)
        return cls(subscription.arn, Arn=subscription.arn)

    @classmethod
    def delete_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name):
        sns_backends[account_id][region_name].unsubscribe(resource_name)


# --- 6. What moto's S3 bucket and Lambda function models leave out ---------------------------

LIFECYCLE_RULE_KEYS = {
    "Id",
    "Status",
    "Prefix",
    "ExpirationInDays",
    "ExpirationDate",
    "ExpiredObjectDeleteMarker",
    "NoncurrentVersionExpirationInDays",
    "NoncurrentVersionExpiration",
    "AbortIncompleteMultipartUpload",
    "Transitions",
    "NoncurrentVersionTransitions",
}


def lifecycle_rule(cfn):
    """A CloudFormation lifecycle rule in the shape of S3's API (what moto's model parses)."""
    unknown = sorted(set(cfn) - LIFECYCLE_RULE_KEYS)
    if unknown:
        raise TemplateError(
            f"LifecycleConfiguration rule {cfn.get('Id', '')}: tests/moto/server.py does not implement {unknown}"
        )
    rule = {"Status": cfn["Status"]}
    if "Id" in cfn:
        rule["ID"] = cfn["Id"]
    rule["Filter"] = {"Prefix": cfn.get("Prefix", "")}
    expiration = {}
    for cfn_key, api_key in (
        ("ExpirationInDays", "Days"),
        ("ExpirationDate", "Date"),
        ("ExpiredObjectDeleteMarker", "ExpiredObjectDeleteMarker"),
    ):
        if cfn_key in cfn:
            expiration[api_key] = cfn[cfn_key]
    if expiration:
        rule["Expiration"] = expiration
    if "NoncurrentVersionExpirationInDays" in cfn:
        rule["NoncurrentVersionExpiration"] = {"NoncurrentDays": cfn["NoncurrentVersionExpirationInDays"]}
    if "NoncurrentVersionExpiration" in cfn:
        rule["NoncurrentVersionExpiration"] = cfn["NoncurrentVersionExpiration"]
    if "AbortIncompleteMultipartUpload" in cfn:
        rule["AbortIncompleteMultipartUpload"] = cfn["AbortIncompleteMultipartUpload"]
    if "Transitions" in cfn:
        rule["Transition"] = [
            {"StorageClass": t["StorageClass"], "Days": t.get("TransitionInDays"), "Date": t.get("TransitionDate")}
            for t in cfn["Transitions"]
        ]
    if "NoncurrentVersionTransitions" in cfn:
        rule["NoncurrentVersionTransition"] = [
            {
                "StorageClass": t["StorageClass"],
                "NoncurrentDays": t["TransitionInDays"],
                "NewerNoncurrentVersions": t.get("NewerNoncurrentVersions"),
            }
            for t in cfn["NoncurrentVersionTransitions"]
        ]
    return rule


original_create_bucket = FakeBucket.create_from_cloudformation_json.__func__


def create_bucket(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    bucket = original_create_bucket(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
    properties = cloudformation_json.get("Properties", {})
    backend = s3_backends[account_id][get_partition(region_name)]
    if "PublicAccessBlockConfiguration" in properties:
        backend.put_public_access_block(bucket.name, properties["PublicAccessBlockConfiguration"])
    if "VersioningConfiguration" in properties:
        backend.put_bucket_versioning(bucket.name, properties["VersioningConfiguration"]["Status"])
    if "LifecycleConfiguration" in properties:
        rules = properties["LifecycleConfiguration"]["Rules"]
        backend.put_bucket_lifecycle(bucket.name, [lifecycle_rule(rule) for rule in rules])
    return bucket


FakeBucket.create_from_cloudformation_json = classmethod(create_bucket)

original_create_function = LambdaFunction.create_from_cloudformation_json.__func__


def create_function(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    # CloudFormation passes Lambda every environment value as a string; moto's parser has made
    # a Ref to a Number parameter an int, which Lambda's API would then return as a number.
    variables = cloudformation_json["Properties"].get("Environment", {}).get("Variables") or {}
    for name, value in variables.items():
        variables[name] = substitution_text(value)
    function = original_create_function(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
    if "Architectures" in cloudformation_json["Properties"]:
        function.architectures = list(cloudformation_json["Properties"]["Architectures"])
    return function


LambdaFunction.create_from_cloudformation_json = classmethod(create_function)


INSECURE_TRANSPORT_ONLY = {"Bool": {"aws:SecureTransport": "false"}}


def bucket_permission(self, action, resource):
    # moto knows no request context and its Bool conditions match whatever the request, so the
    # template's "deny when not aws:SecureTransport" statements would deny every request. The
    # local stack speaks plain HTTP on loopback where AWS speaks TLS: requests count as secure,
    # so those statements do not apply. Any other condition is evaluated as moto does.
    import json

    from moto.iam.access_control import IAMPolicy, PermissionResult

    if self.policy is None:
        return PermissionResult.NEUTRAL
    policy = json.loads(self.policy.decode())
    statements = policy["Statement"] if isinstance(policy["Statement"], list) else [policy["Statement"]]
    policy["Statement"] = [s for s in statements if s.get("Condition") != INSECURE_TRANSPORT_ONLY]
    if not policy["Statement"]:
        return PermissionResult.NEUTRAL
    return IAMPolicy(json.dumps(policy)).is_action_permitted(action, resource)


expect(
    list(parameters(FakeBucket.get_permission)) == ["self", "action", "resource"],
    "FakeBucket.get_permission(self, action, resource)",
)
FakeBucket.get_permission = bucket_permission


from moto.core.responses import ActionResult, EmptyResult  # noqa: E402
from moto.stepfunctions.parser.models import StepFunctionsParserBackend  # noqa: E402

expect(
    list(parameters(StepFunctionsParserBackend.send_task_failure)) == ["self", "task_token", "error", "cause"],
    "stepfunctions parser backend send_task_failure(self, task_token, error, cause)",
)
expect(
    hasattr(sfn_responses.StepFunctionResponse, "send_task_failure"),
    "stepfunctions responses StepFunctionResponse.send_task_failure",
)


def send_task_failure(self):
    """SendTaskFailure as AWS has it: error and cause reach the waiting task."""
    backend = self.stepfunction_backend
    fields = {"error": self._get_param("error")}
    # Only the execute-mode backend has waiting tasks to give a cause to.
    if "cause" in parameters(backend.send_task_failure):
        fields["cause"] = self._get_param("cause")
    backend.send_task_failure(self._get_param("taskToken"), **fields)
    return EmptyResult()


sfn_responses.StepFunctionResponse.send_task_failure = send_task_failure


# --- 8. A spot interruption, on request ------------------------------------------------------

from moto.ec2.models.instances import Instance, StateReason  # noqa: E402

INTERRUPTION_TAG = "LocalStackInterruption"
SPOT_INTERRUPTION = "Server.SpotInstanceTermination"

expect(
    parameters(Instance.terminate) == ["self"]
    and parameters(StateReason.__init__) == ["self", "message", "code"]
    and callable(getattr(Instance, "get_tags", None)),
    "ec2 Instance.terminate(self), StateReason(message, code) and Instance.get_tags()",
)

original_terminate = Instance.terminate


def terminate(self):
    previous_state = original_terminate(self)
    # moto's tags are {"key", "value", ...} dicts (its describe_tags records).
    if any(tag.get("key") == INTERRUPTION_TAG and tag.get("value") == "spot" for tag in self.get_tags()):
        self.state_reason = StateReason(f"{SPOT_INTERRUPTION}: Spot instance termination", SPOT_INTERRUPTION)
    return previous_state


Instance.terminate = terminate


# --- 9. Execution histories in pages ----------------------------------------------------------

from moto.stepfunctions.exceptions import InvalidToken, ValidationException  # noqa: E402

HISTORY_PAGE_DEFAULT = 100
HISTORY_PAGE_MAX = 1000

expect(
    parameters(sfn_responses.StepFunctionResponse.get_execution_history) == ["self"],
    "stepfunctions responses StepFunctionResponse.get_execution_history(self)",
)


def get_execution_history(self):
    """GetExecutionHistory as AWS has it: one page of the events, in the order asked for."""
    history = self.stepfunction_backend.get_execution_history(self._get_param("executionArn"))
    events = list(history["events"])
    reverse = bool(self._get_param("reverseOrder"))
    if reverse:
        events.reverse()
    size = self._get_param("maxResults") or HISTORY_PAGE_DEFAULT
    if not 0 < size <= HISTORY_PAGE_MAX:  # maxResults 0 asks for the default, taken above
        raise ValidationException(
            f"1 validation error detected: Value '{size}' at 'maxResults' failed to satisfy "
            f"constraint: Member must have value between 0 and {HISTORY_PAGE_MAX}"
        )
    token = self._get_param("nextToken")
    if token:
        # The token is the ID of the previous page's last event: a history only grows at its
        # end, so the pages after it stay the same whatever was added since.
        if not token.isdigit():
            raise InvalidToken(f"{token!r} is not a token this history gave")
        after = int(token)
        events = [event for event in events if (event["id"] < after if reverse else event["id"] > after)]
    page = {"events": events[:size]}
    if len(events) > size:
        page["nextToken"] = str(events[size - 1]["id"])
    return ActionResult(page)


sfn_responses.StepFunctionResponse.get_execution_history = get_execution_history


# The model lists are cached on first use: drop anything computed before the models above existed.
for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
    cached.cache_clear()
for model in (Secret, Schedule, Distribution, CloudFrontFunction, OriginAccessControl, BucketPolicy, Subscription):
    expect(parsing.get_model_map().get(model.TYPE) is model, f"{model.TYPE} registered as a CloudFormation model")


if __name__ == "__main__":
    from moto.server import main

    main(sys.argv[1:])
