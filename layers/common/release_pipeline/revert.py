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
from urllib.parse import quote

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from release_pipeline import artifacts, releases, stacks
from release_pipeline.errors import ArtifactError, ReleaseRecordError, StackBusyError, StackStuckError
from release_pipeline.jobs import S3Location

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_codepipeline import CodePipelineClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_ssm import SSMClient

    from release_pipeline.config import StageRevertConfig

logger = Logger()

STAGE_EVENT = "CodePipeline Stage Execution State Change"
REVERT_STATES = frozenset({"FAILED", "STOPPED"})
# A stage's latest execution status (GetPipelineState) once it has failed or been stopped.
FINISHED_BADLY = frozenset({"Failed", "Stopped", "Cancelled"})
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
    if event.stage not in config.watched_stages:
        return f"event for stage {event.stage!r}, not one of {', '.join(config.watched_stages)}"
    if event.state not in REVERT_STATES:
        return f"stage state {event.state} needs no revert"
    return None


def latest_executions(pipeline: CodePipelineClient, name: str) -> dict[str, tuple[str | None, str | None]]:
    """Stage name -> (id, status) of the latest execution in that stage."""
    state = pipeline.get_pipeline_state(name=name)
    return {
        stage["stageName"]: (
            stage.get("latestExecution", {}).get("pipelineExecutionId"),
            stage.get("latestExecution", {}).get("status"),
        )
        for stage in state.get("stageStates", [])
        if "stageName" in stage
    }


def revert_stage(
    *,
    event: StageEvent | None,
    config: StageRevertConfig,
    cloudformation_for: Callable[[str], CloudFormationClient],
    pipeline: CodePipelineClient,
    ssm: SSMClient,
    s3: S3Client,
) -> RevertOutcome:
    """Revert after ``event``. Every step runs even when an earlier one fails; the first error is then
    raised, so the event is retried (and in the end kept in the dead-letter queue)."""
    reason = ignore_reason(event, config)
    if reason is not None or event is None:
        return RevertOutcome(ignored=reason)
    # The pipeline may have moved on since the event was sent (EventBridge and Lambda retry late):
    # never touch what a retried stage or a later execution now owns.
    latest = latest_executions(pipeline, config.pipeline_name)
    failed_id, failed_status = latest.get(event.stage, (None, None))
    if failed_id == event.execution_id and failed_status not in FINISHED_BADLY:
        return RevertOutcome(ignored=f"stage {event.stage} of execution {failed_id} is {failed_status} again: retried")
    outcome = RevertOutcome()
    errors: list[Exception] = []

    def step(action: Callable[..., str], *args: Any) -> None:
        try:
            outcome.actions.append(action(*args))
        except Exception as error:  # every step runs; the first error is raised below
            logger.exception("Revert step failed")
            outcome.actions.append(f"failed: {error}")
            errors.append(error)

    owner = latest.get(config.stage_name, (None, None))[0]
    if owner == event.execution_id:
        step(restore_stage_stack, cloudformation_for(config.stacks.regions.primary), ssm, s3, config)
    else:
        outcome.actions.append(
            f"stage stack {config.stage_stack_name} left as it is: execution {owner} has reached "
            f"the {config.stage_name} stage since"
        )
    change_set = f"{config.change_set_prefix}{event.execution_id}"
    for role, region, stack in config.stacks.targets():
        step(clean_production, cloudformation_for(region), role, region, stack, change_set)
    if errors:
        raise errors[0]
    return outcome


def restore_stage_stack(cfn: CloudFormationClient, ssm: SSMClient, s3: S3Client, config: StageRevertConfig) -> str:
    """Delete mode: delete the stage stack. Retain mode: revert it to the release, or delete it when
    nothing was released yet."""
    primary = config.stacks.regions.primary
    if config.delete_stage_stack:
        return delete_stack(cfn, config.stage_stack_name, primary, config)
    record = releases.read_record(ssm, config.release_record_parameter)
    if record is None:
        return delete_stack(cfn, config.stage_stack_name, primary, config) + " (nothing released yet)"
    return revert_to_release(cfn, s3, record, config)


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
    if state.status == "UPDATE_ROLLBACK_FAILED":
        # No update is possible until the rollback finishes: continue it, and retry the revert later.
        cfn.continue_update_rollback(StackName=name, RoleARN=config.cloudformation_role_arn)
        raise StackBusyError(f"stage stack {name} was UPDATE_ROLLBACK_FAILED; its rollback was continued, retry")
    if state.status == "DELETE_FAILED":
        raise StackStuckError(f"stage stack {name} is DELETE_FAILED: delete what CloudFormation could not, by hand")
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
    request: dict[str, Any] = {
        "StackName": name,
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(record.stage_parameters.items())],
        "Capabilities": CAPABILITIES,
        "RoleARN": config.cloudformation_role_arn,
    }
    request |= template_argument(s3, record, body, config.stacks.regions.primary)
    if not state.exists:
        cfn.create_stack(**request)
        return f"re-creating stage stack {name} from release {record.execution_id}"
    try:
        cfn.update_stack(**request)
    except ClientError as error:
        if stacks.is_no_updates(error):
            return f"stage stack {name} already matches release {record.execution_id}"
        raise
    return f"reverting stage stack {name} to release {record.execution_id}"


def template_argument(s3: S3Client, record: releases.ReleaseRecord, body: bytes, region: str) -> dict[str, str]:
    """TemplateBody when CloudFormation takes it inline; otherwise the template is kept beside the
    released source and passed as TemplateURL (up to 1 MB)."""
    if len(body) <= TEMPLATE_BODY_LIMIT:
        return {"TemplateBody": body.decode()}
    key = releases.release_template_key(record.execution_id)
    artifacts.upload(s3, S3Location(record.bucket, key), body, None, content_type="text/plain")
    return {"TemplateURL": f"https://{record.bucket}.s3.{region}.amazonaws.com/{quote(key)}"}


def clean_production(cfn: CloudFormationClient, role: str, region: str, stack: str, change_set: str) -> str:
    """Delete this execution's change set; remove the stack if it is only this change's placeholder."""
    state = stacks.describe(cfn, stack, region)
    if not state.exists:
        return f"{role} stack {stack} in {region} does not exist"
    if state.status == stacks.PLACEHOLDER:
        others = [name for name in _change_set_names(cfn, stack) if name != change_set]
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


def _change_set_names(cfn: CloudFormationClient, stack: str) -> list[str]:
    names: list[str] = []
    token: str | None = None
    while True:
        page = (
            cfn.list_change_sets(StackName=stack, NextToken=token) if token else cfn.list_change_sets(StackName=stack)
        )
        names.extend(summary["ChangeSetName"] for summary in page.get("Summaries", []) if "ChangeSetName" in summary)
        token = page.get("NextToken")
        if not token:
            return names
