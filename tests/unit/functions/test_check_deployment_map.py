"""check-deployment-map (Validate stage): the deployment map in the Source artifact passes with its
numbers, digest and waves as output variables, or the job fails naming each entry at fault; every
invocation reports exactly one job result."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

import local_aws
from local_aws import FakeLambdaContext
from release_pipeline import deployment_map
from release_pipeline.jobs import FAILURE_MESSAGE_LIMIT
from tests.support.events import load_event
from tests.support.jobs import run_job
from tests.support.maps import MAP_PATH, example_map, example_repository, with_map
from tests.support.solution import ARTIFACT_BUCKET, source_zip

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

BUCKET = ARTIFACT_BUCKET
SOURCE_KEY = "release-pipeline/SourceOutp/k3Xw9Qa"
STACK = "hello-app"
HOME = "123456789012"  # the account of the sample events and of the Lambda context's function ARN
PARTNER = "222233334444"


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch, artifact_bucket: str) -> None:
    """The function's variables: where the map is in the repository, and the application's stack name."""
    monkeypatch.setenv("DEPLOYMENT_MAP_PATH", MAP_PATH)
    monkeypatch.setenv("APPLICATION_STACK_NAME", STACK)


def invoke(
    s3: S3Client, repository: dict[str, str] | None, context: FakeLambdaContext, event: dict[str, Any] | None = None
) -> local_aws.ReportedJobResult:
    """Put ``repository`` as the Source artifact (none: leave it out) and run the job."""
    if repository is not None:
        s3.put_object(Bucket=BUCKET, Key=SOURCE_KEY, Body=source_zip(repository))
    return run_job("check-deployment-map", event or load_event("check-deployment-map", "job"), context)


def failure_message(result: local_aws.ReportedJobResult) -> str:
    assert result.status == "Failed"
    assert result.output_variables == {}
    assert result.failure_details is not None
    return str(result.failure_details["message"])


def test_the_example_map_passes_with_its_output_variables(s3: S3Client, lambda_context: FakeLambdaContext) -> None:
    result = invoke(s3, example_repository(), lambda_context)

    assert result.status == "Succeeded"
    assert result.failure_details is None
    assert result.continuation_token is None
    repository = example_repository()
    expected = deployment_map.parse(
        repository[MAP_PATH], read_file=repository.get, default_stack_name=STACK, home_account=HOME
    )
    assert result.output_variables == {
        "Waves": "3",
        "Targets": "4",
        "MapDigest": deployment_map.digest(expected),
        "Summary": "; ".join(deployment_map.summary_by_wave(expected)),
    }
    assert f"account {PARTNER}" in result.output_variables["Summary"]
    assert result.execution_details is not None
    assert result.execution_details["summary"].startswith(f"Deployment map {MAP_PATH}: 3 waves, 4 targets")
    assert result.execution_details["externalExecutionId"] == lambda_context.aws_request_id


def test_the_home_account_is_the_account_the_function_runs_in(s3: S3Client) -> None:
    """GIVEN the function runs in the partner account WHEN the example map is checked THEN a target that
    names that account is one of the solution's own (its account is not shown); the map, and so its digest,
    is the same."""
    at_home = invoke(s3, example_repository(), FakeLambdaContext("check-deployment-map"))
    event = load_event("check-deployment-map", "job")
    event["CodePipeline.job"]["id"] = "c4d5e6f7-0002-4000-8000-000000000002"  # CodePipeline's next job
    elsewhere = invoke(s3, example_repository(), FakeLambdaContext("check-deployment-map", account_id=PARTNER), event)

    assert elsewhere.status == "Succeeded"
    assert f"account {PARTNER}" not in elsewhere.output_variables["Summary"]
    assert f"account {PARTNER}" in at_home.output_variables["Summary"]
    assert elsewhere.output_variables["MapDigest"] == at_home.output_variables["MapDigest"]


def a_map(change: str) -> dict[str, Any]:
    document = example_map()
    canary, _, rest = document["Waves"]
    changes = {
        "unknown-key": lambda: canary.update(Bake=30),
        "not-a-region": lambda: canary["Targets"][0].update(Region="us-west-9"),
        "duplicate-target": lambda: rest["Targets"].append(dict(canary["Targets"][0])),
        "missing-parameter-file": lambda: rest["Targets"][0].update(ParameterFile="parameters/us-east-1.json"),
        "bake-time-that-cannot-fit": lambda: canary.update(BakeTimeInMinutes=180, DeployTimeoutInMinutes=1250),
    }
    changes[change]()
    return document


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ("unknown-key", "Waves[0] (canary): unknown key 'Bake'"),
        ("not-a-region", "Waves[0].Targets[0] (us-west-9): Region 'us-west-9' is not an AWS Region"),
        ("duplicate-target", "Waves[2].Targets[1] (us-west-2): the same target as Waves[0].Targets[0] (us-west-2)"),
        (
            "missing-parameter-file",
            "Waves[2].Targets[0] (us-east-1): ParameterFile 'parameters/us-east-1.json' is not in the repository",
        ),
        ("bake-time-that-cannot-fit", "Waves: the waves need 1 x (1250 + 180) + 1 x (60 + 15) + 1 x (60 + 0) = 1565"),
    ],
)
def test_each_kind_of_error_fails_the_job_naming_the_entry(
    s3: S3Client, lambda_context: FakeLambdaContext, change: str, problem: str
) -> None:
    result = invoke(s3, with_map(a_map(change)), lambda_context)

    message = failure_message(result)
    assert message.startswith(f"The deployment map {MAP_PATH} has 1 problem:\n- {problem}")
    assert result.failure_details is not None
    assert result.failure_details["type"] == "JobFailed"


def test_a_map_file_not_in_the_source_fails_naming_the_path(s3: S3Client, lambda_context: FakeLambdaContext) -> None:
    repository = example_repository()
    del repository[MAP_PATH]

    message = failure_message(invoke(s3, repository, lambda_context))

    assert message == f"The DeploymentMapPath parameter names {MAP_PATH!r}, a file that is not in the source artifact"


def test_a_huge_list_of_problems_is_cut_cleanly_within_codepipeline_s_limit(
    s3: S3Client, lambda_context: FakeLambdaContext
) -> None:
    """GIVEN 300 problems WHEN checked THEN CodePipeline accepts the failure (5,000 characters at most): whole
    problems, then how many were left out."""
    targets = [{"Region": f"nowhere-{n}", "ParameterFile": f"missing/{n}.json", "Account": str(n)} for n in range(100)]
    document = {"Waves": [{"Name": "all", "MaxConcurrency": 40, "DeployTimeoutInMinutes": 5, "Targets": targets}]}

    message = failure_message(invoke(s3, with_map(document), lambda_context))

    assert len(message) <= FAILURE_MESSAGE_LIMIT
    lines = message.split("\n")
    assert lines[0] == f"The deployment map {MAP_PATH} has 300 problems:"
    shown = lines[1:-1]
    assert all(line.startswith("- Waves[0].Targets[") for line in shown)
    assert lines[-1] == f"… and {300 - len(shown)} more problems not shown"
    assert "…" not in "".join(shown)  # no problem is cut in the middle


def test_a_source_that_is_not_a_zip_fails(s3: S3Client, lambda_context: FakeLambdaContext) -> None:
    s3.put_object(Bucket=BUCKET, Key=SOURCE_KEY, Body=b"not a zip")

    message = failure_message(invoke(s3, None, lambda_context))

    assert "source artifact is not a valid zip archive" in message


def test_a_missing_source_object_fails_naming_it(s3: S3Client, lambda_context: FakeLambdaContext) -> None:
    message = failure_message(invoke(s3, None, lambda_context))

    assert message == f"The source artifact s3://{BUCKET}/{SOURCE_KEY} does not exist"


def test_a_job_without_the_source_artifact_fails_naming_it(s3: S3Client, lambda_context: FakeLambdaContext) -> None:
    event = load_event("check-deployment-map", "job")
    event["CodePipeline.job"]["data"]["inputArtifacts"] = []

    message = failure_message(invoke(s3, example_repository(), lambda_context, event))

    assert message == "The job has no input artifact named 'SourceOutput' (it has: none)"


def test_a_job_without_artifact_credentials_fails(s3: S3Client, lambda_context: FakeLambdaContext) -> None:
    event = load_event("check-deployment-map", "job")
    del event["CodePipeline.job"]["data"]["artifactCredentials"]

    message = failure_message(invoke(s3, example_repository(), lambda_context, event))

    assert message == "The job event has no artifact credentials"


@pytest.mark.parametrize("variable", ["DEPLOYMENT_MAP_PATH", "APPLICATION_STACK_NAME"])
def test_a_missing_variable_fails_the_job_naming_it(
    s3: S3Client, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.delenv(variable)

    result = invoke(s3, example_repository(), lambda_context)

    assert failure_message(result) == f"check-deployment-map configuration: {variable} is not set"
    assert result.failure_details is not None
    assert result.failure_details["type"] == "ConfigurationError"
