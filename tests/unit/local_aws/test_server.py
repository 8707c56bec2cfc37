"""local_aws is served by a ThreadedMotoServer too (no mock_aws: real HTTP to a thread)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.moto_api._internal.models import moto_api_backend
from moto.server import ThreadedMotoServer

import local_aws

if TYPE_CHECKING:
    from mypy_boto3_cloudformation.type_defs import ParameterTypeDef

TEMPLATE = json.dumps(
    {
        "Parameters": {"Env": {"Type": "String", "Default": "dev"}},
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": {"Fn::Sub": "demo-${Env}"}}}},
    }
)
PARAMETERS: list[ParameterTypeDef] = [{"ParameterKey": "Env", "ParameterValue": "prod"}]


@pytest.fixture
def moto_server() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    try:
        yield f"http://localhost:{port}"
    finally:
        moto_api_backend.reset()  # what POST /moto-api/reset does: leave nothing to later tests
        server.stop()


def test_extensions_are_served_by_a_threaded_moto_server(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    cfn = boto3.client("cloudformation", region_name="us-east-1")
    codepipeline = boto3.client("codepipeline", region_name="us-east-1")
    job_id = str(uuid.uuid4())
    cfn.create_stack(StackName="demo-app", TemplateBody=TEMPLATE, Parameters=PARAMETERS)

    cfn.create_change_set(StackName="demo-app", ChangeSetName="cs", TemplateBody=TEMPLATE, Parameters=PARAMETERS)
    codepipeline.put_job_success_result(jobId=job_id, outputVariables={"HasChanges": "false"})
    with pytest.raises(ClientError) as exc:
        codepipeline.put_job_success_result(jobId=job_id)
    detection_id = cfn.detect_stack_drift(StackName="demo-app")["StackDriftDetectionId"]

    assert cfn.meta.endpoint_url == moto_server
    assert cfn.describe_change_set(StackName="demo-app", ChangeSetName="cs")["Status"] == "FAILED"
    assert exc.value.response["Error"]["Code"] == "InvalidJobStateException"
    assert [r.accepted for r in local_aws.job_results(job_id)] == [True, False]
    status = cfn.describe_stack_drift_detection_status(StackDriftDetectionId=detection_id)
    assert (status["DetectionStatus"], status["StackDriftStatus"]) == ("DETECTION_COMPLETE", "IN_SYNC")
