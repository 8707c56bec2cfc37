"""drift-detection: detect drift on both production stacks, following continuation tokens."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from release_pipeline import clients
from release_pipeline.drift import DriftDetectionConfig, detect_drift
from release_pipeline.jobs import Job, JobResult, codepipeline_job

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger(log_uncaught_exceptions=True)


@logger.inject_lambda_context(log_event=False)
@codepipeline_job
def lambda_handler(job: Job, context: LambdaContext) -> JobResult:
    config = DriftDetectionConfig.from_env()
    return detect_drift(
        cloudformation_for=clients.cloudformation_per_region(),
        sns=clients.sns(config.stacks.regions.primary),
        config=config,
        token=job.continuation_token,
    )
