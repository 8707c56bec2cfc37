"""Record release: after both production deploys, keep the released source and write the record.

With a deployment map, the record also names the map the release went out with (its digest) and, for each
target, the pipeline execution whose change it runs: this execution for every target it deployed; a
target whose change set was empty keeps the execution the previous record names for it. Those executions
are kept in ``releases/<execution>/targets.json`` beside the released source, written before the record
that names it. Without a map, the record is the one the pipeline always wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from release_pipeline import artifacts, releases
from release_pipeline.config import Releases, optional_text, text
from release_pipeline.errors import BadInputError
from release_pipeline.jobs import SOURCE_ARTIFACT, Job, JobResult
from release_pipeline.values import S3Location, shorten

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_ssm import SSMClient


@dataclass(frozen=True)
class RecordReleaseConfig(Releases):
    """record-release: where released sources are kept, the key that encrypts them, and the deployment map
    (empty: none, the two-Region rollout) with the stack name of a target that names none."""

    FUNCTION = "record-release"

    artifact_bucket: str = text("ARTIFACT_BUCKET")
    kms_key_arn: str = text("KMS_KEY_ARN")
    deployment_map_path: str = optional_text("DEPLOYMENT_MAP_PATH")
    application_stack_name: str = optional_text("APPLICATION_STACK_NAME", required_with="DEPLOYMENT_MAP_PATH")


# UserParameters.unchangedTargets: the targets whose change set was empty, by name (account/Region/stack),
# separated by commas (a name holds none), so that one pipeline variable can carry them.
UNCHANGED_TARGETS = "unchangedTargets"


@dataclass(frozen=True)
class MapRelease:
    """What a release with a deployment map adds to the record."""

    digest: str
    targets: dict[str, str]


def record_release(
    *,
    job: Job,
    job_s3: S3Client,
    release_s3: S3Client,
    ssm: SSMClient,
    config: RecordReleaseConfig,
    home_account: str,
    now: datetime | None = None,
) -> JobResult:
    execution_id = job.execution_id
    given = job.user_parameters.get("commitId")
    commit_id = job.input_revision(SOURCE_ARTIFACT) if given is None or given == "" else given
    if commit_id is not None and not isinstance(commit_id, str):
        raise BadInputError("UserParameters.commitId must be a string")
    data = artifacts.download(job_s3, job.input_artifact(SOURCE_ARTIFACT), what="source artifact")
    archive = artifacts.Archive(data, "source artifact")
    archive.read(config.template_path)
    # Everything is read and checked before anything is written: a release that cannot be recorded
    # leaves the previous record and no copy.
    mapped = (
        _map_release(job, archive, ssm, release_s3, config, execution_id, home_account)
        if config.deployment_map_path
        else None
    )
    key = releases.release_key(execution_id)
    version_id = artifacts.upload(release_s3, S3Location(config.artifact_bucket, key), data, config.kms_key_arn)
    targets_object = (
        releases.write_targets(
            release_s3,
            config.artifact_bucket,
            execution_id=execution_id,
            deployment_map_digest=mapped.digest,
            targets=mapped.targets,
            kms_key_id=config.kms_key_arn,
        )
        if mapped
        else None
    )
    record = releases.ReleaseRecord(
        bucket=config.artifact_bucket,
        key=key,
        version_id=version_id,
        commit_id=commit_id,
        execution_id=execution_id,
        released_at=(now or datetime.now(UTC)).isoformat(timespec="seconds"),
        template_path=config.template_path,
        stage_parameters=config.stage_parameters,
        deployment_map_digest=mapped.digest if mapped else None,
        targets_object=targets_object,
    )
    version = releases.write_record(ssm, config.release_record_parameter, record, config.kms_key_arn)
    commit = (commit_id or "unknown commit")[:12]
    summary = f"Released {commit} (execution {execution_id}); record version {version}"
    if mapped:
        summary += f"; deployment map {mapped.digest[:12]}, {len(mapped.targets)} targets recorded"
    return JobResult(summary=summary, output_variables={"ReleaseKey": key, "CommitId": commit_id or "unknown"})


def _map_release(
    job: Job,
    archive: artifacts.Archive,
    ssm: SSMClient,
    release_s3: S3Client,
    config: RecordReleaseConfig,
    execution_id: str,
    home_account: str,
) -> MapRelease:
    """The map's digest, and each target's execution: the previous record's targets, then this execution
    for every target of the map but one whose change set was empty and that the previous record names."""
    from release_pipeline import deployment_map  # the map modules load only with a map (cold start)
    from release_pipeline.map_check import read_map

    released = read_map(
        archive,
        config.deployment_map_path,
        default_stack_name=config.application_stack_name,
        home_account=home_account,
    )
    names = [deployment_map.key_name(released.key(target)) for target in released.targets()]
    unchanged = _unchanged_targets(job, set(names))
    previous = releases.read_record(ssm, config.release_record_parameter)
    targets = releases.read_targets(release_s3, previous, config.release_record_parameter) if previous else {}
    for name in names:
        if name not in unchanged or name not in targets:
            targets[name] = execution_id
    return MapRelease(digest=deployment_map.digest(released), targets=targets)


def _unchanged_targets(job: Job, names: set[str]) -> set[str]:
    """UserParameters.unchangedTargets as a set of names, each a target of the map."""
    raw = job.user_parameters.get(UNCHANGED_TARGETS, "")
    if not isinstance(raw, str):
        raise BadInputError(f"UserParameters.{UNCHANGED_TARGETS} must be a string of target names separated by commas")
    given = {name.strip() for name in raw.split(",") if name.strip()}
    unknown = sorted(given - names)
    if unknown:
        shown = shorten(", ".join(unknown), 300)
        raise BadInputError(
            f"UserParameters.{UNCHANGED_TARGETS} names targets that are not in the deployment map: {shown}"
        )
    return given
