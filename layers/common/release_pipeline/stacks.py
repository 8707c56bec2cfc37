"""CloudFormation helpers shared by the functions.

AWS reports two conditions only as text: an empty change set and an update with nothing to do. Each is
matched in exactly one function here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import quote

from botocore.exceptions import ClientError

from release_pipeline.errors import error_code

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient

EMPTY_CHANGE_SET_REASON = "The submitted information didn't contain changes"
NO_UPDATES_MESSAGE = "No updates are to be performed"
# CloudFormation gives either reason for a change set with nothing to change.
EMPTY_CHANGE_SET_REASONS = (EMPTY_CHANGE_SET_REASON, NO_UPDATES_MESSAGE)

# Stacks that drift detection can check.
DRIFT_CHECKABLE = frozenset(
    {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "UPDATE_ROLLBACK_FAILED"}
)
# A stack created by a change set that was never executed: it has no resources.
PLACEHOLDER = "REVIEW_IN_PROGRESS"
# A stack whose first creation failed and was rolled back: CloudFormation accepts only a delete on it
# ("is in ROLLBACK_COMPLETE state and can not be updated").
# https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/troubleshooting.html#troubleshooting-errors-update-rollback-failed
FAILED_CREATION = frozenset({"ROLLBACK_COMPLETE", "ROLLBACK_FAILED"})
# A stack whose last update failed: CloudFormation put (or tried to put) the previous version back.
ROLLED_BACK_UPDATE = frozenset({"UPDATE_ROLLBACK_COMPLETE", "UPDATE_ROLLBACK_FAILED"})
GONE = frozenset({"DELETE_COMPLETE"})
# The largest template CloudFormation takes inline (TemplateBody), in bytes; a larger one (up to 1 MB) must
# be passed as TemplateURL, an S3 object the service reads.
# https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html
TEMPLATE_BODY_LIMIT = 51_200


def is_empty_change_set(status: str, reason: str | None) -> bool:
    """Whether a change set FAILED only because it had nothing to change."""
    return status == "FAILED" and (reason or "").startswith(EMPTY_CHANGE_SET_REASONS)


def is_no_updates(error: ClientError) -> bool:
    """Whether an UpdateStack error says only that the stack already matches."""
    return NO_UPDATES_MESSAGE in str(error.response.get("Error", {}).get("Message", ""))


def is_missing_stack(error: ClientError) -> bool:
    error_info = error.response.get("Error", {})
    return error_info.get("Code") == "ValidationError" and "does not exist" in str(error_info.get("Message", ""))


def is_busy(status: str) -> bool:
    """A stack in a transitional state accepts no update or delete until it settles."""
    return status.endswith("_IN_PROGRESS") and status != PLACEHOLDER


@dataclass(frozen=True)
class StackState:
    """A stack as DescribeStacks shows it, or a stack that does not exist."""

    name: str
    region: str
    status: str | None  # None: the stack does not exist
    stack_id: str | None = None
    parameters: Mapping[str, str] = field(default_factory=dict)  # the current values
    # The ARNs of the rollback triggers the stack keeps: CloudFormation applies them to every later
    # operation that does not replace them.
    rollback_triggers: tuple[str, ...] = ()

    @property
    def exists(self) -> bool:
        return self.status is not None and self.status not in GONE


def describe(cfn: CloudFormationClient, name: str, region: str) -> StackState:
    try:
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except ClientError as error:
        if is_missing_stack(error):
            return StackState(name=name, region=region, status=None)
        raise
    if not stacks:
        return StackState(name=name, region=region, status=None)
    stack = stacks[0]
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
    triggers = tuple(t["Arn"] for t in stack.get("RollbackConfiguration", {}).get("RollbackTriggers", []))
    return StackState(
        name=name,
        region=region,
        status=stack["StackStatus"],
        stack_id=stack.get("StackId"),
        parameters=parameters,
        rollback_triggers=triggers,
    )


def delete_change_set(cfn: CloudFormationClient, stack: str, name: str) -> bool:
    """Delete a change set; ``False`` when there was nothing to delete: it is gone already
    (ChangeSetNotFound) or is being or has been executed (InvalidChangeSetStatus)."""
    try:
        cfn.delete_change_set(StackName=stack, ChangeSetName=name)
    except ClientError as error:
        if error_code(error) in {"ChangeSetNotFound", "InvalidChangeSetStatus"}:
            return False
        raise
    return True


def was_updated(cfn: CloudFormationClient, name: str) -> bool:
    """Whether the stack was ever updated after its creation: a stack-level UPDATE_* event on the newest
    page of its events (a history longer than one page counts as updated)."""
    page = cfn.describe_stack_events(StackName=name)
    for event in page.get("StackEvents", []):
        stack_level = event.get("ResourceType") == "AWS::CloudFormation::Stack"
        if stack_level and event.get("ResourceStatus", "").startswith("UPDATE_"):
            return True
    return bool(page.get("NextToken"))


# The ClientRequestToken prefix of every stack operation stage-revert starts.
REVERT_TOKEN_PREFIX = "stage-revert-"  # noqa: S105 - a request token, not a secret


def is_revert_token(token: str | None) -> bool:
    """Whether a stack operation was started by stage-revert."""
    return bool(token) and str(token).startswith(REVERT_TOKEN_PREFIX)


def latest_request_token(cfn: CloudFormationClient, name: str) -> str | None:
    """The ClientRequestToken of the stack's latest operation, as its newest event shows it."""
    events = cfn.describe_stack_events(StackName=name).get("StackEvents", [])
    return events[0].get("ClientRequestToken") if events else None


def console_url(region: str, path: str, **query: str) -> str:
    """A CloudFormation console link."""
    encoded = "&".join(f"{key}={quote(value, safe='')}" for key, value in query.items())
    return f"https://{region}.console.aws.amazon.com/cloudformation/home?region={region}#/{path}?{encoded}"
