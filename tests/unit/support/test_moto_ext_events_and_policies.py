"""moto_ext's EventBridge TestEventPattern, execution status and TLS-aware bucket policies."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.core import set_initial_no_auth_action_count

from rehearsal import moto_ext
from rehearsal.emulator import create_principal
from tests.support import solution
from tests.support.events import load_event
from tests.support.solution import create_pipeline

pytestmark = pytest.mark.usefixtures("aws")

PATTERN = {
    "source": ["aws.codepipeline"],
    "detail-type": ["CodePipeline Stage Execution State Change"],
    "detail": {"pipeline": ["release-pipeline"], "stage": ["Stage"], "state": ["FAILED", "STOPPED"]},
}


def matches(event: dict[str, Any], pattern: dict[str, Any] = PATTERN) -> bool:
    events = boto3.client("events", region_name="us-east-1")
    result: bool = events.test_event_pattern(EventPattern=json.dumps(pattern), Event=json.dumps(event))["Result"]
    return result


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("stage-failed", True),
        ("stage-stopped", True),
        ("stage-succeeded", False),
        ("other-pipeline", False),
        ("other-stage", False),
    ],
)
def test_test_event_pattern_matches_like_the_rule(case: str, expected: bool) -> None:
    assert matches(load_event("stage-revert", case)) is expected


@pytest.mark.parametrize(
    ("stage", "state", "expected"),
    [
        ("Stage", "FAILED", True),
        ("DeploySecondary", "FAILED", True),
        ("DeployPrimary", "STOPPED", True),
        ("Stage", "SUCCEEDED", False),
        ("Validate", "FAILED", False),
        ("Release", "FAILED", False),
    ],
)
def test_the_template_rule_matches_failed_or_stopped_deploy_stages(stage: str, state: str, expected: bool) -> None:
    resolved = solution.resolved(physical={"Pipeline": {"Ref": "release-pipeline"}})
    pattern = resolved.resource("StageFailedRule")["Properties"]["EventPattern"]
    event = load_event("stage-revert", "stage-failed")
    event["detail"].update({"stage": stage, "state": state})

    assert matches(event, pattern) is expected


def test_test_event_pattern_refuses_an_event_without_the_common_fields() -> None:
    event = load_event("stage-revert", "stage-failed")
    del event["time"]
    with pytest.raises(ClientError) as error:
        matches(event)
    assert error.value.response["Error"]["Code"] == "InvalidEventPatternException"
    assert "time" in error.value.response["Error"]["Message"]


def test_execution_status_shows_in_list_pipeline_executions() -> None:
    iam = boto3.client("iam", region_name="us-east-1")
    codepipeline = boto3.client("codepipeline", region_name="us-east-1")
    create_pipeline(iam, codepipeline, "release-pipeline")
    execution = codepipeline.start_pipeline_execution(name="release-pipeline")["pipelineExecutionId"]

    moto_ext.set_execution_status("release-pipeline", execution, "InProgress")
    (summary,) = codepipeline.list_pipeline_executions(pipelineName="release-pipeline")["pipelineExecutionSummaries"]
    assert summary["status"] == "InProgress"

    with pytest.raises(ValueError, match="status must be one of"):
        moto_ext.set_execution_status("release-pipeline", execution, "Done")
    with pytest.raises(ValueError, match="has no execution"):
        moto_ext.set_execution_status("release-pipeline", "no-such-execution", "Failed")


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
    assert moto_ext._over_tls(statement) is None
    kept = moto_ext._over_tls(
        {
            "Effect": "Deny",
            "Condition": {"Bool": {"aws:SecureTransport": ["true"], "aws:MultiFactorAuthPresent": "true"}},
        }
    )
    assert kept == {"Effect": "Deny", "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}}}
