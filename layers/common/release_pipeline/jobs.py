"""One way to run a CodePipeline job: exactly one result for every invocation.

The :func:`codepipeline_job` decorator wraps a handler that returns a :class:`JobResult` or raises.
It reports ``PutJobSuccessResult`` (final, or with a continuation token) or ``PutJobFailureResult``
whatever happens: typed pipeline errors, unexpected exceptions and malformed events included. A job
left without a result hangs the pipeline for 20 minutes.
"""

from __future__ import annotations

import functools
import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes.code_pipeline_job_event import (
    CodePipelineArtifact,
    CodePipelineJobEvent,
)
from botocore.exceptions import BotoCoreError, ClientError

from release_pipeline import clients, config
from release_pipeline.errors import ArtifactError, BadInputError, PipelineError, error_code
from release_pipeline.values import Credentials, S3Location, shorten

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_codepipeline import CodePipelineClient
    from mypy_boto3_codepipeline.type_defs import ExecutionDetailsTypeDef

logger = Logger()

# CodePipeline's limits: a failure message of 5,000 characters, an execution summary of 2,048, and
# output variables of 122,880 bytes in all. Values are kept short enough to be shown in an approval's
# CustomData (1,000 characters for the whole field), which shows a Summary variable of each job.
FAILURE_MESSAGE_LIMIT = 5000
SUMMARY_LIMIT = 2048
OUTPUT_VALUE_LIMIT = 800
OUTPUT_VARIABLES_LIMIT = 122_880
SUMMARY_VARIABLE_LIMIT = 300
# PutJobSuccessResult takes a continuationToken of 1 to 2,048 characters:
# https://docs.aws.amazon.com/codepipeline/latest/APIReference/API_PutJobSuccessResult.html
CONTINUATION_TOKEN_LIMIT = 2048
# The largest count a continuation token may carry: each re-invocation adds one, and no action of this
# pipeline waits anywhere near this many times (a larger count is not one this code wrote).
MAX_TOKEN_COUNT = 20_160
# CodePipeline's job ids (the jobId pattern of PutJobSuccessResult and PutJobFailureResult).
_JOB_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# How long before Lambda's timeout a job still running is failed, so it never ends without a result.
TIMEOUT_GRACE_SECONDS = 10
# The pipeline's source artifact: the application repository at the commit being released.
SOURCE_ARTIFACT = "SourceOutput"
_EXECUTION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,99}")


@dataclass(frozen=True)
class JobResult:
    """What a job handler returns: a final result, or a continuation to be re-invoked with."""

    summary: str
    output_variables: Mapping[str, str] = field(default_factory=dict)
    continuation_token: str | None = None

    @classmethod
    def keep_waiting(cls, token: Mapping[str, Any], summary: str) -> JobResult:
        """A continuation with ``token`` as compact JSON; a token CodePipeline would refuse fails the job here,
        with its size, instead of as a refused result."""
        text = json.dumps(token, separators=(",", ":"))
        if len(text) > CONTINUATION_TOKEN_LIMIT:
            raise PipelineError(
                f"The continuation token is {len(text)} characters, over CodePipeline's {CONTINUATION_TOKEN_LIMIT}"
            )
        return cls(summary=summary, continuation_token=text)


class Job:
    """A CodePipeline job event, read through Powertools' :class:`CodePipelineJobEvent`, with the lookups
    the functions need, each failing with a :class:`BadInputError` that names the missing field."""

    def __init__(self, event: Mapping[str, Any]) -> None:
        job = event.get("CodePipeline.job")
        if not isinstance(job, Mapping) or not isinstance(job.get("data"), Mapping):
            raise BadInputError("The event is not a CodePipeline job event (CodePipeline.job.data is missing)")
        self._event = CodePipelineJobEvent(dict(event))

    @property
    def id(self) -> str:
        return self._event.get_id

    @property
    def continuation_token(self) -> dict[str, Any] | None:
        raw = self._event.data.continuation_token
        if raw is not None and not isinstance(raw, str):
            raise BadInputError("The job's continuation token is not a string")
        if not raw:
            return None
        try:
            token = json.loads(raw)
        except json.JSONDecodeError:
            raise BadInputError("The job's continuation token is not valid JSON") from None
        if not isinstance(token, dict):
            raise BadInputError("The job's continuation token is not a JSON object")
        return token

    def token_count(self, name: str) -> int:
        """A count kept in the continuation token (0 on the first invocation), checked: a whole number from
        0 to MAX_TOKEN_COUNT."""
        value = (self.continuation_token or {}).get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOKEN_COUNT:
            raise BadInputError(f"The job's continuation token holds no valid {name} count: {shorten(repr(value), 60)}")
        return value

    @property
    def user_parameters(self) -> dict[str, Any]:
        try:
            raw = self._event.user_parameters
        except (KeyError, TypeError, AttributeError):
            raise BadInputError("The job has no actionConfiguration.configuration object") from None
        if raw is not None and not isinstance(raw, str):
            raise BadInputError("The action's UserParameters must be a string of JSON")
        if not raw:
            return {}
        try:
            value = self._event.decoded_user_parameters
        except json.JSONDecodeError as error:
            raise BadInputError(f"The action's UserParameters are not valid JSON: {error.msg}") from None
        if not isinstance(value, dict):
            raise BadInputError("The action's UserParameters must be a JSON object")
        return value

    @property
    def execution_id(self) -> str:
        """The pipeline execution id the action passes as UserParameters.executionId."""
        value = self.user_parameters.get("executionId")
        if not isinstance(value, str) or not _EXECUTION_ID.fullmatch(value):
            raise BadInputError(
                "UserParameters.executionId must be the pipeline execution id "
                f"(#{{codepipeline.PipelineExecutionId}}); got {shorten(repr(value), 120)}"
            )
        return value

    def _artifact(self, kind: str, name: str) -> CodePipelineArtifact:
        data = self._event.data
        try:
            artifacts = data.input_artifacts if kind == "input" else data.output_artifacts
            names = [artifact.get("name") for artifact in artifacts]
        except (KeyError, TypeError, AttributeError):  # no list of artifacts, or one that is not an object
            artifacts, names = [], []
        for artifact, artifact_name in zip(artifacts, names, strict=True):
            if artifact_name == name:
                return artifact
        present = ", ".join(sorted(n for n in names if isinstance(n, str))) or "none"
        raise ArtifactError(f"The job has no {kind} artifact named {name!r} (it has: {present})")

    def _location(self, kind: str, name: str) -> S3Location:
        artifact = self._artifact(kind, name)
        bucket: object = None
        key: object = None
        try:
            location = artifact.location.s3_location
            bucket, key = location.bucket_name, location.get("objectKey")
        except (KeyError, TypeError, AttributeError):
            pass
        if not (isinstance(bucket, str) and bucket and isinstance(key, str) and key):
            raise ArtifactError(f"The {kind} artifact {name!r} has no S3 location (bucketName, objectKey)")
        return S3Location(bucket=bucket, key=artifact.location.s3_location.object_key)

    def input_artifact(self, name: str) -> S3Location:
        return self._location("input", name)

    def input_revision(self, name: str) -> str | None:
        revision = self._artifact("input", name).get("revision")
        if revision is not None and not isinstance(revision, str):
            raise ArtifactError(f"The input artifact {name!r} has a revision that is not text")
        return revision

    def output_artifact(self, name: str) -> S3Location:
        return self._location("output", name)

    @property
    def artifact_credentials(self) -> Credentials:
        values: tuple[object, ...] = ()
        try:
            raw = self._event.data.artifact_credentials
            values = (raw.access_key_id, raw.secret_access_key, raw.session_token)
        except (KeyError, TypeError, AttributeError):
            pass
        strings = [value for value in values if isinstance(value, str)]
        if len(strings) != 3:
            raise BadInputError("The job event has no artifact credentials")
        return Credentials(*strings)

    @property
    def encryption_key_id(self) -> str | None:
        try:
            key = self._event.data.encryption_key
            values = (key.get("id"), key.get("type")) if key is not None else None
        except (TypeError, AttributeError):
            values = (None, None)
        if values is None:
            return None
        key_id, key_type = values
        if not isinstance(key_id, str) or not isinstance(key_type, str):
            raise BadInputError("The job's encryptionKey must be an object with a string id and type")
        return key_id if key_type == "KMS" else None


Handler = Callable[[Job, "LambdaContext"], JobResult]


def codepipeline_job(work: Handler) -> Callable[[dict[str, Any], LambdaContext], dict[str, str]]:
    """Decorate a job handler so that every invocation reports exactly one job result."""

    @functools.wraps(work)
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
        # Without a job id there is nothing CodePipeline could be told: refuse the event, loudly, before
        # any work (CodePipeline would refuse a result for an id that is not one).
        job_id = _job_id(event)
        logger.append_keys(job_id=job_id)
        pipeline = clients.codepipeline(config.home_region())
        deadline = _report_before_timeout(pipeline, job_id, context)
        try:
            result = work(Job(event), context)
        except PipelineError as error:
            logger.warning("Job failed", extra={"failure_type": error.failure_type, "reason": str(error)})
            return report_failure(pipeline, job_id, context, str(error), error.failure_type)
        except Exception as error:
            logger.exception("Job failed with an unexpected error")
            return report_failure(pipeline, job_id, context, f"Unexpected {type(error).__name__}: {error}")
        finally:
            deadline.cancel()
        return report_success(pipeline, job_id, context, result)

    return handler


def _report_before_timeout(pipeline: CodePipelineClient, job_id: str, context: LambdaContext) -> threading.Timer:
    """A timer that fails the job shortly before Lambda would end the function without a result.

    Should the work still finish afterwards, its own result is refused by CodePipeline
    (InvalidJobStateException) and only logged: the job keeps exactly one result.
    """
    seconds = max(context.get_remaining_time_in_millis() / 1000 - TIMEOUT_GRACE_SECONDS, 1.0)

    def fail() -> None:
        logger.error("The function is about to time out; failing the job", extra={"seconds": seconds})
        report_failure(pipeline, job_id, context, f"The function ran out of time after {seconds:.0f} seconds")

    timer = threading.Timer(seconds, fail)
    timer.daemon = True
    timer.start()
    return timer


def _job_id(event: Any) -> str:
    """The event's job id; :class:`BadInputError` when the event is not an object or has no valid id."""
    if not isinstance(event, Mapping):
        logger.error("Not a CodePipeline job event", extra={"event_type": type(event).__name__})
        raise BadInputError(f"Not a CodePipeline job event: the event is a {type(event).__name__}, not an object")
    job = event.get("CodePipeline.job")
    job_id = job.get("id") if isinstance(job, Mapping) else None
    if not isinstance(job_id, str) or not job_id:
        logger.error("Not a CodePipeline job event: no CodePipeline.job.id", extra={"keys": sorted(map(str, event))})
        raise BadInputError("Not a CodePipeline job event: CodePipeline.job.id is missing")
    if not _JOB_ID.fullmatch(job_id):
        logger.error("Not a CodePipeline job id", extra={"job_id": job_id[:100]})
        raise BadInputError(f"CodePipeline.job.id is not a job id (a UUID): {shorten(job_id, 100)!r}")
    return job_id


def report_success(
    pipeline: CodePipelineClient, job_id: str, context: LambdaContext, result: JobResult
) -> dict[str, str]:
    details: ExecutionDetailsTypeDef = {
        # CodePipeline refuses an empty summary.
        "summary": shorten(result.summary.strip() or "Succeeded", SUMMARY_LIMIT),
        "externalExecutionId": context.aws_request_id,
    }
    try:
        variables = {} if result.continuation_token is not None else _output_variables(result.output_variables)
    except Exception as error:  # a malformed result is still one failure, never no result
        logger.exception("The job's output variables cannot be reported")
        return report_failure(pipeline, job_id, context, f"Output variables cannot be reported: {error}")
    try:
        if result.continuation_token is not None:
            pipeline.put_job_success_result(
                jobId=job_id, continuationToken=result.continuation_token, executionDetails=details
            )
            logger.info("Job continues", extra={"summary": result.summary})
            return {"result": "continue", "summary": result.summary}
        if variables:
            pipeline.put_job_success_result(jobId=job_id, executionDetails=details, outputVariables=variables)
        else:
            pipeline.put_job_success_result(jobId=job_id, executionDetails=details)
    except (ClientError, BotoCoreError) as error:  # a timeout or lost connection too: the job must not hang
        if isinstance(error, ClientError) and error_code(error) == "InvalidJobStateException":
            logger.warning("The job already has a result; not reporting another", extra={"error": str(error)})
            return {"result": "already-reported", "summary": result.summary}
        logger.exception("Could not report success; reporting a failure instead")
        return report_failure(pipeline, job_id, context, f"Could not report the job's success: {error}")
    logger.info("Job succeeded", extra={"summary": result.summary, "output_variables": variables})
    return {"result": "succeeded", "summary": result.summary}


def report_failure(
    pipeline: CodePipelineClient,
    job_id: str,
    context: LambdaContext,
    message: str,
    failure_type: str = "JobFailed",
) -> dict[str, str]:
    # CodePipeline refuses an empty message: a job must fail even when the error has none.
    message = shorten(message.strip() or "The job failed without an error message", FAILURE_MESSAGE_LIMIT)
    try:
        pipeline.put_job_failure_result(
            jobId=job_id,
            failureDetails={
                "type": failure_type,  # type: ignore[typeddict-item]
                "message": message,
                "externalExecutionId": context.aws_request_id,
            },
        )
    except ClientError as error:
        if error_code(error) != "InvalidJobStateException":
            raise
        logger.warning("The job already has a result; not reporting another", extra={"error": str(error)})
        return {"result": "already-reported", "message": message}
    except BotoCoreError:
        # Raise so that Lambda retries the asynchronous invocation: better twice than never.
        logger.exception("Could not report the job's failure")
        raise
    return {"result": "failed", "message": message}


def _output_variables(variables: Mapping[str, str]) -> dict[str, str]:
    shortened = {name: shorten(value, OUTPUT_VALUE_LIMIT) for name, value in variables.items()}
    size = sum(len(name.encode()) + len(value.encode()) for name, value in shortened.items())
    if size > OUTPUT_VARIABLES_LIMIT:
        raise PipelineError(f"Output variables take {size} bytes, over CodePipeline's {OUTPUT_VARIABLES_LIMIT}")
    return shortened
