"""release_pipeline.start_rollout: where a running rollout is, read from its newest events; how each way a
rollout ends is told, to the pipeline and to the topic; and what a poll costs, against the real state
machine (statemachines/rollout.asl.json) run by the emulator with deploy-target's handler."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

import pytest
from botocore.exceptions import ClientError

from local_aws import clock
from release_pipeline import clients, rollout
from release_pipeline.errors import ConfigurationError, RolloutError
from release_pipeline.jobs import Job, JobResult
from release_pipeline.start_rollout import (
    HISTORY_EVENTS,
    RETURN_STATES,
    Plan,
    Position,
    StartRolloutConfig,
    execution_arn,
    follow,
    position,
    start_rollout,
)
from tests.support import rollout as scenario
from tests.support.events import load_event

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_stepfunctions import SFNClient
    from mypy_boto3_stepfunctions.type_defs import HistoryEventTypeDef

MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:release-pipeline-rollout"
EXECUTION = (
    "arn:aws:states:us-east-1:123456789012:execution:release-pipeline-rollout:e1a2b3c4-0000-4000-8000-000000000001"
)
LATER_EXECUTION = "e1a2b3c4-0000-4000-8000-000000000002"
CANARY, EU, OTHER, HOME = (
    "123456789012/us-west-2/app",
    "123456789012/eu-west-1/app",
    "222233334444/us-east-2/app",
    "123456789012/us-east-1/app",
)
INPUT = {
    "ExecutionId": "e1a2b3c4-0000-4000-8000-000000000001",
    "PollSeconds": 30,
    "Waves": [
        {"Name": "canary", "MaxConcurrency": 1, "Targets": [{"Key": CANARY, "Wave": "canary"}]},
        {
            "Name": "early",
            "MaxConcurrency": 2,
            "Targets": [{"Key": EU, "Wave": "early"}, {"Key": OTHER, "Wave": "early"}],
        },
        {"Name": "rest", "MaxConcurrency": 1, "Targets": [{"Key": HOME, "Wave": "rest"}]},
    ],
}
CONFIG = StartRolloutConfig.from_env(
    {
        "STATE_MACHINE_ARN": MACHINE,
        "DEPLOYMENT_MAP_PATH": "deployment-map.json",
        "APPLICATION_STACK_NAME": "demo-app",
        "CHANGE_SET_PREFIX": "pipeline-",
        "CLOUDFORMATION_ROLE_ARN": "arn:aws:iam::123456789012:role/release-pipeline-cfn",
        "TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:release-pipeline",
        "POLL_SECONDS": "30",
    }
)


# ------------------------------------------------------------------------------------------ history


def entered(event_id: int, state: str, data: dict[str, Any] | str) -> HistoryEventTypeDef:
    raw = data if isinstance(data, str) else json.dumps(data)
    return cast(
        "HistoryEventTypeDef",
        {"id": event_id, "type": "StateEntered", "stateEnteredEventDetails": {"name": state, "input": raw}},
    )


def scheduled(event_id: int, action: str, wave: str) -> HistoryEventTypeDef:
    parameters = {
        "FunctionName": "deploy-target",
        "Payload": {"Action": action, "Target": {"Key": CANARY, "Wave": wave}},
    }
    return cast(
        "HistoryEventTypeDef",
        {"id": event_id, "type": "TaskScheduled", "taskScheduledEventDetails": {"parameters": json.dumps(parameters)}},
    )


def bare(event_id: int, kind: str) -> HistoryEventTypeDef:
    return cast("HistoryEventTypeDef", {"id": event_id, "type": kind})


def test_the_newest_event_that_names_a_wave_gives_the_wave_in_whatever_order_the_page_lists_them() -> None:
    events = [
        scheduled(9, "execute", "canary"),
        entered(30, "Targets", {"Wave": {"Name": "early", "Targets": []}, "PollSeconds": 30}),
        entered(35, "Execute", {"Target": {"Key": EU, "Wave": "early"}, "PollSeconds": 30}),
        bare(36, "TaskStarted"),  # names nothing: an older event tells
    ]

    assert position(events) == Position(wave="early")
    assert position(list(reversed(events))) == Position(wave="early")


def test_a_wave_starting_is_named_by_its_map_state() -> None:
    events = [scheduled(9, "status", "early"), entered(77, "Targets", {"Wave": {"Name": "rest", "Targets": []}})]

    assert position(events) == Position(wave="rest")


@pytest.mark.parametrize(
    "newest",
    [
        scheduled(90, "return", "early"),
        entered(90, "WaitForReturn", {"Target": {"Key": EU, "Wave": "early"}}),
        entered(90, "ReturnToRelease", {"Waves": [], "Failure": {"Error": "TargetFailed"}}),
    ],
    ids=["return task", "waiting for a return", "return map"],
)
def test_returning_targets_to_the_release_is_told_as_such(newest: HistoryEventTypeDef) -> None:
    assert position([scheduled(80, "status", "rest"), newest]) == Position(returning=True)


def test_data_cut_short_or_not_an_object_is_passed_over() -> None:
    events = [
        scheduled(9, "status", "canary"),
        entered(10, "Check", '{"Target": {"Key": "1234'),  # data cut at the service's limit
        entered(11, "Check", "[1, 2]"),
        bare(12, "TaskStarted"),
    ]

    assert position(events) == Position(wave="canary")
    assert position([]) == Position()


def test_the_return_states_are_those_of_the_definition() -> None:
    states = json.loads(scenario.DEFINITION.read_text())["States"]
    returning = states["ReturnToRelease"]["ItemProcessor"]["States"]

    assert {"ReturnToRelease", "Returns", "AllReturned", "ReturnFailed", "RolledBack", *returning} == RETURN_STATES
    assert not RETURN_STATES & set(states["Waves"]["ItemProcessor"]["States"]["Targets"]["ItemProcessor"]["States"])


# --------------------------------------------------------------------------------------------- plan


def test_the_plan_is_read_from_the_execution_input() -> None:
    plan = Plan.read(json.dumps(INPUT))

    assert plan.waves == (("canary", (CANARY,)), ("early", (EU, OTHER)), ("rest", (HOME,)))
    assert plan.size == "4 targets in 3 waves"
    assert (plan.number("early"), plan.number("gone")) == (2, None)


@pytest.mark.parametrize("raw", [None, "", "not json", "[]", '{"Waves": [{"Name": "a"}]}', '{"Waves": 3}'])
def test_an_input_that_is_not_a_rollout_is_refused(raw: str | None) -> None:
    with pytest.raises(RolloutError, match="rollout execution's input"):
        Plan.read(raw)


def test_an_execution_arn_is_made_from_the_state_machine_arn() -> None:
    assert execution_arn(MACHINE, "e1a2b3c4-0000-4000-8000-000000000001") == EXECUTION
    with pytest.raises(ConfigurationError, match="STATE_MACHINE_ARN is not a state machine's ARN"):
        execution_arn("arn:aws:lambda:us-east-1:123456789012:function:rollout", "x")


# ------------------------------------------------------------------------------------------ follow


class StepFunctions:
    """DescribeExecution answering ``described``; GetExecutionHistory answering ``events``; the calls made."""

    def __init__(self, described: dict[str, Any], events: list[HistoryEventTypeDef] | None = None) -> None:
        self.described = {"executionArn": EXECUTION, "input": json.dumps(INPUT), **described}
        self.events = events or []
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def describe_execution(self, **request: Any) -> dict[str, Any]:
        self.calls.append(("DescribeExecution", request))
        return self.described

    def get_execution_history(self, **request: Any) -> dict[str, Any]:
        self.calls.append(("GetExecutionHistory", request))
        return {"events": self.events}


class Topic:
    """Publish, recorded."""

    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []

    def publish(self, **request: Any) -> dict[str, str]:
        self.published.append(request)
        return {"MessageId": "1"}


def run(sfn: StepFunctions, topic: Topic) -> Any:
    return follow(sfn=cast("SFNClient", sfn), sns=cast("SNSClient", topic), config=CONFIG, execution=EXECUTION, check=4)


def ended(sfn: StepFunctions) -> tuple[str, str]:
    """The failure message, and the one report published, of a rollout that did not release."""
    topic = Topic()
    with pytest.raises(RolloutError) as error:
        run(sfn, topic)
    (report,) = topic.published
    assert report["TopicArn"] == CONFIG.topic_arn
    return str(error.value), str(report["Message"])


def test_a_running_rollout_reads_a_bounded_page_of_its_newest_events() -> None:
    sfn = StepFunctions({"status": "RUNNING"}, [scheduled(12, "status", "early")])
    topic = Topic()

    result = run(sfn, topic)

    assert result.summary == "Rollout in progress (check 4): wave 2 of 3, early (2 targets)"
    assert json.loads(result.continuation_token) == {"execution": EXECUTION, "polls": 4}
    assert sfn.calls == [
        ("DescribeExecution", {"executionArn": EXECUTION}),
        ("GetExecutionHistory", {"executionArn": EXECUTION, "reverseOrder": True, "maxResults": HISTORY_EVENTS}),
    ]
    assert topic.published == []


class Unavailable(StepFunctions):
    """Step Functions answering ``code`` to ``operation`` (after botocore's own retries)."""

    def __init__(self, operation: str, code: str, status: int = 400) -> None:
        super().__init__({"status": "RUNNING"}, [scheduled(12, "status", "early")])
        answer: dict[str, Any] = {
            "Error": {"Code": code, "Message": code},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }
        self.error = ClientError(answer, operation)  # type: ignore[arg-type]  # the fields the check reads
        self.operation = operation

    def describe_execution(self, **request: Any) -> dict[str, Any]:
        if self.operation == "DescribeExecution":
            raise self.error
        return super().describe_execution(**request)

    def get_execution_history(self, **request: Any) -> dict[str, Any]:
        if self.operation == "GetExecutionHistory":
            raise self.error
        return super().get_execution_history(**request)


@pytest.mark.parametrize(("code", "status"), [("ThrottlingException", 400), ("ServiceUnavailable", 503)])
def test_a_transient_error_while_following_keeps_waiting_and_fails_nothing(code: str, status: int) -> None:
    """The state machine goes on deploying: a failed job would have stage-revert remove later waves' change
    sets, so a "not now" from Step Functions means looking again at the next check."""
    topic = Topic()

    result = run(Unavailable("DescribeExecution", code, status), topic)

    assert json.loads(result.continuation_token) == {"execution": EXECUTION, "polls": 4}
    assert code in result.summary
    assert topic.published == []


def test_a_transient_error_reading_the_history_only_shortens_the_summary() -> None:
    result = run(Unavailable("GetExecutionHistory", "ThrottlingException"), Topic())

    assert json.loads(result.continuation_token) == {"execution": EXECUTION, "polls": 4}
    assert result.summary.startswith("Rollout in progress (check 4): ")


def test_an_error_that_is_not_transient_fails_the_job() -> None:
    with pytest.raises(ClientError, match="AccessDeniedException"):
        run(Unavailable("DescribeExecution", "AccessDeniedException"), Topic())


def test_a_rolled_back_rollout_tells_each_targets_state() -> None:
    """GIVEN a target created by this execution and one not in the last release THEN both are named as
    left in place, and the failed target and its cause lead the message."""
    output = {
        "Outcome": "ROLLED_BACK",
        "Failure": {"Error": "TargetFailed", "Cause": f"{HOME}: rolled back by CloudFormation: Queue: limit"},
        "Returns": [
            {"Key": CANARY, "Wave": "canary", "State": rollout.RETURNED, "Detail": "returned to the release"},
            {"Key": EU, "Wave": "early", "State": rollout.FIRST_RELEASE, "Detail": ""},
            {"Key": OTHER, "Wave": "early", "State": rollout.NOT_RELEASED, "Detail": ""},
            {"Key": HOME, "Wave": "rest", "State": rollout.RETURNED, "Detail": "CloudFormation rolled it back"},
        ],
    }

    message, report = ended(StepFunctions({"status": "SUCCEEDED", "output": json.dumps(output)}))

    assert message.startswith(f"Rolled back: {HOME}: rolled back by CloudFormation: Queue: limit.")
    assert "Stacks it created (FIRST_RELEASE) are kept: never deleted." in message
    assert "Targets not in the last release (NOT_RELEASED) are left as they are." in message
    assert f"RETURNED (back on the last release): {CANARY}, {HOME}" in message
    assert f"FIRST_RELEASE (created by this execution; never deleted): {EU}" in message
    assert f"NOT_RELEASED (not in the last release; left as it is): {OTHER}" in message
    lines = report.splitlines()
    first = lines.index("Wave 1 of 3: canary")
    assert lines[first : first + 6] == [
        "Wave 1 of 3: canary",
        f"  {CANARY}: RETURNED (returned to the release)",
        "Wave 2 of 3: early",
        f"  {EU}: FIRST_RELEASE (created by this execution; never deleted)",
        f"  {OTHER}: NOT_RELEASED (not in the last release; left as it is)",
        "Wave 3 of 3: rest",
    ]


@pytest.mark.parametrize(
    ("status", "error", "cause", "told"),
    [
        ("ABORTED", "", "", "The rollout execution was stopped (ABORTED)."),
        ("TIMED_OUT", "States.Timeout", "", "The rollout execution timed out: States.Timeout: no cause given."),
    ],
)
def test_a_rollout_stopped_or_timed_out_says_nothing_was_returned(
    status: str, error: str, cause: str, told: str
) -> None:
    message, report = ended(StepFunctions({"status": status, "error": error, "cause": cause}))

    assert message.startswith(f"{told} Targets may be partly deployed; none was returned to the release.")
    assert f"UNKNOWN (not known: see the execution): {CANARY}, {EU}, {OTHER}, {HOME}." in message
    assert f"  {HOME}: UNKNOWN (not known: see the execution)" in report


def test_a_failed_execution_for_another_reason_fires_the_alarm_and_touches_nothing() -> None:
    cause = json.dumps({"errorMessage": "Task timed out after 60.00 seconds", "errorType": "Sandbox.Timedout"})

    message, _ = ended(StepFunctions({"status": "FAILED", "error": "Sandbox.Timedout", "cause": cause}))

    assert message.startswith(f"The rollout execution failed: Sandbox.Timedout: {cause}.")
    assert "its alarm fires; nothing else is touched" in message


def test_an_outcome_this_function_does_not_know_fails_the_job_without_a_report() -> None:
    topic = Topic()
    sfn = StepFunctions({"status": "SUCCEEDED", "output": json.dumps({"Outcome": "MAYBE"})})

    with pytest.raises(RolloutError, match="outcome this function does not know: 'MAYBE'"):
        run(sfn, topic)
    assert topic.published == []


def test_a_hundred_targets_keep_the_token_the_same_size() -> None:
    many = {"Waves": [{"Name": "all", "Targets": [{"Key": f"123456789012/us-east-1/app-{n}"} for n in range(100)]}]}
    sfn = StepFunctions({"status": "RUNNING", "input": json.dumps(many)}, [scheduled(1, "execute", "all")])

    result = run(sfn, Topic())

    assert json.loads(result.continuation_token) == {"execution": EXECUTION, "polls": 4}
    assert result.summary.endswith("wave 1 of 1, all (100 targets)")


# ----------------------------------------------------------------------------------- cost of a poll


@pytest.fixture
def machine(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[scenario.RolloutMachine]:
    """The rollout state machine and start-rollout's variables."""
    created = scenario.create_state_machine(monkeypatch)
    scenario.start_rollout_environment(created.arn, monkeypatch)
    yield created
    created.stop_running()


def job_event(execution_id: str, token: str | None = None) -> dict[str, Any]:
    """A start-rollout job in pipeline execution ``execution_id``: the first, or one carrying ``token``."""
    event = load_event("start-rollout", "job")
    data = event["CodePipeline.job"]["data"]
    data["actionConfiguration"]["configuration"]["UserParameters"] = json.dumps({"executionId": execution_id})
    if token is not None:
        data["continuationToken"] = token
    return event


def invoke(event: dict[str, Any]) -> JobResult:
    """The job's logic, its clients made as the handler makes them."""
    job = Job(event)
    return start_rollout(
        job=job,
        job_s3=clients.s3(scenario.REGION, job.artifact_credentials),
        sfn=clients.stepfunctions(scenario.REGION),
        sns=clients.sns(scenario.REGION),
        config=StartRolloutConfig.from_env(),
        function_arn=f"arn:aws:lambda:{scenario.REGION}:{scenario.HOME}:function:start-rollout",
    )


def followed(result: JobResult) -> str:
    execution: str = json.loads(result.continuation_token or "{}")["execution"]
    return execution


@contextmanager
def api_calls() -> Iterator[list[str]]:
    """The AWS calls made on this thread through the solution's clients (``stepfunctions.DescribeExecution``):
    the state machine's own calls, made on its threads, are not counted."""
    thread = threading.get_ident()
    calls: list[str] = []

    def record(model: Any, **_: Any) -> None:
        if threading.get_ident() == thread:
            calls.append(f"{model.service_model.service_name}.{model.name}")

    events = clients._session().events
    events.register("before-call", record, unique_id="count-api-calls")
    try:
        yield calls
    finally:
        events.unregister("before-call", unique_id="count-api-calls")


@pytest.mark.parametrize("count", [3, 12])
def test_each_poll_makes_the_same_calls_whatever_the_number_of_targets(
    machine: scenario.RolloutMachine, monkeypatch: pytest.MonkeyPatch, count: int
) -> None:
    """Polls of a rollout in its first and second waves, and the last poll of another pipeline execution's
    rollout (which ends at once: no change set of its own to execute), make the same calls for 3 targets as
    for 12; the token stays the execution and a count."""
    fleet = scenario.fleet(count)
    scenario.release(fleet, monkeypatch)
    scenario.upload_source(fleet, job_event(scenario.EXECUTION))

    with api_calls() as starting:
        first = invoke(job_event(scenario.EXECUTION))
    machine.settled(followed(first))
    with api_calls() as in_first_wave:
        canary = invoke(job_event(scenario.EXECUTION, first.continuation_token))
    clock.advance(timedelta(seconds=scenario.POLL))
    machine.settled(followed(first))
    with api_calls() as in_second_wave:
        later = invoke(job_event(scenario.EXECUTION, canary.continuation_token))
    other = invoke(job_event(LATER_EXECUTION))
    machine.closed(followed(other))
    with api_calls() as at_the_end, pytest.raises(RolloutError) as ended:
        invoke(job_event(LATER_EXECUTION, other.continuation_token))

    assert canary.summary.endswith("wave 1 of 3, canary (1 target)")
    early = len(fleet.waves()[1][1])
    assert later.summary.endswith(f"wave 2 of 3, early ({early} target{'s' if early > 1 else ''})")
    assert str(ended.value).startswith(f"Rolled back: {fleet.waves()[0][1][0]}: the reviewed change set")
    assert starting == ["s3.HeadObject", "s3.GetObject", "stepfunctions.StartExecution"]
    assert in_first_wave == in_second_wave == ["stepfunctions.DescribeExecution", "stepfunctions.GetExecutionHistory"]
    assert at_the_end == ["stepfunctions.DescribeExecution", "sns.Publish"]
    assert json.loads(later.continuation_token or "") == {"execution": followed(first), "polls": 3}
