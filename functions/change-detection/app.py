"""change-detection: read both production change sets and publish what approval would release."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from release_pipeline import clients
from release_pipeline.changes import ChangeDetectionConfig, detect_changes
from release_pipeline.jobs import Job, JobResult, codepipeline_job

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger(log_uncaught_exceptions=True)


@logger.inject_lambda_context(log_event=False)
@codepipeline_job
def lambda_handler(job: Job, context: LambdaContext) -> JobResult:
    config = ChangeDetectionConfig.from_env()
    return detect_changes(
        cloudformation_for=clients.cloudformation_per_region(),
        sns=clients.sns(config.stacks.regions.primary),
        config=config,
        change_set_name=config.change_set_name(job.execution_id),
        attempt=job.token_count("attempt"),
    )
