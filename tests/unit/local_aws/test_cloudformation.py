"""local_aws.cloudformation answers like AWS: change sets and drift."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError

import local_aws

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudformation.type_defs import ParameterTypeDef

pytestmark = pytest.mark.usefixtures("aws")

PRIMARY = "us-east-1"
SECONDARY = "eu-west-1"

TEMPLATE: dict[str, Any] = {
    "AWSTemplateFormatVersion": "2010-09-09",
    "Parameters": {"Env": {"Type": "String", "Default": "dev"}},
    "Resources": {
        "Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": {"Fn::Sub": "demo-${Env}"}}},
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "demo-queue", "DelaySeconds": 0}},
    },
}


def template(**changes: Any) -> str:
    body = json.loads(json.dumps(TEMPLATE))
    body["Resources"].update(changes)
    body["Resources"] = {k: v for k, v in body["Resources"].items() if v is not None}
    return json.dumps(body)


def env(value: str) -> list[ParameterTypeDef]:
    return [{"ParameterKey": "Env", "ParameterValue": value}]


def error_code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


@pytest.fixture
def cfn() -> CloudFormationClient:
    return boto3.client("cloudformation", region_name=PRIMARY)


@pytest.fixture
def stack(cfn: CloudFormationClient) -> str:
    """demo-app in CREATE_COMPLETE with Env=prod."""
    cfn.create_stack(StackName="demo-app", TemplateBody=template(), Parameters=env("prod"))
    return "demo-app"


# --------------------------------------------------------------------------------------- change sets


def test_unchanged_update_change_set_is_created_failed_like_aws(cfn: CloudFormationClient, stack: str) -> None:
    """moto 5.2.5 raises 'No updates are to be performed'; AWS creates a FAILED change set."""
    cfn.create_change_set(
        StackName=stack,
        ChangeSetName="pipeline-changeset",
        TemplateBody=template(),
        Parameters=env("prod"),
        ChangeSetType="UPDATE",
    )

    described = cfn.describe_change_set(StackName=stack, ChangeSetName="pipeline-changeset")
    assert described["Status"] == "FAILED"
    assert described["ExecutionStatus"] == "UNAVAILABLE"
    assert described["StatusReason"] == local_aws.NO_CHANGES_REASON
    assert described["Changes"] == []


@pytest.mark.parametrize(
    "parameters",
    [[{"ParameterKey": "Env", "UsePreviousValue": True}], [{"ParameterKey": "Env", "ParameterValue": "prod"}]],
)
def test_unchanged_change_set_is_failed_whatever_the_parameter_form(
    cfn: CloudFormationClient, stack: str, parameters: list[ParameterTypeDef]
) -> None:
    cfn.create_change_set(StackName=stack, ChangeSetName="cs", TemplateBody=template(), Parameters=parameters)

    assert cfn.describe_change_set(StackName=stack, ChangeSetName="cs")["Status"] == "FAILED"


def test_default_parameter_is_used_when_a_parameter_is_left_out(cfn: CloudFormationClient, stack: str) -> None:
    """GIVEN Env=prod WHEN the change set omits Env THEN the Default (dev) applies: a change."""
    cfn.create_change_set(StackName=stack, ChangeSetName="cs", TemplateBody=template())

    described = cfn.describe_change_set(StackName=stack, ChangeSetName="cs")
    assert described["Status"] == "CREATE_COMPLETE"
    assert described["Parameters"] == [{"ParameterKey": "Env", "ParameterValue": "dev"}]
    [change] = described["Changes"]
    assert change["ResourceChange"]["LogicalResourceId"] == "Topic"
    assert change["ResourceChange"]["Details"][0]["CausingEntity"] == "Env"
    assert change["ResourceChange"]["Details"][0]["ChangeSource"] == "ParameterReference"


def test_change_set_type_defaults_to_update_like_aws(cfn: CloudFormationClient) -> None:
    with pytest.raises(ClientError) as exc:
        cfn.create_change_set(StackName="demo-app", ChangeSetName="cs", TemplateBody=template())

    assert error_code(exc) == "ValidationError"
    assert exc.value.response["Error"]["Message"] == "Stack [demo-app] does not exist"


def test_create_change_set_on_a_missing_stack_makes_a_review_in_progress_stack(cfn: CloudFormationClient) -> None:
    created = cfn.create_change_set(
        StackName="demo-app",
        ChangeSetName="pipeline-changeset",
        TemplateBody=template(),
        ChangeSetType="CREATE",
        Parameters=env("prod"),
    )

    [stack] = cfn.describe_stacks(StackName="demo-app")["Stacks"]
    assert stack["StackStatus"] == "REVIEW_IN_PROGRESS"
    assert stack["StackId"] == created["StackId"]
    described = cfn.describe_change_set(ChangeSetName=created["Id"])
    assert (described["Status"], described["ExecutionStatus"]) == ("CREATE_COMPLETE", "AVAILABLE")
    assert "StatusReason" not in described
    assert [c["ResourceChange"] for c in described["Changes"]] == [
        {"Action": "Add", "LogicalResourceId": "Topic", "ResourceType": "AWS::SNS::Topic", "Scope": [], "Details": []},
        {"Action": "Add", "LogicalResourceId": "Queue", "ResourceType": "AWS::SQS::Queue", "Scope": [], "Details": []},
    ]


def test_change_set_replace_on_a_review_in_progress_stack_keeps_one_stack(cfn: CloudFormationClient) -> None:
    """CodePipeline's CHANGE_SET_REPLACE deletes the change set and creates it again (CREATE)."""
    first = cfn.create_change_set(
        StackName="demo-app", ChangeSetName="pipeline-changeset", TemplateBody=template(), ChangeSetType="CREATE"
    )
    cfn.delete_change_set(StackName="demo-app", ChangeSetName="pipeline-changeset")

    second = cfn.create_change_set(
        StackName="demo-app", ChangeSetName="pipeline-changeset", TemplateBody=template(), ChangeSetType="CREATE"
    )

    assert second["StackId"] == first["StackId"]
    assert [s["StackName"] for s in cfn.list_stacks()["StackSummaries"]] == ["demo-app"]
    cfn.execute_change_set(StackName="demo-app", ChangeSetName="pipeline-changeset")
    [stack] = cfn.describe_stacks(StackName="demo-app")["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE"


def test_create_change_set_on_a_live_stack_is_refused(cfn: CloudFormationClient, stack: str) -> None:
    with pytest.raises(ClientError) as exc:
        cfn.create_change_set(StackName=stack, ChangeSetName="cs", TemplateBody=template(), ChangeSetType="CREATE")

    assert error_code(exc) == "ValidationError"
    assert "already exists and cannot be created again with the changeSet [cs]" in str(exc.value)


def test_update_change_set_on_a_review_in_progress_stack_is_refused(cfn: CloudFormationClient) -> None:
    cfn.create_change_set(StackName="demo-app", ChangeSetName="cs", TemplateBody=template(), ChangeSetType="CREATE")

    with pytest.raises(ClientError) as exc:
        cfn.create_change_set(
            StackName="demo-app", ChangeSetName="cs2", TemplateBody=template(), ChangeSetType="UPDATE"
        )

    assert error_code(exc) == "ValidationError"
    assert "REVIEW_IN_PROGRESS state and can not be updated" in str(exc.value)


def test_a_second_change_set_of_the_same_name_is_refused(cfn: CloudFormationClient, stack: str) -> None:
    cfn.create_change_set(StackName=stack, ChangeSetName="cs", TemplateBody=template(Bucket=None))

    with pytest.raises(cfn.exceptions.AlreadyExistsException):
        cfn.create_change_set(StackName=stack, ChangeSetName="cs", TemplateBody=template(Queue=None))


def test_change_sets_are_looked_up_within_their_stack(cfn: CloudFormationClient, stack: str) -> None:
    cfn.create_stack(StackName="other-app", TemplateBody=template(), Parameters=env("prod"))
    cfn.create_change_set(
        StackName=stack, ChangeSetName="pipeline-changeset", TemplateBody=template(Queue=None), Parameters=env("prod")
    )
    cfn.create_change_set(
        StackName="other-app", ChangeSetName="pipeline-changeset", TemplateBody=template(), Parameters=env("prod")
    )

    mine = cfn.describe_change_set(StackName=stack, ChangeSetName="pipeline-changeset")
    other = cfn.describe_change_set(StackName="other-app", ChangeSetName="pipeline-changeset")

    assert (mine["StackName"], mine["Status"]) == (stack, "CREATE_COMPLETE")
    assert (other["StackName"], other["Status"]) == ("other-app", "FAILED")
    assert [s["StackName"] for s in cfn.list_change_sets(StackName=stack)["Summaries"]] == [stack]


def test_missing_change_set_raises_change_set_not_found(cfn: CloudFormationClient, stack: str) -> None:
    with pytest.raises(cfn.exceptions.ChangeSetNotFoundException) as exc:
        cfn.describe_change_set(StackName=stack, ChangeSetName="pipeline-changeset")

    assert exc.value.response["Error"]["Message"] == "ChangeSet [pipeline-changeset] does not exist"


def test_modify_and_remove_carry_physical_ids_and_details(cfn: CloudFormationClient, stack: str) -> None:
    changed_queue = {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "demo-queue", "DelaySeconds": 5}}
    cfn.create_change_set(
        StackName=stack,
        ChangeSetName="cs",
        Parameters=env("prod"),
        TemplateBody=template(
            Queue=None,
            Queue2=changed_queue,
            Topic={
                "Type": "AWS::SNS::Topic",
                "Properties": {"TopicName": {"Fn::Sub": "demo-${Env}"}, "DisplayName": "Demo"},
            },
        ),
    )

    changes = {
        c["ResourceChange"]["LogicalResourceId"]: c["ResourceChange"]
        for c in cfn.describe_change_set(StackName=stack, ChangeSetName="cs")["Changes"]
    }

    assert {k: v["Action"] for k, v in changes.items()} == {"Topic": "Modify", "Queue2": "Add", "Queue": "Remove"}
    topic = changes["Topic"]
    assert topic["Replacement"] == "False"
    assert topic["Scope"] == ["Properties"]
    assert topic["Details"] == [
        {
            "Target": {"Attribute": "Properties", "Name": "DisplayName", "RequiresRecreation": "Never"},
            "Evaluation": "Static",
            "ChangeSource": "DirectModification",
        }
    ]
    assert topic["PhysicalResourceId"].startswith("arn:aws:sns:us-east-1:123456789012:")
    assert "PhysicalResourceId" in changes["Queue"]


def test_executing_a_change_set_updates_the_stack_and_drops_other_change_sets(
    cfn: CloudFormationClient, stack: str
) -> None:
    cfn.create_change_set(StackName=stack, ChangeSetName="cs", TemplateBody=template(), Parameters=env("test"))
    cfn.create_change_set(
        StackName=stack, ChangeSetName="other", TemplateBody=template(Queue=None), Parameters=env("prod")
    )

    cfn.execute_change_set(StackName=stack, ChangeSetName="cs")

    [described] = cfn.describe_stacks(StackName=stack)["Stacks"]
    assert described["StackStatus"] == "UPDATE_COMPLETE"
    assert {p["ParameterKey"]: p["ParameterValue"] for p in described["Parameters"]} == {"Env": "test"}
    assert [s["ChangeSetName"] for s in cfn.list_change_sets(StackName=stack)["Summaries"]] == ["cs"]
    assert cfn.describe_change_set(StackName=stack, ChangeSetName="cs")["ExecutionStatus"] == "EXECUTE_COMPLETE"
    cfn.create_change_set(StackName=stack, ChangeSetName="again", TemplateBody=template(), Parameters=env("test"))
    assert cfn.describe_change_set(StackName=stack, ChangeSetName="again")["Status"] == "FAILED"


def test_a_failed_change_set_cannot_be_executed(cfn: CloudFormationClient, stack: str) -> None:
    cfn.create_change_set(StackName=stack, ChangeSetName="cs", TemplateBody=template(), Parameters=env("prod"))

    with pytest.raises(cfn.exceptions.InvalidChangeSetStatusException):
        cfn.execute_change_set(StackName=stack, ChangeSetName="cs")

    assert cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"


def test_fail_change_set_sets_any_reason(cfn: CloudFormationClient, stack: str) -> None:
    cfn.create_change_set(StackName=stack, ChangeSetName="cs", TemplateBody=template(Queue=None))

    local_aws.fail_change_set(stack, "cs", PRIMARY, "Template error: unresolved resource dependencies [X]")

    described = cfn.describe_change_set(StackName=stack, ChangeSetName="cs")
    assert (described["Status"], described["ExecutionStatus"]) == ("FAILED", "UNAVAILABLE")
    assert described["StatusReason"] == "Template error: unresolved resource dependencies [X]"


def test_describe_change_set_pages_when_asked(cfn: CloudFormationClient) -> None:
    cfn.create_change_set(
        StackName="demo-app",
        ChangeSetName="cs",
        TemplateBody=template(Bucket={"Type": "AWS::S3::Bucket"}),
        ChangeSetType="CREATE",
    )
    local_aws.set_change_set_page_size(2)

    first = cfn.describe_change_set(StackName="demo-app", ChangeSetName="cs")
    pages = list(cfn.get_paginator("describe_change_set").paginate(StackName="demo-app", ChangeSetName="cs"))

    assert len(first["Changes"]) == 2
    assert first["NextToken"] == "2"
    assert [len(p["Changes"]) for p in pages] == [2, 1]


def test_review_in_progress_stack_can_be_deleted(cfn: CloudFormationClient) -> None:
    cfn.create_change_set(StackName="demo-app", ChangeSetName="cs", TemplateBody=template(), ChangeSetType="CREATE")

    cfn.delete_stack(StackName="demo-app")

    with pytest.raises(ClientError) as exc:
        cfn.describe_stacks(StackName="demo-app")
    assert exc.value.response["Error"]["Message"] == "Stack with id demo-app does not exist"


# --------------------------------------------------------------------------------------------- drift


def detect(cfn: CloudFormationClient, stack_name: str) -> str:
    return cfn.detect_stack_drift(StackName=stack_name)["StackDriftDetectionId"]


def test_stack_without_injected_drift_is_in_sync(cfn: CloudFormationClient, stack: str) -> None:
    detection_id = detect(cfn, stack)

    status = cfn.describe_stack_drift_detection_status(StackDriftDetectionId=detection_id)
    drifts = cfn.describe_stack_resource_drifts(StackName=stack)["StackResourceDrifts"]

    assert (status["DetectionStatus"], status["StackDriftStatus"]) == ("DETECTION_COMPLETE", "IN_SYNC")
    assert status["DriftedStackResourceCount"] == 0
    assert status["StackId"].startswith("arn:aws:cloudformation:us-east-1:123456789012:stack/demo-app/")
    assert {d["LogicalResourceId"]: d["StackResourceDriftStatus"] for d in drifts} == {
        "Topic": "IN_SYNC",
        "Queue": "IN_SYNC",
    }
    assert all(d["ExpectedProperties"] == d["ActualProperties"] for d in drifts)


def test_injected_drift_is_reported(cfn: CloudFormationClient, stack: str) -> None:
    local_aws.inject_drift(
        stack,
        PRIMARY,
        "Queue",
        [
            {"PropertyPath": "/DelaySeconds", "ExpectedValue": "0", "ActualValue": "30", "DifferenceType": "NOT_EQUAL"},
        ],
    )
    detection_id = detect(cfn, stack)

    status = cfn.describe_stack_drift_detection_status(StackDriftDetectionId=detection_id)
    [drift] = cfn.describe_stack_resource_drifts(StackName=stack, StackResourceDriftStatusFilters=["MODIFIED"])[
        "StackResourceDrifts"
    ]

    assert (status["StackDriftStatus"], status["DriftedStackResourceCount"]) == ("DRIFTED", 1)
    assert drift["LogicalResourceId"] == "Queue"
    assert drift["ResourceType"] == "AWS::SQS::Queue"
    assert drift["PropertyDifferences"] == [
        {"PropertyPath": "/DelaySeconds", "ExpectedValue": "0", "ActualValue": "30", "DifferenceType": "NOT_EQUAL"}
    ]
    assert json.loads(drift["ExpectedProperties"])["DelaySeconds"] == 0
    assert json.loads(drift["ActualProperties"])["DelaySeconds"] == 30
    assert drift["PhysicalResourceId"]


def test_detection_stays_in_progress_for_the_requested_polls(cfn: CloudFormationClient, stack: str) -> None:
    local_aws.set_detection_progress(2)
    detection_id = detect(cfn, stack)

    polls = [cfn.describe_stack_drift_detection_status(StackDriftDetectionId=detection_id) for _ in range(3)]

    assert [p["DetectionStatus"] for p in polls] == [
        "DETECTION_IN_PROGRESS",
        "DETECTION_IN_PROGRESS",
        "DETECTION_COMPLETE",
    ]
    assert "StackDriftStatus" not in polls[0]


def test_resource_drifts_wait_for_a_finished_detection(cfn: CloudFormationClient, stack: str) -> None:
    local_aws.set_detection_progress(1)
    detect(cfn, stack)

    assert cfn.describe_stack_resource_drifts(StackName=stack)["StackResourceDrifts"] == []


def test_failed_detection_reports_its_reason(cfn: CloudFormationClient, stack: str) -> None:
    local_aws.fail_detection(stack, PRIMARY, "Failed to detect drift on resource [Queue]: Access denied")
    detection_id = detect(cfn, stack)

    status = cfn.describe_stack_drift_detection_status(StackDriftDetectionId=detection_id)

    assert status["DetectionStatus"] == "DETECTION_FAILED"
    assert status["DetectionStatusReason"] == "Failed to detect drift on resource [Queue]: Access denied"
    assert status["StackDriftStatus"] == "UNKNOWN"


def test_drift_of_a_missing_stack_is_a_validation_error(cfn: CloudFormationClient) -> None:
    with pytest.raises(ClientError) as exc:
        detect(cfn, "demo-app")

    assert error_code(exc) == "ValidationError"
    assert exc.value.response["Error"]["Message"] == "Stack with id demo-app does not exist"


def test_drift_of_a_review_in_progress_stack_is_a_validation_error(cfn: CloudFormationClient) -> None:
    cfn.create_change_set(StackName="demo-app", ChangeSetName="cs", TemplateBody=template(), ChangeSetType="CREATE")

    with pytest.raises(ClientError) as exc:
        detect(cfn, "demo-app")

    assert error_code(exc) == "ValidationError"
    assert "REVIEW_IN_PROGRESS" in exc.value.response["Error"]["Message"]


def test_resource_drifts_page_with_max_results(cfn: CloudFormationClient, stack: str) -> None:
    detect(cfn, stack)

    first = cfn.describe_stack_resource_drifts(StackName=stack, MaxResults=1)
    second = cfn.describe_stack_resource_drifts(StackName=stack, MaxResults=1, NextToken=first["NextToken"])

    assert len(first["StackResourceDrifts"]) == len(second["StackResourceDrifts"]) == 1
    assert "NextToken" not in second
    assert first["StackResourceDrifts"][0]["LogicalResourceId"] != second["StackResourceDrifts"][0]["LogicalResourceId"]


def test_drift_is_per_region(stack: str) -> None:
    local_aws.inject_drift(stack, PRIMARY, "Topic", status="DELETED")
    secondary = boto3.client("cloudformation", region_name=SECONDARY)
    secondary.create_stack(StackName=stack, TemplateBody=template(), Parameters=env("prod"))

    detection_id = detect(secondary, stack)

    status = secondary.describe_stack_drift_detection_status(StackDriftDetectionId=detection_id)
    assert status["StackDriftStatus"] == "IN_SYNC"


def test_inject_drift_refuses_an_unknown_resource(stack: str) -> None:
    with pytest.raises(ValueError, match="no resource Nope"):
        local_aws.inject_drift(stack, PRIMARY, "Nope", status="DELETED")


def test_a_change_set_can_be_shown_still_being_made_then_made() -> None:
    cfn = boto3.client("cloudformation", region_name="us-east-1")
    cfn.create_change_set(StackName="app", ChangeSetName="review", TemplateBody=template(), ChangeSetType="CREATE")

    local_aws.set_change_set_status("app", "review", "us-east-1", "CREATE_IN_PROGRESS")
    making = cfn.describe_change_set(StackName="app", ChangeSetName="review")
    local_aws.set_change_set_status("app", "review", "us-east-1", "CREATE_COMPLETE")
    made = cfn.describe_change_set(StackName="app", ChangeSetName="review")

    assert (making["Status"], making["ExecutionStatus"]) == ("CREATE_IN_PROGRESS", "UNAVAILABLE")
    assert (made["Status"], made["ExecutionStatus"]) == ("CREATE_COMPLETE", "AVAILABLE")
    with pytest.raises(ValueError, match="status must be one of"):
        local_aws.set_change_set_status("app", "review", "us-east-1", "EXECUTE_COMPLETE")
