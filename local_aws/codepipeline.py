"""CodePipeline: what a Lambda invoke action and the pipeline's own state need, and moto 5.2.5 lacks.

- ``PutJobSuccessResult`` and ``PutJobFailureResult``, validated as AWS does. Every call is recorded,
  accepted or not; read them with :func:`job_results`. A job accepts exactly one result: a second call
  for the same job id is rejected with ``InvalidJobStateException`` (a re-invocation after a
  continuation token is a new job with a new id, as in AWS).
- ``GetPipelineState``: the stages a test or the rehearsal set with :func:`set_stage_execution`.
- :func:`set_execution_status`: an execution's status, which moto sets to Succeeded at once, and its
  start time.

State (:class:`CodePipelineState`) is kept on ``codepipeline_backends[account][region]``.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

from moto.codepipeline.models import codepipeline_backends
from moto.codepipeline.responses import CodePipelineResponse
from moto.core.exceptions import ServiceException
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.core.utils import utcnow

from local_aws.core import LOCK, error, state_of

__all__ = [
    "OUTPUT_VARIABLES_MAX_BYTES",
    "RESPONSES",
    "CodePipelineState",
    "ReportedJobResult",
    "job_results",
    "set_execution_status",
    "set_stage_execution",
]

OUTPUT_VARIABLES_MAX_BYTES: Final = 122_880
_JOB_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_OUTPUT_VARIABLE_KEY = re.compile(r"[A-Za-z0-9@\-_]+")
_FAILURE_TYPES: Final = frozenset(
    {
        "JobFailed",
        "ConfigurationError",
        "PermissionError",
        "RevisionOutOfSync",
        "RevisionUnavailable",
        "SystemUnavailable",
    }
)
_EXECUTION_STATUSES: Final = frozenset(
    {"Cancelled", "InProgress", "Stopped", "Stopping", "Succeeded", "Superseded", "Failed"}
)


@dataclass(frozen=True)
class ReportedJobResult:
    """One PutJobSuccessResult or PutJobFailureResult call, as CodePipeline received it."""

    job_id: str
    status: Literal["Succeeded", "Failed"]
    continuation_token: str | None = None
    output_variables: dict[str, str] = field(default_factory=dict)
    execution_details: dict[str, Any] | None = None
    failure_details: dict[str, Any] | None = None
    current_revision: dict[str, Any] | None = None
    account_id: str = DEFAULT_ACCOUNT_ID
    region: str = "us-east-1"
    error: str | None = None
    """The error code CodePipeline answered with, or None when it accepted the result."""

    @property
    def accepted(self) -> bool:
        return self.error is None

    @property
    def final(self) -> bool:
        """True for a failure or for a success that carries no continuation token."""
        return self.status == "Failed" or self.continuation_token is None


@dataclass
class CodePipelineState:
    """The emulator's CodePipeline state in one account and Region."""

    jobs: list[tuple[int, ReportedJobResult]] = field(default_factory=list)
    """Every job result call received here, with its place among all calls in the process."""
    stage_states: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)
    """Pipeline name -> stage name -> (latest execution id, its status in that stage)."""
    action_executions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Pipeline name -> its action executions (ListActionExecutions' actionExecutionDetails), newest first."""


# Orders job result calls across accounts and Regions; a counter, not state: nothing reads its value.
_SEQUENCE: Final = itertools.count()


def _states(account_id: str | None = None, region: str | None = None) -> Iterator[CodePipelineState]:
    """The state of every CodePipeline backend moto holds now, optionally of one account or Region."""
    for account, per_account in list(codepipeline_backends.items()):
        if account_id not in (None, account):
            continue
        for backend_region, backend in list(per_account.items()):
            if region in (None, backend_region):
                yield state_of(backend, CodePipelineState)


def job_results(
    job_id: str | None = None, *, region: str | None = None, account_id: str | None = None
) -> list[ReportedJobResult]:
    """Every job result call received (accepted or rejected), oldest first, optionally filtered."""
    with LOCK:
        rows = [row for state in _states(account_id, region) for row in state.jobs]
    return [result for _, result in sorted(rows, key=lambda row: row[0]) if job_id in (None, result.job_id)]


def _check_length(value: Any, name: str, low: int, high: int) -> None:
    if value is not None and not low <= len(str(value)) <= high:
        raise error(
            "ValidationException",
            f"1 validation error detected: Value at '{name}' failed to satisfy constraint: "
            f"Member must have length between {low} and {high}",
        )


def _check_job_id(job_id: Any) -> str:
    if not isinstance(job_id, str) or not _JOB_ID.fullmatch(job_id):
        raise error(
            "ValidationException",
            f"1 validation error detected: Value '{job_id}' at 'jobId' failed to satisfy constraint: "
            f"Member must satisfy regular expression pattern: {_JOB_ID.pattern}",
        )
    return job_id


def _validate_success(params: Mapping[str, Any]) -> None:
    token = params.get("continuationToken")
    variables = params.get("outputVariables") or {}
    details = params.get("executionDetails") or {}
    _check_length(token, "continuationToken", 1, 2048)
    _check_length(details.get("summary"), "executionDetails.summary", 1, 2048)
    _check_length(details.get("externalExecutionId"), "executionDetails.externalExecutionId", 1, 1500)
    percent = details.get("percentComplete")
    if percent is not None and not 0 <= int(percent) <= 100:
        raise error("ValidationException", "executionDetails.percentComplete must be between 0 and 100")
    if token is not None and variables:
        raise error(
            "ValidationException",
            "outputVariables can be included only when there is no continuation token on the request.",
        )
    for key in variables:
        if not _OUTPUT_VARIABLE_KEY.fullmatch(str(key)):
            raise error(
                "ValidationException",
                f"1 validation error detected: Value '{key}' at 'outputVariables' failed to satisfy "
                f"constraint: Map keys must satisfy regular expression pattern: {_OUTPUT_VARIABLE_KEY.pattern}",
            )
    size = sum(len(str(k).encode()) + len(str(v).encode()) for k, v in variables.items())
    if size > OUTPUT_VARIABLES_MAX_BYTES:
        raise error(
            "OutputVariablesSizeExceededException",
            f"Output variables total {size} bytes; the limit is {OUTPUT_VARIABLES_MAX_BYTES} bytes.",
        )


def _validate_failure(params: Mapping[str, Any]) -> None:
    details = params.get("failureDetails") or {}
    if details.get("type") not in _FAILURE_TYPES:
        raise error(
            "ValidationException",
            f"1 validation error detected: Value '{details.get('type')}' at 'failureDetails.type' failed "
            f"to satisfy constraint: Member must satisfy enum value set: {sorted(_FAILURE_TYPES)}",
        )
    _check_length(details.get("message"), "failureDetails.message", 1, 5000)
    if details.get("message") is None:
        raise error("ValidationException", "failureDetails.message is required")
    _check_length(details.get("externalExecutionId"), "failureDetails.externalExecutionId", 1, 1500)


def _record_job_result(response: CodePipelineResponse, status: Literal["Succeeded", "Failed"]) -> str:
    params: dict[str, Any] = {
        key: response._get_param(key)
        for key in (
            "jobId",
            "continuationToken",
            "outputVariables",
            "executionDetails",
            "failureDetails",
            "currentRevision",
        )
    }
    job_id = params.get("jobId")
    result = ReportedJobResult(
        job_id=str(job_id),
        status=status,
        continuation_token=params.get("continuationToken"),
        output_variables={str(k): str(v) for k, v in (params.get("outputVariables") or {}).items()},
        execution_details=params.get("executionDetails"),
        failure_details=params.get("failureDetails"),
        current_revision=params.get("currentRevision"),
        account_id=response.current_account,
        region=response.region,
    )
    with LOCK:
        refused: ServiceException | None = None
        try:
            _check_job_id(job_id)
            if status == "Succeeded":
                _validate_success(params)
            else:
                _validate_failure(params)
            previous = next(
                (r for state in _states() for _, r in state.jobs if r.job_id == job_id and r.accepted),
                None,
            )
            if previous is not None:
                raise error(
                    "InvalidJobStateException",
                    f"Job {job_id} already has a result ({previous.status}); a job accepts one result only.",
                )
        except ServiceException as exc:
            refused = exc
            result = dataclasses.replace(result, error=exc.code)
        state_of(response.codepipeline_backend, CodePipelineState).jobs.append((next(_SEQUENCE), result))
    if refused is not None:
        raise refused
    return ""


def set_stage_execution(
    pipeline: str,
    stage: str,
    execution_id: str,
    status: str,
    *,
    region: str = "us-east-1",
    account_id: str = DEFAULT_ACCOUNT_ID,
) -> None:
    """Make ``execution_id`` the latest execution of ``stage`` with ``status`` (Failed, Stopped,
    InProgress, Succeeded...), as GetPipelineState then reports it."""
    with LOCK:
        state = state_of(codepipeline_backends[account_id][region], CodePipelineState)
        state.stage_states.setdefault(pipeline, {})[stage] = (execution_id, status)


def set_execution_status(
    pipeline: str,
    execution_id: str,
    status: str,
    *,
    started_at: datetime | None = None,
    region: str = "us-east-1",
    account_id: str = DEFAULT_ACCOUNT_ID,
) -> None:
    """Set an execution's status (InProgress, Succeeded, Failed, Stopped...) as ListPipelineExecutions
    and GetPipelineExecution report it; moto marks every execution Succeeded as soon as it starts. With
    ``started_at`` (timezone-aware), also its start time: moto stamps each start with the current time to
    the millisecond, so executions started one after another in a test can tie."""
    if started_at is not None and started_at.utcoffset() is None:
        raise ValueError("started_at must be timezone-aware")
    if status not in _EXECUTION_STATUSES:
        raise ValueError(f"status must be one of {sorted(_EXECUTION_STATUSES)}, not {status!r}")
    backend = codepipeline_backends[account_id][region]
    if pipeline not in backend.pipelines:
        raise ValueError(f"pipeline {pipeline} does not exist in {account_id}/{region}")
    execution = backend.pipelines[pipeline].executions.get(execution_id)
    if execution is None:
        raise ValueError(f"pipeline {pipeline} has no execution {execution_id}")
    execution.status = status
    if started_at is not None:
        # moto keeps naive UTC times (moto.core.utils.utcnow).
        execution.start_time = started_at.astimezone(UTC).replace(tzinfo=None)
    execution.last_update_time = max(utcnow(), execution.start_time)


def record_action_execution(
    pipeline: str,
    detail: Mapping[str, Any],
    *,
    region: str = "us-east-1",
    account_id: str = DEFAULT_ACCOUNT_ID,
) -> None:
    """Add one action execution (an ``ActionExecutionDetail``: pipelineExecutionId, stageName, actionName,
    status, input, output...) as ListActionExecutions then lists it, newest first."""
    with LOCK:
        state = state_of(codepipeline_backends[account_id][region], CodePipelineState)
        state.action_executions.setdefault(pipeline, []).insert(0, dict(detail))


# ListActionExecutions: at most 100 details a page (maxResults 1-100, default 100).
# https://docs.aws.amazon.com/codepipeline/latest/APIReference/API_ListActionExecutions.html
_ACTION_EXECUTIONS_PAGE: Final = 100


def list_action_executions(self: CodePipelineResponse) -> str:
    """ListActionExecutions: the action executions recorded with record_action_execution, newest first,
    filtered by ``filter.pipelineExecutionId``, a page of ``maxResults`` (at most 100) at a time."""
    name = self._get_param("pipelineName")
    if name not in self.codepipeline_backend.pipelines:
        raise error(
            "PipelineNotFoundException", f"Account '{self.current_account}' does not have a pipeline with name '{name}'"
        )
    wanted = (self._get_param("filter") or {}).get("pipelineExecutionId")
    size = int(self._get_param("maxResults") or _ACTION_EXECUTIONS_PAGE)
    if not 1 <= size <= _ACTION_EXECUTIONS_PAGE:
        raise error("ValidationException", f"maxResults must be from 1 to {_ACTION_EXECUTIONS_PAGE}")
    start = int(self._get_param("nextToken") or 0)
    with LOCK:
        details = list(state_of(self.codepipeline_backend, CodePipelineState).action_executions.get(name, []))
    matching = [d for d in details if wanted in (None, d.get("pipelineExecutionId"))]
    page = matching[start : start + size]
    answer: dict[str, Any] = {"actionExecutionDetails": page}
    if start + size < len(matching):
        answer["nextToken"] = str(start + size)
    return json.dumps(answer, default=lambda moment: moment.timestamp())


def get_pipeline_state(self: CodePipelineResponse) -> str:
    """GetPipelineState: the stages set with set_stage_execution, in the order they were set."""
    name = self._get_param("name")
    with LOCK:
        stages = dict(state_of(self.codepipeline_backend, CodePipelineState).stage_states.get(name, {}))
    if not stages:
        raise error(
            "PipelineNotFoundException", f"Account '{self.current_account}' does not have a pipeline with name '{name}'"
        )
    return json.dumps(
        {
            "pipelineName": name,
            "pipelineVersion": 1,
            "stageStates": [
                {"stageName": stage, "latestExecution": {"pipelineExecutionId": execution_id, "status": status}}
                for stage, (execution_id, status) in stages.items()
            ],
        }
    )


def put_job_success_result(self: CodePipelineResponse) -> str:
    return _record_job_result(self, "Succeeded")


def put_job_failure_result(self: CodePipelineResponse) -> str:
    return _record_job_result(self, "Failed")


RESPONSES: Final[dict[str, Callable[..., object]]] = {
    "put_job_success_result": put_job_success_result,
    "put_job_failure_result": put_job_failure_result,
    "get_pipeline_state": get_pipeline_state,
    "list_action_executions": list_action_executions,
}
"""What the emulator adds to ``CodePipelineResponse``, by method name."""
