"""release_pipeline.changes: both production change sets read (every page), what approval would release
said in output variables, the report published only when something changes, empty change sets removed."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.stub import Stubber

import local_aws
from release_pipeline import changes
from release_pipeline.changes import OUTPUT_VARIABLES, ChangeDetectionConfig, RegionChanges, ResourceChange
from release_pipeline.errors import ChangeSetError
from release_pipeline.jobs import OUTPUT_VALUE_LIMIT, SUMMARY_VARIABLE_LIMIT, JobResult
from tests.support.notifications import Inbox
from tests.unit.layer.test_config import environ

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient

CONFIG = ChangeDetectionConfig.from_env(environ(ChangeDetectionConfig))
PRIMARY, SECONDARY = CONFIG.stacks.regions.primary, CONFIG.stacks.regions.secondary
STACK = CONFIG.stacks.primary_stack
assert CONFIG.stacks.secondary_stack == STACK
EXECUTION = "e1a2b3c4-0000-4000-8000-000000000001"
CHANGE_SET = CONFIG.change_set_name(EXECUTION)
STACK_ID = f"arn:aws:cloudformation:{SECONDARY}:123456789012:stack/{STACK}/0a1b2c3d-0000-4000-8000-000000000000"
CHANGE_SET_ID = f"arn:aws:cloudformation:{SECONDARY}:123456789012:changeSet/{CHANGE_SET}/1234"

QUEUE: dict[str, Any] = {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "orders", "DelaySeconds": 0}}
ROLE = {
    "Type": "AWS::IAM::Role",
    "Properties": {
        "AssumeRolePolicyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ],
        }
    },
}
PRODUCTION: dict[str, Any] = {"Queue": QUEUE}
CHANGED: dict[str, Any] = {"Queue": {**QUEUE, "Properties": {**QUEUE["Properties"], "DelaySeconds": 5}}, "Role": ROLE}


def body(resources: dict[str, Any]) -> str:
    return json.dumps({"AWSTemplateFormatVersion": "2010-09-09", "Resources": resources})


def cfn(region: str) -> CloudFormationClient:
    client: CloudFormationClient = boto3.client("cloudformation", region_name=region)
    return client


def propose(region: str, resources: dict[str, Any]) -> None:
    """Production runs PRODUCTION; this execution's change set proposes ``resources``."""
    cfn(region).create_stack(StackName=STACK, TemplateBody=body(PRODUCTION))
    cfn(region).create_change_set(StackName=STACK, ChangeSetName=CHANGE_SET, TemplateBody=body(resources))


def change_set_names(region: str) -> list[str]:
    return [s["ChangeSetName"] for s in cfn(region).list_change_sets(StackName=STACK)["Summaries"]]


@pytest.fixture
def inbox(aws: None) -> Inbox:
    boto3.client("sns", region_name=PRIMARY).create_topic(Name=CONFIG.topic_arn.rsplit(":", 1)[1])
    return Inbox(CONFIG.topic_arn)


@pytest.fixture
def stubbed() -> Iterator[tuple[CloudFormationClient, Stubber]]:
    """A CloudFormation client in the secondary Region answering only what a test stubs."""
    client = cfn(SECONDARY)
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def regions(**clients: CloudFormationClient) -> Callable[[str], CloudFormationClient]:
    """cloudformation_for: the given client for a Region (by role), moto's otherwise."""
    by_region = {PRIMARY: clients.get("primary"), SECONDARY: clients.get("secondary")}
    return lambda region: by_region[region] or cfn(region)


def detect(token: dict[str, Any] | None = None, **clients: CloudFormationClient) -> JobResult:
    return changes.detect_changes(
        cloudformation_for=regions(**clients),
        sns=boto3.client("sns", region_name=PRIMARY),
        config=CONFIG,
        change_set_name=CHANGE_SET,
        attempt=int((token or {}).get("attempt", 0)),  # as the handler reads it (Job.token_count)
    )


def described(status: str, **fields: Any) -> dict[str, Any]:
    return {
        "ChangeSetName": CHANGE_SET,
        "ChangeSetId": CHANGE_SET_ID,
        "StackId": STACK_ID,
        "StackName": STACK,
        "Status": status,
        **fields,
    }


def resource(logical_id: str, action: str, resource_type: str = "AWS::SQS::Queue", **extra: str) -> dict[str, Any]:
    return {
        "Type": "Resource",
        "ResourceChange": {"Action": action, "LogicalResourceId": logical_id, "ResourceType": resource_type, **extra},
    }


def stack_answer(status: str) -> dict[str, Any]:
    return {
        "Stacks": [
            {"StackId": STACK_ID, "StackName": STACK, "StackStatus": status, "CreationTime": "2026-01-01T00:00:00Z"}
        ]
    }


# ------------------------------------------------------------------------------------------ read_change_set


def test_every_page_of_a_change_set_is_read(stubbed: tuple[CloudFormationClient, Stubber]) -> None:
    client, stubber = stubbed
    request = {"StackName": STACK, "ChangeSetName": CHANGE_SET}
    first = described(
        "CREATE_COMPLETE",
        ExecutionStatus="AVAILABLE",
        Changes=[resource("Queue", "Modify", Replacement="True")],
        NextToken="page-2",
    )
    second = described(
        "CREATE_COMPLETE",
        ExecutionStatus="AVAILABLE",
        Changes=[resource("Role", "Add", "AWS::IAM::Role"), resource("Topic", "Remove", "AWS::SNS::Topic")],
    )
    stubber.add_response("describe_change_set", first, request)
    stubber.add_response("describe_change_set", second, {**request, "NextToken": "page-2"})
    stubber.add_response("describe_stacks", stack_answer("UPDATE_COMPLETE"), {"StackName": STACK})

    result = changes.read_change_set(client, "secondary", SECONDARY, STACK, CHANGE_SET)

    assert result.state == "CHANGES"
    assert [(c.logical_id, c.action) for c in result.changes] == [
        ("Queue", "Modify"),
        ("Role", "Add"),
        ("Topic", "Remove"),
    ]
    assert result.counts() == "+1 ~1 -1 (1 replaced)"
    assert not result.first_release
    assert (result.stack_id, result.change_set_id) == (STACK_ID, CHANGE_SET_ID)


@pytest.mark.parametrize("status", sorted(changes.PENDING))
def test_a_change_set_still_being_made_is_pending(stubbed: tuple[CloudFormationClient, Stubber], status: str) -> None:
    client, stubber = stubbed
    stubber.add_response("describe_change_set", described(status, ExecutionStatus="UNAVAILABLE"))

    result = changes.read_change_set(client, "secondary", SECONDARY, STACK, CHANGE_SET)

    assert result.state == "PENDING"
    assert not result.has_changes
    assert result.changes == ()


def test_an_empty_change_set_is_no_changes(aws: None) -> None:
    propose(PRIMARY, PRODUCTION)

    result = changes.read_change_set(cfn(PRIMARY), "primary", PRIMARY, STACK, CHANGE_SET)

    assert result.state == "NO_CHANGES"
    assert result.counts() == "no changes"


@pytest.mark.parametrize(
    "reason", ["The submitted information didn't contain changes.", "No updates are to be performed."]
)
def test_either_reason_aws_gives_for_an_empty_change_set_is_no_changes(
    stubbed: tuple[CloudFormationClient, Stubber], reason: str
) -> None:
    client, stubber = stubbed
    stubber.add_response("describe_change_set", described("FAILED", StatusReason=reason))

    assert changes.read_change_set(client, "secondary", SECONDARY, STACK, CHANGE_SET).state == "NO_CHANGES"


def test_a_change_set_failed_for_another_reason_is_an_error_with_that_reason(aws: None) -> None:
    propose(SECONDARY, CHANGED)
    local_aws.fail_change_set(STACK, CHANGE_SET, SECONDARY, "Parameters: [DbPassword] must have values")

    with pytest.raises(ChangeSetError) as raised:
        changes.read_change_set(cfn(SECONDARY), "secondary", SECONDARY, STACK, CHANGE_SET)

    assert str(raised.value) == (
        f"The secondary change set on {STACK} in {SECONDARY} is FAILED: Parameters: [DbPassword] must have values"
    )


def test_a_failed_change_set_without_a_reason_says_so(stubbed: tuple[CloudFormationClient, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_response("describe_change_set", described("FAILED"))

    with pytest.raises(ChangeSetError, match="is FAILED: no reason given"):
        changes.read_change_set(client, "secondary", SECONDARY, STACK, CHANGE_SET)


@pytest.mark.parametrize("execution_status", sorted(changes.NOT_EXECUTABLE))
def test_a_change_set_that_cannot_be_executed_is_an_error(
    stubbed: tuple[CloudFormationClient, Stubber], execution_status: str
) -> None:
    client, stubber = stubbed
    stubber.add_response("describe_change_set", described("CREATE_COMPLETE", ExecutionStatus=execution_status))

    with pytest.raises(ChangeSetError, match=f"cannot be executed \\(execution status {execution_status}\\)"):
        changes.read_change_set(client, "secondary", SECONDARY, STACK, CHANGE_SET)


@pytest.mark.parametrize("stack_exists", [True, False], ids=["no-change-set", "no-stack"])
def test_a_missing_change_set_names_role_stack_and_region(aws: None, stack_exists: bool) -> None:
    if stack_exists:
        cfn(SECONDARY).create_stack(StackName=STACK, TemplateBody=body(PRODUCTION))

    with pytest.raises(ChangeSetError) as raised:
        changes.read_change_set(cfn(SECONDARY), "secondary", SECONDARY, STACK, CHANGE_SET)

    assert str(raised.value) == (
        f"The secondary change set {CHANGE_SET} on stack {STACK} in {SECONDARY} does not exist: "
        "the CheckChanges stage should have created it"
    )
    assert raised.value.__cause__ is None


def test_a_change_set_on_a_placeholder_stack_is_a_first_release(aws: None) -> None:
    cfn(PRIMARY).create_change_set(
        StackName=STACK, ChangeSetName=CHANGE_SET, TemplateBody=body(CHANGED), ChangeSetType="CREATE"
    )

    result = changes.read_change_set(cfn(PRIMARY), "primary", PRIMARY, STACK, CHANGE_SET)

    assert result.first_release
    assert result.counts() == "+2 ~0 -0 [first release]"


def test_only_resource_changes_are_counted_and_replacement_only_for_a_modify(
    stubbed: tuple[CloudFormationClient, Stubber],
) -> None:
    client, stubber = stubbed
    answer = described(
        "CREATE_COMPLETE",
        ExecutionStatus="AVAILABLE",
        Changes=[resource("New", "Add", Replacement="True"), resource("Imported", "Import")],
    )
    stubber.add_response("describe_change_set", answer)
    stubber.add_response("describe_stacks", stack_answer("UPDATE_COMPLETE"))

    result = changes.read_change_set(client, "secondary", SECONDARY, STACK, CHANGE_SET)

    assert [c.replacement for c in result.changes] == ["N/A", "N/A"]
    assert result.counts() == "+1 ~0 -0 (1 imported)"


@pytest.mark.parametrize(
    ("resource_type", "sensitive"),
    [
        ("AWS::IAM::Role", True),
        ("AWS::IAM::ManagedPolicy", True),
        ("AWS::IAM::InstanceProfile", True),
        ("AWS::Lambda::Permission", True),
        ("AWS::S3::BucketPolicy", True),
        ("AWS::SQS::QueuePolicy", True),
        ("AWS::Cognito::UserPoolUser", True),
        ("AWS::SQS::Queue", False),
        ("AWS::Lambda::Function", False),
        ("AWS::S3::Bucket", False),
    ],
)
def test_permission_changes_are_flagged(resource_type: str, sensitive: bool) -> None:
    change = ResourceChange("R", resource_type, "Add", "N/A", None)

    assert change.security_sensitive is sensitive


def test_the_review_link_points_at_the_change_set_or_else_the_stack() -> None:
    with_ids = RegionChanges(
        "secondary", SECONDARY, STACK, CHANGE_SET, "CHANGES", stack_id=STACK_ID, change_set_id=CHANGE_SET_ID
    )
    without = RegionChanges("secondary", SECONDARY, STACK, CHANGE_SET, "CHANGES")

    assert "#/stacks/changesets/changes?stackId=arn%3Aaws%3Acloudformation" in with_ids.review_url()
    assert with_ids.review_url().startswith(f"https://{SECONDARY}.console.aws.amazon.com/")
    assert without.review_url().endswith(f"#/stacks?filteringText={STACK}")


# ------------------------------------------------------------------------------------------ detect_changes


def test_nothing_to_release_deletes_both_empty_change_sets_and_publishes_nothing(inbox: Inbox) -> None:
    propose(PRIMARY, PRODUCTION)
    propose(SECONDARY, PRODUCTION)

    result = detect()

    assert result.continuation_token is None
    assert result.output_variables["HasChanges"] == "false"
    assert result.output_variables["PrimaryHasChanges"] == "false"
    assert result.output_variables["SecondaryHasChanges"] == "false"
    assert change_set_names(PRIMARY) == []
    assert change_set_names(SECONDARY) == []
    assert inbox.messages() == []


def test_only_the_empty_change_set_is_deleted_and_the_report_is_published_once(inbox: Inbox) -> None:
    propose(PRIMARY, PRODUCTION)
    propose(SECONDARY, CHANGED)

    result = detect()

    variables = result.output_variables
    assert (variables["HasChanges"], variables["PrimaryHasChanges"], variables["SecondaryHasChanges"]) == (
        "true",
        "false",
        "true",
    )
    assert change_set_names(PRIMARY) == []
    assert change_set_names(SECONDARY) == [CHANGE_SET]  # the one to review and deploy stays
    assert f"region={SECONDARY}" in variables["ReviewUrl"]
    ((report, subject),) = inbox.messages()
    assert subject == f"Changes to review: {STACK}"
    assert f"secondary {SECONDARY}: +1 ~1 -0" in report
    role_line = next(line for line in report.splitlines() if " Role (" in line)
    assert role_line.endswith("[permissions]")
    queue_line = next(line for line in report.splitlines() if " Queue (" in line)
    assert "replacement=" in queue_line
    assert "[permissions]" not in queue_line
    assert report.splitlines()[-1] == "Changes to permissions (IAM and resource policies): Role"


def test_output_variables_are_the_five_the_pipeline_reads_within_its_limits(inbox: Inbox) -> None:
    propose(PRIMARY, CHANGED)
    propose(SECONDARY, CHANGED)

    result = detect()

    assert tuple(result.output_variables) == OUTPUT_VARIABLES
    assert len(result.output_variables["Summary"]) <= SUMMARY_VARIABLE_LIMIT
    for value in result.output_variables.values():
        assert 0 < len(value) <= OUTPUT_VALUE_LIMIT
    assert f"region={PRIMARY}" in result.output_variables["ReviewUrl"]  # both changed: the primary is reviewed
    assert result.summary == f"primary {PRIMARY}: +1 ~1 -0; secondary {SECONDARY}: +1 ~1 -0"


def test_a_pending_change_set_keeps_waiting_and_changes_nothing(
    inbox: Inbox, stubbed: tuple[CloudFormationClient, Stubber]
) -> None:
    """While one change set is still being made, the empty other one is not deleted yet and nothing is
    published: the next check decides with both."""
    client, stubber = stubbed
    propose(PRIMARY, PRODUCTION)
    stubber.add_response("describe_change_set", described("CREATE_IN_PROGRESS"))
    stubber.add_response("describe_change_set", described("CREATE_PENDING"))

    first = detect(secondary=client)
    second = detect(json.loads(first.continuation_token or "null"), secondary=client)

    assert first.continuation_token is not None
    assert json.loads(first.continuation_token) == {"attempt": 1}
    assert json.loads(second.continuation_token or "null") == {"attempt": 2}
    assert first.output_variables == {}
    assert second.summary == f"Waiting for change sets (check 2): secondary {SECONDARY}"
    assert change_set_names(PRIMARY) == [CHANGE_SET]
    assert inbox.messages() == []


def test_a_failed_change_set_fails_the_detection_before_anything_is_deleted_or_sent(inbox: Inbox) -> None:
    propose(PRIMARY, PRODUCTION)
    propose(SECONDARY, CHANGED)
    local_aws.fail_change_set(STACK, CHANGE_SET, SECONDARY, "Template format error")

    with pytest.raises(ChangeSetError, match="Template format error"):
        detect()

    assert change_set_names(PRIMARY) == [CHANGE_SET]
    assert inbox.messages() == []
