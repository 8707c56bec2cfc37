"""release_pipeline.gate: a change is checked only once every earlier execution has finished and the
stacks have settled; then only the change sets earlier, finished executions left are removed."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.stub import Stubber

import local_aws
from release_pipeline import artifacts, clients, gate, review
from release_pipeline.errors import ConfigurationError, PipelineError
from release_pipeline.gate import ExecutionGateConfig
from release_pipeline.jobs import JobResult
from release_pipeline.values import S3Location
from tests.support.action_executions import source_action
from tests.unit.layer.test_config import environ

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_codepipeline import CodePipelineClient

CONFIG = ExecutionGateConfig.from_env(environ(ExecutionGateConfig))
PIPELINE = CONFIG.pipeline_name
PREFIX = CONFIG.change_set_prefix
PRIMARY, SECONDARY = CONFIG.stacks.regions.primary, CONFIG.stacks.regions.secondary
STACK = CONFIG.stacks.primary_stack
STAGE_STACK = CONFIG.stage_stack_name
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
ME = "e0000000-0000-4000-8000-000000000005"
EARLIER_DONE = "e0000000-0000-4000-8000-000000000001"
EARLIER_FAILED = "e0000000-0000-4000-8000-000000000002"
EARLIER_RUNNING = "e0000000-0000-4000-8000-000000000003"
LATER = "e0000000-0000-4000-8000-000000000009"
APP = json.dumps({"Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "orders"}}}})
CHANGED = json.dumps({"Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "orders2"}}}})
STACK_ID = f"arn:aws:cloudformation:{SECONDARY}:123456789012:stack/{STACK}/0a1b2c3d-0000-4000-8000-000000000000"
CFN_ACTION = {"category": "Deploy", "owner": "AWS", "provider": "CloudFormation", "version": "1"}


def execution(execution_id: str, status: str, minutes: int) -> dict[str, Any]:
    """An execution summary, started ``minutes`` after T0."""
    return {"pipelineExecutionId": execution_id, "status": status, "startTime": T0 + timedelta(minutes=minutes)}


def listing(*summaries: dict[str, Any]) -> dict[str, Any]:
    """ListPipelineExecutions' answer: newest first, as AWS lists them."""
    return {"pipelineExecutionSummaries": sorted(summaries, key=lambda s: s["startTime"], reverse=True)}


def declaration(primary: str = "{}", secondary: str = "{}", stage: str = "{}") -> dict[str, Any]:
    def action(name: str, overrides: str) -> dict[str, Any]:
        return {"name": name, "actionTypeId": CFN_ACTION, "configuration": {"ParameterOverrides": overrides}}

    return {
        "pipeline": {
            "name": PIPELINE,
            "roleArn": "arn:aws:iam::123456789012:role/pipeline",
            "stages": [
                {
                    "name": "CheckChanges",
                    "actions": [action("PrimaryChangeSet", primary), action("SecondaryChangeSet", secondary)],
                },
                {"name": "Stage", "actions": [action("UpdateStage", stage)]},
            ],
        }
    }


def cfn(region: str) -> CloudFormationClient:
    client: CloudFormationClient = boto3.client("cloudformation", region_name=region)
    return client


def moto_regions(region: str) -> CloudFormationClient:
    return cfn(region)


@pytest.fixture
def pipeline() -> Iterator[tuple[CodePipelineClient, Stubber]]:
    """A CodePipeline client answering only what a test stubs: any other call fails the test."""
    client: CodePipelineClient = boto3.client("codepipeline", region_name=PRIMARY)
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def secondary() -> Iterator[tuple[CloudFormationClient, Stubber]]:
    """A secondary-Region CloudFormation client answering only what a test stubs."""
    client = cfn(SECONDARY)
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def wait(
    client: CodePipelineClient,
    token: dict[str, Any] | None = None,
    cloudformation_for: Callable[[str], CloudFormationClient] = moto_regions,
) -> JobResult:
    """The gate as its handler runs it: the poll count from the continuation token (Job.token_count)."""
    polls = int((token or {}).get("polls", 0))
    return gate.wait_for_turn(
        pipeline=client, cloudformation_for=cloudformation_for, config=CONFIG, execution_id=ME, polls=polls
    )


def deploy_all() -> None:
    """Both production stacks and the stage stack, settled."""
    for region in (PRIMARY, SECONDARY):
        cfn(region).create_stack(StackName=STACK, TemplateBody=APP)
    cfn(PRIMARY).create_stack(StackName=STAGE_STACK, TemplateBody=APP)


def leave_change_sets(*execution_ids: str, extra: tuple[str, ...] = ()) -> None:
    for region in (PRIMARY, SECONDARY):
        for name in [PREFIX + e for e in execution_ids] + list(extra):
            cfn(region).create_change_set(StackName=STACK, ChangeSetName=name, TemplateBody=CHANGED)


def change_sets(region: str) -> set[str]:
    return {s["ChangeSetName"] for s in cfn(region).list_change_sets(StackName=STACK)["Summaries"]}


def stack_answer(name: str, status: str) -> dict[str, Any]:
    return {"Stacks": [{"StackId": STACK_ID, "StackName": name, "StackStatus": status, "CreationTime": T0}]}


# --------------------------------------------------------------------------------------- executions_around


def test_earlier_running_executions_are_waited_for_and_only_earlier_finished_ones_may_be_cleaned(
    pipeline: tuple[CodePipelineClient, Stubber],
) -> None:
    client, stubber = pipeline
    stubber.add_response(
        "list_pipeline_executions",
        listing(
            execution(EARLIER_DONE, "Succeeded", 0),
            execution(EARLIER_FAILED, "Failed", 1),
            execution(EARLIER_RUNNING, "Stopping", 2),
            execution(ME, "InProgress", 5),
            execution(LATER, "Superseded", 9),
        ),
        {"pipelineName": PIPELINE, "maxResults": 100},
    )

    around = gate.executions_around(client, PIPELINE, ME)

    assert around.earlier_running == [EARLIER_RUNNING]
    assert around.keep == {ME, EARLIER_RUNNING, LATER}


def test_every_page_of_executions_is_read(pipeline: tuple[CodePipelineClient, Stubber]) -> None:
    client, stubber = pipeline
    stubber.add_response(
        "list_pipeline_executions",
        {**listing(execution(ME, "InProgress", 5)), "nextToken": "p2"},
        {"pipelineName": PIPELINE, "maxResults": 100},
    )
    stubber.add_response(
        "list_pipeline_executions",
        listing(execution(EARLIER_RUNNING, "InProgress", 1)),
        {"pipelineName": PIPELINE, "maxResults": 100, "nextToken": "p2"},
    )

    assert gate.executions_around(client, PIPELINE, ME).earlier_running == [EARLIER_RUNNING]


def test_an_execution_not_listed_is_an_error(pipeline: tuple[CodePipelineClient, Stubber]) -> None:
    client, stubber = pipeline
    stubber.add_response("list_pipeline_executions", listing(execution(EARLIER_DONE, "Succeeded", 0)))

    with pytest.raises(PipelineError, match=f"Execution {ME} is not among the executions of pipeline {PIPELINE}"):
        gate.executions_around(client, PIPELINE, ME)


# ------------------------------------------------------------------------------------------- wait_for_turn


def test_the_first_invocation_checks_the_parameter_sets_before_anything_else(
    pipeline: tuple[CodePipelineClient, Stubber],
) -> None:
    """A bad set fails by name; the executions are not even listed (nothing else is stubbed)."""
    client, stubber = pipeline
    stubber.add_response("get_pipeline", declaration(stage='{"Replicas": 2}'), {"name": PIPELINE})

    with pytest.raises(ConfigurationError, match="StageParameters"):
        wait(client)


def test_a_continuation_does_not_read_the_pipeline_again(pipeline: tuple[CodePipelineClient, Stubber]) -> None:
    client, stubber = pipeline
    stubber.add_response(
        "list_pipeline_executions", listing(execution(EARLIER_RUNNING, "InProgress", 1), execution(ME, "InProgress", 5))
    )

    result = wait(client, {"polls": 4})

    assert json.loads(result.continuation_token or "null") == {"polls": 5}


def test_an_earlier_running_execution_is_waited_for_and_nothing_is_removed(
    aws: None, pipeline: tuple[CodePipelineClient, Stubber]
) -> None:
    client, stubber = pipeline
    deploy_all()
    leave_change_sets(EARLIER_DONE)
    stubber.add_response("get_pipeline", declaration())
    stubber.add_response(
        "list_pipeline_executions",
        listing(
            execution(EARLIER_DONE, "Succeeded", 0),
            execution(EARLIER_RUNNING, "InProgress", 1),
            execution(ME, "InProgress", 5),
        ),
    )

    result = wait(client)

    assert json.loads(result.continuation_token or "null") == {"polls": 1}
    assert result.summary == f"Waiting (check 1) for earlier execution(s) to finish: {EARLIER_RUNNING}"
    assert change_sets(PRIMARY) == change_sets(SECONDARY) == {PREFIX + EARLIER_DONE}


def test_many_earlier_running_executions_are_summed_up(pipeline: tuple[CodePipelineClient, Stubber]) -> None:
    client, stubber = pipeline
    running = [execution(f"e0000000-0000-4000-8000-00000000010{n}", "InProgress", n) for n in range(5)]
    stubber.add_response("list_pipeline_executions", listing(*running, execution(ME, "InProgress", 10)))

    result = wait(client, {"polls": 1})

    assert result.summary.endswith(" and 2 more")
    assert result.summary.count("e0000000-") == 3


def test_a_busy_stage_stack_is_waited_for_and_nothing_is_removed(
    aws: None, pipeline: tuple[CodePipelineClient, Stubber], secondary: tuple[CloudFormationClient, Stubber]
) -> None:
    """A revert may still be deleting the stage stack: no change set is listed or deleted meanwhile (the
    stubbed secondary client answers only DescribeStacks)."""
    client, stubber = pipeline
    cfn_secondary, cfn_stubber = secondary
    deploy_all()
    leave_change_sets(EARLIER_DONE)
    stubber.add_response("list_pipeline_executions", listing(execution(ME, "InProgress", 5)))
    cfn_stubber.add_response("describe_stacks", stack_answer(STACK, "UPDATE_IN_PROGRESS"), {"StackName": STACK})

    result = wait(client, {"polls": 2}, lambda region: cfn_secondary if region == SECONDARY else cfn(region))

    assert json.loads(result.continuation_token or "null") == {"polls": 3}
    assert result.summary == f"Waiting (check 3) for stack {STACK} in {SECONDARY} (UPDATE_IN_PROGRESS) to settle"
    assert change_sets(PRIMARY) == {PREFIX + EARLIER_DONE}


def secondary_rolled_back(stubber: Stubber, cfn_stubber: Stubber, token: str, *, stack_level: bool) -> None:
    """The gate's turn has come; the secondary stack is UPDATE_ROLLBACK_COMPLETE, its newest event carrying
    ``token`` (on the stack itself, or without a resource type)."""
    deploy_all()
    stubber.add_response("list_pipeline_executions", listing(execution(ME, "InProgress", 5)))
    cfn_stubber.add_response("describe_stacks", stack_answer(STACK, "UPDATE_ROLLBACK_COMPLETE"))
    event = {"StackId": STACK_ID, "EventId": "e1", "StackName": STACK, "Timestamp": T0, "ClientRequestToken": token}
    if stack_level:
        event |= {"ResourceType": "AWS::CloudFormation::Stack", "ResourceStatus": "UPDATE_ROLLBACK_COMPLETE"}
    cfn_stubber.add_response("describe_stack_events", {"StackEvents": [event]}, {"StackName": STACK})


def test_a_stack_whose_return_to_the_release_was_rolled_back_fails_the_gate(
    aws: None, pipeline: tuple[CodePipelineClient, Stubber], secondary: tuple[CloudFormationClient, Stubber]
) -> None:
    client, stubber = pipeline
    cfn_secondary, cfn_stubber = secondary
    secondary_rolled_back(stubber, cfn_stubber, "stage-revert-0a1b2c3d", stack_level=True)

    with pytest.raises(PipelineError) as raised:
        wait(client, {"polls": 1}, lambda region: cfn_secondary if region == SECONDARY else cfn(region))

    message = str(raised.value)
    assert f"Stack {STACK} in {SECONDARY} was being returned to the release" in message
    assert "(UPDATE_ROLLBACK_COMPLETE)" in message


def test_a_stack_rolled_back_from_the_pipelines_own_deploy_does_not_stop_the_gate(
    aws: None, pipeline: tuple[CodePipelineClient, Stubber], secondary: tuple[CloudFormationClient, Stubber]
) -> None:
    """UPDATE_ROLLBACK_COMPLETE after a failed deploy of a change still runs the release: the next change
    may go on."""
    client, stubber = pipeline
    cfn_secondary, cfn_stubber = secondary
    secondary_rolled_back(stubber, cfn_stubber, "pipeline-x", stack_level=False)
    cfn_stubber.add_response("list_change_sets", {"Summaries": []}, {"StackName": STACK})

    result = wait(client, {"polls": 1}, lambda region: cfn_secondary if region == SECONDARY else cfn(region))

    assert result.continuation_token is None
    assert result.summary == "No earlier execution in progress: checking this change"


def test_its_turn_removes_only_earlier_finished_executions_change_sets(
    aws: None, pipeline: tuple[CodePipelineClient, Stubber]
) -> None:
    client, stubber = pipeline
    deploy_all()
    leave_change_sets(EARLIER_DONE, EARLIER_FAILED, ME, LATER, extra=("hand-made",))
    stubber.add_response("get_pipeline", declaration())
    stubber.add_response(
        "list_pipeline_executions",
        listing(
            execution(EARLIER_DONE, "Succeeded", 0),
            execution(EARLIER_FAILED, "Failed", 1),
            execution(ME, "InProgress", 5),
            execution(LATER, "InProgress", 9),
        ),
    )

    result = wait(client)

    assert result.continuation_token is None
    assert (
        result.summary
        == "No earlier execution in progress: checking this change; removed 4 change set(s) earlier executions left"
    )
    for region in (PRIMARY, SECONDARY):
        assert change_sets(region) == {PREFIX + ME, PREFIX + LATER, "hand-made"}


def test_with_nothing_left_behind_the_summary_says_only_that_it_goes_on(
    aws: None, pipeline: tuple[CodePipelineClient, Stubber]
) -> None:
    client, stubber = pipeline
    deploy_all()
    stubber.add_response("list_pipeline_executions", listing(execution(ME, "InProgress", 5)))

    assert wait(client, {"polls": 7}).summary == "No earlier execution in progress: checking this change"


# ------------------------------------------------------------------------------- remove_earlier_change_sets


def test_a_change_set_being_executed_is_never_deleted(secondary: tuple[CloudFormationClient, Stubber]) -> None:
    client, stubber = secondary
    summaries = [
        {"ChangeSetName": PREFIX + EARLIER_DONE, "ExecutionStatus": "EXECUTE_IN_PROGRESS"},
        {"ChangeSetName": PREFIX + EARLIER_FAILED, "ExecutionStatus": "AVAILABLE"},
        {"ChangeSetName": PREFIX + ME, "ExecutionStatus": "AVAILABLE"},
    ]
    stubber.add_response("list_change_sets", {"Summaries": summaries}, {"StackName": STACK})
    stubber.add_response("delete_change_set", {}, {"StackName": STACK, "ChangeSetName": PREFIX + EARLIER_FAILED})

    assert gate.remove_earlier_change_sets(client, STACK, PREFIX, frozenset({ME})) == 1


def test_every_page_of_change_sets_is_read(secondary: tuple[CloudFormationClient, Stubber]) -> None:
    client, stubber = secondary
    stubber.add_response(
        "list_change_sets", {"Summaries": [{"ChangeSetName": PREFIX + EARLIER_DONE}], "NextToken": "n"}
    )
    stubber.add_response("list_change_sets", {"Summaries": [{"ChangeSetName": PREFIX + EARLIER_FAILED}]})
    stubber.add_response("delete_change_set", {}, {"StackName": STACK, "ChangeSetName": PREFIX + EARLIER_DONE})
    stubber.add_response("delete_change_set", {}, {"StackName": STACK, "ChangeSetName": PREFIX + EARLIER_FAILED})

    assert gate.remove_earlier_change_sets(client, STACK, PREFIX, frozenset({ME})) == 2


def test_a_change_set_gone_meanwhile_is_not_counted(secondary: tuple[CloudFormationClient, Stubber]) -> None:
    client, stubber = secondary
    stubber.add_response("list_change_sets", {"Summaries": [{"ChangeSetName": PREFIX + EARLIER_DONE}]})
    stubber.add_client_error("delete_change_set", "ChangeSetNotFound", "ChangeSet [x] does not exist")

    assert gate.remove_earlier_change_sets(client, STACK, PREFIX, frozenset({ME})) == 0


def test_a_stack_that_does_not_exist_has_nothing_to_remove(aws: None) -> None:
    assert gate.remove_earlier_change_sets(cfn(SECONDARY), STACK, PREFIX, frozenset({ME})) == 0


# ------------------------------------------------------------------------------- with a deployment map


OTHER_ACCOUNT = "222233334444"
MAP_CONFIG = ExecutionGateConfig.from_env(environ(ExecutionGateConfig, DEPLOYMENT_MAP_PATH="deploy/map.json"))
SOURCE = S3Location("release-pipeline-artifacts", "pipeline-release/SourceOutp/Zz9")
# Three Regions, two accounts; the primary Region's target is the primary production stack.
DEPLOYMENT_MAP = {
    "Waves": [
        {"Name": "canary", "Targets": [{"Region": "ap-southeast-2", "Account": OTHER_ACCOUNT, "ParameterFile": "p"}]},
        {"Name": "europe", "Targets": [{"Region": SECONDARY, "Account": OTHER_ACCOUNT, "ParameterFile": "p"}]},
        {"Name": "home", "Targets": [{"Region": PRIMARY, "ParameterFile": "p"}]},
    ]
}


def other_account(region: str) -> CloudFormationClient:
    """A client in the other account, through the deploy role the gate assumes there."""
    role = f"arn:aws:iam::{OTHER_ACCOUNT}:role/multi-region-deploy-123456789012"
    return clients.cloudformation_for_targets(PRIMARY, "test")(region, role)


def map_in_source() -> None:
    s3 = boto3.client("s3", region_name=PRIMARY)
    s3.create_bucket(Bucket=SOURCE.bucket)
    files = {"deploy/map.json": json.dumps(DEPLOYMENT_MAP).encode(), "p": b"{}", "app/template.yaml": b"{}"}
    s3.put_object(Bucket=SOURCE.bucket, Key=SOURCE.key, Body=artifacts.build_zip(files))


def turn_comes(stubber: Stubber) -> None:
    """No earlier execution runs; this one's Source action put the source (with the map) in SOURCE."""
    stubber.add_response(
        "list_pipeline_executions",
        listing(
            execution(EARLIER_DONE, "Succeeded", 0),
            execution(EARLIER_FAILED, "Failed", 1),
            execution(ME, "InProgress", 5),
            execution(LATER, "InProgress", 9),
        ),
    )
    stubber.add_response(
        "list_action_executions",
        {"actionExecutionDetails": [source_action(ME, SOURCE)]},
        {"pipelineName": PIPELINE, "filter": {"pipelineExecutionId": ME}},
    )


def wait_with_map(client: CodePipelineClient) -> JobResult:
    reach = review.Reach(
        cloudformation_for=clients.cloudformation_for_targets(PRIMARY, "test"), account="123456789012", partition="aws"
    )
    return gate.wait_for_turn(
        pipeline=client,
        cloudformation_for=moto_regions,
        config=MAP_CONFIG,
        execution_id=ME,
        polls=1,
        s3=boto3.client("s3", region_name=PRIMARY),
        reach=reach,
    )


def other_change_sets(region: str) -> set[str]:
    return {s["ChangeSetName"] for s in other_account(region).list_change_sets(StackName=STACK)["Summaries"]}


def test_with_a_map_its_turn_removes_earlier_executions_change_sets_from_every_target(
    aws: None, pipeline: tuple[CodePipelineClient, Stubber]
) -> None:
    """GIVEN earlier, finished executions left change sets in targets in three Regions and two accounts,
    and one left a placeholder THEN each loses them, this, running and later executions' change sets stay,
    and the placeholder stays for this execution's own change set."""
    client, stubber = pipeline
    deploy_all()
    leave_change_sets(EARLIER_DONE, ME)
    map_in_source()
    far = other_account("ap-southeast-2")
    far.create_stack(StackName=STACK, TemplateBody=APP)
    for execution_id in (EARLIER_DONE, EARLIER_FAILED, ME, LATER):
        far.create_change_set(StackName=STACK, ChangeSetName=PREFIX + execution_id, TemplateBody=CHANGED)
    other_account(SECONDARY).create_change_set(
        StackName=STACK, ChangeSetName=PREFIX + EARLIER_FAILED, TemplateBody=CHANGED, ChangeSetType="CREATE"
    )
    turn_comes(stubber)

    result = wait_with_map(client)

    assert result.continuation_token is None
    # the primary stack once (a production stack and a target), the secondary, then the other account's
    assert result.summary.endswith("removed 5 change set(s) earlier executions left")
    assert change_sets(PRIMARY) == change_sets(SECONDARY) == {PREFIX + ME}
    assert other_change_sets("ap-southeast-2") == {PREFIX + ME, PREFIX + LATER}
    assert other_change_sets(SECONDARY) == set()
    placeholder = other_account(SECONDARY).describe_stacks(StackName=STACK)["Stacks"][0]
    assert placeholder["StackStatus"] == "REVIEW_IN_PROGRESS"


def test_with_a_map_a_busy_target_is_waited_for_and_nothing_is_removed(
    aws: None, pipeline: tuple[CodePipelineClient, Stubber]
) -> None:
    """GIVEN stage-revert is still deleting a placeholder in another account THEN the gate waits: this
    execution's CREATE change set there would fail on a stack being deleted."""
    client, stubber = pipeline
    deploy_all()
    leave_change_sets(EARLIER_DONE)
    map_in_source()
    other_account(SECONDARY).create_change_set(
        StackName=STACK, ChangeSetName=PREFIX + EARLIER_FAILED, TemplateBody=CHANGED, ChangeSetType="CREATE"
    )
    local_aws.set_stack_status(STACK, SECONDARY, "DELETE_IN_PROGRESS", account_id=OTHER_ACCOUNT)
    turn_comes(stubber)

    result = wait_with_map(client)

    assert json.loads(result.continuation_token or "null") == {"polls": 2}
    assert result.summary == f"Waiting (check 2) for stack {STACK} in {SECONDARY} (DELETE_IN_PROGRESS) to settle"
    assert change_sets(PRIMARY) == {PREFIX + EARLIER_DONE}
    assert other_change_sets(SECONDARY) == {PREFIX + EARLIER_FAILED}


def test_with_a_map_and_no_way_to_reach_the_targets_the_gate_fails_by_name(
    pipeline: tuple[CodePipelineClient, Stubber],
) -> None:
    client, stubber = pipeline
    stubber.add_response("list_pipeline_executions", listing(execution(ME, "InProgress", 5)))

    with pytest.raises(ConfigurationError, match="DEPLOYMENT_MAP_PATH is set"):
        gate.wait_for_turn(
            pipeline=client, cloudformation_for=moto_regions, config=MAP_CONFIG, execution_id=ME, polls=1
        )
