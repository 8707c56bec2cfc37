"""CloudFormation drift: ``DetectStackDrift``, ``DescribeStackDriftDetectionStatus`` and
``DescribeStackResourceDrifts``, which moto 5.2.5 lacks. Every resource is IN_SYNC unless a test calls
:func:`inject_drift`; :func:`fail_detection` and :func:`set_detection_progress` shape how a detection
ends and how long it runs.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from moto.cloudformation.exceptions import ValidationError
from moto.cloudformation.models import Stack
from moto.cloudformation.responses import CloudFormationResponse
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.core.responses import ActionResult

from local_aws.cloudformation.models import (
    DIFFERENCE_TYPES,
    DRIFT_CHECKABLE_STATUSES,
    DRIFTED,
    RESOURCE_DRIFT_STATUSES,
    STACK_DRIFT_STATUSES,
    CloudFormationState,
    Detection,
    DetectionFailure,
    InjectedDrift,
    cfn_backend,
    cfn_state,
    live_stack,
    physical_ids_of,
    resources_of,
    settings,
    template_of,
)
from local_aws.core import LOCK, PlainResult, now, state_of


def set_detection_progress(polls_before_complete: int) -> None:
    """Make each drift detection started from now on report DETECTION_IN_PROGRESS for this many
    DescribeStackDriftDetectionStatus calls before it completes (0, the default: complete at once)."""
    if polls_before_complete < 0:
        raise ValueError("polls_before_complete must be 0 or more")
    with LOCK:
        settings().polls_before_complete = polls_before_complete


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
    if status not in RESOURCE_DRIFT_STATUSES:
        raise ValueError(f"status must be one of {sorted(RESOURCE_DRIFT_STATUSES)}, not {status!r}")
    checked: list[dict[str, str]] = []
    for difference in differences:
        missing = {"PropertyPath", "ExpectedValue", "ActualValue", "DifferenceType"} - set(difference)
        if missing:
            raise ValueError(f"property difference {dict(difference)} lacks {sorted(missing)}")
        if difference["DifferenceType"] not in DIFFERENCE_TYPES:
            raise ValueError(f"DifferenceType must be one of {sorted(DIFFERENCE_TYPES)}")
        checked.append(
            {key: str(difference[key]) for key in ("PropertyPath", "ExpectedValue", "ActualValue", "DifferenceType")}
        )
    stack = live_stack(cfn_backend(account_id, region), stack_name)
    if stack is None:
        raise ValueError(f"stack {stack_name} does not exist in {account_id}/{region}: create it first")
    if logical_id not in resources_of(template_of(stack)):
        raise ValueError(f"stack {stack_name} has no resource {logical_id}")
    with LOCK:
        per_stack = cfn_state(account_id, region).injected.setdefault(stack_name, {})
        per_stack[logical_id] = InjectedDrift(status=status, differences=tuple(checked))


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
    if stack_drift_status not in STACK_DRIFT_STATUSES:
        raise ValueError(f"stack_drift_status must be one of {sorted(STACK_DRIFT_STATUSES)}")
    with LOCK:
        cfn_state(account_id, region).failures[stack_name] = DetectionFailure(reason, stack_drift_status)


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
    stack: Stack, injected: Mapping[str, InjectedDrift], only: set[str] | None, timestamp: datetime
) -> list[dict[str, Any]]:
    physical_ids = physical_ids_of(stack)
    drifts: list[dict[str, Any]] = []
    for logical_id, resource in resources_of(template_of(stack)).items():
        if only is not None and logical_id not in only:
            continue
        expected = copy.deepcopy(resource.get("Properties") or {})
        drift = injected.get(logical_id, InjectedDrift("IN_SYNC", ()))
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


def detect_stack_drift(self: CloudFormationResponse) -> ActionResult:
    backend = self.cloudformation_backend
    stack_name: str = self._get_param("StackName")
    stack = live_stack(backend, stack_name)
    if stack is None:
        raise ValidationError(stack_name)
    if stack.status not in DRIFT_CHECKABLE_STATUSES:
        raise ValidationError(
            message=f"Stack [{stack.stack_id}] is in {stack.status} state. Drift detection is supported "
            f"only for stacks in {', '.join(sorted(DRIFT_CHECKABLE_STATUSES))}."
        )
    logical_ids = self._get_param("LogicalResourceIds") or None
    with LOCK:
        state = state_of(backend, CloudFormationState)
        injected = dict(state.injected.get(stack.name, {}))
        failure = state.failures.get(stack.name)
        timestamp = now()
        detection = Detection(
            detection_id=str(uuid.uuid4()),
            stack_id=stack.stack_id,
            stack_name=stack.name,
            polls_remaining=settings().polls_before_complete,
            failure=failure,
            timestamp=timestamp,
            resource_drifts=_resource_drifts(stack, injected, set(logical_ids) if logical_ids else None, timestamp),
        )
        state.detections[detection.detection_id] = detection
    return PlainResult({"StackDriftDetectionId": detection.detection_id})


def describe_stack_drift_detection_status(self: CloudFormationResponse) -> ActionResult:
    detection_id: str = self._get_param("StackDriftDetectionId")
    with LOCK:
        detection = state_of(self.cloudformation_backend, CloudFormationState).detections.get(detection_id)
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
            return PlainResult(result)
        drifted = sum(1 for d in detection.resource_drifts if d["StackResourceDriftStatus"] in DRIFTED)
        result["DriftedStackResourceCount"] = drifted
        if detection.failure is not None:
            result["DetectionStatus"] = "DETECTION_FAILED"
            result["DetectionStatusReason"] = detection.failure.reason
            result["StackDriftStatus"] = detection.failure.stack_drift_status
        else:
            result["DetectionStatus"] = "DETECTION_COMPLETE"
            result["StackDriftStatus"] = "DRIFTED" if drifted else "IN_SYNC"
    return PlainResult(result)


def describe_stack_resource_drifts(self: CloudFormationResponse) -> ActionResult:
    backend = self.cloudformation_backend
    stack_name: str = self._get_param("StackName")
    stack = live_stack(backend, stack_name)
    if stack is None:
        raise ValidationError(stack_name)
    filters = set(self._get_param("StackResourceDriftStatusFilters") or [])
    max_results = int(self._get_param("MaxResults") or 100)
    token = self._get_param("NextToken")
    try:
        start = int(token) if token else 0
    except ValueError as exc:
        raise ValidationError(message="Invalid NextToken") from exc
    with LOCK:
        finished = [
            d
            for d in state_of(backend, CloudFormationState).detections.values()
            if d.stack_id == stack.stack_id and d.finished
        ]
        drifts = copy.deepcopy(finished[-1].resource_drifts) if finished else []
    if filters:
        drifts = [d for d in drifts if d["StackResourceDriftStatus"] in filters]
    result: dict[str, Any] = {"StackResourceDrifts": drifts[start : start + max_results]}
    if start + max_results < len(drifts):
        result["NextToken"] = str(start + max_results)
    return PlainResult(result)


RESPONSES: Final[dict[str, Callable[..., object]]] = {
    "detect_stack_drift": detect_stack_drift,
    "describe_stack_drift_detection_status": describe_stack_drift_detection_status,
    "describe_stack_resource_drifts": describe_stack_resource_drifts,
}
"""CloudFormationResponse methods, by name."""
