"""release_pipeline.target_changes: every target of the deployment map gets its change set in its Region
and account (through the deploy role the rollout computes), with its wave's alarms and bake as the
rollback configuration; repeated first checks make nothing twice; later checks wait for CloudFormation,
then report per target and per wave, compared with the released map.

Three Regions (us-west-2, eu-west-1, us-east-1) and two accounts: the solution's and OTHER."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest

import local_aws
from local_aws.cloudformation.models import cfn_backend, find_change_set
from release_pipeline import clients, deployment_map, rollout, target_changes
from release_pipeline.changes import RegionChanges
from release_pipeline.errors import ChangeSetError, PipelineError
from release_pipeline.jobs import SUMMARY_VARIABLE_LIMIT, Job, JobResult
from release_pipeline.target_changes import Home, TargetChangesConfig
from tests.support.events import continuation_of, load_event
from tests.support.notifications import Inbox
from tests.support.solution import ARTIFACT_BUCKET, source_zip

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudformation.type_defs import DescribeChangeSetOutputTypeDef

HOME = "123456789012"
OTHER = "222233334444"
PRIMARY = "us-east-1"
STACK = "demo-app"
EXECUTION = "e1a2b3c4-0000-4000-8000-000000000001"
CHANGE_SET = f"pipeline-{EXECUTION}"
EXECUTION_ROLE = f"arn:aws:iam::{HOME}:role/release-pipeline-cfn"
OTHER_DEPLOY_ROLE = f"arn:aws:iam::{OTHER}:role/multi-region-deploy-{HOME}"
OTHER_EXECUTION_ROLE = f"arn:aws:iam::{OTHER}:role/multi-region-cfn-execution-{HOME}"
assert rollout.target_roles(OTHER, HOME, "aws", EXECUTION_ROLE) == (OTHER_DEPLOY_ROLE, OTHER_EXECUTION_ROLE)
FUNCTION_ARN = f"arn:aws:lambda:{PRIMARY}:{HOME}:function:release-pipeline-TargetChangeSetsFunction-EXAMPLE"
TOPIC_NAME = "release-pipeline-notifications"
RECORD = "/release-pipeline/release/5b7e9a10-3c2d-4f10-9a4e-0a1b2c3d4e5f/record"
MAP_PATH = "deploy/map.json"
TEMPLATE_PATH = "app/template.json"
ENVIRONMENT = {
    "DEPLOYMENT_MAP_PATH": MAP_PATH,
    "APPLICATION_STACK_NAME": STACK,
    "TEMPLATE_PATH": TEMPLATE_PATH,
    "CHANGE_SET_PREFIX": "pipeline-",
    "CLOUDFORMATION_ROLE_ARN": EXECUTION_ROLE,
    "TOPIC_ARN": f"arn:aws:sns:{PRIMARY}:{HOME}:{TOPIC_NAME}",
    "RELEASE_RECORD_PARAMETER": RECORD,
}
CONFIG = TargetChangesConfig.from_env(ENVIRONMENT)

# Every value of DbPassword is a secret that must appear in no report and no output variable.
SECRET = "s3cr3t"
PARAMETERS = {
    "p/canary.json": {"Name": "/canary", "DbPassword": f"{SECRET}-canary-2"},
    "p/eu.json": {"Name": "/eu", "DbPassword": f"{SECRET}-eu"},
    "p/other-eu.json": {"Name": "/other-eu", "DbPassword": f"{SECRET}-other-eu"},
    "p/other-home.json": {"Name": "/other-home", "DbPassword": f"{SECRET}-other-home"},
    "p/home.json": {"Name": "/home", "DbPassword": f"{SECRET}-home"},
}
RELEASED_CANARY = {"Name": "/canary", "DbPassword": f"{SECRET}-canary-1"}
# The map under review: canary bakes 30 minutes on one alarm; early runs two targets at once, the
# second in OTHER (new), baking 15 minutes on two alarms; rest has no bake and no alarm and one target in
# OTHER (new).
MAP: dict[str, Any] = {
    "Waves": [
        {
            "Name": "canary",
            "BakeTimeInMinutes": 30,
            "Alarms": ["app-5xx"],
            "Targets": [{"Region": "us-west-2", "ParameterFile": "p/canary.json"}],
        },
        {
            "Name": "early",
            "MaxConcurrency": 2,
            "BakeTimeInMinutes": 15,
            "Alarms": ["app-5xx", "app-latency"],
            "Targets": [
                {"Region": "eu-west-1", "ParameterFile": "p/eu.json"},
                {"Region": "eu-west-1", "Account": OTHER, "ParameterFile": "p/other-eu.json"},
            ],
        },
        {"Name": "rest", "Targets": [{"Region": "us-east-1", "Account": OTHER, "ParameterFile": "p/other-home.json"}]},
    ]
}
# The map of the last release: the same first two waves without OTHER, then the solution's us-east-1 stack,
# which the map under review no longer lists.
RELEASED_MAP: dict[str, Any] = {
    "Waves": [
        {"Name": "canary", "Targets": [{"Region": "us-west-2", "ParameterFile": "p/canary.json"}]},
        {"Name": "early", "Targets": [{"Region": "eu-west-1", "ParameterFile": "p/eu.json"}]},
        {"Name": "rest", "Targets": [{"Region": "us-east-1", "ParameterFile": "p/home.json"}]},
    ]
}
# (account, Region, parameter file) of every target under review, in map order.
TARGETS = [
    (HOME, "us-west-2", "p/canary.json"),
    (HOME, "eu-west-1", "p/eu.json"),
    (OTHER, "eu-west-1", "p/other-eu.json"),
    (OTHER, "us-east-1", "p/other-home.json"),
]


def template(version: int, *, padding: int = 0) -> str:
    """The application: a setting holding ``version``; from version 2 on, an IAM role too."""
    resources: dict[str, Any] = {
        "Setting": {
            "Type": "AWS::SSM::Parameter",
            "Properties": {"Name": {"Ref": "Name"}, "Type": "String", "Value": str(version)},
        }
    }
    if version >= 2:
        resources["AppRole"] = {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            },
        }
    document = {
        "Description": "x" * padding,
        "Parameters": {"Name": {"Type": "String"}, "DbPassword": {"Type": "String", "NoEcho": True}},
        "Resources": resources,
    }
    return json.dumps(document)


def files(
    deployment: dict[str, Any] = MAP,
    parameters: dict[str, dict[str, str]] = PARAMETERS,
    body: str | None = None,
) -> dict[str, str]:
    """The application repository: the template, the map and its parameter files."""
    return {
        TEMPLATE_PATH: template(2) if body is None else body,
        MAP_PATH: json.dumps(deployment),
        **{path: json.dumps(values) for path, values in parameters.items()},
    }


_made: list[rollout.CloudFormationFor] = []


@pytest.fixture(autouse=True)
def _clients() -> Iterator[None]:
    """One set of CloudFormation clients per test (making a client costs more than most calls)."""
    _made.append(clients.cloudformation_for_targets(PRIMARY, "test"))
    yield
    _made.clear()


def cfn(region: str, account: str = HOME) -> CloudFormationClient:
    """A CloudFormation client in ``region`` of ``account`` (OTHER through its deploy role)."""
    role = None if account == HOME else rollout.target_roles(account, HOME, "aws", EXECUTION_ROLE)[0]
    return _made[0](region, role)


def deploy(region: str, account: str, version: int, parameters: dict[str, str], **extra: Any) -> None:
    """The target's stack runs ``version`` with ``parameters``."""
    cfn(region, account).create_stack(
        StackName=STACK,
        TemplateBody=template(version),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        **extra,
    )


def described(region: str, account: str = HOME) -> DescribeChangeSetOutputTypeDef:
    return cfn(region, account).describe_change_set(StackName=STACK, ChangeSetName=CHANGE_SET)


def change_set_names(region: str, account: str = HOME) -> list[str]:
    return [s["ChangeSetName"] for s in cfn(region, account).list_change_sets(StackName=STACK)["Summaries"]]


def stack_status(region: str, account: str = HOME) -> str:
    return cfn(region, account).describe_stacks(StackName=STACK)["Stacks"][0]["StackStatus"]


def put_source(event: dict[str, Any], repository: dict[str, str]) -> None:
    location = event["CodePipeline.job"]["data"]["inputArtifacts"][0]["location"]["s3Location"]
    boto3.client("s3", region_name=PRIMARY).put_object(
        Bucket=location["bucketName"], Key=location["objectKey"], Body=source_zip(repository)
    )


def record_release(repository: dict[str, str], **fields: Any) -> None:
    """Release r1 went out with ``repository`` (its source kept under releases/, its record in SSM, with
    ``fields`` added)."""
    key = "releases/r1/source.zip"
    boto3.client("s3", region_name=PRIMARY).put_object(Bucket=ARTIFACT_BUCKET, Key=key, Body=source_zip(repository))
    record: dict[str, Any] = {
        "bucket": ARTIFACT_BUCKET,
        "key": key,
        "version_id": None,
        "commit_id": "c1",
        "execution_id": "r1",
        "released_at": "2026-11-30T00:00:00+00:00",
        "template_path": TEMPLATE_PATH,
        "stage_parameters": {},
        **fields,
    }
    boto3.client("ssm", region_name=PRIMARY).put_parameter(Name=RECORD, Value=json.dumps(record), Type="String")


def released_files() -> dict[str, str]:
    return files(RELEASED_MAP, {**PARAMETERS, "p/canary.json": RELEASED_CANARY}, template(1))


@pytest.fixture
def inbox(artifact_bucket: str) -> Inbox:
    boto3.client("sns", region_name=PRIMARY).create_topic(Name=TOPIC_NAME)
    return Inbox(CONFIG.topic_arn)


@pytest.fixture
def event(inbox: Inbox) -> dict[str, Any]:
    """The first invocation's job event, its Source artifact the repository of :func:`files`."""
    job = load_event("target-change-sets", "job")
    put_source(job, files())
    return job


def check(event: dict[str, Any]) -> JobResult:
    """One invocation of the job on ``event``, as the handler makes it."""
    return target_changes.target_change_sets(
        job=Job(event),
        job_s3=clients.s3(PRIMARY),
        release_s3=clients.s3(PRIMARY),
        ssm=clients.ssm(PRIMARY),
        sns=clients.sns(PRIMARY),
        cloudformation_for=_made[0],
        config=CONFIG,
        function_arn=FUNCTION_ARN,
    )


def follow(event: dict[str, Any], first: JobResult) -> JobResult:
    assert first.continuation_token is not None
    return check(continuation_of(event, first.continuation_token))


def alarm(region: str, account: str, name: str) -> dict[str, str]:
    return {"Arn": f"arn:aws:cloudwatch:{region}:{account}:alarm:{name}", "Type": "AWS::CloudWatch::Alarm"}


# ------------------------------------------------------------------------------------ first check


def test_the_first_check_makes_every_targets_change_set_in_its_region_and_account(event: dict[str, Any]) -> None:
    """GIVEN the canary runs release 1 and no other target exists WHEN the first check runs THEN each
    target has its change set: UPDATE on the running stack, CREATE elsewhere; its parameters; the
    solution's execution role at home and the bootstrap's in OTHER; its wave's alarms (in its own Region
    and account) and bake as the rollback configuration, none for a wave with neither."""
    deploy("us-west-2", HOME, 1, RELEASED_CANARY)

    result = check(event)

    assert json.loads(result.continuation_token or "null") == {"polls": 1}
    assert result.output_variables == {}
    expected = {
        ("us-west-2", HOME): ("UPDATE", EXECUTION_ROLE, [alarm("us-west-2", HOME, "app-5xx")], 30),
        ("eu-west-1", HOME): (
            "CREATE",
            EXECUTION_ROLE,
            [alarm("eu-west-1", HOME, "app-5xx"), alarm("eu-west-1", HOME, "app-latency")],
            15,
        ),
        ("eu-west-1", OTHER): (
            "CREATE",
            OTHER_EXECUTION_ROLE,
            [alarm("eu-west-1", OTHER, "app-5xx"), alarm("eu-west-1", OTHER, "app-latency")],
            15,
        ),
        ("us-east-1", OTHER): ("CREATE", OTHER_EXECUTION_ROLE, None, None),
    }
    for account, region, path in TARGETS:
        kind, role, triggers, minutes = expected[region, account]
        shown = described(region, account)
        assert shown["Status"] == "CREATE_COMPLETE", (region, account)
        assert {p["ParameterKey"]: p["ParameterValue"] for p in shown["Parameters"]} == PARAMETERS[path]
        assert set(shown["Capabilities"]) == set(rollout.CAPABILITIES)
        rollback = {} if triggers is None else {"RollbackTriggers": triggers, "MonitoringTimeInMinutes": minutes}
        assert shown["RollbackConfiguration"] == rollback, (region, account)
        # DescribeChangeSet shows neither the change set's type nor its role: the emulator's record does.
        made = find_change_set(cfn_backend(account, region), CHANGE_SET, STACK)
        assert (made.change_set_type, made.role_arn) == (kind, role), (region, account)
    assert f":{OTHER}:" in described("eu-west-1", OTHER)["StackId"]
    assert cfn("us-east-1").describe_stacks()["Stacks"] == []  # nothing at home for OTHER's target


def test_a_repeated_first_check_makes_nothing_twice(event: dict[str, Any]) -> None:
    """GIVEN the first check ran (and made placeholders of the new stacks) WHEN it runs again, as a
    retried invocation does THEN it finds every change set made and makes none again."""
    deploy("us-west-2", HOME, 1, RELEASED_CANARY)
    check(event)
    ids = {(region, account): described(region, account)["ChangeSetId"] for account, region, _ in TARGETS}

    again = check(event)

    assert json.loads(again.continuation_token or "null") == {"polls": 1}
    assert "4 made by an earlier attempt" in again.summary
    for account, region, _ in TARGETS:
        assert change_set_names(region, account) == [CHANGE_SET]
        assert described(region, account)["ChangeSetId"] == ids[region, account]
        assert len(cfn(region, account).describe_stacks()["Stacks"]) == 1


def test_a_stack_keeping_rollback_triggers_from_an_earlier_map_has_them_removed(event: dict[str, Any]) -> None:
    """GIVEN OTHER's us-east-1 stack keeps an alarm from an earlier map (CloudFormation applies kept
    triggers to every later update) and its wave now has no alarm and no bake THEN its change set gives an
    empty list of triggers, which removes them."""
    kept = alarm("us-east-1", OTHER, "old-alarm")
    other = clients.assume_role(PRIMARY, OTHER_DEPLOY_ROLE, "test")
    watch = boto3.client(
        "cloudwatch",
        region_name="us-east-1",
        aws_access_key_id=other.access_key_id,
        aws_secret_access_key=other.secret_access_key,
        aws_session_token=other.session_token,
    )
    watch.put_metric_alarm(
        AlarmName="old-alarm",
        MetricName="Errors",
        Namespace="App",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanThreshold",
    )
    deploy("us-east-1", OTHER, 1, PARAMETERS["p/other-home.json"], RollbackConfiguration={"RollbackTriggers": [kept]})

    check(event)

    assert described("us-east-1", OTHER)["RollbackConfiguration"] == {
        "RollbackTriggers": [],
        "MonitoringTimeInMinutes": 0,
    }


def test_change_sets_cloudformation_refuses_are_named_together_and_the_others_made(
    inbox: Inbox,
) -> None:
    """GIVEN two parameter files lack a parameter the template requires THEN the job fails naming both
    targets with CloudFormation's reason, and every other target's change set is made (a retry finds
    them)."""
    job = load_event("target-change-sets", "job")
    parameters = {**PARAMETERS, "p/eu.json": {"Name": "/eu"}, "p/other-home.json": {"Name": "/other-home"}}
    put_source(job, files(parameters=parameters))

    with pytest.raises(ChangeSetError) as failed:
        check(job)

    message = str(failed.value)
    assert message.startswith(f"CloudFormation refused the change set {CHANGE_SET} of 2 of 4 targets")
    assert f"stack {STACK} in eu-west-1: ValidationError: Parameters: [DbPassword] must have values" in message
    assert f"stack {STACK} in us-east-1, account {OTHER}: ValidationError: Parameters: [DbPassword]" in message
    assert change_set_names("us-west-2") == change_set_names("eu-west-1", OTHER) == [CHANGE_SET]
    assert inbox.messages() == []


# ------------------------------------------------------------------------------------- later checks


def test_later_checks_wait_while_a_change_set_is_being_made(event: dict[str, Any], inbox: Inbox) -> None:
    first = check(event)
    local_aws.set_change_set_status(STACK, CHANGE_SET, "eu-west-1", "CREATE_IN_PROGRESS", account_id=OTHER)

    waiting = follow(event, first)
    second = check(continuation_of(event, waiting.continuation_token or ""))

    assert json.loads(waiting.continuation_token or "null") == {"polls": 2}
    assert json.loads(second.continuation_token or "null") == {"polls": 3}
    assert waiting.summary == f"Waiting for change sets (check 2): 1 of 4 being made: {OTHER}/eu-west-1/{STACK}"
    assert waiting.output_variables == {}
    assert inbox.messages() == []
    local_aws.set_change_set_status(STACK, CHANGE_SET, "eu-west-1", "CREATE_COMPLETE", account_id=OTHER)

    done = check(continuation_of(event, second.continuation_token or ""))

    assert done.continuation_token is None
    assert done.output_variables["ChangedTargets"] == "4"


def test_empty_change_sets_are_unchanged_targets_and_kept_for_the_rollout(event: dict[str, Any], inbox: Inbox) -> None:
    """GIVEN every target already runs the template under review, but nothing was released through the map
    THEN every wave counts them unchanged, nothing changes, their empty change sets stay (the rollout reads
    each as "unchanged"), and the report says only that the map is new."""
    for account, region, path in TARGETS:
        deploy(region, account, 2, PARAMETERS[path])

    done = follow(event, check(event))

    assert done.output_variables["HasChanges"] == "false"
    assert done.output_variables["ChangedTargets"] == "0"
    assert done.summary == (
        "0 of 4 targets change. canary: 0 changed, 1 unchanged, 0 new; early: 0 changed, 2 unchanged, 0 new; "
        "rest: 0 changed, 1 unchanged, 0 new"
    )
    for account, region, _ in TARGETS:
        assert described(region, account)["Status"] == "FAILED"
        assert change_set_names(region, account) == [CHANGE_SET]
    ((report, subject),) = inbox.messages()
    assert subject == f"Deployment map changed, no stack changes: {STACK}"
    assert report.count(": no changes") == 4


def test_a_change_set_gone_at_a_later_check_fails_naming_its_target(event: dict[str, Any]) -> None:
    first = check(event)
    cfn("eu-west-1", OTHER).delete_change_set(StackName=STACK, ChangeSetName=CHANGE_SET)

    with pytest.raises(ChangeSetError) as failed:
        follow(event, first)

    assert str(failed.value) == (
        f"The change sets of 1 of 4 targets cannot be deployed: stack {STACK} in eu-west-1, account {OTHER}: the "
        f"change set {CHANGE_SET} does not exist (it was made at this action's first check and since deleted); "
        "retry the stage to make it again"
    )


# -------------------------------------------------------------------------------- map comparison


@pytest.mark.parametrize("released", ["nothing", "without-map"])
def test_without_a_released_map_every_target_is_new_and_the_report_says_why(
    event: dict[str, Any], inbox: Inbox, released: str
) -> None:
    if released == "without-map":
        record_release({TEMPLATE_PATH: template(1)})

    follow(event, check(event))

    ((report, _),) = inbox.messages()
    basis = {
        "nothing": "Deployment map: Nothing released yet: every target is new.",
        "without-map": f"Deployment map: Release r1 had no deployment map at {MAP_PATH}: every target is new.",
    }[released]
    assert basis in report.splitlines()
    assert report.count(": added, in wave ") == 4


def test_a_release_whose_targets_are_kept_in_s3_is_compared_without_reading_them(
    event: dict[str, Any], inbox: Inbox
) -> None:
    """GIVEN a record naming its map and a targets object (here never written) WHEN the change sets are
    made THEN the released map is read from the released source, and the targets object not at all."""
    targets_object = {"key": "releases/r1/targets.json", "version_id": "v1", "sha256": "0" * 64, "count": 4}
    record_release(released_files(), deployment_map_digest="9" * 64, targets_object=targets_object)

    follow(event, check(event))

    ((report, _),) = inbox.messages()
    assert "Deployment map: Compared with the map of release r1." in report.splitlines()


# ---------------------------------------------------------------------------------------- pieces


def test_output_variables_stay_within_the_approvals_limits_with_many_waves() -> None:
    """GIVEN 20 waves with long names THEN the Summary variable is cut to its limit (the job's summary is
    not) and the other variables are the counts and the map's digest."""
    waves = [
        {
            "Name": f"wave-{n:02d}-{'x' * 40}",
            "Targets": [{"Region": "us-west-2", "StackName": f"{STACK}-{n}", "ParameterFile": "p.json"}],
        }
        for n in range(20)
    ]
    parsed = deployment_map.parse(
        json.dumps({"Waves": waves}),
        read_file=lambda _: json.dumps({"DbPassword": SECRET}),
        default_stack_name=STACK,
        home_account=HOME,
    )
    results = [
        target_changes.TargetChanges(placed, RegionChanges(placed.wave.name, "us-west-2", STACK, CHANGE_SET, state))
        for placed, state in zip(
            target_changes.placed_targets(parsed, Home(HOME, "aws"), EXECUTION_ROLE),
            ["CHANGES", "NO_CHANGES"] * 10,
            strict=True,
        )
    ]

    variables = target_changes.output_variables(parsed, results)

    assert set(variables) == set(target_changes.OUTPUT_VARIABLES)
    assert len(variables["Summary"]) == SUMMARY_VARIABLE_LIMIT
    assert variables["Summary"].startswith("10 of 20 targets change. wave-00-")
    assert len(target_changes.summary(parsed, results)) > SUMMARY_VARIABLE_LIMIT
    assert (variables["HasChanges"], variables["ChangedTargets"]) == ("true", "10")
    assert variables["MapDigest"] == deployment_map.digest(parsed)
    assert not any(SECRET in value for value in variables.values())


@pytest.mark.parametrize(
    ("arn", "expected"),
    [
        (FUNCTION_ARN, Home(HOME, "aws")),
        ("arn:aws-cn:lambda:cn-north-1:111122223333:function:f:live", Home("111122223333", "aws-cn")),
    ],
)
def test_the_home_account_and_partition_come_from_the_functions_arn(arn: str, expected: Home) -> None:
    assert Home.of_function(arn) == expected


def test_a_function_arn_that_is_not_one_is_refused() -> None:
    with pytest.raises(PipelineError, match="is not a Lambda function ARN"):
        Home.of_function("test-function")
