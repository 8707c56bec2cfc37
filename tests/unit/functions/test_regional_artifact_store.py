"""regional-artifact-store: the artifact bucket and key in the secondary Region, as a small stack there."""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.core.models import DEFAULT_ACCOUNT_ID

import local_aws
from local_aws import FakeLambdaContext
from release_pipeline import regional_store
from release_pipeline.regional_store import Store, StoreError
from tests.support.custom_resource import ResponseEndpoint
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
    local_aws.set_stack_status(stack_id, region, status)


def live_stacks(region: str, name: str = STORE) -> list[str]:
    """Ids of the stacks named ``name`` in ``region`` that are not deleted."""
    pages = cfn(region).get_paginator("list_stacks").paginate()
    return [
        stack["StackId"]
        for page in pages
        for stack in page["StackSummaries"]
        if stack["StackName"] == name and stack["StackStatus"] != "DELETE_COMPLETE"
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
    """The function deployed in the home Region as CloudFormation and crhelper's poll schedule drive it:
    CloudFormation's ResponseURL is a local HTTPS endpoint, and the poll crhelper schedules is read from
    EventBridge (the rule crhelper puts, whose target invokes this function)."""

    def __init__(self, module: ModuleType, endpoint: ResponseEndpoint, context: FakeLambdaContext) -> None:
        self.module = module
        self.endpoint = endpoint
        self.context = context
        self.function_arn = deploy_function(context.function_name)
        self.events = boto3.client("events", region_name=HOME)
        self.awslambda = boto3.client("lambda", region_name=HOME)

    def invoke(self, event: dict[str, Any]) -> None:
        """Invoke with ``event`` as CloudFormation sends it, its ResponseURL pointing at the endpoint."""
        self.module.lambda_handler(self.endpoint.redirect(event), self.context)

    def responses(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """What reached CloudFormation at ``event``'s ResponseURL."""
        return self.endpoint.responses(event)

    def scheduled(self) -> list[dict[str, Any]]:
        """The events scheduled rules will invoke this function with (crhelper's polls)."""
        polls = []
        for rule in self.events.list_rule_names_by_target(TargetArn=self.function_arn)["RuleNames"]:
            described = self.events.describe_rule(Name=rule)
            assert described["ScheduleExpression"] == "rate(1 minute)"
            assert described["State"] == "ENABLED"
            targets = self.events.list_targets_by_rule(Rule=rule)["Targets"]
            polls += [json.loads(t["Input"]) for t in targets if t["Arn"] == self.function_arn]
        return polls

    def schedule_left(self) -> dict[str, list[str]]:
        """The rules and the permissions to invoke this function that polling left behind."""
        try:
            policy = json.loads(self.awslambda.get_policy(FunctionName=self.function_arn)["Policy"])
        except self.awslambda.exceptions.ResourceNotFoundException:
            policy = {"Statement": []}
        return {
            "rules": [r["Name"] for r in self.events.list_rules()["Rules"]],
            "permissions": [statement["Sid"] for statement in policy["Statement"]],
        }

    def run(self, event: dict[str, Any], polls: int = 5) -> dict[str, Any]:
        """Invoke with ``event``, then with each poll crhelper schedules, until CloudFormation has its
        one response; returns it."""
        self.invoke(event)
        for _ in range(polls):
            if self.responses(event):
                break
            [poll] = self.scheduled()
            self.invoke(poll)
        [response] = self.responses(event)
        return response


def deploy_function(name: str) -> str:
    """The function as Lambda knows it (crhelper lets EventBridge invoke it by name); returns its ARN."""
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    role = boto3.client("iam").create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=json.dumps(trust))
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", "def lambda_handler(event, context):\n    return None\n")
    created = boto3.client("lambda", region_name=HOME).create_function(
        FunctionName=name,
        Runtime="python3.13",
        Role=role["Role"]["Arn"],
        Handler="app.lambda_handler",
        Code={"ZipFile": code.getvalue()},
    )
    return created["FunctionArn"]


@pytest.fixture
def endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ResponseEndpoint]:
    """CloudFormation's response endpoint, trusted as S3's is (its authority in SSL_CERT_FILE)."""
    served = ResponseEndpoint(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(served.ca_file))
    yield served
    served.close()


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """The function never waits (crhelper sleeps only to retry a response that did not reach
    CloudFormation): any sleep fails the test."""

    def refuse(seconds: float) -> None:
        raise AssertionError(f"the handler slept for {seconds}s")

    monkeypatch.setattr(time, "sleep", refuse)


@pytest.fixture
def resource(
    monkeypatch: pytest.MonkeyPatch, endpoint: ResponseEndpoint, lambda_context: FakeLambdaContext
) -> CustomResource:
    monkeypatch.setenv("AWS_REGION", HOME)
    return CustomResource(load_function("regional-artifact-store"), endpoint, lambda_context)


def test_create_then_poll_answers_success_with_the_store(resource: CustomResource) -> None:
    event = load_event("regional-artifact-store", "create")

    resource.invoke(event)

    assert resource.responses(event) == []
    [poll] = resource.scheduled()
    assert poll["CrHelperPoll"] is True
    stack_id = poll["CrHelperData"]["PhysicalResourceId"]
    assert regional_store.region_of(stack_id) == REGION

    resource.invoke(poll)

    [response] = resource.responses(event)
    assert response["Status"] == "SUCCESS"
    assert response["PhysicalResourceId"] == stack_id
    assert response["RequestId"] == event["RequestId"]
    assert live_stacks(REGION) == [stack_id]
    store = regional_store.check(cfn(REGION), stack_id)
    assert store is not None
    assert response["Data"] == {"BucketName": store.bucket_name, "KeyArn": store.key_arn}
    assert resource.scheduled() == []
    assert resource.schedule_left() == {"rules": [], "permissions": []}


def test_create_keeps_polling_while_the_stack_is_in_progress(resource: CustomResource) -> None:
    event = load_event("regional-artifact-store", "create")
    resource.invoke(event)
    [poll] = resource.scheduled()
    stack_id = poll["CrHelperData"]["PhysicalResourceId"]
    set_status(REGION, stack_id, "CREATE_IN_PROGRESS")

    resource.invoke(poll)

    assert resource.responses(event) == []
    assert resource.scheduled() == [poll]

    set_status(REGION, stack_id, "CREATE_COMPLETE")
    resource.invoke(poll)

    [response] = resource.responses(event)
    assert response["Status"] == "SUCCESS"
    assert response["PhysicalResourceId"] == stack_id
    assert resource.schedule_left() == {"rules": [], "permissions": []}


def create_without(prop: str, resource: CustomResource) -> dict[str, Any]:
    """Run the sample Create event with the ``prop`` resource property left out; returns the response."""
    event = load_event("regional-artifact-store", "create")
    del event["ResourceProperties"][prop]
    return resource.run(event)


def test_create_without_a_region_fails_with_the_reason(resource: CustomResource) -> None:
    response = create_without("Region", resource)

    assert response["Status"] == "FAILED"
    assert "Region" in response["Reason"]
    assert resource.scheduled() == []
    assert resource.schedule_left() == {"rules": [], "permissions": []}
    assert live_stacks(REGION) == []


def test_create_over_a_broken_stack_of_the_same_name_fails_with_the_reason(resource: CustomResource) -> None:
    existing = regional_store.start_create(cfn(REGION), STORE, REGION, bucket(REGION))
    set_status(REGION, existing, "ROLLBACK_COMPLETE")

    response = resource.run(load_event("regional-artifact-store", "create"))

    assert response["Status"] == "FAILED"
    assert "ROLLBACK_COMPLETE" in response["Reason"]
    assert live_stacks(REGION) == [existing]


def test_update_to_another_region_creates_a_new_store_and_leaves_the_old_one(resource: CustomResource) -> None:
    """GIVEN the store in eu-west-1 WHEN the Region property becomes eu-central-1 THEN a store is made
    there and its ARN returned; the old stack stays for CloudFormation's Delete of the old id."""
    old = create_store(REGION)
    event = load_event("regional-artifact-store", "update")
    event["PhysicalResourceId"] = old.stack_id

    response = resource.run(event)

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


def test_update_in_the_same_region_keeps_the_store(resource: CustomResource) -> None:
    old = create_store(REGION)
    event = load_event("regional-artifact-store", "update-same-region")
    event["PhysicalResourceId"] = old.stack_id

    response = resource.run(event)

    assert response["Status"] == "SUCCESS"
    assert response["PhysicalResourceId"] == old.stack_id
    assert live_stacks(REGION) == [old.stack_id]
    assert response["Data"]["BucketName"] == old.bucket_name
    assert cfn(REGION).describe_stacks(StackName=old.stack_id)["Stacks"][0]["StackStatus"] in {
        "CREATE_COMPLETE",
        "UPDATE_COMPLETE",
    }


def test_update_with_a_new_bucket_name_updates_the_store_in_place(resource: CustomResource) -> None:
    """GIVEN the same Region and stack but another bucket name THEN the store's stack is updated to it,
    not silently kept with the old bucket."""
    old = create_store(REGION)
    event = load_event("regional-artifact-store", "update-same-region")
    event["PhysicalResourceId"] = old.stack_id
    event["ResourceProperties"]["BucketName"] = "mrd-renamed-bucket"

    response = resource.run(event)

    assert response["Status"] == "SUCCESS"
    assert response["PhysicalResourceId"] == old.stack_id
    parameters = cfn(REGION).describe_stacks(StackName=old.stack_id)["Stacks"][0]["Parameters"]
    assert {p["ParameterKey"]: p["ParameterValue"] for p in parameters} == {"BucketName": "mrd-renamed-bucket"}
    assert response["Data"]["BucketName"] == "mrd-renamed-bucket"


def test_delete_empties_the_bucket_and_removes_the_stack(resource: CustomResource) -> None:
    store = create_store(REGION)
    client = s3()
    client.put_bucket_versioning(Bucket=store.bucket_name, VersioningConfiguration={"Status": "Enabled"})
    client.put_object(Bucket=store.bucket_name, Key="a.zip", Body=b"1")
    client.delete_object(Bucket=store.bucket_name, Key="a.zip")
    event = load_event("regional-artifact-store", "delete")
    event["PhysicalResourceId"] = store.stack_id

    response = resource.run(event)

    assert response["Status"] == "SUCCESS"
    assert response["PhysicalResourceId"] == store.stack_id
    assert live_stacks(REGION) == []
    assert not bucket_exists(store.bucket_name)


def test_delete_of_a_failed_create_succeeds_without_touching_anything(resource: CustomResource) -> None:
    """GIVEN a Create that failed (CloudFormation then deletes the crhelper-generated physical id)
    THEN Delete answers SUCCESS and leaves a same-named store stack alone."""
    other = create_store(REGION)
    event = load_event("regional-artifact-store", "delete")
    event["PhysicalResourceId"] = "release-pipeline_RegionalArtifactStore_AB12CD34"

    response = resource.run(event)

    assert response["Status"] == "SUCCESS"
    assert response["PhysicalResourceId"] == "release-pipeline_RegionalArtifactStore_AB12CD34"
    assert live_stacks(REGION) == [other.stack_id]
    assert bucket_exists(other.bucket_name)


def test_delete_of_a_store_already_gone_succeeds(resource: CustomResource) -> None:
    store = create_store(REGION)
    assert regional_store.start_delete(cfn(), s3(), store.stack_id)
    event = load_event("regional-artifact-store", "delete")
    event["PhysicalResourceId"] = store.stack_id

    response = resource.run(event)

    assert response["Status"] == "SUCCESS"
    assert response["PhysicalResourceId"] == store.stack_id


def test_the_store_bucket_has_the_name_the_template_chose() -> None:
    """The solution's IAM policy names this bucket: the store must use exactly that name."""
    store = create_store()
    assert store.bucket_name == bucket()
    assert bucket_exists(bucket())


def test_create_without_a_bucket_name_fails_and_creates_nothing(resource: CustomResource) -> None:
    response = create_without("BucketName", resource)

    assert response["Status"] == "FAILED"
    assert "BucketName" in response["Reason"]
    assert live_stacks(REGION) == []
