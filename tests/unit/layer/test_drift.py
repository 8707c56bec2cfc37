"""release_pipeline.drift: detection started on both production stacks, or on every target of a
deployment map, where it can run, followed with continuation tokens, drifted resources reported with
secret-looking values hidden, BLOCK stopping the change only after the report is sent."""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

import local_aws
from release_pipeline import clients, drift, rollout
from release_pipeline.drift import DriftDetectionConfig, StackDrift
from release_pipeline.errors import ArtifactError, BadInputError, ConfigurationError, DriftBlockedError
from release_pipeline.jobs import CONTINUATION_TOKEN_LIMIT, SUMMARY_VARIABLE_LIMIT, Job, JobResult
from tests.support.events import continuation_of, load_event
from tests.support.notifications import Inbox
from tests.support.solution import source_zip
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


# ------------------------------------------------------------------------------- a deployment map's targets

HOME = "123456789012"  # the account moto serves by default, and the function's (its ARN's) account
OTHER = "222233334444"
FUNCTION_ARN = f"arn:aws:lambda:{PRIMARY}:{HOME}:function:drift-detection"
WEST = "us-west-2"
MAP_PATH = "deploy/map.json"
MAPPED = dataclasses.replace(NOTIFY, deployment_map_path=MAP_PATH)
MAPPED_BLOCK = dataclasses.replace(MAPPED, block_on_drift=True)
# Three waves over three Regions and two accounts; the same stack name in eu-west-1 in both accounts.
WAVES = {
    "canary": [{"Region": WEST}],
    "early": [{"Region": SECONDARY, "Account": OTHER}, {"Region": SECONDARY}],
    "rest": [{"Region": PRIMARY}, {"Region": WEST, "Account": OTHER}],
}
CANARY, EARLY_OTHER, EARLY_HOME, REST_HOME, REST_OTHER = ALL = (
    f"{HOME}/{WEST}/{STACK}",
    f"{OTHER}/{SECONDARY}/{STACK}",
    f"{HOME}/{SECONDARY}/{STACK}",
    f"{HOME}/{PRIMARY}/{STACK}",
    f"{OTHER}/{WEST}/{STACK}",
)
TARGET_TEMPLATE = json.dumps({"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}})

Event = dict[str, Any]


def deployment_map(waves: Mapping[str, list[dict[str, str]]]) -> str:
    """A map of these waves (each deploying up to 40 targets at once, given 5 minutes each, so 100 fit in a
    day's rollout and in one execution's history)."""
    return json.dumps(
        {
            "Waves": [
                {
                    "Name": name,
                    "MaxConcurrency": 40,
                    "DeployTimeoutInMinutes": 5,
                    "Targets": [{**target, "ParameterFile": "params.json"} for target in targets],
                }
                for name, targets in waves.items()
            ]
        }
    )


def with_source(raw_map: str) -> Event:
    """The map job's sample event, its source artifact (the map and its parameter file) in the bucket."""
    event = load_event("drift-detection", "deployment-map")
    location = event["CodePipeline.job"]["data"]["inputArtifacts"][0]["location"]["s3Location"]
    s3 = boto3.client("s3", region_name=PRIMARY)
    s3.create_bucket(Bucket=location["bucketName"])
    body = source_zip({MAP_PATH: raw_map, "params.json": "{}"})
    s3.put_object(Bucket=location["bucketName"], Key=location["objectKey"], Body=body)
    return event


@pytest.fixture
def job(aws: None) -> Event:
    """The job on the map of WAVES."""
    return with_source(deployment_map(WAVES))


class Fleet:
    """The targets' stacks as the function reaches them: one client per Region and deploy role, made
    once for the test, as one invocation makes them."""

    def __init__(self) -> None:
        self.cfn: drift.CloudFormationFor = clients.cloudformation_for_targets(PRIMARY, "drift-test")

    def reach(self, region: str, account: str = HOME) -> CloudFormationClient:
        """A client in ``region`` of ``account`` (through the deploy role the solution assumes there)."""
        return self.cfn(region, rollout.deploy_role_arn(account, HOME, "aws"))

    def deploy(self, *keys: str) -> None:
        for key in keys:
            account, region, stack = key.split("/")
            self.reach(region, account).create_stack(StackName=stack, TemplateBody=TARGET_TEMPLATE)

    def detect(
        self,
        event: Event,
        config: DriftDetectionConfig = MAPPED,
        cloudformation_for: drift.CloudFormationFor | None = None,
    ) -> JobResult:
        return drift.detect_drift_on_targets(
            job=Job(event),
            job_s3=boto3.client("s3", region_name=PRIMARY),
            cloudformation_for=cloudformation_for or self.cfn,
            sns=boto3.client("sns", region_name=PRIMARY),
            config=config,
            function_arn=FUNCTION_ARN,
        )


@pytest.fixture
def fleet(aws: None) -> Fleet:
    return Fleet()


def again(event: Event, result: JobResult) -> Event:
    """The job CodePipeline sends back with the result's continuation token."""
    assert result.continuation_token is not None
    return continuation_of(event, result.continuation_token)


def test_drift_in_another_accounts_target_is_reported_with_its_label_and_wave(
    inbox: Inbox, job: Event, fleet: Fleet
) -> None:
    """GIVEN drift on the other account's eu-west-1 stack, beside an in-sync stack of the same name and
    Region in the solution's account THEN only the other account's target is DRIFTED, named with its
    account, Region and stack under its wave."""
    fleet.deploy(*ALL)
    local_aws.inject_drift(STACK, SECONDARY, "Queue", [_difference("/DelaySeconds", "0", "45")], account_id=OTHER)

    result = fleet.detect(job)

    assert result.continuation_token is None
    assert result.output_variables == {
        "DriftStatus": "DRIFTED",
        "Summary": f"5 targets: 1 DRIFTED, 4 IN_SYNC; drifted: {EARLY_OTHER}",
    }
    assert result.summary == f"5 targets: 1 DRIFTED, 4 IN_SYNC; {EARLY_OTHER}: DRIFTED (1 resources)"
    ((report, subject),) = inbox.messages()
    assert subject == "Drift on production: 1 of 5 targets"
    assert "Policy: NOTIFY (the change may go on)" in report
    sections = report.split("\nWave ")
    assert [section.split("\n")[0] for section in sections[1:]] == [
        "1 canary: 1 target: 1 IN_SYNC",
        "2 early: 2 targets: 1 DRIFTED, 1 IN_SYNC",
        "3 rest: 2 targets: 2 IN_SYNC",
    ]
    early = sections[2]
    assert f"== {EARLY_OTHER}: DRIFTED (1 resources)\n   MODIFIED Queue (AWS::SQS::Queue" in early
    assert "/DelaySeconds: NOT_EQUAL expected '0' actual '45'" in early
    assert f"== {EARLY_HOME}: IN_SYNC" in early


def test_targets_not_deployed_or_only_placeholders_are_not_deployed_and_get_no_detection(
    inbox: Inbox, job: Event, fleet: Fleet
) -> None:
    fleet.deploy(CANARY, REST_HOME)
    fleet.reach(SECONDARY, OTHER).create_change_set(
        StackName=STACK, ChangeSetName="cs", TemplateBody=TARGET_TEMPLATE, ChangeSetType="CREATE"
    )
    local_aws.set_detection_progress(1)

    first = fleet.detect(job, config=MAPPED_BLOCK)
    last = fleet.detect(again(job, first), config=MAPPED_BLOCK)

    slots = drift.unpack_detections(token_of(first)["detections"])
    assert [slot is not None for slot in slots] == [True, False, False, True, False]
    assert last.output_variables == {"DriftStatus": "IN_SYNC", "Summary": "5 targets: 2 IN_SYNC, 3 NOT_DEPLOYED"}
    assert inbox.messages() == []


def test_no_target_deployed_is_not_deployed_at_once(inbox: Inbox, job: Event, fleet: Fleet) -> None:
    result = fleet.detect(job, config=MAPPED_BLOCK)

    assert result.continuation_token is None
    assert result.output_variables == {"DriftStatus": "NOT_DEPLOYED", "Summary": "5 targets: 5 NOT_DEPLOYED"}
    assert inbox.messages() == []


def test_block_fails_on_drift_after_sending_the_report(inbox: Inbox, job: Event, fleet: Fleet) -> None:
    fleet.deploy(*ALL)
    local_aws.inject_drift(STACK, WEST, "Queue", status="DELETED", account_id=OTHER)

    with pytest.raises(DriftBlockedError) as raised:
        fleet.detect(job, config=MAPPED_BLOCK)

    assert str(raised.value) == (
        f"Drift found and DriftPolicy is BLOCK: 5 targets: 1 DRIFTED, 4 IN_SYNC; {REST_OTHER}: DRIFTED (1 resources)"
    )
    ((report, _),) = inbox.messages()
    assert "Policy: BLOCK (the change is stopped)" in report
    assert f"== {REST_OTHER}: DRIFTED (1 resources)\n   DELETED Queue" in report


def test_block_lets_unknown_not_checked_and_not_deployed_targets_go_on(inbox: Inbox, job: Event, fleet: Fleet) -> None:
    """GIVEN under BLOCK one target whose detection failed, one that cannot be checked and one not
    deployed THEN the job succeeds with the worst of them, UNKNOWN, each named with its reason."""
    fleet.deploy(CANARY, EARLY_OTHER, REST_HOME, REST_OTHER)
    local_aws.fail_detection(STACK, SECONDARY, "Internal failure", account_id=OTHER)
    local_aws.set_stack_status(STACK, PRIMARY, "UPDATE_ROLLBACK_IN_PROGRESS")

    result = fleet.detect(job, config=MAPPED_BLOCK)

    assert result.output_variables == {
        "DriftStatus": "UNKNOWN",
        "Summary": "5 targets: 1 UNKNOWN, 1 NOT_CHECKED, 2 IN_SYNC, 1 NOT_DEPLOYED",
    }
    assert result.summary == (
        "5 targets: 1 UNKNOWN, 1 NOT_CHECKED, 2 IN_SYNC, 1 NOT_DEPLOYED; "
        f"{EARLY_OTHER}: UNKNOWN (detection failed: Internal failure); "
        f"{REST_HOME}: NOT_CHECKED (stack is UPDATE_ROLLBACK_IN_PROGRESS)"
    )
    assert inbox.messages() == []


def test_a_failed_detection_is_unknown_for_its_target_and_the_others_still_report(
    inbox: Inbox, job: Event, fleet: Fleet
) -> None:
    fleet.deploy(*ALL)
    local_aws.fail_detection(STACK, WEST, "Failed to detect drift on resource Queue: Rate exceeded")
    local_aws.inject_drift(STACK, PRIMARY, "Queue", [_difference("/DelaySeconds", "0", "45")])

    result = fleet.detect(job)

    assert result.output_variables["DriftStatus"] == "DRIFTED"
    assert result.output_variables["Summary"] == f"5 targets: 1 DRIFTED, 1 UNKNOWN, 3 IN_SYNC; drifted: {REST_HOME}"
    ((report, _),) = inbox.messages()
    reason = "detection failed: Failed to detect drift on resource Queue: Rate exceeded"
    assert f"== {CANARY}: UNKNOWN ({reason})" in report
    assert f"== {REST_OTHER}: IN_SYNC" in report  # the same Region in the other account has its own stack


def test_a_target_aws_refuses_to_reach_is_unknown_with_the_reason_and_the_others_still_report(
    inbox: Inbox, job: Event, fleet: Fleet
) -> None:
    """GIVEN the other account's deploy role cannot be assumed (no bootstrap stack there) THEN both of
    its targets are UNKNOWN, naming the refusal, on every invocation; the job goes on."""
    fleet.deploy(CANARY, EARLY_HOME, REST_HOME)
    local_aws.set_detection_progress(1)
    refused = ClientError({"Error": {"Code": "AccessDenied", "Message": "not authorized"}}, "AssumeRole")

    def cloudformation_for(region: str, role_arn: str | None) -> CloudFormationClient:
        if role_arn is not None:
            raise refused
        return fleet.cfn(region, role_arn)

    first = fleet.detect(job, cloudformation_for=cloudformation_for)
    last = fleet.detect(again(job, first), cloudformation_for=cloudformation_for)

    assert token_of(first)["detections"].count(drift.UNREACHABLE) == 2
    assert last.output_variables == {"DriftStatus": "UNKNOWN", "Summary": "5 targets: 2 UNKNOWN, 3 IN_SYNC"}
    refusal = "UNKNOWN (not reachable: An error occurred (AccessDenied) when calling the AssumeRole operation"
    assert f"{EARLY_OTHER}: {refusal}" in last.summary
    assert f"{REST_OTHER}: {refusal}" in last.summary
    assert inbox.messages() == []


def test_a_target_unreachable_when_detection_started_is_never_taken_for_in_sync(fleet: Fleet) -> None:
    """GIVEN a token saying a target could not be reached WHEN its stack can be reached and checked now
    THEN it is UNKNOWN: no stack is reported in sync without a detection."""
    fleet.deploy(CANARY)
    target = drift.DriftTarget(CANARY, WEST, STACK, None, HOME)

    results, running = drift.follow_detections(fleet.cfn, [target], [drift.UNREACHABLE], unreachable_is_unknown=True)

    assert not running
    assert results == [
        StackDrift(CANARY, WEST, STACK, "UNKNOWN", "drift detection could not start on it (see the function's log)")
    ]


def test_detection_is_followed_over_several_invocations_with_the_same_token(
    inbox: Inbox, job: Event, fleet: Fleet
) -> None:
    fleet.deploy(*ALL)
    local_aws.inject_drift(STACK, WEST, "Queue", [_difference("/DelaySeconds", "0", "45")], account_id=OTHER)
    local_aws.set_detection_progress(2)

    first = fleet.detect(job)
    second = fleet.detect(again(job, first))
    third = fleet.detect(again(job, second))

    assert first.summary == second.summary == "Drift detection in progress on 5 targets"
    assert first.output_variables == second.output_variables == {}
    assert first.continuation_token == second.continuation_token  # detection started once, its ids kept
    assert list(token_of(first)) == ["detections"]
    assert third.continuation_token is None
    assert third.output_variables["DriftStatus"] == "DRIFTED"
    assert third.output_variables["Summary"].endswith(f"drifted: {REST_OTHER}")
    assert len(inbox.messages()) == 1


def test_a_token_whose_detections_are_swapped_is_refused(fleet: Fleet) -> None:
    """GIVEN a token whose detections of two stacks in one account and Region are swapped THEN the job
    fails naming the target: each detection must be of its target's stack. (Swapped across accounts or
    Regions, CloudFormation does not find the detection at all: the job fails too.)"""
    event = with_source(
        deployment_map(
            {"one": [{"Region": WEST, "StackName": f"{STACK}-a"}, {"Region": WEST, "StackName": f"{STACK}-b"}]}
        )
    )
    fleet.deploy(f"{HOME}/{WEST}/{STACK}-a", f"{HOME}/{WEST}/{STACK}-b")
    local_aws.set_detection_progress(1)
    ids = drift.unpack_detections(token_of(fleet.detect(event))["detections"])
    swapped = JobResult.keep_waiting({"detections": drift.pack_detections(ids[::-1])}, "")

    with pytest.raises(BadInputError, match=re.escape(f"another stack than {STACK}-a ({HOME}/{WEST}/{STACK}-a)")):
        fleet.detect(again(event, swapped))


def test_a_token_with_another_accounts_detection_fails_as_cloudformation_finds_none(job: Event, fleet: Fleet) -> None:
    fleet.deploy(*ALL)
    local_aws.set_detection_progress(1)
    ids = drift.unpack_detections(token_of(fleet.detect(job))["detections"])
    ids[1], ids[2] = ids[2], ids[1]  # eu-west-1's stack of the same name in the two accounts
    swapped = JobResult.keep_waiting({"detections": drift.pack_detections(ids)}, "")

    with pytest.raises(ClientError, match=re.escape(f"Stack drift detection [{ids[1]}] does not exist")):
        fleet.detect(again(job, swapped))


@pytest.mark.parametrize(
    ("token", "says"),
    [
        ({"detections": {"primary": "d-1"}}, "holds no drift detections of the map's targets"),
        ({"detections": "...."}, "holds 4 drift detections for 5 targets"),
        ({"detections": "....'d-1"}, "unfinished drift detection id"),
        ({"detections": ".....abc"}, "cannot be read"),
        ({"detections": "....'bad id'"}, f"no valid drift detection for the {REST_OTHER} stack"),
    ],
    ids=["two-stack-shape", "too-few", "unfinished-quote", "cut-uuid", "bad-id"],
)
def test_a_token_that_does_not_match_the_targets_is_bad_input(
    job: Event, token: dict[str, Any], says: str, fleet: Fleet
) -> None:
    with pytest.raises(BadInputError, match=re.escape(says)):
        fleet.detect(continuation_of(job, json.dumps(token)))


def test_a_token_for_100_targets_fits_codepipelines_limit_with_each_id_read_back() -> None:
    ids: list[str | None] = [str(uuid.uuid4()) for _ in range(100)]

    token = JobResult.keep_waiting({"detections": drift.pack_detections(ids)}, "").continuation_token

    assert token is not None
    assert len(token) == 2017 <= CONTINUATION_TOKEN_LIMIT  # 20 characters a target, 17 of JSON around them
    assert drift.unpack_detections(json.loads(token)["detections"]) == ids


def test_every_kind_of_slot_is_read_back() -> None:
    ids: list[str | None] = [
        str(uuid.uuid4()),
        None,
        drift.UNREACHABLE,
        "d-1",  # not a UUID: written as it is
        str(uuid.uuid4()).upper(),  # not canonical: packed, it would come back in lower case
    ]

    assert drift.unpack_detections(drift.pack_detections(ids)) == ids


def test_100_deployed_targets_are_followed_through_a_token_within_the_limit(inbox: Inbox, fleet: Fleet) -> None:
    """GIVEN a map of 100 deployed targets over three Regions and two accounts WHEN detection takes one
    more invocation THEN the token CodePipeline carries is within its 2,048 characters and brings every
    target to its result."""
    regions = (PRIMARY, SECONDARY, WEST)
    targets = [
        {"Region": regions[n % 3], "Account": (HOME, OTHER)[n % 2], "StackName": f"{STACK}-{n}"} for n in range(100)
    ]
    for target in targets:
        fleet.reach(target["Region"], target["Account"]).create_stack(
            StackName=target["StackName"], TemplateBody=TARGET_TEMPLATE
        )
    last_target = targets[-1]
    local_aws.inject_drift(
        f"{STACK}-99", last_target["Region"], "Queue", status="DELETED", account_id=last_target["Account"]
    )
    local_aws.set_detection_progress(1)
    event = with_source(deployment_map({"all": targets}))

    first = fleet.detect(event)
    last = fleet.detect(again(event, first))

    assert first.continuation_token is not None
    assert len(first.continuation_token) <= CONTINUATION_TOKEN_LIMIT
    assert last.output_variables == {
        "DriftStatus": "DRIFTED",
        "Summary": f"100 targets: 1 DRIFTED, 99 IN_SYNC; drifted: {OTHER}/{last_target['Region']}/{STACK}-99",
    }


def test_the_summary_names_whole_drifted_targets_within_its_limit() -> None:
    drifted = [f"{OTHER}/{WEST}/stack-number-{n:03}" for n in range(20)]
    results = [StackDrift(label, WEST, "s", "DRIFTED") for label in drifted]
    results.append(StackDrift(f"{HOME}/{PRIMARY}/app", PRIMARY, "app", "IN_SYNC"))

    summary = drift.targets_summary(results, SUMMARY_VARIABLE_LIMIT)

    assert len(summary) <= SUMMARY_VARIABLE_LIMIT
    head, names = summary.split("; drifted: ")
    assert head == "21 targets: 20 DRIFTED, 1 IN_SYNC"
    shown, more = names.rsplit(" and ", 1)
    assert shown.split(", ") == drifted[: len(shown.split(", "))]  # whole names, in the map's order
    assert more == f"{20 - len(shown.split(', '))} more"


def test_a_map_missing_from_the_source_or_with_problems_fails_naming_them(fleet: Fleet) -> None:
    event = with_source(deployment_map({"w": [{"Region": "mars-north-1"}]}))

    with pytest.raises(ArtifactError, match=re.escape("no deployment map at 'other.json' (DEPLOYMENT_MAP_PATH)")):
        fleet.detect(event, config=dataclasses.replace(MAPPED, deployment_map_path="other.json"))
    with pytest.raises(ConfigurationError, match="Region 'mars-north-1' is not an AWS Region"):
        fleet.detect(event)
