"""local_aws.stepfunctions: state machines of the shapes a wave-by-wave rollout uses run in the emulator as
in AWS (aws-sdk CloudFormation tasks, Choice on a stack's status, Wait on the emulator's clock, Map with
MaxConcurrency, Catch and Retry on CloudFormation's errors, tasks acting in another account, Lambda tasks)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.cloudformation.models import cloudformation_backends
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.moto_api._internal.models import moto_api_backend
from moto.server import ThreadedMotoServer

import local_aws
from local_aws import clock

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_stepfunctions import SFNClient
    from mypy_boto3_stepfunctions.type_defs import DescribeExecutionOutputTypeDef

REGION = "us-east-1"
EXECUTION_ROLE_NAME = "rollout-state-machine"
EXECUTION_ROLE = f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/{EXECUTION_ROLE_NAME}"
TARGET_ACCOUNT = "222222222222"
DEPLOY_ROLE_NAME = "rollout-deploy"
DEPLOY_ROLE = f"arn:aws:iam::{TARGET_ACCOUNT}:role/{DEPLOY_ROLE_NAME}"
SDK = "arn:aws:states:::aws-sdk"
TOPIC = {"Type": "AWS::SNS::Topic"}
QUEUE = {"Type": "AWS::SQS::Queue"}


def template(**resources: Any) -> str:
    return json.dumps({"Resources": resources})


@pytest.fixture(scope="module")
def session() -> boto3.session.Session:
    """One session for the file's clients, so that service models load once, not for every test (its fake
    credentials given outright: it is made before the per-test environment)."""
    return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)


@pytest.fixture
def cfn(aws: None, session: boto3.session.Session) -> CloudFormationClient:
    return session.client("cloudformation")


@pytest.fixture
def sfn(aws: None, session: boto3.session.Session) -> SFNClient:
    return session.client("stepfunctions")


def start(sfn: SFNClient, states: dict[str, Any], start_at: str, given: Any = None) -> str:
    """Create a state machine of ``states`` and start it with ``given``; returns the execution ARN."""
    definition = json.dumps({"StartAt": start_at, "States": states})
    name = f"rollout-{time.monotonic_ns()}"
    machine = sfn.create_state_machine(name=name, definition=definition, roleArn=EXECUTION_ROLE)["stateMachineArn"]
    return sfn.start_execution(stateMachineArn=machine, input=json.dumps(given or {}))["executionArn"]


def finished(sfn: SFNClient, execution: str, within: float = 10.0) -> DescribeExecutionOutputTypeDef:
    """The execution once it has stopped running (fails the test if it runs ``within`` real seconds)."""
    deadline = time.monotonic() + within
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"still running after {within} s"
        time.sleep(0.02)
    return described


def still_running(sfn: SFNClient, execution: str, for_seconds: float = 0.15) -> bool:
    time.sleep(for_seconds)
    return sfn.describe_execution(executionArn=execution)["status"] == "RUNNING"


def reached(sfn: SFNClient, execution: str, event_type: str, count: int = 1, within: float = 5.0) -> None:
    """Return once the execution's history holds ``count`` events of ``event_type`` (a Wait entered, a task
    failed...), so that the test moves the clock only after the execution has started waiting."""
    deadline = time.monotonic() + within
    while True:
        events = sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]
        if sum(event["type"] == event_type for event in events) >= count:
            return
        assert time.monotonic() < deadline, f"no {count} {event_type} after {within} s"
        time.sleep(0.02)


def output_of(described: DescribeExecutionOutputTypeDef) -> Any:
    assert described["status"] == "SUCCEEDED", (described.get("error"), described.get("cause"))
    return json.loads(described["output"])


def sdk_task(action: str, parameters: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"Type": "Task", "Resource": f"{SDK}:cloudformation:{action}", "Parameters": parameters, **fields}


def test_a_change_set_executed_by_an_aws_sdk_task_updates_the_stack(sfn: SFNClient, cfn: CloudFormationClient) -> None:
    cfn.create_stack(StackName="app", TemplateBody=template(Topic=TOPIC))
    cfn.create_change_set(StackName="app", ChangeSetName="release-2", TemplateBody=template(Topic=TOPIC, Queue=QUEUE))
    states = {
        "Execute": sdk_task(
            "executeChangeSet", {"StackName.$": "$.stack", "ChangeSetName.$": "$.changeSet"}, ResultPath=None, End=True
        )
    }

    output = output_of(finished(sfn, start(sfn, states, "Execute", {"stack": "app", "changeSet": "release-2"})))

    assert output == {"stack": "app", "changeSet": "release-2"}
    assert cfn.describe_stacks(StackName="app")["Stacks"][0]["StackStatus"] == "UPDATE_COMPLETE"
    resources = cfn.list_stack_resources(StackName="app")["StackResourceSummaries"]
    assert sorted(r["LogicalResourceId"] for r in resources) == ["Queue", "Topic"]


CHECK_STATUS = {
    "Describe": sdk_task(
        "describeStacks",
        {"StackName.$": "$.stack"},
        ResultSelector={"Status.$": "$.Stacks[0].StackStatus", "All.$": "$.Stacks[*].StackStatus"},
        ResultPath="$.described",
        Next="Released?",
    ),
    "Released?": {
        "Type": "Choice",
        "Choices": [
            {"Variable": "$.described.Status", "StringEquals": "UPDATE_COMPLETE", "Next": "Released"},
            {"Variable": "$.described.Status", "StringEquals": "UPDATE_ROLLBACK_COMPLETE", "Next": "RolledBack"},
        ],
        "Default": "Unknown",
    },
    "Released": {"Type": "Pass", "Result": "released", "ResultPath": "$.branch", "End": True},
    "RolledBack": {"Type": "Pass", "Result": "rolled back", "ResultPath": "$.branch", "End": True},
    "Unknown": {"Type": "Pass", "Result": "unknown", "ResultPath": "$.branch", "End": True},
}


@pytest.mark.parametrize(
    ("status", "branch"), [("UPDATE_COMPLETE", "released"), ("UPDATE_ROLLBACK_COMPLETE", "rolled back")]
)
def test_a_choice_on_the_stack_status_takes_that_status_branch(
    sfn: SFNClient, cfn: CloudFormationClient, status: str, branch: str
) -> None:
    """GIVEN a stack in ``status`` WHEN a Choice reads $.Stacks[0].StackStatus (through a ResultSelector)
    THEN it sees the string, not a one-item list, and takes that status's branch."""
    cfn.create_stack(StackName="app", TemplateBody=template(Topic=TOPIC))
    local_aws.set_stack_status("app", REGION, status)

    output = output_of(finished(sfn, start(sfn, CHECK_STATUS, "Describe", {"stack": "app"})))

    assert output["described"] == {"Status": status, "All": [status]}  # a wildcard path still gives a list
    assert output["branch"] == branch


def test_a_task_result_is_json_with_timestamps_as_iso_text(sfn: SFNClient, cfn: CloudFormationClient) -> None:
    cfn.create_stack(StackName="app", TemplateBody=template(Topic=TOPIC))
    states = {
        "Events": sdk_task(
            "describeStackEvents",
            {"StackName": "app"},
            ResultSelector={"Latest.$": "$.StackEvents[0].ResourceStatus", "At.$": "$.StackEvents[0].Timestamp"},
            ResultPath="$.events",
            Next="Stacks",
        ),
        "Stacks": sdk_task("describeStacks", {"StackName": "app"}, ResultPath="$.stacks", End=True),
    }

    output = output_of(finished(sfn, start(sfn, states, "Events")))  # DescribeExecution answers at all

    iso = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
    assert output["events"]["Latest"] == "CREATE_COMPLETE"
    assert iso.fullmatch(output["events"]["At"])
    assert iso.fullmatch(output["stacks"]["Stacks"][0]["CreationTime"])


BAKE = 1800


@pytest.mark.parametrize(
    ("wait", "given"),
    [
        ({"Seconds": BAKE}, {}),
        ({"SecondsPath": "$.targets[0].bakeSeconds"}, {"targets": [{"bakeSeconds": BAKE}]}),
        ({"TimestampPath": "$.until"}, None),
    ],
    ids=["Seconds", "SecondsPath", "TimestampPath"],
)
def test_a_wait_ends_when_the_emulator_clock_passes_it_and_not_before(
    sfn: SFNClient, wait: dict[str, Any], given: dict[str, Any] | None
) -> None:
    if given is None:
        given = {"until": (clock.now() + timedelta(seconds=BAKE)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    states = {"Bake": {"Type": "Wait", **wait, "Next": "Baked"}, "Baked": {"Type": "Pass", "End": True}}
    execution = start(sfn, states, "Bake", given)
    reached(sfn, execution, "WaitStateEntered")

    assert still_running(sfn, execution)
    clock.advance(timedelta(seconds=BAKE - 120))
    assert still_running(sfn, execution)
    started = time.monotonic()
    clock.advance(timedelta(seconds=120))

    assert finished(sfn, execution, within=2)["status"] == "SUCCEEDED"
    assert time.monotonic() - started < 2


def test_a_retry_waits_its_interval_on_the_emulator_clock(sfn: SFNClient, cfn: CloudFormationClient) -> None:
    """GIVEN a task that fails and retries after 10 minutes WHEN the stack appears meanwhile THEN the retry
    runs once the clock has moved 10 minutes, and finds it."""
    retry = [{"ErrorEquals": ["CloudFormation.CloudFormationException"], "IntervalSeconds": 600, "MaxAttempts": 1}]
    states = {
        "Describe": sdk_task(
            "describeStacks", {"StackName": "late"}, Retry=retry, OutputPath="$.Stacks[0].StackStatus", End=True
        )
    }
    execution = start(sfn, states, "Describe")
    reached(sfn, execution, "TaskFailed")
    assert still_running(sfn, execution)
    cfn.create_stack(StackName="late", TemplateBody=template(Topic=TOPIC))

    clock.advance(timedelta(seconds=600))

    assert output_of(finished(sfn, execution, within=2)) == "CREATE_COMPLETE"


@pytest.mark.parametrize(
    ("concurrency", "released_after_each_minute"), [(1, [1, 2, 3]), (0, [3])], ids=["MaxConcurrency 1", "unlimited"]
)
def test_a_map_runs_at_most_max_concurrency_targets_at_a_time(
    sfn: SFNClient, session: boto3.session.Session, concurrency: int, released_after_each_minute: list[int]
) -> None:
    """Each target of a wave bakes 60 s, then records itself: with MaxConcurrency 1, each minute of clock
    releases one target; without a limit, the first minute releases all three."""
    ssm = session.client("ssm")
    wave = {
        "Type": "Map",
        "ItemsPath": "$.wave.targets",
        "ItemSelector": {"Name.$": "States.Format('/released/{}', $$.Map.Item.Value.region)"},
        "MaxConcurrency": concurrency,
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "INLINE"},
            "StartAt": "Bake",
            "States": {
                "Bake": {"Type": "Wait", "Seconds": 60, "Next": "Record"},
                "Record": {
                    "Type": "Task",
                    "Resource": f"{SDK}:ssm:putParameter",
                    "Parameters": {"Name.$": "$.Name", "Value": "released", "Type": "String"},
                    "End": True,
                },
            },
        },
        "End": True,
    }
    targets = [{"region": region} for region in ("eu-west-1", "us-west-2", "ap-south-1")]
    execution = start(sfn, {"Wave": wave}, "Wave", {"wave": {"targets": targets}})

    def released() -> int:
        return len(ssm.get_parameters_by_path(Path="/released")["Parameters"])

    for minute, expected in enumerate(released_after_each_minute, start=1):
        reached(sfn, execution, "WaitStateEntered", count=3 if concurrency == 0 else minute)
        assert still_running(sfn, execution, 0.05)
        clock.advance(timedelta(seconds=60))
        deadline = time.monotonic() + 2
        while released() < expected:
            assert time.monotonic() < deadline, f"{released()} released, expected {expected}"
            time.sleep(0.02)
        time.sleep(0.1)
        assert released() == expected  # and no more

    assert finished(sfn, execution, within=2)["status"] == "SUCCEEDED"


@pytest.mark.parametrize(
    ("action", "parameters", "error"),
    [
        (
            "executeChangeSet",
            {"StackName": "app", "ChangeSetName": "gone"},
            "CloudFormation.ChangeSetNotFoundException",
        ),
        ("describeStacks", {"StackName": "missing"}, "CloudFormation.CloudFormationException"),
    ],
)
def test_a_catch_on_a_cloudformation_error_routes_to_its_handler(
    sfn: SFNClient, cfn: CloudFormationClient, action: str, parameters: dict[str, Any], error: str
) -> None:
    cfn.create_stack(StackName="app", TemplateBody=template(Topic=TOPIC))
    catch = [
        {"ErrorEquals": ["CloudFormation.AmazonCloudFormationException"], "Next": "Wrong"},
        {"ErrorEquals": [error], "ResultPath": "$.error", "Next": "ReturnToRelease"},
        {"ErrorEquals": ["States.ALL"], "Next": "Wrong"},
    ]
    states = {
        "Call": sdk_task(action, parameters, Catch=catch, End=True),
        "ReturnToRelease": {"Type": "Pass", "End": True},
        "Wrong": {"Type": "Fail", "Error": "WrongHandler"},
    }

    output = output_of(finished(sfn, start(sfn, states, "Call")))

    assert output["error"]["Error"] == error
    assert "(Service: CloudFormation, Status Code: " in output["error"]["Cause"]


def test_states_task_failed_catches_a_cloudformation_error(sfn: SFNClient) -> None:
    catch = [{"ErrorEquals": ["States.TaskFailed"], "ResultPath": "$.error", "Next": "Handled"}]
    states = {
        "Call": sdk_task("describeStacks", {"StackName": "missing"}, Catch=catch, End=True),
        "Handled": {"Type": "Pass", "End": True},
    }

    output = output_of(finished(sfn, start(sfn, states, "Call")))

    assert output["error"]["Error"] == "CloudFormation.CloudFormationException"


def test_states_all_does_not_catch_a_runtime_error(sfn: SFNClient) -> None:
    """A path that is not in the input is a States.Runtime error, which fails the execution even under a
    Catch on States.ALL."""
    catch = [{"ErrorEquals": ["States.ALL"], "Next": "Handled"}]
    states = {
        "Call": sdk_task("describeStacks", {"StackName.$": "$.notGiven"}, Catch=catch, End=True),
        "Handled": {"Type": "Pass", "End": True},
    }

    described = finished(sfn, start(sfn, states, "Call"))

    assert described["status"] == "FAILED"
    assert described.get("error") == "States.Runtime"


def test_a_task_with_credentials_acts_as_that_role_in_its_account(sfn: SFNClient) -> None:
    """GIVEN Credentials.RoleArn of a role in another account WHEN a task creates a stack THEN the stack is
    made in that account, by a session of that role; a task without Credentials acts as the execution role."""
    who_am_i = {"Type": "Task", "Resource": f"{SDK}:sts:getCallerIdentity", "Parameters": {}}
    states = {
        "AsExecutionRole": {
            **who_am_i,
            "ResultSelector": {"Arn.$": "$.Arn"},
            "ResultPath": "$.home",
            "Next": "AsDeploy",
        },
        "AsDeploy": {
            **who_am_i,
            "Credentials": {"RoleArn.$": "$.target.roleArn"},
            "ResultSelector": {"Arn.$": "$.Arn"},
            "ResultPath": "$.target.caller",
            "Next": "Create",
        },
        "Create": sdk_task(
            "createStack",
            {"StackName": "app", "TemplateBody": template(Topic=TOPIC)},
            Credentials={"RoleArn.$": "$.target.roleArn"},
            ResultPath=None,
            End=True,
        ),
    }

    output = output_of(finished(sfn, start(sfn, states, "AsExecutionRole", {"target": {"roleArn": DEPLOY_ROLE}})))

    session_of = "arn:aws:sts::{}:assumed-role/{}/StepFunctions".format
    assert output["home"]["Arn"] == session_of(DEFAULT_ACCOUNT_ID, EXECUTION_ROLE_NAME)
    assert output["target"]["caller"]["Arn"] == session_of(TARGET_ACCOUNT, DEPLOY_ROLE_NAME)
    assert [s.name for s in cloudformation_backends[TARGET_ACCOUNT][REGION].stacks.values()] == ["app"]
    assert not cloudformation_backends[DEFAULT_ACCOUNT_ID][REGION].stacks


@pytest.fixture
def check_target(aws: None, session: boto3.session.Session) -> str:
    """A Lambda function (its code runs in this process: see local_aws.awslambda.run_in_process); its ARN."""
    trust = {
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]
    }
    role = session.client("iam").create_role(RoleName="check-target", AssumeRolePolicyDocument=json.dumps(trust))
    function = session.client("lambda").create_function(
        FunctionName="check-target",
        Runtime="python3.13",
        Role=role["Role"]["Arn"],
        Handler="app.lambda_handler",
        Code={"ZipFile": b"PK\x05\x06" + b"\0" * 18},
    )
    return str(function["FunctionArn"])


class TargetUnhealthy(Exception):
    pass


def check(event: Any, context: Any) -> dict[str, Any]:
    if event["alarms"]:
        raise TargetUnhealthy(f"{event['region']}: {', '.join(event['alarms'])} in ALARM")
    return {"region": event["region"], "healthy": True}


@pytest.mark.parametrize("alarms", [[], ["5xx"]], ids=["healthy", "unhealthy"])
def test_a_lambda_invoke_runs_the_function_in_process_and_its_error_is_caught_by_type(
    sfn: SFNClient, check_target: str, alarms: list[str]
) -> None:
    """A state machine's Lambda task calls the function's handler; an exception it raises is the task's
    error, named after its type, as Lambda's Python runtime reports it."""
    local_aws.run_in_process("check-target", REGION, check)
    states = {
        "Check": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": check_target, "Payload.$": "$"},
            "OutputPath": "$.Payload",
            "Catch": [{"ErrorEquals": ["TargetUnhealthy"], "ResultPath": "$.error", "Next": "ReturnToRelease"}],
            "End": True,
        },
        "ReturnToRelease": {"Type": "Pass", "End": True},
    }

    output = output_of(finished(sfn, start(sfn, states, "Check", {"region": "eu-west-1", "alarms": alarms})))

    if alarms:
        assert output["error"]["Error"] == "TargetUnhealthy"
        assert json.loads(output["error"]["Cause"])["errorMessage"] == "eu-west-1: 5xx in ALARM"
    else:
        assert output == {"region": "eu-west-1", "healthy": True}


def test_a_lambda_task_invokes_its_function_once(sfn: SFNClient, check_target: str) -> None:
    """One invocation per task attempt, as in AWS: under mock_aws, moto's own stubber answers the task's
    request, and the emulator's in-process answer must not run it a second time."""
    calls: list[Any] = []

    def count(event: Any, context: Any) -> dict[str, int]:
        calls.append(event)
        return {"n": len(calls)}

    local_aws.run_in_process("check-target", REGION, count)
    states = {
        "Check": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": check_target, "Payload.$": "$"},
            "OutputPath": "$.Payload",
            "End": True,
        }
    }

    output = output_of(finished(sfn, start(sfn, states, "Check", {"region": "eu-west-1"})))

    assert output == {"n": 1}
    assert calls == [{"region": "eu-west-1"}]


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    endpoint = f"http://localhost:{server.get_host_and_port()[1]}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    moto_api_backend.reset()  # what earlier tests left in this process
    try:
        yield endpoint
    finally:
        moto_api_backend.reset()
        server.stop()


def test_a_threaded_moto_server_runs_state_machines(moto_server: str) -> None:
    """No mock_aws: the server (on a port of its own) runs the definition, and its tasks reach the server's
    backends."""
    sfn = boto3.client("stepfunctions", region_name=REGION)
    cfn = boto3.client("cloudformation", region_name=REGION)
    states = {
        "Create": sdk_task(
            "createStack", {"StackName": "app", "TemplateBody": template(Topic=TOPIC)}, ResultPath=None, Next="Describe"
        ),
        **CHECK_STATUS,
    }

    execution = start(sfn, states, "Create", {"stack": "app"})

    described = finished(sfn, execution)
    assert sfn.meta.endpoint_url == moto_server
    assert described["status"] == "SUCCEEDED", described
    assert cfn.describe_stacks(StackName="app")["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    assert json.loads(described["output"])["branch"] == "unknown"  # CREATE_COMPLETE has no branch of its own


def test_the_context_objects_entered_time_is_the_emulator_clock(sfn: SFNClient) -> None:
    """$$.State.EnteredTime follows the clock the Wait states run on: a day ahead when the clock is."""
    clock.advance(timedelta(days=1))
    states = {"Stamp": {"Type": "Pass", "Parameters": {"Entered.$": "$$.State.EnteredTime"}, "End": True}}

    entered = datetime.fromisoformat(output_of(finished(sfn, start(sfn, states, "Stamp")))["Entered"])

    assert abs(entered - clock.now()) < timedelta(seconds=5)
    assert entered - datetime.now(UTC) > timedelta(hours=23)


def test_the_history_comes_a_page_at_a_time_newest_first_when_asked(sfn: SFNClient) -> None:
    """GetExecutionHistory pages as AWS documents (100 by default, maxResults at most 1,000, nextToken),
    oldest first or newest first: moto answered every event, oldest first, whatever was asked."""
    states: dict[str, Any] = {f"Step{n}": {"Type": "Pass", "Next": f"Step{n + 1}"} for n in range(60)}
    states["Step60"] = {"Type": "Pass", "End": True}
    execution = start(sfn, states, "Step0")
    finished(sfn, execution)

    first = sfn.get_execution_history(executionArn=execution)
    newest = sfn.get_execution_history(executionArn=execution, reverseOrder=True, maxResults=3)["events"]
    pages = sfn.get_paginator("get_execution_history").paginate(
        executionArn=execution, PaginationConfig={"PageSize": 50}
    )
    every = [event for page in pages for event in page["events"]]

    assert len(first["events"]) == 100
    assert "nextToken" in first
    assert [event["id"] for event in every] == list(range(1, len(every) + 1))
    assert len(every) > 100
    assert [event["id"] for event in newest] == [len(every), len(every) - 1, len(every) - 2]
    assert newest[0]["type"] == "ExecutionSucceeded"
    with pytest.raises(ClientError, match="InvalidToken"):
        sfn.get_execution_history(executionArn=execution, nextToken="not-a-token")
