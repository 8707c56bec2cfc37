"""stage-revert: after a failed or rejected Stage, delete or revert the stage stack and clean production."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.core.models import DEFAULT_ACCOUNT_ID

import local_aws
from local_aws import FakeLambdaContext
from release_pipeline import artifacts, clients, releases, rollout
from release_pipeline.errors import ConfigurationError, ReleaseRecordError, StackBusyError, StackStuckError
from release_pipeline.values import S3Location
from tests.support.action_executions import serve_source_action
from tests.support.events import load_event, load_function
from tests.support.notifications import Inbox
from tests.support.solution import REQUIRED_PARAMETERS, apply_environment, release_record, resolved

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudformation.type_defs import ParameterTypeDef

pytestmark = pytest.mark.usefixtures("aws")

PRIMARY = "us-east-1"
SECONDARY = REQUIRED_PARAMETERS["SecondaryRegion"]
APP = REQUIRED_PARAMETERS["ApplicationStackName"]
STAGE_STACK = f"{APP}-stage"
PIPELINE = "release-pipeline"
SOLUTION = "release-solution"
RECORD_PARAMETER = release_record(SOLUTION)
ROLE_ARN = f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/release-solution-CloudFormationExecutionRole"
BUCKET = "release-pipeline-artifacts"
TEMPLATE_PATH = REQUIRED_PARAMETERS["TemplatePath"]
EXECUTION = "e1a2b3c4-0000-4000-8000-000000000001"  # the execution id in events/stage-revert/*.json
THIS_CHANGE_SET = f"pipeline-{EXECUTION}"
OTHER_CHANGE_SET = "pipeline-f0f0f0f0-0000-4000-8000-000000000009"
RELEASED_EXECUTION = "a0a0a0a0-0000-4000-8000-000000000007"
DELETE, RETAIN = "Yes", "No"
FAILURE_EVENTS = ["stage-failed", "stage-stopped"]
IGNORED_EVENTS = ["other-pipeline", "other-stage", "stage-succeeded"]


def app_template(*, with_topic: bool = False) -> str:
    resources: dict[str, Any] = {
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": {"Fn::Sub": "orders-${Env}"}}}
    }
    if with_topic:
        resources["Topic"] = {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": {"Fn::Sub": "events-${Env}"}}}
    return json.dumps(
        {
            "AWSTemplateFormatVersion": "2010-09-09",
            "Parameters": {"Env": {"Type": "String"}},
            "Resources": resources,
        },
        indent=1,
    )


RELEASED_TEMPLATE = app_template()
NEW_TEMPLATE = app_template(with_topic=True)
RELEASED_PARAMETERS = {"Env": "stage"}


# ------------------------------------------------------------------------------------------- helpers


_CLIENTS: dict[str, CloudFormationClient] = {}


@pytest.fixture(autouse=True)
def _fresh_clients() -> Iterator[None]:
    _CLIENTS.clear()
    yield
    _CLIENTS.clear()


def cfn(region: str = PRIMARY) -> CloudFormationClient:
    """The test's own CloudFormation client for ``region`` (one per test and Region)."""
    if region not in _CLIENTS:
        _CLIENTS[region] = boto3.client("cloudformation", region_name=region)
    return _CLIENTS[region]


def env(value: str) -> list[ParameterTypeDef]:
    return [{"ParameterKey": "Env", "ParameterValue": value}]


def deploy(name: str, region: str = PRIMARY, template: str = RELEASED_TEMPLATE, value: str = "prod") -> str:
    return cfn(region).create_stack(StackName=name, TemplateBody=template, Parameters=env(value))["StackId"]


def change_set(name: str, region: str, change_set_name: str, change_set_type: str = "UPDATE") -> None:
    cfn(region).create_change_set(
        StackName=name,
        ChangeSetName=change_set_name,
        ChangeSetType=change_set_type,  # type: ignore[arg-type]
        TemplateBody=NEW_TEMPLATE,
        Parameters=env("prod"),
    )


def status(name: str, region: str = PRIMARY) -> str | None:
    """The stack's status, or None when no stack of that name exists any more."""
    try:
        return cfn(region).describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
    except ClientError as error:
        if "does not exist" not in str(error):
            raise
        return None


def template_of(name: str, region: str = PRIMARY) -> Any:
    body = cfn(region).get_template(StackName=name)["TemplateBody"]
    return json.loads(body) if isinstance(body, str) else json.loads(json.dumps(body))


def parameters_of(name: str, region: str = PRIMARY) -> dict[str, str]:
    stack = cfn(region).describe_stacks(StackName=name)["Stacks"][0]
    return {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])}


def change_sets_of(name: str, region: str) -> list[str]:
    return sorted(s["ChangeSetName"] for s in cfn(region).list_change_sets(StackName=name)["Summaries"])


def snapshot() -> dict[str, Any]:
    """Everything a revert could change: each stack's status, template, parameters and change sets."""
    result: dict[str, Any] = {}
    for region, name in ((PRIMARY, STAGE_STACK), (PRIMARY, APP), (SECONDARY, APP)):
        state = status(name, region)
        result[f"{region}/{name}"] = (
            None
            if state is None
            else (state, template_of(name, region), parameters_of(name, region), change_sets_of(name, region))
        )
    return result


def production_deployed() -> None:
    """Both production stacks run the released template, each with this execution's change set and
    another execution's."""
    for region in (PRIMARY, SECONDARY):
        deploy(APP, region)
        change_set(APP, region, THIS_CHANGE_SET)
        change_set(APP, region, OTHER_CHANGE_SET)


def record_release(parameters: dict[str, str] | None = None, template: str = RELEASED_TEMPLATE) -> None:
    """A release made by an earlier execution: the source zip under releases/ and the record in SSM."""
    s3 = boto3.client("s3", region_name=PRIMARY)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    key = releases.release_key(RELEASED_EXECUTION)
    data = artifacts.build_zip({TEMPLATE_PATH: template.encode(), "README.md": b"app"})
    version_id = s3.put_object(Bucket=BUCKET, Key=key, Body=data)["VersionId"]
    # A later write to the same key must not be what the revert uses: the record names a version.
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"not the release")
    kms_key = boto3.client("kms", region_name=PRIMARY).create_key()["KeyMetadata"]["Arn"]
    record = releases.ReleaseRecord(
        bucket=BUCKET,
        key=key,
        version_id=version_id,
        commit_id="3f786850e387550fdab836ed7e6dc881de23001b",
        execution_id=RELEASED_EXECUTION,
        released_at="2026-01-10T09:00:00+00:00",
        template_path=TEMPLATE_PATH,
        stage_parameters=RELEASED_PARAMETERS if parameters is None else parameters,
    )
    releases.write_record(boto3.client("ssm", region_name=PRIMARY), RECORD_PARAMETER, record, kms_key)


Calls = list[tuple[str, str]]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """Every AWS call the handler makes through the client factory, as (service, operation)."""
    recorded: Calls = []

    def recording(make: Callable[..., Any]) -> Callable[..., Any]:
        def build(*args: Any, **kwargs: Any) -> Any:
            client = make(*args, **kwargs)
            service = client.meta.service_model.service_name

            def record(model: Any, **_: Any) -> None:
                recorded.append((service, model.name))

            client.meta.events.register(f"before-call.{client.meta.service_model.endpoint_prefix}", record)
            return client

        return build

    for name in ("cloudformation", "codepipeline", "ssm", "s3"):
        monkeypatch.setattr(clients, name, recording(getattr(clients, name)))
    return recorded


@pytest.fixture(autouse=True)
def stage_failed_in_this_execution(aws: None) -> None:
    """GetPipelineState: this execution is the latest in the Stage stage, which it failed (set once
    mock_aws has started: its start forgets what local_aws held, with moto's other data)."""
    local_aws.set_stage_execution(PIPELINE, "Stage", EXECUTION, "Failed")


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Set the function's environment as template.yaml wires it, for a DeleteStageStack value."""

    def apply(delete_stage_stack: str) -> None:
        solution = resolved(
            delete_stage_stack,
            region=PRIMARY,
            stack_name=SOLUTION,
            physical={"Pipeline": {"Ref": PIPELINE}, "CloudFormationExecutionRole": {"Arn": ROLE_ARN}},
        )
        variables = apply_environment(monkeypatch, "StageRevertFunction", solution)
        assert variables["RELEASE_RECORD_PARAMETER"] == RECORD_PARAMETER

    return apply


def revert(case: str, context: FakeLambdaContext) -> dict[str, Any]:
    result: dict[str, Any] = load_function("stage-revert").lambda_handler(load_event("stage-revert", case), context)
    return result


# ----------------------------------------------------------------------------------------- delete mode


@pytest.mark.parametrize("case", FAILURE_EVENTS)
def test_delete_mode_deletes_the_stage_stack_and_leaves_production_running(
    environment: Callable[[str], None], lambda_context: FakeLambdaContext, case: str
) -> None:
    environment(DELETE)
    deploy(STAGE_STACK, template=NEW_TEMPLATE, value="stage")
    production_deployed()

    result = revert(case, lambda_context)

    assert status(STAGE_STACK) is None
    assert "deleting stage stack demo-app-stage" in result["actions"][0]
    for region in (PRIMARY, SECONDARY):
        assert status(APP, region) == "CREATE_COMPLETE"
        assert template_of(APP, region) == json.loads(RELEASED_TEMPLATE)
        assert parameters_of(APP, region) == {"Env": "prod"}
        assert [
            r["LogicalResourceId"] for r in cfn(region).list_stack_resources(StackName=APP)["StackResourceSummaries"]
        ] == ["Queue"]
        # The rejected execution's reviewed change set is kept for a Retry, like another execution's.
        assert change_sets_of(APP, region) == [THIS_CHANGE_SET, OTHER_CHANGE_SET]


def test_delete_mode_ignores_the_release_record(
    environment: Callable[[str], None], lambda_context: FakeLambdaContext, calls: Calls
) -> None:
    environment(DELETE)
    record_release()
    deploy(STAGE_STACK, template=NEW_TEMPLATE, value="stage")
    production_deployed()

    revert("stage-failed", lambda_context)

    assert status(STAGE_STACK) is None
    assert ("ssm", "GetParameter") not in calls
    assert not [call for call in calls if call[0] == "s3"]


def test_delete_mode_called_twice_is_a_no_op_the_second_time(
    environment: Callable[[str], None], lambda_context: FakeLambdaContext
) -> None:
    """GIVEN EventBridge delivers the same failure twice THEN the second call succeeds and changes nothing."""
    environment(DELETE)
    deploy(STAGE_STACK, template=NEW_TEMPLATE, value="stage")
    production_deployed()
    revert("stage-failed", lambda_context)
    after_first = snapshot()

    result = revert("stage-failed", lambda_context)

    assert "already gone" in result["actions"][0]
    assert snapshot() == after_first
    assert after_first[f"{PRIMARY}/{STAGE_STACK}"] is None


# ----------------------------------------------------------------------------------------- retain mode


@pytest.mark.parametrize("case", FAILURE_EVENTS)
def test_retain_mode_reverts_the_stage_stack_to_the_released_template_and_parameters(
    environment: Callable[[str], None], lambda_context: FakeLambdaContext, case: str
) -> None:
    """GIVEN a release record and a stage stack updated to a newer template with other parameters
    WHEN the stage fails THEN the stage stack runs the released template and parameters again."""
    environment(RETAIN)
    record_release()
    deploy(STAGE_STACK, value="stage")
    cfn().update_stack(StackName=STAGE_STACK, TemplateBody=NEW_TEMPLATE, Parameters=env("stage-next"))
    assert template_of(STAGE_STACK) == json.loads(NEW_TEMPLATE)
    production_deployed()

    result = revert(case, lambda_context)

    assert status(STAGE_STACK) == "UPDATE_COMPLETE"
    assert template_of(STAGE_STACK) == json.loads(RELEASED_TEMPLATE)
    assert parameters_of(STAGE_STACK) == RELEASED_PARAMETERS
    assert result["actions"][0] == f"reverting stage stack {STAGE_STACK} to release {RELEASED_EXECUTION}"
    for region in (PRIMARY, SECONDARY):
        assert status(APP, region) == "CREATE_COMPLETE"
        assert template_of(APP, region) == json.loads(RELEASED_TEMPLATE)
        assert change_sets_of(APP, region) == [THIS_CHANGE_SET, OTHER_CHANGE_SET]


def test_retain_mode_called_twice_finds_the_stage_already_matching(
    environment: Callable[[str], None], lambda_context: FakeLambdaContext
) -> None:
    environment(RETAIN)
    record_release()
    deploy(STAGE_STACK, template=NEW_TEMPLATE, value="stage-next")
    production_deployed()
    revert("stage-failed", lambda_context)
    after_first = snapshot()

    result = revert("stage-failed", lambda_context)

    assert result["actions"][0] == f"stage stack {STAGE_STACK} already matches release {RELEASED_EXECUTION}"
    assert snapshot() == after_first
    assert template_of(STAGE_STACK) == json.loads(RELEASED_TEMPLATE)


def test_retain_mode_without_a_release_deletes_the_stage_stack(
    environment: Callable[[str], None], lambda_context: FakeLambdaContext
) -> None:
    environment(RETAIN)
    deploy(STAGE_STACK, template=NEW_TEMPLATE, value="stage")
    production_deployed()

    result = revert("stage-failed", lambda_context)

    assert status(STAGE_STACK) is None
    assert "nothing released yet" in result["actions"][0]
    for region in (PRIMARY, SECONDARY):
        assert status(APP, region) == "CREATE_COMPLETE"


def test_retain_mode_recreates_a_missing_stage_stack_from_the_release(
    environment: Callable[[str], None], lambda_context: FakeLambdaContext
) -> None:
    environment(RETAIN)
    record_release()

    result = revert("stage-failed", lambda_context)

    assert status(STAGE_STACK) == "CREATE_COMPLETE"
    assert template_of(STAGE_STACK) == json.loads(RELEASED_TEMPLATE)
    assert parameters_of(STAGE_STACK) == RELEASED_PARAMETERS
    assert result["actions"][0].startswith(f"re-creating stage stack {STAGE_STACK}")


def test_retain_mode_deletes_a_stage_stack_that_never_finished_creating(
    environment: Callable[[str], None], lambda_context: FakeLambdaContext
) -> None:
    environment(RETAIN)
    record_release()
    deploy(STAGE_STACK, template=NEW_TEMPLATE, value="stage")
    local_aws.set_stack_status(STAGE_STACK, PRIMARY, "ROLLBACK_COMPLETE")

    result = revert("stage-failed", lambda_context)

    assert status(STAGE_STACK) is None
    assert "never finished creating" in result["actions"][0]


# ------------------------------------------------------------------------------- first-release rejection


@pytest.mark.parametrize("mode", [DELETE, RETAIN])
def test_first_release_rejection_keeps_the_placeholders_and_reviewed_change_sets_for_a_retry(
    environment: Callable[[str], None], lambda_context: FakeLambdaContext, mode: str
) -> None:
    """GIVEN the first release was rejected: both production stacks are placeholders holding this
    execution's reviewed change set THEN the stage stack goes, and the placeholders and change sets stay,
    so that Retry deploys exactly what was reviewed (the execution gate removes them later)."""
    environment(mode)
    deploy(STAGE_STACK, template=NEW_TEMPLATE, value="stage")
    change_set(APP, PRIMARY, THIS_CHANGE_SET, "CREATE")
    change_set(APP, SECONDARY, THIS_CHANGE_SET, "CREATE")
    change_set(APP, SECONDARY, OTHER_CHANGE_SET, "CREATE")
    assert status(APP, PRIMARY) == status(APP, SECONDARY) == "REVIEW_IN_PROGRESS"

    result = revert("stage-failed", lambda_context)

    assert status(APP, PRIMARY) == status(APP, SECONDARY) == "REVIEW_IN_PROGRESS"
    assert change_sets_of(APP, PRIMARY) == [THIS_CHANGE_SET]
    assert change_sets_of(APP, SECONDARY) == [THIS_CHANGE_SET, OTHER_CHANGE_SET]
    assert status(STAGE_STACK) is None
    assert any("kept for a retry" in action for action in result["actions"])
    assert not any("deleted" in action or "removing" in action for action in result["actions"][1:])


def test_first_release_rejection_called_twice_is_a_no_op(
    environment: Callable[[str], None], lambda_context: FakeLambdaContext
) -> None:
    environment(DELETE)
    deploy(STAGE_STACK, template=NEW_TEMPLATE, value="stage")
    change_set(APP, PRIMARY, THIS_CHANGE_SET, "CREATE")
    change_set(APP, SECONDARY, THIS_CHANGE_SET, "CREATE")
    revert("stage-failed", lambda_context)
    after_first = snapshot()

    result = revert("stage-failed", lambda_context)

    assert "already gone" in result["actions"][0]
    assert snapshot() == after_first


# ------------------------------------------------------------------------------------- ignored events


@pytest.mark.parametrize("mode", [DELETE, RETAIN])
@pytest.mark.parametrize("case", IGNORED_EVENTS)
def test_events_for_another_pipeline_stage_or_state_touch_nothing(
    environment: Callable[[str], None], lambda_context: FakeLambdaContext, calls: Calls, mode: str, case: str
) -> None:
    environment(mode)
    deploy(STAGE_STACK, template=NEW_TEMPLATE, value="stage")
    change_set(APP, PRIMARY, THIS_CHANGE_SET, "CREATE")
    deploy(APP, SECONDARY)
    change_set(APP, SECONDARY, THIS_CHANGE_SET)
    before = snapshot()

    result = revert(case, lambda_context)

    assert result.get("ignored")
    assert "actions" not in result
    assert snapshot() == before
    assert calls == []


def test_an_event_that_is_not_a_stage_change_is_ignored(
    environment: Callable[[str], None], lambda_context: FakeLambdaContext, calls: Calls
) -> None:
    environment(DELETE)
    deploy(STAGE_STACK, template=NEW_TEMPLATE, value="stage")
    event = load_event("stage-revert", "stage-failed")
    event["detail-type"] = "CodePipeline Action Execution State Change"

    result = load_function("stage-revert").lambda_handler(event, lambda_context)

    assert result["ignored"] == "not a CodePipeline stage state change event"
    assert status(STAGE_STACK) == "CREATE_COMPLETE"
    assert calls == []


# ---------------------------------------------------------------------------------- faults: retry later


@pytest.mark.parametrize("with_record", [False, True], ids=["no-release", "released"])
@pytest.mark.parametrize("mode", [DELETE, RETAIN])
def test_busy_stage_stack_raises_so_lambda_retries_and_nothing_is_deleted(
    environment: Callable[[str], None], lambda_context: FakeLambdaContext, mode: str, with_record: bool
) -> None:
    environment(mode)
    if with_record:
        record_release()
    deploy(STAGE_STACK, template=NEW_TEMPLATE, value="stage")
    local_aws.set_stack_status(STAGE_STACK, PRIMARY, "UPDATE_IN_PROGRESS")
    change_set(APP, PRIMARY, THIS_CHANGE_SET, "CREATE")
    deploy(APP, SECONDARY)
    change_set(APP, SECONDARY, THIS_CHANGE_SET)
    before = snapshot()

    with pytest.raises(StackBusyError, match="UPDATE_IN_PROGRESS"):
        revert("stage-failed", lambda_context)

    # The stage stack waits for the retry; production is not touched.
    assert status(STAGE_STACK) == "UPDATE_IN_PROGRESS"
    assert snapshot() == before


@pytest.mark.parametrize("variable", ["STAGE_STACK_NAME", "CLOUDFORMATION_ROLE_ARN", "DELETE_STAGE_STACK"])
def test_missing_environment_variable_raises_naming_it(
    environment: Callable[[str], None],
    lambda_context: FakeLambdaContext,
    monkeypatch: pytest.MonkeyPatch,
    calls: Calls,
    variable: str,
) -> None:
    environment(DELETE)
    monkeypatch.delenv(variable)
    deploy(STAGE_STACK, template=NEW_TEMPLATE, value="stage")

    with pytest.raises(ConfigurationError, match=variable):
        revert("stage-failed", lambda_context)

    assert status(STAGE_STACK) == "CREATE_COMPLETE"
    assert calls == []


# ------------------------------------------------------------------------- the pipeline has moved on


def stage_event(stage: str = "Stage") -> dict[str, Any]:
    event = load_event("stage-revert", "stage-failed")
    event["detail"]["stage"] = stage
    return event


@pytest.mark.parametrize("mode", [DELETE, RETAIN])
def test_a_late_event_never_touches_the_stage_stack_of_a_later_execution(
    environment: Callable[[str], None], lambda_context: FakeLambdaContext, mode: str
) -> None:
    """GIVEN a later execution has reached the Stage stage (it owns the stage stack now)
    WHEN this execution's failure event arrives late THEN the stage stack is left as it is, and only
    this execution's production change sets are removed."""
    environment(mode)
    record_release()
    deploy(STAGE_STACK, template=NEW_TEMPLATE, value="stage-next")
    production_deployed()
    local_aws.set_stage_execution(PIPELINE, "Stage", "f0f0f0f0-0000-4000-8000-000000000009", "InProgress")
    before = snapshot()

    result = revert("stage-failed", lambda_context)

    assert snapshot()[f"{PRIMARY}/{STAGE_STACK}"] == before[f"{PRIMARY}/{STAGE_STACK}"]
    assert "left as it is" in result["actions"][0]
    for region in (PRIMARY, SECONDARY):
        assert change_sets_of(APP, region) == [THIS_CHANGE_SET, OTHER_CHANGE_SET]
        assert status(APP, region) == "CREATE_COMPLETE"


def test_a_retried_stage_is_left_alone(
    environment: Callable[[str], None], lambda_context: FakeLambdaContext, calls: Calls
) -> None:
    """GIVEN the failed Stage was retried and runs again WHEN the old failure event arrives
    THEN nothing is touched: the retry needs the stage stack and the change sets."""
    environment(DELETE)
    deploy(STAGE_STACK, template=NEW_TEMPLATE, value="stage")
    production_deployed()
    local_aws.set_stage_execution(PIPELINE, "Stage", EXECUTION, "InProgress")
    before = snapshot()

    result = revert("stage-failed", lambda_context)

    assert "retried" in result["ignored"]
    assert snapshot() == before
    assert calls == [("codepipeline", "GetPipelineState")]


def test_a_failed_production_deploy_in_retain_mode_reverts_the_stage_to_the_release(
    environment: Callable[[str], None], lambda_context: FakeLambdaContext, topic: Callable[[], Inbox]
) -> None:
    """GIVEN retain mode, approval given, and DeployPrimary failed (CloudFormation rolled it back)
    THEN the stage stack mirrors the release again, like production."""
    environment(RETAIN)
    topic()
    record_release()
    deploy(STAGE_STACK, template=NEW_TEMPLATE, value="stage-next")
    production_deployed()
    local_aws.set_stage_execution(PIPELINE, "Stage", EXECUTION, "Succeeded")
    local_aws.set_stage_execution(PIPELINE, "DeployPrimary", EXECUTION, "Failed")

    result = load_function("stage-revert").lambda_handler(stage_event("DeployPrimary"), lambda_context)

    assert template_of(STAGE_STACK) == json.loads(RELEASED_TEMPLATE)
    assert parameters_of(STAGE_STACK) == RELEASED_PARAMETERS
    assert result["actions"][0] == f"reverting stage stack {STAGE_STACK} to release {RELEASED_EXECUTION}"


def test_a_broken_release_still_lets_production_be_cleaned_then_raises(
    environment: Callable[[str], None], lambda_context: FakeLambdaContext
) -> None:
    """GIVEN retain mode, a release whose source object is gone and a primary stack whose first creation
    failed WHEN the stage fails THEN the failed creation is still removed, the placeholder kept for a
    retry, and the error is raised for a retry and the DLQ."""
    environment(RETAIN)
    record_release()
    record = releases.read_record(boto3.client("ssm", region_name=PRIMARY), RECORD_PARAMETER)
    assert record is not None
    assert record.version_id is not None
    boto3.client("s3", region_name=PRIMARY).delete_object(Bucket=BUCKET, Key=record.key, VersionId=record.version_id)
    deploy(STAGE_STACK, template=NEW_TEMPLATE, value="stage-next")
    deploy(APP, PRIMARY)
    local_aws.set_stack_status(APP, PRIMARY, "ROLLBACK_COMPLETE")
    change_set(APP, SECONDARY, THIS_CHANGE_SET, "CREATE")

    with pytest.raises(ReleaseRecordError, match="Cannot read the released template"):
        revert("stage-failed", lambda_context)

    assert status(APP, PRIMARY) is None
    assert status(APP, SECONDARY) == "REVIEW_IN_PROGRESS"
    assert change_sets_of(APP, SECONDARY) == [THIS_CHANGE_SET]
    assert template_of(STAGE_STACK) == json.loads(NEW_TEMPLATE)


def test_retain_mode_reverts_to_a_released_template_too_large_to_pass_inline(
    environment: Callable[[str], None], lambda_context: FakeLambdaContext
) -> None:
    """GIVEN a released template over CloudFormation's 51,200-byte inline limit THEN the stage stack is
    still reverted to it, through a copy kept beside the released source (TemplateURL)."""
    environment(RETAIN)
    large = json.loads(RELEASED_TEMPLATE)
    large["Description"] = "x" * 60_000
    large_template = json.dumps(large)
    record_release(template=large_template)
    deploy(STAGE_STACK, template=NEW_TEMPLATE, value="stage-next")
    production_deployed()

    result = revert("stage-failed", lambda_context)

    assert result["actions"][0] == f"reverting stage stack {STAGE_STACK} to release {RELEASED_EXECUTION}"
    assert template_of(STAGE_STACK) == large
    kept = boto3.client("s3", region_name=PRIMARY).get_object(
        Bucket=BUCKET, Key=releases.release_template_key(RELEASED_EXECUTION)
    )
    assert kept["Body"].read() == large_template.encode()


# ------------------------------------------------------------------ failed production deploys (AWS rollbacks)


def deploy_failed(stage: str, *, earlier_succeeded: tuple[str, ...] = ()) -> dict[str, Any]:
    """GetPipelineState after ``stage`` failed in this execution (after an approved Stage and any
    ``earlier_succeeded`` deploy stages); returns the event EventBridge sends."""
    local_aws.set_stage_execution(PIPELINE, "Stage", EXECUTION, "Succeeded")
    for earlier in earlier_succeeded:
        local_aws.set_stage_execution(PIPELINE, earlier, EXECUTION, "Succeeded")
    local_aws.set_stage_execution(PIPELINE, stage, EXECUTION, "Failed")
    return stage_event(stage)


def secondary_ran_the_change_and_primary_rolled_back(value: str = "prod") -> None:
    """Both Regions ran the release; DeploySecondary then ran the new template, and DeployPrimary's
    update failed and was rolled back by CloudFormation."""
    for region in (PRIMARY, SECONDARY):
        deploy(APP, region)
    cfn(SECONDARY).update_stack(StackName=APP, TemplateBody=NEW_TEMPLATE, Parameters=env(value))
    local_aws.set_stack_status(APP, PRIMARY, "UPDATE_ROLLBACK_COMPLETE")


def revert_primary_failure(context: FakeLambdaContext) -> dict[str, Any]:
    """stage-revert after DeployPrimary failed in this execution, DeploySecondary having succeeded."""
    event = deploy_failed("DeployPrimary", earlier_succeeded=("DeploySecondary",))
    result: dict[str, Any] = load_function("stage-revert").lambda_handler(event, context)
    return result


@pytest.fixture
def topic(monkeypatch: pytest.MonkeyPatch) -> Callable[[], Inbox]:
    """Makes the solution's topic, with a queue subscribed, the function's TOPIC_ARN (call it after
    ``environment``); returns what the topic's subscribers receive."""

    def make() -> Inbox:
        arn = boto3.client("sns", region_name=PRIMARY).create_topic(Name="release-solution-notifications")["TopicArn"]
        monkeypatch.setenv("TOPIC_ARN", arn)
        return Inbox(arn)

    return make


@pytest.mark.parametrize("mode", [DELETE, RETAIN])
def test_a_production_stack_whose_first_creation_failed_is_removed(
    environment: Callable[[str], None], lambda_context: FakeLambdaContext, topic: Callable[[], Inbox], mode: str
) -> None:
    """GIVEN a first release: DeploySecondary's change set failed to create the stack, so CloudFormation
    rolled it back to ROLLBACK_COMPLETE (it can only be deleted now) THEN the revert deletes it, and
    leaves the primary placeholder and its reviewed change set for a retry."""
    environment(mode)
    inbox = topic()
    deploy(APP, SECONDARY)
    local_aws.set_stack_status(APP, SECONDARY, "ROLLBACK_COMPLETE")
    change_set(APP, PRIMARY, THIS_CHANGE_SET, "CREATE")

    result = load_function("stage-revert").lambda_handler(deploy_failed("DeploySecondary"), lambda_context)

    assert status(APP, SECONDARY) is None
    assert status(APP, PRIMARY) == "REVIEW_IN_PROGRESS"
    assert change_sets_of(APP, PRIMARY) == [THIS_CHANGE_SET]
    assert any("its first creation failed (ROLLBACK_COMPLETE)" in action for action in result["actions"])
    [message] = inbox.messages()
    assert message.subject is not None
    assert "DeploySecondary" in message.subject
    assert f"secondary {APP} in {SECONDARY}: no stack: its creation failed and it was removed" in message.message


@pytest.mark.parametrize("status_now", ["UPDATE_ROLLBACK_COMPLETE", "UPDATE_COMPLETE", "CREATE_COMPLETE"])
def test_a_production_stack_that_ran_a_release_is_never_deleted(
    environment: Callable[[str], None], lambda_context: FakeLambdaContext, topic: Callable[[], Inbox], status_now: str
) -> None:
    environment(DELETE)
    topic()
    record_release()
    production_deployed()
    local_aws.set_stack_status(APP, SECONDARY, status_now)
    before = snapshot()

    load_function("stage-revert").lambda_handler(deploy_failed("DeploySecondary"), lambda_context)

    assert snapshot()[f"{SECONDARY}/{APP}"] == before[f"{SECONDARY}/{APP}"]
    assert snapshot()[f"{PRIMARY}/{APP}"] == before[f"{PRIMARY}/{APP}"]


def test_a_failed_primary_deploy_returns_the_secondary_to_the_release(
    environment: Callable[[str], None], lambda_context: FakeLambdaContext, topic: Callable[[], Inbox]
) -> None:
    """GIVEN DeploySecondary ran this execution's change and DeployPrimary failed (CloudFormation rolled
    the primary back to the release) THEN the secondary runs the released template again with its own
    parameters, the release record is unchanged, and the topic says what each Region runs."""
    environment(DELETE)
    inbox = topic()
    record_release()
    for region in (PRIMARY, SECONDARY):
        deploy(APP, region)
    cfn(SECONDARY).update_stack(StackName=APP, TemplateBody=NEW_TEMPLATE, Parameters=env("prod-eu"))
    local_aws.set_stack_status(APP, PRIMARY, "UPDATE_ROLLBACK_COMPLETE")
    ssm = boto3.client("ssm", region_name=PRIMARY)
    record_before = ssm.get_parameter(Name=RECORD_PARAMETER, WithDecryption=True)["Parameter"]

    result = revert_primary_failure(lambda_context)

    assert template_of(APP, SECONDARY) == json.loads(RELEASED_TEMPLATE)
    assert parameters_of(APP, SECONDARY) == {"Env": "prod-eu"}
    assert status(APP, SECONDARY) == "UPDATE_COMPLETE"
    assert status(APP, PRIMARY) == "UPDATE_ROLLBACK_COMPLETE"  # CloudFormation's rollback, not touched
    assert template_of(APP, PRIMARY) == json.loads(RELEASED_TEMPLATE)
    assert ssm.get_parameter(Name=RECORD_PARAMETER, WithDecryption=True)["Parameter"] == record_before
    returning = f"returning secondary stack {APP} in {SECONDARY} to release {RELEASED_EXECUTION}"
    assert any(action.startswith(returning) for action in result["actions"])
    [message] = inbox.messages()
    text = message.message
    assert f"release {RELEASED_EXECUTION}" in text
    assert f"primary {APP} in {PRIMARY}: UPDATE_ROLLBACK_COMPLETE: CloudFormation rolled the failed update back" in text
    assert f"secondary {APP} in {SECONDARY}: UPDATE_COMPLETE: {returning}" in text


def test_after_a_return_the_failed_executions_change_sets_go_so_a_retry_cannot_split_the_regions(
    environment: Callable[[str], None], lambda_context: FakeLambdaContext, topic: Callable[[], Inbox]
) -> None:
    """GIVEN DeployPrimary failed before its change set ran (the reviewed change set is still there) and
    the secondary is returned to the release THEN the primary's change set is deleted: a Retry of
    DeployPrimary would otherwise put the new version next to a secondary that runs the release."""
    environment(DELETE)
    topic()
    record_release()
    for region in (PRIMARY, SECONDARY):
        deploy(APP, region)
    cfn(SECONDARY).update_stack(StackName=APP, TemplateBody=NEW_TEMPLATE, Parameters=env("prod"))
    change_set(APP, PRIMARY, THIS_CHANGE_SET)
    change_set(APP, PRIMARY, OTHER_CHANGE_SET)

    result = revert_primary_failure(lambda_context)

    assert change_sets_of(APP, PRIMARY) == [OTHER_CHANGE_SET]
    assert template_of(APP, PRIMARY) == json.loads(RELEASED_TEMPLATE)
    assert any(f"deleted change set {THIS_CHANGE_SET} of {APP} in {PRIMARY}" in a for a in result["actions"])


def test_the_report_never_says_a_region_runs_the_release_when_its_return_failed(
    environment: Callable[[str], None], lambda_context: FakeLambdaContext, topic: Callable[[], Inbox]
) -> None:
    environment(DELETE)
    inbox = topic()
    record_release(template=json.dumps({**json.loads(RELEASED_TEMPLATE), "Description": "x" * 60_000}))
    for region in (PRIMARY, SECONDARY):
        deploy(APP, region)
    cfn(SECONDARY).update_stack(StackName=APP, TemplateBody=NEW_TEMPLATE, Parameters=env("prod"))

    with pytest.raises(StackStuckError, match="cannot be passed inline"):
        revert_primary_failure(lambda_context)

    [message] = inbox.messages()
    line = next(line for line in message.message.splitlines() if line.startswith("- secondary"))
    assert "NOT returned" in line
    assert "runs release" not in line
    assert template_of(APP, SECONDARY) == json.loads(NEW_TEMPLATE)


def test_a_second_failure_of_a_retried_execution_is_a_new_revert_not_a_duplicate(
    environment: Callable[[str], None], lambda_context: FakeLambdaContext
) -> None:
    """GIVEN the first failure's revert left its token on the stage stack, and the Stage was retried and
    failed again (a new event, same execution) WHEN the stage stack is busy with another operation
    THEN it is not mistaken for this revert's own: the revert raises for a retry."""
    environment(RETAIN)
    record_release()
    deploy(STAGE_STACK, template=NEW_TEMPLATE, value="stage-next")
    revert("stage-failed", lambda_context)
    local_aws.set_stack_status(STAGE_STACK, PRIMARY, "UPDATE_IN_PROGRESS")
    second_failure = load_event("stage-revert", "stage-failed")
    second_failure["id"] = "5b1f2c3d-0002-4000-8000-000000000002"

    with pytest.raises(StackBusyError, match="UPDATE_IN_PROGRESS"):
        load_function("stage-revert").lambda_handler(second_failure, lambda_context)


def test_a_secondary_this_execution_did_not_update_is_not_returned(
    environment: Callable[[str], None], lambda_context: FakeLambdaContext, topic: Callable[[], Inbox]
) -> None:
    """GIVEN DeployPrimary failed but DeploySecondary's latest run belongs to another execution (it was
    skipped: no secondary change) THEN the secondary is left as it is."""
    environment(DELETE)
    topic()
    record_release()
    for region in (PRIMARY, SECONDARY):
        deploy(APP, region)
    cfn(SECONDARY).update_stack(StackName=APP, TemplateBody=NEW_TEMPLATE, Parameters=env("prod"))
    local_aws.set_stage_execution(PIPELINE, "DeploySecondary", RELEASED_EXECUTION, "Succeeded")
    before = snapshot()

    load_function("stage-revert").lambda_handler(deploy_failed("DeployPrimary"), lambda_context)

    assert snapshot()[f"{SECONDARY}/{APP}"] == before[f"{SECONDARY}/{APP}"]


def test_a_failed_first_release_removes_the_secondary_it_created(
    environment: Callable[[str], None], lambda_context: FakeLambdaContext, topic: Callable[[], Inbox]
) -> None:
    """GIVEN the first release created the secondary stack, then the primary's creation failed
    THEN both are removed: nothing was released, so production runs nothing, as before."""
    environment(DELETE)
    topic()
    deploy(APP, SECONDARY, template=NEW_TEMPLATE)
    deploy(APP, PRIMARY, template=NEW_TEMPLATE)
    local_aws.set_stack_status(APP, PRIMARY, "ROLLBACK_COMPLETE")

    result = revert_primary_failure(lambda_context)

    assert status(APP, PRIMARY) is None
    assert status(APP, SECONDARY) is None
    assert any("this first release failed in another Region" in action for action in result["actions"])


def test_without_a_release_an_updated_secondary_is_left_and_the_revert_fails_for_the_alarm(
    environment: Callable[[str], None], lambda_context: FakeLambdaContext, topic: Callable[[], Inbox]
) -> None:
    """GIVEN no release record (a reinstalled solution) and a secondary that existed before this
    execution updated it THEN it is not deleted: the revert fails, so the event reaches the dead-letter
    queue and its alarm, and nothing else is touched."""
    environment(DELETE)
    topic()
    secondary_ran_the_change_and_primary_rolled_back()
    before = snapshot()

    with pytest.raises(StackStuckError, match="no release record to return it to"):
        revert_primary_failure(lambda_context)

    assert snapshot() == before


def test_a_return_that_cannot_start_fails_for_the_alarm_and_touches_nothing_else(
    environment: Callable[[str], None], lambda_context: FakeLambdaContext, topic: Callable[[], Inbox]
) -> None:
    """GIVEN the released source is gone WHEN the secondary must return to the release THEN the revert
    fails (Lambda retries, then the dead-letter queue and its alarm) and the primary is not touched."""
    environment(DELETE)
    topic()
    record_release()
    record = releases.read_record(boto3.client("ssm", region_name=PRIMARY), RECORD_PARAMETER)
    assert record is not None
    assert record.version_id is not None
    boto3.client("s3", region_name=PRIMARY).delete_object(Bucket=BUCKET, Key=record.key, VersionId=record.version_id)
    secondary_ran_the_change_and_primary_rolled_back()
    before = snapshot()

    with pytest.raises(ReleaseRecordError, match="Cannot read the released template"):
        revert_primary_failure(lambda_context)

    assert snapshot() == before


def test_a_duplicate_event_while_this_reverts_own_update_runs_is_a_no_op(
    environment: Callable[[str], None], lambda_context: FakeLambdaContext
) -> None:
    """GIVEN the first delivery started the stage stack's revert (UPDATE_IN_PROGRESS with this revert's
    ClientRequestToken) WHEN EventBridge delivers the event again THEN it succeeds without touching
    anything, instead of failing into the dead-letter queue."""
    environment(RETAIN)
    record_release()
    deploy(STAGE_STACK, template=NEW_TEMPLATE, value="stage-next")
    revert("stage-failed", lambda_context)
    local_aws.set_stack_status(STAGE_STACK, PRIMARY, "UPDATE_IN_PROGRESS")
    before = snapshot()

    result = revert("stage-failed", lambda_context)

    assert "this revert already started it" in result["actions"][0]
    assert snapshot() == before


def test_a_stack_busy_with_someone_elses_operation_still_raises(
    environment: Callable[[str], None], lambda_context: FakeLambdaContext
) -> None:
    environment(RETAIN)
    record_release()
    deploy(STAGE_STACK, template=NEW_TEMPLATE, value="stage-next")
    cfn().update_stack(
        StackName=STAGE_STACK, TemplateBody=RELEASED_TEMPLATE, Parameters=env("x"), ClientRequestToken="someone-else"
    )
    local_aws.set_stack_status(STAGE_STACK, PRIMARY, "UPDATE_IN_PROGRESS")

    with pytest.raises(StackBusyError, match="UPDATE_IN_PROGRESS"):
        revert("stage-failed", lambda_context)


def test_the_release_record_is_read_once_however_many_steps_need_it(
    environment: Callable[[str], None], lambda_context: FakeLambdaContext, topic: Callable[[], Inbox], calls: Calls
) -> None:
    """Retain mode after a failed DeployPrimary: the stage revert, the secondary's return and the report
    all need the release; SSM is asked once."""
    environment(RETAIN)
    topic()
    record_release()
    deploy(STAGE_STACK, template=NEW_TEMPLATE, value="stage-next")
    secondary_ran_the_change_and_primary_rolled_back()

    revert_primary_failure(lambda_context)

    assert template_of(STAGE_STACK) == json.loads(RELEASED_TEMPLATE)
    assert template_of(APP, SECONDARY) == json.loads(RELEASED_TEMPLATE)
    assert calls.count(("ssm", "GetParameter")) == 1


# ------------------------------------------------------------------------- with a deployment map


OTHER_ACCOUNT = "222233334444"
MAP_PATH = "deploy/map.json"
SOURCE = S3Location(BUCKET, "release-pipeline/SourceOutp/Xy12AbC")
# Three Regions, two accounts: the primary Region at home, the secondary at home and abroad, a third abroad.
DEPLOYMENT_MAP = {
    "Waves": [
        {
            "Name": "canary",
            "Targets": [{"Region": "ap-southeast-2", "Account": OTHER_ACCOUNT, "ParameterFile": "prod.json"}],
        },
        {
            "Name": "europe",
            "MaxConcurrency": 2,
            "Targets": [
                {"Region": SECONDARY, "ParameterFile": "prod.json"},
                {"Region": SECONDARY, "Account": OTHER_ACCOUNT, "ParameterFile": "prod.json"},
            ],
        },
        {"Name": "home", "Targets": [{"Region": PRIMARY, "ParameterFile": "prod.json"}]},
    ]
}
MAP_PLACES = [
    (OTHER_ACCOUNT, "ap-southeast-2"),
    (DEFAULT_ACCOUNT_ID, SECONDARY),
    (OTHER_ACCOUNT, SECONDARY),
    (DEFAULT_ACCOUNT_ID, PRIMARY),
]


def in_account(account: str, region: str) -> CloudFormationClient:
    """A CloudFormation client in ``account`` (another account through the deploy role stage-revert uses)."""
    if account == DEFAULT_ACCOUNT_ID:
        return cfn(region)
    role = rollout.target_roles(account, DEFAULT_ACCOUNT_ID, "aws", ROLE_ARN)[0]
    return clients.cloudformation_for_targets(PRIMARY, "test")(region, role)


def account_state(account: str, region: str) -> Any:
    """The application stack's status, template, resources and change sets in ``account``; None if none."""
    client = in_account(account, region)
    try:
        found = client.describe_stacks(StackName=APP)["Stacks"][0]
    except ClientError as error:
        if "does not exist" not in str(error):
            raise
        return None
    body = client.get_template(StackName=APP)["TemplateBody"]
    resources = client.list_stack_resources(StackName=APP)["StackResourceSummaries"]
    change_sets = client.list_change_sets(StackName=APP)["Summaries"]
    return (
        found["StackStatus"],
        json.loads(body) if isinstance(body, str) else body,
        sorted(r["LogicalResourceId"] for r in resources),
        sorted((s["ChangeSetName"], s["ExecutionStatus"]) for s in change_sets),
    )


def map_snapshot() -> dict[tuple[str, str], Any]:
    return {place: account_state(*place) for place in MAP_PLACES}


def reviewed_in(account: str, region: str, name: str = THIS_CHANGE_SET, change_set_type: str = "UPDATE") -> None:
    in_account(account, region).create_change_set(
        StackName=APP,
        ChangeSetName=name,
        ChangeSetType=change_set_type,  # type: ignore[arg-type]
        TemplateBody=NEW_TEMPLATE,
        Parameters=env("prod"),
    )


def deployed_in(account: str, region: str) -> None:
    in_account(account, region).create_stack(StackName=APP, TemplateBody=RELEASED_TEMPLATE, Parameters=env("prod"))


@pytest.fixture
def with_map(monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[dict[str, Any]]]:
    """DEPLOYMENT_MAP_PATH set (call after ``environment``) and this execution's source artifact, holding
    ``files``, where its Source action put it; returns the ListActionExecutions requests."""

    def apply(files: dict[str, str] | None = None) -> list[dict[str, Any]]:
        monkeypatch.setenv("DEPLOYMENT_MAP_PATH", MAP_PATH)
        if files is None:
            files = {MAP_PATH: json.dumps(DEPLOYMENT_MAP), "prod.json": '{"Env": "prod"}'}
        s3 = boto3.client("s3", region_name=PRIMARY)
        if BUCKET not in {bucket["Name"] for bucket in s3.list_buckets()["Buckets"]}:
            s3.create_bucket(Bucket=BUCKET)
        body = artifacts.build_zip({TEMPLATE_PATH: NEW_TEMPLATE.encode()} | {k: v.encode() for k, v in files.items()})
        s3.put_object(Bucket=SOURCE.bucket, Key=SOURCE.key, Body=body)
        return serve_source_action(monkeypatch, {EXECUTION: SOURCE})

    return apply


def reviewed_everywhere() -> None:
    """CheckChanges made this execution's change set in every target of the map: a first release in the
    secondary Region at home and in the other account's secondary Region (placeholders holding only it);
    updates of stacks that run the release elsewhere, one holding an older execution's change set too."""
    deployed_in(OTHER_ACCOUNT, "ap-southeast-2")
    reviewed_in(OTHER_ACCOUNT, "ap-southeast-2")
    reviewed_in(DEFAULT_ACCOUNT_ID, SECONDARY, change_set_type="CREATE")
    reviewed_in(OTHER_ACCOUNT, SECONDARY, change_set_type="CREATE")
    deployed_in(DEFAULT_ACCOUNT_ID, PRIMARY)
    reviewed_in(DEFAULT_ACCOUNT_ID, PRIMARY)
    reviewed_in(DEFAULT_ACCOUNT_ID, PRIMARY, OTHER_CHANGE_SET)


@pytest.mark.parametrize("mode", [DELETE, RETAIN])
@pytest.mark.parametrize("case", FAILURE_EVENTS)
def test_with_a_map_a_rejection_leaves_no_review_in_any_target(
    environment: Callable[[str], None],
    with_map: Callable[..., list[dict[str, Any]]],
    lambda_context: FakeLambdaContext,
    mode: str,
    case: str,
) -> None:
    """GIVEN a map of three Regions and two accounts WHEN the Stage is rejected or stopped THEN no target
    holds the execution's change set, its placeholders are gone, and stacks that run anything are untouched."""
    environment(mode)
    requests = with_map()
    deploy(STAGE_STACK, template=NEW_TEMPLATE, value="stage")
    reviewed_everywhere()
    before = map_snapshot()

    result = revert(case, lambda_context)

    assert status(STAGE_STACK) is None
    assert requests == [{"pipelineExecutionId": EXECUTION}]
    assert account_state(DEFAULT_ACCOUNT_ID, SECONDARY) is None
    assert account_state(OTHER_ACCOUNT, SECONDARY) is None
    for place in [(OTHER_ACCOUNT, "ap-southeast-2"), (DEFAULT_ACCOUNT_ID, PRIMARY)]:
        after = account_state(*place)
        assert after[:3] == before[place][:3]
        assert after[2] == ["Queue"]
        assert THIS_CHANGE_SET not in [name for name, _ in after[3]]
    assert change_sets_of(APP, PRIMARY) == [OTHER_CHANGE_SET]  # another execution's, for the gate
    removed = [action for action in result["actions"] if "placeholder" in action]
    assert removed == [
        f"{DEFAULT_ACCOUNT_ID}/{SECONDARY}/{APP}: removing placeholder {APP} (REVIEW_IN_PROGRESS, it held only "
        f"change set {THIS_CHANGE_SET})",
        f"{OTHER_ACCOUNT}/{SECONDARY}/{APP}: removing placeholder {APP} (REVIEW_IN_PROGRESS, it held only "
        f"change set {THIS_CHANGE_SET})",
    ]
    assert not any("kept for a retry" in action for action in result["actions"])


def test_with_a_map_a_second_delivery_changes_nothing_and_says_so(
    environment: Callable[[str], None],
    with_map: Callable[..., list[dict[str, Any]]],
    lambda_context: FakeLambdaContext,
) -> None:
    environment(DELETE)
    with_map()
    deploy(STAGE_STACK, template=NEW_TEMPLATE, value="stage")
    reviewed_everywhere()
    revert("stage-failed", lambda_context)
    after_first = map_snapshot(), snapshot()

    result = revert("stage-failed", lambda_context)

    assert (map_snapshot(), snapshot()) == after_first
    per_target = [action for action in result["actions"] if action.count("/") >= 2]
    assert len(per_target) == len(MAP_PLACES)
    assert all("already gone" in action for action in per_target)


def test_with_a_map_a_change_set_the_rollout_executed_is_never_deleted(
    environment: Callable[[str], None],
    with_map: Callable[..., list[dict[str, Any]]],
    lambda_context: FakeLambdaContext,
    topic: Callable[[], Inbox],
) -> None:
    """GIVEN the rollout executed the first wave's change set, then failed and went back (the state machine
    reports the later targets UNTOUCHED) THEN the executed change set and its stack stay as they are, and
    the change sets never executed go with the placeholders that held them."""
    environment(DELETE)
    topic()
    with_map()
    reviewed_everywhere()
    in_account(OTHER_ACCOUNT, "ap-southeast-2").execute_change_set(StackName=APP, ChangeSetName=THIS_CHANGE_SET)
    executed = account_state(OTHER_ACCOUNT, "ap-southeast-2")
    assert executed[0] == "UPDATE_COMPLETE"

    result = load_function("stage-revert").lambda_handler(deploy_failed("DeploySecondary"), lambda_context)

    assert account_state(OTHER_ACCOUNT, "ap-southeast-2") == executed
    assert (THIS_CHANGE_SET, "EXECUTE_COMPLETE") in executed[3]
    assert any(
        action.startswith(f"{OTHER_ACCOUNT}/ap-southeast-2/{APP}: left: change set {THIS_CHANGE_SET} was executed")
        for action in result["actions"]
    )
    assert account_state(DEFAULT_ACCOUNT_ID, SECONDARY) is None
    assert account_state(OTHER_ACCOUNT, SECONDARY) is None
    assert change_sets_of(APP, PRIMARY) == [OTHER_CHANGE_SET]


@pytest.mark.parametrize("mode", [DELETE, RETAIN])
def test_with_a_map_setting_and_no_map_in_the_source_both_production_reviews_go(
    environment: Callable[[str], None],
    with_map: Callable[..., list[dict[str, Any]]],
    lambda_context: FakeLambdaContext,
    mode: str,
) -> None:
    """GIVEN DEPLOYMENT_MAP_PATH is set but the execution's source has no map: its targets are the two
    production stacks WHEN a first release is rejected THEN both placeholders go, with the change sets."""
    environment(mode)
    with_map({"README.md": "no map here"})
    deploy(STAGE_STACK, template=NEW_TEMPLATE, value="stage")
    change_set(APP, PRIMARY, THIS_CHANGE_SET, "CREATE")
    change_set(APP, SECONDARY, THIS_CHANGE_SET, "CREATE")

    result = revert("stage-failed", lambda_context)

    assert status(APP, PRIMARY) is None
    assert status(APP, SECONDARY) is None
    assert status(STAGE_STACK) is None
    assert f"{DEFAULT_ACCOUNT_ID}/{SECONDARY}/{APP}: removing placeholder {APP}" in result["actions"][-2]
    assert f"{DEFAULT_ACCOUNT_ID}/{PRIMARY}/{APP}: removing placeholder {APP}" in result["actions"][-1]


def test_with_a_map_a_busy_target_is_retried_and_the_others_are_cleaned(
    environment: Callable[[str], None],
    with_map: Callable[..., list[dict[str, Any]]],
    lambda_context: FakeLambdaContext,
) -> None:
    environment(DELETE)
    with_map()
    deploy(STAGE_STACK, template=NEW_TEMPLATE, value="stage")
    reviewed_everywhere()
    local_aws.set_stack_status(APP, "ap-southeast-2", "UPDATE_IN_PROGRESS", account_id=OTHER_ACCOUNT)

    with pytest.raises(StackBusyError, match="UPDATE_IN_PROGRESS"):
        revert("stage-failed", lambda_context)

    assert status(STAGE_STACK) is None
    assert account_state(DEFAULT_ACCOUNT_ID, SECONDARY) is None
    assert THIS_CHANGE_SET in [name for name, _ in account_state(OTHER_ACCOUNT, "ap-southeast-2")[3]]
