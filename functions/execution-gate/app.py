"""execution-gate: hold a change until every earlier execution has finished (CheckChanges, first)."""

from __future__ import annotations

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from release_pipeline import clients, parameter_sets
from release_pipeline.config import ExecutionGateConfig, execution_id
from release_pipeline.gate import wait_for_turn
from release_pipeline.jobs import Job, JobResult, codepipeline_job

logger = Logger(log_uncaught_exceptions=True)


@logger.inject_lambda_context(log_event=False)
@codepipeline_job
def lambda_handler(job: Job, context: LambdaContext) -> JobResult:
    config = ExecutionGateConfig.from_env()
    if job.continuation_token is None:
        # first invocation: a parameter set that is not a JSON object of strings fails here, by name
        parameter_sets.check(clients.codepipeline(config.region), config.pipeline_name)
    return wait_for_turn(
        pipeline=clients.codepipeline(config.region),
        cloudformation_for=clients.cloudformation_per_region(),
        config=config,
        execution_id=execution_id(job.user_parameters),
        polls=job.token_count("polls"),
    )
