"""The artifact store in the secondary Region: a small stack with a KMS key and a bucket.

CodePipeline needs an artifact bucket, with its key, in every Region where it runs an action. The
solution stack lives in the primary Region, so a custom resource creates this stack in the secondary
Region, follows it to completion, and on delete empties the bucket and removes the stack.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from release_pipeline import stacks
from release_pipeline.errors import error_code

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudformation.type_defs import ParameterTypeDef
    from mypy_boto3_s3 import S3Client

DONE = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE"})
FAILED = frozenset(
    {
        "CREATE_FAILED",
        "ROLLBACK_COMPLETE",
        "ROLLBACK_FAILED",
        "UPDATE_ROLLBACK_COMPLETE",
        "UPDATE_ROLLBACK_FAILED",
        "DELETE_FAILED",
    }
)


class StoreError(Exception):
    """The regional artifact store stack could not be created, updated or deleted."""


@dataclass(frozen=True)
class Store:
    """The secondary Region's artifact store: its stack, bucket and KMS key."""

    stack_id: str
    bucket_name: str
    key_arn: str


def artifact_store_template() -> str:
    """The template of the regional store: KMS key with rotation, versioned TLS-only private bucket."""
    bucket_arn = {"Fn::GetAtt": ["Bucket", "Arn"]}
    template: dict[str, Any] = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "Artifact store of the multi-Region release pipeline in this Region",
        "Parameters": {
            "BucketName": {
                "Type": "String",
                "Description": "Name of the artifact bucket (fixed, so the solution's IAM policy can name it)",
                "AllowedPattern": "^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
            }
        },
        "Resources": {
            "Key": {
                "Type": "AWS::KMS::Key",
                "Properties": {
                    "Description": "Encrypts the release pipeline's artifacts in this Region",
                    "EnableKeyRotation": True,
                    "KeyPolicy": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Sid": "AccountAdministersKeyThroughIam",
                                "Effect": "Allow",
                                "Principal": {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}},
                                "Action": "kms:*",
                                "Resource": "*",
                            }
                        ],
                    },
                },
            },
            "Bucket": {
                "Type": "AWS::S3::Bucket",
                "Properties": {
                    "BucketName": {"Ref": "BucketName"},
                    "BucketEncryption": {
                        "ServerSideEncryptionConfiguration": [
                            {
                                "ServerSideEncryptionByDefault": {
                                    "SSEAlgorithm": "aws:kms",
                                    "KMSMasterKeyID": {"Fn::GetAtt": ["Key", "Arn"]},
                                },
                                "BucketKeyEnabled": True,
                            }
                        ]
                    },
                    "VersioningConfiguration": {"Status": "Enabled"},
                    "PublicAccessBlockConfiguration": {
                        "BlockPublicAcls": True,
                        "BlockPublicPolicy": True,
                        "IgnorePublicAcls": True,
                        "RestrictPublicBuckets": True,
                    },
                    "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
                    "LifecycleConfiguration": {
                        "Rules": [
                            {
                                "Id": "ExpireOldArtifacts",
                                "Status": "Enabled",
                                "ExpirationInDays": 90,
                                "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
                                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
                            }
                        ]
                    },
                },
            },
            "BucketPolicy": {
                "Type": "AWS::S3::BucketPolicy",
                "Properties": {
                    "Bucket": {"Ref": "Bucket"},
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Sid": "DenyInsecureTransport",
                                "Effect": "Deny",
                                "Principal": "*",
                                "Action": "s3:*",
                                "Resource": [bucket_arn, {"Fn::Sub": "${Bucket.Arn}/*"}],
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        ],
                    },
                },
            },
        },
        "Outputs": {
            "BucketName": {"Value": {"Ref": "Bucket"}},
            "KeyArn": {"Value": {"Fn::GetAtt": ["Key", "Arn"]}},
        },
    }
    return json.dumps(template, indent=1)


def region_of(stack_id: str) -> str | None:
    """The Region in a stack ARN, or ``None`` when ``stack_id`` is not one."""
    parts = stack_id.split(":")
    if len(parts) >= 6 and parts[0] == "arn" and parts[2] == "cloudformation" and parts[5].startswith("stack/"):
        return parts[3]
    return None


def _parameters(bucket_name: str) -> list[ParameterTypeDef]:
    return [{"ParameterKey": "BucketName", "ParameterValue": bucket_name}]


def start_create(cfn: CloudFormationClient, stack_name: str, region: str, bucket_name: str) -> str:
    """Create the store stack (or adopt a healthy one of the same name); returns its stack id."""
    state = stacks.describe(cfn, stack_name, region)
    if state.exists and state.status in DONE and state.stack_id:
        return state.stack_id
    if state.exists:
        raise StoreError(
            f"A stack named {stack_name} already exists in {region} in state {state.status}; "
            "delete it or choose another solution stack name"
        )
    response = cfn.create_stack(
        StackName=stack_name,
        TemplateBody=artifact_store_template(),
        Parameters=_parameters(bucket_name),
        OnFailure="DELETE",
        Tags=[{"Key": "multi-region-deployment:role", "Value": "regional-artifact-store"}],
    )
    return response["StackId"]


def start_update(cfn: CloudFormationClient, stack_id: str, bucket_name: str) -> None:
    try:
        cfn.update_stack(
            StackName=stack_id, TemplateBody=artifact_store_template(), Parameters=_parameters(bucket_name)
        )
    except ClientError as error:
        if not stacks.is_no_updates(error):
            raise


def check(cfn: CloudFormationClient, stack_id: str) -> Store | None:
    """The store once its stack is complete; ``None`` while it is in progress."""
    stack = cfn.describe_stacks(StackName=stack_id)["Stacks"][0]
    status = stack["StackStatus"]
    if status in DONE:
        outputs = {item["OutputKey"]: item["OutputValue"] for item in stack.get("Outputs", [])}
        if not outputs.get("BucketName") or not outputs.get("KeyArn"):
            raise StoreError(
                f"The stack {stack['StackName']} has no BucketName and KeyArn outputs: it is not an artifact store "
                "(delete it or choose another solution stack name)"
            )
        return Store(stack_id=stack_id, bucket_name=outputs["BucketName"], key_arn=outputs["KeyArn"])
    if status in FAILED or status == "DELETE_COMPLETE":
        reason = stack.get("StackStatusReason") or "see the stack's events"
        raise StoreError(f"The artifact store stack {stack['StackName']} is {status}: {reason}")
    return None


def empty_bucket(s3: S3Client, bucket: str) -> int:
    """Delete every object version and delete marker; returns how many were deleted."""
    deleted = 0
    paginator = s3.get_paginator("list_object_versions")
    try:
        for page in paginator.paginate(Bucket=bucket):
            objects = [
                {"Key": item["Key"], "VersionId": item["VersionId"]}
                for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
            ]
            if objects:
                response = s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})  # type: ignore[typeddict-item]
                if response.get("Errors"):
                    first = response["Errors"][0]
                    raise StoreError(
                        f"Could not empty bucket {bucket}: {len(response['Errors'])} objects not deleted "
                        f"(first: {first.get('Key')}: {first.get('Code')} {first.get('Message')})"
                    )
                deleted += len(objects)
    except ClientError as error:
        if error_code(error) != "NoSuchBucket":
            raise
    return deleted


def start_delete(cfn: CloudFormationClient, s3: S3Client, stack_id: str) -> bool:
    """Empty the bucket and delete the stack; ``False`` when there was nothing to delete."""
    try:
        stack = cfn.describe_stacks(StackName=stack_id)["Stacks"][0]
    except ClientError as error:
        if stacks.is_missing_stack(error):
            return False
        raise
    if stack["StackStatus"] == "DELETE_COMPLETE":
        return False
    outputs = {item["OutputKey"]: item["OutputValue"] for item in stack.get("Outputs", [])}
    bucket = outputs.get("BucketName")
    if bucket is None:
        try:
            resource = cfn.describe_stack_resource(StackName=stack_id, LogicalResourceId="Bucket")
            bucket = resource["StackResourceDetail"].get("PhysicalResourceId")
        except ClientError:
            bucket = None
    if bucket:
        empty_bucket(s3, bucket)
    cfn.delete_stack(StackName=stack_id)
    return True


def deleted(cfn: CloudFormationClient, stack_id: str) -> bool:
    try:
        stack = cfn.describe_stacks(StackName=stack_id)["Stacks"][0]
    except ClientError as error:
        if stacks.is_missing_stack(error):
            return True
        raise
    if stack["StackStatus"] == "DELETE_FAILED":
        raise StoreError(f"The artifact store stack could not be deleted: {stack.get('StackStatusReason')}")
    return stack["StackStatus"] == "DELETE_COMPLETE"
