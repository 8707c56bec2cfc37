"""record-release: the released source is kept under releases/ and the release record is written to SSM."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError

import local_aws
from local_aws import FakeLambdaContext
from release_pipeline import clients
from tests.support.events import load_event
from tests.support.jobs import run_job
from tests.support.maps import MAP_PATH, example_repository
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
STAGE_PARAMETERS = {"Environment": "stage", "InstanceCount": "1"}
EXECUTION_ID = "e1a2b3c4-0000-4000-8000-000000000001"
SECOND_EXECUTION_ID = "e1a2b3c4-0000-4000-8000-000000000002"
COMMIT_ID = "3f786850e387550fdab836ed7e6dc881de23001b"

SOURCE = source_zip({TEMPLATE_PATH: "Resources: {Queue: {Type: AWS::SQS::Queue}}\n", "README.md": "v1\n"})
NEW_SOURCE = source_zip({TEMPLATE_PATH: "Resources: {Topic: {Type: AWS::SNS::Topic}}\n", "README.md": "v2\n"})


def event_key(event: dict[str, Any]) -> str:
    return str(event["CodePipeline.job"]["data"]["inputArtifacts"][0]["location"]["s3Location"]["objectKey"])


def with_user_parameters(event: dict[str, Any], parameters: dict[str, Any] | str) -> dict[str, Any]:
    raw = parameters if isinstance(parameters, str) else json.dumps(parameters)
    event["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"]["UserParameters"] = raw
    return event


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch, kms_key_arn: str, artifact_bucket: str) -> dict[str, str]:
    """RecordReleaseFunction's variables exactly as template.yaml sets them."""
    solution = resolved(
        stack_name=SOLUTION_STACK,
        physical={"ArtifactBucket": {"Ref": artifact_bucket}, "ArtifactKey": {"Arn": kms_key_arn}},
        StageParameters=json.dumps(STAGE_PARAMETERS),
    )
    environment = apply_environment(monkeypatch, "RecordReleaseFunction", solution)
    assert environment["RELEASE_RECORD_PARAMETER"] == RECORD
    assert environment["KMS_KEY_ARN"] == kms_key_arn
    return environment


def invoke(event: dict[str, Any], context: FakeLambdaContext) -> local_aws.ReportedJobResult:
    return run_job("record-release", event, context)


def release(
    event: dict[str, Any], s3: S3Client, source: bytes, context: FakeLambdaContext
) -> local_aws.ReportedJobResult:
    s3.put_object(Bucket=BUCKET, Key=event_key(event), Body=source)
    return invoke(event, context)


def read_record(ssm: SSMClient) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(ssm.get_parameter(Name=RECORD, WithDecryption=True)["Parameter"]["Value"])
    return value


def release_keys(s3: S3Client) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="releases/").get("Contents", []))


def assert_no_record(ssm: SSMClient) -> None:
    with pytest.raises(ClientError) as missing:
        ssm.get_parameter(Name=RECORD)
    assert missing.value.response["Error"]["Code"] == "ParameterNotFound"


def assert_failed_recording_nothing(
    result: local_aws.ReportedJobResult, s3: S3Client, ssm: SSMClient, expected: str
) -> dict[str, Any]:
    """The job failed with ``expected`` in its message, and neither a record nor a release was kept;
    returns the failure details."""
    assert result.status == "Failed"
    assert result.failure_details is not None
    assert expected in result.failure_details["message"]
    assert_no_record(ssm)
    assert release_keys(s3) == []
    return result.failure_details


def test_release_keeps_the_source_and_writes_the_record(
    s3: S3Client, ssm: SSMClient, kms_key_arn: str, lambda_context: FakeLambdaContext
) -> None:
    event = load_event("record-release", "job")
    before = datetime.now(UTC).replace(microsecond=0)

    result = release(event, s3, SOURCE, lambda_context)

    assert result.status == "Succeeded"
    assert result.continuation_token is None
    key = f"releases/{EXECUTION_ID}/source.zip"
    stored = s3.get_object(Bucket=BUCKET, Key=key)
    assert stored["Body"].read() == SOURCE
    assert stored["ServerSideEncryption"] == "aws:kms"
    assert stored["SSEKMSKeyId"] == kms_key_arn
    record = read_record(ssm)
    assert record["bucket"] == BUCKET
    assert record["key"] == key
    assert record["version_id"] == stored["VersionId"]
    assert record["commit_id"] == COMMIT_ID
    assert record["execution_id"] == EXECUTION_ID
    assert record["template_path"] == TEMPLATE_PATH
    assert record["stage_parameters"] == STAGE_PARAMETERS
    released_at = datetime.fromisoformat(record["released_at"])
    assert before <= released_at <= datetime.now(UTC) + timedelta(seconds=1)
    # No deployment map: the record is the one written before releases could name a map.
    assert set(record) == {
        "bucket",
        "key",
        "version_id",
        "commit_id",
        "execution_id",
        "released_at",
        "template_path",
        "stage_parameters",
    }
    (description,) = ssm.describe_parameters()["Parameters"]
    assert description["Name"] == RECORD
    assert description["Type"] == "SecureString"
    assert description["KeyId"] == kms_key_arn


def test_release_after_a_reinstall_writes_its_own_record_and_leaves_the_earlier_one(
    s3: S3Client, ssm: SSMClient, kms_key_arn: str, lambda_context: FakeLambdaContext
) -> None:
    """GIVEN the record an earlier installation under the same stack name left behind, encrypted with
    its retained key WHEN the new installation releases THEN it writes its own record under its own key
    and neither reads nor replaces the earlier one."""
    earlier_key = boto3.client("kms", region_name="us-east-1").create_key()["KeyMetadata"]["Arn"]
    earlier = release_record(SOLUTION_STACK, EARLIER_STACK_UUID)
    ssm.put_parameter(Name=earlier, Value='{"left": "by sam delete"}', Type="SecureString", KeyId=earlier_key)

    result = release(load_event("record-release", "job"), s3, SOURCE, lambda_context)

    assert result.status == "Succeeded"
    assert read_record(ssm)["execution_id"] == EXECUTION_ID
    described = {p["Name"]: p for p in ssm.describe_parameters()["Parameters"]}
    assert set(described) == {RECORD, earlier}
    assert described[RECORD]["KeyId"] == kms_key_arn
    assert (described[earlier]["KeyId"], described[earlier]["Version"]) == (earlier_key, 1)
    left = ssm.get_parameter(Name=earlier, WithDecryption=True)["Parameter"]["Value"]
    assert left == '{"left": "by sam delete"}'


def test_commit_id_falls_back_to_the_source_revision(
    s3: S3Client, ssm: SSMClient, lambda_context: FakeLambdaContext
) -> None:
    """GIVEN UserParameters without commitId WHEN released THEN the record has the source artifact's revision."""
    event = with_user_parameters(load_event("record-release", "job"), {"executionId": EXECUTION_ID})
    event["CodePipeline.job"]["data"]["inputArtifacts"][0]["revision"] = "0123456789abcdef"

    result = release(event, s3, SOURCE, lambda_context)

    assert result.status == "Succeeded"
    assert read_record(ssm)["commit_id"] == "0123456789abcdef"


def test_second_release_replaces_the_record_and_keeps_the_first_release(
    s3: S3Client, ssm: SSMClient, lambda_context: FakeLambdaContext
) -> None:
    first = release(load_event("record-release", "job"), s3, SOURCE, lambda_context)
    assert first.status == "Succeeded"
    second_event = with_user_parameters(
        load_event("record-release", "job"), {"executionId": SECOND_EXECUTION_ID, "commitId": "b" * 40}
    )
    second_event["CodePipeline.job"]["id"] = "e5c9a3f1-0002-4000-8000-000000000002"

    second = release(second_event, s3, NEW_SOURCE, lambda_context)

    assert second.status == "Succeeded"
    record = read_record(ssm)
    assert record["execution_id"] == SECOND_EXECUTION_ID
    assert record["commit_id"] == "b" * 40
    assert record["key"] == f"releases/{SECOND_EXECUTION_ID}/source.zip"
    assert ssm.get_parameter(Name=RECORD)["Parameter"]["Version"] == 2
    assert release_keys(s3) == [f"releases/{EXECUTION_ID}/source.zip", f"releases/{SECOND_EXECUTION_ID}/source.zip"]
    kept = s3.get_object(Bucket=BUCKET, Key=f"releases/{EXECUTION_ID}/source.zip")["Body"].read()
    assert kept == SOURCE
    latest = s3.get_object(Bucket=BUCKET, Key=record["key"], VersionId=record["version_id"])["Body"].read()
    assert latest == NEW_SOURCE


@pytest.mark.parametrize(
    "user_parameters",
    [
        {"executionId": "#{codepipeline.PipelineExecutionId}", "commitId": COMMIT_ID},
        {"commitId": COMMIT_ID},
        {"executionId": "", "commitId": COMMIT_ID},
        {"executionId": "../../etc", "commitId": COMMIT_ID},
        {"executionId": 42, "commitId": COMMIT_ID},
    ],
    ids=["unresolved-variable", "missing", "empty", "path", "not-a-string"],
)
def test_bad_execution_id_fails_and_records_nothing(
    s3: S3Client, ssm: SSMClient, lambda_context: FakeLambdaContext, user_parameters: dict[str, Any]
) -> None:
    event = with_user_parameters(load_event("record-release", "job"), user_parameters)

    result = release(event, s3, SOURCE, lambda_context)

    assert_failed_recording_nothing(result, s3, ssm, "UserParameters.executionId")


def test_user_parameters_that_are_not_json_fail_and_record_nothing(
    s3: S3Client, ssm: SSMClient, lambda_context: FakeLambdaContext
) -> None:
    event = with_user_parameters(load_event("record-release", "job"), "executionId=abc")

    result = release(event, s3, SOURCE, lambda_context)

    assert_failed_recording_nothing(result, s3, ssm, "UserParameters are not valid JSON")


def test_template_missing_from_the_source_fails_and_records_nothing(
    s3: S3Client, ssm: SSMClient, lambda_context: FakeLambdaContext
) -> None:
    event = load_event("record-release", "job")

    result = release(event, s3, source_zip({"other/template.yaml": "Resources: {}\n"}), lambda_context)

    assert_failed_recording_nothing(result, s3, ssm, TEMPLATE_PATH)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"this is not a zip archive", "not a valid zip archive"),
        (source_zip({TEMPLATE_PATH: "Resources: {}\n", "../outside.txt": "x"}), "leaves its folder"),
    ],
    ids=["corrupt", "zip-slip"],
)
def test_unsafe_or_corrupt_source_fails_and_records_nothing(
    s3: S3Client, ssm: SSMClient, lambda_context: FakeLambdaContext, body: bytes, expected: str
) -> None:
    result = release(load_event("record-release", "job"), s3, body, lambda_context)

    assert_failed_recording_nothing(result, s3, ssm, expected)


def test_missing_source_object_fails_naming_it(s3: S3Client, ssm: SSMClient, lambda_context: FakeLambdaContext) -> None:
    """GIVEN the source artifact object is not in the bucket WHEN released THEN failure naming the object."""
    event = load_event("record-release", "job")

    result = invoke(event, lambda_context)

    assert_failed_recording_nothing(result, s3, ssm, f"s3://{BUCKET}/{event_key(event)} does not exist")


def test_missing_configuration_fails_naming_the_variable(
    s3: S3Client, ssm: SSMClient, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KMS_KEY_ARN")

    result = release(load_event("record-release", "job"), s3, SOURCE, lambda_context)

    details = assert_failed_recording_nothing(result, s3, ssm, "KMS_KEY_ARN is not set")
    assert details["type"] == "ConfigurationError"


def test_ssm_failure_is_reported_and_the_previous_record_stays(
    s3: S3Client, ssm: SSMClient, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN a first release recorded WHEN the second release's PutParameter is denied THEN the job fails
    with SSM's error and the record still describes the first release."""
    assert release(load_event("record-release", "job"), s3, SOURCE, lambda_context).status == "Succeeded"
    first_record = read_record(ssm)
    real_ssm = clients.ssm

    def denying_ssm(region: str) -> SSMClient:
        client = real_ssm(region)

        def deny(**_: Any) -> None:
            message = "not authorized to perform: ssm:PutParameter"
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": message}}, "PutParameter")

        client.meta.events.register("before-call.ssm.PutParameter", deny)
        return client

    monkeypatch.setattr(clients, "ssm", denying_ssm)
    second_event = with_user_parameters(load_event("record-release", "job"), {"executionId": SECOND_EXECUTION_ID})
    second_event["CodePipeline.job"]["id"] = "e5c9a3f1-0002-4000-8000-000000000002"

    result = release(second_event, s3, NEW_SOURCE, lambda_context)

    assert result.status == "Failed"
    assert result.failure_details is not None
    assert "AccessDeniedException" in result.failure_details["message"]
    assert "ssm:PutParameter" in result.failure_details["message"]
    assert read_record(ssm) == first_record
    assert ssm.get_parameter(Name=RECORD)["Parameter"]["Version"] == 1


def test_release_with_a_deployment_map_records_the_map_and_each_target_in_the_function_s_account(
    s3: S3Client, ssm: SSMClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN a deployment map and the function running in account 123456789012 WHEN released with the
    canary unchanged and no earlier record THEN every target of the map, named in that account when it
    names none, runs this execution, and the record names the map's digest."""
    monkeypatch.setenv("DEPLOYMENT_MAP_PATH", MAP_PATH)
    monkeypatch.setenv("APPLICATION_STACK_NAME", "hello-app")
    repository = example_repository()
    repository[TEMPLATE_PATH] = repository.pop("template.yaml")
    event = with_user_parameters(
        load_event("record-release", "job"),
        {"executionId": EXECUTION_ID, "commitId": COMMIT_ID, "unchangedTargets": "123456789012/us-west-2/hello-app"},
    )

    result = release(event, s3, source_zip(repository), FakeLambdaContext("record-release"))

    assert result.status == "Succeeded"
    record = read_record(ssm)
    assert "targets" not in record
    targets_key = f"releases/{EXECUTION_ID}/targets.json"
    assert record["targets_object"]["key"] == targets_key
    kept = s3.get_object(Bucket=BUCKET, Key=targets_key, VersionId=record["targets_object"]["version_id"])
    assert json.loads(kept["Body"].read())["targets"] == {
        "123456789012/us-west-2/hello-app": EXECUTION_ID,
        "123456789012/eu-west-1/hello-app": EXECUTION_ID,
        "222233334444/us-east-2/hello-app": EXECUTION_ID,
        "123456789012/us-east-1/hello-app": EXECUTION_ID,
    }
    assert re.fullmatch(r"[0-9a-f]{64}", record["deployment_map_digest"])
    assert record["execution_id"] == EXECUTION_ID
    assert release_keys(s3) == [f"releases/{EXECUTION_ID}/source.zip", targets_key]


def test_a_deployment_map_path_without_the_application_stack_name_fails_and_records_nothing(
    s3: S3Client, ssm: SSMClient, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEPLOYMENT_MAP_PATH", MAP_PATH)
    monkeypatch.delenv("APPLICATION_STACK_NAME", raising=False)

    result = release(load_event("record-release", "job"), s3, SOURCE, lambda_context)

    details = assert_failed_recording_nothing(result, s3, ssm, "APPLICATION_STACK_NAME is not set")
    assert details["type"] == "ConfigurationError"
