"""An execution's review in every target of its deployment map, and how it is removed.

At CheckChanges an execution makes one change set, ``<prefix><execution id>``, in every target of the
map it reviews; where a target has no stack yet, that CREATE change set makes a REVIEW_IN_PROGRESS
placeholder stack, which has no resources. When the change is rejected, its approval times out, it fails
before its rollout, or its rollout went back, :func:`remove_review` removes what was never executed: the
execution's change set in each target, and a placeholder that holds nothing else. It never deletes a
stack that ran anything, nor a change set that was executed (or is being executed).

The targets are those of the map in the execution's own source (:func:`reviewed_targets`): the released
map would miss a target this execution added, and the map at the branch's head may have changed since.
Neither the EventBridge stage event nor GetPipelineExecution says where that source is (the latter gives
the commit, not the artifact), so it is read from CodePipeline's ListActionExecutions: the output
artifact of the execution's Source action, in the artifact bucket. A source without the map file gets
the solution's own map: the secondary stack, then the primary stack, in the solution's account.

Targets in other accounts are reached through the deploy role the bootstrap template made there
(:func:`release_pipeline.rollout.target_roles`), and a placeholder there is deleted with that account's
CloudFormation execution role, as every change the solution makes.

Every step is idempotent (EventBridge delivers at least once): a second call finds the change sets gone
and says so, target by target. A stack busy with an operation accepts no change set deletion: it raises
:class:`StackBusyError`, after every other target was handled, so the caller retries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from release_pipeline import artifacts, clients, deployment_map, rollout, stacks
from release_pipeline.errors import ArtifactError, ConfigurationError, StackBusyError, error_code
from release_pipeline.values import S3Location

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_codepipeline import CodePipelineClient
    from mypy_boto3_s3 import S3Client

    from release_pipeline.config import ProductionStacks

logger = Logger()

# A change set CloudFormation has run or is running: never deleted, and its stack never touched.
EXECUTED = frozenset({"EXECUTE_IN_PROGRESS", "EXECUTE_COMPLETE", "EXECUTE_FAILED"})
# A change set CloudFormation is still making: it cannot be deleted yet.
BEING_MADE = frozenset({"CREATE_PENDING", "CREATE_IN_PROGRESS"})
_SHOWN_OTHERS = 3


@dataclass(frozen=True)
class ReviewTarget:
    """A target as the removal reaches it: its name in reports, its stack, and its account's roles."""

    key: str  # account/Region/stack
    region: str
    stack_name: str
    deploy_role_arn: str | None  # None: the solution's own account (the function's own role)
    execution_role_arn: str | None  # the CloudFormation role a placeholder is deleted with


@dataclass(frozen=True)
class Reach:
    """How a function reaches targets: a CloudFormation client per Region and deploy role, and the
    solution's account and partition, which name the deploy role in every other account."""

    cloudformation_for: rollout.CloudFormationFor
    account: str
    partition: str

    @classmethod
    def of_function(cls, function_arn: str, session_name: str) -> Reach:
        """The reach of the function whose ARN is ``function_arn`` (``context.invoked_function_arn``): it
        runs in the solution's account and Region, where it assumes the deploy roles."""
        parts = function_arn.split(":")
        if len(parts) < 7 or parts[0] != "arn" or parts[2] != "lambda":
            raise ConfigurationError(f"{function_arn!r} is not a Lambda function ARN")
        partition, region, account = parts[1], parts[3], parts[4]
        return cls(clients.cloudformation_for_targets(region, session_name), account, partition)


def review_targets(
    reviewed: deployment_map.DeploymentMap, *, partition: str, home_execution_role_arn: str | None
) -> tuple[ReviewTarget, ...]:
    """Every target of ``reviewed`` with the roles that reach it. ``home_execution_role_arn`` is the
    solution's CloudFormation execution role (``None`` for a caller that never deletes a stack)."""
    home = reviewed.home_account
    found = []
    for target in reviewed.targets():
        account = target.account or home
        deploy, execution = rollout.target_roles(account, home, partition, home_execution_role_arn or "")
        found.append(
            ReviewTarget(
                key=rollout.target_key(account, target.region, target.stack_name),
                region=target.region,
                stack_name=target.stack_name,
                deploy_role_arn=deploy,
                execution_role_arn=execution or None,
            )
        )
    return tuple(found)


def production_map(production: ProductionStacks, home_account: str) -> deployment_map.DeploymentMap:
    """The solution's own map, for a source without a map file: the secondary stack, then the primary
    stack, in the solution's account (parameters play no part in removing a review)."""

    def wave(name: str, region: str, stack: str) -> deployment_map.Wave:
        target = deployment_map.Target(region=region, account=None, stack_name=stack, parameter_file="", parameters={})
        return deployment_map.Wave(name=name, targets=(target,))

    return deployment_map.DeploymentMap(
        waves=(
            wave("secondary", production.regions.secondary, production.secondary_stack),
            wave("primary", production.regions.primary, production.primary_stack),
        ),
        home_account=home_account,
    )


# ------------------------------------------------------------------------------- the execution's map


def source_location(pipeline: CodePipelineClient, pipeline_name: str, execution_id: str) -> S3Location:
    """Where the execution's source artifact is: the output artifact of its Source action, as
    ListActionExecutions reports it."""
    pages = pipeline.get_paginator("list_action_executions").paginate(
        pipelineName=pipeline_name, filter={"pipelineExecutionId": execution_id}
    )
    for page in pages:
        for detail in page.get("actionExecutionDetails", []):
            if detail.get("input", {}).get("actionTypeId", {}).get("category") != "Source":
                continue
            for artifact in detail.get("output", {}).get("outputArtifacts", []):
                location = artifact.get("s3location", {})
                if location.get("bucket") and location.get("key"):
                    return S3Location(bucket=location["bucket"], key=location["key"])
    raise ArtifactError(
        f"Execution {execution_id} of pipeline {pipeline_name} has no source artifact among its action executions"
    )


def reviewed_map(
    pipeline: CodePipelineClient,
    s3: S3Client,
    *,
    pipeline_name: str,
    execution_id: str,
    map_path: str,
    production: ProductionStacks,
    home_account: str,
) -> deployment_map.DeploymentMap:
    """The deployment map the execution reviewed: the one in its own source artifact, or the solution's
    own map when the source has none. A target without StackName is the application stack."""
    what = f"source artifact of execution {execution_id}"
    location = source_location(pipeline, pipeline_name, execution_id)
    archive = artifacts.Archive(artifacts.download(s3, location, what=what), what)
    try:
        found = rollout.read_map(
            archive, map_path, default_stack_name=production.primary_stack, home_account=home_account
        )
    except ConfigurationError as error:
        raise ConfigurationError(f"the deployment map of the {what} cannot be read: {error}") from None
    return found if found is not None else production_map(production, home_account)


def reviewed_targets(
    pipeline: CodePipelineClient,
    s3: S3Client,
    reach: Reach,
    *,
    pipeline_name: str,
    execution_id: str,
    map_path: str,
    production: ProductionStacks,
    home_execution_role_arn: str | None,
) -> tuple[ReviewTarget, ...]:
    """Every target of the map the execution reviewed (:func:`reviewed_map`), with the roles that reach it."""
    reviewed = reviewed_map(
        pipeline,
        s3,
        pipeline_name=pipeline_name,
        execution_id=execution_id,
        map_path=map_path,
        production=production,
        home_account=reach.account,
    )
    return review_targets(reviewed, partition=reach.partition, home_execution_role_arn=home_execution_role_arn)


# ------------------------------------------------------------------------------------------ removal


def remove_review(
    targets: Sequence[ReviewTarget],
    execution_id: str,
    cloudformation_for: rollout.CloudFormationFor,
    change_set_prefix: str,
) -> list[str]:
    """Remove the execution's change set ``<change_set_prefix><execution_id>`` from every target, and
    each placeholder that holds nothing else; one report line per target.

    Every target is tried. If any failed (a busy stack raises :class:`StackBusyError`), the first error is
    raised once all are done, carrying every target's line as its notes (``error.__notes__``)."""
    change_set = f"{change_set_prefix}{execution_id}"
    lines: list[str] = []
    errors: list[Exception] = []
    for target in targets:
        try:
            cfn = cloudformation_for(target.region, target.deploy_role_arn)
            lines.append(f"{target.key}: {remove_target_review(cfn, target, change_set)}")
        except Exception as error:  # every target is tried; the first error is raised below
            logger.exception("Removing a target's review failed", extra={"target": target.key})
            lines.append(f"{target.key}: failed: {error}")
            errors.append(error)
    if errors:
        for line in lines:
            errors[0].add_note(line)
        raise errors[0]
    return lines


@dataclass(frozen=True)
class _ChangeSet:
    status: str
    execution_status: str


def remove_target_review(cfn: CloudFormationClient, target: ReviewTarget, change_set: str) -> str:
    """Remove ``change_set`` from the target's stack, and the stack when it is a placeholder that holds
    nothing else; what was done, as a line for the report."""
    stack = target.stack_name
    state = stacks.describe(cfn, stack, target.region)
    if not state.exists:
        return f"already gone: no stack {stack}"
    if state.status == "DELETE_IN_PROGRESS":
        return f"already gone: stack {stack} is being deleted"
    found = _describe_change_set(cfn, stack, change_set)
    if found is not None and found.execution_status in EXECUTED:
        return f"left: change set {change_set} was executed ({found.execution_status}); stack {state.status}, untouched"
    if found is not None and found.status in BEING_MADE:
        raise StackBusyError(f"change set {change_set} of {stack} in {target.region} is {found.status}; retry")
    if state.status == stacks.PLACEHOLDER:
        return _remove_placeholder(cfn, target, change_set, found is not None)
    if found is None:
        return f"already gone: no change set {change_set}; stack {state.status}, untouched"
    if state.status is not None and stacks.is_busy(state.status):
        # CloudFormation refuses to delete a change set while its stack is busy (InvalidChangeSetStatus).
        raise StackBusyError(f"stack {stack} in {target.region} is {state.status}; retry when it settles")
    if not stacks.delete_change_set(cfn, stack, change_set):
        return f"already gone: no change set {change_set}; stack {state.status}, untouched"
    return f"deleted change set {change_set}; stack {state.status}, untouched"


def _remove_placeholder(cfn: CloudFormationClient, target: ReviewTarget, change_set: str, has_ours: bool) -> str:
    """A REVIEW_IN_PROGRESS stack has no resources: it goes when no other change set waits on it."""
    stack = target.stack_name
    others = [name for name in _change_set_names(cfn, stack) if name != change_set]
    if others:
        shown = ", ".join(others[:_SHOWN_OTHERS]) + (
            f" and {len(others) - _SHOWN_OTHERS} more" if len(others) > _SHOWN_OTHERS else ""
        )
        deleted = has_ours and stacks.delete_change_set(cfn, stack, change_set)
        done = f"deleted change set {change_set}" if deleted else f"no change set {change_set}"
        return f"{done}; placeholder {stack} kept: other change sets wait on it ({shown})"
    request: dict[str, Any] = {"StackName": stack}
    if target.execution_role_arn:
        request["RoleARN"] = target.execution_role_arn
    cfn.delete_stack(**request)
    held = f"only change set {change_set}" if has_ours else "no change set"
    return f"removing placeholder {stack} (REVIEW_IN_PROGRESS, it held {held})"


def _describe_change_set(cfn: CloudFormationClient, stack: str, name: str) -> _ChangeSet | None:
    try:
        answer = cfn.describe_change_set(StackName=stack, ChangeSetName=name)
    except ClientError as error:
        if error_code(error) == "ChangeSetNotFound" or stacks.is_missing_stack(error):
            return None
        raise
    return _ChangeSet(status=answer.get("Status", ""), execution_status=answer.get("ExecutionStatus", ""))


def _change_set_names(cfn: CloudFormationClient, stack: str) -> list[str]:
    try:
        pages = list(cfn.get_paginator("list_change_sets").paginate(StackName=stack))
    except ClientError as error:
        if stacks.is_missing_stack(error):
            return []
        raise
    return [s["ChangeSetName"] for page in pages for s in page.get("Summaries", []) if "ChangeSetName" in s]
