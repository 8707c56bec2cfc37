"""regional-artifact-store: custom resource for the artifact bucket and key in the secondary Region.

crhelper sends the CloudFormation response and polls (once a minute, through a scheduled rule it
creates and removes) until the store's stack is complete, so the function never waits in a loop.
The physical resource id is the store stack's ARN, which carries its Region.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from crhelper import CfnResource

from release_pipeline import clients, regional_store

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext


@cache
def resource_helper() -> CfnResource:
    """crhelper's helper, made at the first event rather than at import: its constructor creates three
    boto3 clients (Lambda, EventBridge, CloudWatch Logs), which at import cost more than half a boto3
    import at every cold start."""
    helper = CfnResource(
        json_logging=True, log_level="INFO", boto_level="WARNING", polling_interval=1, sleep_on_delete=0
    )
    helper.create(create)
    helper.update(update)
    helper.poll_create(poll_ready)
    helper.poll_update(poll_ready)
    helper.delete(delete)
    helper.poll_delete(poll_deleted)
    return helper


def _properties(event: dict[str, Any], key: str = "ResourceProperties") -> tuple[str, str, str]:
    properties = event.get(key) or {}
    values = tuple(str(properties.get(name) or "") for name in ("Region", "StackName", "BucketName"))
    if not all(values):
        raise ValueError(f"{key} must set Region, StackName and BucketName")
    return values[0], values[1], values[2]


def _started_id(event: dict[str, Any]) -> str:
    return str(event.get("CrHelperData", {}).get("PhysicalResourceId") or event.get("PhysicalResourceId") or "")


def create(event: dict[str, Any], context: LambdaContext) -> str:
    region, stack_name, bucket_name = _properties(event)
    return regional_store.start_create(clients.cloudformation(region), stack_name, region, bucket_name)


def update(event: dict[str, Any], context: LambdaContext) -> str:
    region, stack_name, bucket_name = _properties(event)
    old_region, old_stack_name, _ = _properties(event, "OldResourceProperties")
    stack_id = str(event.get("PhysicalResourceId", ""))
    if (region, stack_name) != (old_region, old_stack_name) or regional_store.region_of(stack_id) != region:
        # A new Region or stack name is a new store; CloudFormation then deletes the old one.
        return regional_store.start_create(clients.cloudformation(region), stack_name, region, bucket_name)
    # Same stack: its template and bucket name are updated in place.
    regional_store.start_update(clients.cloudformation(region), stack_id, bucket_name)
    return stack_id


def poll_ready(event: dict[str, Any], context: LambdaContext) -> str | None:
    stack_id = _started_id(event)
    region = regional_store.region_of(stack_id)
    if region is None:
        raise ValueError(f"Not a stack ARN: {stack_id!r}")
    store = regional_store.check(clients.cloudformation(region), stack_id)
    if store is None:
        return None
    resource_helper().Data.update({"BucketName": store.bucket_name, "KeyArn": store.key_arn})
    return store.stack_id


def delete(event: dict[str, Any], context: LambdaContext) -> None:
    stack_id = str(event.get("PhysicalResourceId", ""))
    region = regional_store.region_of(stack_id)
    if region is not None:
        regional_store.start_delete(clients.cloudformation(region), clients.s3(region), stack_id)


def poll_deleted(event: dict[str, Any], context: LambdaContext) -> str | None:
    stack_id = str(event.get("PhysicalResourceId", ""))
    region = regional_store.region_of(stack_id)
    if region is None or regional_store.deleted(clients.cloudformation(region), stack_id):
        return stack_id or "deleted"
    return None


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> None:
    resource_helper()(event, context)
