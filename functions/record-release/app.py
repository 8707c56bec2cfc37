"""record-release: keep the released source and write the release record."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from release_pipeline import clients
from release_pipeline.config import home_region
from release_pipeline.jobs import Job, JobResult, codepipeline_job
from release_pipeline.record_release import RecordReleaseConfig, record_release

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger(log_uncaught_exceptions=True)


@logger.inject_lambda_context(log_event=False)
@codepipeline_job
def lambda_handler(job: Job, context: LambdaContext) -> JobResult:
    config = RecordReleaseConfig.from_env()
    region = home_region()
    return record_release(
        job=job,
        job_s3=clients.s3(region, job.artifact_credentials),
        release_s3=clients.s3(region),
        ssm=clients.ssm(region),
        config=config,
        home_account=context.invoked_function_arn.split(":")[4],
    )
