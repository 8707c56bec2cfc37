"""local_aws keeps its state on moto's backends: every way moto resets forgets it, with no reset of its own."""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Callable, Iterator

import boto3
import pytest
from moto import mock_aws
from moto.awslambda.utils import get_backend
from moto.codepipeline.models import codepipeline_backends
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.moto_api._internal.models import moto_api_backend
from moto.server import ThreadedMotoServer
from moto.sts.models import sts_backends

import local_aws
from local_aws import stepfunctions
from local_aws.awslambda import InProcessFunctions
from local_aws.cloudformation.models import cfn_state, settings
from local_aws.codepipeline import CodePipelineState
from local_aws.core import state_of
from local_aws.stepfunctions import TaskSessions

PRIMARY = "us-east-1"
SECONDARY = "eu-west-1"
STACK = "demo-app"
TEMPLATE = json.dumps({"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}})
DEPLOY_ROLE = "arn:aws:iam::222222222222:role/deploy"


def make_every_kind_of_state() -> None:
    """One of each: job results in two Regions, a stage state, injected and failing drift, a detection,
    an update being monitored, both emulator-wide settings, a function run in process and a role session of
    a state machine's task."""
    for region in (PRIMARY, SECONDARY):
        boto3.client("codepipeline", region_name=region).put_job_success_result(jobId=str(uuid.uuid4()))
    local_aws.set_stage_execution("release-pipeline", "Stage", "execution-1", "Failed")
    cfn = boto3.client("cloudformation", region_name=PRIMARY)
    cfn.create_stack(StackName=STACK, TemplateBody=TEMPLATE)
    local_aws.inject_drift(STACK, PRIMARY, "Topic", status="DELETED")
    local_aws.fail_detection(STACK, PRIMARY, "Access denied")
    cfn.detect_stack_drift(StackName=STACK)
    cfn.update_stack(
        StackName=STACK,
        TemplateBody=json.dumps({"Resources": {"Alerts": {"Type": "AWS::SNS::Topic"}}}),
        RollbackConfiguration={"MonitoringTimeInMinutes": 30},
    )
    local_aws.set_detection_progress(3)
    local_aws.set_change_set_page_size(1)
    local_aws.run_in_process("check-target", PRIMARY, lambda event, context: event)
    stepfunctions.role_session(DEPLOY_ROLE, PRIMARY)
    assert_state(present=True)


def assert_state(*, present: bool) -> None:
    codepipeline = state_of(codepipeline_backends[DEFAULT_ACCOUNT_ID][PRIMARY], CodePipelineState)
    cloudformation = cfn_state(DEFAULT_ACCOUNT_ID, PRIMARY)
    found = {
        "job results": bool(local_aws.job_results()),
        "stage states": bool(codepipeline.stage_states),
        "injected drift": bool(cloudformation.injected),
        "detection failures": bool(cloudformation.failures),
        "detections": bool(cloudformation.detections),
        "monitored operations": bool(cloudformation.monitoring),
        "detection progress": settings().polls_before_complete != 0,
        "change set page size": settings().change_set_page_size is not None,
        "in-process functions": bool(state_of(get_backend(DEFAULT_ACCOUNT_ID, PRIMARY), InProcessFunctions).handlers),
        "task sessions": bool(state_of(sts_backends["222222222222"]["aws"], TaskSessions).keys),
    }
    assert found == dict.fromkeys(found, present)


def test_stopping_mock_aws_forgets_every_piece_of_state() -> None:
    with mock_aws():
        make_every_kind_of_state()
    assert_state(present=False)


def test_starting_mock_aws_forgets_state_left_outside_it(moto_server: str) -> None:
    make_every_kind_of_state()  # served by the moto server, which does not reset when it stops

    with mock_aws():
        assert_state(present=False)


def post_reset(endpoint: str) -> None:
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST", data=b"")  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (always http://localhost)
        assert response.status == 200


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    endpoint = f"http://localhost:{server.get_host_and_port()[1]}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    post_reset(endpoint)  # what earlier tests left in this process
    try:
        yield endpoint
    finally:
        post_reset(endpoint)
        server.stop()


@pytest.mark.parametrize(
    "reset",
    [post_reset, lambda _: moto_api_backend.reset()],
    ids=["POST /moto-api/reset", "moto_api_backend.reset"],
)
def test_the_server_reset_forgets_every_piece_of_state(moto_server: str, reset: Callable[[str], None]) -> None:
    make_every_kind_of_state()

    reset(moto_server)

    assert_state(present=False)
    cfn = boto3.client("cloudformation", region_name=PRIMARY)
    cfn.create_stack(StackName=STACK, TemplateBody=TEMPLATE)
    detection_id = cfn.detect_stack_drift(StackName=STACK)["StackDriftDetectionId"]
    status = cfn.describe_stack_drift_detection_status(StackDriftDetectionId=detection_id)
    assert (status["DetectionStatus"], status["StackDriftStatus"]) == ("DETECTION_COMPLETE", "IN_SYNC")


def test_state_is_made_on_first_use_and_kept_on_the_backend() -> None:
    with mock_aws():
        backend = codepipeline_backends[DEFAULT_ACCOUNT_ID][PRIMARY]
        first = state_of(backend, CodePipelineState)
        assert state_of(backend, CodePipelineState) is first
        assert state_of(codepipeline_backends[DEFAULT_ACCOUNT_ID][SECONDARY], CodePipelineState) is not first
