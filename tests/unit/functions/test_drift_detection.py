"""drift-detection: DetectStackDrift on both production stacks, or on every target of the deployment map
when DEPLOYMENT_MAP_PATH names one, followed with continuation tokens."""

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
from release_pipeline.jobs import CONTINUATION_TOKEN_LIMIT
from release_pipeline.values import Credentials
from tests.support.events import continuation_of, load_event
from tests.support.jobs import run_job, run_until_final
from tests.support.notifications import Inbox
from tests.support.solution import REQUIRED_PARAMETERS, apply_environment, resolved, source_zip

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_s3 import S3Client

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


# ------------------------------------------------------------------------------------ deployment map

OTHER_ACCOUNT = "222233334444"
WEST = "us-west-2"
MAP_PATH = "deploy/map.json"
DEPLOY_ROLE = f"arn:aws:iam::{OTHER_ACCOUNT}:role/multi-region-deploy-{DEFAULT_ACCOUNT_ID}"
# Three waves, three Regions, two accounts; every target takes the application stack's name.
MAP = {
    "Waves": [
        {"Name": "canary", "Targets": [{"Region": WEST, "ParameterFile": "params/all.json"}]},
        {
            "Name": "early",
            "Targets": [{"Region": SECONDARY, "Account": OTHER_ACCOUNT, "ParameterFile": "params/all.json"}],
        },
        {"Name": "rest", "Targets": [{"Region": PRIMARY, "ParameterFile": "params/all.json"}]},
    ]
}
CANARY = f"{DEFAULT_ACCOUNT_ID}/{WEST}/{STACK}"
EARLY = f"{OTHER_ACCOUNT}/{SECONDARY}/{STACK}"
REST = f"{DEFAULT_ACCOUNT_ID}/{PRIMARY}/{STACK}"


@pytest.fixture
def mapped(
    environment: Callable[[str], None], monkeypatch: pytest.MonkeyPatch, s3: S3Client, artifact_bucket: str
) -> Callable[[str], dict[str, Any]]:
    """The function's environment for a DriftPolicy with DEPLOYMENT_MAP_PATH set, and the map job's event
    with its source artifact (the map and its parameter file) in the artifact bucket."""

    def apply(policy: str) -> dict[str, Any]:
        environment(policy)
        monkeypatch.setenv("DEPLOYMENT_MAP_PATH", MAP_PATH)
        event = load_event("drift-detection", "deployment-map")
        location = event["CodePipeline.job"]["data"]["inputArtifacts"][0]["location"]["s3Location"]
        body = source_zip({MAP_PATH: json.dumps(MAP), "params/all.json": "{}", "app/template.yaml": APP_TEMPLATE})
        s3.put_object(Bucket=artifact_bucket, Key=location["objectKey"], Body=body)
        return event

    return apply


def other_account(region: str) -> CloudFormationClient:
    """CloudFormation in the other account, through the deploy role its bootstrap stack created."""
    return clients.cloudformation_for_targets(PRIMARY, "test")(region, DEPLOY_ROLE)


@pytest.fixture
def assumed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every role the handler assumes, as (role ARN, session name)."""
    calls: list[tuple[str, str]] = []
    assume = clients.assume_role

    def recording(region: str, role_arn: str, session_name: str) -> Credentials:
        calls.append((role_arn, session_name))
        return assume(region, role_arn, session_name)

    monkeypatch.setattr(clients, "assume_role", recording)
    return calls


@pytest.fixture
def target_calls(monkeypatch: pytest.MonkeyPatch) -> CfnCalls:
    """Every CloudFormation call the handler makes to the targets, as (Region, operation, parameters)."""
    calls: CfnCalls = []
    make = clients.cloudformation

    def recording(region: str, credentials: Credentials | None = None) -> CloudFormationClient:
        client = make(region, credentials)

        def record(model: Any, params: dict[str, Any], **_: Any) -> None:
            calls.append((region, model.name, dict(params.get("body", {}))))

        client.meta.events.register("before-call.cloudformation", record)
        return client

    monkeypatch.setattr(clients, "cloudformation", recording)
    return calls


def test_map_drift_in_another_account_under_block_fails_the_job_naming_the_target_and_its_wave(
    mapped: Callable[[str], dict[str, Any]], inbox: Inbox, lambda_context: FakeLambdaContext
) -> None:
    """GIVEN a map of three waves over three Regions and two accounts, and the other account's queue
    changed by hand WHEN the policy is BLOCK THEN the job fails naming that target, after one report that
    shows it under its wave."""
    event = mapped("BLOCK")
    deploy(WEST)
    deploy(PRIMARY)
    other_account(SECONDARY).create_stack(StackName=STACK, TemplateBody=APP_TEMPLATE)
    local_aws.inject_drift(STACK, SECONDARY, "Queue", QUEUE_DRIFT, account_id=OTHER_ACCOUNT)

    result = run_once(event, lambda_context)

    message = failure_details(result)["message"]
    assert message == (
        f"Drift found and DriftPolicy is BLOCK: 3 targets: 1 DRIFTED, 2 IN_SYNC; {EARLY}: DRIFTED (1 resources)"
    )
    assert not [r for r in local_aws.job_results() if r.status == "Succeeded"]
    [(report, subject)] = inbox.messages()
    assert subject == "Drift on production: 1 of 3 targets"
    assert f"Wave 2 early: 1 target: 1 DRIFTED\n\n== {EARLY}: DRIFTED (1 resources)" in report
    assert "/DelaySeconds: NOT_EQUAL expected '0' actual '45'" in report
    assert f"== {CANARY}: IN_SYNC" in report
    assert f"== {REST}: IN_SYNC" in report


def test_map_detection_is_followed_over_several_invocations_through_the_deploy_role(
    mapped: Callable[[str], dict[str, Any]],
    inbox: Inbox,
    lambda_context: FakeLambdaContext,
    assumed: list[tuple[str, str]],
    target_calls: CfnCalls,
) -> None:
    """GIVEN detection takes two status checks and the canary's stack is not deployed yet THEN each
    deployed target gets one detection, in its Region and (for the other account) through its deploy role;
    every token is within CodePipeline's limit; the last result carries the outputs."""
    event = mapped("NOTIFY")
    deploy(PRIMARY)
    other_account(SECONDARY).create_stack(StackName=STACK, TemplateBody=APP_TEMPLATE)
    local_aws.set_detection_progress(2)
    assumed.clear()  # the test's own setup reached the other account too
    target_calls.clear()

    results = run_to_completion(event, lambda_context)

    assert len(results) == 3
    for waiting in results[:-1]:
        assert waiting.continuation_token is not None
        assert len(waiting.continuation_token) <= CONTINUATION_TOKEN_LIMIT
        assert waiting.output_variables == {}
    assert results[0].continuation_token == results[1].continuation_token
    last = results[-1]
    assert last.status == "Succeeded"
    assert last.output_variables == {"DriftStatus": "IN_SYNC", "Summary": "3 targets: 2 IN_SYNC, 1 NOT_DEPLOYED"}
    assert sorted(detections(target_calls)) == sorted([SECONDARY, PRIMARY])
    assert [role for role, _ in assumed] == [DEPLOY_ROLE] * 3  # once an invocation
    assert all(session.startswith("drift-detection-") for _, session in assumed)
    assert inbox.messages() == []


def test_an_empty_map_path_is_the_two_production_stacks(
    environment: Callable[[str], None], monkeypatch: pytest.MonkeyPatch, lambda_context: FakeLambdaContext
) -> None:
    environment("NOTIFY")
    monkeypatch.setenv("DEPLOYMENT_MAP_PATH", "")
    deploy_both()

    result = run_once(load_event("drift-detection", "job"), lambda_context)

    assert result.output_variables == {
        "DriftStatus": "IN_SYNC",
        "Summary": f"primary {PRIMARY}: IN_SYNC; secondary {SECONDARY}: IN_SYNC",
    }


def test_a_map_path_not_in_the_source_fails_the_job_naming_it(
    mapped: Callable[[str], dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: FakeLambdaContext,
    target_calls: CfnCalls,
) -> None:
    event = mapped("NOTIFY")
    monkeypatch.setenv("DEPLOYMENT_MAP_PATH", "deploy/missing.json")
    deploy(PRIMARY)

    result = run_once(event, lambda_context)

    assert "no deployment map at 'deploy/missing.json' (DEPLOYMENT_MAP_PATH)" in failure_details(result)["message"]
    assert detections(target_calls) == []
