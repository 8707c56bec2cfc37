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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from release_pipeline import stacks
from release_pipeline.errors import PipelineError
from release_pipeline.jobs import JobResult

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_codepipeline import CodePipelineClient
    from mypy_boto3_codepipeline.type_defs import PipelineExecutionSummaryTypeDef as ExecutionSummaryTypeDef

    from release_pipeline.config import ExecutionGateConfig

RUNNING = frozenset({"InProgress", "Stopping"})
MAX_PAGES = 20


def earlier_running(pipeline: CodePipelineClient, pipeline_name: str, execution_id: str) -> list[str]:
    """Executions that started before ``execution_id`` and are still running (``execution_id`` itself
    must be among the pipeline's executions)."""
    summaries: list[ExecutionSummaryTypeDef] = []
    token: str | None = None
    for _ in range(MAX_PAGES):
        page = (
            pipeline.list_pipeline_executions(pipelineName=pipeline_name, maxResults=100, nextToken=token)
            if token
            else pipeline.list_pipeline_executions(pipelineName=pipeline_name, maxResults=100)
        )
        summaries.extend(page.get("pipelineExecutionSummaries", []))
        token = page.get("nextToken")
        if not token:
            break
    mine = next((s for s in summaries if s.get("pipelineExecutionId") == execution_id), None)
    if mine is None or "startTime" not in mine:
        raise PipelineError(f"Execution {execution_id} is not among the executions of pipeline {pipeline_name}")
    started = mine["startTime"]
    return [
        summary["pipelineExecutionId"]
        for summary in summaries
        if summary.get("status") in RUNNING
        and summary.get("pipelineExecutionId") != execution_id
        and "startTime" in summary
        and summary["startTime"] < started
    ]


def wait_for_turn(
    *,
    pipeline: CodePipelineClient,
    cloudformation_for: Callable[[str], CloudFormationClient],
    config: ExecutionGateConfig,
    execution_id: str,
    polls: int,
) -> JobResult:
    running = earlier_running(pipeline, config.pipeline_name, execution_id)
    token = {"polls": polls + 1}
    if running:
        shown = ", ".join(running[:3]) + (f" and {len(running) - 3} more" if len(running) > 3 else "")
        return JobResult.keep_waiting(token, f"Waiting (check {polls + 1}) for earlier execution(s) to finish: {shown}")
    stage = stacks.describe(cloudformation_for(config.stacks.regions.primary), config.stage_stack_name, config.region)
    if stage.status is not None and stacks.is_busy(stage.status):
        return JobResult.keep_waiting(
            token, f"Waiting (check {polls + 1}) for stage stack {stage.name} ({stage.status}) to settle"
        )
    own = config.change_set_prefix + execution_id
    removed = sum(
        remove_earlier_change_sets(cloudformation_for(region), stack, config.change_set_prefix, own)
        for _, region, stack in config.stacks.targets()
    )
    cleaned = f"; removed {removed} change set(s) earlier executions left" if removed else ""
    return JobResult(summary=f"No earlier execution in progress: checking this change{cleaned}")


def remove_earlier_change_sets(cfn: CloudFormationClient, stack: str, prefix: str, own: str) -> int:
    """Delete the pipeline's change sets on ``stack`` other than ``own``; returns how many went."""
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
        and summary.get("ChangeSetName") != own
        and summary.get("ExecutionStatus") != "EXECUTE_IN_PROGRESS"
    ]
    return sum(stacks.delete_change_set(cfn, stack, name) for name in names)
