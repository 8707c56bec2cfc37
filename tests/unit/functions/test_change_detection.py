"""change-detection: both production change sets are read, the pipeline gets output variables that say
what approval would release, and the per-resource report goes to the SNS topic."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

import local_aws
from local_aws import FakeLambdaContext
from tests.support.events import continuation_of, job_id_of, load_event
from tests.support.jobs import run_job
from tests.support.notifications import Inbox
from tests.support.solution import REQUIRED_PARAMETERS, apply_environment, resolved

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient

PRIMARY = "us-east-1"
SECONDARY = REQUIRED_PARAMETERS["SecondaryRegion"]
STACK = REQUIRED_PARAMETERS["ApplicationStackName"]
SOLUTION_STACK = "release-pipeline"
EXECUTION_ID = "e1a2b3c4-0000-4000-8000-000000000001"
CHANGE_SET = f"pipeline-{EXECUTION_ID}"
OUTPUT_VARIABLES = {"HasChanges", "PrimaryHasChanges", "SecondaryHasChanges", "Summary", "ReviewUrl"}
QUEUE = {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "demo-queue", "DelaySeconds": 0}}
TOPIC = {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "demo-topic"}}
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
PRODUCTION: dict[str, Any] = {"Queue": QUEUE, "Topic": TOPIC}
# The change under review: the queue is modified, the topic removed, a role added.
CHANGED: dict[str, Any] = {
    "Queue": {**QUEUE, "Properties": {"QueueName": "demo-queue", "DelaySeconds": 5}},
    "AppRole": ROLE,
}


def template(resources: dict[str, Any]) -> str:
    return json.dumps({"AWSTemplateFormatVersion": "2010-09-09", "Resources": resources})


def cfn(region: str) -> CloudFormationClient:
    client: CloudFormationClient = boto3.client("cloudformation", region_name=region)
    return client


@pytest.fixture
def topic_arn(aws: None) -> str:
    return boto3.client("sns", region_name=PRIMARY).create_topic(Name="release-pipeline-notifications")["TopicArn"]


@pytest.fixture
def inbox(topic_arn: str) -> Inbox:
    """What the notification topic's subscribers receive."""
    return Inbox(topic_arn)


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch, topic_arn: str) -> dict[str, str]:
    """ChangeDetectionFunction's variables exactly as template.yaml sets them."""
    solution = resolved(region=PRIMARY, stack_name=SOLUTION_STACK, physical={"NotificationTopic": {"Ref": topic_arn}})
    environment = apply_environment(monkeypatch, "ChangeDetectionFunction", solution)
    assert environment["CHANGE_SET_PREFIX"] == "pipeline-"
    assert environment["TOPIC_ARN"] == topic_arn
    return environment


def deploy(region: str, resources: dict[str, Any] = PRODUCTION, stack: str = STACK) -> None:
    """The production stack as it runs today."""
    cfn(region).create_stack(StackName=stack, TemplateBody=template(resources))


def propose(
    region: str, resources: dict[str, Any], change_set_type: str = "UPDATE", stack: str = STACK
) -> tuple[str, str]:
    """The CheckChanges stage's change set for this execution; returns (change set id, stack id)."""
    created = cfn(region).create_change_set(
        StackName=stack,
        ChangeSetName=CHANGE_SET,
        TemplateBody=template(resources),
        ChangeSetType=change_set_type,  # type: ignore[arg-type]
    )
    return created["Id"], created["StackId"]


def deploy_and_propose(primary: dict[str, Any], secondary: dict[str, Any]) -> tuple[tuple[str, str], tuple[str, str]]:
    """Both production stacks deployed, then this execution's change set proposing ``primary`` and
    ``secondary``; returns (change set id, stack id) for the primary and for the secondary."""
    deploy(PRIMARY)
    deploy(SECONDARY)
    return propose(PRIMARY, primary), propose(SECONDARY, secondary)


def invoke(event: dict[str, Any], context: FakeLambdaContext) -> local_aws.ReportedJobResult:
    return run_job("change-detection", event, context)


def assert_final_outputs(result: local_aws.ReportedJobResult) -> dict[str, str]:
    assert result.status == "Succeeded"
    assert result.continuation_token is None
    assert set(result.output_variables) == OUTPUT_VARIABLES
    for name, value in result.output_variables.items():
        assert 0 < len(value) < 1000, name
    return result.output_variables


def assert_failed(result: local_aws.ReportedJobResult, *expected: str) -> None:
    assert result.status == "Failed"
    assert result.output_variables == {}
    assert result.failure_details is not None
    for text in expected:
        assert text in result.failure_details["message"]


def report_line(report: str, logical_id: str) -> str:
    (line,) = [line for line in report.splitlines() if f" {logical_id} (" in line]
    return line


def review_link(url: str) -> tuple[str, str, str]:
    """(Region, stack id, change set id) of a CloudFormation console link to a change set."""
    parts = urlsplit(url)
    path, _, query = parts.fragment.partition("?")
    assert path == "/stacks/changesets/changes", url
    fields = parse_qs(query)
    assert set(fields) == {"stackId", "changeSetId"}, url
    assert parts.netloc == f"{parse_qs(parts.query)['region'][0]}.console.aws.amazon.com", url
    return parse_qs(parts.query)["region"][0], fields["stackId"][0], fields["changeSetId"][0]


def test_changes_in_both_regions_are_reported_and_published(inbox: Inbox, lambda_context: FakeLambdaContext) -> None:
    (primary_change_set, primary_stack), (secondary_change_set, _) = deploy_and_propose(
        CHANGED, {**PRODUCTION, "AppRole": ROLE}
    )

    result = invoke(load_event("change-detection", "job"), lambda_context)

    outputs = assert_final_outputs(result)
    assert outputs["HasChanges"] == "true"
    assert outputs["PrimaryHasChanges"] == "true"
    assert outputs["SecondaryHasChanges"] == "true"
    assert f"primary {PRIMARY}: +1 ~1 -1" in outputs["Summary"]
    assert f"secondary {SECONDARY}: +1 ~0 -0" in outputs["Summary"]
    assert review_link(outputs["ReviewUrl"]) == (PRIMARY, primary_stack, primary_change_set)
    ((report, subject),) = inbox.messages()
    assert subject is not None
    assert STACK in subject
    primary_part, secondary_part = report.split(f"stack {STACK} in {SECONDARY}")
    assert "Modify" in report_line(primary_part, "Queue")
    assert "(AWS::SQS::Queue)" in report_line(primary_part, "Queue")
    assert "[permissions]" not in report_line(primary_part, "Queue")
    assert "Remove" in report_line(primary_part, "Topic")
    assert "(AWS::SNS::Topic)" in report_line(primary_part, "Topic")
    for part in (primary_part, secondary_part):
        role = report_line(part, "AppRole")
        assert "Add" in role
        assert "(AWS::IAM::Role)" in role
        assert "[permissions]" in role
    assert " Queue (" not in secondary_part
    links = [review_link(line.split("Review: ")[1]) for line in report.splitlines() if "Review: " in line]
    assert [(region, change_set) for region, _, change_set in links] == [
        (PRIMARY, primary_change_set),
        (SECONDARY, secondary_change_set),
    ]


def test_primary_unchanged_and_secondary_changed(inbox: Inbox, lambda_context: FakeLambdaContext) -> None:
    """GIVEN the primary change set FAILED as empty (AWS's reason) and the secondary one has changes
    THEN only the secondary Region has changes, the report is sent and the review link is the secondary's."""
    _, (secondary_change_set, secondary_stack) = deploy_and_propose(PRODUCTION, CHANGED)
    described = cfn(PRIMARY).describe_change_set(StackName=STACK, ChangeSetName=CHANGE_SET)
    assert described["Status"] == "FAILED"
    assert described["StatusReason"] == local_aws.NO_CHANGES_REASON

    result = invoke(load_event("change-detection", "job"), lambda_context)

    outputs = assert_final_outputs(result)
    assert outputs["PrimaryHasChanges"] == "false"
    assert outputs["SecondaryHasChanges"] == "true"
    assert outputs["HasChanges"] == "true"
    assert f"primary {PRIMARY}: no changes" in outputs["Summary"]
    assert f"secondary {SECONDARY}: +1 ~1 -1" in outputs["Summary"]
    assert review_link(outputs["ReviewUrl"]) == (SECONDARY, secondary_stack, secondary_change_set)
    assert len(inbox.messages()) == 1


def test_no_changes_in_either_region_sends_nothing(inbox: Inbox, lambda_context: FakeLambdaContext) -> None:
    deploy_and_propose(PRODUCTION, PRODUCTION)

    result = invoke(load_event("change-detection", "job"), lambda_context)

    outputs = assert_final_outputs(result)
    assert outputs["HasChanges"] == "false"
    assert outputs["PrimaryHasChanges"] == "false"
    assert outputs["SecondaryHasChanges"] == "false"
    assert outputs["Summary"] == f"primary {PRIMARY}: no changes; secondary {SECONDARY}: no changes"
    assert inbox.messages() == []


def test_a_change_to_outputs_only_is_still_a_change(inbox: Inbox, lambda_context: FakeLambdaContext) -> None:
    """GIVEN a new template that changes only an output WHEN the change set is complete with no resource
    change THEN the change still counts (it must be deployed and recorded), and the summary says why."""
    deploy(PRIMARY)
    deploy(SECONDARY)
    body = json.loads(template(PRODUCTION))
    body["Outputs"] = {"Version": {"Value": "2"}}
    cfn(PRIMARY).create_change_set(StackName=STACK, ChangeSetName=CHANGE_SET, TemplateBody=json.dumps(body))
    propose(SECONDARY, PRODUCTION)

    result = invoke(load_event("change-detection", "job"), lambda_context)

    outputs = assert_final_outputs(result)
    assert outputs["HasChanges"] == "true"
    assert outputs["PrimaryHasChanges"] == "true"
    assert outputs["SecondaryHasChanges"] == "false"
    assert "no resource changes" in outputs["Summary"]
    assert len(inbox.messages()) == 1


@pytest.mark.parametrize("failed_region", [PRIMARY, SECONDARY])
def test_change_set_failed_for_another_reason_fails_with_cloudformations_reason(
    inbox: Inbox, lambda_context: FakeLambdaContext, failed_region: str
) -> None:
    reason = "Parameters: [DbPassword] must have values"
    deploy_and_propose(CHANGED, CHANGED)
    local_aws.fail_change_set(STACK, CHANGE_SET, failed_region, reason)

    result = invoke(load_event("change-detection", "job"), lambda_context)

    assert_failed(result, reason, failed_region, "FAILED")
    assert inbox.messages() == []
    assert all(r.status == "Failed" for r in local_aws.job_results())


def test_first_release_counts_as_a_change(inbox: Inbox, lambda_context: FakeLambdaContext) -> None:
    """GIVEN neither production stack exists and CREATE change sets made REVIEW_IN_PROGRESS placeholders
    THEN both Regions have changes and the summary says first release."""
    propose(PRIMARY, CHANGED, "CREATE")
    propose(SECONDARY, CHANGED, "CREATE")
    assert cfn(PRIMARY).describe_stacks(StackName=STACK)["Stacks"][0]["StackStatus"] == "REVIEW_IN_PROGRESS"

    result = invoke(load_event("change-detection", "job"), lambda_context)

    outputs = assert_final_outputs(result)
    assert outputs["HasChanges"] == "true"
    assert outputs["PrimaryHasChanges"] == "true"
    assert outputs["SecondaryHasChanges"] == "true"
    assert f"primary {PRIMARY}: +2 ~0 -0 [first release]" in outputs["Summary"]
    assert f"secondary {SECONDARY}: +2 ~0 -0 [first release]" in outputs["Summary"]
    ((report, _),) = inbox.messages()
    assert "first release" in report


def test_first_release_of_the_secondary_only(inbox: Inbox, lambda_context: FakeLambdaContext) -> None:
    """GIVEN the primary runs unchanged and the secondary stack is new THEN only the secondary changes."""
    deploy(PRIMARY)
    propose(PRIMARY, PRODUCTION)
    propose(SECONDARY, PRODUCTION, "CREATE")

    result = invoke(load_event("change-detection", "job"), lambda_context)

    outputs = assert_final_outputs(result)
    assert outputs["PrimaryHasChanges"] == "false"
    assert outputs["SecondaryHasChanges"] == "true"
    assert outputs["HasChanges"] == "true"
    assert "[first release]" in outputs["Summary"].split(";")[1]
    assert "[first release]" not in outputs["Summary"].split(";")[0]
    assert len(inbox.messages()) == 1


@pytest.mark.parametrize("missing_region", [PRIMARY, SECONDARY])
def test_change_set_not_found_fails_saying_so(
    inbox: Inbox, lambda_context: FakeLambdaContext, missing_region: str
) -> None:
    deploy(PRIMARY)
    deploy(SECONDARY)
    for region in (PRIMARY, SECONDARY):
        if region != missing_region:
            propose(region, CHANGED)

    result = invoke(load_event("change-detection", "job"), lambda_context)

    assert_failed(result, CHANGE_SET, missing_region, "does not exist")
    assert inbox.messages() == []


def test_stack_not_found_fails_saying_the_change_set_does_not_exist(
    inbox: Inbox, lambda_context: FakeLambdaContext
) -> None:
    result = invoke(load_event("change-detection", "job"), lambda_context)

    assert_failed(result, CHANGE_SET, "does not exist")
    assert inbox.messages() == []


def test_every_page_of_changes_is_counted(inbox: Inbox, lambda_context: FakeLambdaContext) -> None:
    """GIVEN DescribeChangeSet returns one change per page THEN every change is counted and reported."""
    many = {f"Queue{n}": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": f"q{n}"}} for n in range(30)}
    deploy_and_propose({**CHANGED, **many}, PRODUCTION)
    local_aws.set_change_set_page_size(1)
    first_page = cfn(PRIMARY).describe_change_set(StackName=STACK, ChangeSetName=CHANGE_SET)
    assert len(first_page["Changes"]) == 1
    assert "NextToken" in first_page

    result = invoke(load_event("change-detection", "job"), lambda_context)

    outputs = assert_final_outputs(result)
    assert f"primary {PRIMARY}: +31 ~1 -1" in outputs["Summary"]
    ((report, _),) = inbox.messages()
    for n in range(30):
        assert "Add" in report_line(report, f"Queue{n}")


@pytest.mark.parametrize("pending_status", ["CREATE_PENDING", "CREATE_IN_PROGRESS"])
def test_change_set_still_being_created_continues_then_finishes(
    inbox: Inbox, lambda_context: FakeLambdaContext, pending_status: str
) -> None:
    """GIVEN the secondary change set is still being created WHEN invoked THEN a continuation token and no
    output variables; WHEN re-invoked after it is created THEN the final result with the outputs."""
    deploy_and_propose(CHANGED, CHANGED)
    local_aws.set_change_set_status(STACK, CHANGE_SET, SECONDARY, pending_status)
    first_event = load_event("change-detection", "job")

    first = invoke(first_event, lambda_context)

    assert first.status == "Succeeded"
    assert first.continuation_token is not None
    assert first.output_variables == {}
    assert inbox.messages() == []
    local_aws.set_change_set_status(STACK, CHANGE_SET, SECONDARY, "CREATE_COMPLETE")
    again = continuation_of(load_event("change-detection", "continuation"), first.continuation_token)
    assert job_id_of(again) != job_id_of(first_event)

    second = invoke(again, lambda_context)

    outputs = assert_final_outputs(second)
    assert outputs["HasChanges"] == "true"
    assert outputs["SecondaryHasChanges"] == "true"
    assert f"secondary {SECONDARY}: +1 ~1 -1" in outputs["Summary"]
    assert len(inbox.messages()) == 1
    assert len(local_aws.job_results()) == 2


def test_sample_continuation_event_finishes_with_the_outputs(topic_arn: str, lambda_context: FakeLambdaContext) -> None:
    deploy_and_propose(PRODUCTION, CHANGED)

    result = invoke(load_event("change-detection", "continuation"), lambda_context)

    outputs = assert_final_outputs(result)
    assert outputs["SecondaryHasChanges"] == "true"
    assert outputs["PrimaryHasChanges"] == "false"


@pytest.mark.parametrize(
    "user_parameters",
    ['{"executionId": "#{codepipeline.PipelineExecutionId}"}', "{}", "not json"],
    ids=["unresolved-variable", "missing", "not-json"],
)
def test_bad_execution_id_fails_before_reading_anything(
    inbox: Inbox, lambda_context: FakeLambdaContext, user_parameters: str
) -> None:
    deploy_and_propose(CHANGED, CHANGED)
    event = load_event("change-detection", "job")
    event["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"]["UserParameters"] = user_parameters

    result = invoke(event, lambda_context)

    assert_failed(result, "UserParameters")
    assert inbox.messages() == []


def test_output_values_stay_whole_and_short_with_the_longest_names(
    topic_arn: str, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN production stacks with the longest name the template allows (122 characters) WHEN changed
    THEN every output value is under 1,000 characters and the review link is not cut."""
    long_name = "a" + "-long-stack-name" * 7 + "x" * 9
    assert len(long_name) == 122
    monkeypatch.setenv("PRIMARY_STACK_NAME", long_name)
    monkeypatch.setenv("SECONDARY_STACK_NAME", long_name)
    for region in (PRIMARY, SECONDARY):
        deploy(region, stack=long_name)
    change_set, stack_id = propose(PRIMARY, CHANGED, stack=long_name)
    propose(SECONDARY, CHANGED, stack=long_name)

    result = invoke(load_event("change-detection", "job"), lambda_context)

    outputs = assert_final_outputs(result)
    assert review_link(outputs["ReviewUrl"]) == (PRIMARY, stack_id, change_set)


def change_set_names(region: str) -> list[str]:
    return [s["ChangeSetName"] for s in cfn(region).list_change_sets(StackName=STACK)["Summaries"]]


def test_an_empty_change_set_is_removed_and_a_reviewed_one_kept(
    topic_arn: str, lambda_context: FakeLambdaContext
) -> None:
    """GIVEN the primary change set is empty and the secondary one changes something THEN the empty one is
    deleted (CloudFormation keeps it until another change set of the stack is executed, counting it
    against the stack's change-set limit) and the secondary one stays for DeploySecondary."""
    deploy_and_propose(PRODUCTION, CHANGED)
    assert change_set_names(PRIMARY) == change_set_names(SECONDARY) == [CHANGE_SET]

    outputs = assert_final_outputs(invoke(load_event("change-detection", "job"), lambda_context))

    assert outputs["PrimaryHasChanges"] == "false"
    assert outputs["SecondaryHasChanges"] == "true"
    assert change_set_names(PRIMARY) == []
    assert change_set_names(SECONDARY) == [CHANGE_SET]


def test_unchanged_pushes_leave_no_change_set_behind(topic_arn: str, lambda_context: FakeLambdaContext) -> None:
    """GIVEN many pushes in a row that change nothing THEN no stack collects their empty change sets."""
    deploy(PRIMARY)
    deploy(SECONDARY)
    for push in range(5):
        propose(PRIMARY, PRODUCTION)
        propose(SECONDARY, PRODUCTION)
        event = load_event("change-detection", "job")
        event["CodePipeline.job"]["id"] = f"00000000-0000-4000-8000-00000000000{push}"

        outputs = assert_final_outputs(invoke(event, lambda_context))

        assert outputs["HasChanges"] == "false"
        assert change_set_names(PRIMARY) == change_set_names(SECONDARY) == []
