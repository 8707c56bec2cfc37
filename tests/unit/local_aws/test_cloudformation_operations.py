"""local_aws.cloudformation.operations: stack operations fail, roll back and carry their request tokens
and update times as in AWS."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.cloudformation.models import cloudformation_backends
from moto.core.models import DEFAULT_ACCOUNT_ID

import local_aws

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient

pytestmark = pytest.mark.usefixtures("aws")

REGION = "us-east-1"
QUEUE = {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "orders"}}
TOPIC = {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "events"}}


def template(**resources: Any) -> str:
    return json.dumps({"Resources": resources})


@pytest.fixture
def cfn() -> CloudFormationClient:
    return boto3.client("cloudformation", region_name=REGION)


def stack_of(cfn: CloudFormationClient, name: str) -> Any:
    return cfn.describe_stacks(StackName=name)["Stacks"][0]


def events_of(cfn: CloudFormationClient, name: str) -> list[tuple[str, str, str | None]]:
    """(logical id, status, token) of the stack's events, oldest first."""
    events = cfn.describe_stack_events(StackName=name)["StackEvents"]
    return [(e["LogicalResourceId"], e["ResourceStatus"], e.get("ClientRequestToken")) for e in reversed(events)]


def test_a_failed_creation_rolls_back_to_rollback_complete_and_accepts_only_a_delete(cfn: CloudFormationClient) -> None:
    """GIVEN the first change set of a stack WHEN a resource fails while it is executed THEN the call
    succeeds, the stack ends ROLLBACK_COMPLETE with nothing created, and every later change set or
    update is refused until the stack is deleted."""
    local_aws.fail_resource("app", REGION, "Queue", "orders already exists")
    cfn.create_change_set(
        StackName="app", ChangeSetName="first", TemplateBody=template(Queue=QUEUE), ChangeSetType="CREATE"
    )

    cfn.execute_change_set(StackName="app", ChangeSetName="first", ClientRequestToken="deploy-1")

    stack = stack_of(cfn, "app")
    assert stack["StackStatus"] == "ROLLBACK_COMPLETE"
    assert "failed to create: [Queue]" in stack["StackStatusReason"]
    assert "LastUpdatedTime" not in stack
    assert cfn.list_stack_resources(StackName="app")["StackResourceSummaries"] == []
    assert boto3.client("sqs", region_name=REGION).list_queues().get("QueueUrls", []) == []
    assert ("Queue", "CREATE_FAILED", "deploy-1") in events_of(cfn, "app")
    assert events_of(cfn, "app")[-1] == ("app", "ROLLBACK_COMPLETE", "deploy-1")
    with pytest.raises(ClientError, match="is in ROLLBACK_COMPLETE state and can not be updated"):
        cfn.create_change_set(StackName="app", ChangeSetName="second", TemplateBody=template(Queue=QUEUE))
    with pytest.raises(ClientError, match="is in ROLLBACK_COMPLETE state and can not be updated"):
        cfn.update_stack(StackName="app", TemplateBody=template(Queue=QUEUE, Topic=TOPIC))

    cfn.delete_stack(StackName="app")
    cfn.create_change_set(
        StackName="app", ChangeSetName="again", TemplateBody=template(Queue=QUEUE), ChangeSetType="CREATE"
    )
    cfn.execute_change_set(StackName="app", ChangeSetName="again")
    assert stack_of(cfn, "app")["StackStatus"] == "CREATE_COMPLETE"  # the failure was injected once


def test_a_failed_update_rolls_back_to_the_previous_template_and_resources(cfn: CloudFormationClient) -> None:
    cfn.create_stack(StackName="app", TemplateBody=template(Queue=QUEUE))
    local_aws.fail_resource("app", REGION, "Topic", "topic limit reached")
    cfn.create_change_set(StackName="app", ChangeSetName="next", TemplateBody=template(Queue=QUEUE, Topic=TOPIC))
    cfn.create_change_set(StackName="app", ChangeSetName="other", TemplateBody=template(Queue=QUEUE, Topic=TOPIC))

    cfn.execute_change_set(StackName="app", ChangeSetName="next")

    stack = stack_of(cfn, "app")
    assert stack["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert "LastUpdatedTime" in stack
    assert json.loads(json.dumps(cfn.get_template(StackName="app")["TemplateBody"])) == {"Resources": {"Queue": QUEUE}}
    assert [r["LogicalResourceId"] for r in cfn.list_stack_resources(StackName="app")["StackResourceSummaries"]] == [
        "Queue"
    ]
    assert ("Topic", "UPDATE_FAILED", None) in events_of(cfn, "app")
    # Executing a change set deletes the stack's other change sets, whatever the outcome.
    names = [s["ChangeSetName"] for s in cfn.list_change_sets(StackName="app")["Summaries"]]
    assert "other" not in names
    # UPDATE_ROLLBACK_COMPLETE accepts updates again.
    cfn.update_stack(StackName="app", TemplateBody=template(Queue=QUEUE, Topic=TOPIC))
    assert stack_of(cfn, "app")["StackStatus"] == "UPDATE_COMPLETE"


def test_update_stack_fails_and_rolls_back_the_same_way(cfn: CloudFormationClient) -> None:
    cfn.create_stack(StackName="app", TemplateBody=template(Queue=QUEUE))
    local_aws.fail_resource("app", REGION, "Topic", "topic limit reached")

    cfn.update_stack(StackName="app", TemplateBody=template(Queue=QUEUE, Topic=TOPIC), ClientRequestToken="ret-1")

    assert stack_of(cfn, "app")["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert events_of(cfn, "app")[-1] == ("app", "UPDATE_ROLLBACK_COMPLETE", "ret-1")


def test_a_resource_the_update_does_not_touch_never_fails_it(cfn: CloudFormationClient) -> None:
    cfn.create_stack(StackName="app", TemplateBody=template(Queue=QUEUE))
    local_aws.fail_resource("app", REGION, "Queue", "would fail if touched")

    cfn.update_stack(StackName="app", TemplateBody=template(Queue=QUEUE, Topic=TOPIC))

    assert stack_of(cfn, "app")["StackStatus"] == "UPDATE_COMPLETE"


@pytest.mark.parametrize(
    "status", ["REVIEW_IN_PROGRESS", "UPDATE_IN_PROGRESS", "ROLLBACK_FAILED", "UPDATE_ROLLBACK_FAILED", "DELETE_FAILED"]
)
def test_update_stack_refuses_a_stack_that_cannot_be_updated(cfn: CloudFormationClient, status: str) -> None:
    cfn.create_stack(StackName="app", TemplateBody=template(Queue=QUEUE))
    next(iter(cloudformation_backends[DEFAULT_ACCOUNT_ID][REGION].stacks.values())).status = status

    with pytest.raises(ClientError, match=f"is in {status} state and can not be updated"):
        cfn.update_stack(StackName="app", TemplateBody=template(Queue=QUEUE, Topic=TOPIC))


def test_every_operation_stamps_its_events_with_its_request_token_and_updates_their_time(
    cfn: CloudFormationClient,
) -> None:
    cfn.create_stack(StackName="app", TemplateBody=template(Queue=QUEUE), ClientRequestToken="create-1")
    assert "LastUpdatedTime" not in stack_of(cfn, "app")
    cfn.update_stack(StackName="app", TemplateBody=template(Queue=QUEUE, Topic=TOPIC), ClientRequestToken="update-1")
    assert "LastUpdatedTime" in stack_of(cfn, "app")
    cfn.create_change_set(StackName="app", ChangeSetName="cs", TemplateBody=template(Queue=QUEUE))
    cfn.execute_change_set(StackName="app", ChangeSetName="cs", ClientRequestToken="execute-1")

    tokens = [token for _, _, token in events_of(cfn, "app")]
    assert tokens[0] == "create-1"
    assert tokens[-1] == "execute-1"
    assert "update-1" in tokens
    stack_id = stack_of(cfn, "app")["StackId"]
    cfn.delete_stack(StackName="app", ClientRequestToken="delete-1")
    deleted = cfn.describe_stack_events(StackName=stack_id)["StackEvents"]
    assert deleted[0]["ClientRequestToken"] == "delete-1"


def test_a_stack_holds_at_most_its_change_set_limit(cfn: CloudFormationClient) -> None:
    """CloudFormation refuses a stack's change set past its limit (1,000; lowered here) with
    LimitExceededException; deleting one makes room again."""
    assert local_aws.CHANGE_SETS_PER_STACK == 1000
    local_aws.set_change_set_limit(3)
    cfn.create_stack(StackName="app", TemplateBody=template(Queue=QUEUE))
    for index in range(3):
        cfn.create_change_set(StackName="app", ChangeSetName=f"empty-{index}", TemplateBody=template(Queue=QUEUE))

    with pytest.raises(ClientError) as refused:
        cfn.create_change_set(StackName="app", ChangeSetName="one-more", TemplateBody=template(Queue=QUEUE))

    assert refused.value.response["Error"]["Code"] == "LimitExceededException"
    assert "ChangeSet limit exceeded for stack" in str(refused.value)
    cfn.delete_change_set(StackName="app", ChangeSetName="empty-0")
    cfn.create_change_set(StackName="app", ChangeSetName="one-more", TemplateBody=template(Queue=QUEUE))


def test_a_parameter_left_at_its_default_keeps_that_value_as_its_previous_value(cfn: CloudFormationClient) -> None:
    """AWS lists a defaulted parameter among the stack's parameters and accepts UsePreviousValue for it."""
    body: dict[str, Any] = {"Parameters": {"Name": {"Type": "String", "Default": "one"}}, "Resources": {"Queue": QUEUE}}
    cfn.create_stack(StackName="app", TemplateBody=json.dumps(body))
    body["Resources"]["Topic"] = TOPIC

    cfn.update_stack(
        StackName="app",
        TemplateBody=json.dumps(body),
        Parameters=[{"ParameterKey": "Name", "UsePreviousValue": True}],
    )

    parameters = stack_of(cfn, "app")["Parameters"]
    assert [(p["ParameterKey"], p["ParameterValue"]) for p in parameters] == [("Name", "one")]


def test_a_stack_status_set_by_a_test_is_what_every_api_then_reports(cfn: CloudFormationClient) -> None:
    cfn.create_stack(StackName="app", TemplateBody=template(Queue=QUEUE))

    local_aws.set_stack_status("app", REGION, "UPDATE_IN_PROGRESS")

    assert stack_of(cfn, "app")["StackStatus"] == "UPDATE_IN_PROGRESS"
    listed = cfn.list_stacks()["StackSummaries"]
    assert [(s["StackName"], s["StackStatus"]) for s in listed] == [("app", "UPDATE_IN_PROGRESS")]


@pytest.mark.parametrize("status", ["DELETE_COMPLETE", "BROKEN", "update_complete"])
def test_only_cloudformations_own_live_statuses_can_be_set(cfn: CloudFormationClient, status: str) -> None:
    """A deletion goes through DeleteStack, and a status CloudFormation never reports is refused."""
    cfn.create_stack(StackName="app", TemplateBody=template(Queue=QUEUE))

    with pytest.raises(ValueError, match="status must be one of"):
        local_aws.set_stack_status("app", REGION, status)
    assert stack_of(cfn, "app")["StackStatus"] == "CREATE_COMPLETE"
