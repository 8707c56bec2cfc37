"""CloudFormation: change sets as AWS makes them, drift detection, and templates resolved for their
parameters.

- :mod:`.models`: the state kept on moto's ``CloudFormationBackend`` and the stack and template helpers.
- :mod:`.change_sets`: CreateChangeSet, DescribeChangeSet, ListChangeSets, ExecuteChangeSet, DeleteChangeSet.
- :mod:`.operations`: CreateStack, UpdateStack, DeleteStack and change set execution that can fail and
  roll back, with request tokens and update times, monitored on the emulator's clock when they carry a
  rollback configuration.
- :mod:`.rollback_triggers`: the rollback configuration (alarms and monitoring time) as AWS validates
  and keeps it, and when its alarms call for a rollback.
- :mod:`.drift`: DetectStackDrift, DescribeStackDriftDetectionStatus, DescribeStackResourceDrifts.
- :mod:`.templates`: a template with its intrinsic functions resolved (no moto involved).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from local_aws.cloudformation import change_sets, drift, operations
from local_aws.cloudformation.change_sets import fail_change_set, set_change_set_page_size, set_change_set_status
from local_aws.cloudformation.drift import fail_detection, inject_drift, set_detection_progress
from local_aws.cloudformation.models import CHANGE_SETS_PER_STACK, DRIFT_CHECKABLE_STATUSES, NO_CHANGES_REASON
from local_aws.cloudformation.operations import STACK_STATUSES, fail_resource, set_change_set_limit, set_stack_status
from local_aws.cloudformation.templates import ResolvedTemplate, load_template

__all__ = [
    "CHANGE_SETS_PER_STACK",
    "DRIFT_CHECKABLE_STATUSES",
    "NO_CHANGES_REASON",
    "RESPONSES",
    "STACK_STATUSES",
    "ResolvedTemplate",
    "fail_change_set",
    "fail_detection",
    "fail_resource",
    "inject_drift",
    "load_template",
    "set_change_set_limit",
    "set_change_set_page_size",
    "set_change_set_status",
    "set_detection_progress",
    "set_stack_status",
]

RESPONSES: Final[dict[str, Callable[..., object]]] = {
    **operations.RESPONSES,
    **change_sets.RESPONSES,
    **drift.RESPONSES,
}
"""What the emulator adds to or replaces on ``CloudFormationResponse``, by method name."""
