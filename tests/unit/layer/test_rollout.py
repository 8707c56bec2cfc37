"""rollout: each step of the state machine for one target, against the emulator's CloudFormation in
several Regions and accounts: a change set executed once, followed to its end, and returned to the
release only when this execution changed it."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest

import local_aws
from release_pipeline import clients, deployment_map, rollout
from release_pipeline.errors import BadInputError
from tests.support.rollout import alarm

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient

EXECUTION = "e1a2b3c4-0000-4000-8000-000000000001"
CHANGE_SET = f"pipeline-{EXECUTION}"
HOME = "123456789012"
OTHER_ACCOUNT = "222233334444"
DEPLOY_ROLE = f"arn:aws:iam::{OTHER_ACCOUNT}:role/multi-region-deploy-{HOME}"
EXECUTION_ROLE = f"arn:aws:iam::{HOME}:role/cfn-execution"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def template(version: str) -> str:
    return json.dumps(
        {
            "Parameters": {"Name": {"Type": "String"}},
            "Resources": {
                "Setting": {
                    "Type": "AWS::SSM::Parameter",
                    "Properties": {"Name": {"Ref": "Name"}, "Type": "String", "Value": version},
                }
            },
        }
    )


def target(region: str = "us-west-2", stack: str = "app", *, account: str | None = None, timeout: int = 60) -> Any:
    return {
        "Key": f"{account or HOME}/{region}/{stack}",
        "Wave": "canary",
        "Region": region,
        "Account": account,
        "StackName": stack,
        "ChangeSetName": CHANGE_SET,
        "ExecutionId": EXECUTION,
        "TimeoutMinutes": timeout,
        "DeployRoleArn": DEPLOY_ROLE if account else None,
        "ExecutionRoleArn": EXECUTION_ROLE,
    }


def cfn_for(region: str, role_arn: str | None = None) -> CloudFormationClient:
    return clients.cloudformation_for_targets("us-east-1", "rollout-test")(region, role_arn)


def deployed(cfn: CloudFormationClient, stack: str, version: str) -> None:
    """A stack running ``version`` (the release), with a reviewed change set to ``version + 1``."""
    cfn.create_stack(
        StackName=stack, TemplateBody=template(version), Parameters=[{"ParameterKey": "Name", "ParameterValue": "/v"}]
    )


def reviewed(cfn: CloudFormationClient, stack: str, version: str, change_set_type: str = "UPDATE") -> None:
    cfn.create_change_set(
        StackName=stack,
        ChangeSetName=CHANGE_SET,
        TemplateBody=template(version),
        Parameters=[{"ParameterKey": "Name", "ParameterValue": "/v"}],
        ChangeSetType=change_set_type,  # type: ignore[arg-type]
    )


def changed_by_hand(cfn: CloudFormationClient, stack: str, version: str) -> None:
    """Someone updates the stack to ``version`` after this execution, under a request token of their own."""
    cfn.update_stack(
        StackName=stack,
        TemplateBody=template(version),
        Parameters=[{"ParameterKey": "Name", "ParameterValue": "/v"}],
        ClientRequestToken="someone-else",
    )


def run(
    action: str, step_target: Any, release: Callable[[], rollout.ReleasedSource | None] | None = None, **extra: Any
) -> Any:
    return rollout.step(
        {"Action": action, "Target": step_target, **extra},
        cloudformation_for=cfn_for,
        release=release or (lambda: None),
        now=NOW,
    )


def value(cfn: CloudFormationClient, stack: str) -> str:
    body = cfn.get_template(StackName=stack)["TemplateBody"]
    document = body if isinstance(body, dict) else json.loads(body)
    return str(document["Resources"]["Setting"]["Properties"]["Value"])


def tokens(cfn: CloudFormationClient, stack: str) -> list[str | None]:
    return [e.get("ClientRequestToken") for e in cfn.describe_stack_events(StackName=stack)["StackEvents"]]


@pytest.fixture
def west(aws: None) -> CloudFormationClient:
    return cfn_for("us-west-2")


def test_execute_runs_the_reviewed_change_set_once_and_status_follows_it_to_done(west: CloudFormationClient) -> None:
    deployed(west, "app", "1")
    reviewed(west, "app", "2")

    first = run("execute", target())
    again = run("execute", target())  # a retried step finds its own execution
    done = run("status", target(), StartedAt=first["StartedAt"])

    assert first["State"] == again["State"] == "IN_PROGRESS"
    assert done["State"] == "DONE"
    assert value(west, "app") == "2"
    assert tokens(west, "app").count(f"rollout-{EXECUTION}") >= 1
    updates = [
        e
        for e in west.describe_stack_events(StackName="app")["StackEvents"]
        if e["ResourceStatus"] == "UPDATE_COMPLETE" and e["ResourceType"] == "AWS::CloudFormation::Stack"
    ]
    assert len(updates) == 1  # executed once, not twice


def test_an_empty_change_set_is_unchanged_and_nothing_is_executed(west: CloudFormationClient) -> None:
    deployed(west, "app", "1")
    reviewed(west, "app", "1")

    answer = run("execute", target())

    assert answer["State"] == "UNCHANGED"
    assert f"rollout-{EXECUTION}" not in tokens(west, "app")


def test_a_change_set_gone_before_execution_fails_without_touching_the_stack(west: CloudFormationClient) -> None:
    deployed(west, "app", "1")

    answer = run("execute", target())

    assert answer["State"] == "FAILED"
    assert "is gone; nothing was executed" in answer["Detail"]
    assert value(west, "app") == "1"


def test_a_failed_resource_is_rolled_back_by_cloudformation_and_reported_with_its_reason(
    west: CloudFormationClient,
) -> None:
    deployed(west, "app", "1")
    reviewed(west, "app", "2")
    local_aws.fail_resource("app", "us-west-2", "Setting", "Parameter limit reached")

    run("execute", target())
    answer = run("status", target())

    assert answer["State"] == "ROLLED_BACK"
    assert "Parameter limit reached" in answer["Detail"]
    assert value(west, "app") == "1"


def test_a_stack_still_in_progress_after_its_timeout_fails_the_target(west: CloudFormationClient) -> None:
    deployed(west, "app", "1")
    reviewed(west, "app", "2")
    run("execute", target(timeout=30))
    local_aws.set_stack_status("app", "us-west-2", "UPDATE_IN_PROGRESS")
    started = (NOW - timedelta(minutes=29)).isoformat()

    waiting = run("status", target(timeout=30), StartedAt=started)
    late = rollout.step(
        {"Action": "status", "Target": target(timeout=30), "StartedAt": started},
        cloudformation_for=cfn_for,
        release=lambda: None,
        now=NOW + timedelta(minutes=2),
    )

    assert waiting["State"] == "IN_PROGRESS"
    assert late["State"] == "FAILED"
    assert "after 30 minutes" in late["Detail"]


def test_a_step_measures_its_timeout_on_the_state_machines_clock_when_it_gives_one(west: CloudFormationClient) -> None:
    """GIVEN the state's entered time ($$.State.EnteredTime, the clock the Wait states run on) THEN the
    timeout is measured on it, not on the function's own clock; a Now that is not a time is ignored."""
    deployed(west, "app", "1")
    reviewed(west, "app", "2")
    run("execute", target(timeout=30))
    local_aws.set_stack_status("app", "us-west-2", "UPDATE_IN_PROGRESS")
    started = (NOW - timedelta(minutes=29)).isoformat()

    def check(now: object) -> Any:
        return rollout.step(
            {"Action": "status", "Target": target(timeout=30), "StartedAt": started, "Now": now},
            cloudformation_for=cfn_for,
            release=lambda: None,
        )

    two_minutes_on = (NOW + timedelta(minutes=2)).isoformat().replace("+00:00", "Z")
    assert check(two_minutes_on)["State"] == "FAILED"
    assert check(NOW.isoformat())["State"] == "IN_PROGRESS"
    # a wait measured on the state machine's clock: a third of the 29 minutes the step has taken
    assert check(NOW.isoformat())["WaitSeconds"] == 29 * 60 // 3
    # not a time (the last has no time zone): read as if absent, the function's own clock
    without = rollout.step(
        {"Action": "status", "Target": target(timeout=30), "StartedAt": started},
        cloudformation_for=cfn_for,
        release=lambda: None,
    )
    for not_a_time in ("yesterday", 12, None, "2026-01-01T00:00:00"):
        answer = check(not_a_time)
        assert (answer["State"], answer["WaitSeconds"]) == (without["State"], without["WaitSeconds"]), not_a_time


def test_another_operation_after_this_executions_is_never_read_as_done(west: CloudFormationClient) -> None:
    deployed(west, "app", "1")
    reviewed(west, "app", "2")
    run("execute", target())
    changed_by_hand(west, "app", "3")

    assert run("status", target())["State"] == "FAILED"


def test_a_target_in_another_account_is_deployed_with_its_deploy_role(aws: None) -> None:
    other = cfn_for("eu-west-1", DEPLOY_ROLE)
    deployed(other, "app", "1")
    reviewed(other, "app", "2")

    run("execute", target("eu-west-1", account=OTHER_ACCOUNT))

    stack_id = other.describe_stacks(StackName="app")["Stacks"][0]["StackId"]
    assert f":{OTHER_ACCOUNT}:" in stack_id
    assert value(other, "app") == "2"
    home = cfn_for("eu-west-1")
    assert home.describe_stacks()["Stacks"] == []  # nothing in the solution's own account


def released(version: str, stack: str = "app", region: str = "us-west-2") -> rollout.ReleasedSource:
    raw = json.dumps(
        {"Waves": [{"Name": "canary", "Targets": [{"Region": region, "StackName": stack, "ParameterFile": "p.json"}]}]}
    )
    parsed = deployment_map.parse(
        raw, read_file=lambda path: '{"Name": "/v"}', default_stack_name=stack, home_account=HOME
    )
    return rollout.ReleasedSource(execution_id="release-1", template=template(version).encode(), deployment_map=parsed)


def test_a_target_this_execution_changed_returns_to_the_release(west: CloudFormationClient) -> None:
    deployed(west, "app", "1")
    reviewed(west, "app", "2")
    run("execute", target())

    started = run("return", target(), lambda: released("1"))
    followed = run("return", target(), lambda: released("1"))

    assert started["State"] == "IN_PROGRESS"
    assert followed["State"] == "RETURNED"
    assert value(west, "app") == "1"
    assert tokens(west, "app")[0] == f"rollout-return-{EXECUTION}"


@pytest.mark.parametrize("setup", ["never-executed", "no-stack"])
def test_a_target_this_execution_never_changed_is_untouched(west: CloudFormationClient, setup: str) -> None:
    if setup == "never-executed":
        deployed(west, "app", "1")
        reviewed(west, "app", "2")

    answer = run("return", target(), lambda: released("0"))

    assert answer["State"] == "UNTOUCHED"
    if setup == "never-executed":
        assert value(west, "app") == "1"


def test_a_target_this_execution_created_is_reported_and_never_deleted(west: CloudFormationClient) -> None:
    reviewed(west, "app", "1", change_set_type="CREATE")
    run("execute", target())

    answer = run("return", target(), lambda: released("0"))

    assert answer["State"] == "FIRST_RELEASE"
    assert west.describe_stacks(StackName="app")["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"


def test_a_target_missing_from_the_released_map_is_reported_and_not_touched(west: CloudFormationClient) -> None:
    deployed(west, "app", "1")
    reviewed(west, "app", "2")
    run("execute", target())

    answer = run("return", target(), lambda: released("1", stack="another"))

    assert answer["State"] == "NOT_RELEASED"
    assert value(west, "app") == "2"


def test_a_target_cloudformation_rolled_back_needs_no_return(west: CloudFormationClient) -> None:
    deployed(west, "app", "1")
    reviewed(west, "app", "2")
    local_aws.fail_resource("app", "us-west-2", "Setting", "boom")
    run("execute", target())

    answer = run("return", target(), lambda: released("1"))

    assert answer["State"] == "RETURNED"
    assert "already rolled it back" in answer["Detail"]
    assert tokens(west, "app")[0] != f"rollout-return-{EXECUTION}"


@pytest.mark.parametrize(
    ("event", "says"),
    [
        ({"Action": "execute"}, "needs a Target object"),
        ({"Action": "execute", "Target": {**target(), "Region": ""}}, "Target.Region must be a non-empty string"),
        ({"Action": "execute", "Target": {**target(), "TimeoutMinutes": True}}, "TimeoutMinutes"),
        ({"Action": "deploy", "Target": target()}, "unknown deploy-target action 'deploy'"),
    ],
)
def test_a_malformed_step_is_refused_by_name(aws: None, event: dict[str, Any], says: str) -> None:
    with pytest.raises(BadInputError, match=says):
        rollout.step(event, cloudformation_for=cfn_for, release=lambda: None, now=NOW)


def test_the_workflow_input_holds_every_wave_in_order_with_each_targets_roles() -> None:
    raw = json.dumps(
        {
            "Waves": [
                {
                    "Name": "canary",
                    "BakeTimeInMinutes": 30,
                    "Targets": [{"Region": "us-west-2", "ParameterFile": "p.json"}],
                },
                {
                    "Name": "rest",
                    "MaxConcurrency": 2,
                    "Targets": [
                        {"Region": "eu-west-1", "ParameterFile": "p.json"},
                        {"Region": "us-east-2", "Account": OTHER_ACCOUNT, "ParameterFile": "p.json"},
                    ],
                },
            ]
        }
    )
    parsed = deployment_map.parse(raw, read_file=lambda path: "{}", default_stack_name="app", home_account=HOME)

    document = rollout.workflow_input(
        parsed,
        execution_id=EXECUTION,
        change_set_name=CHANGE_SET,
        partition="aws",
        home_execution_role_arn=EXECUTION_ROLE,
        poll_seconds=30,
    )

    assert [w["Name"] for w in document["Waves"]] == ["canary", "rest"]
    assert document["Waves"][1]["MaxConcurrency"] == 2
    canary = document["Waves"][0]["Targets"][0]
    assert canary["TimeoutMinutes"] == 90  # deploy timeout 60 plus the 30-minute bake
    assert canary["DeployRoleArn"] is None
    assert canary["ExecutionRoleArn"] == EXECUTION_ROLE
    other = document["Waves"][1]["Targets"][1]
    assert other["Key"] == f"{OTHER_ACCOUNT}/us-east-2/app"
    assert other["DeployRoleArn"] == DEPLOY_ROLE
    assert other["ExecutionRoleArn"] == f"arn:aws:iam::{OTHER_ACCOUNT}:role/multi-region-cfn-execution-{HOME}"
    assert [t["Key"] for t in document["Targets"]] == [
        f"{HOME}/us-west-2/app",
        f"{HOME}/eu-west-1/app",
        f"{OTHER_ACCOUNT}/us-east-2/app",
    ]


def test_a_target_someone_changed_after_this_execution_is_not_returned(west: CloudFormationClient) -> None:
    deployed(west, "app", "1")
    reviewed(west, "app", "2")
    run("execute", target())
    changed_by_hand(west, "app", "3")

    answer = run("return", target(), lambda: released("1"))

    assert answer["State"] == "FAILED"  # a person must look: neither the release nor this change runs there
    assert "another operation followed this execution's" in answer["Detail"]
    assert value(west, "app") == "3"


def test_a_released_template_too_large_to_pass_inline_fails_the_return_without_touching_the_stack(
    west: CloudFormationClient,
) -> None:
    deployed(west, "app", "1")
    reviewed(west, "app", "2")
    run("execute", target())
    large = released("1")
    large = rollout.ReleasedSource(large.execution_id, large.template + b" " * 51_200, large.deployment_map)

    answer = run("return", target(), lambda: large)

    assert answer["State"] == "FAILED"
    assert "over 51,200 bytes" in answer["Detail"]
    assert value(west, "app") == "2"


def test_the_deploy_role_is_the_bootstrap_roles_in_another_account_and_none_at_home() -> None:
    assert rollout.deploy_role_arn(HOME, HOME, "aws") is None
    assert rollout.deploy_role_arn(OTHER_ACCOUNT, HOME, "aws") == DEPLOY_ROLE
    assert (
        rollout.deploy_role_arn(OTHER_ACCOUNT, HOME, "aws-cn")
        == f"arn:aws-cn:iam::{OTHER_ACCOUNT}:role/multi-region-deploy-{HOME}"
    )
    assert rollout.target_roles(OTHER_ACCOUNT, HOME, "aws", EXECUTION_ROLE)[0] == DEPLOY_ROLE


def test_a_return_is_not_rolled_back_by_the_alarm_the_change_set_watched(west: CloudFormationClient) -> None:
    """CloudFormation keeps a stack's rollback triggers for its later updates: the return clears them, so the
    alarm that fired against the new release cannot roll the return back too."""
    watch = boto3.client("cloudwatch", region_name="us-west-2")
    errors = alarm("us-west-2", "app-errors")
    deployed(west, "app", "1")
    west.create_change_set(
        StackName="app",
        ChangeSetName=CHANGE_SET,
        TemplateBody=template("2"),
        Parameters=[{"ParameterKey": "Name", "ParameterValue": "/v"}],
        RollbackConfiguration={"RollbackTriggers": [{"Arn": errors, "Type": "AWS::CloudWatch::Alarm"}]},
    )
    run("execute", target())
    assert run("status", target())["State"] == "DONE"
    watch.set_alarm_state(AlarmName="app-errors", StateValue="ALARM", StateReason="errors after the release")

    started = run("return", target(), lambda: released("1"))
    followed = run("return", target(), lambda: released("1"))

    assert started["State"] == "IN_PROGRESS"
    assert followed["State"] == "RETURNED"
    assert value(west, "app") == "1"
