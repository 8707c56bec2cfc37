"""deploy-target: one step of the rollout state machine for one target (execute its reviewed change set,
check it, or return it to the release), one CloudFormation call in the target's Region and account."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from release_pipeline import clients, rollout
from release_pipeline.config import home_region

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger(log_uncaught_exceptions=True)


@logger.inject_lambda_context(log_event=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Errors propagate on purpose: the state machine's Catch returns the changed targets to the release.
    config = rollout.RolloutConfig.from_env()
    region = home_region()
    home_account = context.invoked_function_arn.split(":")[4]
    target = event.get("Target") if isinstance(event, dict) else None

    def release() -> rollout.ReleasedSource | None:
        return rollout.read_released_source(clients.ssm(region), clients.s3(region), config, home_account=home_account)

    execution = target.get("ExecutionId", "") if isinstance(target, dict) else ""
    answer = rollout.step(
        event,
        cloudformation_for=clients.cloudformation_for_targets(region, f"rollout-{execution}"),
        release=release,
    )
    logger.info("Step done", extra={"state": answer["State"], "target": answer["Key"], "detail": answer["Detail"]})
    return answer
