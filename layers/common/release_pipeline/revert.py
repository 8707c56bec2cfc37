"""Stage revert: bring the stage stack back after a rejected or failed change.

Delete mode: the temporary stage stack is deleted. Retain mode: the stage stack is updated back to the
last released template and stage parameters, or deleted when nothing was ever released. In both modes
production stacks that exist only as REVIEW_IN_PROGRESS placeholders of this execution's change sets
(a first release that was rejected) are removed, and this execution's change sets are deleted.

Every step is idempotent: EventBridge delivers at least once, and a second call finds nothing to do.
A stack that is busy raises :class:`StackBusyError`, so Lambda retries the event and, in the end,
sends it to the dead-letter queue; nothing is lost.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from release_pipeline import artifacts, releases, stacks
from release_pipeline.errors import ArtifactError, ReleaseRecordError, StackBusyError

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_ssm import SSMClient

    from release_pipeline.config import StageRevertConfig

logger = Logger()

STAGE_EVENT = "CodePipeline Stage Execution State Change"
REVERT_STATES = frozenset({"FAILED", "STOPPED"})
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
TEMPLATE_BODY_LIMIT = 51_200


@dataclass(frozen=True)
class StageEvent:
    pipeline: str
    execution_id: str
    stage: str
    state: str

    @classmethod
    def parse(cls, event: Mapping[str, Any]) -> StageEvent | None:
        """The stage state change in ``event``, or ``None`` when it is not one."""
        detail = event.get("detail")
        if event.get("detail-type") != STAGE_EVENT or not isinstance(detail, Mapping):
            return None
        values = [detail.get(key) for key in ("pipeline", "execution-id", "stage", "state")]
        if not all(isinstance(value, str) and value for value in values):
            return None
        return cls(*values)  # type: ignore[arg-type]


@dataclass
class RevertOutcome:
    ignored: str | None = None
    actions: list[str] = field(default_factory=list)


def ignore_reason(event: StageEvent | None, config: StageRevertConfig) -> str | None:
    if event is None:
        return "not a CodePipeline stage state change event"
    if event.pipeline != config.pipeline_name:
        return f"event for pipeline {event.pipeline!r}, not {config.pipeline_name!r}"
    if event.stage != config.stage_name:
        return f"event for stage {event.stage!r}, not {config.stage_name!r}"
    if event.state not in REVERT_STATES:
        return f"stage state {event.state} needs no revert"
    return None


def revert_stage(
    *,
    event: StageEvent | None,
    config: StageRevertConfig,
    cloudformation_for: Callable[[str], CloudFormationClient],
    ssm: SSMClient,
    s3: S3Client,
) -> RevertOutcome:
    reason = ignore_reason(event, config)
    if reason is not None or event is None:
        return RevertOutcome(ignored=reason)
    outcome = RevertOutcome()
    primary = config.stacks.regions.primary
    stage_cfn = cloudformation_for(primary)
    if config.delete_stage_stack:
        outcome.actions.append(delete_stack(stage_cfn, config.stage_stack_name, primary, config))
    else:
        record = releases.read_record(ssm, config.release_record_parameter)
        if record is None:
            action = delete_stack(stage_cfn, config.stage_stack_name, primary, config)
            outcome.actions.append(f"{action} (nothing released yet)")
        else:
            outcome.actions.append(revert_to_release(stage_cfn, s3, record, config))
    change_set = f"{config.change_set_prefix}{event.execution_id}"
    for role, region, stack in config.stacks.targets():
        outcome.actions.append(clean_production(cloudformation_for(region), role, region, stack, change_set))
    return outcome


def delete_stack(cfn: CloudFormationClient, name: str, region: str, config: StageRevertConfig) -> str:
    state = stacks.describe(cfn, name, region)
    if not state.exists:
        return f"stage stack {name} is already gone"
    if state.status == "DELETE_IN_PROGRESS":
        return f"stage stack {name} is already being deleted"
    if state.status is not None and stacks.is_busy(state.status):
        raise StackBusyError(f"stage stack {name} is {state.status}; retry when it settles")
    cfn.delete_stack(StackName=name, RoleARN=config.cloudformation_role_arn)
    return f"deleting stage stack {name} (was {state.status})"


def revert_to_release(
    cfn: CloudFormationClient, s3: S3Client, record: releases.ReleaseRecord, config: StageRevertConfig
) -> str:
    name = config.stage_stack_name
    state = stacks.describe(cfn, name, config.stacks.regions.primary)
    if state.status is not None and stacks.is_busy(state.status):
        raise StackBusyError(f"stage stack {name} is {state.status}; retry when it settles")
    if state.status in {"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", stacks.PLACEHOLDER}:
        # A stack whose creation failed cannot be updated; it holds nothing worth keeping.
        return delete_stack(cfn, name, config.stacks.regions.primary, config) + ", it never finished creating"
    what = f"released source of execution {record.execution_id}"
    try:
        body = artifacts.Archive(artifacts.download(s3, record.source, record.version_id, what=what), what).read(
            record.template_path
        )
    except ArtifactError as error:
        raise ReleaseRecordError(f"Cannot revert the stage stack: {error}") from None
    if len(body) > TEMPLATE_BODY_LIMIT:
        raise ReleaseRecordError(
            f"The released template is {len(body)} bytes, over the {TEMPLATE_BODY_LIMIT} bytes "
            "CloudFormation accepts inline; revert the stage stack by hand"
        )
    request: dict[str, Any] = {
        "StackName": name,
        "TemplateBody": body.decode(),
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(record.stage_parameters.items())],
        "Capabilities": CAPABILITIES,
        "RoleARN": config.cloudformation_role_arn,
    }
    if not state.exists or state.status == "DELETE_FAILED":
        if state.status == "DELETE_FAILED":
            raise StackBusyError(f"stage stack {name} is DELETE_FAILED; delete or fix it by hand")
        cfn.create_stack(**request)
        return f"re-creating stage stack {name} from release {record.execution_id}"
    try:
        cfn.update_stack(**request)
    except ClientError as error:
        if stacks.is_no_updates(error):
            return f"stage stack {name} already matches release {record.execution_id}"
        raise
    return f"reverting stage stack {name} to release {record.execution_id}"


def clean_production(cfn: CloudFormationClient, role: str, region: str, stack: str, change_set: str) -> str:
    """Delete this execution's change set; remove the stack if it is only this change's placeholder."""
    state = stacks.describe(cfn, stack, region)
    if not state.exists:
        return f"{role} stack {stack} in {region} does not exist"
    if state.status == stacks.PLACEHOLDER:
        others = [
            summary["ChangeSetName"]
            for summary in cfn.list_change_sets(StackName=stack).get("Summaries", [])
            if summary.get("ChangeSetName") != change_set
        ]
        if not others:
            cfn.delete_stack(StackName=stack)
            return f"removing never-deployed {role} placeholder {stack} in {region}"
        kept = f"{role} placeholder {stack} in {region} kept: other change sets wait on it ({', '.join(others)})"
        if _delete_change_set(cfn, stack, change_set):
            kept += "; its unapproved change set was deleted"
        return kept
    if not _delete_change_set(cfn, stack, change_set):
        return f"{role} stack {stack} in {region} left as it is"
    return f"{role} stack {stack} in {region} left as it is; its unapproved change set was deleted"


def _delete_change_set(cfn: CloudFormationClient, stack: str, change_set: str) -> bool:
    """Delete ``change_set`` of ``stack``; ``False`` when it was not there (already deleted)."""
    try:
        cfn.delete_change_set(StackName=stack, ChangeSetName=change_set)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in {"ChangeSetNotFound", "ValidationError"}:
            raise
        return False
    return True
