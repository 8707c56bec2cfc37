"""release_pipeline.drift: detection started on both production stacks where it can run, followed with
continuation tokens, drifted resources reported with secret-looking values hidden, BLOCK stopping the
change only after the report is sent."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.stub import Stubber

import local_aws
from release_pipeline import drift
from release_pipeline.drift import DriftDetectionConfig, StackDrift
from release_pipeline.errors import BadInputError, DriftBlockedError
from release_pipeline.jobs import SUMMARY_VARIABLE_LIMIT, JobResult
from tests.support.notifications import Inbox
from tests.unit.layer.test_config import environ

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient

NOTIFY = DriftDetectionConfig.from_env(environ(DriftDetectionConfig))
BLOCK = dataclasses.replace(NOTIFY, block_on_drift=True)
PRIMARY, SECONDARY = NOTIFY.stacks.regions.primary, NOTIFY.stacks.regions.secondary
STACK = NOTIFY.stacks.primary_stack
STACK_ID = f"arn:aws:cloudformation:{SECONDARY}:123456789012:stack/{STACK}/0a1b2c3d-0000-4000-8000-000000000000"
APP = json.dumps(
    {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "orders"}}},
    }
)
PASSWORD = "hunter2-very-secret"


def cfn(region: str) -> CloudFormationClient:
    client: CloudFormationClient = boto3.client("cloudformation", region_name=region)
    return client


def moto_regions(region: str) -> CloudFormationClient:
    return cfn(region)


def with_secondary(client: CloudFormationClient) -> Callable[[str], CloudFormationClient]:
    return lambda region: client if region == SECONDARY else cfn(region)


def deploy(*regions: str) -> None:
    for region in regions:
        cfn(region).create_stack(StackName=STACK, TemplateBody=APP)


def detect(
    token: dict[str, Any] | None = None,
    config: DriftDetectionConfig = NOTIFY,
    cloudformation_for: Callable[[str], CloudFormationClient] = moto_regions,
) -> JobResult:
    return drift.detect_drift(
        cloudformation_for=cloudformation_for,
        sns=boto3.client("sns", region_name=PRIMARY),
        config=config,
        token=token,
    )


def token_of(result: JobResult) -> dict[str, Any]:
    assert result.continuation_token is not None
    value: dict[str, Any] = json.loads(result.continuation_token)
    return value


@pytest.fixture
def inbox(aws: None) -> Inbox:
    boto3.client("sns", region_name=PRIMARY).create_topic(Name=NOTIFY.topic_arn.rsplit(":", 1)[1])
    return Inbox(NOTIFY.topic_arn)


@pytest.fixture
def stubbed() -> Iterator[tuple[CloudFormationClient, Stubber]]:
    """A secondary-Region client answering only what a test stubs: an unexpected call fails the test."""
    client = cfn(SECONDARY)
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


# -------------------------------------------------------------------------------------------------- start


def test_start_runs_a_detection_on_each_deployed_stack(aws: None) -> None:
    deploy(PRIMARY, SECONDARY)

    token = drift.start(moto_regions, NOTIFY)

    assert list(token) == ["detections"]  # the token carries only what cannot be read again
    assert set(token["detections"]) == {"primary", "secondary"}
    for role, region in (("primary", PRIMARY), ("secondary", SECONDARY)):
        status = cfn(region).describe_stack_drift_detection_status(StackDriftDetectionId=token["detections"][role])
        assert status["StackId"].split("/")[1] == STACK


def test_a_stack_not_deployed_or_only_a_placeholder_is_settled_without_a_detection(aws: None) -> None:
    deploy(PRIMARY)
    # a first release's CREATE change set leaves a REVIEW_IN_PROGRESS placeholder with no resources
    cfn(SECONDARY).create_change_set(StackName=STACK, ChangeSetName="cs", TemplateBody=APP, ChangeSetType="CREATE")

    token = drift.start(moto_regions, NOTIFY)

    assert token == {"detections": {"primary": token["detections"]["primary"]}}
    results, _ = drift.follow(moto_regions, NOTIFY, token)  # the placeholder is described again, not trusted
    assert results[1] == StackDrift("secondary", SECONDARY, STACK, "NOT_DEPLOYED", "not deployed yet")


def test_neither_stack_deployed_is_settled_at_once(inbox: Inbox) -> None:
    result = detect()

    assert result.continuation_token is None
    assert result.output_variables["DriftStatus"] == "NOT_DEPLOYED"
    assert result.summary == (
        f"primary {PRIMARY}: NOT_DEPLOYED (not deployed yet); secondary {SECONDARY}: NOT_DEPLOYED (not deployed yet)"
    )
    assert inbox.messages() == []


def test_a_stack_drift_detection_cannot_check_is_not_checked(
    aws: None, stubbed: tuple[CloudFormationClient, Stubber]
) -> None:
    """No DetectStackDrift is sent to a stack in ROLLBACK_COMPLETE (the stub would refuse the call)."""
    client, stubber = stubbed
    deploy(PRIMARY)
    stack = {"StackId": STACK_ID, "StackName": STACK, "StackStatus": "ROLLBACK_COMPLETE", "CreationTime": "2026-01-01"}
    stubber.add_response("describe_stacks", {"Stacks": [stack]}, {"StackName": STACK})

    token = drift.start(with_secondary(client), NOTIFY)

    assert token == {"detections": {"primary": token["detections"]["primary"]}}  # no detection, nothing settled


# ------------------------------------------------------------------------------------------------- follow


def test_a_detection_still_running_keeps_the_same_token_until_it_ends(inbox: Inbox) -> None:
    deploy(PRIMARY, SECONDARY)
    local_aws.set_detection_progress(1)

    first = detect()
    second = detect(token_of(first))

    assert first.summary == "Drift detection in progress"
    assert first.output_variables == {}
    assert second.continuation_token is None
    assert second.output_variables["DriftStatus"] == "IN_SYNC"
    assert inbox.messages() == []


def test_a_failed_detection_is_unknown_with_its_reason(inbox: Inbox) -> None:
    deploy(PRIMARY, SECONDARY)
    local_aws.fail_detection(STACK, SECONDARY, "Internal failure")

    result = detect()

    assert result.output_variables["DriftStatus"] == "UNKNOWN"
    assert f"secondary {SECONDARY}: UNKNOWN (detection failed: Internal failure)" in result.summary
    assert inbox.messages() == []


def test_a_failed_detection_that_still_found_drift_reports_the_drift(inbox: Inbox) -> None:
    deploy(PRIMARY, SECONDARY)
    local_aws.inject_drift(STACK, SECONDARY, "Queue", [_difference("/DelaySeconds", "0", "45")])
    local_aws.fail_detection(STACK, SECONDARY, "Some resources could not be checked", stack_drift_status="DRIFTED")

    result = detect()

    assert result.output_variables["DriftStatus"] == "DRIFTED"
    assert "detection failed: Some resources could not be checked" in result.summary
    assert len(inbox.messages()) == 1


def test_a_token_without_a_detection_for_a_checkable_stack_is_bad_input(aws: None) -> None:
    """A token claiming a stack settled (without a detection) while the stack can be checked is refused:
    drift detection is never skipped on a token's word."""
    deploy(PRIMARY, SECONDARY)
    with pytest.raises(BadInputError, match="holds no drift detection for the primary stack"):
        drift.follow(moto_regions, NOTIFY, {"detections": {}, "settled": {"primary": {"status": "IN_SYNC"}}})


def test_an_empty_detection_id_is_bad_input(aws: None) -> None:
    with pytest.raises(BadInputError, match="for the primary stack"):
        drift.follow(moto_regions, NOTIFY, {"detections": {"primary": ""}, "settled": {"secondary": {"status": "X"}}})


# ------------------------------------------------------------------------------------------- the report


def _difference(path: str, expected: str, actual: str) -> dict[str, str]:
    return {"PropertyPath": path, "ExpectedValue": expected, "ActualValue": actual, "DifferenceType": "NOT_EQUAL"}


def test_drift_is_reported_with_secret_looking_values_hidden_and_the_change_may_go_on(inbox: Inbox) -> None:
    deploy(PRIMARY, SECONDARY)
    local_aws.inject_drift(
        STACK,
        PRIMARY,
        "Queue",
        [
            _difference("/DelaySeconds", "0", "45"),
            _difference("/Tags/0/Value", "x", "y" * 500),
            _difference("/RedrivePolicy/DbPassword", "", PASSWORD),
        ],
    )

    result = detect()

    assert result.output_variables["DriftStatus"] == "DRIFTED"
    assert result.summary == f"primary {PRIMARY}: DRIFTED (1 resources); secondary {SECONDARY}: IN_SYNC"
    assert len(result.output_variables["Summary"]) <= SUMMARY_VARIABLE_LIMIT
    ((report, subject),) = inbox.messages()
    assert subject == f"Drift on production: {STACK}"
    assert "Policy: NOTIFY (the change may go on)" in report
    assert "MODIFIED Queue (AWS::SQS::Queue, " in report
    assert "/DelaySeconds: NOT_EQUAL expected '0' actual '45'" in report
    assert "/RedrivePolicy/DbPassword: NOT_EQUAL expected (hidden: the property may hold a secret) actual (hidden" in (
        report
    )
    assert PASSWORD not in report
    assert "y" * 200 not in report
    assert "'" + "y" * 199 + "…'" in report


def test_block_sends_the_report_then_stops_the_change(inbox: Inbox) -> None:
    deploy(PRIMARY, SECONDARY)
    local_aws.inject_drift(STACK, SECONDARY, "Queue", status="DELETED")

    with pytest.raises(DriftBlockedError) as raised:
        detect(config=BLOCK)

    assert str(raised.value).startswith("Drift found and DriftPolicy is BLOCK: ")
    assert f"secondary {SECONDARY}: DRIFTED (1 resources)" in str(raised.value)
    ((report, _),) = inbox.messages()
    assert "Policy: BLOCK (the change is stopped)" in report
    assert "DELETED Queue (AWS::SQS::Queue" in report


def test_block_lets_a_change_go_on_when_nothing_drifted(inbox: Inbox) -> None:
    deploy(PRIMARY, SECONDARY)

    result = detect(config=BLOCK)

    assert result.output_variables == {
        "DriftStatus": "IN_SYNC",
        "Summary": f"primary {PRIMARY}: IN_SYNC; secondary {SECONDARY}: IN_SYNC",
    }
    assert inbox.messages() == []


def test_every_page_of_drifted_resources_is_listed(aws: None, stubbed: tuple[CloudFormationClient, Stubber]) -> None:
    client, stubber = stubbed
    token = {"detections": {"secondary": "d-1"}}  # the primary stack is not deployed (described again)

    def drifted(logical_id: str) -> dict[str, Any]:
        return {
            "StackId": STACK_ID,
            "LogicalResourceId": logical_id,
            "ResourceType": "AWS::SQS::Queue",
            "StackResourceDriftStatus": "MODIFIED",
            "Timestamp": "2026-01-01T00:00:00Z",
        }

    stubber.add_response(
        "describe_stack_drift_detection_status",
        {
            "StackId": STACK_ID,
            "StackDriftDetectionId": "d-1",
            "StackDriftStatus": "DRIFTED",
            "DetectionStatus": "DETECTION_COMPLETE",
            "Timestamp": "2026-01-01T00:00:00Z",
        },
        {"StackDriftDetectionId": "d-1"},
    )
    filters = ["MODIFIED", "DELETED"]
    stubber.add_response(
        "describe_stack_resource_drifts",
        {"StackResourceDrifts": [drifted("One")], "NextToken": "more"},
        {"StackName": STACK, "StackResourceDriftStatusFilters": filters},
    )
    stubber.add_response(
        "describe_stack_resource_drifts",
        {"StackResourceDrifts": [drifted("Two")]},
        {"StackName": STACK, "StackResourceDriftStatusFilters": filters, "NextToken": "more"},
    )

    results, running = drift.follow(with_secondary(client), NOTIFY, token)

    assert not running
    assert results[0] == StackDrift("primary", PRIMARY, STACK, "NOT_DEPLOYED", "not deployed yet")
    assert [line.split(" (")[0] for line in results[1].resources] == ["MODIFIED One", "MODIFIED Two"]


@pytest.mark.parametrize(
    ("statuses", "worst"),
    [
        (("IN_SYNC", "DRIFTED"), "DRIFTED"),
        (("UNKNOWN", "DRIFTED"), "DRIFTED"),
        (("IN_SYNC", "UNKNOWN"), "UNKNOWN"),
        (("NOT_CHECKED", "IN_SYNC"), "NOT_CHECKED"),
        (("NOT_DEPLOYED", "IN_SYNC"), "IN_SYNC"),
        (("NOT_DEPLOYED", "NOT_DEPLOYED"), "NOT_DEPLOYED"),
    ],
)
def test_the_overall_status_is_the_worst(statuses: tuple[str, str], worst: str) -> None:
    results = [StackDrift(role, "r", STACK, status) for role, status in zip(("a", "b"), statuses, strict=True)]

    assert drift.overall(results) == worst


@pytest.mark.parametrize(
    ("path", "hidden"),
    [
        ("/Environment/Variables/API_URL", True),
        ("/MasterUserPassword", True),
        ("/Parameters/DbHost", True),
        ("/AccessToken", True),
        ("/SSEKMSKeyId", False),
        ("/KmsMasterKey", True),
        ("/DelaySeconds", False),
        ("/Tags/0/Value", False),
        ("/Environment", True),  # a Lambda function's whole Environment added or removed
        ("/ContainerDefinitions/0/Environment", True),  # an ECS container's variable list
        ("/Variables", True),
        ("/EnvironmentName", False),
    ],
)
def test_which_property_paths_are_taken_for_secrets(path: str, hidden: bool) -> None:
    assert bool(drift.SENSITIVE_PROPERTY.search(path)) is hidden
