"""start-rollout: the real rollout state machine (statemachines/rollout.asl.json) run by the emulator's
Step Functions with deploy-target's handler, started and followed by the job as CodePipeline invokes it,
the emulator's clock advanced a poll at a time."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest

import local_aws
from local_aws import FakeLambdaContext, ReportedJobResult, clock
from tests.support.events import continuation_of, load_event
from tests.support.jobs import run_job
from tests.support.notifications import Inbox, Notification
from tests.support.rollout import (
    CHANGE_SET,
    EXECUTION,
    HOME,
    POLL,
    REGION,
    STACK,
    THREE_WAVES,
    Fleet,
    RolloutMachine,
    cfn,
    create_state_machine,
    fleet,
    release,
    start_rollout_environment,
    template,
    upload_source,
    value,
)

FUNCTION = "start-rollout"
LATER_EXECUTION = "e1a2b3c4-0000-4000-8000-000000000002"
TOPIC = "release-pipeline-notifications"


@pytest.fixture
def machine(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[RolloutMachine]:
    """The rollout state machine, the topic and the start-rollout function's variables."""
    created = create_state_machine(monkeypatch)
    start_rollout_environment(created.arn, monkeypatch)
    yield created
    created.stop_running()


@pytest.fixture
def inbox(machine: RolloutMachine) -> Inbox:
    (topic,) = boto3.client("sns", region_name=REGION).list_topics()["Topics"]
    return Inbox(topic["TopicArn"])


def deploy(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every target of ``fleet`` at release 1 with a reviewed change set to release 2, and release 2 as
    the job's Source artifact."""
    release(fleet, monkeypatch)
    upload_source(fleet, load_event(FUNCTION, "job"))


@pytest.fixture
def three_waves(machine: RolloutMachine, monkeypatch: pytest.MonkeyPatch) -> RolloutMachine:
    """Every target of THREE_WAVES at release 1 with a reviewed change set to release 2."""
    deploy(THREE_WAVES, monkeypatch)
    return machine


def first_job(execution_id: str = EXECUTION) -> dict[str, Any]:
    """The action's first invocation in pipeline execution ``execution_id`` (a new job each time, as when
    CodePipeline retries the action)."""
    event = load_event(FUNCTION, "job")
    event["CodePipeline.job"]["id"] = str(uuid.uuid4())
    configuration = event["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"]
    configuration["UserParameters"] = json.dumps({"executionId": execution_id})
    return event


def poll(result: ReportedJobResult, context: FakeLambdaContext) -> ReportedJobResult:
    """CodePipeline's next invocation after a result with a continuation token."""
    assert result.continuation_token is not None, result
    return run_job(FUNCTION, continuation_of(first_job(), result.continuation_token), context)


def followed(result: ReportedJobResult) -> str:
    """The execution a result's continuation token follows."""
    assert result.continuation_token is not None, result
    execution: str = json.loads(result.continuation_token)["execution"]
    return execution


def summary(result: ReportedJobResult) -> str:
    return str((result.execution_details or {})["summary"])


def failure(result: ReportedJobResult) -> str:
    assert result.status == "Failed", result
    return str((result.failure_details or {})["message"])


def drive(machine: RolloutMachine, first: ReportedJobResult, context: FakeLambdaContext) -> list[ReportedJobResult]:
    """Follow the rollout as CodePipeline does, the clock advanced a poll at a time between invocations,
    until the job's final result; every result, the final one last."""
    results = [first]
    execution = followed(first)
    deadline = time.monotonic() + 30
    while not results[-1].final:
        assert time.monotonic() < deadline, "the job never ended"
        machine.settled(execution)
        results.append(poll(results[-1], context))
        clock.advance(timedelta(seconds=POLL))
    return results


def releases(fleet: Fleet = THREE_WAVES) -> list[str]:
    """The release each target runs, in map order."""
    return [value(cfn(t.region, t.account), t.stack) for t in fleet.targets()]


def assert_reports_every_target(note: Notification, fleet: Fleet, states: dict[str, str]) -> None:
    """The report lists each target once, under its wave, with its state, and no parameter value."""
    lines = note.message.splitlines()
    for number, (wave, keys) in enumerate(fleet.waves(), start=1):
        heading = lines.index(f"Wave {number} of {len(fleet.waves())}: {wave}")
        listed = lines[heading + 1 : heading + 1 + len(keys)]
        assert [line.split(": ", 1)[0].strip() for line in listed] == keys
        for key, line in zip(keys, listed, strict=True):
            assert line.split(": ", 1)[1].startswith(states[key]), line
    for name in fleet.names.values():
        assert name not in note.message


# --------------------------------------------------------------------------------------------- release


def test_a_release_across_three_waves_succeeds_naming_each_wave_while_it_runs(
    three_waves: RolloutMachine, inbox: Inbox, lambda_context: FakeLambdaContext
) -> None:
    first = run_job(FUNCTION, first_job(), lambda_context)

    results = drive(three_waves, first, lambda_context)

    assert "Started the rollout of 4 targets in 3 waves" in summary(first)
    running = [summary(result) for result in results[1:-1]]
    named = [s.split(": ", 1)[1] for s in running if "wave " in s]
    assert list(dict.fromkeys(named)) == [
        "wave 1 of 3, canary (1 target)",
        "wave 2 of 3, early (2 targets)",
        "wave 3 of 3, rest (1 target)",
    ]
    final = results[-1]
    assert final.status == "Succeeded"
    assert final.output_variables == {"Outcome": "RELEASED", "Waves": "3", "Targets": "4"}
    assert releases() == ["2", "2", "2", "2"]
    (note,) = inbox.messages()
    assert note.subject == f"Rollout released: {STACK}"
    every = [key for _, keys in THREE_WAVES.waves() for key in keys]
    assert_reports_every_target(note, THREE_WAVES, dict.fromkeys(every, "RELEASED"))
    assert three_waves.executions() == [followed(first)]


# ------------------------------------------------------------------------------------------- failures


def test_a_failed_target_in_the_last_wave_fails_the_job_listing_each_target_back_on_the_release(
    three_waves: RolloutMachine, inbox: Inbox, lambda_context: FakeLambdaContext
) -> None:
    local_aws.fail_resource(STACK, "us-east-1", "Setting", "Resource handler returned message: quota exceeded")

    results = drive(three_waves, run_job(FUNCTION, first_job(), lambda_context), lambda_context)

    message = failure(results[-1])
    home = f"{HOME}/us-east-1/{STACK}"
    assert f"Rolled back: {home}: rolled back by CloudFormation: Setting: " in message
    assert "quota exceeded" in message
    returned = [key for _, keys in THREE_WAVES.waves() for key in keys]
    assert f"Targets: RETURNED (back on the last release): {', '.join(returned)}." in message
    assert all(results[i].status == "Succeeded" for i in range(len(results) - 1))
    assert not results[-1].output_variables
    assert releases() == ["1", "1", "1", "1"]  # the earlier waves are back on the release
    (note,) = inbox.messages()
    assert note.subject == f"Rollout rolled back: {STACK}"
    assert_reports_every_target(note, THREE_WAVES, dict.fromkeys(returned, "RETURNED"))
    for name in THREE_WAVES.names.values():
        assert name not in message


def test_a_failed_return_fails_the_job_naming_it_and_touches_nothing_else(
    three_waves: RolloutMachine, inbox: Inbox, lambda_context: FakeLambdaContext
) -> None:
    """GIVEN the canary changed by hand after this execution deployed it THEN its check fails, its return
    refuses to touch it and fails, the other returns still run (none was changed): the job fails naming it,
    and no other target is touched."""
    first = run_job(FUNCTION, first_job(), lambda_context)
    canary = cfn("us-west-2", None)
    deadline = time.monotonic() + 10
    while value(canary) != "2":
        assert time.monotonic() < deadline, "the canary was never deployed"
        time.sleep(0.02)
    canary.update_stack(
        StackName=STACK,
        TemplateBody=template("by hand"),
        Parameters=[{"ParameterKey": "Name", "UsePreviousValue": True}],
    )

    results = drive(three_waves, first, lambda_context)

    message = failure(results[-1])
    canary_key = f"{HOME}/us-west-2/{STACK}"
    assert message.startswith(f"Returning targets to the release after the rollout failed ({canary_key}: ")
    assert f'1 of 4 returns failed: ["{canary_key}"]' in message
    assert f"its alarm fires: bring each RETURN_FAILED stack back to the release by hand ({canary_key};" in message
    assert f"RETURN_FAILED (its return to the release failed; left as it is): {canary_key};" in message
    assert releases() == ["by hand", "1", "1", "1"]
    (note,) = inbox.messages()
    assert note.subject == f"Rollout failed: {STACK}"
    others = [key for _, keys in THREE_WAVES.waves() for key in keys if key != canary_key]
    assert_reports_every_target(note, THREE_WAVES, {canary_key: "RETURN_FAILED"} | dict.fromkeys(others, "UNTOUCHED"))


# --------------------------------------------------------------------------------------------- retries


def test_a_retried_first_invocation_follows_the_execution_it_started(
    three_waves: RolloutMachine, lambda_context: FakeLambdaContext
) -> None:
    first = run_job(FUNCTION, first_job(), lambda_context)

    again = run_job(FUNCTION, first_job(), lambda_context)

    assert again.status == "Succeeded"
    assert followed(again) == followed(first)
    assert three_waves.executions() == [followed(first)]
    assert followed(first).endswith(f":execution:rollout:{EXECUTION}")


def test_a_retried_stage_reports_the_execution_that_ended_and_never_starts_another(
    three_waves: RolloutMachine, inbox: Inbox, lambda_context: FakeLambdaContext
) -> None:
    """GIVEN this pipeline execution's rollout ended (its canary's reviewed change set was gone) WHEN the
    stage is retried THEN the job reports that execution's outcome, and no change set is executed."""
    canary = cfn("us-west-2", None)
    canary.delete_change_set(StackName=STACK, ChangeSetName=CHANGE_SET)
    first = run_job(FUNCTION, first_job(), lambda_context)
    three_waves.closed(followed(first))

    retried = run_job(FUNCTION, first_job(), lambda_context)
    reported = poll(retried, lambda_context)

    assert "already started (SUCCEEDED)" in summary(retried)
    assert followed(retried) == followed(first)
    message = failure(reported)
    assert f"Rolled back: {HOME}/us-west-2/{STACK}: the reviewed change set {CHANGE_SET} is gone" in message
    assert "UNTOUCHED (never changed by this execution)" in message
    assert three_waves.executions() == [followed(first)]
    assert releases() == ["1", "1", "1", "1"]
    (note,) = inbox.messages()
    assert_reports_every_target(
        note, THREE_WAVES, dict.fromkeys([key for _, keys in THREE_WAVES.waves() for key in keys], "UNTOUCHED")
    )


def test_an_execution_of_the_same_name_with_another_input_fails_the_job(
    three_waves: RolloutMachine, monkeypatch: pytest.MonkeyPatch, lambda_context: FakeLambdaContext
) -> None:
    first = run_job(FUNCTION, first_job(), lambda_context)
    monkeypatch.setenv("POLL_SECONDS", str(POLL * 2))

    again = run_job(FUNCTION, first_job(), lambda_context)

    assert f"A rollout execution named {EXECUTION} already exists with another input" in failure(again)
    assert three_waves.executions() == [followed(first)]


# ------------------------------------------------------------------------------------------ bad input


def test_a_source_without_a_deployment_map_fails_the_job_and_starts_nothing(
    machine: RolloutMachine, monkeypatch: pytest.MonkeyPatch, lambda_context: FakeLambdaContext
) -> None:
    upload_source(fleet(3), load_event(FUNCTION, "job"))
    monkeypatch.setenv("DEPLOYMENT_MAP_PATH", "deploy/map.json")

    result = run_job(FUNCTION, first_job(), lambda_context)

    assert failure(result) == "The source artifact has no deployment map at deploy/map.json"
    assert machine.executions() == []


def test_a_poll_interval_whose_history_cannot_fit_fails_the_job_before_starting(
    machine: RolloutMachine, monkeypatch: pytest.MonkeyPatch, lambda_context: FakeLambdaContext
) -> None:
    """GIVEN 50 targets, which fit Step Functions' history at Validate's 30-second checks WHEN the function
    checks every 5 seconds THEN the job fails with the arithmetic and no execution starts."""
    upload_source(fleet(50), load_event(FUNCTION, "job"))
    monkeypatch.setenv("POLL_SECONDS", "5")

    result = run_job(FUNCTION, first_job(), lambda_context)

    message = failure(result)
    assert message.startswith("POLL_SECONDS is 5: the rollout's Step Functions history needs up to ")
    assert "checked every 5 s at first" in message
    assert message.endswith("nothing was started")
    assert machine.executions() == []


@pytest.mark.usefixtures("aws")
def test_a_token_that_names_another_state_machine_fails_the_job(
    monkeypatch: pytest.MonkeyPatch, lambda_context: FakeLambdaContext
) -> None:
    start_rollout_environment(f"arn:aws:states:{REGION}:{HOME}:stateMachine:rollout", monkeypatch)
    token = json.dumps({"execution": f"arn:aws:states:{REGION}:{HOME}:execution:other:{EXECUTION}", "polls": 1})

    result = run_job(FUNCTION, continuation_of(first_job(), token), lambda_context)

    assert "continuation token names no execution of" in failure(result)


@pytest.mark.usefixtures("aws")
def test_a_missing_or_malformed_variable_fails_the_job_naming_each(
    monkeypatch: pytest.MonkeyPatch, lambda_context: FakeLambdaContext
) -> None:
    monkeypatch.setenv("POLL_SECONDS", "1")

    result = run_job(FUNCTION, first_job(), lambda_context)

    assert failure(result).startswith("start-rollout configuration: STATE_MACHINE_ARN is not set; ")
    assert "POLL_SECONDS must be a whole number from 5 to 300, not '1'" in failure(result)
    assert (result.failure_details or {})["type"] == "ConfigurationError"
