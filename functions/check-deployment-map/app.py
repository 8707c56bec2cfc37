"""check-deployment-map: fail the Validate stage on a deployment map with an error, naming each entry."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from release_pipeline import clients
from release_pipeline.config import home_region
from release_pipeline.jobs import Job, JobResult, codepipeline_job
from release_pipeline.map_check import MapCheckConfig, check_map

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger(log_uncaught_exceptions=True)


@logger.inject_lambda_context(log_event=False)
@codepipeline_job
def lambda_handler(job: Job, context: LambdaContext) -> JobResult:
    config = MapCheckConfig.from_env()
    return check_map(
        job=job,
        s3=clients.s3(home_region(), job.artifact_credentials),
        config=config,
        # A target that names no account is in the solution's: the account this function runs in.
        home_account=context.invoked_function_arn.split(":")[4],
    )
