"""Target change sets: one review for every target of the deployment map (CheckChanges).

When the application repository carries a deployment map, this job makes the change set of every target
in its Region and account (``<prefix><pipeline execution id>``, as the rollout expects), each carrying
its wave's alarms and bake time as CloudFormation's rollback configuration: during the bake CloudFormation
itself rolls a target back when one of the alarms fires. It follows them with continuation tokens until
CloudFormation has made them all, then reports, target by target and wave by wave, what approval would
release, and how the map differs from the one the last release went out with.

After approval the rollout (:mod:`release_pipeline.rollout`) executes exactly these change sets. An empty
change set is therefore kept, not removed as change detection removes the production stacks' empty ones:
the rollout reads it as "unchanged", and a missing change set as one that was never reviewed.

Parameter values go to CloudFormation only: a value may be a secret, so the report and the output variables
name parameters alone (as :func:`release_pipeline.deployment_map.compare` does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from release_pipeline import artifacts, deployment_map, rollout, stacks
from release_pipeline.changes import RegionChanges, inspect_change_set, permissions_lines
from release_pipeline.config import FromEnv, text
from release_pipeline.deployment_map import DeploymentMap, Target, Wave
from release_pipeline.errors import (
    ArtifactError,
    BadInputError,
    ChangeSetError,
    ConfigurationError,
    PipelineError,
    ReleaseRecordError,
    error_code,
)
from release_pipeline.jobs import SOURCE_ARTIFACT, SUMMARY_VARIABLE_LIMIT, Job, JobResult
from release_pipeline.notifications import publish_report
from release_pipeline.values import shorten

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudformation.literals import ChangeSetTypeType
    from mypy_boto3_cloudformation.type_defs import CreateChangeSetInputTypeDef, RollbackConfigurationTypeDef
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_ssm import SSMClient


@dataclass(frozen=True)
class TargetChangesConfig(FromEnv):
    """target-change-sets: where the map and the template are in the source, what the change sets are
    called and run as, where the report goes, and where the last release is recorded."""

    FUNCTION = "target-change-sets"

    #: The deployment map's path in the application repository (the Source artifact).
    deployment_map_path: str = text("DEPLOYMENT_MAP_PATH")
    #: The stack name of a target that names none (the solution's ApplicationStackName).
    default_stack_name: str = text("APPLICATION_STACK_NAME")
    #: The application template's path in the application repository.
    template_path: str = text("TEMPLATE_PATH")
    #: The change sets' name before the pipeline execution id (the rollout executes the same names).
    change_set_prefix: str = text("CHANGE_SET_PREFIX")
    #: The solution's CloudFormation execution role: the role of every target in the solution's account
    #: (a target in another account gets the execution role the bootstrap template made there).
    cloudformation_role_arn: str = text("CLOUDFORMATION_ROLE_ARN")
    #: The SNS topic the change report is published to.
    topic_arn: str = text("TOPIC_ARN")
    #: The release record's SSM parameter: the map the last release went out with is compared.
    release_record_parameter: str = text("RELEASE_RECORD_PARAMETER")

    def change_set_name(self, execution_id: str) -> str:
        """Every target's change set for pipeline execution ``execution_id``."""
        return self.change_set_prefix + execution_id


# The action's output variables, read by stage conditions and the approval as #{<namespace>.<name>}.
OUTPUT_VARIABLES = ("HasChanges", "Summary", "ChangedTargets", "MapDigest")
ALARM_TYPE = "AWS::CloudWatch::Alarm"
# How a target's change set compares with what its stack runs.
NEW, CHANGED, UNCHANGED = "new", "changed", "unchanged"
_SHOWN_PENDING = 3  # targets named in the summary while change sets are still being made


@dataclass(frozen=True)
class Home:
    """The solution's account and partition, read from the function's own ARN."""

    account: str
    partition: str

    @classmethod
    def of_function(cls, function_arn: str) -> Home:
        """From ``arn:<partition>:lambda:<Region>:<account>:function:<name>`` (the Lambda context's
        ``invoked_function_arn``)."""
        parts = function_arn.split(":")
        if len(parts) < 7 or parts[0] != "arn" or not deployment_map.ACCOUNT_ID.fullmatch(parts[4]):
            raise PipelineError(f"The function's ARN {shorten(function_arn, 200)!r} is not a Lambda function ARN")
        return cls(account=parts[4], partition=parts[1])


@dataclass(frozen=True)
class PlacedTarget:
    """A target of the map with its wave, its account and the roles its change set is made with."""

    wave: Wave
    target: Target
    account: str
    deploy_role_arn: str | None  # None: the solution's own account
    execution_role_arn: str

    @property
    def key(self) -> str:
        return rollout.target_key(self.account, self.target.region, self.target.stack_name)

    def describe(self) -> str:
        return self.target.describe()


def placed_targets(current: DeploymentMap, home: Home, execution_role_arn: str) -> list[PlacedTarget]:
    """Every target of ``current``, wave by wave, with the roles :func:`rollout.target_roles` gives it."""
    placed = []
    for wave in current.waves:
        for target in wave.targets:
            account = target.account or home.account
            deploy_role, execution_role = rollout.target_roles(
                account, home.account, home.partition, execution_role_arn
            )
            placed.append(PlacedTarget(wave, target, account, deploy_role, execution_role))
    return placed


def alarm_arn(partition: str, region: str, account: str, name: str) -> str:
    return f"arn:{partition}:cloudwatch:{region}:{account}:alarm:{name}"


def rollback_configuration(
    placed: PlacedTarget, partition: str, kept_triggers: Sequence[str]
) -> RollbackConfigurationTypeDef | None:
    """The wave's alarms (in the target's Region and account) and bake time as the change set's rollback
    configuration; ``None`` when the wave has neither and the stack keeps no trigger. CloudFormation keeps
    a stack's triggers for every later operation that does not replace them, so a stack that keeps some
    from an earlier map gets an empty list: the wave's settings, not a stale alarm, decide its rollback."""
    wave, region = placed.wave, placed.target.region
    if not wave.alarms and not wave.bake_minutes and not kept_triggers:
        return None
    return {
        "RollbackTriggers": [
            {"Arn": alarm_arn(partition, region, placed.account, name), "Type": ALARM_TYPE} for name in wave.alarms
        ],
        "MonitoringTimeInMinutes": wave.bake_minutes,
    }


@dataclass(frozen=True)
class Source:
    """What the job reads from the Source artifact: the template and the deployment map."""

    template: str
    deployment_map: DeploymentMap


def read_source(archive: artifacts.Archive, config: TargetChangesConfig, home: Home) -> Source:
    """The template (refused over CloudFormation's inline limit) and the map, every problem of the map
    named entry by entry."""
    data = archive.read(config.template_path)
    if len(data) > stacks.TEMPLATE_BODY_LIMIT:
        raise BadInputError(
            f"The template {config.template_path} is {len(data):,} bytes, over the {stacks.TEMPLATE_BODY_LIMIT:,} "
            "bytes CloudFormation takes inline (TemplateBody). A larger template is passed by TemplateURL, which "
            "needs a copy of it in each target Region: that is not supported yet for a deployment map's targets. "
            "Make the template smaller (nested stacks or packaged code help)"
        )
    try:
        template = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInputError(f"The template {config.template_path} is not UTF-8 text") from None
    raw_map = archive.text(config.deployment_map_path)
    if raw_map is None:
        raise ArtifactError(f"The {archive.what} has no deployment map at {config.deployment_map_path}")
    try:
        current = deployment_map.parse(
            raw_map, read_file=archive.text, default_stack_name=config.default_stack_name, home_account=home.account
        )
    except ConfigurationError as error:
        # Validate should have refused the map already; this job never trusts that it did.
        raise BadInputError(f"{config.deployment_map_path}: {error}") from None
    return Source(template=template, deployment_map=current)


def _aws_error(error: ClientError) -> str:
    message = str(error.response.get("Error", {}).get("Message", "")) or "no message"
    return f"{error_code(error) or 'error'}: {message}"


def create_change_set(
    cfn: CloudFormationClient, placed: PlacedTarget, *, name: str, template: str, partition: str
) -> bool:
    """Make the target's change set; ``False`` when it exists already (this is a repeated invocation)."""
    target = placed.target
    state = stacks.describe(cfn, target.stack_name, target.region)
    # A REVIEW_IN_PROGRESS placeholder is what an earlier, never executed CREATE change set left.
    kind: ChangeSetTypeType = "UPDATE" if state.exists and state.status != stacks.PLACEHOLDER else "CREATE"
    request: CreateChangeSetInputTypeDef = {
        "StackName": target.stack_name,
        "ChangeSetName": name,
        "ChangeSetType": kind,
        "TemplateBody": template,
        "Parameters": [
            {"ParameterKey": key, "ParameterValue": value} for key, value in sorted(target.parameters.items())
        ],
        "Capabilities": rollout.CAPABILITIES,
        "RoleARN": placed.execution_role_arn,
    }
    configuration = rollback_configuration(placed, partition, state.rollback_triggers if kind == "UPDATE" else ())
    if configuration is not None:
        request["RollbackConfiguration"] = configuration
    try:
        cfn.create_change_set(**request)
    except ClientError as error:
        if error_code(error) == "AlreadyExistsException":
            return False
        raise
    return True


def create_change_sets(
    cloudformation_for: rollout.CloudFormationFor,
    targets: Sequence[PlacedTarget],
    *,
    name: str,
    template: str,
    home: Home,
) -> int:
    """Make every target's change set; returns how many were made before (by an earlier attempt). Every
    target is tried: the ones CloudFormation refuses are named together in one :class:`ChangeSetError`."""
    existing = 0
    problems: list[str] = []
    for placed in targets:
        try:
            cfn = cloudformation_for(placed.target.region, placed.deploy_role_arn)
        except ClientError as error:
            problems.append(
                f"{placed.describe()}: cannot assume its deploy role {placed.deploy_role_arn} ({_aws_error(error)}); "
                f"is the bootstrap template deployed in account {placed.account}?"
            )
            continue
        try:
            created = create_change_set(cfn, placed, name=name, template=template, partition=home.partition)
        except ClientError as error:
            problems.append(f"{placed.describe()}: {_aws_error(error)}")
            continue
        if not created:
            existing += 1
    if problems:
        raise ChangeSetError(
            f"CloudFormation refused the change set {name} of {len(problems)} of {len(targets)} targets "
            "(a retry makes only the missing ones): " + "; ".join(problems)
        )
    return existing


@dataclass(frozen=True)
class TargetChanges:
    """One target's change set, read."""

    placed: PlacedTarget
    changes: RegionChanges

    @property
    def kind(self) -> str:
        """NEW (the change set creates the stack), CHANGED or UNCHANGED."""
        if not self.changes.has_changes:
            return UNCHANGED
        return NEW if self.changes.first_release else CHANGED


def read_change_sets(
    cloudformation_for: rollout.CloudFormationFor, targets: Sequence[PlacedTarget], name: str
) -> list[TargetChanges]:
    return [
        TargetChanges(
            placed,
            inspect_change_set(
                cloudformation_for(placed.target.region, placed.deploy_role_arn),
                placed.wave.name,
                placed.target.region,
                placed.target.stack_name,
                name,
            ),
        )
        for placed in targets
    ]


def check_settled(results: Sequence[TargetChanges], name: str) -> None:
    """:class:`ChangeSetError` naming every target whose change set is missing or cannot be deployed,
    with CloudFormation's reason."""
    problems = []
    for result in results:
        if result.changes.state == "MISSING":
            problems.append(
                f"{result.placed.describe()}: the change set {name} does not exist (it was made at this action's "
                "first check and since deleted); retry the stage to make it again"
            )
        elif result.changes.problem is not None:
            problems.append(f"{result.placed.describe()}: the change set {name} {result.changes.problem}")
    if problems:
        count = f"{len(problems)} of {len(results)} targets"
        raise ChangeSetError(f"The change sets of {count} cannot be deployed: " + "; ".join(problems))


# ------------------------------------------------------------------------------------------------ report


@dataclass(frozen=True)
class WaveCounts:
    """How many of a wave's targets change, stay as they are, or are created."""

    name: str
    changed: int
    unchanged: int
    new: int

    def text(self) -> str:
        return f"{self.name}: {self.changed} changed, {self.unchanged} unchanged, {self.new} new"


def wave_counts(current: DeploymentMap, results: Sequence[TargetChanges]) -> list[WaveCounts]:
    counts = []
    for wave in current.waves:
        kinds = [result.kind for result in results if result.placed.wave.name == wave.name]
        counts.append(WaveCounts(wave.name, kinds.count(CHANGED), kinds.count(UNCHANGED), kinds.count(NEW)))
    return counts


def summary(current: DeploymentMap, results: Sequence[TargetChanges]) -> str:
    """One line for the approval: how many targets change, then each wave's counts."""
    changing = sum(1 for result in results if result.changes.has_changes)
    waves = "; ".join(counts.text() for counts in wave_counts(current, results))
    return f"{changing} of {len(results)} targets change. {waves}"


@dataclass(frozen=True)
class MapComparison:
    """The map's changes since the last release, and a line saying what it was compared with."""

    basis: str
    change: deployment_map.MapChange


def compare_with_release(
    ssm: SSMClient, s3: S3Client, config: TargetChangesConfig, current: DeploymentMap, home: Home
) -> MapComparison:
    """The current map compared with the last release's. Before the first release, or when the release
    had no map (it went out before the map was adopted) or one that can no longer be read, every target
    is new to the map, and ``basis`` says why."""
    release = rollout.open_release(ssm, s3, config.release_record_parameter)
    if release is None:
        return MapComparison("Nothing released yet: every target is new.", deployment_map.compare(None, current))
    execution = release.record.execution_id
    try:
        previous = rollout.released_map(
            release,
            config.deployment_map_path,
            default_stack_name=config.default_stack_name,
            home_account=home.account,
        )
    except ReleaseRecordError as error:
        basis = f"The map of release {execution} cannot be read ({error}); every target is shown as new."
        return MapComparison(basis, deployment_map.compare(None, current))
    if previous is None:
        basis = f"Release {execution} had no deployment map at {config.deployment_map_path}: every target is new."
        return MapComparison(basis, deployment_map.compare(None, current))
    return MapComparison(f"Compared with the map of release {execution}.", deployment_map.compare(previous, current))


def report(current: DeploymentMap, results: Sequence[TargetChanges], comparison: MapComparison, name: str) -> list[str]:
    """The full report sent to the topic, as lines: the summary, the waves, the map's changes, then every
    target's resource changes wave by wave. Parameters appear by name only."""
    lines = [
        f"Changes waiting for approval: change sets {name}",
        "",
        f"Summary: {summary(current, results)}",
        "",
        "Waves:",
        *(f"   {line}" for line in deployment_map.summary_by_wave(current)),
        "",
        f"Deployment map: {comparison.basis}",
        *(f"   {line}" for line in comparison.change.lines() or ["no change to the map"]),
        "",
    ]
    for counts, wave in zip(wave_counts(current, results), current.waves, strict=True):
        lines.append(f"== wave {counts.text()}")
        for result in results:
            if result.placed.wave.name != wave.name:
                continue
            lines.append(f"-- {result.placed.describe()}: {result.changes.counts()}")
            lines.extend(result.changes.lines())
        lines.append("")
    return lines + permissions_lines([result.changes for result in results])


# ------------------------------------------------------------------------------------------------- job


def target_change_sets(
    *,
    job: Job,
    job_s3: S3Client,
    release_s3: S3Client,
    ssm: SSMClient,
    sns: SNSClient,
    cloudformation_for: rollout.CloudFormationFor,
    config: TargetChangesConfig,
    function_arn: str,
) -> JobResult:
    """Make every target's change set (first invocation), then follow them until they are made, and
    report. ``job_s3`` reads the job's artifacts (with its artifact credentials), ``release_s3`` the
    released source (with the function's role)."""
    home = Home.of_function(function_arn)
    name = config.change_set_name(job.execution_id)
    polls = job.token_count("polls")
    source_data = artifacts.download(job_s3, job.input_artifact(SOURCE_ARTIFACT), what="source artifact")
    source = read_source(artifacts.Archive(source_data, "source artifact"), config, home)
    current = source.deployment_map
    targets = placed_targets(current, home, config.cloudformation_role_arn)
    if polls == 0:
        existing = create_change_sets(cloudformation_for, targets, name=name, template=source.template, home=home)
        again = f" ({existing} made by an earlier attempt)" if existing else ""
        return JobResult.keep_waiting(
            {"polls": 1},
            f"Making change sets {name} for {len(targets)} targets in {len(current.waves)} waves{again}",
        )
    results = read_change_sets(cloudformation_for, targets, name)
    pending = [result.placed.key for result in results if result.changes.state == "PENDING"]
    if pending:
        shown = ", ".join(pending[:_SHOWN_PENDING]) + (
            f" and {len(pending) - _SHOWN_PENDING} more" if len(pending) > _SHOWN_PENDING else ""
        )
        return JobResult.keep_waiting(
            {"polls": polls + 1},
            f"Waiting for change sets (check {polls + 1}): {len(pending)} of {len(targets)} being made: {shown}",
        )
    check_settled(results, name)
    comparison = compare_with_release(ssm, release_s3, config, current, home)
    changed = [result for result in results if result.changes.has_changes]
    if changed or comparison.change:
        subject = (
            f"Changes to review: {len(changed)} of {len(results)} targets of {config.default_stack_name}"
            if changed
            else f"Deployment map changed, no stack changes: {config.default_stack_name}"
        )
        publish_report(sns, config.topic_arn, subject, report(current, results, comparison, name))
    return JobResult(summary=summary(current, results), output_variables=output_variables(current, results))


def output_variables(current: DeploymentMap, results: Sequence[TargetChanges]) -> dict[str, str]:
    """The action's output variables: no parameter value, each short enough for an approval's CustomData."""
    changed = sum(1 for result in results if result.changes.has_changes)
    return {
        "HasChanges": "true" if changed else "false",
        "Summary": shorten(summary(current, results), SUMMARY_VARIABLE_LIMIT),
        "ChangedTargets": str(changed),
        "MapDigest": deployment_map.digest(current),
    }
