"""The one place boto3 clients are made: standard retries, a user agent, one Region each."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from release_pipeline.values import Credentials

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_codepipeline import CodePipelineClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_ssm import SSMClient
    from mypy_boto3_stepfunctions import SFNClient
    from mypy_boto3_sts import STSClient

USER_AGENT = "multi-region-deployment/0.1"

# botocore's DEBUG lines print every request's headers, the session token of a job's artifact
# credentials included: keep botocore quiet whatever level the function logs at.
logging.getLogger("botocore").setLevel(logging.WARNING)

# Throttling and 5xx answers are retried with botocore's standard mode (exponential backoff with
# jitter) before a call gives up with a clear error.
_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    user_agent_extra=USER_AGENT,
    connect_timeout=5,
    read_timeout=20,
)
# S3 objects in the artifact buckets are encrypted with KMS, which requires Signature Version 4.
_S3_CONFIG = _CONFIG.merge(Config(signature_version="s3v4"))


@cache
def _session() -> boto3.session.Session:
    return boto3.session.Session()


def local_endpoint() -> str | None:
    """The local emulator's address, only under ``sam local invoke`` (which sets AWS_SAM_LOCAL=true).

    SAM passes a container only the variables the template declares, so the template declares
    LOCAL_ENDPOINT_URL (empty) and events/env.json fills it in. In Lambda AWS_SAM_LOCAL is never set,
    so the variable can never send a deployed function's requests anywhere but AWS.
    """
    if os.environ.get("AWS_SAM_LOCAL") != "true":
        return None
    return os.environ.get("LOCAL_ENDPOINT_URL") or None


def _client(service: str, region: str, **kwargs: Any) -> Any:
    config = _S3_CONFIG if service == "s3" else _CONFIG
    endpoint = local_endpoint()
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    return _session().client(service, region_name=region, config=config, **kwargs)  # type: ignore[call-overload]


def _credentials(credentials: Credentials | None) -> dict[str, str]:
    if credentials is None:
        return {}
    return {
        "aws_access_key_id": credentials.access_key_id,
        "aws_secret_access_key": credentials.secret_access_key,
        "aws_session_token": credentials.session_token,
    }


def cloudformation(region: str, credentials: Credentials | None = None) -> CloudFormationClient:
    client: CloudFormationClient = _client("cloudformation", region, **_credentials(credentials))
    return client


def sts(region: str) -> STSClient:
    client: STSClient = _client("sts", region)
    return client


def assume_role(region: str, role_arn: str, session_name: str) -> Credentials:
    """Credentials of ``role_arn`` (a target account's deploy role), from STS in ``region``."""
    answer = sts(region).assume_role(RoleArn=role_arn, RoleSessionName=session_name[:64], DurationSeconds=900)
    found = answer["Credentials"]
    return Credentials(found["AccessKeyId"], found["SecretAccessKey"], found["SessionToken"])


def cloudformation_for_targets(home: str, session_name: str) -> Callable[[str, str | None], CloudFormationClient]:
    """CloudFormation clients for one invocation, one per (Region, deploy role): the function's own role
    for a target in its account, the target account's deploy role (assumed once) for any other."""
    made: dict[tuple[str, str | None], CloudFormationClient] = {}
    assumed: dict[str, Credentials] = {}

    def client(region: str, role_arn: str | None) -> CloudFormationClient:
        if (region, role_arn) not in made:
            credentials = None
            if role_arn is not None:
                if role_arn not in assumed:
                    assumed[role_arn] = assume_role(home, role_arn, session_name)
                credentials = assumed[role_arn]
            made[region, role_arn] = cloudformation(region, credentials)
        return made[region, role_arn]

    return client


def cloudformation_per_region() -> Callable[[str], CloudFormationClient]:
    """CloudFormation clients for one invocation, made once per Region (a function that works in both
    Regions asks for them step after step; making a client costs far more than reusing it)."""
    made: dict[str, CloudFormationClient] = {}

    def client(region: str) -> CloudFormationClient:
        if region not in made:
            made[region] = cloudformation(region)
        return made[region]

    return client


def codepipeline(region: str) -> CodePipelineClient:
    client: CodePipelineClient = _client("codepipeline", region)
    return client


def s3(region: str, credentials: Credentials | None = None) -> S3Client:
    """An S3 client; with ``credentials`` (a job's artifact credentials) instead of the function's role."""
    client: S3Client = _client("s3", region, **_credentials(credentials))
    return client


def sns(region: str) -> SNSClient:
    client: SNSClient = _client("sns", region)
    return client


def ssm(region: str) -> SSMClient:
    client: SSMClient = _client("ssm", region)
    return client


def stepfunctions(region: str) -> SFNClient:
    client: SFNClient = _client("stepfunctions", region)
    return client
