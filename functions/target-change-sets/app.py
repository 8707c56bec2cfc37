"""target-change-sets: make every deployment map target's change set and publish what approval would
release, wave by wave."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from release_pipeline import clients
from release_pipeline.config import home_region
from release_pipeline.jobs import Job, JobResult, codepipeline_job
from release_pipeline.target_changes import TargetChangesConfig, target_change_sets

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger(log_uncaught_exceptions=True)


@logger.inject_lambda_context(log_event=False)
@codepipeline_job
def lambda_handler(job: Job, context: LambdaContext) -> JobResult:
    config = TargetChangesConfig.from_env()
    region = home_region()
    return target_change_sets(
        job=job,
        job_s3=clients.s3(region, job.artifact_credentials),
        release_s3=clients.s3(region),
        ssm=clients.ssm(region),
        sns=clients.sns(region),
        cloudformation_for=clients.cloudformation_for_targets(region, f"target-change-sets-{job.execution_id}"),
        config=config,
        function_arn=context.invoked_function_arn,
    )
