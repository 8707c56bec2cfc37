"""The rollout state machine (statemachines/rollout.asl.json) run by the emulator's Step Functions, with
deploy-target's handler: three waves across three Regions and two accounts, executed in order; a failed
target in the last wave returns the earlier waves to the release; a return that fails is recorded, the
other returns run to their end, and the execution then fails (and so fires its alarm) naming it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import boto3
import pytest

import local_aws
from release_pipeline import start_rollout
from tests.support.rollout import (
    CHANGE_SET,
    HOME,
    OTHER,
    THREE_WAVES,
    RolloutMachine,
    advance_until,
    alarm,
    cfn,
    changed_by_hand,
    create_state_machine,
    executed_order,
    finish,
    release,
    start,
    template,
    value,
)


@pytest.fixture
def machine(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[RolloutMachine]:
    """Every target of THREE_WAVES runs release 1 and holds a reviewed change set to release 2; the rollout
    state machine is ready to start."""
    release(THREE_WAVES, monkeypatch)
    created = create_state_machine(monkeypatch)
    yield created
    created.stop_running()


def releases() -> list[str]:
    """The release each target of THREE_WAVES runs, in map order."""
    return [value(cfn(t.region, t.account), t.stack) for t in THREE_WAVES.targets()]


def test_the_waves_run_in_order_and_every_target_gets_its_reviewed_change(machine: RolloutMachine) -> None:
    sfn = machine.sfn
    execution = start(machine)

    described = finish(sfn, execution)

    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"])["Outcome"] == "RELEASED"
    order = executed_order(sfn, execution)
    assert order[0] == f"{HOME}/us-west-2/app"
    assert set(order[1:3]) == {f"{HOME}/eu-west-1/app", f"{OTHER}/us-east-2/app"}
    assert order[3] == f"{HOME}/us-east-1/app"
    assert releases() == ["2", "2", "2", "2"]


def test_a_failed_target_in_the_last_wave_returns_the_earlier_waves_to_the_release(machine: RolloutMachine) -> None:
    sfn = machine.sfn
    local_aws.fail_resource("app", "us-east-1", "Setting", "Resource handler returned message: quota exceeded")
    execution = start(machine)

    described = finish(sfn, execution)

    assert described["status"] == "SUCCEEDED"  # the rollback worked: no alarm
    output = json.loads(described["output"])
    assert output["Outcome"] == "ROLLED_BACK"
    assert "quota exceeded" in output["Failure"]["Cause"]
    states = {r["Key"]: r["State"] for r in output["Returns"]}
    assert states == {
        f"{HOME}/us-west-2/app": "RETURNED",
        f"{HOME}/eu-west-1/app": "RETURNED",
        f"{OTHER}/us-east-2/app": "RETURNED",
        f"{HOME}/us-east-1/app": "RETURNED",  # CloudFormation rolled it back itself
    }
    assert releases() == ["1", "1", "1", "1"]
    other = cfn("us-east-2", OTHER).describe_stacks(StackName="app")["Stacks"][0]
    assert {p["ParameterKey"]: p["ParameterValue"] for p in other["Parameters"]} == {
        "Name": THREE_WAVES.names["p/other.json"]
    }


def test_a_failed_target_in_the_first_wave_leaves_later_waves_untouched(machine: RolloutMachine) -> None:
    sfn = machine.sfn
    local_aws.fail_resource("app", "us-west-2", "Setting", "boom")
    execution = start(machine)

    output = json.loads(finish(sfn, execution)["output"])

    assert output["Outcome"] == "ROLLED_BACK"
    states = {r["Key"]: r["State"] for r in output["Returns"]}
    assert states[f"{HOME}/eu-west-1/app"] == "UNTOUCHED"
    assert states[f"{HOME}/us-east-1/app"] == "UNTOUCHED"
    assert executed_order(sfn, execution) == [f"{HOME}/us-west-2/app"]
    # the later waves still run release 1, their reviewed change sets not executed
    assert value(cfn("us-east-1", None)) == "1"
    assert (
        cfn("us-east-1", None).describe_change_set(StackName="app", ChangeSetName=CHANGE_SET)["ExecutionStatus"]
        == "AVAILABLE"
    )


def test_a_return_that_fails_fails_the_execution_and_touches_nothing_else(machine: RolloutMachine) -> None:
    sfn = machine.sfn
    local_aws.fail_resource("app", "us-east-1", "Setting", "boom")  # the last wave fails
    execution = start(machine)
    canary = cfn("us-west-2", None)
    deadline = time.monotonic() + 10
    while value(canary) != "2":  # the canary has its change: from now on, re-creating Extra fails
        assert time.monotonic() < deadline, "the canary was never deployed"
        time.sleep(0.02)
    local_aws.fail_resource("app", "us-west-2", "Extra", "cannot re-create Extra")

    described = finish(sfn, execution)

    assert described["status"] == "FAILED"
    assert described.get("error") == "ReturnFailed"
    assert described.get("cause") == f'1 of 4 returns failed: ["{HOME}/us-west-2/app"]'
    recorded = start_rollout.recorded_returns(sfn, execution)
    assert recorded is not None
    canary_return = next(r for r in recorded["Returns"] if r["Key"] == f"{HOME}/us-west-2/app")
    assert canary_return["State"] == "RETURN_FAILED"
    assert "cannot re-create Extra" in canary_return["Detail"]
    assert value(canary) == "2"  # CloudFormation rolled the failed return back: the canary keeps its change


def test_an_alarm_during_a_bake_rolls_its_target_back_and_the_earlier_waves_return(machine: RolloutMachine) -> None:
    """GIVEN the early wave watches an alarm for a 15-minute bake in eu-west-1 (the reviewed change set's
    rollback configuration) WHEN the alarm fires during the bake THEN CloudFormation rolls that target back
    by itself, the rollout stops before the last wave, and the canary returns to the release."""
    watch = boto3.client("cloudwatch", region_name="eu-west-1")
    errors = alarm("eu-west-1", "app-errors")
    early = cfn("eu-west-1", None)
    early.delete_change_set(StackName="app", ChangeSetName=CHANGE_SET)
    early.create_change_set(
        StackName="app",
        ChangeSetName=CHANGE_SET,
        TemplateBody=template("2"),
        Parameters=[{"ParameterKey": "Name", "UsePreviousValue": True}],
        RollbackConfiguration={
            "RollbackTriggers": [{"Arn": errors, "Type": "AWS::CloudWatch::Alarm"}],
            "MonitoringTimeInMinutes": 15,
        },
    )
    execution = start(machine)

    def baking() -> bool:
        return bool(early.describe_stacks(StackName="app")["Stacks"][0]["StackStatus"] == "UPDATE_IN_PROGRESS")

    advance_until(baking, what="the early wave's bake")
    watch.set_alarm_state(AlarmName="app-errors", StateValue="ALARM", StateReason="errors above 1")
    described = finish(machine.sfn, execution)

    output = json.loads(described["output"])
    assert output["Outcome"] == "ROLLED_BACK"
    assert f"{HOME}/eu-west-1/app: rolled back by CloudFormation" in output["Failure"]["Cause"]
    assert "app-errors" in output["Failure"]["Cause"]
    states = {r["Key"]: r["State"] for r in output["Returns"]}
    assert states[f"{HOME}/us-west-2/app"] == "RETURNED"
    assert states[f"{HOME}/us-east-1/app"] == "UNTOUCHED"  # the last wave never started
    assert f"{HOME}/us-east-1/app" not in executed_order(machine.sfn, execution)
    assert releases() == ["1", "1", "1", "1"]


def test_a_failed_return_leaves_the_other_returns_running_and_fails_the_execution_naming_it(
    machine: RolloutMachine,
) -> None:
    """GIVEN the last wave fails and someone changed the canary by hand after this execution deployed it
    WHEN the rollout returns the targets it changed THEN the canary's return fails and is recorded, every
    other target still returns to release 1, and the execution fails naming the canary; start-rollout's
    report gives each target's state."""
    sfn = machine.sfn
    local_aws.fail_resource("app", "us-east-1", "Setting", "boom")  # the last wave fails
    execution = start(machine)
    canary, early = cfn("us-west-2", None), cfn("eu-west-1", None)
    # once the early wave deploys, the canary's wave is over: from then on, only its return looks at it
    advance_until(lambda: value(early) == "2", what="the early wave")
    changed_by_hand(canary)

    described = finish(sfn, execution)

    assert described["status"] == "FAILED"  # the ExecutionsFailed alarm fires
    assert described.get("error") == "ReturnFailed"
    assert described.get("cause") == f'1 of 4 returns failed: ["{HOME}/us-west-2/app"]'
    assert value(canary) == "3"  # left as the person made it
    assert releases()[1:] == ["1", "1", "1"]  # every other target returned
    recorded = start_rollout.recorded_returns(sfn, execution)
    assert recorded is not None
    states = {r["Key"]: (r["State"], r["Detail"]) for r in recorded["Returns"]}
    assert states[f"{HOME}/us-west-2/app"][0] == "RETURN_FAILED"
    assert "another operation followed" in states[f"{HOME}/us-west-2/app"][1]
    assert {key: state for key, (state, _) in states.items() if key != f"{HOME}/us-west-2/app"} == {
        f"{HOME}/eu-west-1/app": "RETURNED",
        f"{OTHER}/us-east-2/app": "RETURNED",
        f"{HOME}/us-east-1/app": "RETURNED",
    }
    outcome = start_rollout._returns_failed(described, recorded)
    plan = start_rollout.Plan.read(described.get("input"))
    report = "\n".join(outcome.report(plan))
    assert f"{HOME}/us-west-2/app: RETURN_FAILED (another operation followed" in report
    for key in (f"{HOME}/eu-west-1/app", f"{OTHER}/us-east-2/app", f"{HOME}/us-east-1/app"):
        assert f"{key}: RETURNED" in report
    assert "RELEASED" not in report
    assert f"{HOME}/us-west-2/app" in outcome.message(plan)
