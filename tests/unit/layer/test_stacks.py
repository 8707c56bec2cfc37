"""release_pipeline.stacks: the CloudFormation conditions AWS reports only as text, and stack state."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

import local_aws
from release_pipeline import clients, stacks
from release_pipeline.stacks import (
    EMPTY_CHANGE_SET_REASON,
    StackState,
    console_url,
    describe,
    is_busy,
    is_empty_change_set,
    is_missing_stack,
    is_no_updates,
)

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient

pytestmark = pytest.mark.usefixtures("aws")

REGION = "us-east-1"
TEMPLATE = json.dumps({"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}})
CHANGED = json.dumps({"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}, "Queue": {"Type": "AWS::SQS::Queue"}}})


@pytest.fixture
def cfn() -> CloudFormationClient:
    return clients.cloudformation(REGION)


def client_error(code: str, message: str, operation: str = "UpdateStack") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


# ------------------------------------------------------------------------------- empty change set


def test_aws_empty_change_set_reason_is_empty() -> None:
    assert is_empty_change_set("FAILED", local_aws.NO_CHANGES_REASON)
    assert is_empty_change_set("FAILED", EMPTY_CHANGE_SET_REASON)
    assert is_empty_change_set("FAILED", "The submitted information didn't contain changes.")
    # CloudFormation words some empty change sets as an update with nothing to do.
    assert is_empty_change_set("FAILED", "No updates are to be performed.")


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("FAILED", "Template format error: Unresolved resource dependencies [Missing] in the Resources block"),
        ("FAILED", "Parameters: [Env] must have values"),
        ("FAILED", None),
        ("FAILED", ""),
        ("FAILED", "Error: The submitted information didn't contain changes"),
        ("FAILED", "the submitted information didn't contain changes"),
        ("FAILED", "The submitted information did not contain changes"),
        ("CREATE_COMPLETE", local_aws.NO_CHANGES_REASON),
        ("CREATE_PENDING", local_aws.NO_CHANGES_REASON),
    ],
    ids=[
        "template-error",
        "parameter-error",
        "no-reason",
        "empty-reason",
        "reason-not-at-start",
        "lower-case",
        "other-wording",
        "complete",
        "pending",
    ],
)
def test_anything_else_is_not_an_empty_change_set(status: str, reason: str | None) -> None:
    assert not is_empty_change_set(status, reason)


def test_unchanged_change_set_from_cloudformation_is_empty(cfn: CloudFormationClient) -> None:
    """GIVEN a stack and a change set with its own template THEN what DescribeChangeSet says is empty;
    a change set that adds a resource is not."""
    cfn.create_stack(StackName="demo-app", TemplateBody=TEMPLATE)
    cfn.create_change_set(StackName="demo-app", ChangeSetName="pipeline-same", TemplateBody=TEMPLATE)
    cfn.create_change_set(StackName="demo-app", ChangeSetName="pipeline-new", TemplateBody=CHANGED)

    same = cfn.describe_change_set(StackName="demo-app", ChangeSetName="pipeline-same")
    new = cfn.describe_change_set(StackName="demo-app", ChangeSetName="pipeline-new")

    assert is_empty_change_set(same["Status"], same.get("StatusReason"))
    assert not is_empty_change_set(new["Status"], new.get("StatusReason"))


# -------------------------------------------------------------------------------------- no updates


def test_no_updates_is_recognised() -> None:
    assert is_no_updates(client_error("ValidationError", "No updates are to be performed."))


@pytest.mark.parametrize(
    "error",
    [
        client_error("ValidationError", "Stack with id demo-app does not exist"),
        client_error("ValidationError", "Stack:arn is in UPDATE_IN_PROGRESS state and can not be updated."),
        client_error("AccessDenied", "User is not authorized to perform: cloudformation:UpdateStack"),
        ClientError({"Error": {"Code": "ValidationError"}}, "UpdateStack"),
        ClientError({}, "UpdateStack"),
    ],
    ids=["missing", "busy", "denied", "no-message", "no-error"],
)
def test_other_errors_are_not_no_updates(error: ClientError) -> None:
    assert not is_no_updates(error)


def test_no_updates_from_update_stack_is_recognised(cfn: CloudFormationClient) -> None:
    stubber = Stubber(cfn)
    stubber.add_client_error(
        "update_stack", service_error_code="ValidationError", service_message="No updates are to be performed."
    )
    with stubber, pytest.raises(ClientError) as error:
        cfn.update_stack(StackName="demo-app-stage", TemplateBody=TEMPLATE)

    assert is_no_updates(error.value)
    assert not is_missing_stack(error.value)


# ------------------------------------------------------------------------------------------ describe


def test_describe_of_a_missing_stack_has_no_status(cfn: CloudFormationClient) -> None:
    state = describe(cfn, "demo-app", REGION)

    assert state == StackState(name="demo-app", region=REGION, status=None)
    assert not state.exists


def test_describe_of_a_live_stack(cfn: CloudFormationClient) -> None:
    stack_id = cfn.create_stack(StackName="demo-app", TemplateBody=TEMPLATE)["StackId"]

    state = describe(cfn, "demo-app", REGION)

    assert state == StackState(name="demo-app", region=REGION, status="CREATE_COMPLETE", stack_id=stack_id)
    assert state.exists


def test_describe_shows_the_rollback_triggers_the_stack_keeps(cfn: CloudFormationClient) -> None:
    alarm = f"arn:aws:cloudwatch:{REGION}:123456789012:alarm:app-5xx"
    boto3.client("cloudwatch", region_name=REGION).put_metric_alarm(
        AlarmName="app-5xx",
        MetricName="5xx",
        Namespace="App",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanThreshold",
    )  # a trigger that names no alarm rolls the creation back
    cfn.create_stack(
        StackName="demo-app",
        TemplateBody=TEMPLATE,
        RollbackConfiguration={"RollbackTriggers": [{"Arn": alarm, "Type": "AWS::CloudWatch::Alarm"}]},
    )
    cfn.create_stack(StackName="other-app", TemplateBody=TEMPLATE)

    assert describe(cfn, "demo-app", REGION).rollback_triggers == (alarm,)
    assert describe(cfn, "other-app", REGION).rollback_triggers == ()


def test_describe_of_a_deleted_stack_does_not_exist(cfn: CloudFormationClient) -> None:
    cfn.create_stack(StackName="demo-app", TemplateBody=TEMPLATE)
    cfn.delete_stack(StackName="demo-app")

    assert not describe(cfn, "demo-app", REGION).exists
    assert not StackState(name="demo-app", region=REGION, status="DELETE_COMPLETE").exists


def test_review_in_progress_placeholder_exists_and_is_not_busy(cfn: CloudFormationClient) -> None:
    """GIVEN a production stack made by a CREATE change set never executed THEN it exists as a
    REVIEW_IN_PROGRESS placeholder that can be deleted at once (not busy)."""
    cfn.create_change_set(
        StackName="demo-app", ChangeSetName="pipeline-first", TemplateBody=TEMPLATE, ChangeSetType="CREATE"
    )

    state = describe(cfn, "demo-app", REGION)

    assert state.status == "REVIEW_IN_PROGRESS"
    assert state.exists
    assert not is_busy("REVIEW_IN_PROGRESS")


def test_describe_raises_other_errors(cfn: CloudFormationClient) -> None:
    stubber = Stubber(cfn)
    stubber.add_client_error(
        "describe_stacks", service_error_code="AccessDenied", service_message="not authorized", http_status_code=403
    )
    with stubber, pytest.raises(ClientError, match="AccessDenied"):
        describe(cfn, "demo-app", REGION)


@pytest.mark.parametrize(
    "status",
    [
        "CREATE_IN_PROGRESS",
        "UPDATE_IN_PROGRESS",
        "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
        "UPDATE_ROLLBACK_IN_PROGRESS",
        "DELETE_IN_PROGRESS",
        "IMPORT_IN_PROGRESS",
    ],
)
def test_transitional_states_are_busy(status: str) -> None:
    assert is_busy(status)


@pytest.mark.parametrize(
    "status",
    ["CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "ROLLBACK_COMPLETE", "DELETE_FAILED"],
)
def test_settled_states_are_not_busy(status: str) -> None:
    assert not is_busy(status)


# ---------------------------------------------------------------------------------------- console


def test_console_url_encodes_arns() -> None:
    stack_id = "arn:aws:cloudformation:eu-west-1:123456789012:stack/demo-app/0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9"
    change_set_id = (
        "arn:aws:cloudformation:eu-west-1:123456789012:changeSet/pipeline-0f1e/11112222-3333-4444-5555-666677778888"
    )

    url = console_url("eu-west-1", "stacks/changesets/changes", stackId=stack_id, changeSetId=change_set_id)

    parts = urlsplit(url)
    assert parts.scheme == "https"
    assert parts.netloc == "eu-west-1.console.aws.amazon.com"
    assert parts.path == "/cloudformation/home"
    assert parts.query == "region=eu-west-1"
    path, _, query = parts.fragment.partition("?")
    assert path == "/stacks/changesets/changes"
    assert ":" not in query
    assert "/" not in query
    assert parse_qs(query) == {"stackId": [stack_id], "changeSetId": [change_set_id]}


def test_console_url_encodes_reserved_characters() -> None:
    url = console_url("us-east-1", "stacks/stackinfo", stackId="a&b=c d#e")

    assert url.endswith("#/stacks/stackinfo?stackId=a%26b%3Dc%20d%23e")
    assert parse_qs(urlsplit(url).fragment.partition("?")[2]) == {"stackId": ["a&b=c d#e"]}


@pytest.mark.parametrize("code", ["ChangeSetNotFound", "InvalidChangeSetStatus"])
def test_a_change_set_that_is_gone_or_executing_is_nothing_to_delete(code: str) -> None:
    """DeleteChangeSet answers InvalidChangeSetStatus for a change set being executed or executed: there
    is nothing left to delete, and the caller must not report a deletion."""
    cfn = boto3.client("cloudformation", region_name="us-east-1")
    stubber = Stubber(cfn)
    stubber.add_client_error("delete_change_set", service_error_code=code, http_status_code=400)
    with stubber:
        assert stacks.delete_change_set(cfn, "app", "pipeline-1") is False


def test_any_other_delete_change_set_error_is_raised() -> None:
    cfn = boto3.client("cloudformation", region_name="us-east-1")
    stubber = Stubber(cfn)
    stubber.add_client_error("delete_change_set", service_error_code="AccessDenied", http_status_code=403)
    with stubber, pytest.raises(ClientError):
        stacks.delete_change_set(cfn, "app", "pipeline-1")
