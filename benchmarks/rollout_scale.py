"""The rollout at scale: one release to many targets, run by the emulator's Step Functions with the real
state machine (statemachines/rollout.asl.json) and deploy-target's handler, counted per target.

Three waves (a canary, then the rest split in two waves of concurrency 10) over six Regions and two
accounts, each target with a reviewed change set. For a small map and a large one (10 and 50 targets
by default), it counts per target: deploy-target invocations and their handler time, state
transitions (every state entered, which Step Functions bills), and the AWS calls deploy-target makes.
None of them may grow with the number of targets: the benchmark fails if a per-target count does.

    make benchmark            (ROLLOUT_TARGETS=10,50 to change the two sizes)
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from moto import mock_aws

import local_aws
from local_aws import clock
from local_aws.awslambda import load_handler
from release_pipeline import clients, deployment_map, rollout

if TYPE_CHECKING:
    from mypy_boto3_cloudformation.type_defs import ParameterTypeDef

ROOT = Path(__file__).resolve().parents[1]
DEFINITION = ROOT / "statemachines" / "rollout.asl.json"
HOME = "123456789012"
OTHER = "222233334444"
HOME_REGION = "us-east-1"
REGIONS = ("us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2")
EXECUTION = "e1a2b3c4-0000-4000-8000-000000000001"
CHANGE_SET = f"pipeline-{EXECUTION}"
POLL_SECONDS = 30
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}  # moto's, never real
SIZES = tuple(int(n) for n in os.environ.get("ROLLOUT_TARGETS", "10,50").split(","))
TEMPLATE = json.dumps(
    {
        "Parameters": {"Name": {"Type": "String"}},
        "Resources": {
            "Setting": {
                "Type": "AWS::SSM::Parameter",
                "Properties": {"Name": {"Ref": "Name"}, "Type": "String", "Value": "v"},
            }
        },
    }
)


@dataclass
class Counts:
    targets: int
    invocations: int
    handler_seconds: float
    transitions: int
    aws_calls: Counter[str]
    wall_seconds: float

    def per_target(self, value: float) -> float:
        return value / self.targets


def deployment(size: int) -> dict[str, Any]:
    """A map of ``size`` targets: one canary, then two waves of concurrency 10."""
    targets = []
    for index in range(size):
        target: dict[str, Any] = {
            "Region": REGIONS[index % len(REGIONS)],
            "StackName": f"app-{index}",
            "ParameterFile": "p.json",
        }
        if index % 2:
            target["Account"] = OTHER
        targets.append(target)
    half = 1 + (size - 1) // 2
    return {
        "Waves": [
            {"Name": "canary", "Targets": targets[:1]},
            {"Name": "early", "MaxConcurrency": 10, "Targets": targets[1:half]},
            {"Name": "rest", "MaxConcurrency": 10, "Targets": targets[half:]},
        ]
    }


def run(size: int) -> Counts:
    with mock_aws():
        parsed = deployment_map.parse(
            json.dumps(deployment(size)),
            read_file=lambda path: json.dumps({"Name": "/v"}),
            default_stack_name="app",
            home_account=HOME,
        )
        for target in parsed.targets():
            account = target.account or HOME
            deploy_role, _ = rollout.target_roles(account, HOME, "aws", "")
            cfn = clients.cloudformation_for_targets(HOME_REGION, "setup")(target.region, deploy_role)
            parameters: list[ParameterTypeDef] = [{"ParameterKey": "Name", "ParameterValue": f"/{target.stack_name}"}]
            cfn.create_stack(
                StackName=target.stack_name, TemplateBody=TEMPLATE.replace('"v"', '"1"'), Parameters=parameters
            )
            cfn.create_change_set(
                StackName=target.stack_name,
                ChangeSetName=CHANGE_SET,
                TemplateBody=TEMPLATE.replace('"v"', '"2"'),
                Parameters=parameters,
            )
        calls: Counter[str] = Counter()
        events = clients._session().events
        events.register("before-call", lambda model, **_: calls.update([model.name]), unique_id="rollout-scale")
        handler = load_handler(ROOT / "functions" / "deploy-target").lambda_handler
        invocations, seconds = [0], [0.0]
        lock = threading.Lock()

        def measured(event: Any, context: Any) -> Any:
            # The thread's CPU time: the Map's iterations run in threads of this one process, so wall time
            # would count the others' turns. It includes the emulator answering the calls in-process.
            started = time.thread_time()
            try:
                return handler(event, context)
            finally:
                with lock:
                    invocations[0] += 1
                    seconds[0] += time.thread_time() - started

        os.environ.update(
            RELEASE_RECORD_PARAMETER="/rollout/record",
            TEMPLATE_PATH="template.yaml",
            DEPLOYMENT_MAP_PATH="map.json",
            APPLICATION_STACK_NAME="app",
        )
        iam = boto3.client("iam", region_name=HOME_REGION)
        trust = {
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ]
        }
        role = iam.create_role(RoleName="rollout", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        function = boto3.client("lambda", region_name=HOME_REGION).create_function(
            FunctionName="deploy-target",
            Runtime="python3.13",
            Role=role,
            Handler="app.lambda_handler",
            Code={"ZipFile": b"PK\x05\x06" + b"\0" * 18},
        )
        local_aws.run_in_process("deploy-target", HOME_REGION, measured)
        sfn = boto3.client("stepfunctions", region_name=HOME_REGION)
        definition = DEFINITION.read_text().replace("${DeployTargetFunctionArn}", function["FunctionArn"])
        machine = sfn.create_state_machine(name="rollout", definition=definition, roleArn=role)["stateMachineArn"]
        document = rollout.workflow_input(
            parsed,
            execution_id=EXECUTION,
            change_set_name=CHANGE_SET,
            partition="aws",
            home_execution_role_arn=f"arn:aws:iam::{HOME}:role/cfn-execution",
            poll_seconds=POLL_SECONDS,
        )
        calls.clear()
        started = time.perf_counter()
        execution = sfn.start_execution(stateMachineArn=machine, name=EXECUTION, input=json.dumps(document))[
            "executionArn"
        ]
        while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
            if time.perf_counter() - started > 600:
                raise SystemExit(f"the rollout of {size} targets was still running after 600 s")
            clock.advance(timedelta(seconds=POLL_SECONDS))
            time.sleep(0.05)
        wall = time.perf_counter() - started
        events.unregister("before-call", unique_id="rollout-scale")
        if described["status"] != "SUCCEEDED" or json.loads(described["output"])["Outcome"] != "RELEASED":
            raise SystemExit(f"the rollout of {size} targets did not release: {described}")
        transitions = sum(
            1
            for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution)
            for event in page["events"]
            if event["type"].endswith("StateEntered")
        )
        return Counts(size, invocations[0], seconds[0], transitions, calls, wall)


def main() -> int:
    results = [run(size) for size in SIZES]
    print("Rollout at scale: one release, run by the emulator's Step Functions with the real state machine")
    print(f"(three waves, concurrency 10, {len(REGIONS)} Regions, 2 accounts; a status check every {POLL_SECONDS} s)")
    header = "".join(f"{f'{r.targets} targets':>14}" for r in results)
    print(f"{'per target':<40}{header}")
    rows = {
        "deploy-target invocations": [r.per_target(r.invocations) for r in results],
        "deploy-target CPU ms (with the emulator)": [r.per_target(r.handler_seconds * 1000) for r in results],
        "state transitions": [r.per_target(r.transitions) for r in results],
        "AWS calls by deploy-target": [r.per_target(sum(r.aws_calls.values())) for r in results],
    }
    for label, values in rows.items():
        print(f"{label:<40}" + "".join(f"{v:>14.1f}" for v in values))
    for result in results:
        calls = ", ".join(f"{name} {count / result.targets:.1f}" for name, count in sorted(result.aws_calls.items()))
        print(f"  {result.targets} targets, calls per target: {calls}; {result.wall_seconds:.1f} s on this machine")
    grew = [label for label, values in rows.items() if "ms" not in label and values[-1] > values[0] * 1.05 + 0.05]
    if grew:
        print(f"GROWS with the number of targets: {', '.join(grew)}")
        return 1
    print("Per-target counts do not grow with the number of targets.")
    return 0


if __name__ == "__main__":
    # Everything runs in moto: fake credentials, so that nothing here can ever reach an AWS account.
    for name in [name for name in os.environ if name.startswith("AWS_")]:
        del os.environ[name]
    os.environ.update({"AWS_DEFAULT_REGION": HOME_REGION, "AWS_REGION": HOME_REGION} | FAKE_CREDENTIALS)
    local_aws.install()
    sys.exit(main())
