"""Drift detection on production stacks, followed with continuation tokens.

One engine serves two shapes: the solution's two production stacks (reported as ``primary`` and
``secondary``), and every target of a deployment map (reported as ``account/Region/stack``, wave by
wave), each reached in its Region and, in another account, through its deploy role.

The first invocation starts detection on every stack at once and returns a continuation token holding
only the detection ids. Each re-invocation checks them once; when all are done, the drifted resources
are reported to the topic and the job ends. Nothing sleeps inside the function.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from release_pipeline import stacks
from release_pipeline.config import FromEnv, ProductionStacks, flag, optional_text, production_stacks, text
from release_pipeline.errors import ArtifactError, BadInputError, DriftBlockedError
from release_pipeline.jobs import SOURCE_ARTIFACT, SUMMARY_LIMIT, SUMMARY_VARIABLE_LIMIT, Job, JobResult
from release_pipeline.notifications import publish_report
from release_pipeline.values import shorten

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudformation.type_defs import PropertyDifferenceTypeDef
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient

    from release_pipeline.deployment_map import DeploymentMap

logger = Logger()


@dataclass(frozen=True)
class DriftDetectionConfig(FromEnv):
    """drift-detection: the production stacks, the topic, the drift policy and, when the application
    repository has one, where its deployment map is (empty: the two production stacks)."""

    FUNCTION = "drift-detection"

    stacks: ProductionStacks = production_stacks()
    topic_arn: str = text("TOPIC_ARN")
    block_on_drift: bool = flag("DRIFT_POLICY", ("NOTIFY", "BLOCK"), true="BLOCK")
    deployment_map_path: str = optional_text("DEPLOYMENT_MAP_PATH")


NOT_DEPLOYED = "NOT_DEPLOYED"
# Worst first: the overall status is the worst of the stacks'.
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
# What the token holds for a target of a deployment map that has no detection: one that could not be
# reached when detection started (an AWS error there: reported UNKNOWN, never trusted as in sync).
UNREACHABLE: Final = ":"
_REASON_LIMIT = 200

# A CloudFormation client for a stack: its Region, and the deploy role to assume in another account
# (clients.cloudformation_for_targets).
CloudFormationFor = Callable[[str, str | None], "CloudFormationClient"]


@dataclass(frozen=True)
class DriftTarget:
    """A stack drift detection runs on: its label in reports, where it is, and the role that reaches it
    (``None``: the function's own). ``account``, when known, is checked against each detection's stack."""

    label: str
    region: str
    stack: str
    role_arn: str | None = None
    account: str | None = None


@dataclass(frozen=True)
class StackDrift:
    """One stack's drift status, with its drifted resources."""

    role: str
    region: str
    stack: str
    status: str
    detail: str = ""
    resources: tuple[str, ...] = ()

    def state(self) -> str:
        """The status with the number of drifted resources and any detail: ``DRIFTED (1 resources)``."""
        text = self.status
        if self.resources:
            text += f" ({len(self.resources)} resources)"
        return text + (f" ({self.detail})" if self.detail else "")

    def line(self) -> str:
        return f"{self.role} {self.region}: {self.state()}"


# ------------------------------------------------------------------------------------------ the engine


def start_detections(
    cloudformation_for: CloudFormationFor, targets: Sequence[DriftTarget], *, unreachable_is_unknown: bool = False
) -> list[str | None]:
    """Start detection where it can run; returns each target's detection id in target order, ``None``
    where none runs (a stack that cannot be checked is described again on every invocation) and, with
    ``unreachable_is_unknown``, :data:`UNREACHABLE` where AWS refused (otherwise the error is raised)."""
    detections: list[str | None] = []
    for target in targets:
        try:
            cfn = cloudformation_for(target.region, target.role_arn)
            if _unchecked(cfn, target) is not None:
                detections.append(None)
                continue
            detections.append(cfn.detect_stack_drift(StackName=target.stack)["StackDriftDetectionId"])
        except (ClientError, BotoCoreError) as error:
            if not unreachable_is_unknown:
                raise
            logger.warning("Drift detection could not start", extra={"target": target.label, "error": str(error)})
            detections.append(UNREACHABLE)
    return detections


def _unchecked(cfn: CloudFormationClient, target: DriftTarget) -> StackDrift | None:
    """The result for a stack drift detection cannot run on (not deployed, or busy), else None."""
    state = stacks.describe(cfn, target.stack, target.region)
    if not state.exists or state.status == stacks.PLACEHOLDER:
        return StackDrift(target.label, target.region, target.stack, NOT_DEPLOYED, "not deployed yet")
    if state.status not in stacks.DRIFT_CHECKABLE:
        return StackDrift(target.label, target.region, target.stack, "NOT_CHECKED", f"stack is {state.status}")
    return None


def follow_detections(
    cloudformation_for: CloudFormationFor,
    targets: Sequence[DriftTarget],
    detections: Sequence[object],
    *,
    unreachable_is_unknown: bool = False,
) -> tuple[list[StackDrift], bool]:
    """Check each running detection once; returns the results and whether any is still running.

    ``detections`` come from a token: they are checked, never trusted. Each must be a detection of its
    target's stack, and a target without one must still be one that drift detection cannot run on."""
    if len(detections) != len(targets):
        raise BadInputError(
            f"The job's continuation token holds {len(detections)} drift detections for {len(targets)} targets"
        )
    results: list[StackDrift] = []
    running = False
    for target, detection in zip(targets, detections, strict=True):
        if detection is None or (unreachable_is_unknown and detection == UNREACHABLE):
            results.append(_without_detection(cloudformation_for, target, detection, unreachable_is_unknown))
            continue
        if not isinstance(detection, str) or not _DETECTION_ID.fullmatch(detection):
            raise BadInputError(
                f"The job's continuation token holds no valid drift detection for the {target.label} stack"
            )
        cfn = cloudformation_for(target.region, target.role_arn)
        status = cfn.describe_stack_drift_detection_status(StackDriftDetectionId=detection)
        if not _is_of(status.get("StackId", ""), target):
            raise BadInputError(
                f"The job's continuation token names a drift detection of another stack than {target.stack} "
                f"({target.label})"
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
        resources = _drifted_resources(cfn, target.stack) if drift_status == "DRIFTED" else ()
        results.append(StackDrift(target.label, target.region, target.stack, drift_status, detail, resources))
    return results, running


def _without_detection(
    cloudformation_for: CloudFormationFor, target: DriftTarget, detection: object, unreachable_is_unknown: bool
) -> StackDrift:
    """The result for a target the token holds no detection for, from the stack as it is now."""
    try:
        unchecked = _unchecked(cloudformation_for(target.region, target.role_arn), target)
    except (ClientError, BotoCoreError) as error:
        if not unreachable_is_unknown:
            raise
        reason = shorten(str(error), _REASON_LIMIT)
        return StackDrift(target.label, target.region, target.stack, "UNKNOWN", f"not reachable: {reason}")
    if unchecked is not None:
        return unchecked
    if detection == UNREACHABLE:
        # Reachable now, but not when detection started: never reported in sync without a detection.
        reason = "drift detection could not start on it (see the function's log)"
        return StackDrift(target.label, target.region, target.stack, "UNKNOWN", reason)
    raise BadInputError(f"The job's continuation token holds no drift detection for the {target.label} stack")


def _is_of(stack_id: str, target: DriftTarget) -> bool:
    """Whether a stack id (arn:PARTITION:cloudformation:REGION:ACCOUNT:stack/NAME/UUID) is the target's
    stack: its name and Region, and its account when the target names one."""
    parts = stack_id.split(":", 5)
    if len(parts) != 6:
        return False
    resource = parts[5].split("/")
    name = resource[1] if len(resource) == 3 else ""
    return name == target.stack and parts[3] == target.region and (target.account is None or parts[4] == target.account)


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


def _rank(status: str) -> int:
    return _SEVERITY.index(status) if status in _SEVERITY else 1


def overall(results: list[StackDrift]) -> str:
    return min((r.status for r in results), key=_rank)


def _report_head(title: str, block: bool) -> list[str]:
    return [title, f"Policy: {'BLOCK (the change is stopped)' if block else 'NOTIFY (the change may go on)'}", ""]


def _entry(heading: str, result: StackDrift) -> list[str]:
    return [f"== {heading}", *(f"   {resource}" for resource in result.resources), ""]


def _conclude(
    results: list[StackDrift],
    *,
    sns: SNSClient,
    config: DriftDetectionConfig,
    subject: str,
    report_lines: Callable[[], list[str]],
    summary: str,
    summary_variable: str,
) -> JobResult:
    """The job's end: on drift, the report to the topic, then BLOCK stops the change; the outputs."""
    status = overall(results)
    if status == "DRIFTED":
        publish_report(sns, config.topic_arn, subject, report_lines())
        if config.block_on_drift:
            raise DriftBlockedError(f"Drift found and DriftPolicy is BLOCK: {summary}")
    return JobResult(summary=summary, output_variables={"DriftStatus": status, "Summary": summary_variable})


# ------------------------------------------------------------------------- the two production stacks


def production_targets(config: DriftDetectionConfig) -> list[DriftTarget]:
    """The primary then the secondary stack, in the function's own account."""
    return [DriftTarget(role, region, stack) for role, region, stack in config.stacks.targets()]


def _by_region(cloudformation_for: Callable[[str], CloudFormationClient]) -> CloudFormationFor:
    return lambda region, _role: cloudformation_for(region)


def start(cloudformation_for: Callable[[str], CloudFormationClient], config: DriftDetectionConfig) -> dict[str, Any]:
    """Start detection on both production stacks. The token holds only the detection ids, by stack
    (nothing else can be re-read later)."""
    targets = production_targets(config)
    ids = start_detections(_by_region(cloudformation_for), targets)
    return {"detections": {t.label: i for t, i in zip(targets, ids, strict=True) if i is not None}}


def follow(
    cloudformation_for: Callable[[str], CloudFormationClient],
    config: DriftDetectionConfig,
    token: Mapping[str, Any],
) -> tuple[list[StackDrift], bool]:
    """Check each running detection of the production stacks once (see :func:`follow_detections`)."""
    detections = token.get("detections", {})
    if not isinstance(detections, Mapping):
        raise BadInputError("The job's continuation token holds no drift detections object")
    targets = production_targets(config)
    return follow_detections(_by_region(cloudformation_for), targets, [detections.get(t.label) for t in targets])


def report(results: list[StackDrift], block: bool) -> list[str]:
    lines = _report_head("Drift found on production stacks", block)
    for result in results:
        lines.extend(_entry(f"{result.role} stack {result.stack}: {result.line()}", result))
    return lines


def detect_drift(
    *,
    cloudformation_for: Callable[[str], CloudFormationClient],
    sns: SNSClient,
    config: DriftDetectionConfig,
    token: Mapping[str, Any] | None,
) -> JobResult:
    """Drift detection on the two production stacks."""
    if token is None:
        token = start(cloudformation_for, config)
    results, running = follow(cloudformation_for, config, token)
    if running:
        return JobResult.keep_waiting(token, "Drift detection in progress")
    text = "; ".join(result.line() for result in results)
    return _conclude(
        results,
        sns=sns,
        config=config,
        subject=f"Drift on production: {config.stacks.primary_stack}",
        report_lines=lambda: report(results, config.block_on_drift),
        summary=text,
        summary_variable=shorten(text, SUMMARY_VARIABLE_LIMIT),
    )


# ------------------------------------------------------------------------ a deployment map's targets

type Waves = tuple[tuple[str, tuple[DriftTarget, ...]], ...]

# The token of a map's targets: one slot per target, in the map's order, so that 100 targets fit in
# CodePipeline's 2,048 characters (jobs.CONTINUATION_TOKEN_LIMIT). A detection id is a UUID (36
# characters as text, too many for 100 targets) and is written as its 16 bytes in base 85: 20
# characters, whose alphabet has none of the marks below and nothing JSON escapes.
_NO_DETECTION = "."
_QUOTE = "'"  # around an id that is not a UUID in canonical form, written as it is
_PACKED_UUID = 20


def pack_detections(detections: Sequence[str | None]) -> str:
    """The detection ids in one string: per target 20 characters (a UUID), ``.`` (no detection), ``:``
    (not reachable) or the id between quotes (any other id)."""
    slots: list[str] = []
    for detection in detections:
        if detection is None:
            slots.append(_NO_DETECTION)
        elif detection == UNREACHABLE:
            slots.append(UNREACHABLE)
        elif _is_canonical_uuid(detection):
            slots.append(base64.b85encode(uuid.UUID(detection).bytes).decode("ascii"))
        else:
            slots.append(f"{_QUOTE}{detection}{_QUOTE}")
    return "".join(slots)


def unpack_detections(packed: str) -> list[str | None]:
    """The detection ids :func:`pack_detections` wrote; :class:`BadInputError` for anything else."""
    detections: list[str | None] = []
    position = 0
    while position < len(packed):
        mark = packed[position]
        if mark == _NO_DETECTION:
            detections.append(None)
            position += 1
        elif mark == UNREACHABLE:
            detections.append(UNREACHABLE)
            position += 1
        elif mark == _QUOTE:
            end = packed.find(_QUOTE, position + 1)
            if end < 0:
                raise BadInputError("The job's continuation token holds an unfinished drift detection id")
            detections.append(packed[position + 1 : end])
            position = end + 1
        else:
            chunk = packed[position : position + _PACKED_UUID]
            try:
                raw = base64.b85decode(chunk)
                detections.append(str(uuid.UUID(bytes=raw)))
            except (ValueError, binascii.Error):
                raise BadInputError(
                    "The job's continuation token holds a drift detection id that cannot be read"
                ) from None
            position += _PACKED_UUID
    return detections


def _is_canonical_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def map_targets(job: Job, job_s3: S3Client, config: DriftDetectionConfig, function_arn: str) -> Waves:
    """Each wave's name and its targets, in the order of the deployment map at DEPLOYMENT_MAP_PATH in the
    job's source artifact (checked whole), each labelled ``account/Region/stack`` and reached through its
    account's deploy role. The solution's account and partition are the function's (its ARN's)."""
    # Imported here: only a deployment map needs them, and importing them (zipfile with them) adds about
    # 30 ms, near a tenth, to the cold start of the function on the two production stacks.
    from release_pipeline import artifacts, deployment_map, rollout

    home, partition = _home(function_arn)
    what = "source artifact"
    archive = artifacts.Archive(artifacts.download(job_s3, job.input_artifact(SOURCE_ARTIFACT), what=what), what)
    raw = archive.text(config.deployment_map_path)
    if raw is None:
        raise ArtifactError(f"The {what} has no deployment map at {config.deployment_map_path!r} (DEPLOYMENT_MAP_PATH)")
    parsed: DeploymentMap = deployment_map.parse(
        raw, read_file=archive.text, default_stack_name=config.stacks.primary_stack, home_account=home
    )

    def target(item: deployment_map.Target) -> DriftTarget:
        account = item.account or home
        return DriftTarget(
            label=rollout.target_key(account, item.region, item.stack_name),
            region=item.region,
            stack=item.stack_name,
            role_arn=rollout.deploy_role_arn(account, home, partition),
            account=account,
        )

    return tuple((wave.name, tuple(target(item) for item in wave.targets)) for wave in parsed.waves)


# A Lambda function's ARN: arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]
_FUNCTION_ARN = re.compile(r"arn:(?P<partition>[a-z-]+):lambda:[a-z0-9-]+:(?P<account>[0-9]{12}):function:.+")


def _home(function_arn: str) -> tuple[str, str]:
    """(account, partition) of the function's ARN."""
    found = _FUNCTION_ARN.fullmatch(function_arn)
    if found is None:
        raise BadInputError(f"Not a Lambda function ARN: {shorten(function_arn, 120)!r}")
    return found["account"], found["partition"]


def _counts(results: Sequence[StackDrift]) -> str:
    """``3 targets: 1 DRIFTED, 2 IN_SYNC``, worst first."""
    counts = Counter(result.status for result in results)
    noun = "target" if len(results) == 1 else "targets"
    return f"{len(results)} {noun}: " + ", ".join(f"{counts[s]} {s}" for s in sorted(counts, key=_rank))


def targets_summary(results: Sequence[StackDrift], limit: int, *, detailed: bool = False) -> str:
    """The counts per status, then the drifted targets' labels (``detailed``: every target neither in sync
    nor undeployed, worst first, with its state), whole ones only, within ``limit`` characters:
    ``5 targets: 3 DRIFTED, 2 IN_SYNC; drifted: a, b and 1 more``."""
    head = _counts(results)
    if detailed:
        ranked = sorted(results, key=lambda result: _rank(result.status))
        listed = [f"{r.role}: {r.state()}" for r in ranked if r.status not in ("IN_SYNC", NOT_DEPLOYED)]
        lead, separator = "; ", "; "
    else:
        listed = [result.role for result in results if result.status == "DRIFTED"]
        lead, separator = "; drifted: ", ", "
    for shown in range(len(listed), 0, -1):
        rest = len(listed) - shown
        text = head + lead + separator.join(listed[:shown]) + (f" and {rest} more" if rest else "")
        if len(text) <= limit:
            return text
    return shorten(head, limit)


def targets_report(waves: Waves, results: Sequence[StackDrift], block: bool) -> list[str]:
    """The report, wave by wave: each wave's counts, then each target with its drifted resources."""
    lines = _report_head("Drift found on production targets", block)
    remaining: Iterator[StackDrift] = iter(results)
    for number, (name, targets) in enumerate(waves, start=1):
        found = [next(remaining) for _ in targets]
        lines.extend([f"Wave {number} {name}: {_counts(found)}", ""])
        for result in found:
            lines.extend(_entry(f"{result.role}: {result.state()}", result))
    return lines


def detect_drift_on_targets(
    *,
    job: Job,
    job_s3: S3Client,
    cloudformation_for: CloudFormationFor,
    sns: SNSClient,
    config: DriftDetectionConfig,
    function_arn: str,
) -> JobResult:
    """Drift detection on every target of the deployment map in the job's source artifact.

    The map is read again on every invocation (the token holds only the detection ids, one slot per
    target in the map's order). A target that AWS refuses to reach is UNKNOWN with the reason; the
    others still report."""
    waves = map_targets(job, job_s3, config, function_arn)
    targets = [target for _, wave in waves for target in wave]
    token = job.continuation_token
    if token is None:
        detections = start_detections(cloudformation_for, targets, unreachable_is_unknown=True)
    else:
        packed = token.get("detections")
        if not isinstance(packed, str):
            raise BadInputError("The job's continuation token holds no drift detections of the map's targets")
        detections = unpack_detections(packed)
    results, running = follow_detections(cloudformation_for, targets, detections, unreachable_is_unknown=True)
    if running:
        return JobResult.keep_waiting(
            {"detections": pack_detections(detections)}, f"Drift detection in progress on {len(targets)} targets"
        )
    drifted = sum(1 for result in results if result.status == "DRIFTED")
    return _conclude(
        results,
        sns=sns,
        config=config,
        subject=f"Drift on production: {drifted} of {len(targets)} targets",
        report_lines=lambda: targets_report(waves, results, config.block_on_drift),
        summary=targets_summary(results, SUMMARY_LIMIT, detailed=True),
        summary_variable=targets_summary(results, SUMMARY_VARIABLE_LIMIT),
    )
