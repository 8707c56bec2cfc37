"""CloudFormation helpers shared by the functions.

AWS reports two conditions only as text: an empty change set and an update with nothing to do. Each is
matched in exactly one function here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from botocore.exceptions import ClientError

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
GONE = frozenset({"DELETE_COMPLETE"})


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
    name: str
    region: str
    status: str | None  # None: the stack does not exist
    stack_id: str | None = None

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
    return StackState(name=name, region=region, status=stack["StackStatus"], stack_id=stack.get("StackId"))


def console_url(region: str, path: str, **query: str) -> str:
    """A CloudFormation console link."""
    encoded = "&".join(f"{key}={quote(value, safe='')}" for key, value in query.items())
    return f"https://{region}.console.aws.amazon.com/cloudformation/home?region={region}#/{path}?{encoded}"
