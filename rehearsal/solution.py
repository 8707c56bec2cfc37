"""The solution stack as the rehearsal installs it in the emulator.

Every name CloudFormation would generate is chosen here first; template.yaml is then resolved with
those names for the chosen parameters, and each supporting resource (key, buckets, topic, queue,
rule, roles, projects, pipeline, state machine) is created from its resolved properties. Functions are
not run by the emulator: their handlers run in this process (a function a state machine's tasks invoke
is created in the emulator's Lambda, so that Invoke finds it, and answered in this process). What the
emulator cannot hold (the alarms, the layer, the e-mail subscription) is listed in ``not_emulated``.
"""

from __future__ import annotations

import fnmatch
import json
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from local_aws.awslambda import ENVIRONMENT_MAX_BYTES, EnvironmentTooLarge, check_environment_size
from local_aws.cloudformation import ResolvedTemplate, load_template
from local_aws.iam import AccessKey, create_principal, policy_for_moto
from rehearsal.emulator import UNCHECKED, Emulator
from rehearsal.paths import ROOT, TEMPLATE

ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
STATES_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
_EMPTY_ZIP = b"PK\x05\x06" + b"\0" * 18  # a zip archive with no file
# The e-mail subscription's stand-in: an SQS queue subscribed to the topic, read for the summary.
INBOX_QUEUE = "rehearsal-notification-inbox"
_EMULATED = frozenset(
    {
        "AWS::KMS::Key",
        "AWS::KMS::Alias",
        "AWS::S3::Bucket",
        "AWS::S3::BucketPolicy",
        "AWS::SNS::Topic",
        "AWS::SQS::Queue",
        "AWS::SQS::QueuePolicy",
        "AWS::Events::Rule",
        "AWS::IAM::Role",
        "AWS::IAM::Policy",
        "AWS::Logs::LogGroup",
        "AWS::CodeBuild::Project",
        "AWS::CodePipeline::Pipeline",
        "AWS::Serverless::Function",
        "AWS::Serverless::StateMachine",
        "AWS::Lambda::Permission",
        "Custom::RegionalArtifactStore",
    }
)


class SetupError(Exception):
    """The solution could not be installed in the emulator as template.yaml defines it."""


@dataclass(frozen=True)
class Function:
    logical_id: str
    name: str
    arn: str
    code_dir: Path
    handler: str
    timeout_seconds: int
    memory_mb: int
    layer_dirs: tuple[Path, ...]
    # Asynchronous invocation (an EventBridge target): Lambda's retries, then the dead-letter queue.
    async_retries: int = 2
    dead_letter_arn: str | None = None


@dataclass
class Solution:
    """The solution as installed: resolved template, physical names and one principal per role."""

    emulator: Emulator
    template: ResolvedTemplate
    stack_name: str
    primary_region: str
    secondary_region: str
    pipeline_name: str
    artifact_stores: dict[str, tuple[str, str]]  # Region -> (bucket, key ARN)
    functions: dict[str, Function]  # logical id -> function
    projects: dict[str, str]  # CodeBuild project name -> logical id
    principals: dict[str, AccessKey] = field(default_factory=dict)
    not_emulated: list[str] = field(default_factory=list)
    inbox_url: str = ""
    sent: list[dict[str, str]] = field(default_factory=list)  # SNS messages read from the inbox so far
    # The functions a state machine's tasks invoke (logical ids): they run in this process when invoked.
    task_functions: list[str] = field(default_factory=list)
    # What happens in AWS while a continuing action waits (a scenario's alarm firing during a bake): each
    # is called between two invocations and may return a note for the console.
    while_waiting: list[Callable[[Solution], str | None]] = field(default_factory=list)
    # With a deployment map: its targets (rehearsal.waves.MapTarget), in wave order.
    map_targets: list[Any] = field(default_factory=list)

    @property
    def account_id(self) -> str:
        return self.emulator.account_id

    def credentials(self, principal: str) -> AccessKey:
        return self.principals.get(principal, UNCHECKED)

    def admin(self, service: str, region: str | None = None) -> Any:
        return self.emulator.client(service, region or self.primary_region, self.credentials("admin"))

    def new_messages(self) -> list[dict[str, str]]:
        """SNS messages published since the last call (subject and message), also kept in ``sent``."""
        if not self.inbox_url:
            return []
        sqs = self.admin("sqs")
        fresh: list[dict[str, str]] = []
        while True:
            batch = sqs.receive_message(QueueUrl=self.inbox_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                break
            for message in batch:
                envelope = json.loads(message["Body"])
                fresh.append(
                    {"subject": envelope.get("Subject") or "(no subject)", "message": envelope.get("Message", "")}
                )
                sqs.delete_message(QueueUrl=self.inbox_url, ReceiptHandle=message["ReceiptHandle"])
        self.sent.extend(fresh)
        return fresh

    def may_invoke(self, function: Function, principal: str, source_arn: str) -> bool:
        """Whether an AWS::Lambda::Permission of the template lets ``principal`` (a service) invoke the
        unqualified function from ``source_arn``, as Lambda evaluates a resource policy: FunctionName
        as a name, a full or a partial ARN (a qualified one grants that alias or version only),
        SourceArn as ArnLike, SourceAccount as StringEquals."""
        for logical_id, resource in self.template.resources_of_type("AWS::Lambda::Permission").items():
            if not _exists(self.template, logical_id):
                continue
            properties = resource["Properties"]
            action = str(properties.get("Action", "")).lower()
            if (
                _function_of(str(properties.get("FunctionName", ""))) == function.name
                and action in {"lambda:invokefunction", "lambda:*", "*"}
                and properties.get("Principal") in {principal, "*"}
                and fnmatch.fnmatchcase(source_arn, str(properties.get("SourceArn", "*")))
                and str(properties.get("SourceAccount", self.account_id)) == self.account_id
            ):
                return True
        return False

    def function_by_name(self, name_or_arn: str) -> Function | None:
        return next((f for f in self.functions.values() if name_or_arn in (f.name, f.arn)), None)

    @property
    def stack_id(self) -> str:
        return str(self.template.pseudo["AWS::StackId"])

    @property
    def release_record_parameter(self) -> str:
        """The release record's SSM parameter, as the template's ReleaseRecordParameter output names it."""
        return str(self.template.resolve(self.template.raw["Outputs"]["ReleaseRecordParameter"]["Value"]))


@dataclass(frozen=True)
class Leftovers:
    """What deleting the solution stack leaves in AWS: what the stack did not create (the release record,
    written by a function) and what it retains (DeletionPolicy Retain: the key and the artifact bucket)."""

    stack_id: str
    record_parameter: str
    record: str | None  # the parameter's value as left (decrypted), None if nothing was released
    retained: dict[str, str]  # logical id -> physical id (ARN of a key, name of a bucket)


def _function_of(name: str) -> str | None:
    """The unqualified function a FunctionName grants (None for a qualified one: an alias or version)."""
    parts = name.split(":")
    if len(parts) == 1:  # my-function
        return parts[0]
    if len(parts) == 3 and parts[1] == "function":  # 123456789012:function:my-function
        return parts[2]
    if len(parts) == 7 and parts[5] == "function":  # arn:aws:lambda:region:account:function:my-function
        return parts[6]
    return None


def _suffix() -> str:
    return uuid.uuid4().hex[:12].upper()


def install(
    emulator: Emulator,
    parameters: Mapping[str, str],
    *,
    stack_name: str = "release-solution",
    region: str = "us-east-1",
    enforce_iam: bool = True,
    template_path: Path | None = None,
) -> Solution:
    """Create the solution's supporting resources in the emulator and return the installed solution.

    ``template_path`` is the solution template (template.yaml by default). With ``enforce_iam`` every
    later request is checked against the IAM policy of the principal that makes it.
    """
    raw = load_template(template_path or TEMPLATE)
    account = emulator.account_id
    probe = ResolvedTemplate(dict(parameters), region=region, account=account, stack_name=stack_name, template=raw)
    secondary = probe.parameters["SecondaryRegion"]
    unchecked = UNCHECKED

    def client(service: str, in_region: str = region) -> Any:
        return emulator.client(service, in_region, unchecked)

    stack_id = f"arn:aws:cloudformation:{region}:{account}:stack/{stack_name}/{uuid.uuid4()}"
    probe.pseudo["AWS::StackId"] = stack_id  # names derived from the stack id (the pipeline's) match
    physical: dict[str, dict[str, str]] = {}
    resources: dict[str, Any] = probe.raw["Resources"]  # Fn::ForEach loops expanded
    for logical_id, spec in resources.items():
        kind = spec.get("Type", "")
        suffix = _suffix()
        if kind == "AWS::S3::Bucket":
            name = f"{stack_name}-{logical_id}-{suffix}".lower()[:63]
            physical[logical_id] = {
                "Ref": name,
                "Arn": f"arn:aws:s3:::{name}",
                "DomainName": f"{name}.s3.amazonaws.com",
            }
        elif kind == "AWS::IAM::Role":
            name = f"{stack_name}-{logical_id}-{suffix}"[:64]
            physical[logical_id] = {"Ref": name, "Arn": f"arn:aws:iam::{account}:role/{name}"}
        elif kind == "AWS::Serverless::Function":
            name = f"{stack_name}-{logical_id}-{suffix}"[:64]
            role = f"{stack_name}-{logical_id}Role-{suffix}"[:64]
            role_path = str(spec.get("Properties", {}).get("RolePath", "/"))  # SAM's RolePath: in the role's ARN
            physical[logical_id] = {"Ref": name, "Arn": f"arn:aws:lambda:{region}:{account}:function:{name}"}
            physical[f"{logical_id}Role"] = {"Ref": role, "Arn": f"arn:aws:iam::{account}:role{role_path}{role}"}
        elif kind == "AWS::Serverless::StateMachine":
            name = f"{logical_id}-{suffix}"[:80]
            role = f"{stack_name}-{logical_id}Role-{suffix}"[:64]
            arn = f"arn:aws:states:{region}:{account}:stateMachine:{name}"
            physical[logical_id] = {"Ref": arn, "Arn": arn, "Name": name}
            physical[f"{logical_id}Role"] = {"Ref": role, "Arn": f"arn:aws:iam::{account}:role/{role}"}
        elif kind == "AWS::CodeBuild::Project":
            name = f"{logical_id}-{suffix}"
            physical[logical_id] = {"Ref": name, "Arn": f"arn:aws:codebuild:{region}:{account}:project/{name}"}
        elif kind == "AWS::SQS::Queue":
            name = f"{stack_name}-{logical_id}-{suffix}"[:80]
            physical[logical_id] = {
                "Ref": f"{emulator.endpoint}/{account}/{name}",
                "Arn": f"arn:aws:sqs:{region}:{account}:{name}",
                "QueueName": name,
            }
        elif kind == "AWS::SNS::Topic":
            name = f"{stack_name}-{logical_id}-{suffix}"
            physical[logical_id] = {"Ref": f"arn:aws:sns:{region}:{account}:{name}", "TopicName": name}
        elif kind == "AWS::Events::Rule":
            name = f"{stack_name}-{logical_id}-{suffix}"[:64]
            physical[logical_id] = {"Ref": name, "Arn": f"arn:aws:events:{region}:{account}:rule/{name}"}
        elif kind == "AWS::CodePipeline::Pipeline":
            name = str(probe.resolve(spec.get("Properties", {}).get("Name", f"{stack_name}-{logical_id}-{suffix}")))
            physical[logical_id] = {"Ref": name}
        elif kind == "AWS::Logs::LogGroup":
            given = spec.get("Properties", {}).get("LogGroupName")
            name = str(probe.resolve(given)) if given else f"{stack_name}-{logical_id}-{suffix}"
            physical[logical_id] = {"Ref": name, "Arn": f"arn:aws:logs:{region}:{account}:log-group:{name}:*"}
        elif kind == "AWS::Serverless::LayerVersion":
            physical[logical_id] = {"Ref": f"arn:aws:lambda:{region}:{account}:layer:{logical_id}:1"}

    # The key and the secondary Region's store have names chosen by AWS: create them first.
    kms = client("kms")
    for logical_id, spec in resources.items():
        if spec.get("Type") == "AWS::KMS::Key":
            properties = probe.resolve(spec.get("Properties", {}))
            key = kms.create_key(
                Policy=json.dumps(properties.get("KeyPolicy", ADMIN_POLICY)),
                Description=str(properties.get("Description", ""))[:8192],
            )["KeyMetadata"]
            if properties.get("EnableKeyRotation"):
                kms.enable_key_rotation(KeyId=key["KeyId"])
            physical[logical_id] = {"Ref": key["KeyId"], "Arn": key["Arn"], "KeyId": key["KeyId"]}

    template = ResolvedTemplate(
        dict(parameters), region=region, account=account, stack_name=stack_name, template=raw, physical=physical
    )
    template.pseudo["AWS::StackId"] = stack_id
    layer_dirs = _layer_dirs(template)
    for path in layer_dirs:
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))

    for logical_id, spec in resources.items():
        if spec.get("Type") == "Custom::RegionalArtifactStore" and _exists(template, logical_id):
            physical[logical_id] = _regional_store(template.resource(logical_id)["Properties"], client)
    template = ResolvedTemplate(
        dict(parameters), region=region, account=account, stack_name=stack_name, template=raw, physical=physical
    )
    template.pseudo["AWS::StackId"] = stack_id

    solution = Solution(
        emulator=emulator,
        template=template,
        stack_name=stack_name,
        primary_region=region,
        secondary_region=secondary,
        pipeline_name="",
        artifact_stores={},
        functions={},
        projects={},
    )
    _create_resources(solution, client, layer_dirs)
    if enforce_iam:
        _create_principals(solution, client)
        emulator.enforce_iam(True)
    return solution


def uninstall(solution: Solution) -> Leftovers:
    """Delete the solution as `sam delete` deletes its stack: every resource the stack created, in the
    reverse of the template's order, except those with ``DeletionPolicy: Retain``; the custom resource
    removes the secondary Region's store as its function does on Delete. What the stack never owned stays:
    the release record (a function wrote it) and the application's stacks. The rehearsal's principals
    (its stand-ins for the roles' sessions) go with their roles."""
    emulator, template = solution.emulator, solution.template
    emulator.enforce_iam(False)

    def client(service: str, in_region: str = solution.primary_region) -> Any:
        return emulator.client(service, in_region, UNCHECKED)

    record_parameter = solution.release_record_parameter
    try:
        record = client("ssm").get_parameter(Name=record_parameter, WithDecryption=True)["Parameter"]["Value"]
    except ClientError as error:
        if error.response["Error"]["Code"] != "ParameterNotFound":
            raise
        record = None
    retained: dict[str, str] = {}
    for logical_id, spec in reversed(list(template.raw["Resources"].items())):
        if not _exists(template, logical_id):
            continue
        kind = spec.get("Type", "")
        physical = template.physical.get(logical_id, {})
        if spec.get("DeletionPolicy") == "Retain":
            retained[logical_id] = physical.get("Arn", physical.get("Ref", logical_id))
            continue
        _delete_resource(solution, client, logical_id, kind, physical)
    iam = client("iam")
    for user in _principal_users(iam):
        _delete_user(iam, user)
    solution.principals.clear()
    return Leftovers(solution.stack_id, record_parameter, record, retained)


def _delete_resource(solution: Solution, client: Any, logical_id: str, kind: str, physical: Mapping[str, str]) -> None:
    ref = physical.get("Ref", logical_id)
    if kind == "AWS::KMS::Key":
        client("kms").schedule_key_deletion(KeyId=ref, PendingWindowInDays=7)
    elif kind == "AWS::KMS::Alias":
        properties = solution.template.resource(logical_id)["Properties"]
        client("kms").delete_alias(AliasName=properties["AliasName"])
    elif kind == "AWS::S3::Bucket":
        from release_pipeline import regional_store

        regional_store.empty_bucket(client("s3"), ref)  # CloudFormation fails on a bucket with objects
        client("s3").delete_bucket(Bucket=ref)
    elif kind == "AWS::S3::BucketPolicy":
        client("s3").delete_bucket_policy(Bucket=solution.template.resource(logical_id)["Properties"]["Bucket"])
    elif kind == "AWS::SNS::Topic":
        client("sns").delete_topic(TopicArn=ref)
    elif kind == "AWS::SQS::Queue":
        client("sqs").delete_queue(QueueUrl=ref)
    elif kind == "AWS::Events::Rule":
        events = client("events")
        targets = [t["Id"] for t in events.list_targets_by_rule(Rule=ref).get("Targets", [])]
        if targets:
            events.remove_targets(Rule=ref, Ids=targets)
        events.delete_rule(Name=ref)
    elif kind == "AWS::IAM::Policy":
        properties = solution.template.resource(logical_id)["Properties"]
        for role in properties.get("Roles", []):
            client("iam").delete_role_policy(RoleName=role, PolicyName=properties["PolicyName"])
    elif kind == "AWS::IAM::Role":
        _delete_role(client("iam"), ref)
    elif kind == "AWS::Serverless::Function":  # the function is not created here; its SAM role is
        _delete_role(client("iam"), solution.template.physical[f"{logical_id}Role"]["Ref"])
        if logical_id in solution.task_functions:
            client("lambda").delete_function(FunctionName=ref)
    elif kind == "AWS::Serverless::StateMachine":
        client("stepfunctions").delete_state_machine(stateMachineArn=ref)
        _delete_role(client("iam"), solution.template.physical[f"{logical_id}Role"]["Ref"])
    elif kind == "AWS::Logs::LogGroup":
        client("logs").delete_log_group(logGroupName=ref)
    elif kind == "AWS::CodeBuild::Project":
        client("codebuild").delete_project(name=ref)
    elif kind == "AWS::CodePipeline::Pipeline":
        client("codepipeline").delete_pipeline(name=ref)
    elif kind == "Custom::RegionalArtifactStore":
        _delete_regional_store(ref, client)


def _delete_role(iam: Any, name: str) -> None:
    for policy in iam.list_role_policies(RoleName=name).get("PolicyNames", []):
        iam.delete_role_policy(RoleName=name, PolicyName=policy)
    iam.delete_role(RoleName=name)


def _principal_users(iam: Any) -> list[str]:
    return [
        user["UserName"]
        for page in iam.get_paginator("list_users").paginate()
        for user in page["Users"]
        if user["UserName"].startswith("rehearsal-")
    ]


def _delete_user(iam: Any, name: str) -> None:
    for policy in iam.list_user_policies(UserName=name).get("PolicyNames", []):
        iam.delete_user_policy(UserName=name, PolicyName=policy)
    for key in iam.list_access_keys(UserName=name).get("AccessKeyMetadata", []):
        iam.delete_access_key(UserName=name, AccessKeyId=key["AccessKeyId"])
    iam.delete_user(UserName=name)


def _delete_regional_store(stack_id: str, client: Any) -> None:
    """What the custom resource's function does on Delete, with the same code, run to completion."""
    from release_pipeline import regional_store

    region = regional_store.region_of(stack_id)
    if region is None:
        return
    cfn = client("cloudformation", region)
    regional_store.start_delete(cfn, client("s3", region), stack_id)
    deadline = time.monotonic() + 60
    while not regional_store.deleted(cfn, stack_id):
        if time.monotonic() > deadline:
            raise SetupError(f"the artifact store stack in {region} was not deleted")
        time.sleep(0.1)


def _exists(template: ResolvedTemplate, logical_id: str) -> bool:
    condition = template.raw["Resources"][logical_id].get("Condition")
    return condition is None or template.conditions[condition]


def _layer_dirs(template: ResolvedTemplate) -> tuple[Path, ...]:
    dirs = []
    for logical_id, spec in template.raw["Resources"].items():
        if spec.get("Type") == "AWS::Serverless::LayerVersion":
            content = template.resource(logical_id)["Properties"].get("ContentUri", "")
            dirs.append((ROOT / str(content)).resolve())
    return tuple(dirs)


def _regional_store(properties: Mapping[str, Any], client: Any) -> dict[str, str]:
    """What the custom resource's function does on Create, with the same code (release_pipeline's
    regional_store), run to completion against the emulator."""
    from release_pipeline import regional_store

    region = str(properties["Region"])
    cfn = client("cloudformation", region)
    stack_id = regional_store.start_create(cfn, str(properties["StackName"]), region, str(properties["BucketName"]))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        store = regional_store.check(cfn, stack_id)
        if store is not None:
            return {"BucketName": store.bucket_name, "KeyArn": store.key_arn, "Ref": stack_id}
        time.sleep(0.1)
    raise SetupError(f"the artifact store stack in {region} did not complete")


def _create_resources(solution: Solution, client: Any, layer_dirs: tuple[Path, ...]) -> None:
    template = solution.template
    for logical_id, spec in template.raw["Resources"].items():
        kind = spec.get("Type", "")
        if not _exists(template, logical_id):
            continue
        if kind not in _EMULATED:
            solution.not_emulated.append(f"{logical_id} ({kind})")
            continue
        if kind in {"AWS::KMS::Key", "Custom::RegionalArtifactStore", "AWS::Lambda::Permission"}:
            continue
        resource = template.resource(logical_id)
        properties: dict[str, Any] = resource.get("Properties", {})
        ref = template.physical.get(logical_id, {}).get("Ref", logical_id)
        if kind == "AWS::KMS::Alias":
            client("kms").create_alias(AliasName=properties["AliasName"], TargetKeyId=properties["TargetKeyId"])
        elif kind == "AWS::S3::Bucket":
            _create_bucket(client("s3"), ref, properties)
        elif kind == "AWS::S3::BucketPolicy":
            client("s3").put_bucket_policy(Bucket=properties["Bucket"], Policy=json.dumps(properties["PolicyDocument"]))
        elif kind == "AWS::SNS::Topic":
            attributes = {"KmsMasterKeyId": properties["KmsMasterKeyId"]} if "KmsMasterKeyId" in properties else {}
            if "DisplayName" in properties:
                attributes["DisplayName"] = properties["DisplayName"]
            arn = client("sns").create_topic(Name=template.physical[logical_id]["TopicName"], Attributes=attributes)
            _subscribe_inbox(solution, client, arn["TopicArn"])
        elif kind == "AWS::SQS::Queue":
            attributes = {
                key: str(properties[key])
                for key in ("KmsMasterKeyId", "MessageRetentionPeriod", "VisibilityTimeout")
                if key in properties
            }
            client("sqs").create_queue(QueueName=template.physical[logical_id]["QueueName"], Attributes=attributes)
        elif kind == "AWS::SQS::QueuePolicy":
            for queue_url in properties["Queues"]:
                client("sqs").set_queue_attributes(
                    QueueUrl=queue_url, Attributes={"Policy": json.dumps(properties["PolicyDocument"])}
                )
        elif kind == "AWS::Events::Rule":
            _create_rule(client("events"), ref, properties)
        elif kind == "AWS::IAM::Role":
            _create_role(client("iam"), ref, properties)
        elif kind == "AWS::Logs::LogGroup":
            retention = (
                {"retentionInDays": int(properties["RetentionInDays"])} if "RetentionInDays" in properties else {}
            )
            logs = client("logs")
            logs.create_log_group(logGroupName=ref)
            if retention:
                logs.put_retention_policy(logGroupName=ref, **retention)
        elif kind == "AWS::IAM::Policy":
            for role in properties.get("Roles", []):
                client("iam").put_role_policy(
                    RoleName=role,
                    PolicyName=properties["PolicyName"],
                    PolicyDocument=json.dumps(properties["PolicyDocument"]),
                )
        elif kind == "AWS::CodeBuild::Project":
            _create_project(client("codebuild"), ref, properties)
            solution.projects[ref] = logical_id
        elif kind == "AWS::Serverless::Function":
            solution.functions[logical_id] = _function(template, logical_id, properties, layer_dirs)
            client("iam").create_role(
                RoleName=template.physical[f"{logical_id}Role"]["Ref"],
                Path=str(properties.get("RolePath", "/")),
                AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST),
            )
        elif kind == "AWS::Serverless::StateMachine":
            _create_state_machine(solution, client, logical_id, properties)
        elif kind == "AWS::CodePipeline::Pipeline":
            _create_pipeline(solution, client("codepipeline"), ref, properties)


def _create_state_machine(solution: Solution, client: Any, logical_id: str, properties: Mapping[str, Any]) -> None:
    """The state machine from its DefinitionUri with SAM's DefinitionSubstitutions, its role, and in
    moto's Lambda each function its tasks invoke (so that Invoke finds it; its handler runs in this
    process, see rehearsal.actions.serve_tasks)."""
    physical = solution.template.physical
    substitutions = {name: str(value) for name, value in properties.get("DefinitionSubstitutions", {}).items()}
    definition = (ROOT / str(properties["DefinitionUri"])).read_text()
    for name, value in substitutions.items():
        definition = definition.replace("${" + name + "}", value)
    role = physical[f"{logical_id}Role"]
    iam = client("iam")
    iam.create_role(RoleName=role["Ref"], AssumeRolePolicyDocument=json.dumps(STATES_TRUST))
    # The state machine's tasks act as its role (local_aws.stepfunctions): its SAM Policies, as moto checks them.
    policy = solution.template.function_policy(logical_id)
    iam.put_role_policy(RoleName=role["Ref"], PolicyName="policies", PolicyDocument=json.dumps(policy_for_moto(policy)))
    lambda_client = client("lambda")
    for function in solution.functions.values():
        if function.arn in substitutions.values():
            lambda_client.create_function(
                FunctionName=function.name,
                Runtime="python3.13",
                Role=physical[f"{function.logical_id}Role"]["Arn"],
                Handler=function.handler,
                Code={"ZipFile": _EMPTY_ZIP},  # never run by moto: the handler runs in this process
                Timeout=function.timeout_seconds,
                MemorySize=function.memory_mb,
            )
            solution.task_functions.append(function.logical_id)
    client("stepfunctions").create_state_machine(
        name=physical[logical_id]["Name"], definition=definition, roleArn=role["Arn"], type="STANDARD"
    )


def _create_bucket(s3: Any, name: str, properties: Mapping[str, Any]) -> None:
    s3.create_bucket(Bucket=name)
    if "VersioningConfiguration" in properties:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration=properties["VersioningConfiguration"])
    encryption = properties.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration")
    if encryption:
        rules = [
            {
                **({"BucketKeyEnabled": rule["BucketKeyEnabled"]} if "BucketKeyEnabled" in rule else {}),
                "ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"],
            }
            for rule in encryption
        ]
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
    if "PublicAccessBlockConfiguration" in properties:
        s3.put_public_access_block(
            Bucket=name, PublicAccessBlockConfiguration=properties["PublicAccessBlockConfiguration"]
        )
    rules = properties.get("LifecycleConfiguration", {}).get("Rules", [])
    if rules:
        s3.put_bucket_lifecycle_configuration(
            Bucket=name, LifecycleConfiguration={"Rules": [_lifecycle_rule(rule) for rule in rules]}
        )


def _lifecycle_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """A CloudFormation lifecycle rule in the S3 API's shape (the fields the templates use)."""
    converted: dict[str, Any] = {"ID": rule.get("Id", "rule"), "Status": rule["Status"]}
    converted["Filter"] = {"Prefix": rule.get("Prefix", "")}
    if "ExpirationInDays" in rule:
        converted["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "NoncurrentVersionExpiration" in rule:
        converted["NoncurrentVersionExpiration"] = {
            "NoncurrentDays": int(rule["NoncurrentVersionExpiration"]["NoncurrentDays"])
        }
    if "AbortIncompleteMultipartUpload" in rule:
        converted["AbortIncompleteMultipartUpload"] = {
            "DaysAfterInitiation": int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
        }
    return converted


def _create_rule(events: Any, name: str, properties: Mapping[str, Any]) -> None:
    events.put_rule(
        Name=name,
        EventPattern=json.dumps(properties["EventPattern"]),
        State=properties.get("State", "ENABLED"),
        Description=str(properties.get("Description", ""))[:512],
    )
    targets = []
    for target in properties.get("Targets", []):
        converted: dict[str, Any] = {"Id": target["Id"], "Arn": target["Arn"]}
        if "RetryPolicy" in target:
            converted["RetryPolicy"] = target["RetryPolicy"]
        if "DeadLetterConfig" in target:
            converted["DeadLetterConfig"] = target["DeadLetterConfig"]
        targets.append(converted)
    if targets:
        events.put_targets(Rule=name, Targets=targets)


def _create_role(iam: Any, name: str, properties: Mapping[str, Any]) -> None:
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(properties["AssumeRolePolicyDocument"]))
    for policy in properties.get("Policies", []):
        iam.put_role_policy(
            RoleName=name, PolicyName=policy["PolicyName"], PolicyDocument=json.dumps(policy["PolicyDocument"])
        )


def _create_project(codebuild: Any, name: str, properties: Mapping[str, Any]) -> None:
    environment = properties["Environment"]
    codebuild.create_project(
        name=name,
        # moto wants a location even for a CODEPIPELINE source (AWS does not): the pipeline supplies it.
        source={
            "type": properties["Source"]["Type"],
            "buildspec": properties["Source"].get("BuildSpec", ""),
            "location": "codepipeline",
        },
        artifacts={"type": properties["Artifacts"]["Type"], "location": "codepipeline"},
        environment={
            "type": environment["Type"],
            "image": environment["Image"],
            "computeType": environment["ComputeType"],
            "environmentVariables": [
                {"name": v["Name"], "value": str(v["Value"]), "type": v.get("Type", "PLAINTEXT")}
                for v in environment.get("EnvironmentVariables", [])
            ],
        },
        serviceRole=properties["ServiceRole"],
    )


def _function(
    template: ResolvedTemplate, logical_id: str, properties: Mapping[str, Any], layer_dirs: tuple[Path, ...]
) -> Function:
    globals_function = template.resolve(template.raw.get("Globals", {}).get("Function", {}))
    merged = {**globals_function, **properties}
    try:
        check_environment_size(template.function_environment(logical_id))
    except EnvironmentTooLarge as exc:
        raise SetupError(
            f"{logical_id}: Lambda would refuse its environment variables: {exc.size} bytes as JSON, "
            f"over Lambda's {ENVIRONMENT_MAX_BYTES} (the template's Globals and the function's own, resolved)"
        ) from exc
    return Function(
        logical_id=logical_id,
        name=template.physical[logical_id]["Ref"],
        arn=template.physical[logical_id]["Arn"],
        code_dir=(ROOT / str(merged["CodeUri"])).resolve(),
        handler=str(merged["Handler"]),
        timeout_seconds=int(merged.get("Timeout", 3)),
        memory_mb=int(merged.get("MemorySize", 128)),
        layer_dirs=layer_dirs,
        async_retries=int(merged.get("EventInvokeConfig", {}).get("MaximumRetryAttempts", 2)),
        dead_letter_arn=merged.get("DeadLetterQueue", {}).get("TargetArn")
        or merged.get("EventInvokeConfig", {}).get("DestinationConfig", {}).get("OnFailure", {}).get("Destination"),
    )


_INTEGER_PROPERTIES = frozenset({"runOrder", "timeoutInMinutes"})


def _camel(node: Any) -> Any:
    """CloudFormation's PascalCase pipeline structure in the CodePipeline API's camelCase shape
    (configuration maps keep their keys)."""
    if isinstance(node, list):
        return [_camel(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {}
    for key, value in node.items():
        name = key[0].lower() + key[1:]
        converted[name] = value if key == "Configuration" else _camel(value)
    return converted


def _create_pipeline(solution: Solution, codepipeline: Any, name: str, properties: Mapping[str, Any]) -> None:
    solution.pipeline_name = name
    for store in properties.get("ArtifactStores", []):
        solution.artifact_stores[store["Region"]] = (
            store["ArtifactStore"]["Location"],
            store["ArtifactStore"].get("EncryptionKey", {}).get("Id", ""),
        )
    if "ArtifactStore" in properties:
        store = properties["ArtifactStore"]
        solution.artifact_stores[solution.primary_region] = (
            store["Location"],
            store.get("EncryptionKey", {}).get("Id", ""),
        )
    stages = []
    for stage in properties["Stages"]:
        actions = [
            {
                # CloudFormation turns a Ref to a Number parameter into the integer the property takes.
                key: int(value) if key in _INTEGER_PROPERTIES else value
                for key, value in _camel(action).items()
                if key not in {"namespace", "region"}
            }
            for action in stage["Actions"]
        ]
        stages.append({"name": stage["Name"], "actions": actions})
    codepipeline.create_pipeline(
        pipeline={
            "name": name,
            "roleArn": properties["RoleArn"],
            "artifactStore": {"type": "S3", "location": solution.artifact_stores[solution.primary_region][0]},
            "stages": stages,
        }
    )


def _subscribe_inbox(solution: Solution, client: Any, topic_arn: str) -> None:
    sqs = client("sqs")
    url = sqs.create_queue(QueueName=INBOX_QUEUE)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    client("sns").subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn)
    solution.inbox_url = url


def _create_principals(solution: Solution, client: Any) -> None:
    """One IAM user per principal, holding exactly its role's policy from the template: an administrator
    for the rehearsal's own bookkeeping, the pipeline's role (CloudFormation actions, artifacts,
    approval notifications), each CodeBuild project's service role, each function's role."""
    iam = client("iam")
    template = solution.template
    solution.principals["admin"] = create_principal(iam, "rehearsal-admin", ADMIN_POLICY)
    for logical_id, spec in template.raw["Resources"].items():
        kind = spec.get("Type")
        if kind == "AWS::CodePipeline::Pipeline":
            role = _role_id_of(template, str(template.resource(logical_id)["Properties"]["RoleArn"]), logical_id)
            solution.principals["pipeline"] = create_principal(iam, "rehearsal-pipeline", template.role_policy(role))
        elif kind == "AWS::CodeBuild::Project":
            role = _role_id_of(template, str(template.resource(logical_id)["Properties"]["ServiceRole"]), logical_id)
            solution.principals[logical_id] = create_principal(
                iam, f"rehearsal-{logical_id}"[:64], template.role_policy(role)
            )
    for logical_id in solution.functions:
        solution.principals[logical_id] = create_principal(
            iam, f"rehearsal-{logical_id}"[:64], template.function_policy(logical_id)
        )


def _role_id_of(template: ResolvedTemplate, role_arn: str, user: str) -> str:
    found = next((name for name, values in template.physical.items() if values.get("Arn") == role_arn), None)
    if found is None:
        raise SetupError(f"{user}'s role {role_arn} is not a role of the template")
    return found
