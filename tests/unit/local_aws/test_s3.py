"""local_aws.s3: bucket policies evaluated as AWS does for SDK requests, all over TLS."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.core import set_initial_no_auth_action_count

from local_aws import s3
from local_aws.iam import create_principal

pytestmark = pytest.mark.usefixtures("aws")


def tls_only_bucket(name: str, extra: list[dict[str, Any]] | None = None) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=name)
    statements = [
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
        *(extra or []),
    ]
    s3.put_bucket_policy(Bucket=name, Policy=json.dumps({"Version": "2012-10-17", "Statement": statements}))


def put_as_user(bucket: str) -> None:
    iam = boto3.client("iam", region_name="us-east-1")
    credentials = create_principal(
        iam,
        "writer",
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"}]},
    )

    @set_initial_no_auth_action_count(0)
    def put() -> None:
        boto3.client(
            "s3",
            region_name="us-east-1",
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key,
        ).put_object(Bucket=bucket, Key="k", Body=b"x")

    put()


def test_a_tls_only_bucket_accepts_sdk_requests_under_iam_enforcement() -> None:
    tls_only_bucket("tls-only-bucket")
    put_as_user("tls-only-bucket")  # no AccessDenied: SDK requests count as TLS


def test_other_deny_statements_of_a_bucket_policy_still_apply() -> None:
    deny_all = {"Sid": "DenyPut", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": "*"}
    tls_only_bucket("locked-bucket", [deny_all])
    with pytest.raises(ClientError) as error:
        put_as_user("locked-bucket")
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_a_statement_that_requires_plain_http_never_applies() -> None:
    statement = {"Effect": "Allow", "Action": "s3:*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
    assert s3.over_tls(statement) is None
    kept = s3.over_tls(
        {
            "Effect": "Deny",
            "Condition": {"Bool": {"aws:SecureTransport": ["true"], "aws:MultiFactorAuthPresent": "true"}},
        }
    )
    assert kept == {"Effect": "Deny", "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}}}
