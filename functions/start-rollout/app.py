"""start-rollout: start the rollout state machine on the reviewed change sets and follow it, wave by wave,
to its end (the deploy stage, when the application has a deployment map)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from release_pipeline import clients
from release_pipeline.config import home_region
from release_pipeline.jobs import Job, JobResult, codepipeline_job
from release_pipeline.start_rollout import StartRolloutConfig, start_rollout

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger(log_uncaught_exceptions=True)


@logger.inject_lambda_context(log_event=False)
@codepipeline_job
def lambda_handler(job: Job, context: LambdaContext) -> JobResult:
    config = StartRolloutConfig.from_env()
    region = home_region()
    return start_rollout(
        job=job,
        job_s3=clients.s3(region, job.artifact_credentials),
        sfn=clients.stepfunctions(region),
        sns=clients.sns(region),
        config=config,
        function_arn=context.invoked_function_arn,
    )
