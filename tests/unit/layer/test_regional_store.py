"""release_pipeline.regional_store: the secondary Region's artifact store stack, created, followed,
updated and, on delete, emptied (every version) before it is removed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

import boto3
import pytest
from botocore.stub import Stubber

from release_pipeline import regional_store
from release_pipeline.regional_store import Store, StoreError

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_s3 import S3Client

REGION: Final = "eu-west-1"
STACK = "release-pipeline-artifact-store"
BUCKET = "release-pipeline-artifacts-eu-west-1"
STACK_ID = f"arn:aws:cloudformation:{REGION}:123456789012:stack/{STACK}/5b7e9a10-3c2d-4f10-9a4e-0a1b2c3d4e5f"


def template() -> dict[str, Any]:
    value: dict[str, Any] = json.loads(regional_store.artifact_store_template())
    return value


@pytest.fixture
def cfn(aws: None) -> CloudFormationClient:
    client: CloudFormationClient = boto3.client("cloudformation", region_name=REGION)
    return client


@pytest.fixture
def s3(aws: None) -> S3Client:
    client: S3Client = boto3.client("s3", region_name=REGION)
    return client


@pytest.fixture
def offline_cfn() -> Iterator[tuple[CloudFormationClient, Stubber]]:
    """A CloudFormation client answering only what a test stubs: a call the test did not expect fails it."""
    client: CloudFormationClient = boto3.client("cloudformation", region_name=REGION)
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def stack_answer(status: str, reason: str | None = None, outputs: dict[str, str] | None = None) -> dict[str, Any]:
    stack: dict[str, Any] = {
        "StackId": STACK_ID,
        "StackName": STACK,
        "StackStatus": status,
        "CreationTime": "2026-01-01T00:00:00Z",
    }
    if reason is not None:
        stack["StackStatusReason"] = reason
    if outputs is not None:
        stack["Outputs"] = [{"OutputKey": key, "OutputValue": value} for key, value in outputs.items()]
    return {"Stacks": [stack]}


# --------------------------------------------------------------------------------------------- template


def test_the_bucket_refuses_every_request_not_made_over_tls() -> None:
    resources = template()["Resources"]

    (statement,) = resources["BucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert resources["BucketPolicy"]["Properties"]["Bucket"] == {"Ref": "Bucket"}
    assert statement["Effect"] == "Deny"
    assert statement["Principal"] == "*"
    assert statement["Action"] == "s3:*"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    # the bucket itself and every object in it
    assert statement["Resource"] == [{"Fn::GetAtt": ["Bucket", "Arn"]}, {"Fn::Sub": "${Bucket.Arn}/*"}]


def test_the_key_rotates_and_encrypts_the_private_versioned_bucket() -> None:
    resources = template()["Resources"]
    key, bucket = resources["Key"]["Properties"], resources["Bucket"]["Properties"]

    assert resources["Key"]["Type"] == "AWS::KMS::Key"
    assert key["EnableKeyRotation"] is True
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": {"Fn::GetAtt": ["Key", "Arn"]},
    }
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    assert bucket["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    assert template()["Outputs"] == {
        "BucketName": {"Value": {"Ref": "Bucket"}},
        "KeyArn": {"Value": {"Fn::GetAtt": ["Key", "Arn"]}},
    }


def test_the_key_policy_grants_the_account_only() -> None:
    (statement,) = template()["Resources"]["Key"]["Properties"]["KeyPolicy"]["Statement"]

    assert statement["Principal"] == {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}
    assert statement["Effect"] == "Allow"


# -------------------------------------------------------------------------------------------- region_of


@pytest.mark.parametrize(
    ("stack_id", "region"),
    [
        (STACK_ID, REGION),
        ("arn:aws-cn:cloudformation:cn-north-1:123456789012:stack/s/uuid", "cn-north-1"),
        ("arn:aws-us-gov:cloudformation:us-gov-west-1:123456789012:stack/s/uuid", "us-gov-west-1"),
        (STACK, None),
        ("", None),
        ("arn:aws:s3:::bucket", None),
        ("arn:aws:cloudformation:eu-west-1:123456789012:changeSet/cs/uuid", None),
        ("arn:aws:sns:eu-west-1:123456789012:stack/looks-like-one", None),
    ],
)
def test_region_of_reads_only_stack_arns(stack_id: str, region: str | None) -> None:
    assert regional_store.region_of(stack_id) == region


# ------------------------------------------------------------------------------------ create and check


def test_create_then_check_gives_the_bucket_and_key(cfn: CloudFormationClient, s3: S3Client) -> None:
    stack_id = regional_store.start_create(cfn, STACK, REGION, BUCKET)

    assert regional_store.region_of(stack_id) == REGION
    store = regional_store.check(cfn, stack_id)
    assert store is not None
    assert store.stack_id == stack_id
    assert store.bucket_name == BUCKET
    assert store.key_arn.startswith(f"arn:aws:kms:{REGION}:")
    assert BUCKET in _buckets(s3)
    (stack,) = cfn.describe_stacks(StackName=STACK)["Stacks"]
    assert stack["Parameters"] == [{"ParameterKey": "BucketName", "ParameterValue": BUCKET}]
    assert {"Key": "multi-region-deployment:role", "Value": "regional-artifact-store"} in stack["Tags"]


def test_a_healthy_stack_of_the_same_name_is_adopted_not_created_again(cfn: CloudFormationClient) -> None:
    first = regional_store.start_create(cfn, STACK, REGION, BUCKET)

    again = regional_store.start_create(cfn, STACK, REGION, BUCKET)

    assert again == first
    live = [s for s in cfn.list_stacks()["StackSummaries"] if s["StackStatus"] != "DELETE_COMPLETE"]
    assert [s["StackId"] for s in live] == [first]


def test_a_stack_of_the_same_name_in_a_bad_state_is_refused(
    offline_cfn: tuple[CloudFormationClient, Stubber],
) -> None:
    """No CreateStack is sent (the stubbed client would fail the test on any call not expected)."""
    client, stubber = offline_cfn
    stubber.add_response("describe_stacks", stack_answer("ROLLBACK_COMPLETE"), {"StackName": STACK})

    with pytest.raises(StoreError, match=f"{STACK} already exists in {REGION} in state ROLLBACK_COMPLETE"):
        regional_store.start_create(client, STACK, REGION, BUCKET)


def test_check_is_none_while_the_stack_is_in_progress(offline_cfn: tuple[CloudFormationClient, Stubber]) -> None:
    client, stubber = offline_cfn
    stubber.add_response("describe_stacks", stack_answer("CREATE_IN_PROGRESS"), {"StackName": STACK_ID})

    assert regional_store.check(client, STACK_ID) is None


@pytest.mark.parametrize(
    ("status", "reason", "shown"),
    [
        ("ROLLBACK_COMPLETE", "Bucket already exists", "Bucket already exists"),
        ("UPDATE_ROLLBACK_COMPLETE", None, "see the stack's events"),
        ("DELETE_COMPLETE", None, "see the stack's events"),
    ],
)
def test_check_fails_with_the_stacks_reason(
    offline_cfn: tuple[CloudFormationClient, Stubber], status: str, reason: str | None, shown: str
) -> None:
    client, stubber = offline_cfn
    stubber.add_response("describe_stacks", stack_answer(status, reason), {"StackName": STACK_ID})

    with pytest.raises(StoreError, match=f"{STACK} is {status}: {shown}"):
        regional_store.check(client, STACK_ID)


def test_a_complete_stack_that_is_not_a_store_is_refused_by_name(
    offline_cfn: tuple[CloudFormationClient, Stubber],
) -> None:
    """GIVEN a healthy stack of the store's name without the store's outputs (adopted by start_create)
    THEN check says it is not an artifact store, instead of failing on a missing key."""
    client, stubber = offline_cfn
    stubber.add_response("describe_stacks", stack_answer("CREATE_COMPLETE"), {"StackName": STACK_ID})

    with pytest.raises(StoreError, match=f"{STACK} has no BucketName and KeyArn outputs: it is not an artifact store"):
        regional_store.check(client, STACK_ID)


def test_check_after_an_update_gives_the_store(offline_cfn: tuple[CloudFormationClient, Stubber]) -> None:
    client, stubber = offline_cfn
    outputs = {"BucketName": BUCKET, "KeyArn": "arn:aws:kms:eu-west-1:123456789012:key/k"}
    stubber.add_response("describe_stacks", stack_answer("UPDATE_COMPLETE", outputs=outputs), {"StackName": STACK_ID})

    assert regional_store.check(client, STACK_ID) == Store(STACK_ID, BUCKET, outputs["KeyArn"])


# ------------------------------------------------------------------------------------------------ update


def test_an_update_sends_the_current_template_and_bucket_name(
    offline_cfn: tuple[CloudFormationClient, Stubber],
) -> None:
    client, stubber = offline_cfn
    expected = {
        "StackName": STACK_ID,
        "TemplateBody": regional_store.artifact_store_template(),
        "Parameters": [{"ParameterKey": "BucketName", "ParameterValue": BUCKET}],
    }
    stubber.add_response("update_stack", {"StackId": STACK_ID}, expected)

    regional_store.start_update(client, STACK_ID, BUCKET)


def test_an_update_with_nothing_to_change_is_not_an_error(offline_cfn: tuple[CloudFormationClient, Stubber]) -> None:
    client, stubber = offline_cfn
    stubber.add_client_error("update_stack", "ValidationError", "No updates are to be performed.")

    regional_store.start_update(client, STACK_ID, BUCKET)


def test_an_update_failing_for_another_reason_is_raised(offline_cfn: tuple[CloudFormationClient, Stubber]) -> None:
    client, stubber = offline_cfn
    stubber.add_client_error(
        "update_stack", "ValidationError", f"Stack:{STACK_ID} is in UPDATE_IN_PROGRESS state and can not be updated."
    )

    with pytest.raises(Exception, match="UPDATE_IN_PROGRESS state and can not be updated"):
        regional_store.start_update(client, STACK_ID, BUCKET)


# ------------------------------------------------------------------------------------------------ delete


def test_delete_empties_every_version_of_the_bucket_then_removes_the_stack(
    cfn: CloudFormationClient, s3: S3Client
) -> None:
    stack_id = regional_store.start_create(cfn, STACK, REGION, BUCKET)
    # as the template sets it (moto's AWS::S3::Bucket leaves versioning off)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    for body in (b"v1", b"v2", b"v3"):
        s3.put_object(Bucket=BUCKET, Key="pipeline/SourceOutp/abc", Body=body)
    s3.put_object(Bucket=BUCKET, Key="pipeline/StageConfi/def", Body=b"x")
    s3.delete_object(Bucket=BUCKET, Key="pipeline/StageConfi/def")  # leaves a delete marker
    listed = s3.list_object_versions(Bucket=BUCKET)
    assert len(listed["Versions"]) == 4
    assert len(listed["DeleteMarkers"]) == 1

    left_at_delete: list[int] = []

    def count_versions(**_: Any) -> None:
        versions = s3.list_object_versions(Bucket=BUCKET)
        left_at_delete.append(len(versions.get("Versions", [])) + len(versions.get("DeleteMarkers", [])))

    cfn.meta.events.register("before-call.cloudformation.DeleteStack", count_versions)

    assert regional_store.start_delete(cfn, s3, stack_id) is True

    assert left_at_delete == [0]  # one DeleteStack, sent once the bucket held nothing at all
    assert regional_store.deleted(cfn, stack_id) is True


def test_delete_of_a_stack_already_gone_does_nothing(cfn: CloudFormationClient, s3: S3Client) -> None:
    stack_id = regional_store.start_create(cfn, STACK, REGION, BUCKET)
    assert regional_store.start_delete(cfn, s3, stack_id) is True

    assert regional_store.start_delete(cfn, s3, stack_id) is False
    assert regional_store.deleted(cfn, stack_id) is True


def test_delete_of_a_stack_that_never_existed_does_nothing(cfn: CloudFormationClient, s3: S3Client) -> None:
    assert regional_store.start_delete(cfn, s3, STACK) is False
    assert regional_store.deleted(cfn, STACK) is True


def test_delete_finds_the_bucket_from_the_resource_when_the_stack_has_no_outputs(
    offline_cfn: tuple[CloudFormationClient, Stubber], s3: S3Client
) -> None:
    """A stack whose creation stopped before its outputs existed: the bucket is still emptied."""
    client, stubber = offline_cfn
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=BUCKET, Key="a", Body=b"1")
    s3.put_object(Bucket=BUCKET, Key="a", Body=b"2")
    stubber.add_response("describe_stacks", stack_answer("CREATE_FAILED"), {"StackName": STACK_ID})
    resource = {
        "StackResourceDetail": {
            "LogicalResourceId": "Bucket",
            "PhysicalResourceId": BUCKET,
            "ResourceType": "AWS::S3::Bucket",
            "LastUpdatedTimestamp": "2026-01-01T00:00:00Z",
            "ResourceStatus": "CREATE_COMPLETE",
        }
    }
    stubber.add_response("describe_stack_resource", resource, {"StackName": STACK_ID, "LogicalResourceId": "Bucket"})
    stubber.add_response("delete_stack", {}, {"StackName": STACK_ID})

    assert regional_store.start_delete(client, s3, STACK_ID) is True

    assert s3.list_object_versions(Bucket=BUCKET).get("Versions", []) == []


def test_a_stack_that_failed_to_delete_is_an_error_not_deleted(
    offline_cfn: tuple[CloudFormationClient, Stubber],
) -> None:
    client, stubber = offline_cfn
    stubber.add_response(
        "describe_stacks", stack_answer("DELETE_FAILED", "The bucket you tried to delete is not empty"), None
    )

    with pytest.raises(StoreError, match="could not be deleted: The bucket you tried to delete is not empty"):
        regional_store.deleted(client, STACK_ID)


def test_deleted_is_false_while_the_delete_runs(offline_cfn: tuple[CloudFormationClient, Stubber]) -> None:
    client, stubber = offline_cfn
    stubber.add_response("describe_stacks", stack_answer("DELETE_IN_PROGRESS"), None)

    assert regional_store.deleted(client, STACK_ID) is False


def test_emptying_a_bucket_that_is_gone_deletes_nothing(s3: S3Client) -> None:
    assert regional_store.empty_bucket(s3, BUCKET) == 0


def test_empty_bucket_counts_versions_and_markers(s3: S3Client) -> None:
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=BUCKET, Key="a", Body=b"1")
    s3.put_object(Bucket=BUCKET, Key="a", Body=b"2")
    s3.delete_object(Bucket=BUCKET, Key="a")

    assert regional_store.empty_bucket(s3, BUCKET) == 3
    assert "Versions" not in s3.list_object_versions(Bucket=BUCKET)
    s3.delete_bucket(Bucket=BUCKET)  # only an empty bucket can be deleted


def _buckets(s3: S3Client) -> set[str]:
    return {bucket["Name"] for bucket in s3.list_buckets()["Buckets"]}
