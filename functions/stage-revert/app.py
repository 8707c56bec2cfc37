"""stage-revert: on a failed or rejected Stage or production deploy, bring the stage stack and production
back to the release; with a deployment map, remove the execution's review from every target."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from release_pipeline import clients
from release_pipeline.revert import StageEvent, StageRevertConfig, revert_stage

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger(log_uncaught_exceptions=True)


@logger.inject_lambda_context(log_event=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Errors propagate on purpose: Lambda retries the event, then sends it to the dead-letter queue.
    config = StageRevertConfig.from_env()
    region = config.stacks.regions.primary
    reach = None
    if config.deployment_map_path:
        from release_pipeline.review import (
            Reach,  # the map modules load only with a map: a cold start without one does not pay for them
        )

        reach = Reach.of_function(context.invoked_function_arn, "stage-revert")
    outcome = revert_stage(
        event=StageEvent.parse(event),
        config=config,
        cloudformation_for=clients.cloudformation_per_region(),
        pipeline=clients.codepipeline(region),
        ssm=clients.ssm(region),
        s3=clients.s3(region),
        sns=clients.sns(region),
        reach=reach,
    )
    if outcome.ignored:
        logger.info("Event ignored", extra={"reason": outcome.ignored})
        return {"ignored": outcome.ignored}
    logger.info("Stage reverted", extra={"actions": outcome.actions})
    return {"actions": outcome.actions}
