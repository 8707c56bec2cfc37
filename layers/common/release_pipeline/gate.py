"""Execution gate: a change is checked only once every earlier execution has finished.

In QUEUED mode CodePipeline locks each stage, not the whole pipeline: while one execution waits for
approval in Stage, the next one could already create its change sets. Those would be computed against
production as it was before the first release, and the first release's execution would delete them
(CloudFormation removes a stack's other change sets when one is executed). So the first action of
CheckChanges waits, with continuation tokens, until no earlier execution of the pipeline is in
progress and the stage stack has settled (a revert may still be running). What the approver sees is
then exactly what the execution will change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
    """Executions that started before ``execution_id`` and are still running."""
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
    cloudformation: CloudFormationClient,
    config: ExecutionGateConfig,
    execution_id: str,
    polls: int,
) -> JobResult:
    running = earlier_running(pipeline, config.pipeline_name, execution_id)
    token = {"polls": polls + 1}
    if running:
        shown = ", ".join(running[:3]) + (f" and {len(running) - 3} more" if len(running) > 3 else "")
        return JobResult.keep_waiting(token, f"Waiting (check {polls + 1}) for earlier execution(s) to finish: {shown}")
    stage = stacks.describe(cloudformation, config.stage_stack_name, config.region)
    if stage.status is not None and stacks.is_busy(stage.status):
        return JobResult.keep_waiting(
            token, f"Waiting (check {polls + 1}) for stage stack {stage.name} ({stage.status}) to settle"
        )
    return JobResult(summary="No earlier execution in progress: checking this change")
