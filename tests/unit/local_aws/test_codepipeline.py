"""local_aws.codepipeline answers like AWS: job results, and execution status."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError

import local_aws
from tests.support.events import continuation_of, job_id_of, load_event
from tests.support.solution import create_pipeline

if TYPE_CHECKING:
    from mypy_boto3_codepipeline import CodePipelineClient

pytestmark = pytest.mark.usefixtures("aws")

PRIMARY = "us-east-1"
SECONDARY = "eu-west-1"


def error_code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


@pytest.fixture
def codepipeline() -> CodePipelineClient:
    return boto3.client("codepipeline", region_name=PRIMARY)


def test_install_is_idempotent() -> None:
    local_aws.install()
    local_aws.install()


def test_success_result_is_recorded_with_its_output_variables(codepipeline: CodePipelineClient) -> None:
    job_id = job_id_of(load_event("change-detection", "job"))

    codepipeline.put_job_success_result(
        jobId=job_id,
        outputVariables={"HasChanges": "true"},
        executionDetails={"summary": "2 changes", "externalExecutionId": "req-1", "percentComplete": 100},
    )

    [result] = local_aws.job_results(job_id)
    assert result.status == "Succeeded"
    assert result.accepted
    assert result.final
    assert result.output_variables == {"HasChanges": "true"}
    assert result.execution_details == {"summary": "2 changes", "externalExecutionId": "req-1", "percentComplete": 100}
    assert result.failure_details is None
    assert (result.account_id, result.region) == ("123456789012", PRIMARY)


def test_failure_result_is_recorded_with_its_details(codepipeline: CodePipelineClient) -> None:
    job_id = job_id_of(load_event("prepare-stage-artifact", "malformed"))

    codepipeline.put_job_failure_result(
        jobId=job_id, failureDetails={"type": "JobFailed", "message": "no input artifact", "externalExecutionId": "r"}
    )

    [result] = local_aws.job_results(job_id)
    assert result.status == "Failed"
    assert result.failure_details == {"type": "JobFailed", "message": "no input artifact", "externalExecutionId": "r"}
    assert result.output_variables == {}


def test_second_result_for_a_job_is_rejected_and_still_recorded(codepipeline: CodePipelineClient) -> None:
    """GIVEN a job with a success result WHEN a failure follows THEN InvalidJobStateException."""
    job_id = job_id_of(load_event("drift-detection", "job"))
    codepipeline.put_job_success_result(jobId=job_id)

    with pytest.raises(ClientError) as exc:
        codepipeline.put_job_failure_result(jobId=job_id, failureDetails={"type": "JobFailed", "message": "x"})

    assert error_code(exc) == "InvalidJobStateException"
    results = local_aws.job_results(job_id)
    assert [(r.status, r.error) for r in results] == [("Succeeded", None), ("Failed", "InvalidJobStateException")]


def test_continuation_then_final_result_on_the_reinvoked_job(codepipeline: CodePipelineClient) -> None:
    first = load_event("drift-detection", "job")
    codepipeline.put_job_success_result(jobId=job_id_of(first), continuationToken='{"step": 1}')
    again = continuation_of(first, '{"step": 1}')

    codepipeline.put_job_success_result(jobId=job_id_of(again), outputVariables={"DriftStatus": "IN_SYNC"})

    results = local_aws.job_results()
    assert [(r.job_id, r.final) for r in results] == [(job_id_of(first), False), (job_id_of(again), True)]
    assert results[0].continuation_token == '{"step": 1}'
    assert again["CodePipeline.job"]["data"]["continuationToken"] == '{"step": 1}'


def test_output_variables_with_a_continuation_token_are_rejected(codepipeline: CodePipelineClient) -> None:
    job_id = job_id_of(load_event("drift-detection", "job"))

    with pytest.raises(ClientError) as exc:
        codepipeline.put_job_success_result(jobId=job_id, continuationToken="t", outputVariables={"A": "b"})

    assert error_code(exc) == "ValidationException"
    assert [r.error for r in local_aws.job_results(job_id)] == ["ValidationException"]


def test_output_variables_over_122880_bytes_are_rejected(codepipeline: CodePipelineClient) -> None:
    job_id = job_id_of(load_event("change-detection", "job"))
    variables = {"Summary": "x" * (local_aws.OUTPUT_VARIABLES_MAX_BYTES - len("Summary") + 1)}

    with pytest.raises(ClientError) as exc:
        codepipeline.put_job_success_result(jobId=job_id, outputVariables=variables)

    assert error_code(exc) == "OutputVariablesSizeExceededException"


def test_output_variables_of_exactly_122880_bytes_are_accepted(codepipeline: CodePipelineClient) -> None:
    job_id = job_id_of(load_event("change-detection", "job"))
    variables = {"Summary": "x" * (local_aws.OUTPUT_VARIABLES_MAX_BYTES - len("Summary"))}

    codepipeline.put_job_success_result(jobId=job_id, outputVariables=variables)

    assert local_aws.job_results(job_id)[0].accepted


@pytest.mark.parametrize(
    ("job_id", "failure_type", "message"),
    [
        ("job-1", "JobFailed", "m"),
        ("11111111-2222-4333-8444-555555555555", "Oops", "m"),
        ("11111111-2222-4333-8444-555555555555", "JobFailed", "m" * 5001),
    ],
)
def test_invalid_failure_results_are_rejected(
    codepipeline: CodePipelineClient, job_id: str, failure_type: str, message: str
) -> None:
    with pytest.raises(ClientError) as exc:
        codepipeline.put_job_failure_result(
            jobId=job_id,
            failureDetails={"type": failure_type, "message": message},  # type: ignore[typeddict-item]
        )

    assert error_code(exc) == "ValidationException"


def test_job_results_are_kept_per_region() -> None:
    job_id = "11111111-2222-4333-8444-555555555555"
    boto3.client("codepipeline", region_name=SECONDARY).put_job_success_result(jobId=job_id)

    assert [r.region for r in local_aws.job_results(job_id)] == [SECONDARY]
    assert local_aws.job_results(job_id, region=PRIMARY) == []


def test_execution_status_shows_in_list_pipeline_executions() -> None:
    iam = boto3.client("iam", region_name="us-east-1")
    codepipeline = boto3.client("codepipeline", region_name="us-east-1")
    create_pipeline(iam, codepipeline, "release-pipeline")
    execution = codepipeline.start_pipeline_execution(name="release-pipeline")["pipelineExecutionId"]

    local_aws.set_execution_status("release-pipeline", execution, "InProgress")
    (summary,) = codepipeline.list_pipeline_executions(pipelineName="release-pipeline")["pipelineExecutionSummaries"]
    assert summary["status"] == "InProgress"

    with pytest.raises(ValueError, match="status must be one of"):
        local_aws.set_execution_status("release-pipeline", execution, "Done")
    with pytest.raises(ValueError, match="has no execution"):
        local_aws.set_execution_status("release-pipeline", "no-such-execution", "Failed")


def test_an_execution_start_time_can_be_set_so_executions_never_tie() -> None:
    iam = boto3.client("iam", region_name="us-east-1")
    codepipeline = boto3.client("codepipeline", region_name="us-east-1")
    create_pipeline(iam, codepipeline, "release-pipeline")
    first = codepipeline.start_pipeline_execution(name="release-pipeline")["pipelineExecutionId"]
    second = codepipeline.start_pipeline_execution(name="release-pipeline")["pipelineExecutionId"]
    earlier = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    local_aws.set_execution_status("release-pipeline", second, "InProgress", started_at=earlier)

    summaries = codepipeline.list_pipeline_executions(pipelineName="release-pipeline")["pipelineExecutionSummaries"]
    started = {s["pipelineExecutionId"]: s["startTime"] for s in summaries}
    assert started[second] == earlier
    assert started[first] > earlier  # the other execution keeps moto's own start time


def action_execution(execution: str, name: str, *, category: str = "Invoke", key: str | None = None) -> dict[str, Any]:
    """An ActionExecutionDetail as the rehearsal records it (an output artifact at ``key`` if given)."""
    moment = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
    output = [{"name": "SourceOutput", "s3location": {"bucket": "artifacts", "key": key}}] if key else []
    return {
        "pipelineExecutionId": execution,
        "actionExecutionId": f"{execution}-{name}",
        "stageName": "Source" if category == "Source" else "Stage",
        "actionName": name,
        "startTime": moment,
        "lastUpdateTime": moment,
        "status": "Succeeded",
        "input": {"actionTypeId": {"category": category, "owner": "AWS", "provider": "Lambda", "version": "1"}},
        "output": {"outputArtifacts": output},
    }


def test_list_action_executions_gives_an_executions_actions_newest_first_with_their_artifacts() -> None:
    iam = boto3.client("iam", region_name=PRIMARY)
    codepipeline = boto3.client("codepipeline", region_name=PRIMARY)
    create_pipeline(iam, codepipeline, "release-pipeline")
    local_aws.record_action_execution(
        "release-pipeline", action_execution("e1", "Source", category="Source", key="a/1")
    )
    local_aws.record_action_execution(
        "release-pipeline", action_execution("e2", "Source", category="Source", key="a/2")
    )
    local_aws.record_action_execution("release-pipeline", action_execution("e1", "Gate"))

    details = codepipeline.list_action_executions(
        pipelineName="release-pipeline", filter={"pipelineExecutionId": "e1"}
    )["actionExecutionDetails"]

    assert [d["actionName"] for d in details] == ["Gate", "Source"]
    assert details[1]["output"]["outputArtifacts"] == [
        {"name": "SourceOutput", "s3location": {"bucket": "artifacts", "key": "a/1"}}
    ]
    assert details[1]["startTime"] == datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
    every = codepipeline.list_action_executions(pipelineName="release-pipeline")["actionExecutionDetails"]
    assert len(every) == 3


def test_list_action_executions_pages_at_most_100_and_refuses_an_unknown_pipeline() -> None:
    iam = boto3.client("iam", region_name=PRIMARY)
    codepipeline = boto3.client("codepipeline", region_name=PRIMARY)
    create_pipeline(iam, codepipeline, "release-pipeline")
    for n in range(150):
        local_aws.record_action_execution("release-pipeline", action_execution("e1", f"Action{n}"))

    first = codepipeline.list_action_executions(pipelineName="release-pipeline")
    pages = list(codepipeline.get_paginator("list_action_executions").paginate(pipelineName="release-pipeline"))

    assert len(first["actionExecutionDetails"]) == 100
    assert "nextToken" in first
    assert [len(page["actionExecutionDetails"]) for page in pages] == [100, 50]
    with pytest.raises(ClientError) as refused:
        codepipeline.list_action_executions(pipelineName="no-such-pipeline")
    assert error_code(refused) == "PipelineNotFoundException"
