"""What moto 5.2.5 lacks for this product, added to moto's response classes.

moto looks a response method up by name on every request, so a method set here on
``CodePipelineResponse`` or ``CloudFormationResponse`` is served in-process under ``mock_aws`` and by
a ``moto.server.ThreadedMotoServer`` started in the same process (a ``moto_server`` started as a
separate process knows nothing of it: use ``rehearsal.emulator.Emulator`` or ``make emulator``).

Added or replaced, in AWS's documented shapes (botocore's service model is the reference):

- CodePipeline ``PutJobSuccessResult`` and ``PutJobFailureResult``. Every call is recorded, accepted or
  not; read them with :func:`job_results`. A job accepts exactly one result: a second call for the
  same job id is rejected with ``InvalidJobStateException`` (a re-invocation after a continuation
  token is a new job with a new id, as in AWS).
- CloudFormation ``DetectStackDrift``, ``DescribeStackDriftDetectionStatus`` and
  ``DescribeStackResourceDrifts``; every resource is IN_SYNC unless a test calls
  :func:`inject_drift`.
- S3 bucket policies evaluated with ``aws:SecureTransport`` true, as for any SDK call to AWS (moto
  evaluates them without request context, so a TLS-only bucket would refuse everything).
- EventBridge ``TestEventPattern`` (moto 5.2.5 answers it with nothing), with moto's own matcher.
- CloudFormation change sets, replaced as a whole (``CreateChangeSet``, ``DescribeChangeSet``,
  ``ListChangeSets``, ``ExecuteChangeSet``, ``DeleteChangeSet``) because moto 5.2.5 raises "No updates
  are to be performed" for an unchanged UPDATE change set, defaults ChangeSetType to CREATE, creates
  a second stack of the same name for a CREATE change set on a REVIEW_IN_PROGRESS stack, looks change
  sets up by name across all stacks, and never updates a stack's parameters on execution.

Test state lives in this module, not in moto's backends: call :func:`reset` between tests (the
autouse fixture in ``tests/conftest.py`` does).
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

import moto
from moto import settings
from moto.cloudformation.exceptions import ValidationError
from moto.cloudformation.models import (
    ChangeSet,
    CloudFormationBackend,
    Stack,
    cloudformation_backends,
)
from moto.cloudformation.responses import CloudFormationResponse
from moto.cloudformation.utils import generate_changeset_id
from moto.codepipeline.models import codepipeline_backends
from moto.codepipeline.responses import CodePipelineResponse
from moto.core.common_types import TYPE_RESPONSE
from moto.core.exceptions import ServiceException
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.core.responses import ActionContext, ActionResult, EmptyResult
from moto.core.serialize import XFormedAttributePicker
from moto.core.utils import utcnow
from moto.events.models import EventPattern, EventPatternParser
from moto.events.responses import EventsHandler
from moto.iam.access_control import IAMPolicy, PermissionResult
from moto.s3.models import FakeBucket

__all__ = [
    "DRIFT_CHECKABLE_STATUSES",
    "MOTO_VERSION",
    "NO_CHANGES_REASON",
    "OUTPUT_VARIABLES_MAX_BYTES",
    "JobResult",
    "fail_change_set",
    "fail_detection",
    "inject_drift",
    "install",
    "job_results",
    "reset",
    "set_change_set_page_size",
    "set_detection_progress",
    "set_execution_status",
    "set_stage_execution",
]

MOTO_VERSION: Final = "5.2.5"
"""The moto version these extensions were written and verified against."""

NO_CHANGES_REASON: Final = (
    "The submitted information didn't contain changes. Submit different information to create a change set."
)
OUTPUT_VARIABLES_MAX_BYTES: Final = 122_880
DRIFT_CHECKABLE_STATUSES: Final = frozenset(
    {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "UPDATE_ROLLBACK_FAILED"}
)

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
_RESOURCE_DRIFT_STATUSES: Final = frozenset({"IN_SYNC", "MODIFIED", "DELETED", "NOT_CHECKED", "UNKNOWN", "UNSUPPORTED"})
_EXECUTION_STATUSES: Final = frozenset(
    {"Cancelled", "InProgress", "Stopped", "Stopping", "Succeeded", "Superseded", "Failed"}
)
_DRIFTED: Final = frozenset({"MODIFIED", "DELETED"})
_DIFFERENCE_TYPES: Final = frozenset({"ADD", "REMOVE", "NOT_EQUAL"})
_STACK_DRIFT_STATUSES: Final = frozenset({"DRIFTED", "IN_SYNC", "UNKNOWN", "NOT_CHECKED"})
_UPDATABLE_STATUSES: Final = frozenset(
    {
        "CREATE_COMPLETE",
        "UPDATE_COMPLETE",
        "UPDATE_ROLLBACK_COMPLETE",
        "IMPORT_COMPLETE",
        "IMPORT_ROLLBACK_COMPLETE",
    }
)
_CHANGE_SCOPES: Final = (
    "Properties",
    "Metadata",
    "CreationPolicy",
    "UpdatePolicy",
    "DeletionPolicy",
    "UpdateReplacePolicy",
    "Tags",
)


# --------------------------------------------------------------------------------------------------
# Test-side state
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobResult:
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


@dataclass(frozen=True)
class _InjectedDrift:
    status: str
    differences: tuple[dict[str, str], ...]


@dataclass(frozen=True)
class _DetectionFailure:
    reason: str
    stack_drift_status: str


@dataclass
class _Detection:
    detection_id: str
    stack_id: str
    stack_name: str
    polls_remaining: int
    failure: _DetectionFailure | None
    timestamp: datetime
    resource_drifts: list[dict[str, Any]]

    @property
    def finished(self) -> bool:
        return self.polls_remaining <= 0


@dataclass
class _ChangeSetExtras:
    """What this module adds to a moto ChangeSet (kept on the object, so moto's resets clear it)."""

    parameters: list[dict[str, str]]
    changes: list[dict[str, Any]]
    capabilities: list[str]


_Key = tuple[str, str]  # (account id, Region)


class _State:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.sequence = itertools.count()
        self.jobs: dict[_Key, list[tuple[int, JobResult]]] = {}
        self.injected: dict[tuple[str, str, str], dict[str, _InjectedDrift]] = {}
        self.failures: dict[tuple[str, str, str], _DetectionFailure] = {}
        self.detections: dict[_Key, dict[str, _Detection]] = {}
        self.polls_before_complete = 0
        self.change_set_page_size: int | None = None
        # (account, Region, pipeline) -> stage name -> (latest execution id, its status in that stage)
        self.stage_states: dict[tuple[str, str, str], dict[str, tuple[str, str]]] = {}


_STATE = _State()
_INSTALL_LOCK = threading.Lock()
_installed = False


def reset() -> None:
    """Forget every recorded job result, injected drift, detection and test setting."""
    global _STATE
    with _STATE.lock:
        _STATE = _State()


def job_results(
    job_id: str | None = None, *, region: str | None = None, account_id: str | None = None
) -> list[JobResult]:
    """Every job result call received (accepted or rejected), oldest first, optionally filtered."""
    state = _STATE
    with state.lock:
        rows = [
            row
            for (account, job_region), results in state.jobs.items()
            if (account_id is None or account == account_id) and (region is None or job_region == region)
            for row in results
        ]
    return [result for _, result in sorted(rows, key=lambda row: row[0]) if job_id in (None, result.job_id)]


def set_detection_progress(polls_before_complete: int) -> None:
    """Make each drift detection started from now on report DETECTION_IN_PROGRESS for this many
    DescribeStackDriftDetectionStatus calls before it completes (0, the default: complete at once)."""
    if polls_before_complete < 0:
        raise ValueError("polls_before_complete must be 0 or more")
    with _STATE.lock:
        _STATE.polls_before_complete = polls_before_complete


def inject_drift(
    stack_name: str,
    region: str,
    logical_id: str,
    differences: Sequence[Mapping[str, str]] = (),
    status: str = "MODIFIED",
    *,
    account_id: str = DEFAULT_ACCOUNT_ID,
) -> None:
    """Make drift detections of ``stack_name`` started from now on report ``logical_id`` with this
    StackResourceDriftStatus and these PropertyDifferences (PropertyPath, ExpectedValue, ActualValue,
    DifferenceType ADD | REMOVE | NOT_EQUAL). The stack and resource must exist already."""
    if status not in _RESOURCE_DRIFT_STATUSES:
        raise ValueError(f"status must be one of {sorted(_RESOURCE_DRIFT_STATUSES)}, not {status!r}")
    checked: list[dict[str, str]] = []
    for difference in differences:
        missing = {"PropertyPath", "ExpectedValue", "ActualValue", "DifferenceType"} - set(difference)
        if missing:
            raise ValueError(f"property difference {dict(difference)} lacks {sorted(missing)}")
        if difference["DifferenceType"] not in _DIFFERENCE_TYPES:
            raise ValueError(f"DifferenceType must be one of {sorted(_DIFFERENCE_TYPES)}")
        checked.append(
            {key: str(difference[key]) for key in ("PropertyPath", "ExpectedValue", "ActualValue", "DifferenceType")}
        )
    stack = _live_stack(_cfn_backend(account_id, region), stack_name)
    if stack is None:
        raise ValueError(f"stack {stack_name} does not exist in {account_id}/{region}: create it first")
    if logical_id not in _resources_of(_template_of(stack)):
        raise ValueError(f"stack {stack_name} has no resource {logical_id}")
    with _STATE.lock:
        per_stack = _STATE.injected.setdefault((account_id, region, stack_name), {})
        per_stack[logical_id] = _InjectedDrift(status=status, differences=tuple(checked))


def fail_detection(
    stack_name: str,
    region: str,
    reason: str,
    *,
    account_id: str = DEFAULT_ACCOUNT_ID,
    stack_drift_status: str = "UNKNOWN",
) -> None:
    """Make drift detections of ``stack_name`` started from now on end DETECTION_FAILED with this
    DetectionStatusReason."""
    if stack_drift_status not in _STACK_DRIFT_STATUSES:
        raise ValueError(f"stack_drift_status must be one of {sorted(_STACK_DRIFT_STATUSES)}")
    with _STATE.lock:
        _STATE.failures[(account_id, region, stack_name)] = _DetectionFailure(reason, stack_drift_status)


def fail_change_set(
    stack_name: str,
    change_set_name: str,
    region: str,
    reason: str,
    *,
    account_id: str = DEFAULT_ACCOUNT_ID,
) -> None:
    """Turn an existing change set into Status FAILED, ExecutionStatus UNAVAILABLE with this reason."""
    backend = _cfn_backend(account_id, region)
    change_set = _find_change_set(backend, change_set_name, stack_name)
    change_set.status = "FAILED"
    change_set.execution_status = "UNAVAILABLE"
    change_set.status_reason = reason
    _extras(change_set).changes = []


def set_change_set_page_size(size: int | None) -> None:
    """Page DescribeChangeSet's Changes by ``size`` (None, the default: one page), so a test can
    prove that the code follows NextToken."""
    if size is not None and size < 1:
        raise ValueError("size must be 1 or more")
    with _STATE.lock:
        _STATE.change_set_page_size = size


# --------------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------------


class _PlainResult(ActionResult):
    """A result already in AWS's shape: serialized without the response class's key transformers."""

    def execute_result(self, context: ActionContext) -> TYPE_RESPONSE:
        serializer = context.serializer_class(
            operation_model=context.operation_model,
            pretty_print=settings.PRETTIFY_RESPONSES,
            value_picker=XFormedAttributePicker(response_transformers=None),
        )
        serialized = serializer.serialize(self.result)
        return serialized["status_code"], dict(serialized["headers"]), serialized["body"]


class _ServiceError(ServiceException):
    """An AWS error by code. Defined here, not in a moto module, because moto looks the error shape
    up in the service model named after the exception's moto package ("core" for ServiceException)."""


def _error(code: str, message: str) -> ServiceException:
    return _ServiceError(code, message)


def _now() -> datetime:
    return datetime.now(UTC)


def _is_true(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _cfn_backend(account_id: str, region: str) -> CloudFormationBackend:
    return cloudformation_backends[account_id][region]


def _live_stack(backend: CloudFormationBackend, name_or_id: str) -> Stack | None:
    """The stack with this name or id that has not been deleted (moto moves deleted ones away)."""
    stack = backend.stacks.get(name_or_id)
    if stack is not None:
        return stack
    return next((s for s in backend.stacks.values() if s.name == name_or_id), None)


def _template_of(stack: Stack) -> dict[str, Any]:
    template = stack.template
    if isinstance(template, dict):
        return template
    return _parse_template(template)


def _parse_template(body: str) -> dict[str, Any]:
    try:
        parsed = Stack.parse_template(body)
    except Exception as exc:  # any parse failure is an error in the caller's template
        raise ValidationError(message=f"Template format error: {exc}") from exc
    if not isinstance(parsed, dict):
        raise ValidationError(message="Template format error: JSON not well-formed.")
    return parsed


def _resources_of(template: Mapping[str, Any]) -> dict[str, Any]:
    resources = template.get("Resources") or {}
    return dict(resources) if isinstance(resources, Mapping) else {}


def _parameter_text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _effective_parameters(template: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, str]:
    """Template parameters with their values: the given one, else the Default (unset ones left out)."""
    slots = template.get("Parameters") or {}
    effective: dict[str, str] = {}
    for name, slot in slots.items():
        if name in given:
            effective[name] = _parameter_text(given[name])
        elif isinstance(slot, Mapping) and "Default" in slot:
            effective[name] = _parameter_text(slot["Default"])
    return effective


def _physical_ids(stack: Stack | None) -> dict[str, str]:
    if stack is None:
        return {}
    ids: dict[str, str] = {}
    try:
        resources = list(stack.stack_resources)
    except Exception:  # noqa: BLE001 - moto cannot model every resource; ids are optional
        return ids
    for resource in resources:
        logical_id = getattr(resource, "logical_resource_id", None)
        physical_id = getattr(resource, "physical_resource_id", None)
        if isinstance(logical_id, str) and isinstance(physical_id, str):
            ids[logical_id] = physical_id
    return ids


def _referenced_parameters(value: Any, parameters: Iterable[str]) -> set[str]:
    """Parameters that ``value`` uses through ``Ref`` or an ``${Name}`` in a string."""
    text = json.dumps(value, default=str)
    found: set[str] = set()
    for name in parameters:
        ref = json.dumps({"Ref": name})[1:-1]  # '"Ref": "Name"'
        if ref in text or "${" + name + "}" in text:
            found.add(name)
    return found


# --------------------------------------------------------------------------------------------------
# CodePipeline job results
# --------------------------------------------------------------------------------------------------


def _check_length(value: Any, name: str, low: int, high: int) -> None:
    if value is not None and not low <= len(str(value)) <= high:
        raise _error(
            "ValidationException",
            f"1 validation error detected: Value at '{name}' failed to satisfy constraint: "
            f"Member must have length between {low} and {high}",
        )


def _check_job_id(job_id: Any) -> str:
    if not isinstance(job_id, str) or not _JOB_ID.fullmatch(job_id):
        raise _error(
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
        raise _error("ValidationException", "executionDetails.percentComplete must be between 0 and 100")
    if token is not None and variables:
        raise _error(
            "ValidationException",
            "outputVariables can be included only when there is no continuation token on the request.",
        )
    for key in variables:
        if not _OUTPUT_VARIABLE_KEY.fullmatch(str(key)):
            raise _error(
                "ValidationException",
                f"1 validation error detected: Value '{key}' at 'outputVariables' failed to satisfy "
                f"constraint: Map keys must satisfy regular expression pattern: {_OUTPUT_VARIABLE_KEY.pattern}",
            )
    size = sum(len(str(k).encode()) + len(str(v).encode()) for k, v in variables.items())
    if size > OUTPUT_VARIABLES_MAX_BYTES:
        raise _error(
            "OutputVariablesSizeExceededException",
            f"Output variables total {size} bytes; the limit is {OUTPUT_VARIABLES_MAX_BYTES} bytes.",
        )


def _validate_failure(params: Mapping[str, Any]) -> None:
    details = params.get("failureDetails") or {}
    if details.get("type") not in _FAILURE_TYPES:
        raise _error(
            "ValidationException",
            f"1 validation error detected: Value '{details.get('type')}' at 'failureDetails.type' failed "
            f"to satisfy constraint: Member must satisfy enum value set: {sorted(_FAILURE_TYPES)}",
        )
    _check_length(details.get("message"), "failureDetails.message", 1, 5000)
    if details.get("message") is None:
        raise _error("ValidationException", "failureDetails.message is required")
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
    result = JobResult(
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
    state = _STATE
    with state.lock:
        error: ServiceException | None = None
        try:
            _check_job_id(job_id)
            if status == "Succeeded":
                _validate_success(params)
            else:
                _validate_failure(params)
            previous = next(
                (r for _, rows in state.jobs.items() for _, r in rows if r.job_id == job_id and r.accepted),
                None,
            )
            if previous is not None:
                raise _error(
                    "InvalidJobStateException",
                    f"Job {job_id} already has a result ({previous.status}); a job accepts one result only.",
                )
        except ServiceException as exc:
            error = exc
            result = dataclasses.replace(result, error=exc.code)
        rows = state.jobs.setdefault((response.current_account, response.region), [])
        rows.append((next(state.sequence), result))
    if error is not None:
        raise error
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
    with _STATE.lock:
        _STATE.stage_states.setdefault((account_id, region, pipeline), {})[stage] = (execution_id, status)


def set_execution_status(
    pipeline: str,
    execution_id: str,
    status: str,
    *,
    region: str = "us-east-1",
    account_id: str = DEFAULT_ACCOUNT_ID,
) -> None:
    """Set an execution's status (InProgress, Succeeded, Failed, Stopped...) as ListPipelineExecutions
    and GetPipelineExecution report it; moto marks every execution Succeeded as soon as it starts."""
    if status not in _EXECUTION_STATUSES:
        raise ValueError(f"status must be one of {sorted(_EXECUTION_STATUSES)}, not {status!r}")
    backend = codepipeline_backends[account_id][region]
    if pipeline not in backend.pipelines:
        raise ValueError(f"pipeline {pipeline} does not exist in {account_id}/{region}")
    execution = backend.pipelines[pipeline].executions.get(execution_id)
    if execution is None:
        raise ValueError(f"pipeline {pipeline} has no execution {execution_id}")
    execution.status = status
    execution.last_update_time = utcnow()


def _get_pipeline_state(self: CodePipelineResponse) -> str:
    """GetPipelineState: the stages set with set_stage_execution, in the order they were set."""
    name = self._get_param("name")
    with _STATE.lock:
        stages = dict(_STATE.stage_states.get((self.current_account, self.region, name), {}))
    if not stages:
        raise _error(
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


def _put_job_success_result(self: CodePipelineResponse) -> str:
    return _record_job_result(self, "Succeeded")


def _put_job_failure_result(self: CodePipelineResponse) -> str:
    return _record_job_result(self, "Failed")


# --------------------------------------------------------------------------------------------------
# CloudFormation change sets
# --------------------------------------------------------------------------------------------------


def _change_set_not_found(name: str) -> ServiceException:
    return _error("ChangeSetNotFound", f"ChangeSet [{name}] does not exist")


def _find_change_set(backend: CloudFormationBackend, name_or_arn: str, stack_name: str | None) -> ChangeSet:
    if name_or_arn.startswith("arn:"):
        change_set = backend.change_sets.get(name_or_arn)
        if change_set is None:
            raise _change_set_not_found(name_or_arn)
        return change_set
    if not stack_name:
        raise ValidationError(message="StackName must be specified if ChangeSetName is not specified as an ARN.")
    stack = _live_stack(backend, stack_name)
    if stack is None:
        raise _change_set_not_found(name_or_arn)
    for change_set in backend.change_sets.values():
        if change_set.stack_id == stack.stack_id and change_set.change_set_name == name_or_arn:
            return change_set
    raise _change_set_not_found(name_or_arn)


def _extras(change_set: ChangeSet) -> _ChangeSetExtras:
    extras = getattr(change_set, "_moto_ext", None)
    if isinstance(extras, _ChangeSetExtras):
        return extras
    # A change set moto made itself: describe what moto recorded.
    extras = _ChangeSetExtras(
        parameters=[
            {"ParameterKey": k, "ParameterValue": _parameter_text(v)} for k, v in (change_set.parameters or {}).items()
        ],
        changes=[
            {
                "Type": "Resource",
                "ResourceChange": {
                    "Action": c.action,
                    "LogicalResourceId": c.logical_resource_id,
                    "ResourceType": c.resource_type,
                    "Scope": [],
                    "Details": [],
                },
            }
            for c in change_set.changes
        ],
        capabilities=[],
    )
    setattr(change_set, "_moto_ext", extras)  # noqa: B010 - moto's class does not declare it
    return extras


def _resource_change_details(
    old: Mapping[str, Any], new: Mapping[str, Any], changed_parameters: set[str]
) -> tuple[list[str], list[dict[str, Any]]]:
    scopes: set[str] = set()
    details: list[dict[str, Any]] = []
    old_props = old.get("Properties") or {}
    new_props = new.get("Properties") or {}
    for name in sorted(set(old_props) | set(new_props)):
        attribute = "Tags" if name == "Tags" else "Properties"
        target = {"Attribute": attribute, "Name": name, "RequiresRecreation": "Never"}
        if old_props.get(name) != new_props.get(name):
            scopes.add(attribute)
            details.append({"Target": target, "Evaluation": "Static", "ChangeSource": "DirectModification"})
        for parameter in sorted(_referenced_parameters(new_props.get(name), changed_parameters)):
            scopes.add(attribute)
            details.append(
                {
                    "Target": target,
                    "Evaluation": "Static",
                    "ChangeSource": "ParameterReference",
                    "CausingEntity": parameter,
                }
            )
    for attribute in _CHANGE_SCOPES[1:6]:
        if old.get(attribute) != new.get(attribute):
            scopes.add(attribute)
            details.append(
                {
                    "Target": {"Attribute": attribute, "RequiresRecreation": "Never"},
                    "Evaluation": "Static",
                    "ChangeSource": "DirectModification",
                }
            )
    return [s for s in _CHANGE_SCOPES if s in scopes], details


def _plan_changes(
    stack: Stack | None,
    old_template: Mapping[str, Any],
    new_template: Mapping[str, Any],
    old_parameters: Mapping[str, str],
    new_parameters: Mapping[str, str],
) -> list[dict[str, Any]]:
    old_resources = _resources_of(old_template)
    new_resources = _resources_of(new_template)
    changed_parameters = {
        name
        for name in set(old_parameters) | set(new_parameters)
        if old_parameters.get(name) != new_parameters.get(name)
    }
    physical_ids = _physical_ids(stack)
    changes: list[dict[str, Any]] = []

    def add(change: dict[str, Any]) -> None:
        changes.append({"Type": "Resource", "ResourceChange": change})

    for logical_id, resource in new_resources.items():
        resource_type = resource.get("Type", "")
        if logical_id not in old_resources:
            add(
                {
                    "Action": "Add",
                    "LogicalResourceId": logical_id,
                    "ResourceType": resource_type,
                    "Scope": [],
                    "Details": [],
                }
            )
            continue
        old = old_resources[logical_id]
        scopes, details = _resource_change_details(old, resource, changed_parameters)
        if old == resource and not details:
            continue
        change: dict[str, Any] = {
            "Action": "Modify",
            "LogicalResourceId": logical_id,
            "ResourceType": resource_type,
            "Replacement": "True" if old.get("Type") != resource_type else "False",
            "Scope": scopes,
            "Details": details,
        }
        if logical_id in physical_ids:
            change["PhysicalResourceId"] = physical_ids[logical_id]
        add(change)
    for logical_id, resource in old_resources.items():
        if logical_id not in new_resources:
            change = {
                "Action": "Remove",
                "LogicalResourceId": logical_id,
                "ResourceType": resource.get("Type", ""),
                "Scope": [],
                "Details": [],
            }
            if logical_id in physical_ids:
                change["PhysicalResourceId"] = physical_ids[logical_id]
            add(change)
    return changes


def _request_parameters(raw: Sequence[Mapping[str, Any]], stack: Stack | None) -> dict[str, str]:
    given: dict[str, str] = {}
    for parameter in raw:
        key = str(parameter.get("ParameterKey"))
        if _is_true(parameter.get("UsePreviousValue", False)):
            if parameter.get("ParameterValue"):
                raise ValidationError(
                    message=f"Invalid input for parameter key {key}. Cannot specify usePreviousValue as "
                    "true and non empty value for a parameter"
                )
            if stack is None or key not in (stack.parameters or {}):
                raise ValidationError(
                    message=f"Invalid input for parameter key {key}. Cannot specify "
                    "usePreviousValue as true for a parameter key not in the previous template"
                )
            given[key] = _parameter_text(stack.parameters[key])
        else:
            given[key] = _parameter_text(parameter.get("ParameterValue", ""))
    return given


def _check_parameters(template: Mapping[str, Any], given: Mapping[str, str]) -> None:
    slots = template.get("Parameters") or {}
    unknown = sorted(set(given) - set(slots))
    if unknown:
        raise ValidationError(message=f"Parameters: [{', '.join(unknown)}] do not exist in the template")
    missing = [
        name
        for name, slot in slots.items()
        if name not in given and not (isinstance(slot, Mapping) and "Default" in slot)
    ]
    if missing:
        raise ValidationError(message=f"Parameters: [{', '.join(missing)}] must have values")


def _create_change_set(self: CloudFormationResponse) -> ActionResult:
    backend = self.cloudformation_backend
    stack_name: str = self._get_param("StackName")
    name: str = self._get_param("ChangeSetName")
    change_set_type: str = self._get_param("ChangeSetType") or "UPDATE"
    body: str | None = self._get_param("TemplateBody")
    template_url: str | None = self._get_param("TemplateURL")
    use_previous = _is_true(self._get_param("UsePreviousTemplate", False))

    if not re.fullmatch(r"[a-zA-Z][-a-zA-Z0-9]*", name or "") or len(name) > 128:
        raise ValidationError(
            message=f"1 validation error detected: Value '{name}' at 'changeSetName' failed to satisfy "
            "constraint: Member must satisfy regular expression pattern: [a-zA-Z][-a-zA-Z0-9]*"
        )
    if change_set_type not in {"CREATE", "UPDATE"}:
        raise ValidationError(message=f"ChangeSetType {change_set_type} is not supported by this test double.")
    if sum(bool(x) for x in (body, template_url, use_previous)) != 1:
        raise ValidationError(message="Specify exactly one of TemplateBody, TemplateURL or UsePreviousTemplate.")

    stack = _live_stack(backend, stack_name)
    if change_set_type == "CREATE":
        if stack is not None and stack.status != "REVIEW_IN_PROGRESS":
            raise ValidationError(
                message=f"Stack [{stack_name}] already exists and cannot be created again with the changeSet [{name}]."
            )
        if use_previous:
            raise ValidationError(message="UsePreviousTemplate is not valid for a CREATE change set.")
    else:
        if stack is None:
            raise ValidationError(message=f"Stack [{stack_name}] does not exist")
        if stack.status not in _UPDATABLE_STATUSES:
            raise ValidationError(message=f"Stack:{stack.stack_id} is in {stack.status} state and can not be updated.")
    if stack is not None and any(
        cs.stack_id == stack.stack_id and cs.change_set_name == name for cs in backend.change_sets.values()
    ):
        raise _error("AlreadyExistsException", f"ChangeSet [{name}] already exists")

    if use_previous:
        assert stack is not None
        template_body = stack.template if isinstance(stack.template, str) else json.dumps(stack.template)
    elif template_url:
        template_body = self._get_stack_from_s3_url(template_url)
    else:
        template_body = str(body)
    new_template = _parse_template(template_body)
    if not _resources_of(new_template):
        raise ValidationError(message="Template format error: At least one Resources member must be defined.")

    given = _request_parameters(self._get_param("Parameters", []) or [], stack)
    _check_parameters(new_template, given)
    tags = {item["Key"]: item["Value"] for item in self._get_param("Tags", []) or []}
    description: str | None = self._get_param("Description")
    role_arn: str | None = self._get_param("RoleARN")
    notification_arns: list[str] = self._get_param("NotificationARNs", []) or []

    if stack is None:
        # A new stack: moto creates it in REVIEW_IN_PROGRESS together with the change set.
        change_set_id, _ = backend.create_change_set(
            stack_name=stack_name,
            change_set_name=name,
            template=template_body,
            parameters=given,
            description=description or "",
            change_set_type="CREATE",
            notification_arns=notification_arns,
            tags=tags,
            role_arn=role_arn,
        )
        change_set = backend.change_sets[change_set_id]
        stack = backend.stacks[change_set.stack_id]
    else:
        change_set = ChangeSet(
            change_set_type=change_set_type,
            change_set_id=generate_changeset_id(name, backend.region_name, backend.account_id),
            change_set_name=name,
            stack=stack,
            template=template_body,
            parameters=given,
            description=description or "",
            notification_arns=notification_arns,
            tags=tags,
            role_arn=role_arn,
        )
        backend.change_sets[change_set.change_set_id] = change_set

    if change_set_type == "CREATE":
        old_template: Mapping[str, Any] = {}
        old_parameters: dict[str, str] = {}
    else:
        old_template = _template_of(stack)
        old_parameters = _effective_parameters(old_template, stack.parameters or {})
    new_parameters = _effective_parameters(new_template, given)

    unchanged = change_set_type == "UPDATE" and old_template == new_template and old_parameters == new_parameters
    if unchanged:
        change_set.status, change_set.execution_status = "FAILED", "UNAVAILABLE"
        change_set.status_reason = NO_CHANGES_REASON
        changes: list[dict[str, Any]] = []
    else:
        change_set.status, change_set.execution_status = "CREATE_COMPLETE", "AVAILABLE"
        change_set.status_reason = None
        changes = _plan_changes(stack, old_template, new_template, old_parameters, new_parameters)
    extras = _ChangeSetExtras(
        parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in new_parameters.items()],
        changes=changes,
        capabilities=list(self._get_param("Capabilities", []) or []),
    )
    setattr(change_set, "_moto_ext", extras)  # noqa: B010 - moto's class does not declare it
    return _PlainResult({"Id": change_set.change_set_id, "StackId": stack.stack_id})


def _describe_change_set(self: CloudFormationResponse) -> ActionResult:
    backend = self.cloudformation_backend
    change_set = _find_change_set(backend, self._get_param("ChangeSetName"), self._get_param("StackName"))
    extras = _extras(change_set)
    page_size = _STATE.change_set_page_size or max(len(extras.changes), 1)
    token = self._get_param("NextToken")
    try:
        start = int(token) if token else 0
    except ValueError as exc:
        raise ValidationError(message="Invalid NextToken") from exc
    page = extras.changes[start : start + page_size]
    result: dict[str, Any] = {
        "ChangeSetName": change_set.change_set_name,
        "ChangeSetId": change_set.change_set_id,
        "StackId": change_set.stack_id,
        "StackName": change_set.stack_name,
        "Parameters": extras.parameters,
        "CreationTime": change_set.creation_time,
        "ExecutionStatus": change_set.execution_status,
        "Status": change_set.status,
        "NotificationARNs": change_set.notification_arns or [],
        "Capabilities": extras.capabilities,
        "Tags": [{"Key": k, "Value": v} for k, v in (change_set.tags or {}).items()],
        "Changes": copy.deepcopy(page),
        "IncludeNestedStacks": False,
    }
    if change_set.description:
        result["Description"] = change_set.description
    if change_set.status_reason:
        result["StatusReason"] = change_set.status_reason
    if start + page_size < len(extras.changes):
        result["NextToken"] = str(start + page_size)
    return _PlainResult(result)


def _list_change_sets(self: CloudFormationResponse) -> ActionResult:
    backend = self.cloudformation_backend
    stack_name = self._get_param("StackName")
    stack = _live_stack(backend, stack_name)
    if stack is None:
        raise ValidationError(message=f"Stack [{stack_name}] does not exist")
    summaries = []
    for change_set in backend.change_sets.values():
        if change_set.stack_id != stack.stack_id:
            continue
        summary = {
            "StackId": change_set.stack_id,
            "StackName": change_set.stack_name,
            "ChangeSetId": change_set.change_set_id,
            "ChangeSetName": change_set.change_set_name,
            "ExecutionStatus": change_set.execution_status,
            "Status": change_set.status,
            "CreationTime": change_set.creation_time,
            "IncludeNestedStacks": False,
        }
        if change_set.status_reason:
            summary["StatusReason"] = change_set.status_reason
        if change_set.description:
            summary["Description"] = change_set.description
        summaries.append(summary)
    return _PlainResult({"Summaries": summaries})


def _execute_change_set(self: CloudFormationResponse) -> ActionResult:
    backend = self.cloudformation_backend
    change_set = _find_change_set(backend, self._get_param("ChangeSetName"), self._get_param("StackName"))
    if change_set.status != "CREATE_COMPLETE":
        raise _error(
            "InvalidChangeSetStatus",
            f"ChangeSet [{change_set.change_set_id}] cannot be executed in its current status of [{change_set.status}]",
        )
    if change_set.execution_status != "AVAILABLE":
        raise _error(
            "InvalidChangeSetStatus",
            f"ChangeSet [{change_set.change_set_id}] cannot be executed "
            f"in its current execution status of [{change_set.execution_status}]",
        )
    backend.execute_change_set(change_set_name=change_set.change_set_id, stack_name=change_set.stack_name)
    stack = backend.stacks[change_set.stack_id]
    # moto 5.2.5 keeps the old parameters, template dict, description and outputs: bring them up to date.
    stack.parameters = dict(change_set.parameters or {})
    stack._parse_template()
    stack.description = stack.template_dict.get("Description")
    stack.output_map = stack._create_output_map()
    # Like AWS: executing a change set deletes the stack's other change sets.
    for change_set_id, other in list(backend.change_sets.items()):
        if other.stack_id == stack.stack_id and other is not change_set:
            del backend.change_sets[change_set_id]
    return EmptyResult()


def _delete_change_set(self: CloudFormationResponse) -> ActionResult:
    backend = self.cloudformation_backend
    change_set = _find_change_set(backend, self._get_param("ChangeSetName"), self._get_param("StackName"))
    if change_set.execution_status == "EXECUTE_IN_PROGRESS":
        raise _error(
            "InvalidChangeSetStatus",
            f"ChangeSet [{change_set.change_set_id}] cannot be deleted "
            f"in its current execution status of [{change_set.execution_status}]",
        )
    del backend.change_sets[change_set.change_set_id]
    return EmptyResult()


# --------------------------------------------------------------------------------------------------
# CloudFormation drift
# --------------------------------------------------------------------------------------------------


def _set_path(document: Any, path: str, difference_type: str, value: str) -> None:
    """Apply one PropertyDifference to ``document`` (best effort: an unknown path is left alone)."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        return
    try:
        parsed: Any = json.loads(value)
    except (TypeError, ValueError):
        parsed = value
    target = document
    for part in parts[:-1]:
        target = target[int(part)] if isinstance(target, list) else target.setdefault(part, {})
    last = parts[-1]
    if isinstance(target, list):
        index = int(last)
        if difference_type == "REMOVE":
            del target[index]
        elif index >= len(target):
            target.append(parsed)
        else:
            target[index] = parsed
    elif difference_type == "REMOVE":
        target.pop(last, None)
    else:
        target[last] = parsed


def _resource_drifts(
    stack: Stack, injected: Mapping[str, _InjectedDrift], only: set[str] | None, timestamp: datetime
) -> list[dict[str, Any]]:
    physical_ids = _physical_ids(stack)
    drifts: list[dict[str, Any]] = []
    for logical_id, resource in _resources_of(_template_of(stack)).items():
        if only is not None and logical_id not in only:
            continue
        expected = copy.deepcopy(resource.get("Properties") or {})
        drift = injected.get(logical_id, _InjectedDrift("IN_SYNC", ()))
        item: dict[str, Any] = {
            "StackId": stack.stack_id,
            "LogicalResourceId": logical_id,
            "ResourceType": resource.get("Type", ""),
            "ExpectedProperties": json.dumps(expected, sort_keys=True, default=str),
            "PropertyDifferences": [dict(d) for d in drift.differences],
            "StackResourceDriftStatus": drift.status,
            "Timestamp": timestamp,
        }
        if logical_id in physical_ids:
            item["PhysicalResourceId"] = physical_ids[logical_id]
        if drift.status != "DELETED":
            actual = copy.deepcopy(expected)
            for difference in drift.differences:
                try:
                    _set_path(
                        actual, difference["PropertyPath"], difference["DifferenceType"], difference["ActualValue"]
                    )
                except (KeyError, IndexError, TypeError, ValueError, AttributeError):
                    continue
            item["ActualProperties"] = json.dumps(actual, sort_keys=True, default=str)
        drifts.append(item)
    return drifts


def _detect_stack_drift(self: CloudFormationResponse) -> ActionResult:
    backend = self.cloudformation_backend
    stack_name: str = self._get_param("StackName")
    stack = _live_stack(backend, stack_name)
    if stack is None:
        raise ValidationError(stack_name)
    if stack.status not in DRIFT_CHECKABLE_STATUSES:
        raise ValidationError(
            message=f"Stack [{stack.stack_id}] is in {stack.status} state. Drift detection is supported "
            f"only for stacks in {', '.join(sorted(DRIFT_CHECKABLE_STATUSES))}."
        )
    logical_ids = self._get_param("LogicalResourceIds") or None
    account, region = self.current_account, self.region
    state = _STATE
    with state.lock:
        injected = dict(state.injected.get((account, region, stack.name), {}))
        failure = state.failures.get((account, region, stack.name))
        timestamp = _now()
        detection = _Detection(
            detection_id=str(uuid.uuid4()),
            stack_id=stack.stack_id,
            stack_name=stack.name,
            polls_remaining=state.polls_before_complete,
            failure=failure,
            timestamp=timestamp,
            resource_drifts=_resource_drifts(stack, injected, set(logical_ids) if logical_ids else None, timestamp),
        )
        state.detections.setdefault((account, region), {})[detection.detection_id] = detection
    return _PlainResult({"StackDriftDetectionId": detection.detection_id})


def _describe_stack_drift_detection_status(self: CloudFormationResponse) -> ActionResult:
    detection_id: str = self._get_param("StackDriftDetectionId")
    state = _STATE
    with state.lock:
        detection = state.detections.get((self.current_account, self.region), {}).get(detection_id)
        if detection is None:
            raise ValidationError(message=f"Stack drift detection [{detection_id}] does not exist")
        result: dict[str, Any] = {
            "StackId": detection.stack_id,
            "StackDriftDetectionId": detection.detection_id,
            "Timestamp": detection.timestamp,
        }
        if not detection.finished:
            detection.polls_remaining -= 1
            result["DetectionStatus"] = "DETECTION_IN_PROGRESS"
            result["DetectionStatusReason"] = "User Initiated"
            return _PlainResult(result)
        drifted = sum(1 for d in detection.resource_drifts if d["StackResourceDriftStatus"] in _DRIFTED)
        result["DriftedStackResourceCount"] = drifted
        if detection.failure is not None:
            result["DetectionStatus"] = "DETECTION_FAILED"
            result["DetectionStatusReason"] = detection.failure.reason
            result["StackDriftStatus"] = detection.failure.stack_drift_status
        else:
            result["DetectionStatus"] = "DETECTION_COMPLETE"
            result["StackDriftStatus"] = "DRIFTED" if drifted else "IN_SYNC"
    return _PlainResult(result)


def _describe_stack_resource_drifts(self: CloudFormationResponse) -> ActionResult:
    backend = self.cloudformation_backend
    stack_name: str = self._get_param("StackName")
    stack = _live_stack(backend, stack_name)
    if stack is None:
        raise ValidationError(stack_name)
    filters = set(self._get_param("StackResourceDriftStatusFilters") or [])
    max_results = int(self._get_param("MaxResults") or 100)
    token = self._get_param("NextToken")
    try:
        start = int(token) if token else 0
    except ValueError as exc:
        raise ValidationError(message="Invalid NextToken") from exc
    state = _STATE
    with state.lock:
        finished = [
            d
            for d in state.detections.get((self.current_account, self.region), {}).values()
            if d.stack_id == stack.stack_id and d.finished
        ]
        drifts = copy.deepcopy(finished[-1].resource_drifts) if finished else []
    if filters:
        drifts = [d for d in drifts if d["StackResourceDriftStatus"] in filters]
    result: dict[str, Any] = {"StackResourceDrifts": drifts[start : start + max_results]}
    if start + max_results < len(drifts):
        result["NextToken"] = str(start + max_results)
    return _PlainResult(result)


# --------------------------------------------------------------------------------------------------
# EventBridge
# --------------------------------------------------------------------------------------------------

_EVENT_FIELDS: Final = ("id", "account", "source", "time", "region", "detail-type")


def _test_event_pattern(self: EventsHandler) -> str:
    """TestEventPattern (moto 5.2.5 answers nothing): matched with moto's own rule matcher, the one its
    PutEvents uses, after AWS's check that the event has the fields every event carries."""
    raw_pattern = self._get_param("EventPattern")
    try:
        event = json.loads(self._get_param("Event") or "")
    except json.JSONDecodeError:
        raise _error("InvalidEventPatternException", "Event is not valid JSON") from None
    missing = [name for name in _EVENT_FIELDS if name not in event]
    if missing:
        raise _error("InvalidEventPatternException", f"Event is missing required field(s): {', '.join(missing)}")
    pattern = EventPattern(raw_pattern, EventPatternParser(raw_pattern).parse())
    return json.dumps({"Result": pattern.matches_event(event)})


# --------------------------------------------------------------------------------------------------
# S3 bucket policies
# --------------------------------------------------------------------------------------------------

# Every SDK call to AWS goes over TLS; only the hop to a local emulator is plain HTTP. moto evaluates a
# bucket policy without request context and treats a condition operator it does not know (Bool) as
# met, so a TLS-only bucket (Deny when aws:SecureTransport is "false") would refuse every request. The
# emulator evaluates bucket policies as AWS would for an SDK client, whose requests are all TLS: a
# statement conditioned on aws:SecureTransport applies only when it asks for "true".


def _over_tls(statement: Mapping[str, Any]) -> dict[str, Any] | None:
    """The statement as it applies to a TLS request (None: it does not apply)."""
    condition = dict(statement.get("Condition", {}))
    boolean = dict(condition.get("Bool", {}))
    if "aws:SecureTransport" not in boolean:
        return dict(statement)
    wanted = boolean.pop("aws:SecureTransport")
    values = wanted if isinstance(wanted, list) else [wanted]
    if "true" not in [str(value).lower() for value in values]:
        return None
    if boolean:
        condition["Bool"] = boolean
    else:
        condition.pop("Bool")
    rest = {key: value for key, value in statement.items() if key != "Condition"}
    return {**rest, "Condition": condition} if condition else rest


def _bucket_permission(self: FakeBucket, action: str, resource: str) -> Any:
    if self.policy is None:
        return PermissionResult.NEUTRAL
    document = json.loads(self.policy.decode())
    raw = document.get("Statement", [])
    statements = [kept for statement in (raw if isinstance(raw, list) else [raw]) if (kept := _over_tls(statement))]
    if not statements:
        return PermissionResult.NEUTRAL
    return IAMPolicy(json.dumps({**document, "Statement": statements})).is_action_permitted(action, resource)


# --------------------------------------------------------------------------------------------------
# Installation
# --------------------------------------------------------------------------------------------------

_CODEPIPELINE_METHODS: Final[dict[str, Callable[..., object]]] = {
    "put_job_success_result": _put_job_success_result,
    "put_job_failure_result": _put_job_failure_result,
    "get_pipeline_state": _get_pipeline_state,
}
_CLOUDFORMATION_METHODS: Final[dict[str, Callable[..., object]]] = {
    "create_change_set": _create_change_set,
    "describe_change_set": _describe_change_set,
    "list_change_sets": _list_change_sets,
    "execute_change_set": _execute_change_set,
    "delete_change_set": _delete_change_set,
    "detect_stack_drift": _detect_stack_drift,
    "describe_stack_drift_detection_status": _describe_stack_drift_detection_status,
    "describe_stack_resource_drifts": _describe_stack_resource_drifts,
}


def install() -> None:
    """Add the operations to moto's response classes (idempotent)."""
    global _installed
    with _INSTALL_LOCK:
        if _installed:
            return
        if moto.__version__ != MOTO_VERSION:
            raise RuntimeError(
                f"rehearsal/moto_ext.py was verified against moto {MOTO_VERSION}, found "
                f"{moto.__version__}: re-check each patched operation before changing the pin"
            )
        for name, method in _CODEPIPELINE_METHODS.items():
            setattr(CodePipelineResponse, name, method)
        for name, method in _CLOUDFORMATION_METHODS.items():
            setattr(CloudFormationResponse, name, method)
        FakeBucket.get_permission = _bucket_permission  # type: ignore[method-assign]
        EventsHandler.test_event_pattern = _test_event_pattern  # type: ignore[assignment,method-assign]
        _installed = True
