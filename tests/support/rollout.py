"""The rollout as tests run it: the real state machine (statemachines/rollout.asl.json) in the emulator's
Step Functions, deploy-target's handler run in process for its tasks, and a fleet of targets that each
run release 1 and hold a reviewed change set to release 2.

A :class:`Fleet` is a deployment map and the parameter files it names: :data:`THREE_WAVES` (three
Regions, two accounts), or :func:`fleet` for any number of targets. A :class:`RolloutMachine` tells when
an execution waits for the emulator's clock, so that a test moves the clock only then.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

import boto3
import pytest

import local_aws
from local_aws import clock
from local_aws.awslambda import load_handler
from release_pipeline import clients, deployment_map, rollout
from tests.support.events import REPO_ROOT
from tests.support.solution import ARTIFACT_BUCKET, source_zip

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudformation.type_defs import ParameterTypeDef
    from mypy_boto3_stepfunctions import SFNClient
    from mypy_boto3_stepfunctions.type_defs import DescribeExecutionOutputTypeDef

__all__ = [
    "BUCKET",
    "CHANGE_SET",
    "CHANGE_SET_PREFIX",
    "DEFINITION",
    "EXECUTION",
    "EXECUTION_ROLE",
    "HOME",
    "MAP_PATH",
    "OTHER",
    "POLL",
    "RECORD",
    "REGION",
    "STACK",
    "TEMPLATE_PATH",
    "THREE_WAVES",
    "Activity",
    "Fleet",
    "RolloutMachine",
    "Target",
    "advance_until",
    "alarm",
    "cfn",
    "changed_by_hand",
    "create_state_machine",
    "executed_order",
    "finish",
    "fleet",
    "release",
    "start",
    "start_rollout_environment",
    "template",
    "upload_source",
    "value",
]

HOME = "123456789012"
OTHER = "222233334444"
REGION = "us-east-1"
EXECUTION = "e1a2b3c4-0000-4000-8000-000000000001"
CHANGE_SET_PREFIX = "pipeline-"
CHANGE_SET = f"{CHANGE_SET_PREFIX}{EXECUTION}"
BUCKET = "artifacts-rollout"
RECORD = "/rollout/release/record"
DEFINITION = REPO_ROOT / "statemachines" / "rollout.asl.json"
POLL = 30
STACK = "app"
TEMPLATE_PATH = "template.yaml"
MAP_PATH = "deployment-map.json"
EXECUTION_ROLE = f"arn:aws:iam::{HOME}:role/cfn-execution"
MACHINE = "rollout"
DEPLOY_TARGET = "deploy-target"
TOPIC = "release-pipeline-notifications"


def template(version: str, *, extra: bool = False) -> str:
    """The application template of release ``version``: an SSM parameter holding the version, named by
    the parameter ``Name``; with ``extra``, a second one (which release 2 removes)."""
    resources: dict[str, Any] = {
        "Setting": {
            "Type": "AWS::SSM::Parameter",
            "Properties": {"Name": {"Ref": "Name"}, "Type": "String", "Value": version},
        }
    }
    if extra:
        resources["Extra"] = {
            "Type": "AWS::SSM::Parameter",
            "Properties": {"Name": {"Fn::Sub": "${Name}-extra"}, "Type": "String", "Value": version},
        }
    return json.dumps({"Parameters": {"Name": {"Type": "String"}}, "Resources": resources})


@dataclass(frozen=True)
class Target:
    """One target as the map lists it."""

    account: str | None
    region: str
    stack: str
    parameter_file: str

    @property
    def key(self) -> str:
        """The target's name in the rollout's input and reports."""
        return rollout.target_key(self.account or HOME, self.region, self.stack)


@dataclass(frozen=True)
class Fleet:
    """A deployment map and the value of the parameter ``Name`` that each of its parameter files gives."""

    document: dict[str, Any]
    names: dict[str, str]

    def targets(self) -> list[Target]:
        """Every target, in map order."""
        return [
            Target(t.get("Account"), t["Region"], t.get("StackName", STACK), t["ParameterFile"])
            for wave in self.document["Waves"]
            for t in wave["Targets"]
        ]

    def waves(self) -> list[tuple[str, list[str]]]:
        """Each wave's name and its targets' keys, in order."""
        keys = iter(target.key for target in self.targets())
        return [(wave["Name"], [next(keys) for _ in wave["Targets"]]) for wave in self.document["Waves"]]

    def parameter_file(self, path: str) -> str | None:
        return json.dumps({"Name": self.names[path]}) if path in self.names else None

    def source(self, version: str, *, extra: bool = False) -> bytes:
        """The application repository at release ``version``: the template, the map, the parameter files."""
        files = {TEMPLATE_PATH: template(version, extra=extra), MAP_PATH: json.dumps(self.document)}
        files |= {path: json.dumps({"Name": name}) for path, name in self.names.items()}
        return source_zip(files)

    def parse(self) -> deployment_map.DeploymentMap:
        return deployment_map.parse(
            json.dumps(self.document), read_file=self.parameter_file, default_stack_name=STACK, home_account=HOME
        )


THREE_WAVES = Fleet(
    document={
        "Waves": [
            {"Name": "canary", "Targets": [{"Region": "us-west-2", "ParameterFile": "p/canary.json"}]},
            {
                "Name": "early",
                "MaxConcurrency": 2,
                "Targets": [
                    {"Region": "eu-west-1", "ParameterFile": "p/eu.json"},
                    {"Region": "us-east-2", "Account": OTHER, "ParameterFile": "p/other.json"},
                ],
            },
            {"Name": "rest", "Targets": [{"Region": "us-east-1", "ParameterFile": "p/home.json"}]},
        ]
    },
    names={
        "p/canary.json": "/rollout-test/canary",
        "p/eu.json": "/rollout-test/eu",
        "p/other.json": "/rollout-test/other",
        "p/home.json": "/rollout-test/home",
    },
)


def fleet(count: int) -> Fleet:
    """``count`` targets (3 or more) in three waves: a canary, then the others split between two waves that
    deploy up to 4 at once; every third target in the other account, each its own stack."""
    regions = ("us-west-2", "eu-west-1", "us-east-2", "us-east-1")
    targets = [
        {
            "Region": regions[index % len(regions)],
            "StackName": f"app-{index + 1:02d}",
            "ParameterFile": f"p/{index + 1:02d}.json",
            **({"Account": OTHER} if index % 3 == 2 else {}),
        }
        for index in range(count)
    ]
    middle = 1 + (count - 1) // 2
    document = {
        "Waves": [
            {"Name": "canary", "Targets": targets[:1]},
            {"Name": "early", "MaxConcurrency": 4, "Targets": targets[1:middle]},
            {"Name": "rest", "MaxConcurrency": 4, "Targets": targets[middle:]},
        ]
    }
    return Fleet(document, {t["ParameterFile"]: f"/rollout-test/{t['StackName']}" for t in targets})


def cfn(region: str, account: str | None) -> CloudFormationClient:
    """CloudFormation in a target's Region and account (through its deploy role in another account)."""
    role = f"arn:aws:iam::{account}:role/{rollout.bootstrap_role_names(HOME)[0]}" if account else None
    return clients.cloudformation_for_targets(REGION, "test")(region, role)


def value(client: CloudFormationClient, stack: str = STACK) -> str:
    """The release the stack runs: the value of its parameter Setting."""
    body = client.get_template(StackName=stack)["TemplateBody"]
    document = body if isinstance(body, dict) else json.loads(body)
    return str(document["Resources"]["Setting"]["Properties"]["Value"])


def release(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every target of ``fleet`` runs release 1 (with the resource Extra), recorded with its map; each has a
    reviewed change set to release 2 (without Extra); deploy-target's variables are set."""
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="releases/r1.zip", Body=fleet.source("1", extra=True))
    record: dict[str, Any] = {
        "bucket": BUCKET,
        "key": "releases/r1.zip",
        "version_id": None,
        "commit_id": "c1",
        "execution_id": "r1",
        "released_at": "2026-11-30T00:00:00+00:00",
        "template_path": TEMPLATE_PATH,
        "stage_parameters": {},
    }
    boto3.client("ssm", region_name=REGION).put_parameter(Name=RECORD, Value=json.dumps(record), Type="String")
    for target in fleet.targets():
        client = cfn(target.region, target.account)
        parameters: list[ParameterTypeDef] = [
            {"ParameterKey": "Name", "ParameterValue": fleet.names[target.parameter_file]}
        ]
        client.create_stack(StackName=target.stack, TemplateBody=template("1", extra=True), Parameters=parameters)
        client.create_change_set(
            StackName=target.stack, ChangeSetName=CHANGE_SET, TemplateBody=template("2"), Parameters=parameters
        )
    for name, setting in {
        "RELEASE_RECORD_PARAMETER": RECORD,
        "TEMPLATE_PATH": TEMPLATE_PATH,
        "DEPLOYMENT_MAP_PATH": MAP_PATH,
        "APPLICATION_STACK_NAME": STACK,
    }.items():
        monkeypatch.setenv(name, setting)


@dataclass
class Activity:
    """What the rollout state machine does in this process: deploy-target steps running, and Wait states
    (or Retry intervals) waiting for the emulator's clock, and when either last changed. Reading an
    execution's history would tell too, at far greater cost (a few hundred events, each with its data)."""

    steps: int = 0
    waits: int = 0
    changed: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _count(self, step: int = 0, wait: int = 0) -> None:
        with self.lock:
            self.steps += step
            self.waits += wait
            self.changed = time.monotonic()

    def step(self, handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        """``handler``, counted while it runs."""

        def counted(event: Any, context: Any) -> Any:
            self._count(step=1)
            try:
                return handler(event, context)
            finally:
                self._count(step=-1)

        return counted

    def wait(self, sleep: Callable[..., bool]) -> Callable[..., bool]:
        """The clock's ``sleep``, counted while it waits."""

        def counted(seconds: float, **options: Any) -> bool:
            self._count(wait=1)
            try:
                return sleep(seconds, **options)
            finally:
                self._count(wait=-1)

        return counted

    def idle(self, since: float) -> bool:
        """Whether every step has ended and something waits for the clock, unchanged since ``since`` for
        longer than a waiting state takes to notice that the clock moved."""
        with self.lock:
            quiet = time.monotonic() - max(self.changed, since)
            return self.steps == 0 and self.waits > 0 and quiet >= clock.POLL_SECONDS * 3


@dataclass(frozen=True)
class RolloutMachine:
    """The rollout state machine in the emulator: a Step Functions client in its Region, its ARN, and what
    it is doing."""

    sfn: SFNClient
    arn: str
    activity: Activity

    def settled(self, execution: str, within: float = 10) -> None:
        """Until ``execution`` has stopped, or waits for the clock with no step running."""
        start = time.monotonic()
        while self.sfn.describe_execution(executionArn=execution)["status"] == "RUNNING":
            if self.activity.idle(start):
                return
            assert time.monotonic() - start < within, "the rollout never came to wait"
            time.sleep(0.02)

    def closed(self, execution: str, within: float = 10) -> None:
        """Until ``execution`` has stopped (one that never waits for the clock)."""
        deadline = time.monotonic() + within
        while self.sfn.describe_execution(executionArn=execution)["status"] == "RUNNING":
            assert time.monotonic() < deadline, "the rollout is still running"
            time.sleep(0.05)

    def executions(self) -> list[str]:
        """The ARN of every execution, newest first."""
        listed = self.sfn.list_executions(stateMachineArn=self.arn)["executions"]
        return [execution["executionArn"] for execution in listed]

    def stop_running(self) -> None:
        """Stop every execution still running, once it has begun (so that none outlives its test; moto's
        worker breaks on one stopped before it has begun)."""
        running = self.sfn.list_executions(stateMachineArn=self.arn, statusFilter="RUNNING")["executions"]
        for execution in running:
            self.settled(execution["executionArn"])
            self.sfn.stop_execution(executionArn=execution["executionArn"])


class _EmulatorTime(datetime):
    """``datetime`` whose ``now`` is the emulator's clock: deploy-target measures a step's time (its timeout,
    how long to wait before the next check) on the clock the Wait states run on."""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> _EmulatorTime:
        moment = clock.now() if tz is None else clock.now().astimezone(tz)
        return cls.fromtimestamp(moment.timestamp(), moment.tzinfo)


def create_state_machine(monkeypatch: pytest.MonkeyPatch) -> RolloutMachine:
    """The rollout state machine, its tasks invoking deploy-target (run in this process, on the emulator's
    clock)."""
    activity = Activity()
    monkeypatch.setattr(clock, "sleep", activity.wait(clock.sleep))
    monkeypatch.setattr(rollout, "datetime", _EmulatorTime)
    iam = boto3.client("iam", region_name=REGION)
    trust = {
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]
    }
    role = iam.create_role(RoleName=DEPLOY_TARGET, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    function = boto3.client("lambda", region_name=REGION).create_function(
        FunctionName=DEPLOY_TARGET,
        Runtime="python3.13",
        Role=role,
        Handler="app.lambda_handler",
        Code={"ZipFile": b"PK\x05\x06" + b"\0" * 18},
        Timeout=60,
    )
    handler = load_handler(REPO_ROOT / "functions" / DEPLOY_TARGET).lambda_handler
    local_aws.run_in_process(DEPLOY_TARGET, REGION, activity.step(handler))
    definition = DEFINITION.read_text().replace("${DeployTargetFunctionArn}", function["FunctionArn"])
    client = boto3.client("stepfunctions", region_name=REGION)
    arn = client.create_state_machine(name=MACHINE, definition=definition, roleArn=role)["stateMachineArn"]
    return RolloutMachine(client, arn, activity)


def start_rollout_environment(state_machine_arn: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """start-rollout's variables for the rollout state machine, its artifact bucket, and a topic for its
    reports (returns the topic's ARN)."""
    topic = boto3.client("sns", region_name=REGION).create_topic(Name=TOPIC)["TopicArn"]
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=ARTIFACT_BUCKET)
    for name, setting in {
        "STATE_MACHINE_ARN": state_machine_arn,
        "DEPLOYMENT_MAP_PATH": MAP_PATH,
        "APPLICATION_STACK_NAME": STACK,
        "CHANGE_SET_PREFIX": CHANGE_SET_PREFIX,
        "CLOUDFORMATION_ROLE_ARN": EXECUTION_ROLE,
        "TOPIC_ARN": topic,
        "POLL_SECONDS": str(POLL),
    }.items():
        monkeypatch.setenv(name, setting)
    return topic


def upload_source(fleet: Fleet, event: dict[str, Any]) -> None:
    """Release 2 of ``fleet``'s repository as the Source artifact of the job ``event``."""
    (artifact,) = event["CodePipeline.job"]["data"]["inputArtifacts"]
    location = artifact["location"]["s3Location"]
    boto3.client("s3", region_name=REGION).put_object(
        Bucket=location["bucketName"], Key=location["objectKey"], Body=fleet.source("2")
    )


def start(machine: RolloutMachine, fleet: Fleet = THREE_WAVES) -> str:
    """Start the rollout of ``fleet``'s reviewed change sets as execution EXECUTION; its ARN."""
    document = rollout.workflow_input(
        fleet.parse(),
        execution_id=EXECUTION,
        change_set_name=CHANGE_SET,
        partition="aws",
        home_execution_role_arn=EXECUTION_ROLE,
        poll_seconds=POLL,
    )
    started = machine.sfn.start_execution(stateMachineArn=machine.arn, name=EXECUTION, input=json.dumps(document))
    return started["executionArn"]


def advance_until(done: Callable[[], bool], within: float = 60, what: str = "the rollout to get there") -> None:
    """Advance the emulator's clock a poll at a time (letting the state machine run between) until
    ``done()``."""
    deadline = time.monotonic() + within
    while not done():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        clock.advance(timedelta(seconds=POLL))
        time.sleep(0.05)


def finish(sfn: SFNClient, execution: str, within: float = 60) -> DescribeExecutionOutputTypeDef:
    """Advance the emulator's clock a poll at a time until the execution stops; its description."""
    advance_until(
        lambda: sfn.describe_execution(executionArn=execution)["status"] != "RUNNING", within, "the rollout to stop"
    )
    return sfn.describe_execution(executionArn=execution)


def executed_order(sfn: SFNClient, execution: str) -> list[str]:
    """The targets whose change set was executed, in the order the executions were asked for."""
    order = []
    pages = sfn.get_paginator("get_execution_history").paginate(executionArn=execution)
    for event in (event for page in pages for event in page["events"]):
        details = event.get("taskScheduledEventDetails")
        if details and '"execute"' in details["parameters"]:
            order.append(json.loads(details["parameters"])["Payload"]["Target"]["Key"])
    return order


def changed_by_hand(client: CloudFormationClient, stack: str = STACK, version: str = "3") -> None:
    """Someone updates the stack to release ``version`` after this execution, under a request token of their
    own (the parameter Name kept)."""
    client.update_stack(
        StackName=stack,
        TemplateBody=template(version),
        Parameters=[{"ParameterKey": "Name", "UsePreviousValue": True}],
        ClientRequestToken="someone-else",
    )


def alarm(region: str, name: str) -> str:
    """A CloudWatch alarm in ``region`` (state OK until a test sets it), to watch as a rollback trigger; its
    ARN."""
    watch = boto3.client("cloudwatch", region_name=region)
    watch.put_metric_alarm(
        AlarmName=name,
        MetricName="Errors",
        Namespace="App",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    return str(watch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["AlarmArn"])
