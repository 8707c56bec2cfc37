"""drift-detection: DetectStackDrift on both production stacks, followed with continuation tokens."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto.core.models import DEFAULT_ACCOUNT_ID

import local_aws
from local_aws import FakeLambdaContext
from release_pipeline import clients
from tests.support.events import continuation_of, load_event
from tests.support.jobs import run_job, run_until_final
from tests.support.notifications import Inbox
from tests.support.solution import REQUIRED_PARAMETERS, apply_environment, resolved

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient

pytestmark = pytest.mark.usefixtures("aws")

PRIMARY = "us-east-1"
SECONDARY = REQUIRED_PARAMETERS["SecondaryRegion"]
STACK = REQUIRED_PARAMETERS["ApplicationStackName"]
TOPIC = "release-notifications"
TOPIC_ARN = f"arn:aws:sns:{PRIMARY}:{DEFAULT_ACCOUNT_ID}:{TOPIC}"
APP_TEMPLATE = json.dumps(
    {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "orders", "DelaySeconds": 0}},
        },
    }
)
QUEUE_DRIFT = [
    {"PropertyPath": "/DelaySeconds", "ExpectedValue": "0", "ActualValue": "45", "DifferenceType": "NOT_EQUAL"}
]

CfnCalls = list[tuple[str, str, dict[str, Any]]]


# ------------------------------------------------------------------------------------------- helpers


def cfn(region: str) -> CloudFormationClient:
    return boto3.client("cloudformation", region_name=region)


def deploy(region: str, name: str = STACK) -> str:
    """A production stack in CREATE_COMPLETE; returns its id."""
    return cfn(region).create_stack(StackName=name, TemplateBody=APP_TEMPLATE)["StackId"]


def deploy_both() -> None:
    """Both production stacks in CREATE_COMPLETE."""
    deploy(PRIMARY)
    deploy(SECONDARY)


def placeholder(region: str, name: str = STACK) -> None:
    """A never-executed CREATE change set: the stack exists only as REVIEW_IN_PROGRESS."""
    cfn(region).create_change_set(
        StackName=name, ChangeSetName="pipeline-first", ChangeSetType="CREATE", TemplateBody=APP_TEMPLATE
    )


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Set the function's environment as template.yaml wires it, for a DriftPolicy."""

    def apply(policy: str) -> None:
        solution = resolved(region=PRIMARY, physical={"NotificationTopic": {"Ref": TOPIC_ARN}}, DriftPolicy=policy)
        apply_environment(monkeypatch, "DriftDetectionFunction", solution)

    return apply


@pytest.fixture(autouse=True)
def inbox(aws: None) -> Inbox:
    """The notification topic (the ARN the template's environment names), and what its subscribers get."""
    arn: str = boto3.client("sns", region_name=PRIMARY).create_topic(Name=TOPIC)["TopicArn"]
    assert arn == TOPIC_ARN
    return Inbox(arn)


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """The function must never sleep-poll: any sleep fails the test."""

    def refuse(seconds: float) -> None:
        raise AssertionError(f"the handler slept for {seconds}s")

    monkeypatch.setattr(time, "sleep", refuse)


@pytest.fixture
def cfn_calls(monkeypatch: pytest.MonkeyPatch) -> CfnCalls:
    """Every CloudFormation call the handler makes, as (Region, operation, parameters)."""
    calls: CfnCalls = []
    make = clients.cloudformation

    def recording(region: str) -> CloudFormationClient:
        client = make(region)

        def record(model: Any, params: dict[str, Any], **_: Any) -> None:
            calls.append((region, model.name, dict(params.get("body", {}))))

        client.meta.events.register("before-call.cloudformation", record)
        return client

    monkeypatch.setattr(clients, "cloudformation", recording)
    return calls


def detections(calls: CfnCalls) -> list[str]:
    return [region for region, operation, _ in calls if operation == "DetectStackDrift"]


def run_once(event: dict[str, Any], context: FakeLambdaContext) -> local_aws.ReportedJobResult:
    return run_job("drift-detection", event, context)


def failure_details(result: local_aws.ReportedJobResult) -> dict[str, Any]:
    """The details of a failed result (asserting it failed)."""
    assert result.status == "Failed"
    assert result.failure_details is not None
    return result.failure_details


def run_to_completion(event: dict[str, Any], context: FakeLambdaContext) -> list[local_aws.ReportedJobResult]:
    """Invoke, then re-invoke with each continuation token as CodePipeline would; returns the results."""
    return run_until_final("drift-detection", event, context)


# --------------------------------------------------------------------------------------------- tests


def test_in_sync_stacks_report_in_sync_without_a_notification(
    environment: Callable[[str], None], inbox: Inbox, lambda_context: FakeLambdaContext, cfn_calls: CfnCalls
) -> None:
    environment("BLOCK")
    deploy_both()

    result = run_once(load_event("drift-detection", "job"), lambda_context)

    assert result.status == "Succeeded"
    assert result.continuation_token is None
    assert result.output_variables["DriftStatus"] == "IN_SYNC"
    assert "primary us-east-1: IN_SYNC" in result.output_variables["Summary"]
    assert "secondary eu-west-1: IN_SYNC" in result.output_variables["Summary"]
    assert sorted(detections(cfn_calls)) == sorted([PRIMARY, SECONDARY])
    assert inbox.messages() == []


def test_drift_under_notify_succeeds_and_reports_the_drifted_resource(
    environment: Callable[[str], None], inbox: Inbox, lambda_context: FakeLambdaContext
) -> None:
    """GIVEN the secondary queue's DelaySeconds changed by hand WHEN the policy is NOTIFY
    THEN the job succeeds with DriftStatus DRIFTED and one report names the resource and the difference."""
    environment("NOTIFY")
    deploy_both()
    local_aws.inject_drift(STACK, SECONDARY, "Queue", QUEUE_DRIFT)

    result = run_once(load_event("drift-detection", "job"), lambda_context)

    assert result.status == "Succeeded"
    assert result.output_variables["DriftStatus"] == "DRIFTED"
    assert "secondary eu-west-1: DRIFTED (1 resources)" in result.output_variables["Summary"]
    assert "primary us-east-1: IN_SYNC" in result.output_variables["Summary"]
    [(message, subject)] = inbox.messages()
    assert subject is not None
    assert STACK in subject
    assert "MODIFIED Queue (AWS::SQS::Queue" in message
    assert "/DelaySeconds: NOT_EQUAL expected '0' actual '45'" in message
    assert "NOTIFY" in message
    assert "== primary stack demo-app: primary us-east-1: IN_SYNC" in message


def test_drift_under_block_fails_the_job_and_still_sends_the_report(
    environment: Callable[[str], None], inbox: Inbox, lambda_context: FakeLambdaContext
) -> None:
    environment("BLOCK")
    deploy_both()
    local_aws.inject_drift(STACK, SECONDARY, "Queue", QUEUE_DRIFT)

    result = run_once(load_event("drift-detection", "job"), lambda_context)

    message = failure_details(result)["message"]
    assert "Drift" in message
    assert "BLOCK" in message
    assert "secondary eu-west-1: DRIFTED" in message
    assert not [r for r in local_aws.job_results() if r.status == "Succeeded"]
    [(report, _)] = inbox.messages()
    assert "/DelaySeconds: NOT_EQUAL expected '0' actual '45'" in report
    assert "BLOCK" in report


def test_missing_and_placeholder_stacks_are_not_deployed_not_drift(
    environment: Callable[[str], None], inbox: Inbox, lambda_context: FakeLambdaContext, cfn_calls: CfnCalls
) -> None:
    """GIVEN the primary is a REVIEW_IN_PROGRESS placeholder and the secondary does not exist
    THEN both are NOT_DEPLOYED, nothing is detected, and even BLOCK lets the job succeed."""
    environment("BLOCK")
    placeholder(PRIMARY)

    result = run_once(load_event("drift-detection", "job"), lambda_context)

    assert result.status == "Succeeded"
    assert result.output_variables["DriftStatus"] == "NOT_DEPLOYED"
    summary = result.output_variables["Summary"]
    assert "primary us-east-1: NOT_DEPLOYED" in summary
    assert "secondary eu-west-1: NOT_DEPLOYED" in summary
    assert detections(cfn_calls) == []
    assert inbox.messages() == []


def test_one_stack_not_deployed_does_not_hide_the_others_drift(
    environment: Callable[[str], None], inbox: Inbox, lambda_context: FakeLambdaContext, cfn_calls: CfnCalls
) -> None:
    environment("NOTIFY")
    deploy(SECONDARY)
    local_aws.inject_drift(STACK, SECONDARY, "Queue", QUEUE_DRIFT)

    result = run_once(load_event("drift-detection", "job"), lambda_context)

    assert result.status == "Succeeded"
    assert result.output_variables["DriftStatus"] == "DRIFTED"
    assert "primary us-east-1: NOT_DEPLOYED" in result.output_variables["Summary"]
    assert detections(cfn_calls) == [SECONDARY]
    assert len(inbox.messages()) == 1


@pytest.mark.parametrize(
    ("status", "expected", "detected"),
    [
        ("ROLLBACK_COMPLETE", "NOT_CHECKED", False),
        ("UPDATE_ROLLBACK_IN_PROGRESS", "NOT_CHECKED", False),
        ("UPDATE_ROLLBACK_FAILED", "IN_SYNC", True),
        ("UPDATE_ROLLBACK_COMPLETE", "IN_SYNC", True),
    ],
)
def test_stack_status_decides_whether_drift_can_be_checked(
    environment: Callable[[str], None],
    inbox: Inbox,
    lambda_context: FakeLambdaContext,
    cfn_calls: CfnCalls,
    status: str,
    expected: str,
    detected: bool,
) -> None:
    environment("BLOCK")
    deploy(PRIMARY)
    local_aws.set_stack_status(deploy(SECONDARY), SECONDARY, status)

    result = run_once(load_event("drift-detection", "job"), lambda_context)

    assert result.status == "Succeeded"
    summary = result.output_variables["Summary"]
    assert f"secondary eu-west-1: {expected}" in summary
    if not detected:
        assert f"stack is {status}" in summary
    assert (SECONDARY in detections(cfn_calls)) is detected
    assert PRIMARY in detections(cfn_calls)
    assert inbox.messages() == []


def test_detection_in_progress_continues_with_a_token_and_finishes_on_reinvocation(
    environment: Callable[[str], None], lambda_context: FakeLambdaContext, cfn_calls: CfnCalls
) -> None:
    """GIVEN detection takes two status checks WHEN the job runs THEN the first results carry only a
    continuation token, detection starts once per stack, and the last result carries the outputs."""
    environment("NOTIFY")
    deploy_both()
    local_aws.set_detection_progress(2)
    event = load_event("drift-detection", "job")

    results = run_to_completion(event, lambda_context)

    assert len(results) >= 2
    first = results[0]
    assert first.status == "Succeeded"
    assert first.continuation_token
    assert first.output_variables == {}
    for result in results[1:-1]:
        assert result.output_variables == {}
    last = results[-1]
    assert last.status == "Succeeded"
    assert last.continuation_token is None
    assert last.output_variables["DriftStatus"] == "IN_SYNC"
    assert sorted(detections(cfn_calls)) == sorted([PRIMARY, SECONDARY])
    assert len(local_aws.job_results()) == len(results)


def test_drift_found_after_continuation_is_reported_once(
    environment: Callable[[str], None], inbox: Inbox, lambda_context: FakeLambdaContext
) -> None:
    environment("BLOCK")
    deploy_both()
    local_aws.inject_drift(STACK, SECONDARY, "Queue", QUEUE_DRIFT)
    local_aws.set_detection_progress(1)
    event = load_event("drift-detection", "job")

    results = run_to_completion(event, lambda_context)

    assert len(results) == 2
    assert results[0].continuation_token
    last = results[-1]
    assert "BLOCK" in failure_details(last)["message"]
    assert len(inbox.messages()) == 1


def test_failed_detection_is_unknown_with_its_reason_and_not_blocked(
    environment: Callable[[str], None], inbox: Inbox, lambda_context: FakeLambdaContext
) -> None:
    environment("BLOCK")
    deploy_both()
    local_aws.fail_detection(STACK, SECONDARY, "Failed to detect drift on resource Queue: Rate exceeded")

    result = run_once(load_event("drift-detection", "job"), lambda_context)

    assert result.status == "Succeeded"
    assert result.output_variables["DriftStatus"] == "UNKNOWN"
    summary = result.output_variables["Summary"]
    assert "secondary eu-west-1: UNKNOWN" in summary
    assert "detection failed: Failed to detect drift on resource Queue: Rate exceeded" in summary
    assert inbox.messages() == []


@pytest.mark.parametrize(
    "token",
    ["not json", "[1, 2]", '{"detections": {}, "settled": {"primary": {"status": "IN_SYNC"}}}'],
    ids=["not-json", "not-an-object", "secondary-missing-from-token"],
)
def test_corrupt_continuation_token_fails_the_job(
    environment: Callable[[str], None], inbox: Inbox, lambda_context: FakeLambdaContext, cfn_calls: CfnCalls, token: str
) -> None:
    environment("NOTIFY")
    deploy_both()
    event = continuation_of(load_event("drift-detection", "job"), token)

    result = run_once(event, lambda_context)

    assert "continuation token" in failure_details(result)["message"]
    assert detections(cfn_calls) == []
    assert inbox.messages() == []


def test_token_claiming_both_stacks_settled_does_not_skip_detection(
    environment: Callable[[str], None], lambda_context: FakeLambdaContext, cfn_calls: CfnCalls
) -> None:
    """GIVEN a continuation token that says both deployed stacks are settled (no detection ids) THEN the
    job fails naming the token: the stacks are described again, never reported IN_SYNC unchecked."""
    environment("NOTIFY")
    deploy_both()
    settled = {"status": "IN_SYNC", "detail": ""}
    token = json.dumps({"detections": {}, "settled": {"primary": settled, "secondary": settled}})
    event = continuation_of(load_event("drift-detection", "job"), token)

    result = run_once(event, lambda_context)

    assert "continuation token holds no drift detection for the primary stack" in failure_details(result)["message"]
    assert not [r for r in local_aws.job_results() if r.status == "Succeeded"]


def test_token_naming_a_detection_of_another_stack_fails_the_job(
    environment: Callable[[str], None], lambda_context: FakeLambdaContext
) -> None:
    """GIVEN a token whose detection ids are of another stack (say an in-sync one) THEN the job fails."""
    environment("NOTIFY")
    deploy_both()
    deploy(PRIMARY, "someone-elses")
    detection = cfn(PRIMARY).detect_stack_drift(StackName="someone-elses")["StackDriftDetectionId"]
    token = json.dumps({"detections": {"primary": detection, "secondary": detection}})
    event = continuation_of(load_event("drift-detection", "job"), token)

    result = run_once(event, lambda_context)

    assert "drift detection of another stack" in failure_details(result)["message"]
    assert not [r for r in local_aws.job_results() if r.status == "Succeeded"]


def test_token_naming_an_unknown_detection_fails_the_job(
    environment: Callable[[str], None], lambda_context: FakeLambdaContext
) -> None:
    environment("NOTIFY")
    deploy_both()
    token = json.dumps({"detections": {"primary": "no-such-id", "secondary": "no-such-id"}, "settled": {}})
    event = continuation_of(load_event("drift-detection", "job"), token)

    result = run_once(event, lambda_context)

    assert "no-such-id" in failure_details(result)["message"]
    assert not [r for r in local_aws.job_results() if r.status == "Succeeded"]


def test_missing_environment_fails_the_job_naming_the_variable(
    environment: Callable[[str], None], lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment("NOTIFY")
    monkeypatch.delenv("TOPIC_ARN")

    result = run_once(load_event("drift-detection", "job"), lambda_context)

    details = failure_details(result)
    assert details["type"] == "ConfigurationError"
    assert "TOPIC_ARN" in details["message"]


def test_sample_continuation_event_with_an_empty_token_fails_naming_the_token(
    environment: Callable[[str], None], lambda_context: FakeLambdaContext
) -> None:
    environment("NOTIFY")
    deploy_both()

    result = run_once(load_event("drift-detection", "continuation"), lambda_context)

    assert "continuation token" in failure_details(result)["message"]


def test_drift_on_a_property_that_may_hold_a_secret_never_shows_its_value(
    environment: Callable[[str], None], inbox: Inbox, lambda_context: FakeLambdaContext
) -> None:
    """GIVEN someone changed a secret-looking property by hand WHEN drift is reported THEN the email names
    the property and the kind of difference, never the expected or the actual value."""
    environment("NOTIFY")
    deploy_both()
    secret = [
        {
            "PropertyPath": "/Tags/0/ApiToken",
            "ExpectedValue": "expected-s3cr3t-value",
            "ActualValue": "actual-s3cr3t-value",
            "DifferenceType": "NOT_EQUAL",
        },
        {
            "PropertyPath": "/DelaySeconds",
            "ExpectedValue": "0",
            "ActualValue": "x" * 500,
            "DifferenceType": "NOT_EQUAL",
        },
    ]
    local_aws.inject_drift(STACK, SECONDARY, "Queue", secret)

    result = run_once(load_event("drift-detection", "job"), lambda_context)

    assert result.status == "Succeeded"
    [(message, _)] = inbox.messages()
    assert "/Tags/0/ApiToken: NOT_EQUAL expected (hidden" in message
    assert "s3cr3t" not in message
    assert "x" * 199 + "…" in message
    assert "x" * 201 not in message
