"""Execution gate: a change is checked only once every earlier execution has finished.

In QUEUED mode CodePipeline locks each stage, not the whole pipeline: while one execution waits for
approval in Stage, the next one could already create its change sets. Those would be computed against
production as it was before the first release, and the first release's execution would delete them
(CloudFormation removes a stack's other change sets when one is executed). So the first action of
CheckChanges waits, with continuation tokens, until no earlier execution of the pipeline is in
progress and the stage stack has settled (a revert may still be running). What the approver sees is
then exactly what the execution will change.

When its turn comes, the gate also removes the change sets that earlier executions left on the
production stacks: the reviewed ones a rejection kept for a Retry (a retry now could only deploy stale
changes) and any an interrupted run left. CloudFormation deletes a stack's other change sets only when
one is executed, and refuses new ones past its per-stack limit, so a rarely changing stack would
otherwise fill up.

With a deployment map (DEPLOYMENT_MAP_PATH set), the same holds for every target of the map this
execution is about to review (read from its own source artifact, :mod:`release_pipeline.review`), in
every Region and account: the gate waits while any of them is busy (stage-revert may still be deleting a
placeholder this execution's CREATE change set would need), then removes earlier executions' change sets
from each. It does not use :func:`release_pipeline.review.remove_review`, which removes one execution's
review: the gate does not know which of up to 2,000 earlier executions left change sets, so it lists each
target's change sets once; and it deletes no placeholder, since this execution is about to make its own
change set on it. A target that only an earlier map named is not reached: stage-revert removed its
review when that execution failed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from release_pipeline import parameter_sets, stacks
from release_pipeline.config import FromEnv, ProductionStacks, optional_text, production_stacks, text
from release_pipeline.errors import ConfigurationError, PipelineError
from release_pipeline.jobs import JobResult

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_codepipeline import CodePipelineClient
    from mypy_boto3_codepipeline.type_defs import PipelineExecutionSummaryTypeDef as ExecutionSummaryTypeDef
    from mypy_boto3_s3 import S3Client

    from release_pipeline import review


@dataclass(frozen=True)
class ExecutionGateConfig(FromEnv):
    """The parameter sets are not in the environment (together they could pass Lambda's 4 KB limit):
    the gate's job reads them from the pipeline's actions (``release_pipeline.parameter_sets``)."""

    FUNCTION = "execution-gate"

    pipeline_name: str = text("PIPELINE_NAME")
    stage_stack_name: str = text("STAGE_STACK_NAME")
    stacks: ProductionStacks = production_stacks()
    change_set_prefix: str = text("CHANGE_SET_PREFIX")
    # The deployment map's path in the application repository. Empty: the two production stacks only.
    deployment_map_path: str = optional_text("DEPLOYMENT_MAP_PATH")


RUNNING = frozenset({"InProgress", "Stopping"})
# The newest executions the gate reads (ListPipelineExecutions lists newest first): a running execution
# older than the newest 2,000 is long past the 24-hour limit of the action that started it.
MAX_EXECUTIONS = 2000


@dataclass(frozen=True)
class Executions:
    """The pipeline's executions as the gate sees them from one of them."""

    earlier_running: list[str]  # started before this one and still running, oldest listing order
    keep: frozenset[str]  # executions whose change sets must stay: this one, running ones, later ones


def executions_around(pipeline: CodePipelineClient, pipeline_name: str, execution_id: str) -> Executions:
    """Where ``execution_id`` (which must be among the pipeline's executions) stands among the others."""
    pages = pipeline.get_paginator("list_pipeline_executions").paginate(
        pipelineName=pipeline_name, PaginationConfig={"PageSize": 100, "MaxItems": MAX_EXECUTIONS}
    )
    summaries: list[ExecutionSummaryTypeDef] = [s for page in pages for s in page.get("pipelineExecutionSummaries", [])]
    mine = next((s for s in summaries if s.get("pipelineExecutionId") == execution_id), None)
    if mine is None or "startTime" not in mine:
        raise PipelineError(f"Execution {execution_id} is not among the executions of pipeline {pipeline_name}")
    started = mine["startTime"]
    earlier_running, keep = [], {execution_id}
    for summary in summaries:
        other = summary.get("pipelineExecutionId", "")
        running = summary.get("status") in RUNNING
        earlier = "startTime" in summary and summary["startTime"] < started
        if running and earlier and other != execution_id:
            earlier_running.append(other)
        if running or not earlier:
            keep.add(other)
    return Executions(earlier_running, frozenset(keep))


def wait_for_turn(
    *,
    pipeline: CodePipelineClient,
    cloudformation_for: Callable[[str], CloudFormationClient],
    config: ExecutionGateConfig,
    execution_id: str,
    polls: int,
    s3: S3Client | None = None,
    reach: review.Reach | None = None,
) -> JobResult:
    """``polls``: how many times this job has been invoked before (0 on the first invocation, whose token
    is absent; each continuation carries the count on). ``s3`` (to read the execution's source) and
    ``reach`` (to reach the map's targets) are needed only when DEPLOYMENT_MAP_PATH is set."""
    if polls == 0:
        # First invocation: a parameter set that is not a JSON object of strings fails here, by name,
        # before CheckChanges makes a change set from it.
        parameter_sets.check(pipeline, config.pipeline_name, with_map=bool(config.deployment_map_path))
    executions = executions_around(pipeline, config.pipeline_name, execution_id)
    running = executions.earlier_running
    next_token = {"polls": polls + 1}
    if running:
        shown = ", ".join(running[:3]) + (f" and {len(running) - 3} more" if len(running) > 3 else "")
        return JobResult.keep_waiting(
            next_token, f"Waiting (check {polls + 1}) for earlier execution(s) to finish: {shown}"
        )
    places = production_places(cloudformation_for, config)
    if config.deployment_map_path:
        places = with_map_targets(places, pipeline, s3, reach, config, execution_id)
    primary = cloudformation_for(config.stacks.regions.primary)
    checked = [(primary, stacks.describe(primary, config.stage_stack_name, config.stacks.regions.primary))]
    checked += [(cfn, stacks.describe(cfn, stack, region)) for cfn, region, stack in places.values()]
    for cfn, state in checked:
        if state.status is not None and stacks.is_busy(state.status):
            # A revert may still be changing the stage stack, or returning a Region to the release.
            waiting = f"stack {state.name} in {state.region} ({state.status})"
            return JobResult.keep_waiting(next_token, f"Waiting (check {polls + 1}) for {waiting} to settle")
        if state.status in stacks.ROLLED_BACK_UPDATE and stacks.is_revert_token(
            stacks.latest_request_token(cfn, state.name)
        ):
            raise PipelineError(
                f"Stack {state.name} in {state.region} was being returned to the release after a failed deploy, and "
                f"CloudFormation rolled that return back ({state.status}): it does not run the release. Fix it (its "
                "events name the resource), update it to the release by hand, then retry this stage"
            )
    removed = sum(
        remove_earlier_change_sets(cfn, stack, config.change_set_prefix, executions.keep)
        for cfn, _, stack in places.values()
    )
    cleaned = f"; removed {removed} change set(s) earlier executions left" if removed else ""
    return JobResult(summary=f"No earlier execution in progress: checking this change{cleaned}")


# A stack as the gate reaches it: its account's deploy role (None at home), Region and name.
Place = tuple[str | None, str, str]


def production_places(
    cloudformation_for: Callable[[str], CloudFormationClient], config: ExecutionGateConfig
) -> dict[Place, tuple[CloudFormationClient, str, str]]:
    """The two production stacks, each with its client, Region and name."""
    targets = config.stacks.targets()
    return {(None, region, stack): (cloudformation_for(region), region, stack) for _, region, stack in targets}


def with_map_targets(
    places: dict[Place, tuple[CloudFormationClient, str, str]],
    pipeline: CodePipelineClient,
    s3: S3Client | None,
    reach: review.Reach | None,
    config: ExecutionGateConfig,
    execution_id: str,
) -> dict[Place, tuple[CloudFormationClient, str, str]]:
    """``places`` and every target of the map in this execution's source, each stack once."""
    if s3 is None or reach is None:
        raise ConfigurationError("DEPLOYMENT_MAP_PATH is set, but the gate was given no way to read the map's targets")
    from release_pipeline import (
        review,  # the map modules load only with a map: a cold start without one does not pay for them
    )

    targets = review.reviewed_targets(
        pipeline,
        s3,
        reach,
        pipeline_name=config.pipeline_name,
        execution_id=execution_id,
        map_path=config.deployment_map_path,
        production=config.stacks,
        home_execution_role_arn=None,  # the gate deletes no stack
    )
    found = dict(places)
    for target in targets:
        place = (target.deploy_role_arn, target.region, target.stack_name)
        if place not in found:
            cfn = reach.cloudformation_for(target.region, target.deploy_role_arn)
            found[place] = (cfn, target.region, target.stack_name)
    return found


def remove_earlier_change_sets(cfn: CloudFormationClient, stack: str, prefix: str, keep: frozenset[str]) -> int:
    """Delete the pipeline's change sets on ``stack`` except those of the ``keep`` executions (this one,
    running ones and later ones); returns how many went."""
    try:
        pages = list(cfn.get_paginator("list_change_sets").paginate(StackName=stack))
    except ClientError as error:
        if stacks.is_missing_stack(error):
            return 0
        raise
    names = [
        summary["ChangeSetName"]
        for page in pages
        for summary in page.get("Summaries", [])
        if summary.get("ChangeSetName", "").startswith(prefix)
        and summary["ChangeSetName"].removeprefix(prefix) not in keep
        and summary.get("ExecutionStatus") != "EXECUTE_IN_PROGRESS"
    ]
    return sum(stacks.delete_change_set(cfn, stack, name) for name in names)
