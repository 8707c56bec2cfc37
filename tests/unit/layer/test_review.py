"""release_pipeline.review: an execution's review removed from every target of its map, in three Regions
and two accounts: its change sets and the placeholders that hold nothing else go, stacks that ran anything
and change sets that were executed stay, and a second call changes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

import local_aws
from release_pipeline import artifacts, clients, deployment_map, review, rollout
from release_pipeline.config import ProductionStacks, Regions
from release_pipeline.errors import ArtifactError, ConfigurationError, StackBusyError
from release_pipeline.values import S3Location
from tests.support.action_executions import gate_action, source_action

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_codepipeline import CodePipelineClient

HOME = "123456789012"  # moto's default account: the solution's
OTHER = "222233334444"
EXECUTION = "e1a2b3c4-0000-4000-8000-000000000001"
EARLIER = "a0a0a0a0-0000-4000-8000-000000000007"
LATER = "f0f0f0f0-0000-4000-8000-000000000009"
PREFIX = "pipeline-"
OURS, EARLIER_SET, LATER_SET = PREFIX + EXECUTION, PREFIX + EARLIER, PREFIX + LATER
HOME_EXECUTION_ROLE = f"arn:aws:iam::{HOME}:role/release-solution-CloudFormationExecutionRole"
PIPELINE = "release-pipeline"
BUCKET = "release-pipeline-artifacts"
MAP_PATH = "deploy/map.json"

# Three waves over three Regions and two accounts.
MAP = {
    "Waves": [
        {"Name": "canary", "Targets": [{"Region": "eu-west-1", "ParameterFile": "p.json"}]},
        {
            "Name": "abroad",
            "MaxConcurrency": 2,
            "Targets": [
                {"Region": "eu-west-1", "Account": OTHER, "ParameterFile": "p.json"},
                {"Region": "ap-southeast-2", "Account": OTHER, "ParameterFile": "p.json"},
            ],
        },
        {
            "Name": "home",
            "Targets": [
                {"Region": "us-east-1", "ParameterFile": "p.json"},
                {"Region": "us-east-1", "Account": OTHER, "StackName": "orders", "ParameterFile": "p.json"},
            ],
        },
    ]
}
PRODUCTION = ProductionStacks(
    regions=Regions(primary="us-east-1", secondary="eu-west-1"), primary_stack="app", secondary_stack="app"
)


def template(version: str) -> str:
    return json.dumps(
        {
            "Resources": {
                "Setting": {
                    "Type": "AWS::SSM::Parameter",
                    "Properties": {"Name": "/app/setting", "Type": "String", "Value": version},
                }
            }
        }
    )


def parsed(document: dict[str, Any] = MAP) -> deployment_map.DeploymentMap:
    return deployment_map.parse(
        json.dumps(document), read_file=lambda path: "{}", default_stack_name="app", home_account=HOME
    )


TARGETS = review.review_targets(parsed(), partition="aws", home_execution_role_arn=HOME_EXECUTION_ROLE)


def cfn_for(region: str, role_arn: str | None = None) -> CloudFormationClient:
    return clients.cloudformation_for_targets("us-east-1", "review-test")(region, role_arn)


def cfn(account: str, region: str) -> CloudFormationClient:
    """The test's own client in ``account`` (the other account through its deploy role)."""
    role = None if account == HOME else rollout.target_roles(account, HOME, "aws", HOME_EXECUTION_ROLE)[0]
    return cfn_for(region, role)


def deployed(account: str, region: str, stack: str = "app") -> None:
    cfn(account, region).create_stack(StackName=stack, TemplateBody=template("1"))


def reviewed(account: str, region: str, stack: str = "app", name: str = OURS, change_set_type: str = "UPDATE") -> None:
    cfn(account, region).create_change_set(
        StackName=stack,
        ChangeSetName=name,
        TemplateBody=template("2"),
        ChangeSetType=change_set_type,  # type: ignore[arg-type]
    )


def state(account: str, region: str, stack: str = "app") -> Any:
    """The stack's status, template, resources and change sets; None when it does not exist."""
    client = cfn(account, region)
    try:
        found = client.describe_stacks(StackName=stack)["Stacks"][0]
    except ClientError as error:
        if "does not exist" in str(error):
            return None
        raise
    body = client.get_template(StackName=stack)["TemplateBody"]
    resources = client.list_stack_resources(StackName=stack)["StackResourceSummaries"]
    change_sets = client.list_change_sets(StackName=stack)["Summaries"]
    return (
        found["StackStatus"],
        body if isinstance(body, dict) else json.loads(body),
        sorted(r["LogicalResourceId"] for r in resources),
        sorted((s["ChangeSetName"], s["ExecutionStatus"]) for s in change_sets),
    )


def change_sets(account: str, region: str, stack: str = "app") -> list[str]:
    return sorted(s["ChangeSetName"] for s in cfn(account, region).list_change_sets(StackName=stack)["Summaries"])


PLACES = [
    (HOME, "eu-west-1", "app"),
    (OTHER, "eu-west-1", "app"),
    (OTHER, "ap-southeast-2", "app"),
    (HOME, "us-east-1", "app"),
    (OTHER, "us-east-1", "orders"),
    (HOME, "ap-southeast-2", "app"),  # not a target: the other account's is
]


def snapshot() -> dict[tuple[str, str, str], Any]:
    return {place: state(*place) for place in PLACES}


@pytest.fixture
def rejected(aws: None) -> None:
    """After CheckChanges and a rejection: this execution's change set in every target.

    - HOME/eu-west-1/app: a first release there, a placeholder holding only this change set
    - OTHER/eu-west-1/app: a stack with resources, this change set and an earlier execution's
    - OTHER/ap-southeast-2/app: a placeholder holding only this change set
    - HOME/us-east-1/app: a stack with resources and this change set
    - OTHER/us-east-1/orders: a placeholder holding this change set and a later execution's
    - HOME/ap-southeast-2/app: not a target (the map names the other account there), a placeholder
    """
    reviewed(HOME, "eu-west-1", change_set_type="CREATE")
    deployed(OTHER, "eu-west-1")
    reviewed(OTHER, "eu-west-1")
    reviewed(OTHER, "eu-west-1", name=EARLIER_SET)
    reviewed(OTHER, "ap-southeast-2", change_set_type="CREATE")
    deployed(HOME, "us-east-1")
    reviewed(HOME, "us-east-1")
    reviewed(OTHER, "us-east-1", "orders", change_set_type="CREATE")
    reviewed(OTHER, "us-east-1", "orders", name=LATER_SET, change_set_type="CREATE")
    reviewed(HOME, "ap-southeast-2", change_set_type="CREATE")


def remove() -> list[str]:
    return review.remove_review(TARGETS, EXECUTION, cfn_for, PREFIX)


# ------------------------------------------------------------------------------------------ targets


def test_every_target_is_reached_in_its_account_with_its_roles() -> None:
    other_deploy = f"arn:aws:iam::{OTHER}:role/multi-region-deploy-{HOME}"
    other_execution = f"arn:aws:iam::{OTHER}:role/multi-region-cfn-execution-{HOME}"

    assert [(t.key, t.deploy_role_arn, t.execution_role_arn) for t in TARGETS] == [
        (f"{HOME}/eu-west-1/app", None, HOME_EXECUTION_ROLE),
        (f"{OTHER}/eu-west-1/app", other_deploy, other_execution),
        (f"{OTHER}/ap-southeast-2/app", other_deploy, other_execution),
        (f"{HOME}/us-east-1/app", None, HOME_EXECUTION_ROLE),
        (f"{OTHER}/us-east-1/orders", other_deploy, other_execution),
    ]


def test_a_caller_that_deletes_no_stack_needs_no_home_execution_role() -> None:
    targets = review.review_targets(parsed(), partition="aws", home_execution_role_arn=None)

    assert targets[0].execution_role_arn is None
    assert targets[1].execution_role_arn == f"arn:aws:iam::{OTHER}:role/multi-region-cfn-execution-{HOME}"


@pytest.mark.parametrize(
    ("arn", "account", "partition"),
    [
        (f"arn:aws:lambda:us-east-1:{HOME}:function:stage-revert", HOME, "aws"),
        (f"arn:aws-cn:lambda:cn-north-1:{OTHER}:function:stage-revert:live", OTHER, "aws-cn"),
    ],
)
def test_the_reach_is_the_functions_own_account_and_partition(arn: str, account: str, partition: str) -> None:
    reach = review.Reach.of_function(arn, "test")

    assert (reach.account, reach.partition) == (account, partition)


def test_an_arn_that_is_not_a_functions_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="not a Lambda function ARN"):
        review.Reach.of_function("arn:aws:iam::123456789012:role/x", "test")


# ------------------------------------------------------------------------------------------ removal


@pytest.mark.usefixtures("rejected")
def test_after_a_rejection_no_target_holds_the_execution_or_its_placeholders() -> None:
    before = snapshot()

    lines = remove()

    # the execution's change set is in no target, and the placeholders that held only it are gone
    assert state(HOME, "eu-west-1") is None
    assert state(OTHER, "ap-southeast-2") is None
    assert change_sets(OTHER, "eu-west-1") == [EARLIER_SET]
    assert change_sets(HOME, "us-east-1") == []
    # a placeholder another execution's change set waits on stays, with that change set
    assert state(OTHER, "us-east-1", "orders")[0] == "REVIEW_IN_PROGRESS"
    assert change_sets(OTHER, "us-east-1", "orders") == [LATER_SET]
    # stacks with resources run what they ran
    for place in [(OTHER, "eu-west-1", "app"), (HOME, "us-east-1", "app")]:
        status, body, resources, _ = state(*place)
        assert (status, body, resources) == before[place][:3]
        assert resources == ["Setting"]
    # the home account's stack where the map names the other account is not a target
    assert state(HOME, "ap-southeast-2") == before[(HOME, "ap-southeast-2", "app")]
    assert lines == [
        f"{HOME}/eu-west-1/app: removing placeholder app (REVIEW_IN_PROGRESS, it held only change set {OURS})",
        f"{OTHER}/eu-west-1/app: deleted change set {OURS}; stack CREATE_COMPLETE, untouched",
        f"{OTHER}/ap-southeast-2/app: removing placeholder app (REVIEW_IN_PROGRESS, it held only change set {OURS})",
        f"{HOME}/us-east-1/app: deleted change set {OURS}; stack CREATE_COMPLETE, untouched",
        f"{OTHER}/us-east-1/orders: deleted change set {OURS}; placeholder orders kept: other change sets wait on it "
        f"({LATER_SET})",
    ]


@pytest.mark.usefixtures("rejected")
def test_a_second_delivery_changes_nothing_and_says_so() -> None:
    remove()
    after_first = snapshot()

    lines = remove()

    assert snapshot() == after_first
    assert lines == [
        f"{HOME}/eu-west-1/app: already gone: no stack app",
        f"{OTHER}/eu-west-1/app: already gone: no change set {OURS}; stack CREATE_COMPLETE, untouched",
        f"{OTHER}/ap-southeast-2/app: already gone: no stack app",
        f"{HOME}/us-east-1/app: already gone: no change set {OURS}; stack CREATE_COMPLETE, untouched",
        f"{OTHER}/us-east-1/orders: no change set {OURS}; placeholder orders kept: other change sets wait on it "
        f"({LATER_SET})",
    ]


@pytest.mark.usefixtures("rejected")
def test_an_executed_change_set_is_never_deleted_and_its_stack_is_untouched() -> None:
    """GIVEN the rollout executed this execution's change set in one target before it went back"""
    cfn(HOME, "us-east-1").execute_change_set(StackName="app", ChangeSetName=OURS)
    executed = state(HOME, "us-east-1")
    assert executed[0] == "UPDATE_COMPLETE"

    lines = remove()

    assert state(HOME, "us-east-1") == executed
    assert (OURS, "EXECUTE_COMPLETE") in executed[3]
    left = f"left: change set {OURS} was executed (EXECUTE_COMPLETE); stack UPDATE_COMPLETE, untouched"
    assert f"{HOME}/us-east-1/app: {left}" in lines
    assert state(HOME, "eu-west-1") is None  # the other targets are still cleaned


def test_a_first_release_executed_in_one_target_keeps_that_stack(aws: None) -> None:
    """A CREATE change set that was executed made a stack with resources: it is never taken for a placeholder."""
    reviewed(OTHER, "ap-southeast-2", change_set_type="CREATE")
    cfn(OTHER, "ap-southeast-2").execute_change_set(StackName="app", ChangeSetName=OURS)
    created = state(OTHER, "ap-southeast-2")

    lines = remove()

    assert state(OTHER, "ap-southeast-2") == created
    assert created[2] == ["Setting"]
    assert f"{OTHER}/ap-southeast-2/app: left: change set {OURS} was executed" in lines[2]


@pytest.mark.usefixtures("rejected")
def test_a_busy_stack_raises_for_a_retry_once_every_other_target_is_clean() -> None:
    local_aws.set_stack_status("app", "eu-west-1", "UPDATE_IN_PROGRESS", account_id=OTHER)

    with pytest.raises(StackBusyError, match="UPDATE_IN_PROGRESS") as raised:
        remove()

    notes = raised.value.__notes__
    assert len(notes) == len(TARGETS)
    assert notes[1].startswith(f"{OTHER}/eu-west-1/app: failed: stack app in eu-west-1 is UPDATE_IN_PROGRESS")
    assert change_sets(OTHER, "eu-west-1") == sorted([OURS, EARLIER_SET])  # left for the retry
    assert state(HOME, "eu-west-1") is None
    assert change_sets(HOME, "us-east-1") == []


def test_a_change_set_still_being_made_raises_for_a_retry(aws: None) -> None:
    deployed(HOME, "us-east-1")
    reviewed(HOME, "us-east-1")
    local_aws.set_change_set_status("app", OURS, "us-east-1", "CREATE_IN_PROGRESS")

    with pytest.raises(StackBusyError, match="CREATE_IN_PROGRESS"):
        remove()

    assert change_sets(HOME, "us-east-1") == [OURS]


def test_a_placeholder_left_with_no_change_set_is_removed(aws: None) -> None:
    """GIVEN an earlier delivery deleted the change set but not yet the placeholder (Lambda stopped between)"""
    reviewed(OTHER, "ap-southeast-2", change_set_type="CREATE")
    cfn(OTHER, "ap-southeast-2").delete_change_set(StackName="app", ChangeSetName=OURS)

    lines = remove()

    assert state(OTHER, "ap-southeast-2") is None
    assert (
        lines[2] == f"{OTHER}/ap-southeast-2/app: removing placeholder app (REVIEW_IN_PROGRESS, it held no change set)"
    )


def test_a_target_the_function_cannot_reach_fails_after_the_others(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    reviewed(HOME, "eu-west-1", change_set_type="CREATE")

    def unreachable(region: str, role_arn: str | None) -> CloudFormationClient:
        if role_arn is not None:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not trusted"}}, "AssumeRole")
        return cfn_for(region)

    with pytest.raises(ClientError, match="not trusted") as raised:
        review.remove_review(TARGETS, EXECUTION, unreachable, PREFIX)

    assert state(HOME, "eu-west-1") is None
    assert sum("failed" in note for note in raised.value.__notes__) == 3


# --------------------------------------------------------------------------------- the reviewed map


@pytest.fixture
def pipeline() -> Iterator[tuple[CodePipelineClient, Stubber]]:
    """A CodePipeline client answering only what a test stubs (moto has no ListActionExecutions)."""
    client: CodePipelineClient = boto3.client("codepipeline", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


SOURCE = S3Location(BUCKET, "release-pipeline/SourceOutp/AbC123")


def action_executions(stubber: Stubber, *details: dict[str, Any], next_token: str | None = None) -> None:
    expected: dict[str, Any] = {"pipelineName": PIPELINE, "filter": {"pipelineExecutionId": EXECUTION}}
    if next_token:
        expected["nextToken"] = next_token
    stubber.add_response("list_action_executions", {"actionExecutionDetails": list(details)}, expected)


def test_the_source_is_the_output_artifact_of_the_executions_source_action(
    pipeline: tuple[CodePipelineClient, Stubber],
) -> None:
    client, stubber = pipeline
    first = {"actionExecutionDetails": [gate_action(EXECUTION)], "nextToken": "p2"}
    stubber.add_response(
        "list_action_executions", first, {"pipelineName": PIPELINE, "filter": {"pipelineExecutionId": EXECUTION}}
    )
    action_executions(stubber, source_action(EXECUTION, SOURCE), next_token="p2")

    assert review.source_location(client, PIPELINE, EXECUTION) == SOURCE


def test_an_execution_without_a_source_artifact_is_an_artifact_error(
    pipeline: tuple[CodePipelineClient, Stubber],
) -> None:
    client, stubber = pipeline
    action_executions(stubber, gate_action(EXECUTION))

    with pytest.raises(ArtifactError, match=f"Execution {EXECUTION} of pipeline {PIPELINE} has no source artifact"):
        review.source_location(client, PIPELINE, EXECUTION)


def source_in_bucket(files: dict[str, str]) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    data = artifacts.build_zip({name: text.encode() for name, text in files.items()})
    s3.put_object(Bucket=SOURCE.bucket, Key=SOURCE.key, Body=data)


def targets_of(client: CodePipelineClient) -> tuple[review.ReviewTarget, ...]:
    reach = review.Reach(cloudformation_for=cfn_for, account=HOME, partition="aws")
    return review.reviewed_targets(
        client,
        boto3.client("s3", region_name="us-east-1"),
        reach,
        pipeline_name=PIPELINE,
        execution_id=EXECUTION,
        map_path=MAP_PATH,
        production=PRODUCTION,
        home_execution_role_arn=HOME_EXECUTION_ROLE,
    )


def test_the_targets_are_those_of_the_map_in_the_executions_own_source(
    aws: None, pipeline: tuple[CodePipelineClient, Stubber]
) -> None:
    client, stubber = pipeline
    source_in_bucket({MAP_PATH: json.dumps(MAP), "p.json": "{}", "app/template.yaml": template("2")})
    action_executions(stubber, source_action(EXECUTION, SOURCE))

    assert targets_of(client) == TARGETS


def test_a_source_without_a_map_has_the_solutions_own_targets(
    aws: None, pipeline: tuple[CodePipelineClient, Stubber]
) -> None:
    client, stubber = pipeline
    source_in_bucket({"app/template.yaml": template("2")})
    action_executions(stubber, source_action(EXECUTION, SOURCE))

    assert [target.key for target in targets_of(client)] == [f"{HOME}/eu-west-1/app", f"{HOME}/us-east-1/app"]


def test_a_map_that_cannot_be_read_names_its_problems(aws: None, pipeline: tuple[CodePipelineClient, Stubber]) -> None:
    client, stubber = pipeline
    source_in_bucket({MAP_PATH: json.dumps(MAP)})  # no p.json
    action_executions(stubber, source_action(EXECUTION, SOURCE))

    with pytest.raises(ConfigurationError, match=f"source artifact of execution {EXECUTION} cannot be read.*p.json"):
        targets_of(client)
