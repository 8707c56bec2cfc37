"""Record release: after both production deploys, keep the released source and write the record."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from release_pipeline import artifacts, releases
from release_pipeline.config import Releases, text
from release_pipeline.errors import BadInputError
from release_pipeline.jobs import SOURCE_ARTIFACT, Job, JobResult
from release_pipeline.values import S3Location

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_ssm import SSMClient


@dataclass(frozen=True)
class RecordReleaseConfig(Releases):
    """record-release: where released sources are kept, and the key that encrypts them."""

    FUNCTION = "record-release"

    artifact_bucket: str = text("ARTIFACT_BUCKET")
    kms_key_arn: str = text("KMS_KEY_ARN")


def record_release(
    *,
    job: Job,
    job_s3: S3Client,
    release_s3: S3Client,
    ssm: SSMClient,
    config: RecordReleaseConfig,
    now: datetime | None = None,
) -> JobResult:
    execution_id = job.execution_id
    given = job.user_parameters.get("commitId")
    commit_id = job.input_revision(SOURCE_ARTIFACT) if given is None or given == "" else given
    if commit_id is not None and not isinstance(commit_id, str):
        raise BadInputError("UserParameters.commitId must be a string")
    data = artifacts.download(job_s3, job.input_artifact(SOURCE_ARTIFACT), what="source artifact")
    artifacts.Archive(data, "source artifact").read(config.template_path)
    key = releases.release_key(execution_id)
    version_id = artifacts.upload(release_s3, S3Location(config.artifact_bucket, key), data, config.kms_key_arn)
    record = releases.ReleaseRecord(
        bucket=config.artifact_bucket,
        key=key,
        version_id=version_id,
        commit_id=commit_id,
        execution_id=execution_id,
        released_at=(now or datetime.now(UTC)).isoformat(timespec="seconds"),
        template_path=config.template_path,
        stage_parameters=config.stage_parameters,
    )
    version = releases.write_record(ssm, config.release_record_parameter, record, config.kms_key_arn)
    commit = (commit_id or "unknown commit")[:12]
    return JobResult(
        summary=f"Released {commit} (execution {execution_id}); record version {version}",
        output_variables={"ReleaseKey": key, "CommitId": commit_id or "unknown"},
    )
