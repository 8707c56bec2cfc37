"""drift-detection: detect drift on the production stacks (both Regions, or every target of the deployment
map when DEPLOYMENT_MAP_PATH names one), following continuation tokens."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from release_pipeline import clients
from release_pipeline.drift import DriftDetectionConfig, detect_drift, detect_drift_on_targets
from release_pipeline.jobs import Job, JobResult, codepipeline_job

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger(log_uncaught_exceptions=True)


@logger.inject_lambda_context(log_event=False)
@codepipeline_job
def lambda_handler(job: Job, context: LambdaContext) -> JobResult:
    config = DriftDetectionConfig.from_env()
    home = config.stacks.regions.primary
    if config.deployment_map_path:
        return detect_drift_on_targets(
            job=job,
            job_s3=clients.s3(home, job.artifact_credentials),
            cloudformation_for=clients.cloudformation_for_targets(home, f"drift-detection-{job.id}"),
            sns=clients.sns(home),
            config=config,
            function_arn=context.invoked_function_arn,
        )
    return detect_drift(
        cloudformation_for=clients.cloudformation_per_region(),
        sns=clients.sns(home),
        config=config,
        token=job.continuation_token,
    )
