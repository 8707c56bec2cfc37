"""local_aws.awslambda: Lambda's 4 KB limit on environment variables, the Lambda context, handler loading,
functions invoked in this process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from local_aws.awslambda import (
    ENVIRONMENT_MAX_BYTES,
    EnvironmentTooLarge,
    FakeLambdaContext,
    check_environment_size,
    load_handler,
    run_in_process,
)

ROLE_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


def variables_of_size(size: int) -> dict[str, str]:
    """One variable whose Variables map measures exactly ``size`` bytes as JSON."""
    overhead = len(json.dumps({"V": ""}, separators=(",", ":")))
    return {"V": "x" * (size - overhead)}


def test_the_limit_is_4_kb_of_the_variables_json() -> None:
    check_environment_size(variables_of_size(ENVIRONMENT_MAX_BYTES))
    with pytest.raises(EnvironmentTooLarge) as refused:
        check_environment_size(variables_of_size(ENVIRONMENT_MAX_BYTES + 1))
    assert refused.value.size == ENVIRONMENT_MAX_BYTES + 1
    assert str(refused.value).startswith(
        "Lambda was unable to configure your environment variables because the environment variables you "
        'have provided exceeded the 4KB limit. String measured: {"V":"xxx'
    )


def test_the_limit_counts_bytes_not_characters() -> None:
    with pytest.raises(EnvironmentTooLarge):
        check_environment_size({"V": "é" * (ENVIRONMENT_MAX_BYTES // 2)})


@pytest.fixture
def lambda_client(aws: None) -> Any:
    iam = boto3.client("iam", region_name="us-east-1")
    role = iam.create_role(RoleName="fn-role", AssumeRolePolicyDocument=json.dumps(ROLE_TRUST))["Role"]["Arn"]
    client = boto3.client("lambda", region_name="us-east-1")
    client.create_function(
        FunctionName="fn",
        Runtime="python3.13",
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": b"PK\x05\x06" + b"\0" * 18},
    )
    return client


def test_create_function_refuses_an_environment_over_4_kb(lambda_client: Any) -> None:
    role = lambda_client.get_function(FunctionName="fn")["Configuration"]["Role"]
    with pytest.raises(ClientError) as refused:
        lambda_client.create_function(
            FunctionName="big",
            Runtime="python3.13",
            Role=role,
            Handler="app.handler",
            Code={"ZipFile": b"PK\x05\x06" + b"\0" * 18},
            Environment={"Variables": variables_of_size(ENVIRONMENT_MAX_BYTES + 1)},
        )
    assert refused.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert "exceeded the 4KB limit. String measured: " in refused.value.response["Error"]["Message"]
    names = [f["FunctionName"] for f in lambda_client.list_functions()["Functions"]]
    assert names == ["fn"]


def test_update_function_configuration_refuses_an_environment_over_4_kb(lambda_client: Any) -> None:
    lambda_client.update_function_configuration(
        FunctionName="fn", Environment={"Variables": variables_of_size(ENVIRONMENT_MAX_BYTES)}
    )
    with pytest.raises(ClientError) as refused:
        lambda_client.update_function_configuration(
            FunctionName="fn", Environment={"Variables": variables_of_size(ENVIRONMENT_MAX_BYTES + 1)}
        )
    assert refused.value.response["Error"]["Code"] == "InvalidParameterValueException"
    kept = lambda_client.get_function_configuration(FunctionName="fn")["Environment"]["Variables"]
    assert kept == variables_of_size(ENVIRONMENT_MAX_BYTES)


def test_load_handler_imports_app_py_afresh(tmp_path: Path) -> None:
    (tmp_path / "my-fn").mkdir()
    (tmp_path / "my-fn" / "app.py").write_text("COUNT = []\n", encoding="utf-8")

    first = load_handler(tmp_path / "my-fn")
    first.COUNT.append(1)

    assert first.__name__ == "functions_my_fn_app"
    assert load_handler(tmp_path / "my-fn").COUNT == []
    with pytest.raises(FileNotFoundError, match="no handler"):
        load_handler(tmp_path / "missing")


def test_fake_context_works_with_powertools_logger(capsys: pytest.CaptureFixture[str]) -> None:
    logger = Logger(service="test")
    context = FakeLambdaContext("prepare-stage-artifact", aws_request_id="req-1")

    @logger.inject_lambda_context
    def handler(event: dict[str, Any], context: FakeLambdaContext) -> int:
        logger.info("hello")
        return context.get_remaining_time_in_millis()

    remaining = handler({}, context)

    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["function_request_id"] == "req-1"
    assert line["function_name"] == "prepare-stage-artifact"
    assert line["function_arn"] == "arn:aws:lambda:us-east-1:123456789012:function:prepare-stage-artifact"
    assert 0 < remaining <= 60_000


def test_a_function_run_in_process_answers_invoke_with_its_handler_result(lambda_client: Any) -> None:
    seen: list[tuple[Any, str]] = []

    def handler(event: Any, context: FakeLambdaContext) -> dict[str, Any]:
        seen.append((event, context.function_name))
        return {"released": event["target"]}

    run_in_process("fn", "us-east-1", handler)

    answer = lambda_client.invoke(FunctionName="fn", Payload=json.dumps({"target": "eu-west-1"}))

    assert answer["StatusCode"] == 200
    assert "FunctionError" not in answer
    assert json.loads(answer["Payload"].read()) == {"released": "eu-west-1"}
    assert seen == [({"target": "eu-west-1"}, "fn")]


def test_an_unhandled_exception_is_a_function_error_with_the_python_runtime_payload(lambda_client: Any) -> None:
    def handler(event: Any, context: FakeLambdaContext) -> None:
        raise ValueError("no such target")

    run_in_process("fn", "us-east-1", handler)
    function_arn = lambda_client.get_function(FunctionName="fn")["Configuration"]["FunctionArn"]

    answer = lambda_client.invoke(FunctionName=function_arn, Payload=b"{}")

    assert answer["StatusCode"] == 200
    assert answer["FunctionError"] == "Unhandled"
    payload = json.loads(answer["Payload"].read())
    assert (payload["errorType"], payload["errorMessage"]) == ("ValueError", "no such target")
    assert payload["requestId"]
    assert any("no such target" in line or "raise ValueError" in line for line in payload["stackTrace"])


def test_invoking_a_missing_function_is_refused_even_with_a_handler(lambda_client: Any) -> None:
    run_in_process("gone", "us-east-1", lambda event, context: "never")

    with pytest.raises(ClientError) as refused:
        lambda_client.invoke(FunctionName="gone", Payload=b"{}")

    assert refused.value.response["Error"]["Code"] == "ResourceNotFoundException"
