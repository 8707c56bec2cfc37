"""CloudFormation's data as the emulator keeps it: per account and Region on moto's
``CloudFormationBackend``, and emulator-wide settings in a backend of their own.

- :class:`CloudFormationState`, kept on ``cloudformation_backends[account][region]``: the drift a test
  injected or made fail, per stack name, and the drift detections started there.
- :class:`ChangeSetExtras`, kept on each moto ``ChangeSet``: the parameters, changes, capabilities and
  rollback configuration that AWS describes and moto 5.2.5 does not record.
- :class:`CloudFormationSettings`, the one emulator-wide piece (how many polls a detection takes, how
  DescribeChangeSet pages): a process-wide setting belongs to no account or Region, so it lives in a
  ``BackendDict`` of its own under the default account and the ``aws`` partition, the way moto keeps
  its global services (IAM). moto's reset clears every ``BackendDict`` in use, this one too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from moto.cloudformation.exceptions import ValidationError
from moto.cloudformation.models import ChangeSet, CloudFormationBackend, Stack, cloudformation_backends
from moto.core.base_backend import BackendDict, BaseBackend
from moto.core.exceptions import ServiceException
from moto.core.models import DEFAULT_ACCOUNT_ID

from local_aws.cloudformation.rollback_triggers import RollbackConfiguration
from local_aws.core import error, state_of

NO_CHANGES_REASON: Final = (
    "The submitted information didn't contain changes. Submit different information to create a change set."
)
DRIFT_CHECKABLE_STATUSES: Final = frozenset(
    {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "UPDATE_ROLLBACK_FAILED"}
)

# The statuses in which CloudFormation accepts an update (UpdateStack, an UPDATE change set); any other
# answers "Stack:<id> is in <status> state and can not be updated".
UPDATABLE_STATUSES: Final = frozenset(
    {
        "CREATE_COMPLETE",
        "UPDATE_COMPLETE",
        "UPDATE_ROLLBACK_COMPLETE",
        "IMPORT_COMPLETE",
        "IMPORT_ROLLBACK_COMPLETE",
    }
)
# CloudFormation keeps at most 1,000 change sets per stack and refuses a new one past that with
# LimitExceededException "ChangeSet limit exceeded for stack <arn>" (CloudFormation quotas,
# https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html); a stack's
# other change sets are deleted only when one of them is executed.
CHANGE_SETS_PER_STACK: Final = 1000

RESOURCE_DRIFT_STATUSES: Final = frozenset({"IN_SYNC", "MODIFIED", "DELETED", "NOT_CHECKED", "UNKNOWN", "UNSUPPORTED"})
DRIFTED: Final = frozenset({"MODIFIED", "DELETED"})
DIFFERENCE_TYPES: Final = frozenset({"ADD", "REMOVE", "NOT_EQUAL"})
STACK_DRIFT_STATUSES: Final = frozenset({"DRIFTED", "IN_SYNC", "UNKNOWN", "NOT_CHECKED"})


@dataclass(frozen=True)
class InjectedDrift:
    status: str
    differences: tuple[dict[str, str], ...]


@dataclass(frozen=True)
class DetectionFailure:
    reason: str
    stack_drift_status: str


@dataclass
class Detection:
    detection_id: str
    stack_id: str
    stack_name: str
    polls_remaining: int
    failure: DetectionFailure | None
    timestamp: datetime
    resource_drifts: list[dict[str, Any]]

    @property
    def finished(self) -> bool:
        return self.polls_remaining <= 0


@dataclass
class ChangeSetExtras:
    """What the emulator adds to a moto ChangeSet (kept on the object, so moto's resets clear it)."""

    parameters: list[dict[str, str]]
    changes: list[dict[str, Any]]
    capabilities: list[str]
    rollback_configuration: RollbackConfiguration | None = None
    """As CreateChangeSet gave it (None: not given); executing the change set applies it to the stack."""


def cfn_backend(account_id: str, region: str) -> CloudFormationBackend:
    return cloudformation_backends[account_id][region]


def live_stack(backend: CloudFormationBackend, name_or_id: str) -> Stack | None:
    """The stack with this name or id that has not been deleted (moto moves deleted ones away)."""
    stack = backend.stacks.get(name_or_id)
    if stack is not None:
        return stack
    return next((s for s in backend.stacks.values() if s.name == name_or_id), None)


def template_of(stack: Stack) -> dict[str, Any]:
    template = stack.template
    if isinstance(template, dict):
        return template
    return parse_template(template)


def parse_template(body: str) -> dict[str, Any]:
    try:
        parsed = Stack.parse_template(body)
    except Exception as exc:  # any parse failure is an error in the caller's template
        raise ValidationError(message=f"Template format error: {exc}") from exc
    if not isinstance(parsed, dict):
        raise ValidationError(message="Template format error: JSON not well-formed.")
    return parsed


def resources_of(template: Mapping[str, Any]) -> dict[str, Any]:
    resources = template.get("Resources") or {}
    return dict(resources) if isinstance(resources, Mapping) else {}


def parameter_text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def effective_parameters(template: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, str]:
    """Template parameters with their values: the given one, else the Default (unset ones left out)."""
    slots = template.get("Parameters") or {}
    effective: dict[str, str] = {}
    for name, slot in slots.items():
        if name in given:
            effective[name] = parameter_text(given[name])
        elif isinstance(slot, Mapping) and "Default" in slot:
            effective[name] = parameter_text(slot["Default"])
    return effective


def physical_ids_of(stack: Stack | None) -> dict[str, str]:
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


def referenced_parameters(value: Any, parameters: Iterable[str]) -> set[str]:
    """Parameters that ``value`` uses through ``Ref`` or an ``${Name}`` in a string."""
    text = json.dumps(value, default=str)
    found: set[str] = set()
    for name in parameters:
        ref = json.dumps({"Ref": name})[1:-1]  # '"Ref": "Name"'
        if ref in text or "${" + name + "}" in text:
            found.add(name)
    return found


def change_set_not_found(name: str) -> ServiceException:
    return error("ChangeSetNotFound", f"ChangeSet [{name}] does not exist")


def find_change_set(backend: CloudFormationBackend, name_or_arn: str, stack_name: str | None) -> ChangeSet:
    if name_or_arn.startswith("arn:"):
        change_set = backend.change_sets.get(name_or_arn)
        if change_set is None:
            raise change_set_not_found(name_or_arn)
        return change_set
    if not stack_name:
        raise ValidationError(message="StackName must be specified if ChangeSetName is not specified as an ARN.")
    stack = live_stack(backend, stack_name)
    if stack is None:
        raise change_set_not_found(name_or_arn)
    for change_set in backend.change_sets.values():
        if change_set.stack_id == stack.stack_id and change_set.change_set_name == name_or_arn:
            return change_set
    raise change_set_not_found(name_or_arn)


def extras_of(change_set: ChangeSet) -> ChangeSetExtras:
    extras = getattr(change_set, _EXTRAS, None)
    if isinstance(extras, ChangeSetExtras):
        return extras
    # A change set moto made itself: describe what moto recorded.
    extras = ChangeSetExtras(
        parameters=[
            {"ParameterKey": k, "ParameterValue": parameter_text(v)} for k, v in (change_set.parameters or {}).items()
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
    attach_extras(change_set, extras)
    return extras


_EXTRAS: Final = "_local_aws_extras"


def attach_extras(change_set: ChangeSet, extras: ChangeSetExtras) -> None:
    setattr(change_set, _EXTRAS, extras)


@dataclass
class CloudFormationState:
    """The emulator's CloudFormation state in one account and Region."""

    injected: dict[str, dict[str, InjectedDrift]] = field(default_factory=dict)
    """Stack name -> logical id -> the drift every later detection reports."""
    failures: dict[str, DetectionFailure] = field(default_factory=dict)
    """Stack name -> how every later detection fails."""
    detections: dict[str, Detection] = field(default_factory=dict)
    """Detection id -> the detection, in the order they were started."""
    failing: dict[str, dict[str, ResourceFailure]] = field(default_factory=dict)
    """Stack name -> logical id -> how the next operations that create or change it fail."""
    monitoring: dict[str, Monitoring] = field(default_factory=dict)
    """Stack id -> the operation whose rollback triggers are being monitored on it."""


@dataclass
class ResourceFailure:
    reason: str
    remaining: int


@dataclass
class Monitoring:
    """A create or update whose rollback triggers CloudFormation monitors until ``ends_at`` (the
    emulator's clock), with what it needs to complete or to roll back."""

    stack_id: str
    kind: str
    """CREATE (applied already: rolling back deletes what it created) or UPDATE (held back until the end)."""
    configuration: RollbackConfiguration
    previous: RollbackConfiguration
    """The stack's rollback configuration before the operation, which a rollback puts back."""
    ends_at: datetime
    token: str | None
    apply: Callable[[], object]
    """For an UPDATE: what moto does at once, run when the monitoring ends."""
    change_set: ChangeSet | None = None


def cfn_state(account_id: str, region: str) -> CloudFormationState:
    return state_of(cfn_backend(account_id, region), CloudFormationState)


class CloudFormationSettings(BaseBackend):
    """Emulator-wide test settings (one instance: see :func:`settings`)."""

    def __init__(self, region_name: str, account_id: str) -> None:
        super().__init__(region_name, account_id)
        self.polls_before_complete = 0
        self.change_set_page_size: int | None = None
        self.change_set_limit = CHANGE_SETS_PER_STACK


settings_backends: Final = BackendDict(
    CloudFormationSettings, "local_aws", use_boto3_regions=False, additional_regions=["aws"]
)


def settings() -> CloudFormationSettings:
    """The emulator-wide settings, looked up afresh (moto's reset drops the previous instance)."""
    return settings_backends[DEFAULT_ACCOUNT_ID]["aws"]


def check_change_set_limit(backend: CloudFormationBackend, stack: Stack) -> None:
    """Refuse a change set past the stack's limit, as CreateChangeSet does."""
    held = sum(1 for change_set in backend.change_sets.values() if change_set.stack_id == stack.stack_id)
    if held >= settings().change_set_limit:
        raise error("LimitExceededException", f"ChangeSet limit exceeded for stack {stack.stack_id}")
