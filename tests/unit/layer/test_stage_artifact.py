"""release_pipeline.stage_artifact: the stage stack's artifacts come from the last release with the
released stage parameters, or before the first release from the current source with the current ones;
a source without the template fails before anything is written."""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from typing import TYPE_CHECKING, Any

import pytest

from release_pipeline import releases
from release_pipeline.errors import ArtifactError
from release_pipeline.jobs import Job, JobResult
from release_pipeline.stage_artifact import (
    CONFIGURATION_FILE,
    PrepareStageArtifactConfig,
    prepare_stage_artifact,
    template_configuration,
)
from tests.support.solution import ARTIFACT_BUCKET, source_zip
from tests.unit.layer.test_config import environ

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_ssm import SSMClient

CONFIG = dataclasses.replace(
    PrepareStageArtifactConfig.from_env(environ(PrepareStageArtifactConfig)),
    stage_parameters={"Env": "stage", "Size": "2"},
)
TEMPLATE_PATH = CONFIG.template_path
RELEASED_PARAMETERS = {"Env": "stage-old", "Size": "1"}
RELEASED_EXECUTION = "e1a2b3c4-0000-4000-8000-00000000000a"
RELEASED_COMMIT = "0123456789abcdef0123456789abcdef01234567"
SOURCE_KEY = "release-pipeline/SourceOutp/k3Xw9Qa"
STAGE_SOURCE_KEY = "release-pipeline/StageSourc/Rm2Tn8b"
STAGE_CONFIG_KEY = "release-pipeline/StageConfi/Hq4Vz1c"
CURRENT = source_zip({TEMPLATE_PATH: "Resources: {Queue: {Type: AWS::SQS::Queue}}\n", "VERSION": "new\n"})
RELEASED = source_zip({TEMPLATE_PATH: "Resources: {Topic: {Type: AWS::SNS::Topic}}\n", "VERSION": "old\n"})


def location(key: str) -> dict[str, Any]:
    return {"type": "S3", "s3Location": {"bucketName": ARTIFACT_BUCKET, "objectKey": key}}


def job(key_arn: str | None, outputs: tuple[str, ...] = ("StageSource", "StageConfig")) -> Job:
    keys = {"StageSource": STAGE_SOURCE_KEY, "StageConfig": STAGE_CONFIG_KEY}
    data: dict[str, Any] = {
        "actionConfiguration": {"configuration": {"FunctionName": "prepare-stage-artifact"}},
        "inputArtifacts": [{"name": "SourceOutput", "revision": "abc", "location": location(SOURCE_KEY)}],
        "outputArtifacts": [{"name": name, "revision": None, "location": location(keys[name])} for name in outputs],
        "artifactCredentials": {
            "accessKeyId": "ASIAEXAMPLE",
            "secretAccessKey": "example",
            "sessionToken": "example",
            "expirationTime": 1767225600000,
        },
    }
    if key_arn is not None:
        data["encryptionKey"] = {"id": key_arn, "type": "KMS"}
    return Job({"CodePipeline.job": {"id": "a1b2c3d4-0001-4000-8000-000000000001", "data": data}})


def prepare(s3: S3Client, ssm: SSMClient, the_job: Job) -> JobResult:
    return prepare_stage_artifact(job=the_job, job_s3=s3, release_s3=s3, ssm=ssm, config=CONFIG)


def release(s3: S3Client, ssm: SSMClient, key_arn: str, body: bytes = RELEASED) -> None:
    """A release record pointing at ``body``, kept under releases/ (then overwritten by a later object
    at the same key: the record's version id must be the one read)."""
    key = releases.release_key(RELEASED_EXECUTION)
    version_id = s3.put_object(Bucket=ARTIFACT_BUCKET, Key=key, Body=body)["VersionId"]
    s3.put_object(Bucket=ARTIFACT_BUCKET, Key=key, Body=b"a later object at the same key")
    record = releases.ReleaseRecord(
        bucket=ARTIFACT_BUCKET,
        key=key,
        version_id=version_id,
        commit_id=RELEASED_COMMIT,
        execution_id=RELEASED_EXECUTION,
        released_at="2026-01-01T00:00:00+00:00",
        template_path=TEMPLATE_PATH,
        stage_parameters=RELEASED_PARAMETERS,
    )
    releases.write_record(ssm, CONFIG.release_record_parameter, record, key_arn)


def read(s3: S3Client, key: str) -> bytes:
    return s3.get_object(Bucket=ARTIFACT_BUCKET, Key=key)["Body"].read()


def stage_parameters(s3: S3Client) -> dict[str, Any]:
    with zipfile.ZipFile(io.BytesIO(read(s3, STAGE_CONFIG_KEY))) as archive:
        assert archive.namelist() == [CONFIGURATION_FILE]
        value: dict[str, Any] = json.loads(archive.read(CONFIGURATION_FILE))
    return value


def written(s3: S3Client) -> set[str]:
    listed = s3.list_objects_v2(Bucket=ARTIFACT_BUCKET).get("Contents", [])
    return {item["Key"] for item in listed} & {STAGE_SOURCE_KEY, STAGE_CONFIG_KEY}


@pytest.fixture
def source(s3: S3Client, artifact_bucket: str) -> None:
    s3.put_object(Bucket=artifact_bucket, Key=SOURCE_KEY, Body=CURRENT)


@pytest.mark.usefixtures("source")
def test_before_the_first_release_the_current_source_and_parameters_are_used(
    s3: S3Client, ssm: SSMClient, kms_key_arn: str
) -> None:
    result = prepare(s3, ssm, job(kms_key_arn))

    assert read(s3, STAGE_SOURCE_KEY) == CURRENT
    assert stage_parameters(s3) == {"Parameters": CONFIG.stage_parameters}
    assert result.output_variables == {"StageOrigin": "source"}
    assert result.summary == "Stage stack will be created from the current source (nothing released yet)"


@pytest.mark.usefixtures("source")
def test_after_a_release_the_released_source_and_its_stage_parameters_are_used(
    s3: S3Client, ssm: SSMClient, kms_key_arn: str
) -> None:
    release(s3, ssm, kms_key_arn)

    result = prepare(s3, ssm, job(kms_key_arn))

    assert read(s3, STAGE_SOURCE_KEY) == RELEASED  # the recorded version, not the later object
    assert stage_parameters(s3) == {"Parameters": RELEASED_PARAMETERS}
    assert result.output_variables == {"StageOrigin": "release"}
    assert result.summary == (
        f"Stage stack will be created from the release {RELEASED_EXECUTION} (commit {RELEASED_COMMIT[:12]})"
    )


@pytest.mark.usefixtures("source")
def test_both_artifacts_are_encrypted_with_the_jobs_key(s3: S3Client, ssm: SSMClient, kms_key_arn: str) -> None:
    prepare(s3, ssm, job(kms_key_arn))

    for key in (STAGE_SOURCE_KEY, STAGE_CONFIG_KEY):
        head = s3.head_object(Bucket=ARTIFACT_BUCKET, Key=key)
        assert head["ServerSideEncryption"] == "aws:kms"
        assert head["SSEKMSKeyId"] == kms_key_arn


@pytest.mark.usefixtures("source")
def test_without_a_job_key_the_bucket_default_applies(s3: S3Client, ssm: SSMClient) -> None:
    prepare(s3, ssm, job(None))

    assert "SSEKMSKeyId" not in s3.head_object(Bucket=ARTIFACT_BUCKET, Key=STAGE_SOURCE_KEY)


def test_a_current_source_without_the_template_writes_nothing(
    s3: S3Client, ssm: SSMClient, artifact_bucket: str, kms_key_arn: str
) -> None:
    s3.put_object(Bucket=artifact_bucket, Key=SOURCE_KEY, Body=source_zip({"elsewhere.yaml": "x"}))

    with pytest.raises(ArtifactError, match=f"The source artifact has no file '{TEMPLATE_PATH}'"):
        prepare(s3, ssm, job(kms_key_arn))

    assert written(s3) == set()


@pytest.mark.usefixtures("source")
def test_a_released_source_without_the_template_writes_nothing(s3: S3Client, ssm: SSMClient, kms_key_arn: str) -> None:
    """The current source has it, but the stage stack is made from the release: that one must have it."""
    release(s3, ssm, kms_key_arn, source_zip({"moved/template.yaml": "x"}))

    with pytest.raises(ArtifactError, match=f"released source of execution {RELEASED_EXECUTION} has no file"):
        prepare(s3, ssm, job(kms_key_arn))

    assert written(s3) == set()


@pytest.mark.usefixtures("source")
def test_a_job_missing_an_output_artifact_fails_before_anything_is_written(
    s3: S3Client, ssm: SSMClient, kms_key_arn: str
) -> None:
    with pytest.raises(ArtifactError, match="no output artifact named 'StageConfig' \\(it has: StageSource\\)"):
        prepare(s3, ssm, job(kms_key_arn, outputs=("StageSource",)))

    assert written(s3) == set()


def test_the_template_configuration_is_stable_json_of_the_parameters() -> None:
    first = template_configuration({"B": "2", "A": "1"})

    assert first == template_configuration({"A": "1", "B": "2"})
    assert json.loads(first) == {"Parameters": {"A": "1", "B": "2"}}
    assert json.loads(template_configuration({})) == {"Parameters": {}}
