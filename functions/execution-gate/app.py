"""execution-gate: hold a change until every earlier execution has finished (CheckChanges, first)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from release_pipeline import clients
from release_pipeline.gate import ExecutionGateConfig, wait_for_turn
from release_pipeline.jobs import Job, JobResult, codepipeline_job

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger(log_uncaught_exceptions=True)


@logger.inject_lambda_context(log_event=False)
@codepipeline_job
def lambda_handler(job: Job, context: LambdaContext) -> JobResult:
    config = ExecutionGateConfig.from_env()
    region = config.stacks.regions.primary
    reach = None
    if config.deployment_map_path:
        from release_pipeline.review import (
            Reach,  # the map modules load only with a map: a cold start without one does not pay for them
        )

        reach = Reach.of_function(context.invoked_function_arn, "execution-gate")
    return wait_for_turn(
        pipeline=clients.codepipeline(region),
        cloudformation_for=clients.cloudformation_per_region(),
        config=config,
        execution_id=job.execution_id,
        polls=job.token_count("polls"),
        s3=clients.s3(region),
        reach=reach,
    )
