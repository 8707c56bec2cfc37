"""Drift detection on both production stacks, followed with continuation tokens.

The first invocation starts detection on both stacks at once and returns a continuation token holding
the detection ids. Each re-invocation checks them once; when both are done, the drifted resources are
reported to the topic and the job ends. Nothing sleeps inside the function.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from release_pipeline import stacks
from release_pipeline.config import FromEnv, ProductionStacks, flag, production_stacks, text
from release_pipeline.errors import BadInputError, DriftBlockedError
from release_pipeline.jobs import SUMMARY_VARIABLE_LIMIT, JobResult
from release_pipeline.notifications import publish_report
from release_pipeline.values import shorten

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudformation.type_defs import PropertyDifferenceTypeDef
    from mypy_boto3_sns import SNSClient


@dataclass(frozen=True)
class DriftDetectionConfig(FromEnv):
    """drift-detection: the production stacks, the topic and the drift policy."""

    FUNCTION = "drift-detection"

    stacks: ProductionStacks = production_stacks()
    topic_arn: str = text("TOPIC_ARN")
    block_on_drift: bool = flag("DRIFT_POLICY", ("NOTIFY", "BLOCK"), true="BLOCK")


NOT_DEPLOYED = "NOT_DEPLOYED"
# Worst first: the overall status is the worst of the two stacks'.
_SEVERITY = ("DRIFTED", "UNKNOWN", "NOT_CHECKED", "IN_SYNC", NOT_DEPLOYED)
# Drift emails show property values, except where a property may hold a secret (environment
# variables, passwords, tokens, keys), and cut long ones.
SENSITIVE_PROPERTY = re.compile(
    r"password|secret|token|credential|private|apikey|api_key|/(Environment|Variables|Parameters)(/|$)|Key$",
    re.IGNORECASE,
)
VALUE_LIMIT = 200
# DetectStackDrift's ids (StackDriftDetectionId: 1 to 36 characters).
_DETECTION_ID = re.compile(r"[A-Za-z0-9-]{1,36}")
# The action's output variables, read by the approval as #{Drift.<name>}.
OUTPUT_VARIABLES = ("DriftStatus", "Summary")


@dataclass(frozen=True)
class StackDrift:
    """One production stack's drift status, with its drifted resources."""

    role: str
    region: str
    stack: str
    status: str
    detail: str = ""
    resources: tuple[str, ...] = ()

    def line(self) -> str:
        text = f"{self.role} {self.region}: {self.status}"
        if self.resources:
            text += f" ({len(self.resources)} resources)"
        return text + (f" ({self.detail})" if self.detail else "")


def start(cloudformation_for: Callable[[str], CloudFormationClient], config: DriftDetectionConfig) -> dict[str, Any]:
    """Start detection where it can run. The token holds only the detection ids (nothing else can be
    re-read later); a stack that cannot be checked is described again on every invocation."""
    detections: dict[str, str] = {}
    for role, region, stack in config.stacks.targets():
        if _unchecked(cloudformation_for(region), role, region, stack) is None:
            response = cloudformation_for(region).detect_stack_drift(StackName=stack)
            detections[role] = response["StackDriftDetectionId"]
    return {"detections": detections}


def _unchecked(cfn: CloudFormationClient, role: str, region: str, stack: str) -> StackDrift | None:
    """The result for a stack drift detection cannot run on (not deployed, or busy), else None."""
    state = stacks.describe(cfn, stack, region)
    if not state.exists or state.status == stacks.PLACEHOLDER:
        return StackDrift(role, region, stack, NOT_DEPLOYED, "not deployed yet")
    if state.status not in stacks.DRIFT_CHECKABLE:
        return StackDrift(role, region, stack, "NOT_CHECKED", f"stack is {state.status}")
    return None


def follow(
    cloudformation_for: Callable[[str], CloudFormationClient],
    config: DriftDetectionConfig,
    token: Mapping[str, Any],
) -> tuple[list[StackDrift], bool]:
    """Check each running detection once; returns the results and whether any is still running.

    The token is checked, never trusted: each detection must be of the configured stack, and a stack
    without one must still be one that drift detection cannot run on."""
    detections = token.get("detections", {})
    if not isinstance(detections, Mapping):
        raise BadInputError("The job's continuation token holds no drift detections object")
    results: list[StackDrift] = []
    running = False
    for role, region, stack in config.stacks.targets():
        cfn = cloudformation_for(region)
        detection_id = detections.get(role)
        if detection_id is None:
            unchecked = _unchecked(cfn, role, region, stack)
            if unchecked is None:
                raise BadInputError(f"The job's continuation token holds no drift detection for the {role} stack")
            results.append(unchecked)
            continue
        if not isinstance(detection_id, str) or not _DETECTION_ID.fullmatch(detection_id):
            raise BadInputError(f"The job's continuation token holds no valid drift detection for the {role} stack")
        status = cfn.describe_stack_drift_detection_status(StackDriftDetectionId=detection_id)
        if _stack_name(status.get("StackId", "")) != stack:
            raise BadInputError(
                f"The job's continuation token names a drift detection of another stack than {stack} ({role})"
            )
        if status["DetectionStatus"] == "DETECTION_IN_PROGRESS":
            running = True
            continue
        drift_status = status.get("StackDriftStatus", "UNKNOWN")
        detail = ""
        if status["DetectionStatus"] == "DETECTION_FAILED":
            detail = f"detection failed: {status.get('DetectionStatusReason', 'no reason given')}"
            if drift_status != "DRIFTED":
                drift_status = "UNKNOWN"
        resources = _drifted_resources(cfn, stack) if drift_status == "DRIFTED" else ()
        results.append(StackDrift(role, region, stack, drift_status, detail, resources))
    return results, running


def _stack_name(stack_id: str) -> str:
    """The stack name in a stack id (arn:aws:cloudformation:REGION:ACCOUNT:stack/NAME/UUID)."""
    parts = stack_id.split("/")
    return parts[1] if len(parts) == 3 else ""


def _drifted_resources(cfn: CloudFormationClient, stack: str) -> tuple[str, ...]:
    # botocore has no paginator for DescribeStackResourceDrifts: the NextToken loop is written out.
    lines: list[str] = []
    token: str | None = None
    while True:
        request: dict[str, Any] = {
            "StackName": stack,
            "StackResourceDriftStatusFilters": ["MODIFIED", "DELETED"],
        }
        if token:
            request["NextToken"] = token
        page = cfn.describe_stack_resource_drifts(**request)
        for drift in page.get("StackResourceDrifts", []):
            head = (
                f"{drift['StackResourceDriftStatus']} {drift['LogicalResourceId']} "
                f"({drift['ResourceType']}, {drift.get('PhysicalResourceId', '?')})"
            )
            diffs = [_difference(d) for d in drift.get("PropertyDifferences", [])]
            lines.append("\n".join([head, *diffs]))
        token = page.get("NextToken")
        if not token:
            return tuple(lines)


def _difference(difference: PropertyDifferenceTypeDef) -> str:
    path = difference["PropertyPath"]
    expected, actual = _shown(path, difference["ExpectedValue"]), _shown(path, difference["ActualValue"])
    return f"      {path}: {difference['DifferenceType']} expected {expected} actual {actual}"


def _shown(path: str, value: str) -> str:
    """A property value as the email shows it: hidden where the property may hold a secret, else cut."""
    if SENSITIVE_PROPERTY.search(path):
        return "(hidden: the property may hold a secret)"
    return repr(value if len(value) <= VALUE_LIMIT else value[: VALUE_LIMIT - 1] + "…")


def overall(results: list[StackDrift]) -> str:
    return min((r.status for r in results), key=lambda s: _SEVERITY.index(s) if s in _SEVERITY else 1)


def report(results: list[StackDrift], block: bool) -> list[str]:
    lines = [
        "Drift found on production stacks",
        f"Policy: {'BLOCK (the change is stopped)' if block else 'NOTIFY (the change may go on)'}",
        "",
    ]
    for result in results:
        lines.append(f"== {result.role} stack {result.stack}: {result.line()}")
        lines.extend(f"   {resource}" for resource in result.resources)
        lines.append("")
    return lines


def detect_drift(
    *,
    cloudformation_for: Callable[[str], CloudFormationClient],
    sns: SNSClient,
    config: DriftDetectionConfig,
    token: Mapping[str, Any] | None,
) -> JobResult:
    if token is None:
        token = start(cloudformation_for, config)
    results, running = follow(cloudformation_for, config, token)
    if running:
        return JobResult.keep_waiting(token, "Drift detection in progress")
    status = overall(results)
    text = "; ".join(result.line() for result in results)
    if status == "DRIFTED":
        publish_report(
            sns,
            config.topic_arn,
            f"Drift on production: {config.stacks.primary_stack}",
            report(results, config.block_on_drift),
        )
        if config.block_on_drift:
            raise DriftBlockedError(f"Drift found and DriftPolicy is BLOCK: {text}")
    return JobResult(
        summary=text, output_variables={"DriftStatus": status, "Summary": shorten(text, SUMMARY_VARIABLE_LIMIT)}
    )
