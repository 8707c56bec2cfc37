"""Change detection: read both production change sets and say what approval would release.

A change set that FAILED only because it had nothing to change is "no change" for its Region. Any
other failure fails the job with CloudFormation's reason. A change set on a stack that does not exist
yet (a REVIEW_IN_PROGRESS placeholder) is always a change: the first release.

How a change set is read (:func:`inspect_change_set`) and shown in a report (:meth:`RegionChanges.lines`,
:func:`permissions_lines`) is kept apart from what change detection makes of it, so other reviews share it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from release_pipeline import stacks
from release_pipeline.config import FromEnv, ProductionStacks, production_stacks, text
from release_pipeline.errors import ChangeSetError, error_code
from release_pipeline.jobs import SUMMARY_VARIABLE_LIMIT, JobResult
from release_pipeline.notifications import publish_report
from release_pipeline.values import shorten

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudformation.type_defs import DescribeChangeSetOutputTypeDef
    from mypy_boto3_sns import SNSClient


@dataclass(frozen=True)
class ChangeDetectionConfig(FromEnv):
    """change-detection: the production stacks, the change set prefix and the topic."""

    FUNCTION = "change-detection"

    stacks: ProductionStacks = production_stacks()
    change_set_prefix: str = text("CHANGE_SET_PREFIX")
    topic_arn: str = text("TOPIC_ARN")

    def change_set_name(self, execution_id: str) -> str:
        """The change set CheckChanges made for pipeline execution ``execution_id``."""
        return self.change_set_prefix + execution_id


PENDING = frozenset({"CREATE_PENDING", "CREATE_IN_PROGRESS", "DELETE_PENDING", "DELETE_IN_PROGRESS"})
NOT_EXECUTABLE = frozenset({"EXECUTE_IN_PROGRESS", "EXECUTE_COMPLETE", "EXECUTE_FAILED", "OBSOLETE"})
# Resource types whose change alters who may do what: flagged in the report for the reviewer.
_PERMISSION_TYPE_SUFFIXES = ("Policy", "Permission", "Role", "User", "Group", "AccessKey")
# The action's output variables, read by stage conditions and the approval as #{Changes.<name>}.
OUTPUT_VARIABLES = ("HasChanges", "PrimaryHasChanges", "SecondaryHasChanges", "Summary", "ReviewUrl")


@dataclass(frozen=True)
class ResourceChange:
    """One resource change of a change set, as DescribeChangeSet lists it."""

    logical_id: str
    resource_type: str
    action: str
    replacement: str
    physical_id: str | None

    @property
    def security_sensitive(self) -> bool:
        return self.resource_type.startswith("AWS::IAM::") or self.resource_type.endswith(_PERMISSION_TYPE_SUFFIXES)


@dataclass(frozen=True)
class RegionChanges:
    """What one stack's change set for this execution holds (``role`` says which stack it is)."""

    role: str
    region: str
    stack: str
    change_set: str
    state: str  # CHANGES, NO_CHANGES or PENDING; MISSING or FAILED only from inspect_change_set
    changes: tuple[ResourceChange, ...] = ()
    first_release: bool = False
    stack_id: str | None = None
    change_set_id: str | None = None
    problem: str | None = None  # FAILED: why the change set cannot be deployed, as the end of a sentence

    @property
    def has_changes(self) -> bool:
        return self.state == "CHANGES"

    def counts(self) -> str:
        if not self.has_changes:
            return "no changes"
        actions = Counter(change.action for change in self.changes)
        replacements = sum(1 for change in self.changes if change.replacement == "True")
        text = f"+{actions['Add']} ~{actions['Modify']} -{actions['Remove']}"
        if replacements:
            text += f" ({replacements} replaced)"
        if actions["Import"]:
            text += f" ({actions['Import']} imported)"
        if not self.changes:
            text += " (no resource changes: outputs, parameters or tags)"
        return text + (" [first release]" if self.first_release else "")

    def review_url(self) -> str:
        if self.stack_id and self.change_set_id:
            return stacks.console_url(
                self.region, "stacks/changesets/changes", stackId=self.stack_id, changeSetId=self.change_set_id
            )
        return stacks.console_url(self.region, "stacks", filteringText=self.stack)

    def lines(self) -> list[str]:
        """The change set's review link and one line per resource change, for a report."""
        lines = [f"   Review: {self.review_url()}"] if self.has_changes else []
        for change in self.changes:
            flag = "  [permissions]" if change.security_sensitive else ""
            replacement = f" replacement={change.replacement}" if change.action == "Modify" else ""
            lines.append(f"   {change.action:<7} {change.logical_id} ({change.resource_type}){replacement}{flag}")
        return lines


def inspect_change_set(cfn: CloudFormationClient, role: str, region: str, stack: str, name: str) -> RegionChanges:
    """Read one change set, following pagination of its changes. One that does not exist (or whose stack
    does not) is MISSING; one that FAILED for a reason other than having nothing to change, or that can no
    longer be executed, is FAILED with the ``problem``."""
    missing = RegionChanges(role, region, stack, name, state="MISSING")
    try:
        paginator = cfn.get_paginator("describe_change_set")
        pages: list[DescribeChangeSetOutputTypeDef] = list(paginator.paginate(StackName=stack, ChangeSetName=name))
    except ClientError as error:
        if error_code(error) == "ChangeSetNotFound" or stacks.is_missing_stack(error):
            return missing
        raise
    first = pages[0]
    status = first["Status"]
    found = replace(missing, stack_id=first.get("StackId"), change_set_id=first.get("ChangeSetId"))
    if status in PENDING:
        return replace(found, state="PENDING")
    if stacks.is_empty_change_set(status, first.get("StatusReason")):
        return replace(found, state="NO_CHANGES")
    if status != "CREATE_COMPLETE":
        reason = first.get("StatusReason") or "no reason given"
        return replace(found, state="FAILED", problem=f"is {status}: {reason}")
    if first.get("ExecutionStatus") in NOT_EXECUTABLE:
        execution = first.get("ExecutionStatus")
        return replace(found, state="FAILED", problem=f"cannot be executed (execution status {execution})")
    changes = tuple(
        ResourceChange(
            logical_id=detail.get("LogicalResourceId", "?"),
            resource_type=detail.get("ResourceType", "?"),
            action=detail.get("Action", "?"),
            replacement=detail.get("Replacement", "N/A") if detail.get("Action") == "Modify" else "N/A",
            physical_id=detail.get("PhysicalResourceId"),
        )
        for page in pages
        for change in page.get("Changes", [])
        if change.get("Type", "Resource") == "Resource"
        for detail in [change.get("ResourceChange", {})]
    )
    first_release = stacks.describe(cfn, stack, region).status == stacks.PLACEHOLDER
    # A complete change set always changes something: with no resource changes it changes outputs,
    # parameters or tags, which must still be deployed and recorded.
    return replace(found, state="CHANGES", changes=changes, first_release=first_release)


def read_change_set(cfn: CloudFormationClient, role: str, region: str, stack: str, name: str) -> RegionChanges:
    """Read one production change set; :class:`ChangeSetError` when it is missing or cannot be deployed."""
    result = inspect_change_set(cfn, role, region, stack, name)
    if result.state == "MISSING":
        raise ChangeSetError(
            f"The {role} change set {name} on stack {stack} in {region} does not exist: "
            "the CheckChanges stage should have created it"
        )
    if result.problem is not None:
        raise ChangeSetError(f"The {role} change set on {stack} in {region} {result.problem}")
    return result


def permissions_lines(results: Sequence[RegionChanges]) -> list[str]:
    """The report's closing line naming every change to permissions, or none."""
    sensitive = [c.logical_id for r in results for c in r.changes if c.security_sensitive]
    if not sensitive:
        return []
    return ["Changes to permissions (IAM and resource policies): " + ", ".join(sorted(set(sensitive)))]


def summary(results: Sequence[RegionChanges]) -> str:
    return "; ".join(f"{r.role} {r.region}: {r.counts()}" for r in results)


def report(results: Sequence[RegionChanges]) -> list[str]:
    """The full per-resource report sent to the topic, as lines."""
    lines = ["Changes waiting for approval", "", f"Summary: {summary(results)}", ""]
    for result in results:
        lines.append(f"== {result.role} stack {result.stack} in {result.region}: {result.counts()}")
        lines.extend(result.lines())
        lines.append("")
    return lines + permissions_lines(results)


def detect_changes(
    *,
    cloudformation_for: Callable[[str], CloudFormationClient],
    sns: SNSClient,
    config: ChangeDetectionConfig,
    change_set_name: str,
    attempt: int,
) -> JobResult:
    results = [
        read_change_set(cloudformation_for(region), role, region, stack, change_set_name)
        for role, region, stack in config.stacks.targets()
    ]
    pending = [r for r in results if r.state == "PENDING"]
    if pending:
        names = ", ".join(f"{r.role} {r.region}" for r in pending)
        return JobResult.keep_waiting(
            {"attempt": attempt + 1}, f"Waiting for change sets (check {attempt + 1}): {names}"
        )
    for result in results:
        if result.state == "NO_CHANGES":
            # An empty change set can never be executed, and CloudFormation keeps it until another change
            # set of the stack is executed, counting it against the stack's change-set limit: remove it.
            stacks.delete_change_set(cloudformation_for(result.region), result.stack, result.change_set)
    primary, secondary = results
    has_changes = primary.has_changes or secondary.has_changes
    text = summary(results)
    if has_changes:
        publish_report(sns, config.topic_arn, f"Changes to review: {config.stacks.primary_stack}", report(results))
    review = primary if primary.has_changes or not secondary.has_changes else secondary
    return JobResult(
        summary=text,
        output_variables={
            "HasChanges": _flag(has_changes),
            "PrimaryHasChanges": _flag(primary.has_changes),
            "SecondaryHasChanges": _flag(secondary.has_changes),
            "Summary": shorten(text, SUMMARY_VARIABLE_LIMIT),
            "ReviewUrl": review.review_url(),
        },
    )


def _flag(value: bool) -> str:
    return "true" if value else "false"
