"""prepare-stage-artifact (delete mode): the stage artifacts come from the last release, or the current source
before the first release, with the matching stage parameters in a template-configuration file."""

from __future__ import annotations

import io
import json
import zipfile
from typing import TYPE_CHECKING, Any

import boto3
import pytest

import local_aws
from local_aws import FakeLambdaContext
from release_pipeline import releases
from tests.support.events import load_event
from tests.support.jobs import run_job
from tests.support.solution import ARTIFACT_BUCKET, apply_environment, release_record, resolved, source_zip

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_ssm import SSMClient

SOLUTION_STACK = "release-pipeline"
BUCKET = ARTIFACT_BUCKET
RECORD = release_record(SOLUTION_STACK)
# An installation under the same stack name that `sam delete` removed before this one.
EARLIER_STACK_UUID = "0d9c8b7a-6f5e-4d3c-8b2a-190807060504"
TEMPLATE_PATH = "app/template.yaml"
CURRENT_PARAMETERS = {"Environment": "stage", "InstanceCount": "2"}
RELEASED_PARAMETERS = {"Environment": "stage-old", "InstanceCount": "1"}
RELEASED_EXECUTION = "e1a2b3c4-0000-4000-8000-00000000000a"
JOB_KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
SOURCE_KEY = "release-pipeline/SourceOutp/k3Xw9Qa"
STAGE_SOURCE_KEY = "release-pipeline/StageSourc/Rm2Tn8b"
STAGE_CONFIG_KEY = "release-pipeline/StageConfi/Hq4Vz1c"
OUTPUT_KEYS = (STAGE_SOURCE_KEY, STAGE_CONFIG_KEY)


CURRENT_SOURCE = source_zip({TEMPLATE_PATH: "Resources: {Queue: {Type: AWS::SQS::Queue}}\n", "VERSION": "new\n"})
RELEASED_SOURCE = source_zip({TEMPLATE_PATH: "Resources: {Topic: {Type: AWS::SNS::Topic}}\n", "VERSION": "old\n"})


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch, artifact_bucket: str) -> dict[str, str]:
    """PrepareStageArtifactFunction's variables exactly as template.yaml sets them."""
    solution = resolved(stack_name=SOLUTION_STACK, StageParameters=json.dumps(CURRENT_PARAMETERS))
    environment = apply_environment(monkeypatch, "PrepareStageArtifactFunction", solution)
    assert environment["RELEASE_RECORD_PARAMETER"] == RECORD
    assert environment["TEMPLATE_PATH"] == TEMPLATE_PATH
    return environment


def invoke(event: dict[str, Any], context: FakeLambdaContext) -> local_aws.ReportedJobResult:
    return run_job("prepare-stage-artifact", event, context)


def put_release(s3: S3Client, ssm: SSMClient, kms_key_arn: str, body: bytes = RELEASED_SOURCE) -> str:
    """Keep ``body`` as the released source and write a record pointing at it; returns its version id."""
    key = releases.release_key(RELEASED_EXECUTION)
    version_id = s3.put_object(Bucket=BUCKET, Key=key, Body=body)["VersionId"]
    record = releases.ReleaseRecord(
        bucket=BUCKET,
        key=key,
        version_id=version_id,
        commit_id="0ld0c0mm1t" * 4,
        execution_id=RELEASED_EXECUTION,
        released_at="2026-01-01T00:00:00+00:00",
        template_path=TEMPLATE_PATH,
        stage_parameters=RELEASED_PARAMETERS,
    )
    releases.write_record(ssm, RECORD, record, kms_key_arn)
    return version_id


def read(s3: S3Client, key: str) -> bytes:
    return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def configuration_of(s3: S3Client) -> dict[str, Any]:
    with zipfile.ZipFile(io.BytesIO(read(s3, STAGE_CONFIG_KEY))) as archive:
        assert archive.namelist() == ["template-configuration.json"]
        value: dict[str, Any] = json.loads(archive.read("template-configuration.json"))
    return value


def object_keys(s3: S3Client) -> set[str]:
    return {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])}


def assert_failed(result: local_aws.ReportedJobResult, *expected: str) -> str:
    assert result.status == "Failed"
    assert result.failure_details is not None
    message = str(result.failure_details["message"])
    for text in expected:
        assert text in message
    return message


def test_no_release_stages_the_current_source_with_the_current_parameters(
    s3: S3Client, lambda_context: FakeLambdaContext
) -> None:
    s3.put_object(Bucket=BUCKET, Key=SOURCE_KEY, Body=CURRENT_SOURCE)

    result = invoke(load_event("prepare-stage-artifact", "job"), lambda_context)

    assert result.status == "Succeeded"
    assert result.continuation_token is None
    assert result.output_variables == {"StageOrigin": "source"}
    assert read(s3, STAGE_SOURCE_KEY) == CURRENT_SOURCE
    assert configuration_of(s3) == {"Parameters": CURRENT_PARAMETERS}


def test_release_record_stages_the_released_source_with_the_released_parameters(
    s3: S3Client, ssm: SSMClient, kms_key_arn: str, lambda_context: FakeLambdaContext
) -> None:
    """GIVEN a release whose source and stage parameters differ from the current ones WHEN checked
    THEN the stage artifacts are the released source and the released parameters."""
    s3.put_object(Bucket=BUCKET, Key=SOURCE_KEY, Body=CURRENT_SOURCE)
    put_release(s3, ssm, kms_key_arn)

    result = invoke(load_event("prepare-stage-artifact", "job"), lambda_context)

    assert result.status == "Succeeded"
    assert result.output_variables == {"StageOrigin": "release"}
    staged = read(s3, STAGE_SOURCE_KEY)
    assert staged == RELEASED_SOURCE
    assert staged != CURRENT_SOURCE
    configuration = configuration_of(s3)
    assert configuration == {"Parameters": RELEASED_PARAMETERS}
    assert configuration["Parameters"] != CURRENT_PARAMETERS


def test_record_left_by_an_earlier_installation_is_never_read(
    s3: S3Client, ssm: SSMClient, monkeypatch: pytest.MonkeyPatch, lambda_context: FakeLambdaContext
) -> None:
    """GIVEN the record an earlier installation under the same stack name left behind (`sam delete`
    keeps it, with its retained key and bucket) WHEN the new installation checks THEN it reads only its
    own record and stages the current source as a first release."""
    s3.put_object(Bucket=BUCKET, Key=SOURCE_KEY, Body=CURRENT_SOURCE)
    earlier_key = boto3.client("kms", region_name="us-east-1").create_key()["KeyMetadata"]["Arn"]
    earlier = release_record(SOLUTION_STACK, EARLIER_STACK_UUID)
    assert earlier != RECORD
    left = releases.ReleaseRecord(
        bucket="release-pipeline-artifactbucket-earlier",
        key=releases.release_key(RELEASED_EXECUTION),
        version_id="v1",
        commit_id="0ld0c0mm1t" * 4,
        execution_id=RELEASED_EXECUTION,
        released_at="2026-01-01T00:00:00+00:00",
        template_path=TEMPLATE_PATH,
        stage_parameters=RELEASED_PARAMETERS,
    )
    releases.write_record(ssm, earlier, left, earlier_key)
    read: list[str] = []
    read_record = releases.read_record

    def spy(client: SSMClient, name: str) -> releases.ReleaseRecord | None:
        read.append(name)
        return read_record(client, name)

    monkeypatch.setattr(releases, "read_record", spy)

    result = invoke(load_event("prepare-stage-artifact", "job"), lambda_context)

    assert result.status == "Succeeded"
    assert result.output_variables == {"StageOrigin": "source"}
    assert read == [RECORD]
    assert s3.get_object(Bucket=BUCKET, Key=STAGE_SOURCE_KEY)["Body"].read() == CURRENT_SOURCE
    assert configuration_of(s3) == {"Parameters": CURRENT_PARAMETERS}
    assert ssm.get_parameter(Name=earlier)["Parameter"]["Version"] == 1


def test_release_uses_the_recorded_version_of_the_released_source(
    s3: S3Client, ssm: SSMClient, kms_key_arn: str, lambda_context: FakeLambdaContext
) -> None:
    """GIVEN the release's key was written again after the release WHEN checked THEN the recorded
    version is staged, not the newer object."""
    s3.put_object(Bucket=BUCKET, Key=SOURCE_KEY, Body=CURRENT_SOURCE)
    put_release(s3, ssm, kms_key_arn)
    s3.put_object(Bucket=BUCKET, Key=releases.release_key(RELEASED_EXECUTION), Body=CURRENT_SOURCE)

    result = invoke(load_event("prepare-stage-artifact", "job"), lambda_context)

    assert result.status == "Succeeded"
    assert read(s3, STAGE_SOURCE_KEY) == RELEASED_SOURCE


@pytest.mark.parametrize("released", [False, True], ids=["current-source", "released-source"])
def test_outputs_are_encrypted_with_the_jobs_kms_key(
    s3: S3Client, ssm: SSMClient, kms_key_arn: str, lambda_context: FakeLambdaContext, released: bool
) -> None:
    s3.put_object(Bucket=BUCKET, Key=SOURCE_KEY, Body=CURRENT_SOURCE)
    if released:
        put_release(s3, ssm, kms_key_arn)

    result = invoke(load_event("prepare-stage-artifact", "job"), lambda_context)

    assert result.status == "Succeeded"
    for key in OUTPUT_KEYS:
        head = s3.head_object(Bucket=BUCKET, Key=key)
        assert head["ServerSideEncryption"] == "aws:kms"
        assert head["SSEKMSKeyId"] == JOB_KMS_KEY
        assert head["SSEKMSKeyId"] != kms_key_arn


def test_template_missing_from_the_source_fails_naming_the_path(
    s3: S3Client, lambda_context: FakeLambdaContext
) -> None:
    s3.put_object(Bucket=BUCKET, Key=SOURCE_KEY, Body=source_zip({"template.yaml": "Resources: {}\n"}))

    result = invoke(load_event("prepare-stage-artifact", "job"), lambda_context)

    assert_failed(result, repr(TEMPLATE_PATH))
    assert object_keys(s3) == {SOURCE_KEY}


def test_template_missing_from_the_released_source_fails(
    s3: S3Client, ssm: SSMClient, kms_key_arn: str, lambda_context: FakeLambdaContext
) -> None:
    s3.put_object(Bucket=BUCKET, Key=SOURCE_KEY, Body=CURRENT_SOURCE)
    put_release(s3, ssm, kms_key_arn, body=source_zip({"elsewhere.yaml": "Resources: {}\n"}))

    result = invoke(load_event("prepare-stage-artifact", "job"), lambda_context)

    assert_failed(result, repr(TEMPLATE_PATH), RELEASED_EXECUTION)
    assert not object_keys(s3) & set(OUTPUT_KEYS)


def test_missing_input_artifact_fails_naming_it(s3: S3Client, lambda_context: FakeLambdaContext) -> None:
    s3.put_object(Bucket=BUCKET, Key=SOURCE_KEY, Body=CURRENT_SOURCE)

    result = invoke(load_event("prepare-stage-artifact", "missing-input-artifact"), lambda_context)

    assert_failed(result, "input artifact", "'SourceOutput'")
    assert object_keys(s3) == {SOURCE_KEY}


def test_malformed_event_fails_without_writing(s3: S3Client, lambda_context: FakeLambdaContext) -> None:
    """GIVEN a job event with no artifacts and no artifact credentials WHEN checked THEN failure saying so."""
    s3.put_object(Bucket=BUCKET, Key=SOURCE_KEY, Body=CURRENT_SOURCE)

    result = invoke(load_event("prepare-stage-artifact", "malformed"), lambda_context)

    assert_failed(result, "no artifact credentials")
    assert object_keys(s3) == {SOURCE_KEY}


def test_missing_source_object_fails_naming_it(s3: S3Client, lambda_context: FakeLambdaContext) -> None:
    result = invoke(load_event("prepare-stage-artifact", "job"), lambda_context)

    assert_failed(result, f"s3://{BUCKET}/{SOURCE_KEY} does not exist")
    assert object_keys(s3) == set()


def test_released_source_gone_fails_naming_it(
    s3: S3Client, ssm: SSMClient, kms_key_arn: str, lambda_context: FakeLambdaContext
) -> None:
    """GIVEN a record whose released object was deleted WHEN checked THEN failure, nothing staged."""
    s3.put_object(Bucket=BUCKET, Key=SOURCE_KEY, Body=CURRENT_SOURCE)
    version_id = put_release(s3, ssm, kms_key_arn)
    s3.delete_object(Bucket=BUCKET, Key=releases.release_key(RELEASED_EXECUTION), VersionId=version_id)

    result = invoke(load_event("prepare-stage-artifact", "job"), lambda_context)

    assert_failed(result, releases.release_key(RELEASED_EXECUTION), "does not exist")
    assert object_keys(s3) == {SOURCE_KEY}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"PK\x03\x04 this is not really a zip", "not a valid zip archive"),
        (source_zip({TEMPLATE_PATH: "Resources: {}\n", "../../evil.sh": "rm -rf /"}), "leaves its folder"),
        (source_zip({TEMPLATE_PATH: "Resources: {}\n", "/etc/cron.d/evil": "x"}), "absolute path"),
    ],
    ids=["corrupt", "zip-slip", "absolute-path"],
)
def test_corrupt_or_unsafe_source_fails_without_writing(
    s3: S3Client, lambda_context: FakeLambdaContext, body: bytes, expected: str
) -> None:
    s3.put_object(Bucket=BUCKET, Key=SOURCE_KEY, Body=body)

    result = invoke(load_event("prepare-stage-artifact", "job"), lambda_context)

    assert_failed(result, expected, "source artifact")
    assert object_keys(s3) == {SOURCE_KEY}


@pytest.mark.parametrize(
    "value",
    ["this is not json", json.dumps({"bucket": BUCKET}), json.dumps(["a", "list"])],
    ids=["not-json", "missing-fields", "not-an-object"],
)
def test_malformed_release_record_fails_without_writing(
    s3: S3Client, ssm: SSMClient, kms_key_arn: str, lambda_context: FakeLambdaContext, value: str
) -> None:
    s3.put_object(Bucket=BUCKET, Key=SOURCE_KEY, Body=CURRENT_SOURCE)
    ssm.put_parameter(Name=RECORD, Value=value, Type="SecureString", KeyId=kms_key_arn)

    result = invoke(load_event("prepare-stage-artifact", "job"), lambda_context)

    assert_failed(result, RECORD, "malformed")
    assert object_keys(s3) == {SOURCE_KEY}


def test_stage_parameters_that_are_not_an_object_of_strings_fail_naming_them(
    s3: S3Client, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3.put_object(Bucket=BUCKET, Key=SOURCE_KEY, Body=CURRENT_SOURCE)
    monkeypatch.setenv("STAGE_PARAMETERS", json.dumps({"InstanceCount": 2}))

    result = invoke(load_event("prepare-stage-artifact", "job"), lambda_context)

    assert_failed(result, "STAGE_PARAMETERS")
    assert result.failure_details is not None
    assert result.failure_details["type"] == "ConfigurationError"
    assert object_keys(s3) == {SOURCE_KEY}
