"""release_pipeline.jobs: every CodePipeline invocation gets exactly one job result, whatever happens."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ReadTimeoutError

from local_aws import FakeLambdaContext, ReportedJobResult, job_results
from release_pipeline import artifacts, clients
from release_pipeline import jobs as jobs_module
from release_pipeline.errors import ArtifactError, BadInputError, ConfigurationError, PipelineError
from release_pipeline.jobs import (
    CONTINUATION_TOKEN_LIMIT,
    FAILURE_MESSAGE_LIMIT,
    OUTPUT_VARIABLES_LIMIT,
    SUMMARY_LIMIT,
    Job,
    JobResult,
    codepipeline_job,
)
from tests.support.events import continuation_of, job_id_of, load_event, load_function

if TYPE_CHECKING:
    from mypy_boto3_codepipeline import CodePipelineClient

pytestmark = pytest.mark.usefixtures("aws")

REGION = "us-east-1"
REQUEST_ID = "c0ffee00-1111-4222-8333-444455556666"
ARTIFACT_BUCKET = "release-pipeline-artifacts"
TEMPLATE_PATH = "infra/app.yaml"
# Unique markers, so a match in the logs can only be a leak of these credentials.
SECRET_ACCESS_KEY = "SECRET-ACCESS-KEY-do-not-log-7f3c9a1e"
SESSION_TOKEN = "SESSION-TOKEN-do-not-log-5d2b8e40"

Work = Callable[[Job, Any], JobResult]


@pytest.fixture
def context() -> FakeLambdaContext:
    return FakeLambdaContext("prepare-stage-artifact", aws_request_id=REQUEST_ID)


@pytest.fixture
def event() -> dict[str, Any]:
    return load_event("prepare-stage-artifact", "job")


def run(work: Work, event: dict[str, Any], context: FakeLambdaContext) -> dict[str, str]:
    return codepipeline_job(work)(event, context)


def returning(result: JobResult) -> Work:
    def work(job: Job, context: Any) -> JobResult:
        return result

    return work


def raising(error: BaseException) -> Work:
    def work(job: Job, context: Any) -> JobResult:
        raise error

    return work


def only_result(job_id: str) -> ReportedJobResult:
    """The one result CodePipeline received for ``job_id``; fails when there is none or more than one."""
    results = job_results(job_id)
    assert len(results) == 1, results
    assert results[0].accepted, results[0]
    return results[0]


def only_failure(job_id: str) -> ReportedJobResult:
    result = only_result(job_id)
    assert result.status == "Failed"
    assert result.failure_details is not None
    assert result.failure_details["externalExecutionId"] == REQUEST_ID
    return result


def failure_message(result: ReportedJobResult) -> str:
    assert result.failure_details is not None
    return str(result.failure_details["message"])


# ------------------------------------------------------------------------------------------ success


def test_final_success_records_output_variables_summary_and_request_id(
    event: dict[str, Any], context: FakeLambdaContext
) -> None:
    job_id = job_id_of(event)
    result = JobResult(summary="Stage stack prepared", output_variables={"HasChanges": "true", "Summary": "1 add"})

    returned = run(returning(result), event, context)

    recorded = only_result(job_id)
    assert recorded.status == "Succeeded"
    assert recorded.final
    assert recorded.continuation_token is None
    assert recorded.output_variables == {"HasChanges": "true", "Summary": "1 add"}
    assert recorded.execution_details == {"summary": "Stage stack prepared", "externalExecutionId": REQUEST_ID}
    assert recorded.failure_details is None
    assert returned == {"result": "succeeded", "summary": "Stage stack prepared"}


def test_success_without_output_variables_sends_none(event: dict[str, Any], context: FakeLambdaContext) -> None:
    run(returning(JobResult(summary="Nothing to publish")), event, context)

    recorded = only_result(job_id_of(event))
    assert recorded.status == "Succeeded"
    assert recorded.output_variables == {}


def test_long_summary_and_output_values_are_cut_to_codepipeline_limits(
    event: dict[str, Any], context: FakeLambdaContext
) -> None:
    result = JobResult(summary="s" * 3000, output_variables={"Summary": "v" * 5000})

    run(returning(result), event, context)

    recorded = only_result(job_id_of(event))
    assert recorded.status == "Succeeded"
    assert recorded.execution_details is not None
    assert len(recorded.execution_details["summary"]) == SUMMARY_LIMIT
    assert len(recorded.output_variables["Summary"]) == jobs_module.OUTPUT_VALUE_LIMIT
    assert recorded.output_variables["Summary"].endswith("…")


def test_continuation_records_the_token_and_no_output_variables(
    event: dict[str, Any], context: FakeLambdaContext
) -> None:
    """GIVEN a handler that must wait WHEN it returns a token THEN CodePipeline gets the token and no
    output variables (they belong on the final result only), and the re-invoked job reads the token."""
    token = {"phase": "detecting", "ids": ["a", "b"]}
    waiting = JobResult(
        summary="Waiting for drift detection",
        output_variables={"DriftStatus": "IN_PROGRESS"},
        continuation_token=json.dumps(token),
    )

    returned = run(returning(waiting), event, context)

    first = only_result(job_id_of(event))
    assert first.status == "Succeeded"
    assert not first.final
    assert first.continuation_token is not None
    assert json.loads(first.continuation_token) == token
    assert first.output_variables == {}
    assert first.execution_details == {"summary": "Waiting for drift detection", "externalExecutionId": REQUEST_ID}
    assert returned["result"] == "continue"

    again = continuation_of(event, first.continuation_token)
    seen: list[dict[str, Any] | None] = []

    def finish(job: Job, context: Any) -> JobResult:
        seen.append(job.continuation_token)
        return JobResult(summary="Done", output_variables={"DriftStatus": "IN_SYNC"})

    run(finish, again, context)

    assert seen == [token]
    final = only_result(job_id_of(again))
    assert final.final
    assert final.output_variables == {"DriftStatus": "IN_SYNC"}
    assert len(job_results(job_id_of(event))) == 1  # the first job got nothing more


def test_keep_waiting_builds_a_compact_json_token(event: dict[str, Any], context: FakeLambdaContext) -> None:
    run(returning(JobResult.keep_waiting({"n": 1}, "Still waiting")), event, context)

    recorded = only_result(job_id_of(event))
    assert recorded.continuation_token == '{"n":1}'
    assert not recorded.final


def test_a_token_over_codepipelines_limit_fails_the_job_naming_its_size(
    event: dict[str, Any], context: FakeLambdaContext
) -> None:
    """GIVEN a continuation token of 2,049 characters THEN the job fails saying so (CodePipeline would
    refuse the token), and no continuation is recorded."""
    at_limit = {"t": "x" * (CONTINUATION_TOKEN_LIMIT - len('{"t":""}'))}
    assert len(JobResult.keep_waiting(at_limit, "waiting").continuation_token or "") == CONTINUATION_TOKEN_LIMIT

    def work(job: Job, context: Any) -> JobResult:
        return JobResult.keep_waiting({"t": at_limit["t"] + "x"}, "waiting")

    run(work, event, context)

    message = failure_message(only_failure(job_id_of(event)))
    assert message == "The continuation token is 2049 characters, over CodePipeline's 2048"


# ------------------------------------------------------------------------------------------ failures


def test_pipeline_error_fails_the_job_with_its_message_and_type(
    event: dict[str, Any], context: FakeLambdaContext
) -> None:
    returned = run(raising(ArtifactError("The source artifact has no file 'infra/app.yaml'")), event, context)

    recorded = only_failure(job_id_of(event))
    assert recorded.failure_details is not None
    assert recorded.failure_details["type"] == "JobFailed"
    assert failure_message(recorded) == "The source artifact has no file 'infra/app.yaml'"
    assert returned["result"] == "failed"


def test_configuration_error_fails_the_job_as_a_configuration_error(
    event: dict[str, Any], context: FakeLambdaContext
) -> None:
    run(raising(ConfigurationError("TOPIC_ARN is not set")), event, context)

    recorded = only_failure(job_id_of(event))
    assert recorded.failure_details is not None
    assert recorded.failure_details["type"] == "ConfigurationError"
    assert failure_message(recorded) == "TOPIC_ARN is not set"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (KeyError("StackId"), "Unexpected KeyError: 'StackId'"),
        (ValueError("invalid literal for int()"), "Unexpected ValueError: invalid literal for int()"),
        (TypeError("'NoneType' object is not subscriptable"), "Unexpected TypeError: "),
    ],
)
def test_unexpected_exception_fails_the_job_naming_the_exception(
    event: dict[str, Any], context: FakeLambdaContext, error: Exception, expected: str
) -> None:
    """GIVEN a handler bug (not a PipelineError) THEN the job still fails, naming the exception: the
    pipeline never hangs for want of a result."""
    returned = run(raising(error), event, context)

    recorded = only_failure(job_id_of(event))
    assert failure_message(recorded).startswith(expected)
    assert returned["result"] == "failed"


def test_failure_message_is_cut_to_5000_characters(event: dict[str, Any], context: FakeLambdaContext) -> None:
    run(raising(PipelineError("x" * 7000)), event, context)

    message = failure_message(only_failure(job_id_of(event)))
    assert len(message) == FAILURE_MESSAGE_LIMIT == 5000
    assert message.endswith("…")


def test_error_without_a_message_still_fails_the_job(event: dict[str, Any], context: FakeLambdaContext) -> None:
    """CodePipeline refuses an empty failure message; the job must still get its one failure."""
    run(raising(PipelineError()), event, context)

    assert failure_message(only_failure(job_id_of(event))).strip()


# ------------------------------------------------------------------------------------ malformed events


def test_malformed_event_with_a_job_id_fails_the_job(
    monkeypatch: pytest.MonkeyPatch, context: FakeLambdaContext
) -> None:
    """GIVEN the real prepare-stage-artifact handler and a job with no artifacts, credentials or key THEN the
    job fails with a message naming what is missing, and nothing is written."""
    set_prepare_stage_artifact_env(monkeypatch)
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=ARTIFACT_BUCKET)
    event = load_event("prepare-stage-artifact", "malformed")

    load_function("prepare-stage-artifact").lambda_handler(event, context)

    message = failure_message(only_failure(job_id_of(event)))
    assert message in {
        "The job event has no artifact credentials",
        "The job has no input artifact named 'SourceOutput' (it has: none)",
    }
    assert s3.list_objects_v2(Bucket=ARTIFACT_BUCKET).get("KeyCount") == 0


def test_missing_configuration_fails_the_real_handler_as_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, context: FakeLambdaContext
) -> None:
    """GIVEN prepare-stage-artifact deployed without its environment THEN the job fails (not hangs) as a
    ConfigurationError naming every missing variable."""
    event = load_event("prepare-stage-artifact", "job")

    load_function("prepare-stage-artifact").lambda_handler(event, context)

    recorded = only_failure(job_id_of(event))
    assert recorded.failure_details is not None
    assert recorded.failure_details["type"] == "ConfigurationError"
    for name in ("RELEASE_RECORD_PARAMETER", "STAGE_PARAMETERS", "TEMPLATE_PATH"):
        assert f"{name} is not set" in failure_message(recorded)


def test_event_without_data_fails_the_job(context: FakeLambdaContext) -> None:
    event = {"CodePipeline.job": {"id": "a1b2c3d4-0009-4000-8000-000000000009", "accountId": "123456789012"}}

    run(returning(JobResult(summary="never")), event, context)

    message = failure_message(only_failure("a1b2c3d4-0009-4000-8000-000000000009"))
    assert "CodePipeline.job.data is missing" in message


def test_missing_input_artifact_fails_the_job_naming_it(
    monkeypatch: pytest.MonkeyPatch, context: FakeLambdaContext
) -> None:
    set_prepare_stage_artifact_env(monkeypatch)
    event = load_event("prepare-stage-artifact", "missing-input-artifact")

    load_function("prepare-stage-artifact").lambda_handler(event, context)

    message = failure_message(only_failure(job_id_of(event)))
    assert "no input artifact named 'SourceOutput'" in message


@pytest.mark.parametrize(
    "bad_event",
    [
        {},
        {"CodePipeline.job": {}},
        {"CodePipeline.job": {"id": ""}},
        {"CodePipeline.job": "a1b2c3d4-0001-4000-8000-000000000001"},
        load_event("stage-revert", "stage-failed"),
    ],
    ids=["empty", "no-id", "empty-id", "job-not-an-object", "eventbridge-event"],
)
def test_event_without_a_job_id_raises_and_records_no_result(
    monkeypatch: pytest.MonkeyPatch, context: FakeLambdaContext, bad_event: dict[str, Any]
) -> None:
    """Without a job id there is no job to fail: the handler raises BadInputError and calls nothing."""
    set_prepare_stage_artifact_env(monkeypatch)
    handler = load_function("prepare-stage-artifact").lambda_handler

    with pytest.raises(BadInputError, match=r"CodePipeline\.job\.id is missing"):
        handler(bad_event, context)

    assert job_results() == []


@pytest.mark.parametrize("bad_event", [None, [], "event", 7], ids=["null", "list", "string", "number"])
def test_event_that_is_not_an_object_is_bad_input_and_records_no_result(
    monkeypatch: pytest.MonkeyPatch, context: FakeLambdaContext, bad_event: Any
) -> None:
    set_prepare_stage_artifact_env(monkeypatch)
    handler = load_function("prepare-stage-artifact").lambda_handler

    with pytest.raises(BadInputError, match=r"the event is a \w+, not an object"):
        handler(bad_event, context)

    assert job_results() == []


@pytest.mark.parametrize("job_id", ["job-1", "A1B2C3D4-0001-4000-8000-000000000001", "a1b2c3d4" * 40])
def test_job_id_that_is_not_a_uuid_is_refused_before_any_work(
    monkeypatch: pytest.MonkeyPatch, context: FakeLambdaContext, job_id: str
) -> None:
    """GIVEN a job id CodePipeline would refuse a result for THEN the handler raises BadInputError naming
    it, and neither reads nor writes anything (the artifacts it names are never fetched)."""
    set_prepare_stage_artifact_env(monkeypatch)
    event = load_event("prepare-stage-artifact", "job")
    event["CodePipeline.job"]["id"] = job_id
    ran: list[str] = []
    monkeypatch.setattr(artifacts, "download", lambda *args, **kwargs: ran.append("download"))

    with pytest.raises(BadInputError, match=r"CodePipeline\.job\.id is not a job id"):
        load_function("prepare-stage-artifact").lambda_handler(event, context)

    assert ran == []
    assert job_results() == []


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        (("actionConfiguration",), "x", "actionConfiguration.configuration"),
        (("actionConfiguration", "configuration", "UserParameters"), ["x"], "UserParameters"),
        (("continuationToken",), 5, "continuation token"),
        (("outputArtifacts", 0, "location", "s3Location", "objectKey"), None, "bucketName, objectKey"),
        (("outputArtifacts", 0, "name"), 7, "no output artifact named 'StageSource'"),
        (("artifactCredentials", "sessionToken"), 1, "artifact credentials"),
        (("encryptionKey",), "key", "encryptionKey"),
    ],
)
def test_a_field_of_the_wrong_type_is_one_failure_that_names_it(
    event: dict[str, Any], context: FakeLambdaContext, path: tuple[Any, ...], value: Any, named: str
) -> None:
    """GIVEN a job event whose field has the wrong type THEN the job fails once, naming the field, never
    with a bare Python error."""
    node: Any = event["CodePipeline.job"]["data"]
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value

    def work(job: Job, ctx: Any) -> JobResult:
        job.user_parameters, job.continuation_token, job.artifact_credentials, job.encryption_key_id  # noqa: B018
        job.output_artifact("StageSource")
        return JobResult(summary="never")

    run(work, event, context)

    message = failure_message(only_failure(job_id_of(event)))
    assert named in message
    assert not message.startswith("Unexpected")


@pytest.mark.parametrize("count", ['"many"', "-1", "true", "1.5", "99999999"])
def test_a_count_in_the_continuation_token_is_checked(
    event: dict[str, Any], context: FakeLambdaContext, count: str
) -> None:
    again = continuation_of(event, '{"polls": ' + count + "}")

    run(lambda job, ctx: JobResult(summary=str(job.token_count("polls"))), again, context)

    assert "continuation token holds no valid polls count" in failure_message(only_failure(job_id_of(again)))


def test_a_count_in_the_continuation_token_is_read(event: dict[str, Any], context: FakeLambdaContext) -> None:
    again = continuation_of(event, '{"polls": 3}')

    run(lambda job, ctx: JobResult(summary=f"polls {job.token_count('polls')}"), again, context)

    assert only_result(job_id_of(again)).status == "Succeeded"
    assert job_results(job_id_of(again))[0].execution_details == {
        "summary": "polls 3",
        "externalExecutionId": REQUEST_ID,
    }


def test_invalid_user_parameters_and_token_are_bad_input(event: dict[str, Any], context: FakeLambdaContext) -> None:
    event["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"]["UserParameters"] = "{not json"

    run(lambda job, ctx: JobResult(summary=str(job.user_parameters)), event, context)

    assert "UserParameters are not valid JSON" in failure_message(only_failure(job_id_of(event)))

    again = continuation_of(event, "[1, 2]")
    run(lambda job, ctx: JobResult(summary=str(job.continuation_token)), again, context)

    assert "continuation token is not a JSON object" in failure_message(only_failure(job_id_of(again)))


# ---------------------------------------------------------------------------- CodePipeline refuses


def test_output_variables_over_the_size_limit_give_exactly_one_failure(
    event: dict[str, Any], context: FakeLambdaContext
) -> None:
    """GIVEN output variables over 122,880 bytes THEN the job fails once, saying so; no success is sent."""
    variables = {f"Variable{i:03d}": "v" * 800 for i in range(200)}

    run(returning(JobResult(summary="big", output_variables=variables)), event, context)

    recorded = only_failure(job_id_of(event))
    assert f"over CodePipeline's {OUTPUT_VARIABLES_LIMIT}" in failure_message(recorded)
    assert not any(r.status == "Succeeded" for r in job_results())


def test_success_rejected_by_codepipeline_becomes_exactly_one_failure(
    event: dict[str, Any], context: FakeLambdaContext
) -> None:
    """GIVEN CodePipeline rejects PutJobSuccessResult (an output variable name it does not accept) THEN
    the job gets one accepted result, a failure that names the rejection."""
    job_id = job_id_of(event)

    returned = run(returning(JobResult(summary="ok", output_variables={"Has Changes": "true"})), event, context)

    results = job_results(job_id)
    accepted = [r for r in results if r.accepted]
    assert len(accepted) == 1
    assert accepted[0].status == "Failed"
    assert "Could not report the job's success" in failure_message(accepted[0])
    assert "ValidationException" in failure_message(accepted[0])
    assert [(r.status, r.error) for r in results] == [("Succeeded", "ValidationException"), ("Failed", None)]
    assert returned["result"] == "failed"


def test_success_that_cannot_be_sent_becomes_exactly_one_failure(
    event: dict[str, Any], context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN PutJobSuccessResult times out on every attempt (a BotoCoreError, not a ClientError) THEN a
    failure is still reported, once, naming the timeout: the action never waits for CodePipeline's own
    timeout."""
    real = clients.codepipeline

    def timing_out(region: str) -> CodePipelineClient:
        client = real(region)

        def refuse(**_: Any) -> None:
            raise ReadTimeoutError(endpoint_url=f"https://codepipeline.{region}.amazonaws.com/")

        monkeypatch.setattr(client, "put_job_success_result", refuse)
        return client

    monkeypatch.setattr(clients, "codepipeline", timing_out)

    returned = run(returning(JobResult(summary="ok")), event, context)

    recorded = only_failure(job_id_of(event))
    assert "Could not report the job's success" in failure_message(recorded)
    assert "Read timeout" in failure_message(recorded)
    assert returned["result"] == "failed"


def test_empty_summary_still_reports_success(event: dict[str, Any], context: FakeLambdaContext) -> None:
    """CodePipeline refuses an empty summary; a job whose work succeeded must not fail for it."""
    run(returning(JobResult(summary="  ", output_variables={"HasChanges": "false"})), event, context)

    recorded = only_result(job_id_of(event))
    assert recorded.status == "Succeeded"
    assert recorded.output_variables == {"HasChanges": "false"}
    assert recorded.execution_details is not None
    assert recorded.execution_details["summary"].strip()


def test_success_refused_before_sending_becomes_exactly_one_failure(
    event: dict[str, Any], context: FakeLambdaContext
) -> None:
    """GIVEN a result botocore refuses to send (an empty continuation token) THEN the job fails once."""
    run(returning(JobResult(summary="waiting", continuation_token="")), event, context)

    recorded = only_failure(job_id_of(event))
    assert "Could not report the job's success" in failure_message(recorded)
    assert "continuationToken" in failure_message(recorded)


@pytest.mark.parametrize(
    "work",
    [returning(JobResult(summary="late success")), raising(PipelineError("late failure"))],
    ids=["success", "failure"],
)
def test_job_that_already_has_a_result_gets_no_second_one(
    event: dict[str, Any], context: FakeLambdaContext, work: Work
) -> None:
    """GIVEN a job that already has a result (a retried invocation) THEN the handler neither raises nor
    changes the result CodePipeline has."""
    job_id = job_id_of(event)
    pipeline: CodePipelineClient = boto3.client("codepipeline", region_name=REGION)
    pipeline.put_job_success_result(jobId=job_id, executionDetails={"summary": "first", "externalExecutionId": "x"})

    returned = run(work, event, context)

    assert returned["result"] == "already-reported"
    results = job_results(job_id)
    assert [r for r in results if r.accepted] == results[:1]
    assert results[0].execution_details == {"summary": "first", "externalExecutionId": "x"}
    assert all(r.error == "InvalidJobStateException" for r in results[1:])
    assert len(results) == 2


# ------------------------------------------------------------------------------------- execution id


@pytest.mark.parametrize(
    "value",
    ["0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9", "a", "A" * 100],
)
def test_execution_id_is_accepted(event: dict[str, Any], value: str) -> None:
    with_user_parameters(event, {"executionId": value, "commitId": "abc"})

    assert Job(event).execution_id == value


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "#{codepipeline.PipelineExecutionId}",
        "-starts-with-a-dash",
        "has space",
        "../../etc",
        "a/b",
        "A" * 101,
        "0f1e2d3c\n",
        42,
        ["0f1e2d3c"],
    ],
    ids=[
        "missing",
        "empty",
        "unresolved-variable",
        "leading-dash",
        "space",
        "dots",
        "slash",
        "too-long",
        "newline",
        "number",
        "list",
    ],
)
def test_bad_execution_id_is_bad_input(event: dict[str, Any], value: object) -> None:
    with_user_parameters(event, {} if value is None else {"executionId": value})

    with pytest.raises(BadInputError) as error:
        _ = Job(event).execution_id

    assert "UserParameters.executionId must be the pipeline execution id" in str(error.value)
    assert not isinstance(error.value, ConfigurationError)


def with_user_parameters(event: dict[str, Any], parameters: dict[str, object]) -> None:
    configuration = event["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"]
    configuration["UserParameters"] = json.dumps(parameters)


# ------------------------------------------------------------------------------------- credentials


def test_credentials_repr_is_redacted(event: dict[str, Any]) -> None:
    event["CodePipeline.job"]["data"]["artifactCredentials"].update(
        secretAccessKey=SECRET_ACCESS_KEY, sessionToken=SESSION_TOKEN
    )

    credentials = Job(event).artifact_credentials

    assert credentials.secret_access_key == SECRET_ACCESS_KEY
    assert credentials.session_token == SESSION_TOKEN
    for text in (repr(credentials), str(credentials), f"{credentials!r} {[credentials]}"):
        assert SECRET_ACCESS_KEY not in text
        assert SESSION_TOKEN not in text
        assert "redacted" in text
    assert not hasattr(credentials, "__dict__")  # no vars() that would print the secrets


def test_encryption_key_is_read_only_when_it_is_kms(event: dict[str, Any]) -> None:
    assert Job(event).encryption_key_id == event["CodePipeline.job"]["data"]["encryptionKey"]["id"]

    del event["CodePipeline.job"]["data"]["encryptionKey"]

    assert Job(event).encryption_key_id is None


class LogCapture:
    """What the Powertools loggers print (their stdout handlers redirected to ``stream``) and every
    record that reaches the root logger at DEBUG (through caplog), with all its attributes."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.stream = io.StringIO()
        self._caplog = caplog
        caplog.set_level(logging.DEBUG)

    def redirect(self, monkeypatch: pytest.MonkeyPatch, *powertools_loggers: Any) -> None:
        for powertools_logger in powertools_loggers:
            for handler in powertools_logger.handlers:
                if isinstance(handler, logging.StreamHandler):
                    monkeypatch.setattr(handler, "stream", self.stream)

    def text(self) -> str:
        return self.stream.getvalue() + "\n".join(str(vars(record)) for record in self._caplog.records)


def put_source(files: dict[str, bytes], key: str) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=ARTIFACT_BUCKET)
    s3.put_object(Bucket=ARTIFACT_BUCKET, Key=key, Body=artifacts.build_zip(files))


@pytest.mark.parametrize("outcome", ["success", "artifact-error", "unexpected-error"])
def test_artifact_credentials_never_reach_the_logs(
    monkeypatch: pytest.MonkeyPatch,
    context: FakeLambdaContext,
    caplog: pytest.LogCaptureFixture,
    outcome: str,
) -> None:
    """GIVEN the real prepare-stage-artifact handler at DEBUG, asked to log events (POWERTOOLS_LOGGER_LOG_EVENT),
    WHEN it succeeds, fails or crashes THEN neither the secret key nor the session token is logged."""
    set_prepare_stage_artifact_env(monkeypatch)
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")
    event = load_event("prepare-stage-artifact", "job")
    data = event["CodePipeline.job"]["data"]
    data["artifactCredentials"].update(secretAccessKey=SECRET_ACCESS_KEY, sessionToken=SESSION_TOKEN)
    source_key = data["inputArtifacts"][0]["location"]["s3Location"]["objectKey"]
    if outcome == "artifact-error":
        put_source({"README.md": b"no template here"}, source_key)
    else:
        put_source({TEMPLATE_PATH: b"Resources: {}\n"}, source_key)
    module = load_function("prepare-stage-artifact")
    logs = LogCapture(caplog)
    logs.redirect(monkeypatch, jobs_module.logger, module.logger)
    if outcome == "unexpected-error":

        def crash(*args: Any, **kwargs: Any) -> None:
            raise KeyError("StageSource")

        monkeypatch.setattr(artifacts, "upload", crash)

    module.lambda_handler(event, context)

    recorded = only_result(job_id_of(event))
    assert recorded.status == ("Succeeded" if outcome == "success" else "Failed")
    text = logs.text()
    assert job_id_of(event) in logs.stream.getvalue()  # the capture works: Powertools logged the job
    assert SECRET_ACCESS_KEY not in text
    assert SESSION_TOKEN not in text


def set_prepare_stage_artifact_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "POWERTOOLS_SERVICE_NAME": "prepare-stage-artifact",
        "RELEASE_RECORD_PARAMETER": "/release-pipeline/release/5b7e9a10-3c2d-4f10-9a4e-0a1b2c3d4e5f/record",
        "STAGE_PARAMETERS": '{"Env": "stage"}',
        "TEMPLATE_PATH": TEMPLATE_PATH,
    }.items():
        monkeypatch.setenv(name, value)


# ------------------------------------------------------------------------------------------ timeout


@pytest.mark.usefixtures("aws")
def test_a_job_still_running_near_the_lambda_timeout_is_failed_once(event: dict[str, Any]) -> None:
    """GIVEN 11 s left (the job is failed 10 s before the end) and work that takes longer than the
    one second that leaves WHEN the work finally succeeds THEN CodePipeline has exactly one result, the
    failure, and the late success was refused, not recorded as a second result."""
    context = FakeLambdaContext("prepare-stage-artifact", aws_request_id=REQUEST_ID, timeout_ms=11_000)

    def slow(job: Job, context: Any) -> JobResult:
        time.sleep(1.6)
        return JobResult(summary="too late")

    outcome = run(slow, event, context)

    job_id = job_id_of(event)
    accepted = [r for r in job_results(job_id) if r.accepted]
    assert [r.status for r in accepted] == ["Failed"]
    assert "ran out of time" in failure_message(accepted[0])
    assert outcome["result"] == "already-reported"


@pytest.mark.usefixtures("aws")
def test_a_job_that_finishes_in_time_leaves_no_timer_behind(event: dict[str, Any]) -> None:
    context = FakeLambdaContext("prepare-stage-artifact", aws_request_id=REQUEST_ID, timeout_ms=11_000)
    run(returning(JobResult(summary="done")), event, context)
    time.sleep(1.3)

    assert only_result(job_id_of(event)).status == "Succeeded"


@pytest.mark.usefixtures("aws")
def test_output_variables_of_the_wrong_type_still_give_exactly_one_failure(
    event: dict[str, Any], context: FakeLambdaContext
) -> None:
    bad: Any = {"Count": 3}

    run(returning(JobResult(summary="done", output_variables=bad)), event, context)

    assert "Output variables cannot be reported" in failure_message(only_failure(job_id_of(event)))
