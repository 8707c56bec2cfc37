"""regional-artifact-store: the artifact bucket and key in the secondary Region, as a small stack there."""

from __future__ import annotations

import copy
import json
from types import ModuleType
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.cloudformation.models import cloudformation_backends
from moto.core.models import DEFAULT_ACCOUNT_ID

from local_aws import FakeLambdaContext
from release_pipeline import regional_store
from release_pipeline.regional_store import Store, StoreError
from tests.support.events import load_event, load_function

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_s3 import S3Client

pytestmark = [
    pytest.mark.usefixtures("aws"),
    # moto creates the key and the bucket but not the bucket policy; the template is checked instead.
    pytest.mark.filterwarnings("ignore:Tried to parse AWS..S3..BucketPolicy:UserWarning"),
]

HOME = "us-east-1"
REGION = "eu-west-1"  # the Region of events/regional-artifact-store/create.json
NEW_REGION = "eu-central-1"  # the Region update.json moves the store to
STORE = "release-pipeline-artifacts"  # the StackName property of the sample events


def bucket(region: str = REGION) -> str:
    """The BucketName property the template gives the store in ``region``."""
    return f"mrd-{region}-8b2c6a10-1f3e-11f0-9a4b-0a1b2c3d4e5f"


def cfn(region: str = REGION) -> CloudFormationClient:
    return boto3.client("cloudformation", region_name=region)


def s3(region: str = REGION) -> S3Client:
    return boto3.client("s3", region_name=region)


def set_status(region: str, stack_id: str, status: str) -> None:
    cloudformation_backends[DEFAULT_ACCOUNT_ID][region].stacks[stack_id].status = status


def live_stacks(region: str, name: str = STORE) -> list[str]:
    """Ids of the stacks named ``name`` in ``region`` that are not deleted."""
    return [
        stack.stack_id
        for stack in cloudformation_backends[DEFAULT_ACCOUNT_ID][region].stacks.values()
        if stack.name == name and stack.status != "DELETE_COMPLETE"
    ]


def bucket_exists(name: str, region: str = REGION) -> bool:
    try:
        s3(region).head_bucket(Bucket=name)
    except ClientError:
        return False
    return True


def create_store(region: str = REGION) -> Store:
    stack_id = regional_store.start_create(cfn(region), STORE, region, bucket(region))
    store = regional_store.check(cfn(region), stack_id)
    assert store is not None
    return store


# ------------------------------------------------------------------------------------------ the layer


def test_start_create_makes_the_named_stack_in_the_requested_region() -> None:
    stack_id = regional_store.start_create(cfn(REGION), STORE, REGION, bucket(REGION))

    assert regional_store.region_of(stack_id) == REGION
    assert live_stacks(REGION) == [stack_id]
    assert live_stacks(HOME) == []
    stack = cfn(REGION).describe_stacks(StackName=stack_id)["Stacks"][0]
    assert stack["StackName"] == STORE
    assert {"Key": "multi-region-deployment:role", "Value": "regional-artifact-store"} in stack["Tags"]


def test_check_returns_the_store_once_the_stack_is_complete() -> None:
    stack_id = regional_store.start_create(cfn(REGION), STORE, REGION, bucket(REGION))

    store = regional_store.check(cfn(REGION), stack_id)

    assert store is not None
    assert store.stack_id == stack_id
    assert s3(REGION).get_bucket_location(Bucket=store.bucket_name)["LocationConstraint"] == REGION
    assert store.key_arn.startswith(f"arn:aws:kms:{REGION}:{DEFAULT_ACCOUNT_ID}:key/")
    keys = boto3.client("kms", region_name=REGION).list_keys()["Keys"]
    assert store.key_arn in [key["KeyArn"] for key in keys]


def test_check_returns_none_while_the_stack_is_in_progress() -> None:
    stack_id = regional_store.start_create(cfn(REGION), STORE, REGION, bucket(REGION))
    set_status(REGION, stack_id, "CREATE_IN_PROGRESS")

    assert regional_store.check(cfn(REGION), stack_id) is None


@pytest.mark.parametrize("status", ["ROLLBACK_COMPLETE", "CREATE_FAILED", "UPDATE_ROLLBACK_COMPLETE"])
def test_check_raises_when_the_stack_failed(status: str) -> None:
    stack_id = regional_store.start_create(cfn(REGION), STORE, REGION, bucket(REGION))
    set_status(REGION, stack_id, status)

    with pytest.raises(StoreError, match=status):
        regional_store.check(cfn(REGION), stack_id)


def test_the_deployed_template_protects_the_artifacts() -> None:
    """KMS key with rotation; versioned, encrypted, private, TLS-only bucket."""
    store = create_store()
    body = cfn(REGION).get_template(StackName=store.stack_id)["TemplateBody"]
    template = json.loads(body) if isinstance(body, str) else json.loads(json.dumps(body))
    resources = template["Resources"]

    assert resources["Key"]["Properties"]["EnableKeyRotation"] is True
    bucket = resources["Bucket"]["Properties"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    [rule] = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": {"Fn::GetAtt": ["Key", "Arn"]},
    }
    [statement] = resources["BucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Principal"] == "*"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert resources["BucketPolicy"]["Properties"]["Bucket"] == {"Ref": "Bucket"}
    assert set(template["Outputs"]) == {"BucketName", "KeyArn"}
    # What moto applies of it: the key really rotates.
    kms = boto3.client("kms", region_name=REGION)
    assert kms.get_key_rotation_status(KeyId=store.key_arn)["KeyRotationEnabled"] is True


def test_start_create_adopts_a_healthy_stack_of_the_same_name() -> None:
    first = regional_store.start_create(cfn(REGION), STORE, REGION, bucket(REGION))

    second = regional_store.start_create(cfn(REGION), STORE, REGION, bucket(REGION))

    assert second == first
    assert live_stacks(REGION) == [first]


@pytest.mark.parametrize("status", ["ROLLBACK_COMPLETE", "UPDATE_ROLLBACK_FAILED", "DELETE_FAILED"])
def test_start_create_refuses_an_existing_stack_in_a_bad_state(status: str) -> None:
    existing = regional_store.start_create(cfn(REGION), STORE, REGION, bucket(REGION))
    set_status(REGION, existing, status)

    with pytest.raises(StoreError, match=status):
        regional_store.start_create(cfn(REGION), STORE, REGION, bucket(REGION))

    assert live_stacks(REGION) == [existing]


def test_start_delete_empties_a_versioned_bucket_then_deletes_the_stack() -> None:
    """GIVEN a bucket with two versions of one object, a delete marker on another and a live object
    WHEN the store is deleted THEN the bucket is empty when CloudFormation is asked to delete the stack."""
    store = create_store()
    bucket = store.bucket_name
    client = s3()
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    client.put_object(Bucket=bucket, Key="pipeline/a.zip", Body=b"1")
    client.put_object(Bucket=bucket, Key="pipeline/a.zip", Body=b"2")
    client.put_object(Bucket=bucket, Key="pipeline/b.zip", Body=b"3")
    client.delete_object(Bucket=bucket, Key="pipeline/b.zip")
    client.put_object(Bucket=bucket, Key="pipeline/c.zip", Body=b"4")
    listing = client.list_object_versions(Bucket=bucket)
    assert len(listing["Versions"]) == 4
    assert len(listing["DeleteMarkers"]) == 1

    left_at_delete: list[int] = []

    def count_left(**_: Any) -> None:
        page = client.list_object_versions(Bucket=bucket)
        left_at_delete.append(len(page.get("Versions", [])) + len(page.get("DeleteMarkers", [])))

    stack_cfn = cfn()
    stack_cfn.meta.events.register("before-call.cloudformation.DeleteStack", count_left)

    assert regional_store.start_delete(stack_cfn, client, store.stack_id) is True

    assert left_at_delete == [0]
    assert regional_store.deleted(cfn(), store.stack_id) is True
    assert live_stacks(REGION) == []
    assert not bucket_exists(bucket)


def test_empty_bucket_counts_every_version_and_marker() -> None:
    store = create_store()
    client = s3()
    client.put_bucket_versioning(Bucket=store.bucket_name, VersioningConfiguration={"Status": "Enabled"})
    for body in (b"1", b"2", b"3"):
        client.put_object(Bucket=store.bucket_name, Key="x", Body=body)
    client.delete_object(Bucket=store.bucket_name, Key="x")

    assert regional_store.empty_bucket(client, store.bucket_name) == 4

    listing = client.list_object_versions(Bucket=store.bucket_name)
    assert listing.get("Versions", []) == []
    assert listing.get("DeleteMarkers", []) == []
    assert regional_store.empty_bucket(client, "no-such-bucket-anywhere") == 0


def test_deleted_is_false_while_the_stack_exists() -> None:
    store = create_store()

    assert regional_store.deleted(cfn(), store.stack_id) is False

    set_status(REGION, store.stack_id, "DELETE_FAILED")
    with pytest.raises(StoreError):
        regional_store.deleted(cfn(), store.stack_id)


def test_start_delete_of_a_stack_already_gone_does_nothing() -> None:
    store = create_store()
    assert regional_store.start_delete(cfn(), s3(), store.stack_id) is True

    assert regional_store.start_delete(cfn(), s3(), store.stack_id) is False
    assert regional_store.deleted(cfn(), store.stack_id) is True


@pytest.mark.parametrize(
    ("stack_id", "region"),
    [
        ("arn:aws:cloudformation:eu-west-1:123456789012:stack/release-pipeline-artifacts/2d4e6f80", "eu-west-1"),
        ("arn:aws-cn:cloudformation:cn-north-1:123456789012:stack/store/1", "cn-north-1"),
        ("release-solution_RegionalArtifactStore_AB12CD34", None),
        ("", None),
        ("arn:aws:s3:::release-pipeline-artifacts", None),
        ("arn:aws:cloudformation:eu-west-1:123456789012:changeSet/pipeline-1/abc", None),
    ],
)
def test_region_of_reads_stack_arns_only(stack_id: str, region: str | None) -> None:
    assert regional_store.region_of(stack_id) == region


# ----------------------------------------------------------------------------- the handler (crhelper)


class CustomResource:
    """The function as CloudFormation and crhelper's poll schedule drive it, with no HTTP and no
    CloudWatch Events: responses and the poll event crhelper would schedule are captured."""

    def __init__(self, module: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
        self.module = module
        self.responses: list[dict[str, Any]] = []
        self.scheduled: list[dict[str, Any]] = []
        self.unscheduled: list[str] = []
        helper = module.resource_helper()

        def send(status: str | None = None, reason: str = "", send_response: Any = None) -> None:
            original_send(status, reason, send_response=self._capture)

        original_send = helper._send
        monkeypatch.setattr(helper, "_send", send)
        monkeypatch.setattr(helper, "_put_rule", lambda: "arn:aws:events:us-east-1:123456789012:rule/PollRule1")
        monkeypatch.setattr(helper, "_add_permission", lambda rule_arn: "PollPermission1")
        monkeypatch.setattr(
            helper, "_put_targets", lambda func_name: self.scheduled.append(copy.deepcopy(helper._event))
        )
        monkeypatch.setattr(helper, "_remove_targets", lambda rule_arn: self.unscheduled.append(rule_arn))
        monkeypatch.setattr(helper, "_remove_permission", lambda sid: None)
        monkeypatch.setattr(helper, "_delete_rule", lambda rule_arn: None)

    def _capture(self, url: str, body: dict[str, Any], ssl_verify: Any = None) -> None:
        self.responses.append(json.loads(json.dumps(body)))

    def invoke(self, event: dict[str, Any], context: FakeLambdaContext) -> None:
        self.module.lambda_handler(event, context)

    def run(self, event: dict[str, Any], context: FakeLambdaContext, polls: int = 5) -> dict[str, Any]:
        """Invoke with ``event``, then with each poll event crhelper schedules, until one response."""
        self.invoke(event, context)
        for _ in range(polls):
            if self.responses:
                break
            assert self.scheduled, "no response and no poll scheduled"
            self.invoke(copy.deepcopy(self.scheduled[-1]), context)
        [response] = self.responses
        return response


@pytest.fixture
def resource(monkeypatch: pytest.MonkeyPatch) -> CustomResource:
    monkeypatch.setenv("AWS_REGION", HOME)
    return CustomResource(load_function("regional-artifact-store"), monkeypatch)


def test_create_then_poll_answers_success_with_the_store(
    resource: CustomResource, lambda_context: FakeLambdaContext
) -> None:
    event = load_event("regional-artifact-store", "create")

    resource.invoke(event, lambda_context)

    assert resource.responses == []
    [poll] = resource.scheduled
    assert poll["CrHelperPoll"] is True
    stack_id = poll["CrHelperData"]["PhysicalResourceId"]
    assert regional_store.region_of(stack_id) == REGION

    resource.invoke(copy.deepcopy(poll), lambda_context)

    [response] = resource.responses
    assert response["Status"] == "SUCCESS"
    assert response["PhysicalResourceId"] == stack_id
    assert response["RequestId"] == event["RequestId"]
    assert live_stacks(REGION) == [stack_id]
    store = regional_store.check(cfn(REGION), stack_id)
    assert store is not None
    assert response["Data"] == {"BucketName": store.bucket_name, "KeyArn": store.key_arn}
    assert resource.unscheduled == ["arn:aws:events:us-east-1:123456789012:rule/PollRule1"]


def test_create_keeps_polling_while_the_stack_is_in_progress(
    resource: CustomResource, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    resource.invoke(load_event("regional-artifact-store", "create"), lambda_context)
    [poll] = resource.scheduled
    stack_id = poll["CrHelperData"]["PhysicalResourceId"]
    set_status(REGION, stack_id, "CREATE_IN_PROGRESS")

    resource.invoke(copy.deepcopy(poll), lambda_context)

    assert resource.responses == []
    assert resource.unscheduled == []

    set_status(REGION, stack_id, "CREATE_COMPLETE")
    resource.invoke(copy.deepcopy(poll), lambda_context)

    [response] = resource.responses
    assert response["Status"] == "SUCCESS"
    assert response["PhysicalResourceId"] == stack_id


def create_without(prop: str, resource: CustomResource, context: FakeLambdaContext) -> dict[str, Any]:
    """Run the sample Create event with the ``prop`` resource property left out; returns the response."""
    event = load_event("regional-artifact-store", "create")
    del event["ResourceProperties"][prop]
    return resource.run(event, context)


def test_create_without_a_region_fails_with_the_reason(
    resource: CustomResource, lambda_context: FakeLambdaContext
) -> None:
    response = create_without("Region", resource, lambda_context)

    assert response["Status"] == "FAILED"
    assert "Region" in response["Reason"]
    assert resource.scheduled == []
    assert live_stacks(REGION) == []


def test_create_over_a_broken_stack_of_the_same_name_fails_with_the_reason(
    resource: CustomResource, lambda_context: FakeLambdaContext
) -> None:
    existing = regional_store.start_create(cfn(REGION), STORE, REGION, bucket(REGION))
    set_status(REGION, existing, "ROLLBACK_COMPLETE")

    response = resource.run(load_event("regional-artifact-store", "create"), lambda_context)

    assert response["Status"] == "FAILED"
    assert "ROLLBACK_COMPLETE" in response["Reason"]
    assert live_stacks(REGION) == [existing]


def test_update_to_another_region_creates_a_new_store_and_leaves_the_old_one(
    resource: CustomResource, lambda_context: FakeLambdaContext
) -> None:
    """GIVEN the store in eu-west-1 WHEN the Region property becomes eu-central-1 THEN a store is made
    there and its ARN returned; the old stack stays for CloudFormation's Delete of the old id."""
    old = create_store(REGION)
    event = load_event("regional-artifact-store", "update")
    event["PhysicalResourceId"] = old.stack_id

    response = resource.run(event, lambda_context)

    assert response["Status"] == "SUCCESS"
    [new_id] = live_stacks(NEW_REGION)
    assert response["PhysicalResourceId"] == new_id
    assert regional_store.region_of(new_id) == NEW_REGION
    new = regional_store.check(cfn(NEW_REGION), new_id)
    assert new is not None
    assert response["Data"] == {"BucketName": new.bucket_name, "KeyArn": new.key_arn}
    assert bucket_exists(new.bucket_name, NEW_REGION)
    assert live_stacks(REGION) == [old.stack_id]
    assert bucket_exists(old.bucket_name, REGION)


def test_update_in_the_same_region_keeps_the_store(resource: CustomResource, lambda_context: FakeLambdaContext) -> None:
    old = create_store(REGION)
    event = load_event("regional-artifact-store", "update-same-region")
    event["PhysicalResourceId"] = old.stack_id

    response = resource.run(event, lambda_context)

    assert response["Status"] == "SUCCESS"
    assert response["PhysicalResourceId"] == old.stack_id
    assert live_stacks(REGION) == [old.stack_id]
    assert response["Data"]["BucketName"] == old.bucket_name
    assert cfn(REGION).describe_stacks(StackName=old.stack_id)["Stacks"][0]["StackStatus"] in {
        "CREATE_COMPLETE",
        "UPDATE_COMPLETE",
    }


def test_update_with_a_new_bucket_name_updates_the_store_in_place(
    resource: CustomResource, lambda_context: FakeLambdaContext
) -> None:
    """GIVEN the same Region and stack but another bucket name THEN the store's stack is updated to it,
    not silently kept with the old bucket."""
    old = create_store(REGION)
    event = load_event("regional-artifact-store", "update-same-region")
    event["PhysicalResourceId"] = old.stack_id
    event["ResourceProperties"]["BucketName"] = "mrd-renamed-bucket"

    response = resource.run(event, lambda_context)

    assert response["Status"] == "SUCCESS"
    assert response["PhysicalResourceId"] == old.stack_id
    parameters = cfn(REGION).describe_stacks(StackName=old.stack_id)["Stacks"][0]["Parameters"]
    assert {p["ParameterKey"]: p["ParameterValue"] for p in parameters} == {"BucketName": "mrd-renamed-bucket"}
    assert response["Data"]["BucketName"] == "mrd-renamed-bucket"


def test_delete_empties_the_bucket_and_removes_the_stack(
    resource: CustomResource, lambda_context: FakeLambdaContext
) -> None:
    store = create_store(REGION)
    client = s3()
    client.put_bucket_versioning(Bucket=store.bucket_name, VersioningConfiguration={"Status": "Enabled"})
    client.put_object(Bucket=store.bucket_name, Key="a.zip", Body=b"1")
    client.delete_object(Bucket=store.bucket_name, Key="a.zip")
    event = load_event("regional-artifact-store", "delete")
    event["PhysicalResourceId"] = store.stack_id

    response = resource.run(event, lambda_context)

    assert response["Status"] == "SUCCESS"
    assert response["PhysicalResourceId"] == store.stack_id
    assert live_stacks(REGION) == []
    assert not bucket_exists(store.bucket_name)


def test_delete_of_a_failed_create_succeeds_without_touching_anything(
    resource: CustomResource, lambda_context: FakeLambdaContext
) -> None:
    """GIVEN a Create that failed (CloudFormation then deletes the crhelper-generated physical id)
    THEN Delete answers SUCCESS and leaves a same-named store stack alone."""
    other = create_store(REGION)
    event = load_event("regional-artifact-store", "delete")
    event["PhysicalResourceId"] = "release-pipeline_RegionalArtifactStore_AB12CD34"

    response = resource.run(event, lambda_context)

    assert response["Status"] == "SUCCESS"
    assert response["PhysicalResourceId"] == "release-pipeline_RegionalArtifactStore_AB12CD34"
    assert live_stacks(REGION) == [other.stack_id]
    assert bucket_exists(other.bucket_name)


def test_delete_of_a_store_already_gone_succeeds(resource: CustomResource, lambda_context: FakeLambdaContext) -> None:
    store = create_store(REGION)
    assert regional_store.start_delete(cfn(), s3(), store.stack_id)
    event = load_event("regional-artifact-store", "delete")
    event["PhysicalResourceId"] = store.stack_id

    response = resource.run(event, lambda_context)

    assert response["Status"] == "SUCCESS"
    assert response["PhysicalResourceId"] == store.stack_id


def test_the_store_bucket_has_the_name_the_template_chose() -> None:
    """The solution's IAM policy names this bucket: the store must use exactly that name."""
    store = create_store()
    assert store.bucket_name == bucket()
    assert bucket_exists(bucket())


def test_create_without_a_bucket_name_fails_and_creates_nothing(
    resource: CustomResource, lambda_context: FakeLambdaContext
) -> None:
    response = create_without("BucketName", resource, lambda_context)

    assert response["Status"] == "FAILED"
    assert "BucketName" in response["Reason"]
    assert live_stacks(REGION) == []
