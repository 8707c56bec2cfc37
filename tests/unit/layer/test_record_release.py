"""release_pipeline.record_release: after both production deploys, the released source is copied under
releases/<execution>/source.zip and the release record is written; a source that cannot be released
writes neither."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError

from release_pipeline import releases
from release_pipeline.errors import ArtifactError, BadInputError
from release_pipeline.jobs import Job, JobResult
from release_pipeline.record_release import RecordReleaseConfig, record_release
from tests.support.solution import source_zip
from tests.unit.layer.test_config import environ

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_ssm import SSMClient

BASE = RecordReleaseConfig.from_env(environ(RecordReleaseConfig))
TEMPLATE_PATH = BASE.template_path
EXECUTION = "e1a2b3c4-0000-4000-8000-000000000001"
COMMIT = "3f786850e387550fdab836ed7e6dc881de23001b"
REVISION = "9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b"
SOURCE_KEY = "release-pipeline/SourceOutp/k3Xw9Qa"
SOURCE = source_zip({TEMPLATE_PATH: "Resources: {Queue: {Type: AWS::SQS::Queue}}\n", "README.md": "v1\n"})
NOW = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)


def job(user_parameters: dict[str, Any] | None = None, revision: str | None = REVISION) -> Job:
    parameters = {"executionId": EXECUTION, "commitId": COMMIT} if user_parameters is None else user_parameters
    return Job(
        {
            "CodePipeline.job": {
                "id": "e5c9a3f1-0001-4000-8000-000000000001",
                "accountId": "123456789012",
                "data": {
                    "actionConfiguration": {"configuration": {"UserParameters": json.dumps(parameters)}},
                    "inputArtifacts": [
                        {
                            "name": "SourceOutput",
                            "revision": revision,
                            "location": {
                                "type": "S3",
                                "s3Location": {"bucketName": BASE.artifact_bucket, "objectKey": SOURCE_KEY},
                            },
                        }
                    ],
                    "outputArtifacts": [],
                    "artifactCredentials": {
                        "accessKeyId": "ASIAEXAMPLE",
                        "secretAccessKey": "example",
                        "sessionToken": "example",
                        "expirationTime": 1767225600000,
                    },
                },
            }
        }
    )


@pytest.fixture
def config(artifact_bucket: str, kms_key_arn: str) -> RecordReleaseConfig:
    assert artifact_bucket == BASE.artifact_bucket
    return dataclasses.replace(BASE, kms_key_arn=kms_key_arn, stage_parameters={"Env": "stage", "Size": "1"})


def run(s3: S3Client, ssm: SSMClient, config: RecordReleaseConfig, the_job: Job | None = None) -> JobResult:
    return record_release(job=the_job or job(), job_s3=s3, release_s3=s3, ssm=ssm, config=config, now=NOW)


def put_source(s3: S3Client, body: bytes = SOURCE) -> None:
    s3.put_object(Bucket=BASE.artifact_bucket, Key=SOURCE_KEY, Body=body)


def released_keys(s3: S3Client) -> list[str]:
    listed = s3.list_object_versions(Bucket=BASE.artifact_bucket, Prefix=releases.RELEASES_PREFIX)
    return [v["Key"] for v in listed.get("Versions", [])]


def assert_no_record(ssm: SSMClient, config: RecordReleaseConfig) -> None:
    with pytest.raises(ClientError) as missing:
        ssm.get_parameter(Name=config.release_record_parameter)
    assert missing.value.response["Error"]["Code"] == "ParameterNotFound"


def test_the_source_is_kept_under_releases_and_the_record_points_at_that_copy(
    s3: S3Client, ssm: SSMClient, config: RecordReleaseConfig
) -> None:
    put_source(s3)

    result = run(s3, ssm, config)

    key = f"releases/{EXECUTION}/source.zip"
    copy = s3.get_object(Bucket=config.artifact_bucket, Key=key)
    assert copy["Body"].read() == SOURCE
    assert copy["ServerSideEncryption"] == "aws:kms"
    assert copy["SSEKMSKeyId"] == config.kms_key_arn
    record = releases.read_record(ssm, config.release_record_parameter)
    assert record == releases.ReleaseRecord(
        bucket=config.artifact_bucket,
        key=key,
        version_id=copy["VersionId"],
        commit_id=COMMIT,
        execution_id=EXECUTION,
        released_at="2026-03-01T09:30:15+00:00",
        template_path=TEMPLATE_PATH,
        stage_parameters={"Env": "stage", "Size": "1"},
    )
    assert result.output_variables == {"ReleaseKey": key, "CommitId": COMMIT}
    assert result.summary == f"Released {COMMIT[:12]} (execution {EXECUTION}); record version 1"


def test_a_source_without_the_template_writes_nothing(
    s3: S3Client, ssm: SSMClient, config: RecordReleaseConfig
) -> None:
    put_source(s3, source_zip({"other/template.yaml": "Resources: {}\n"}))

    with pytest.raises(ArtifactError, match=f"has no file '{TEMPLATE_PATH}'"):
        run(s3, ssm, config)

    assert released_keys(s3) == []
    assert_no_record(ssm, config)


def test_a_source_that_is_not_a_zip_writes_nothing(s3: S3Client, ssm: SSMClient, config: RecordReleaseConfig) -> None:
    put_source(s3, b"not a zip")

    with pytest.raises(ArtifactError, match="not a valid zip archive"):
        run(s3, ssm, config)

    assert released_keys(s3) == []
    assert_no_record(ssm, config)


def test_a_missing_source_writes_nothing(s3: S3Client, ssm: SSMClient, config: RecordReleaseConfig) -> None:
    with pytest.raises(ArtifactError, match="does not exist"):
        run(s3, ssm, config)

    assert released_keys(s3) == []
    assert_no_record(ssm, config)


@pytest.mark.parametrize(
    ("parameters", "revision", "commit"),
    [
        ({"executionId": EXECUTION}, REVISION, REVISION),  # no commitId: the artifact's revision
        ({"executionId": EXECUTION, "commitId": ""}, REVISION, REVISION),
        ({"executionId": EXECUTION, "commitId": COMMIT}, REVISION, COMMIT),  # the action's value wins
        ({"executionId": EXECUTION}, None, None),
    ],
    ids=["revision", "empty-commit-id", "commit-id", "neither"],
)
def test_the_commit_comes_from_user_parameters_else_the_artifact_revision(
    s3: S3Client,
    ssm: SSMClient,
    config: RecordReleaseConfig,
    parameters: dict[str, Any],
    revision: str | None,
    commit: str | None,
) -> None:
    put_source(s3)

    result = run(s3, ssm, config, job(parameters, revision))

    record = releases.read_record(ssm, config.release_record_parameter)
    assert record is not None
    assert record.commit_id == commit
    assert result.output_variables["CommitId"] == (commit or "unknown")
    assert result.summary.startswith(f"Released {(commit or 'unknown commit')[:12]} ")


@pytest.mark.parametrize("commit", [12345, ["a"], {"id": "a"}, 0, [], {}, False])
def test_a_commit_id_that_is_not_text_is_refused_before_anything_is_written(
    s3: S3Client, ssm: SSMClient, config: RecordReleaseConfig, commit: object
) -> None:
    put_source(s3)

    with pytest.raises(BadInputError, match=r"UserParameters\.commitId must be a string"):
        run(s3, ssm, config, job({"executionId": EXECUTION, "commitId": commit}))

    assert released_keys(s3) == []
    assert_no_record(ssm, config)


def test_an_execution_id_that_is_not_one_is_refused_before_anything_is_written(
    s3: S3Client, ssm: SSMClient, config: RecordReleaseConfig
) -> None:
    """An unresolved variable would otherwise name the copy releases/#{codepipeline...}/source.zip."""
    put_source(s3)

    with pytest.raises(BadInputError, match="executionId"):
        run(s3, ssm, config, job({"executionId": "#{codepipeline.PipelineExecutionId}", "commitId": COMMIT}))

    assert released_keys(s3) == []
    assert_no_record(ssm, config)


def test_a_later_release_replaces_the_record_and_keeps_the_earlier_copy(
    s3: S3Client, ssm: SSMClient, config: RecordReleaseConfig
) -> None:
    put_source(s3)
    run(s3, ssm, config)
    later = "e1a2b3c4-0000-4000-8000-000000000002"
    newer = source_zip({TEMPLATE_PATH: "Resources: {Topic: {Type: AWS::SNS::Topic}}\n"})
    put_source(s3, newer)

    result = run(s3, ssm, config, job({"executionId": later, "commitId": "b" * 40}))

    assert result.summary.endswith("record version 2")
    record = releases.read_record(ssm, config.release_record_parameter)
    assert record is not None
    assert (record.execution_id, record.key) == (later, f"releases/{later}/source.zip")
    assert sorted(released_keys(s3)) == [f"releases/{EXECUTION}/source.zip", f"releases/{later}/source.zip"]
    assert s3.get_object(Bucket=config.artifact_bucket, Key=f"releases/{EXECUTION}/source.zip")["Body"].read() == SOURCE
