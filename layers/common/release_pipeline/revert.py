"""Stage revert: bring the stage stack back after a rejected or failed change.

Delete mode: the temporary stage stack is deleted. Retain mode: the stage stack is updated back to the
last released template and stage parameters, or deleted when nothing was ever released.

Production is touched only where AWS leaves it unusable or the Regions out of step:
- a production stack whose first creation failed (ROLLBACK_COMPLETE) is deleted: it never held a
  release, and CloudFormation accepts nothing but a delete on it;
- when a deploy stage fails after an earlier one succeeded in the same execution, the earlier Regions
  return to the last release (they ran an approved change; now every Region runs one version), and the
  topic is told what each Region runs.
Without a deployment map (DEPLOYMENT_MAP_PATH empty), the execution's reviewed change sets and a first
release's REVIEW_IN_PROGRESS placeholders are kept, so that Retry of the failed stage deploys exactly what
was reviewed; the execution gate removes them once a later execution has passed it. With a map, nothing of
the review is left behind: the execution's change set goes from every target of the map it reviewed, and
each placeholder that holds nothing else with it (:mod:`release_pipeline.review`). A Retry then has no
reviewed change set to deploy and fails without touching a stack: a new execution makes a new review.

Every step is idempotent: EventBridge delivers at least once, and a second call finds nothing to do.
Each stack operation carries a ClientRequestToken named for the execution, so a duplicate delivery that
finds a stack busy with this revert's own operation is a no-op. A stack busy with anything else raises
:class:`StackBusyError`, so Lambda retries the event and, in the end, sends it to the dead-letter queue
(with an alarm); nothing is lost.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache, partial
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes.event_bridge_event import EventBridgeEvent
from botocore.exceptions import ClientError

from release_pipeline import artifacts, notifications, releases, stacks
from release_pipeline.config import (
    FromEnv,
    ProductionStacks,
    flag,
    names,
    optional_text,
    pairs,
    production_stacks,
    text,
)
from release_pipeline.errors import (
    ArtifactError,
    ConfigurationError,
    ReleaseRecordError,
    StackBusyError,
    StackStuckError,
)
from release_pipeline.values import S3Location

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudformation.literals import CapabilityType
    from mypy_boto3_codepipeline import CodePipelineClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_ssm import SSMClient

    from release_pipeline import review


@dataclass(frozen=True)
class StageRevertConfig(FromEnv):
    """stage-revert: the pipeline and stages it watches, the stacks and what a revert needs."""

    FUNCTION = "stage-revert"

    pipeline_name: str = text("PIPELINE_NAME")
    stage_name: str = text("STAGE_NAME")
    delete_stage_stack: bool = flag("DELETE_STAGE_STACK", ("Yes", "No"), true="Yes")
    stage_stack_name: str = text("STAGE_STACK_NAME")
    stacks: ProductionStacks = production_stacks()
    release_record_parameter: str = text("RELEASE_RECORD_PARAMETER")
    cloudformation_role_arn: str = text("CLOUDFORMATION_ROLE_ARN")
    change_set_prefix: str = text("CHANGE_SET_PREFIX")
    watched_stages: tuple[str, ...] = names("WATCHED_STAGES")
    deploy_roles: dict[str, str] = pairs("DEPLOY_STAGES", ("primary", "secondary"))
    topic_arn: str = text("TOPIC_ARN")
    # The deployment map's path in the application repository. Empty: the two production stacks only.
    deployment_map_path: str = optional_text("DEPLOYMENT_MAP_PATH")

    @property
    def deploy_stages(self) -> tuple[str, ...]:
        """The production deploy stages, in the order the pipeline runs them."""
        return tuple(self.deploy_roles)


logger = Logger()

STAGE_EVENT = "CodePipeline Stage Execution State Change"
REVERT_STATES = frozenset({"FAILED", "STOPPED"})
# A stage's latest execution status (GetPipelineState) once it has failed or been stopped.
FINISHED_BADLY = frozenset({"Failed", "Stopped", "Cancelled"})
CAPABILITIES: list[CapabilityType] = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]


@dataclass(frozen=True)
class StageEvent:
    """A CodePipeline stage state change, as EventBridge delivers it."""

    pipeline: str
    execution_id: str
    stage: str
    state: str
    event_id: str = ""  # EventBridge's id: the same on every delivery and retry of one event

    @classmethod
    def parse(cls, event: Mapping[str, Any]) -> StageEvent | None:
        """The stage state change in ``event``, read through Powertools' :class:`EventBridgeEvent`, or
        ``None`` when it is not one."""
        if not isinstance(event, Mapping):
            return None
        bridge = EventBridgeEvent(dict(event))
        try:
            detail_type, detail = bridge.detail_type, bridge.detail
        except KeyError:
            return None
        if detail_type != STAGE_EVENT or not isinstance(detail, Mapping):
            return None
        values = [detail.get(key) for key in ("pipeline", "execution-id", "stage", "state")]
        if not all(isinstance(value, str) and value for value in values):
            return None
        event_id = bridge.get("id")  # the data class's get_id raises when it is missing
        pipeline, execution_id, stage, state = (str(value) for value in values)
        return cls(pipeline, execution_id, stage, state, event_id if isinstance(event_id, str) else "")


@dataclass
class RevertOutcome:
    """What a stage event led to: the reason it was ignored, or the actions taken."""

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
    sns: SNSClient,
    reach: review.Reach | None = None,
) -> RevertOutcome:
    """Revert after ``event``. Every step runs even when an earlier one fails; the first error is then
    raised, so the event is retried (and in the end kept in the dead-letter queue). ``reach`` reaches a
    deployment map's targets; it is needed only when DEPLOYMENT_MAP_PATH is set."""
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
    token = revert_token(event)
    # The release record is read once, and only by the steps that need it (delete mode never does).
    release = cache(partial(releases.read_record, ssm, config.release_record_parameter))

    def step(action: Callable[..., str], *args: Any) -> str | None:
        try:
            done = action(*args)
        except Exception as error:  # every step runs; the first error is raised below
            logger.exception("Revert step failed")
            outcome.actions.append(f"failed: {error}")
            errors.append(error)
            return None
        outcome.actions.append(done)
        return done

    def steps(action: Callable[..., list[str]], *args: Any) -> None:
        """A step that reports one line per target; on failure, every target's line is in the error's notes."""
        try:
            outcome.actions.extend(action(*args))
        except Exception as error:  # every step runs; the first error is raised below
            logger.exception("Revert step failed")
            outcome.actions.extend(getattr(error, "__notes__", None) or [f"failed: {error}"])
            errors.append(error)

    owner = latest.get(config.stage_name, (None, None))[0]
    if owner == event.execution_id:
        step(restore_stage_stack, cloudformation_for(config.stacks.regions.primary), release, s3, config, token)
    else:
        outcome.actions.append(
            f"stage stack {config.stage_stack_name} left as it is: execution {owner} has reached "
            f"the {config.stage_name} stage since"
        )
    # Without a map, the execution's reviewed change sets (and a first release's placeholders) are kept,
    # so that a Retry of the failed stage deploys exactly what was reviewed; the execution gate removes
    # them once a later execution has passed it. With a map, remove_execution_review removes them below.
    for role, region, stack in config.stacks.targets():
        step(remove_failed_creation, cloudformation_for(region), role, region, stack, config, token)
    returned: dict[str, str] = {}
    for role, region, stack in regions_to_return(event, config, latest):
        done = step(return_to_release, cloudformation_for(region), release, s3, role, region, stack, config, token)
        returned[role] = done if done is not None else f"NOT returned ({outcome.actions[-1]})"
    if returned:
        # A Retry of the failed deploy would now put the new version next to a Region that runs the
        # release again: the execution's remaining change sets go, and the retry fails cleanly.
        change_set = f"{config.change_set_prefix}{event.execution_id}"
        for _, region, stack in config.stacks.targets():
            step(remove_change_set, cloudformation_for(region), stack, region, change_set)
    if config.deployment_map_path:
        steps(remove_execution_review, pipeline, s3, reach, event, config)
    if event.stage in config.deploy_stages and event.state == "FAILED":
        step(report_regions, sns, cloudformation_for, release, event, config, returned)
    if errors:
        raise errors[0]
    return outcome


def revert_token(event: StageEvent) -> str:
    """The ClientRequestToken of every stack operation the revert of ``event`` starts. EventBridge
    gives an event the same id on every delivery and Lambda on every retry, so a duplicate recognises
    the operation as its own (CloudFormation shows the token on the stack's events) instead of taking a
    busy stack for a failure; another failure of the same execution (after a Retry) is a new event."""
    key = event.event_id or event.execution_id
    return stacks.REVERT_TOKEN_PREFIX + re.sub(r"[^a-zA-Z0-9-]", "-", key)[: 128 - len(stacks.REVERT_TOKEN_PREFIX)]


def _busy(cfn: CloudFormationClient, state: stacks.StackState, token: str) -> str:
    """The message for a stack this revert already changes; raises StackBusyError for anyone else's."""
    if stacks.latest_request_token(cfn, state.name) == token:
        return f"{state.name} in {state.region} is {state.status}: this revert already started it"
    raise StackBusyError(f"stack {state.name} in {state.region} is {state.status}; retry when it settles")


def regions_to_return(
    event: StageEvent, config: StageRevertConfig, latest: Mapping[str, tuple[str | None, str | None]]
) -> list[tuple[str, str, str]]:
    """The production targets that this execution updated before a later deploy stage failed: each
    ran an approved change, so it returns to the release the other Regions still run."""
    if event.state != "FAILED" or event.stage not in config.deploy_stages:
        return []
    earlier = config.deploy_stages[: config.deploy_stages.index(event.stage)]
    targets = {role: (role, region, stack) for role, region, stack in config.stacks.targets()}
    return [
        targets[config.deploy_roles[stage]]
        for stage in earlier
        if latest.get(stage) == (event.execution_id, "Succeeded")
    ]


Release = Callable[[], releases.ReleaseRecord | None]


def restore_stage_stack(
    cfn: CloudFormationClient, release: Release, s3: S3Client, config: StageRevertConfig, token: str
) -> str:
    """Delete mode: delete the stage stack. Retain mode: revert it to the release, or delete it when
    nothing was released yet."""
    primary = config.stacks.regions.primary
    if config.delete_stage_stack:
        return delete_stack(cfn, config.stage_stack_name, primary, config, token)
    record = release()
    if record is None:
        return delete_stack(cfn, config.stage_stack_name, primary, config, token) + " (nothing released yet)"
    return revert_to_release(cfn, s3, record, config, token)


def delete_stack(cfn: CloudFormationClient, name: str, region: str, config: StageRevertConfig, token: str) -> str:
    state = stacks.describe(cfn, name, region)
    if not state.exists:
        return f"stage stack {name} is already gone"
    if state.status == "DELETE_IN_PROGRESS":
        return f"stage stack {name} is already being deleted"
    if state.status is not None and stacks.is_busy(state.status):
        return "stage stack " + _busy(cfn, state, token)
    start_delete(cfn, name, config, token)
    return f"deleting stage stack {name} (was {state.status})"


def start_delete(cfn: CloudFormationClient, stack: str, config: StageRevertConfig, token: str) -> None:
    """Delete a stack with the CloudFormation execution role, under this revert's request token."""
    cfn.delete_stack(StackName=stack, RoleARN=config.cloudformation_role_arn, ClientRequestToken=token)


def revert_to_release(
    cfn: CloudFormationClient, s3: S3Client, record: releases.ReleaseRecord, config: StageRevertConfig, token: str
) -> str:
    name = config.stage_stack_name
    primary = config.stacks.regions.primary
    state = stacks.describe(cfn, name, primary)
    if state.status is not None and stacks.is_busy(state.status):
        return "stage stack " + _busy(cfn, state, token)
    if state.status == "UPDATE_ROLLBACK_FAILED":
        # No update is possible until the rollback finishes: continue it, and retry the revert later.
        cfn.continue_update_rollback(StackName=name, RoleARN=config.cloudformation_role_arn)
        raise StackBusyError(f"stage stack {name} was UPDATE_ROLLBACK_FAILED; its rollback was continued, retry")
    if state.status == "DELETE_FAILED":
        raise StackStuckError(f"stage stack {name} is DELETE_FAILED: delete what CloudFormation could not, by hand")
    if state.status in stacks.FAILED_CREATION | {stacks.PLACEHOLDER}:
        # A stack whose creation failed cannot be updated; it holds nothing worth keeping.
        return delete_stack(cfn, name, primary, config, token) + ", it never finished creating"
    body = released_template(s3, record)
    request: dict[str, Any] = {
        "StackName": name,
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(record.stage_parameters.items())],
        "Capabilities": CAPABILITIES,
        "RoleARN": config.cloudformation_role_arn,
        "ClientRequestToken": token,
    }
    request |= template_argument(s3, record, body, primary)
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


def released_template(s3: S3Client, record: releases.ReleaseRecord) -> bytes:
    what = f"released source of execution {record.execution_id}"
    try:
        return artifacts.Archive(artifacts.download(s3, record.source, record.version_id, what=what), what).read(
            record.template_path
        )
    except ArtifactError as error:
        raise ReleaseRecordError(f"Cannot read the released template: {error}") from None


def template_argument(s3: S3Client, record: releases.ReleaseRecord, body: bytes, region: str) -> dict[str, str]:
    """TemplateBody when CloudFormation takes it inline; otherwise the template is kept beside the
    released source and passed as TemplateURL (up to 1 MB)."""
    if len(body) <= stacks.TEMPLATE_BODY_LIMIT:
        return {"TemplateBody": body.decode()}
    key = releases.release_template_key(record.execution_id)
    artifacts.upload(s3, S3Location(record.bucket, key), body, None, content_type="text/plain")
    return {"TemplateURL": f"https://{record.bucket}.s3.{region}.amazonaws.com/{quote(key)}"}


def remove_failed_creation(
    cfn: CloudFormationClient, role: str, region: str, stack: str, config: StageRevertConfig, token: str
) -> str:
    """A production stack whose first creation failed (ROLLBACK_COMPLETE) can only be deleted: every
    later change set on it fails. It never ran anything, so it never held a release: remove it, so the
    next change creates it afresh. Any other production stack is left as it is."""
    state = stacks.describe(cfn, stack, region)
    if not state.exists:
        return f"{role} stack {stack} in {region} does not exist"
    if state.status == "DELETE_IN_PROGRESS":
        return f"{role} stack {stack} in {region} is already being deleted"
    if state.status not in stacks.FAILED_CREATION:
        kept = ""
        if state.status == stacks.PLACEHOLDER and not config.deployment_map_path:
            kept = " (its reviewed change sets are kept for a retry)"
        return f"{role} stack {stack} in {region} left as it is ({state.status}){kept}"
    start_delete(cfn, stack, config, token)
    return f"removing {role} stack {stack} in {region}: its first creation failed ({state.status}), never released"


def return_to_release(
    cfn: CloudFormationClient,
    release: Release,
    s3: S3Client,
    role: str,
    region: str,
    stack: str,
    config: StageRevertConfig,
    token: str,
) -> str:
    """Start bringing a production stack that this execution updated back to the release, after a later
    Region failed: the Regions then run one version again. Its parameters keep their current values
    (the Region's parameter set is the solution's, not the release's). CloudFormation updates in the
    background: the update is started here and not waited for (Lambda's two retries of an event span
    about three minutes, less than many updates); a return CloudFormation rolls back is caught by the
    next execution's gate."""
    state = stacks.describe(cfn, stack, region)
    if not state.exists:
        return f"{role} stack {stack} in {region} does not exist: nothing to return"
    ours = stacks.latest_request_token(cfn, stack) == token
    if state.status is not None and stacks.is_busy(state.status):
        if ours:
            return f"{role} stack {stack} in {region} is already returning to the release ({state.status})"
        raise StackBusyError(f"{role} stack {stack} in {region} is {state.status}; retry when it settles")
    if ours and state.status in stacks.ROLLED_BACK_UPDATE:
        raise StackStuckError(
            f"returning {role} stack {stack} in {region} to the release failed: CloudFormation rolled the return "
            f"back ({state.status}). It still runs this execution's change: fix the cause, then update it by hand"
        )
    record = release()
    if record is None:
        if not stacks.was_updated(cfn, stack):
            # Created by this execution (a first release) and never updated since: the release is nothing.
            start_delete(cfn, stack, config, token)
            return f"removing {role} stack {stack} in {region}: this first release failed in another Region"
        raise StackStuckError(
            f"{role} stack {stack} in {region} runs this execution's change but there is no release record "
            "to return it to: update it by hand"
        )
    body = released_template(s3, record)
    if len(body) > stacks.TEMPLATE_BODY_LIMIT:
        raise StackStuckError(
            f"the released template of execution {record.execution_id} is over {stacks.TEMPLATE_BODY_LIMIT:,} "
            f"bytes and cannot be passed inline to {region}: update {role} stack {stack} to it by hand"
        )
    current = set(state.parameters)
    wanted = {p["ParameterKey"] for p in cfn.get_template_summary(TemplateBody=body.decode()).get("Parameters", [])}
    try:
        cfn.update_stack(
            StackName=stack,
            TemplateBody=body.decode(),
            Parameters=[{"ParameterKey": key, "UsePreviousValue": True} for key in sorted(wanted & current)],
            Capabilities=CAPABILITIES,
            RoleARN=config.cloudformation_role_arn,
            ClientRequestToken=token,
        )
    except ClientError as error:
        if stacks.is_no_updates(error):
            return f"{role} stack {stack} in {region} already runs release {record.execution_id}"
        raise
    after = stacks.describe(cfn, stack, region)
    if after.status in stacks.ROLLED_BACK_UPDATE:
        raise StackStuckError(
            f"returning {role} stack {stack} in {region} to release {record.execution_id} failed: CloudFormation "
            f"rolled the return back ({after.status}). It still runs this execution's change: fix the cause, then "
            "update it by hand"
        )
    return f"returning {role} stack {stack} in {region} to release {record.execution_id} ({after.status})"


def remove_execution_review(
    pipeline: CodePipelineClient,
    s3: S3Client,
    reach: review.Reach | None,
    event: StageEvent,
    config: StageRevertConfig,
) -> list[str]:
    """With a deployment map: remove the execution's change set from every target of the map it reviewed
    (read from its own source artifact), and every placeholder that holds nothing else."""
    if reach is None:
        raise ConfigurationError("DEPLOYMENT_MAP_PATH is set, but stage-revert was given no way to reach the targets")
    from release_pipeline import (
        review,  # the map modules load only with a map: a cold start without one does not pay for them
    )

    targets = review.reviewed_targets(
        pipeline,
        s3,
        reach,
        pipeline_name=config.pipeline_name,
        execution_id=event.execution_id,
        map_path=config.deployment_map_path,
        production=config.stacks,
        home_execution_role_arn=config.cloudformation_role_arn,
    )
    return review.remove_review(targets, event.execution_id, reach.cloudformation_for, config.change_set_prefix)


def remove_change_set(cfn: CloudFormationClient, stack: str, region: str, change_set: str) -> str:
    if stacks.delete_change_set(cfn, stack, change_set):
        return f"deleted change set {change_set} of {stack} in {region}: a Retry could no longer deploy it alone"
    return f"no change set {change_set} left on {stack} in {region}"


def report_regions(
    sns: SNSClient,
    cloudformation_for: Callable[[str], CloudFormationClient],
    release: Release,
    event: StageEvent,
    config: StageRevertConfig,
    returned: Mapping[str, str],
) -> str:
    """After a failed production deploy, tell the topic what each Region runs, from what happened."""
    record = release()
    released = f"release {record.execution_id} (commit {record.commit_id})" if record else "no release yet"
    failed_role = config.deploy_roles[event.stage]
    lines = [
        f"Execution {event.execution_id} failed at {event.stage}. The release record is unchanged: {released}.",
        "",
        "Each production Region now:",
    ]
    for role, region, stack in config.stacks.targets():
        state = stacks.describe(cloudformation_for(region), stack, region)
        if role in returned:
            runs = returned[role]
        elif role == failed_role:
            runs = version_of(state.status, released)
        else:
            runs = f"not changed by this execution: {released}" if state.exists else "runs nothing"
        lines.append(f"- {role} {stack} in {region}: {state.status or 'no stack'}: {runs}")
    subject = f"{event.stage} failed: what each Region runs ({config.pipeline_name})"
    notifications.publish_report(sns, config.topic_arn, subject, lines)
    return f"reported each Region's version to {config.topic_arn}"


_VERSION_BY_STATUS = {
    "UPDATE_ROLLBACK_COMPLETE": "CloudFormation rolled the failed update back: it runs {released}",
    "UPDATE_ROLLBACK_IN_PROGRESS": "CloudFormation is rolling the failed update back to {released}",
    "UPDATE_ROLLBACK_FAILED": "CloudFormation could not roll the failed update back: fix it by hand",
    "DELETE_IN_PROGRESS": "its creation failed; being removed: it runs nothing",
    "ROLLBACK_COMPLETE": "its creation failed: it runs nothing",
    "ROLLBACK_IN_PROGRESS": "its creation failed: it runs nothing",
    "REVIEW_IN_PROGRESS": "never deployed: it runs nothing",
}


def version_of(status: str | None, released: str) -> str:
    """What a stack whose deploy just failed runs, from its status."""
    if status is None:
        return "its creation failed and it was removed: it runs nothing"
    unexpected = "status not expected after a failed deploy: check its events"
    return _VERSION_BY_STATUS.get(status, unexpected).format(released=released)
