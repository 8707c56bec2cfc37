"""The rollout: each target's reviewed change set executed wave by wave, and undone when one fails.

A Step Functions state machine (``statemachines/rollout.asl.json``) runs the waves in order: a Map per
wave over its targets with the wave's concurrency, and Wait states while CloudFormation works or a
wave's bake time runs. For every step it invokes the deploy-target function, which makes one quick
CloudFormation request in the target's Region and account and answers at once: no function waits.

Why a function and not the state machine's AWS SDK integrations: those call the service in the state
machine's own Region only, and targets are in many Regions
(https://docs.aws.amazon.com/step-functions/latest/dg/concepts-access-cross-acct-resources.html covers
accounts, through ``Credentials.RoleArn``, not Regions).

Every step is idempotent and can be repeated by the state machine's retries: each stack operation the
rollout starts carries a ClientRequestToken made from the pipeline execution id, which CloudFormation
stamps on every event of that operation, so a step recognises what this execution already started.
The bake is CloudFormation's own: the wave's alarms and bake time are each change set's rollback
configuration, so CloudFormation rolls a target back when an alarm fires while it bakes
(https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-cfn-rollback-triggers.html).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError

from release_pipeline import artifacts, deployment_map, releases, stacks
from release_pipeline.config import FromEnv, text
from release_pipeline.errors import BadInputError, ConfigurationError, ReleaseRecordError, error_code
from release_pipeline.values import shorten

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudformation.literals import CapabilityType
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_ssm import SSMClient


@dataclass(frozen=True)
class RolloutConfig(FromEnv):
    """deploy-target: the release record a return reads, where the template and map are in it, and the
    application's stack name (a map target's stack when it names none)."""

    FUNCTION = "deploy-target"

    release_record_parameter: str = text("RELEASE_RECORD_PARAMETER")
    template_path: str = text("TEMPLATE_PATH")
    deployment_map_path: str = text("DEPLOYMENT_MAP_PATH")
    application_stack_name: str = text("APPLICATION_STACK_NAME")


# What a step answers; the state machine's Choice states branch on it.
IN_PROGRESS: Final = "IN_PROGRESS"  # poll again after the Wait state
DONE: Final = "DONE"  # the change is deployed and baked
UNCHANGED: Final = "UNCHANGED"  # the reviewed change set held no change: nothing was executed
ROLLED_BACK: Final = "ROLLED_BACK"  # CloudFormation rolled the change back (a resource or an alarm)
FAILED: Final = "FAILED"  # anything else: the rollout stops
# Answers of a return to the release.
RETURNED: Final = "RETURNED"
UNTOUCHED: Final = "UNTOUCHED"  # this execution never changed the target
FIRST_RELEASE: Final = "FIRST_RELEASE"  # created by this execution: reported, never deleted
NOT_RELEASED: Final = "NOT_RELEASED"  # not in the released map: reported, never deleted

CAPABILITIES: tuple[CapabilityType, ...] = ("CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND")
# ClientRequestToken: 1-128 characters, [a-zA-Z0-9][-a-zA-Z0-9]*
# https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_ExecuteChangeSet.html
EXECUTE_TOKEN_PREFIX: Final = "rollout-"  # noqa: S105 - a request token, not a secret
RETURN_TOKEN_PREFIX: Final = "rollout-return-"  # noqa: S105 - a request token, not a secret
_COMPLETE = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"})
_ROLLED_BACK = frozenset({"UPDATE_ROLLBACK_COMPLETE", "ROLLBACK_COMPLETE"})
# A stack this execution's CREATE change set made: its latest operation, a creation, finished or failed.
_CREATED = frozenset({"CREATE_COMPLETE", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "IMPORT_COMPLETE"})
_EVENT_PAGES = 5  # the newest events searched for an operation or its failure's reason (100 per page)
# CloudFormation's limit on TemplateBody: https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_UpdateStack.html
TEMPLATE_BODY_LIMIT: Final = 51_200
# A step's Detail is kept to this many characters: every return's detail is part of the execution's result,
# which Step Functions holds to 256 KB (https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html).
DETAIL_LIMIT: Final = 300


@dataclass(frozen=True)
class TargetStep:
    """One target as the state machine passes it to a step."""

    key: str  # account/Region/stack: the target's name in reports
    wave: str
    region: str
    stack_name: str
    change_set_name: str
    execution_id: str
    timeout_minutes: int
    deploy_role_arn: str | None  # None: the solution's own account
    execution_role_arn: str
    account: str | None

    @classmethod
    def parse(cls, event: Mapping[str, Any]) -> TargetStep:
        target = event.get("Target")
        if not isinstance(target, Mapping):
            raise BadInputError("a deploy-target step needs a Target object")
        problems: list[str] = []

        def field(name: str, optional: bool = False) -> str | None:
            value = target.get(name)
            if value is None and optional:
                return None
            if not isinstance(value, str) or not value:
                problems.append(f"Target.{name} must be a non-empty string")
                return ""
            return value

        timeout = target.get("TimeoutMinutes")
        if not isinstance(timeout, int) or isinstance(timeout, bool) or not 1 <= timeout <= 1440:
            problems.append("Target.TimeoutMinutes must be a whole number of minutes from 1 to 1440")
            timeout = 1
        values = {
            "key": field("Key"),
            "wave": field("Wave"),
            "region": field("Region"),
            "stack_name": field("StackName"),
            "change_set_name": field("ChangeSetName"),
            "execution_id": field("ExecutionId"),
            "deploy_role_arn": field("DeployRoleArn", optional=True),
            "execution_role_arn": field("ExecutionRoleArn"),
            "account": field("Account", optional=True),
        }
        if problems:
            raise BadInputError("; ".join(problems))
        return cls(timeout_minutes=timeout, **values)  # type: ignore[arg-type]

    @property
    def execute_token(self) -> str:
        return EXECUTE_TOKEN_PREFIX + self.execution_id

    @property
    def return_token(self) -> str:
        return RETURN_TOKEN_PREFIX + self.execution_id


@dataclass(frozen=True)
class StepResult:
    """What a step tells the state machine: its state, the stack's status and a line for the report."""

    state: str
    detail: str
    stack_status: str | None = None
    started_at: str | None = None
    wait_seconds: int | None = None  # IN_PROGRESS: how long the state machine waits before the next check

    def to_event(self, target: TargetStep, poll_seconds: int) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "State": self.state,
            "Detail": shorten(self.detail, DETAIL_LIMIT),
            "Key": target.key,
            "Wave": target.wave,
            "StackStatus": self.stack_status,
            # Always present: a state machine path to a missing field is a runtime error (States.Runtime).
            "StartedAt": self.started_at,
            "WaitSeconds": poll_seconds if self.wait_seconds is None else self.wait_seconds,
        }
        return answer


# A CloudFormation client for a target: its Region, and the deploy role to assume in another account.
CloudFormationFor = Callable[[str, str | None], "CloudFormationClient"]


def step(
    event: Mapping[str, Any],
    *,
    cloudformation_for: CloudFormationFor,
    release: Callable[[], ReleasedSource | None],
    now: datetime | None = None,
) -> dict[str, Any]:
    """Run one step (``Action``: execute, status or return) for the target in ``event``. ``PollSeconds``
    (the rollout's poll interval; 30 when absent) is the shortest wait an answer gives before the next check,
    ``StartedAt`` (from the step's previous answer) when the step began.

    A return never raises: its error is its answer (FAILED, the error's type and message), so that one
    failed return leaves the others running and the report stays short."""
    if not isinstance(event, Mapping):
        raise BadInputError("a deploy-target step is a JSON object")
    action = event.get("Action")
    target = TargetStep.parse(event)
    poll = _poll_seconds(event.get("PollSeconds"))
    started = event.get("StartedAt")
    started_at = started if isinstance(started, str) and started else None
    moment = now or _entered_time(event.get("Now")) or datetime.now(UTC)
    if action == "return":
        try:
            cfn = cloudformation_for(target.region, target.deploy_role_arn)
            result = return_to_release(cfn, target, release, started_at, moment, poll)
        except Exception as error:  # noqa: BLE001 - recorded as the target's state, see the docstring
            result = StepResult(FAILED, f"{type(error).__name__}: {error}")
        return result.to_event(target, poll)
    cfn = cloudformation_for(target.region, target.deploy_role_arn)
    if action == "execute":
        result = execute(cfn, target, moment)
    elif action == "status":
        result = status(cfn, target, started_at, moment, poll)
    else:
        raise BadInputError(f"unknown deploy-target action {action!r}: execute, status or return")
    return result.to_event(target, poll)


def _entered_time(value: object) -> datetime | None:
    """The time the state machine entered the step's state (``$$.State.EnteredTime``, ISO 8601): the
    clock its Wait states run on, so a step's timeout and next wait are measured on it. None when absent
    or not a time (an execution started before the state machine passed it)."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _poll_seconds(value: object) -> int:
    """The rollout's poll interval from a step's event (an execution started before the state machine passed
    it gets the default)."""
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 3600:
        return value
    return deployment_map.DEFAULT_POLL_SECONDS


def _next_wait(started_at: str | None, now: datetime, poll_seconds: int) -> int:
    """How long to wait before the next check of a step that began at ``started_at``."""
    if not started_at:
        return poll_seconds
    elapsed = max((now - _parse_time(started_at)).total_seconds(), 0)
    return deployment_map.check_wait_seconds(elapsed, poll_seconds)


def _newest_token(cfn: CloudFormationClient, stack: str) -> str | None:
    """The ClientRequestToken of the stack's latest operation: its newest event carries it (every event of
    one operation carries the same token), so one page answers, however many resources the stack has."""
    events = cfn.describe_stack_events(StackName=stack).get("StackEvents", [])
    return events[0].get("ClientRequestToken") if events else None


def _failure_reason(cfn: CloudFormationClient, stack: str, token: str) -> str:
    """Why this execution's operation on the stack failed: its oldest failure event's reason (the
    cause; later ones are consequences), or the reason its rollback started with."""
    reasons: list[str] = []
    paginator = cfn.get_paginator("describe_stack_events")
    for number, page in enumerate(paginator.paginate(StackName=stack)):
        for event in page.get("StackEvents", []):
            if event.get("ClientRequestToken") != token:
                continue
            state = event.get("ResourceStatus", "")
            if state.endswith("_FAILED") or state in {"ROLLBACK_IN_PROGRESS", "UPDATE_ROLLBACK_IN_PROGRESS"}:
                reason = event.get("ResourceStatusReason")
                if reason:
                    reasons.append(f"{event.get('LogicalResourceId')}: {reason}")
        if number + 1 >= _EVENT_PAGES:
            break
    return reasons[-1] if reasons else "no failure reason in the stack's events"


def execute(cfn: CloudFormationClient, target: TargetStep, now: datetime) -> StepResult:
    """Execute the target's reviewed change set, once: a repeated step finds its own operation."""
    started = now.isoformat()
    try:
        change_set = cfn.describe_change_set(StackName=target.stack_name, ChangeSetName=target.change_set_name)
    except ClientError as error:
        if error_code(error) != "ChangeSetNotFound":
            raise
        # CloudFormation deletes a stack's change sets once one is executed: this step may be a retry.
        if _executed_by_us(cfn, target):
            return StepResult(IN_PROGRESS, "its change set is being executed", started_at=started)
        return StepResult(FAILED, f"the reviewed change set {target.change_set_name} is gone; nothing was executed")
    status = change_set["Status"]
    reason = change_set.get("StatusReason")
    if stacks.is_empty_change_set(status, reason):
        return StepResult(UNCHANGED, "no change to deploy")
    execution = change_set.get("ExecutionStatus")
    if status == "CREATE_COMPLETE" and execution == "AVAILABLE":
        cfn.execute_change_set(
            StackName=target.stack_name, ChangeSetName=target.change_set_name, ClientRequestToken=target.execute_token
        )
        return StepResult(IN_PROGRESS, "executing its reviewed change set", started_at=started)
    if execution in {"EXECUTE_IN_PROGRESS", "EXECUTE_COMPLETE"} and _executed_by_us(cfn, target):
        return StepResult(IN_PROGRESS, "its change set is being executed", started_at=started)
    return StepResult(
        FAILED,
        f"the reviewed change set {target.change_set_name} cannot be executed: {status}, {execution}"
        + (f" ({reason})" if reason else ""),
    )


def _executed_by_us(cfn: CloudFormationClient, target: TargetStep) -> bool:
    """Whether the stack's latest operation is this execution's change set."""
    try:
        return _newest_token(cfn, target.stack_name) == target.execute_token
    except ClientError as error:
        if stacks.is_missing_stack(error):
            return False
        raise


def status(
    cfn: CloudFormationClient,
    target: TargetStep,
    started_at: str | None,
    now: datetime,
    poll_seconds: int = deployment_map.DEFAULT_POLL_SECONDS,
) -> StepResult:
    """Where the execution of the target's change set stands (its deploy and its bake)."""
    state = stacks.describe(cfn, target.stack_name, target.region)
    if not state.exists or state.status is None:
        return StepResult(FAILED, "the stack is gone", stack_status=state.status)
    newest = _newest_token(cfn, target.stack_name)
    if newest != target.execute_token:
        return StepResult(
            FAILED, f"the stack's latest operation is not this execution's ({state.status})", stack_status=state.status
        )
    if stacks.is_busy(state.status):
        if _overdue(started_at, target.timeout_minutes, now):
            return StepResult(
                FAILED,
                f"still {state.status} after {target.timeout_minutes} minutes (DeployTimeoutInMinutes plus the bake)",
                stack_status=state.status,
            )
        return StepResult(
            IN_PROGRESS,
            f"{state.status}",
            stack_status=state.status,
            started_at=started_at,
            wait_seconds=_next_wait(started_at, now, poll_seconds),
        )
    if state.status in _COMPLETE:
        return StepResult(DONE, f"deployed and baked ({state.status})", stack_status=state.status)
    reason = _failure_reason(cfn, target.stack_name, target.execute_token)
    if state.status in _ROLLED_BACK:
        return StepResult(ROLLED_BACK, f"rolled back by CloudFormation: {reason}", stack_status=state.status)
    return StepResult(FAILED, f"{state.status}: {reason}", stack_status=state.status)


def _overdue(started_at: str | None, minutes: int, now: datetime) -> bool:
    if not started_at:
        return False
    return (now - _parse_time(started_at)).total_seconds() > minutes * 60


def _parse_time(started_at: str) -> datetime:
    try:
        return datetime.fromisoformat(started_at)
    except ValueError:
        raise BadInputError(f"StartedAt {started_at[:40]!r} is not an ISO 8601 time") from None


@dataclass(frozen=True)
class ReleasedSource:
    """The last release's source: its template and its deployment map, read from the released zip."""

    execution_id: str
    template: bytes
    deployment_map: deployment_map.DeploymentMap


@dataclass(frozen=True)
class Release:
    """The release record and the released source zip it names."""

    record: releases.ReleaseRecord
    archive: artifacts.Archive

    @property
    def what(self) -> str:
        return self.archive.what


def open_release(ssm: SSMClient, s3: S3Client, record_parameter: str) -> Release | None:
    """The last release's record and source, or ``None`` before the first release."""
    record = releases.read_record(ssm, record_parameter)
    if record is None:
        return None
    what = f"released source of execution {record.execution_id}"
    return Release(record, artifacts.Archive(artifacts.download(s3, record.source, record.version_id, what=what), what))


def released_map(
    release: Release, path: str, *, default_stack_name: str, home_account: str
) -> deployment_map.DeploymentMap | None:
    """The deployment map the release went out with, ``None`` when its source has none at ``path``;
    :class:`ReleaseRecordError` when it cannot be read."""
    try:
        return read_map(release.archive, path, default_stack_name=default_stack_name, home_account=home_account)
    except ConfigurationError as error:
        raise ReleaseRecordError(f"the deployment map of the {release.what} cannot be read: {error}") from None


def read_released_source(
    ssm: SSMClient, s3: S3Client, config: RolloutConfig, *, home_account: str
) -> ReleasedSource | None:
    """The release a failed rollout returns to, or ``None`` before the first release and when the release
    went out without a deployment map (its targets are then not known: each is reported, not touched)."""
    release = open_release(ssm, s3, config.release_record_parameter)
    if release is None:
        return None
    found = released_map(
        release,
        config.deployment_map_path,
        default_stack_name=config.application_stack_name,
        home_account=home_account,
    )
    if found is None:
        return None
    return ReleasedSource(release.record.execution_id, release.archive.read(config.template_path), found)


def read_map(
    archive: artifacts.Archive, path: str, *, default_stack_name: str, home_account: str
) -> deployment_map.DeploymentMap | None:
    """The deployment map at ``path`` in a source archive, its parameter files read from the same archive;
    ``None`` when the archive has no file there. Raises :class:`DeploymentMapError` naming every problem."""
    raw_map = archive.text(path)
    if raw_map is None:
        return None
    return deployment_map.parse(
        raw_map, read_file=archive.text, default_stack_name=default_stack_name, home_account=home_account
    )


def return_to_release(
    cfn: CloudFormationClient,
    target: TargetStep,
    release: Callable[[], ReleasedSource | None],
    started_at: str | None = None,
    now: datetime | None = None,
    poll_seconds: int = deployment_map.DEFAULT_POLL_SECONDS,
) -> StepResult:
    """Put a target this execution changed back to the last release. Repeated until it answers
    anything but IN_PROGRESS: it starts the return once, then follows it, for at most the target's
    ``TimeoutMinutes`` from the first step (``started_at``). A target whose latest operation is not this
    execution's is never touched: this execution did not change it, or someone changed it since."""
    moment = now or datetime.now(UTC)
    started = started_at or moment.isoformat()
    state = stacks.describe(cfn, target.stack_name, target.region)
    if not state.exists or state.status is None or state.status == stacks.PLACEHOLDER:
        return StepResult(UNTOUCHED, "never deployed by this execution", stack_status=state.status)
    newest = _newest_token(cfn, target.stack_name)
    ours = newest in {target.return_token, target.execute_token}
    if ours and stacks.is_busy(state.status) and _overdue(started, target.timeout_minutes, moment):
        return StepResult(
            FAILED,
            f"still {state.status} {target.timeout_minutes} minutes after its return began; left as it is",
            state.status,
        )
    if newest == target.return_token:
        result = _follow_return(cfn, target, state.status)
        return _waiting(result, started, moment, poll_seconds)
    if newest != target.execute_token:
        if not _operated(cfn, target.stack_name, target.execute_token):
            return StepResult(UNTOUCHED, "this execution did not change it", state.status)
        # This execution changed it, then someone else did: neither the release nor the reviewed change
        # runs there, and a person must look at it.
        return StepResult(
            FAILED, f"another operation followed this execution's ({state.status}); not touched", state.status
        )
    if stacks.is_busy(state.status):
        waiting = StepResult(IN_PROGRESS, f"waiting for this execution's {state.status} to settle", state.status)
        return _waiting(waiting, started, moment, poll_seconds)
    if state.status in _CREATED:
        return StepResult(FIRST_RELEASE, f"created by this execution ({state.status}); not deleted", state.status)
    if state.status == "UPDATE_ROLLBACK_COMPLETE":
        return StepResult(RETURNED, "CloudFormation already rolled it back to the release", state.status)
    if state.status != "UPDATE_COMPLETE":
        return StepResult(FAILED, f"{state.status}: cannot be returned to the release automatically", state.status)
    released = release()
    if released is None:
        return StepResult(
            NOT_RELEASED,
            "no release with a deployment map to return to; not touched",
            state.status,
        )
    placed = released.deployment_map.placed()
    key = _key(target, released.deployment_map.home_account)
    if key not in placed:
        return StepResult(NOT_RELEASED, "not in the released deployment map; not touched", state.status)
    _, released_target = placed[key]
    if len(released.template) > TEMPLATE_BODY_LIMIT:
        return StepResult(
            FAILED,
            f"the released template is over {TEMPLATE_BODY_LIMIT:,} bytes, CloudFormation's limit inline; "
            "returning it through a template URL in the target's Region is not supported yet",
            state.status,
        )
    parameters = sorted(released_target.parameters.items())
    try:
        cfn.update_stack(
            StackName=target.stack_name,
            TemplateBody=released.template.decode(),
            Parameters=[{"ParameterKey": name, "ParameterValue": value} for name, value in parameters],
            Capabilities=CAPABILITIES,
            RoleARN=target.execution_role_arn,
            ClientRequestToken=target.return_token,
            # CloudFormation keeps a stack's rollback triggers for its later updates: without this, the
            # wave's alarm that fired would roll the return back too, and the return would bake again.
            # https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_RollbackConfiguration.html
            RollbackConfiguration={"RollbackTriggers": [], "MonitoringTimeInMinutes": 0},
        )
    except ClientError as error:
        if stacks.is_no_updates(error):
            return StepResult(RETURNED, f"already matches release {released.execution_id}", state.status)
        raise
    return StepResult(IN_PROGRESS, f"returning to release {released.execution_id}", state.status, started, poll_seconds)


def _waiting(result: StepResult, started_at: str, now: datetime, poll_seconds: int) -> StepResult:
    """``result`` with its start, and the wait before the next check when it is IN_PROGRESS."""
    if result.state != IN_PROGRESS:
        return result
    wait = _next_wait(started_at, now, poll_seconds)
    return StepResult(result.state, result.detail, result.stack_status, started_at, wait)


def _operated(cfn: CloudFormationClient, stack: str, token: str) -> bool:
    """Whether an operation with ``token`` is among the stack's newest events (a few pages: an operation
    further back than that, under hundreds of later events, is treated as not this execution's, so the
    target is left alone rather than touched)."""
    paginator = cfn.get_paginator("describe_stack_events")
    for number, page in enumerate(paginator.paginate(StackName=stack)):
        if any(event.get("ClientRequestToken") == token for event in page.get("StackEvents", [])):
            return True
        if number + 1 >= _EVENT_PAGES:
            break
    return False


def _follow_return(cfn: CloudFormationClient, target: TargetStep, status_now: str) -> StepResult:
    if stacks.is_busy(status_now):
        return StepResult(IN_PROGRESS, f"returning to the release ({status_now})", status_now)
    if status_now in _COMPLETE:
        return StepResult(RETURNED, "returned to the release", status_now)
    reason = _failure_reason(cfn, target.stack_name, target.return_token)
    return StepResult(FAILED, f"the return to the release failed ({status_now}): {reason}", status_now)


def _key(target: TargetStep, home_account: str) -> deployment_map.TargetKey:
    return (target.account or home_account, target.region, target.stack_name)


def bootstrap_role_names(home_account: str) -> tuple[str, str]:
    """The deploy role and CloudFormation execution role that ``bootstrap/target-account.yaml`` creates in
    every target account, for the solution in ``home_account``."""
    return f"multi-region-deploy-{home_account}", f"multi-region-cfn-execution-{home_account}"


def target_roles(
    account: str, home_account: str, partition: str, home_execution_role_arn: str
) -> tuple[str | None, str]:
    """(deploy role to assume, CloudFormation execution role) for a target in ``account``: in the
    solution's own account, no role to assume and the solution's execution role; in any other, the roles
    the bootstrap template created there."""
    if account == home_account:
        return None, home_execution_role_arn
    _, execution = bootstrap_role_names(home_account)
    return deploy_role_arn(account, home_account, partition), f"arn:{partition}:iam::{account}:role/{execution}"


def deploy_role_arn(account: str, home_account: str, partition: str) -> str | None:
    """The role to assume to reach a target in ``account``: none in the solution's own account, the deploy
    role the bootstrap template created in any other."""
    if account == home_account:
        return None
    deploy, _ = bootstrap_role_names(home_account)
    return f"arn:{partition}:iam::{account}:role/{deploy}"


def target_key(account: str, region: str, stack_name: str) -> str:
    """A target's name in the rollout's input and reports: ``account/Region/stack``."""
    return deployment_map.key_name((account, region, stack_name))


def workflow_input(
    released_map: deployment_map.DeploymentMap,
    *,
    execution_id: str,
    change_set_name: str,
    partition: str,
    home_execution_role_arn: str,
    poll_seconds: int,
) -> dict[str, Any]:
    """The state machine's input for a reviewed map: the waves in order, each target with its change set
    and roles."""
    home = released_map.home_account
    waves: list[dict[str, Any]] = []
    every: list[dict[str, Any]] = []
    for wave in released_map.waves:
        targets = []
        for target in wave.targets:
            account = target.account or home
            deploy_role, execution_role = target_roles(account, home, partition, home_execution_role_arn)
            entry = {
                "Key": target_key(account, target.region, target.stack_name),
                "Wave": wave.name,
                "Region": target.region,
                "Account": None if account == home else account,
                "StackName": target.stack_name,
                "ChangeSetName": change_set_name,
                "ExecutionId": execution_id,
                "TimeoutMinutes": wave.deploy_timeout_minutes + wave.bake_minutes,
                "DeployRoleArn": deploy_role,
                "ExecutionRoleArn": execution_role,
            }
            targets.append(entry)
            every.append(entry)
        waves.append({"Name": wave.name, "MaxConcurrency": wave.max_concurrency, "Targets": targets})
    document = {"ExecutionId": execution_id, "PollSeconds": poll_seconds, "Waves": waves, "Targets": every}
    # Step Functions refuses an input over 256 KB:
    # https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html#service-limits-task-executions
    if len(json.dumps(document).encode()) > 256 * 1024:
        raise BadInputError("the rollout's input is over Step Functions' 256 KB; split the map")
    return document
