"""The rollout state machine (statemachines/rollout.asl.json) run by the emulator's Step Functions, with
deploy-target's handler: three waves across three Regions and two accounts, executed in order; a failed
target in the last wave returns the earlier waves to the release; a return that fails fails the
execution (and so fires its alarm) without touching anything else."""

from __future__ import annotations

import io
import json
import time
import zipfile
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest

import local_aws
from local_aws import clock
from local_aws.awslambda import load_handler
from release_pipeline import clients, deployment_map, rollout
from tests.support.events import REPO_ROOT

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudformation.type_defs import ParameterTypeDef
    from mypy_boto3_stepfunctions import SFNClient

HOME = "123456789012"
OTHER = "222233334444"
REGION = "us-east-1"
EXECUTION = "e1a2b3c4-0000-4000-8000-000000000001"
CHANGE_SET = f"pipeline-{EXECUTION}"
BUCKET = "artifacts-rollout"
RECORD = "/rollout/release/record"
DEFINITION = REPO_ROOT / "statemachines" / "rollout.asl.json"
POLL = 30
MAP: dict[str, Any] = {
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
}
PARAMETERS = {"p/canary.json": "/canary", "p/eu.json": "/eu", "p/other.json": "/other", "p/home.json": "/home"}


def template(version: str, *, extra: bool = False) -> str:
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


def parameter_file(path: str) -> str:
    return json.dumps({"Name": PARAMETERS[path]})


def targets() -> list[tuple[str | None, str, str]]:
    """(account, Region, parameter file) of every target, in map order."""
    return [(t.get("Account"), t["Region"], t["ParameterFile"]) for wave in MAP["Waves"] for t in wave["Targets"]]


def cfn(region: str, account: str | None) -> CloudFormationClient:
    role = f"arn:aws:iam::{account}:role/multi-region-deploy-{HOME}" if account else None
    return clients.cloudformation_for_targets(REGION, "test")(region, role)


def value(client: CloudFormationClient) -> str:
    body = client.get_template(StackName="app")["TemplateBody"]
    document = body if isinstance(body, dict) else json.loads(body)
    return str(document["Resources"]["Setting"]["Properties"]["Value"])


@pytest.fixture
def released(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every target runs release 1 (with the resource Extra), recorded with its map; each has a reviewed
    change set to version 2 (without Extra)."""
    files = {"template.yaml": template("1", extra=True), "deployment-map.json": json.dumps(MAP)}
    files |= {path: parameter_file(path) for path in PARAMETERS}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="releases/r1.zip", Body=buffer.getvalue())
    record: dict[str, Any] = {
        "bucket": BUCKET,
        "key": "releases/r1.zip",
        "version_id": None,
        "commit_id": "c1",
        "execution_id": "r1",
        "released_at": "2026-11-30T00:00:00+00:00",
        "template_path": "template.yaml",
        "stage_parameters": {},
    }
    boto3.client("ssm", region_name=REGION).put_parameter(Name=RECORD, Value=json.dumps(record), Type="String")
    for account, region, path in targets():
        client = cfn(region, account)
        parameters: list[ParameterTypeDef] = [{"ParameterKey": "Name", "ParameterValue": PARAMETERS[path]}]
        client.create_stack(StackName="app", TemplateBody=template("1", extra=True), Parameters=parameters)
        client.create_change_set(
            StackName="app", ChangeSetName=CHANGE_SET, TemplateBody=template("2"), Parameters=parameters
        )
    for name, setting in {
        "RELEASE_RECORD_PARAMETER": RECORD,
        "TEMPLATE_PATH": "template.yaml",
        "DEPLOYMENT_MAP_PATH": "deployment-map.json",
    }.items():
        monkeypatch.setenv(name, setting)


@pytest.fixture
def sfn(released: None) -> SFNClient:
    iam = boto3.client("iam", region_name=REGION)
    trust = {
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]
    }
    role = iam.create_role(RoleName="deploy-target", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    function = boto3.client("lambda", region_name=REGION).create_function(
        FunctionName="deploy-target",
        Runtime="python3.13",
        Role=role,
        Handler="app.lambda_handler",
        Code={"ZipFile": b"PK\x05\x06" + b"\0" * 18},
        Timeout=60,
    )
    handler = load_handler(REPO_ROOT / "functions" / "deploy-target").lambda_handler
    local_aws.run_in_process("deploy-target", REGION, handler)
    definition = DEFINITION.read_text().replace("${DeployTargetFunctionArn}", function["FunctionArn"])
    client = boto3.client("stepfunctions", region_name=REGION)
    machine = client.create_state_machine(name="rollout", definition=definition, roleArn=role)
    client.tag_resource(resourceArn=machine["stateMachineArn"], tags=[])
    return client


def start(sfn: SFNClient) -> str:
    parsed = deployment_map.parse(
        json.dumps(MAP), read_file=parameter_file, default_stack_name="app", home_account=HOME
    )
    document = rollout.workflow_input(
        parsed,
        execution_id=EXECUTION,
        change_set_name=CHANGE_SET,
        partition="aws",
        home_execution_role_arn=f"arn:aws:iam::{HOME}:role/cfn-execution",
        poll_seconds=POLL,
    )
    machine = sfn.list_state_machines()["stateMachines"][0]["stateMachineArn"]
    return sfn.start_execution(stateMachineArn=machine, name=EXECUTION, input=json.dumps(document))["executionArn"]


def finish(sfn: SFNClient, execution: str, within: float = 60) -> Any:
    """Advance the emulator's clock a poll at a time until the execution stops; its description."""
    deadline = time.monotonic() + within
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "the rollout is still running"
        clock.advance(timedelta(seconds=POLL))
        time.sleep(0.05)
    return described


def executed_order(sfn: SFNClient, execution: str) -> list[str]:
    """The targets whose change set was executed, in the order the executions were asked for."""
    order = []
    for event in sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]:
        details = event.get("taskScheduledEventDetails")
        if details and '"execute"' in details["parameters"]:
            order.append(json.loads(details["parameters"])["Payload"]["Target"]["Key"])
    return order


def test_the_waves_run_in_order_and_every_target_gets_its_reviewed_change(sfn: SFNClient) -> None:
    execution = start(sfn)

    described = finish(sfn, execution)

    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"])["Outcome"] == "RELEASED"
    order = executed_order(sfn, execution)
    assert order[0] == f"{HOME}/us-west-2/app"
    assert set(order[1:3]) == {f"{HOME}/eu-west-1/app", f"{OTHER}/us-east-2/app"}
    assert order[3] == f"{HOME}/us-east-1/app"
    assert [value(cfn(region, account)) for account, region, _ in targets()] == ["2", "2", "2", "2"]


def test_a_failed_target_in_the_last_wave_returns_the_earlier_waves_to_the_release(sfn: SFNClient) -> None:
    local_aws.fail_resource("app", "us-east-1", "Setting", "Resource handler returned message: quota exceeded")
    execution = start(sfn)

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
    assert [value(cfn(region, account)) for account, region, _ in targets()] == ["1", "1", "1", "1"]
    other = cfn("us-east-2", OTHER).describe_stacks(StackName="app")["Stacks"][0]
    assert {p["ParameterKey"]: p["ParameterValue"] for p in other["Parameters"]} == {"Name": "/other"}


def test_a_failed_target_in_the_first_wave_leaves_later_waves_untouched(sfn: SFNClient) -> None:
    local_aws.fail_resource("app", "us-west-2", "Setting", "boom")
    execution = start(sfn)

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


def test_a_return_that_fails_fails_the_execution_and_touches_nothing_else(sfn: SFNClient) -> None:
    local_aws.fail_resource("app", "us-east-1", "Setting", "boom")  # the last wave fails
    execution = start(sfn)
    canary = cfn("us-west-2", None)
    deadline = time.monotonic() + 10
    while value(canary) != "2":  # the canary has its change: from now on, re-creating Extra fails
        assert time.monotonic() < deadline, "the canary was never deployed"
        time.sleep(0.02)
    local_aws.fail_resource("app", "us-west-2", "Extra", "cannot re-create Extra")

    described = finish(sfn, execution)

    assert described["status"] == "FAILED"
    assert described.get("error") == "ReturnFailed"
    assert "cannot re-create Extra" in described.get("cause", "")
    assert value(canary) == "2"  # CloudFormation rolled the failed return back: the canary keeps its change
