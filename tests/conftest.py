"""Fixtures every test gets: no real AWS settings, fake credentials, moto's missing operations; and the
mocked artifact bucket, SSM and KMS key that several function tests share."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest
from moto import mock_aws

import local_aws
from local_aws import FakeLambdaContext
from tests.support.solution import ARTIFACT_BUCKET

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_ssm import SSMClient

local_aws.install()

_CLEARED_PREFIXES = ("AWS_",)
_REGION = "us-east-1"
_FAKE_SETTINGS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": _REGION,
    "AWS_REGION": _REGION,  # Lambda sets it for every function: the Region the function runs in
}


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Remove every AWS_* setting (profiles, endpoints, credentials), set fake credentials and
    us-east-1 (AWS_REGION too, as Lambda sets it), and point the config and credentials files at nothing.
    (local_aws's state lives on moto's backends: mock_aws forgets it with everything else.)"""
    for name in list(os.environ):
        if name.startswith(_CLEARED_PREFIXES):
            monkeypatch.delenv(name)
    for name, value in _FAKE_SETTINGS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture
def aws(aws_environment: None) -> Iterator[None]:
    """Run the test inside moto's mock_aws (every service, in-process)."""
    with mock_aws():
        yield


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    """A Lambda context usable with Powertools Logger.inject_lambda_context."""
    return FakeLambdaContext("test-function")


@pytest.fixture
def s3(aws: None) -> S3Client:
    """An S3 client in us-east-1 (mocked)."""
    return boto3.client("s3", region_name=_REGION)


@pytest.fixture
def artifact_bucket(s3: S3Client) -> str:
    """The solution's artifact bucket, created with versioning enabled; returns its name."""
    s3.create_bucket(Bucket=ARTIFACT_BUCKET)
    s3.put_bucket_versioning(Bucket=ARTIFACT_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    return ARTIFACT_BUCKET


@pytest.fixture
def ssm(aws: None) -> SSMClient:
    """An SSM client in us-east-1 (mocked)."""
    return boto3.client("ssm", region_name=_REGION)


@pytest.fixture
def kms_key_arn(aws: None) -> str:
    """The ARN of a new KMS key in us-east-1 (mocked)."""
    return str(boto3.client("kms", region_name=_REGION).create_key()["KeyMetadata"]["Arn"])
