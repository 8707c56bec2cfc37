"""execution-gate: a change waits until every earlier execution has finished and the stage settled."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

import local_aws
from local_aws import FakeLambdaContext
from local_aws.cloudformation import ResolvedTemplate
from release_pipeline import artifacts, clients
from release_pipeline.values import S3Location
from tests.support.action_executions import serve_source_action
from tests.support.events import continuation_of, load_event
from tests.support.jobs import run_job
from tests.support.solution import ARTIFACT_BUCKET, apply_environment, create_pipeline, resolved

ACCOUNT, REGION = "123456789012", "us-east-1"
PIPELINE = resolved().resource("Pipeline")["Properties"]["Name"]
STAGE_STACK = "demo-app-stage"


NOT_STRINGS = '{"Port": 8080}'
WITH_BAD_SET = {
    "PrimaryParameters": lambda: resolved(PrimaryParameters=NOT_STRINGS),
    "SecondaryParameters": lambda: resolved(SecondaryParameters=NOT_STRINGS),
    "StageParameters": lambda: resolved(StageParameters=NOT_STRINGS),
}


def install(monkeypatch: pytest.MonkeyPatch, template: ResolvedTemplate | None = None) -> None:
    """ExecutionGateFunction's variables exactly as ``template`` (template.yaml by default) sets them, and
    its pipeline in moto (the pipeline's actions carry the parameter sets)."""
    template = template or resolved()
    environment = apply_environment(monkeypatch, "ExecutionGateFunction", template)
    assert environment["PIPELINE_NAME"] == PIPELINE
    assert environment["STAGE_STACK_NAME"] == STAGE_STACK
    assert not any(name.endswith("_PARAMETERS") for name in environment)
    create_pipeline(boto3.client("iam"), boto3.client("codepipeline", region_name=REGION), PIPELINE, template=template)


@pytest.fixture
def env(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch)


def executions(*statuses: str) -> list[str]:
    """Start executions oldest first with the given statuses, a minute apart; returns their ids, oldest
    first."""
    client = boto3.client("codepipeline", region_name=REGION)
    ids = []
    start = datetime.now(UTC) - timedelta(hours=1)
    for index, status in enumerate(statuses):
        execution_id = client.start_pipeline_execution(name=PIPELINE)["pipelineExecutionId"]
        local_aws.set_execution_status(PIPELINE, execution_id, status, started_at=start + timedelta(minutes=index))
        ids.append(execution_id)
    return ids


def start_times() -> dict[str, datetime]:
    """Each execution's start time, as ListPipelineExecutions reports it."""
    summaries = boto3.client("codepipeline", region_name=REGION).list_pipeline_executions(pipelineName=PIPELINE)
    return {s["pipelineExecutionId"]: s["startTime"] for s in summaries["pipelineExecutionSummaries"]}


def gate_event(execution_id: str) -> dict[str, Any]:
    event = load_event("execution-gate", "job")
    event["CodePipeline.job"]["id"] = str(uuid.uuid4())
    configuration = event["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"]
    configuration["UserParameters"] = json.dumps({"executionId": execution_id})
    return event


def run(event: dict[str, Any], context: FakeLambdaContext) -> local_aws.ReportedJobResult:
    return run_job("execution-gate", event, context)


@pytest.mark.usefixtures("env")
def test_first_execution_goes_on_at_once(lambda_context: FakeLambdaContext) -> None:
    (mine,) = executions("InProgress")
    result = run(gate_event(mine), lambda_context)
    assert result.status == "Succeeded"
    assert result.continuation_token is None


@pytest.mark.usefixtures("env")
def test_finished_earlier_executions_do_not_hold_a_change(lambda_context: FakeLambdaContext) -> None:
    *_, mine = executions("Succeeded", "Failed", "Stopped", "Superseded", "Cancelled", "InProgress")
    result = run(gate_event(mine), lambda_context)
    assert result.status == "Succeeded"
    assert result.continuation_token is None


@pytest.mark.usefixtures("env")
def test_a_change_waits_while_an_earlier_execution_is_in_progress(lambda_context: FakeLambdaContext) -> None:
    """GIVEN an earlier execution waiting for approval WHEN the next one reaches CheckChanges
    THEN it keeps waiting (continuation, no final result) and goes on once the earlier one ends."""
    earlier, mine = executions("InProgress", "InProgress")
    first = run(gate_event(mine), lambda_context)
    assert first.status == "Succeeded"
    assert first.continuation_token is not None
    assert not first.final
    assert earlier in (first.execution_details or {})["summary"]

    again = continuation_of(gate_event(mine), first.continuation_token)
    still = run(again, lambda_context)
    assert still.continuation_token is not None

    local_aws.set_execution_status(PIPELINE, earlier, "Succeeded")
    done = run(continuation_of(gate_event(mine), still.continuation_token), lambda_context)
    assert done.continuation_token is None
    assert done.final


@pytest.mark.usefixtures("env")
def test_a_later_execution_never_holds_an_earlier_one(lambda_context: FakeLambdaContext) -> None:
    mine, _later = executions("InProgress", "InProgress")
    result = run(gate_event(mine), lambda_context)
    assert result.continuation_token is None


@pytest.mark.usefixtures("env")
def test_a_change_waits_for_a_stage_stack_that_is_still_changing(lambda_context: FakeLambdaContext) -> None:
    (mine,) = executions("InProgress")
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName=STAGE_STACK,
        TemplateBody=json.dumps({"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}),
    )
    local_aws.set_stack_status(STAGE_STACK, REGION, "DELETE_IN_PROGRESS")
    result = run(gate_event(mine), lambda_context)
    assert result.continuation_token is not None
    assert "DELETE_IN_PROGRESS" in (result.execution_details or {})["summary"]


@pytest.mark.usefixtures("env")
def test_an_execution_the_pipeline_does_not_know_fails_the_job(lambda_context: FakeLambdaContext) -> None:
    executions("InProgress")
    result = run(gate_event("0f1e2d3c-0000-4000-8000-00000000dead"), lambda_context)
    assert result.status == "Failed"
    assert "is not among the executions" in (result.failure_details or {})["message"]


@pytest.mark.usefixtures("env")
def test_an_unresolved_execution_id_fails_the_job(lambda_context: FakeLambdaContext) -> None:
    executions("InProgress")
    result = run(gate_event("#{codepipeline.PipelineExecutionId}"), lambda_context)
    assert result.status == "Failed"
    assert "executionId" in (result.failure_details or {})["message"]


@pytest.mark.parametrize("label", ["PrimaryParameters", "SecondaryParameters", "StageParameters"])
def test_a_parameter_set_that_is_not_an_object_of_strings_fails_before_any_change_set(
    aws: None, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch, label: str
) -> None:
    """GIVEN a parameter set with a number value (as the pipeline's action carries it) WHEN the gate,
    the first action of CheckChanges, runs THEN the job fails naming that set and no other, so no
    change set is ever made from it."""
    install(monkeypatch, WITH_BAD_SET[label]())
    (mine,) = executions("InProgress")
    result = run(gate_event(mine), lambda_context)
    assert result.status == "Failed"
    message = (result.failure_details or {})["message"]
    assert label in message
    assert "JSON object whose values are all strings" in message
    others = set(WITH_BAD_SET) - {label}
    assert not any(other in message for other in others)


def test_the_parameter_sets_are_checked_on_the_first_invocation_only(
    aws: None, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN a gate already waiting (continuation) THEN it does not read the pipeline's definition again:
    the sets were proven when the action started."""
    install(monkeypatch, WITH_BAD_SET["PrimaryParameters"]())
    earlier, mine = executions("InProgress", "InProgress")
    again = continuation_of(gate_event(mine), json.dumps({"polls": 1}))
    result = run(again, lambda_context)
    assert result.status == "Succeeded"
    assert earlier in (result.execution_details or {})["summary"]


@pytest.mark.usefixtures("env")
def test_the_order_of_executions_is_their_start_time_not_the_listing(lambda_context: FakeLambdaContext) -> None:
    """GIVEN two running executions listed in one order but started in the other
    THEN only the one that really started first holds the other back."""
    listed_first, listed_second = executions("InProgress", "InProgress")
    started = start_times()
    # listed_second started first:
    local_aws.set_execution_status(PIPELINE, listed_first, "InProgress", started_at=started[listed_second])
    local_aws.set_execution_status(PIPELINE, listed_second, "InProgress", started_at=started[listed_first])
    assert start_times()[listed_second] < start_times()[listed_first]

    first = run(gate_event(listed_second), lambda_context)
    assert first.continuation_token is None

    second = run(gate_event(listed_first), lambda_context)
    assert second.continuation_token is not None
    assert listed_second in (second.execution_details or {})["summary"]


# ------------------------------------------------------------ change sets earlier executions left behind

APP = "demo-app"
SECONDARY = "eu-west-1"
APP_TEMPLATE = json.dumps({"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}})
CHANGED_TEMPLATE = json.dumps(
    {"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}, "Topic": {"Type": "AWS::SNS::Topic"}}}
)


def review(region: str, execution_id: str, *, change_set_type: str = "UPDATE", name: str | None = None) -> None:
    """The change set CheckChanges made for ``execution_id`` on the production stack in ``region``."""
    boto3.client("cloudformation", region_name=region).create_change_set(
        StackName=APP,
        ChangeSetName=name or f"pipeline-{execution_id}",
        TemplateBody=CHANGED_TEMPLATE,
        ChangeSetType=change_set_type,  # type: ignore[arg-type]
    )


def change_sets_on(region: str) -> list[str]:
    summaries = boto3.client("cloudformation", region_name=region).list_change_sets(StackName=APP)["Summaries"]
    return sorted(s["ChangeSetName"] for s in summaries)


@pytest.mark.usefixtures("env")
def test_passing_the_gate_removes_the_change_sets_earlier_executions_left(lambda_context: FakeLambdaContext) -> None:
    """GIVEN a rejected execution kept its reviewed change sets (for a Retry) and an interrupted one left
    another WHEN a later execution passes the gate THEN they are removed: a retry of those executions
    could only deploy stale changes, and CloudFormation would count them against the stack's limit.
    A change set that is not the pipeline's is left alone."""
    rejected, interrupted, mine = executions("Failed", "Stopped", "InProgress")
    for region in (REGION, SECONDARY):
        boto3.client("cloudformation", region_name=region).create_stack(StackName=APP, TemplateBody=APP_TEMPLATE)
        review(region, rejected)
        review(region, interrupted)
        review(region, rejected, name="made-by-hand")

    result = run(gate_event(mine), lambda_context)

    assert result.status == "Succeeded"
    assert result.continuation_token is None
    assert "removed 4 change set(s)" in (result.execution_details or {})["summary"]
    for region in (REGION, SECONDARY):
        assert change_sets_on(region) == ["made-by-hand"]


@pytest.mark.usefixtures("env")
def test_a_waiting_gate_removes_nothing(lambda_context: FakeLambdaContext) -> None:
    """GIVEN an earlier execution still running (its change sets may yet be deployed) THEN the gate waits
    and every change set stays."""
    earlier, mine = executions("InProgress", "InProgress")
    boto3.client("cloudformation", region_name=REGION).create_stack(StackName=APP, TemplateBody=APP_TEMPLATE)
    review(REGION, earlier)

    result = run(gate_event(mine), lambda_context)

    assert result.continuation_token is not None
    assert change_sets_on(REGION) == [f"pipeline-{earlier}"]


@pytest.mark.usefixtures("env")
def test_a_first_release_placeholder_keeps_no_stale_change_set(lambda_context: FakeLambdaContext) -> None:
    """GIVEN a rejected first release left REVIEW_IN_PROGRESS placeholders with their change sets
    THEN the next execution's gate removes the change sets; the placeholder stays for its own CREATE
    change set, and a missing secondary stack is no error."""
    rejected, mine = executions("Failed", "InProgress")
    review(REGION, rejected, change_set_type="CREATE")

    result = run(gate_event(mine), lambda_context)

    assert result.status == "Succeeded"
    assert change_sets_on(REGION) == []
    cfn = boto3.client("cloudformation", region_name=REGION)
    assert cfn.describe_stacks(StackName=APP)["Stacks"][0]["StackStatus"] == "REVIEW_IN_PROGRESS"


@pytest.mark.usefixtures("env")
def test_a_retried_older_execution_never_removes_a_later_running_executions_change_sets(
    lambda_context: FakeLambdaContext,
) -> None:
    """GIVEN A failed at CheckChanges and B (started later) waits for its approval WHEN a person retries
    A's CheckChanges THEN A's gate keeps B's reviewed change sets (B may still deploy them)."""
    older, later = executions("InProgress", "InProgress")
    local_aws.set_execution_status(PIPELINE, older, "InProgress")  # retried
    boto3.client("cloudformation", region_name=REGION).create_stack(StackName=APP, TemplateBody=APP_TEMPLATE)
    review(REGION, later)

    result = run(gate_event(older), lambda_context)

    assert result.status == "Succeeded"
    assert change_sets_on(REGION) == [f"pipeline-{later}"]


@pytest.mark.usefixtures("env")
def test_the_gate_waits_while_a_production_stack_is_returning_to_the_release(
    lambda_context: FakeLambdaContext,
) -> None:
    (mine,) = executions("InProgress")
    boto3.client("cloudformation", region_name=SECONDARY).create_stack(StackName=APP, TemplateBody=APP_TEMPLATE)
    local_aws.set_stack_status(APP, SECONDARY, "UPDATE_IN_PROGRESS")

    result = run(gate_event(mine), lambda_context)

    assert result.continuation_token is not None
    assert f"{APP} in {SECONDARY} (UPDATE_IN_PROGRESS)" in (result.execution_details or {})["summary"]


@pytest.mark.usefixtures("env")
def test_a_return_to_the_release_that_was_rolled_back_fails_the_next_change_naming_the_stack(
    lambda_context: FakeLambdaContext,
) -> None:
    """GIVEN stage-revert's return of the secondary was rolled back by CloudFormation (the Region still
    runs the failed execution's change) THEN the next execution fails at the gate, saying so, before
    any change set is computed against that Region; a rollback of the pipeline's own deploy does not."""
    mine, again = executions("InProgress", "InProgress")
    cfn = boto3.client("cloudformation", region_name=SECONDARY)
    cfn.create_stack(StackName=APP, TemplateBody=APP_TEMPLATE)
    local_aws.fail_resource(APP, SECONDARY, "Topic", "limit", account_id=ACCOUNT)
    cfn.update_stack(StackName=APP, TemplateBody=CHANGED_TEMPLATE, ClientRequestToken="stage-revert-5b1f2c3d")

    result = run(gate_event(mine), lambda_context)

    assert result.status == "Failed"
    message = (result.failure_details or {})["message"]
    assert f"{APP} in {SECONDARY}" in message
    assert "rolled that return back" in message
    local_aws.set_execution_status(PIPELINE, mine, "Failed")
    local_aws.fail_resource(APP, SECONDARY, "Topic", "limit", account_id=ACCOUNT)
    cfn.update_stack(StackName=APP, TemplateBody=CHANGED_TEMPLATE, ClientRequestToken="pipeline-deploy")
    assert run(gate_event(again), lambda_context).status == "Succeeded"


# ------------------------------------------------------------------------------- with a deployment map

OTHER_ACCOUNT = "222233334444"
SOURCE = S3Location(ARTIFACT_BUCKET, "pipeline-release/SourceOutp/Gh7")
DEPLOYMENT_MAP = {
    "Waves": [
        {"Name": "canary", "Targets": [{"Region": "ap-southeast-2", "Account": OTHER_ACCOUNT, "ParameterFile": "p"}]},
        {"Name": "home", "Targets": [{"Region": REGION, "ParameterFile": "p"}]},
    ]
}


def in_other_account(region: str) -> Any:
    role = f"arn:aws:iam::{OTHER_ACCOUNT}:role/multi-region-deploy-{ACCOUNT}"
    return clients.cloudformation_for_targets(REGION, "test")(region, role)


@pytest.mark.usefixtures("env")
def test_with_a_map_passing_the_gate_removes_earlier_change_sets_from_every_target(
    lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN DEPLOYMENT_MAP_PATH and a map with a target in another account and Region, where a rejected
    execution left its change set WHEN the next execution passes the gate THEN it is removed there too."""
    rejected, mine = executions("Failed", "InProgress")
    monkeypatch.setenv("DEPLOYMENT_MAP_PATH", "deploy/map.json")
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=ARTIFACT_BUCKET)
    files = {"deploy/map.json": json.dumps(DEPLOYMENT_MAP).encode(), "p": b"{}"}
    s3.put_object(Bucket=SOURCE.bucket, Key=SOURCE.key, Body=artifacts.build_zip(files))
    requests = serve_source_action(monkeypatch, {mine: SOURCE})
    far = in_other_account("ap-southeast-2")
    far.create_stack(StackName=APP, TemplateBody=APP_TEMPLATE)
    far.create_change_set(StackName=APP, ChangeSetName=f"pipeline-{rejected}", TemplateBody=CHANGED_TEMPLATE)
    boto3.client("cloudformation", region_name=REGION).create_stack(StackName=APP, TemplateBody=APP_TEMPLATE)
    review(REGION, rejected)

    result = run(gate_event(mine), lambda_context)

    assert result.status == "Succeeded"
    assert "removed 2 change set(s)" in (result.execution_details or {})["summary"]
    assert far.list_change_sets(StackName=APP)["Summaries"] == []
    assert change_sets_on(REGION) == []
    assert requests == [{"pipelineExecutionId": mine}]
