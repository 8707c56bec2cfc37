"""CloudFormation change sets, replaced as a whole (``CreateChangeSet``, ``DescribeChangeSet``,
``ListChangeSets``, ``ExecuteChangeSet``, ``DeleteChangeSet``) because moto 5.2.5 raises "No updates
are to be performed" for an unchanged UPDATE change set, defaults ChangeSetType to CREATE, creates a
second stack of the same name for a CREATE change set on a REVIEW_IN_PROGRESS stack, looks change sets
up by name across all stacks, never updates a stack's parameters on execution and ignores the rollback
configuration (kept on the change set here, and applied to the stack by its execution: see
:mod:`.rollback_triggers`). moto also makes every change set at once: :func:`set_change_set_status`
shows one as still being made.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from moto.cloudformation.exceptions import ValidationError
from moto.cloudformation.models import ChangeSet, Stack
from moto.cloudformation.responses import CloudFormationResponse
from moto.cloudformation.utils import generate_changeset_id
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.core.responses import ActionResult, EmptyResult

from local_aws.cloudformation import rollback_triggers
from local_aws.cloudformation.models import (
    NO_CHANGES_REASON,
    UPDATABLE_STATUSES,
    ChangeSetExtras,
    attach_extras,
    cfn_backend,
    check_change_set_limit,
    effective_parameters,
    extras_of,
    find_change_set,
    live_stack,
    parameter_text,
    parse_template,
    physical_ids_of,
    referenced_parameters,
    resources_of,
    settings,
    template_of,
)
from local_aws.cloudformation.operations import mark_updated, recorded, roll_back, run_operation, take_failure
from local_aws.core import LOCK, PlainResult, error, is_true

_CHANGE_SCOPES: Final = (
    "Properties",
    "Metadata",
    "CreationPolicy",
    "UpdatePolicy",
    "DeletionPolicy",
    "UpdateReplacePolicy",
    "Tags",
)


def fail_change_set(
    stack_name: str,
    change_set_name: str,
    region: str,
    reason: str,
    *,
    account_id: str = DEFAULT_ACCOUNT_ID,
) -> None:
    """Turn an existing change set into Status FAILED, ExecutionStatus UNAVAILABLE with this reason."""
    backend = cfn_backend(account_id, region)
    change_set = find_change_set(backend, change_set_name, stack_name)
    change_set.status = "FAILED"
    change_set.execution_status = "UNAVAILABLE"
    change_set.status_reason = reason
    extras_of(change_set).changes = []


# What DescribeChangeSet shows while CloudFormation makes a change set and once it has made it: the
# ExecutionStatus is UNAVAILABLE until the Status is CREATE_COMPLETE, then AVAILABLE
# (https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_DescribeChangeSet.html).
_MAKING_STATUSES: Final = {
    "CREATE_PENDING": "UNAVAILABLE",
    "CREATE_IN_PROGRESS": "UNAVAILABLE",
    "CREATE_COMPLETE": "AVAILABLE",
}


def set_change_set_status(
    stack_name: str,
    change_set_name: str,
    region: str,
    status: str,
    *,
    account_id: str = DEFAULT_ACCOUNT_ID,
) -> None:
    """Show an existing change set as still being made (``CREATE_PENDING``, ``CREATE_IN_PROGRESS``) or as
    made (``CREATE_COMPLETE``), with the ExecutionStatus that goes with it; moto makes every change set
    at once. A FAILED change set stays failed (see :func:`fail_change_set`)."""
    if status not in _MAKING_STATUSES:
        raise ValueError(f"status must be one of {sorted(_MAKING_STATUSES)}, not {status!r}")
    with LOCK:
        change_set = find_change_set(cfn_backend(account_id, region), change_set_name, stack_name)
        if change_set.status not in _MAKING_STATUSES:
            raise ValueError(f"change set {change_set_name} is {change_set.status}: it cannot be made again")
        change_set.status = status
        change_set.execution_status = _MAKING_STATUSES[status]


def set_change_set_page_size(size: int | None) -> None:
    """Page DescribeChangeSet's Changes by ``size`` (None, the default: one page), so a test can
    prove that the code follows NextToken."""
    if size is not None and size < 1:
        raise ValueError("size must be 1 or more")
    with LOCK:
        settings().change_set_page_size = size


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
        for parameter in sorted(referenced_parameters(new_props.get(name), changed_parameters)):
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
    old_resources = resources_of(old_template)
    new_resources = resources_of(new_template)
    changed_parameters = {
        name
        for name in set(old_parameters) | set(new_parameters)
        if old_parameters.get(name) != new_parameters.get(name)
    }
    physical_ids = physical_ids_of(stack)
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
        if is_true(parameter.get("UsePreviousValue", False)):
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
            given[key] = parameter_text(stack.parameters[key])
        else:
            given[key] = parameter_text(parameter.get("ParameterValue", ""))
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


def create_change_set(self: CloudFormationResponse) -> ActionResult:
    backend = self.cloudformation_backend
    stack_name: str = self._get_param("StackName")
    name: str = self._get_param("ChangeSetName")
    change_set_type: str = self._get_param("ChangeSetType") or "UPDATE"
    body: str | None = self._get_param("TemplateBody")
    template_url: str | None = self._get_param("TemplateURL")
    use_previous = is_true(self._get_param("UsePreviousTemplate", False))

    if not re.fullmatch(r"[a-zA-Z][-a-zA-Z0-9]*", name or "") or len(name) > 128:
        raise ValidationError(
            message=f"1 validation error detected: Value '{name}' at 'changeSetName' failed to satisfy "
            "constraint: Member must satisfy regular expression pattern: [a-zA-Z][-a-zA-Z0-9]*"
        )
    if change_set_type not in {"CREATE", "UPDATE"}:
        raise ValidationError(message=f"ChangeSetType {change_set_type} is not supported by this test double.")
    if sum(bool(x) for x in (body, template_url, use_previous)) != 1:
        raise ValidationError(message="Specify exactly one of TemplateBody, TemplateURL or UsePreviousTemplate.")
    rollback_configuration = rollback_triggers.requested(self._get_param("RollbackConfiguration"))

    stack = live_stack(backend, stack_name)
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
        if stack.status not in UPDATABLE_STATUSES:
            raise ValidationError(message=f"Stack:{stack.stack_id} is in {stack.status} state and can not be updated.")
    if stack is not None and any(
        cs.stack_id == stack.stack_id and cs.change_set_name == name for cs in backend.change_sets.values()
    ):
        raise error("AlreadyExistsException", f"ChangeSet [{name}] already exists")
    if stack is not None:
        check_change_set_limit(backend, stack)

    if use_previous:
        assert stack is not None
        template_body = stack.template if isinstance(stack.template, str) else json.dumps(stack.template)
    elif template_url:
        template_body = self._get_stack_from_s3_url(template_url)
    else:
        template_body = str(body)
    new_template = parse_template(template_body)
    if not resources_of(new_template):
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
        rollback_triggers.save(stack, rollback_triggers.NONE)
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
        old_template = template_of(stack)
        old_parameters = effective_parameters(old_template, stack.parameters or {})
    new_parameters = effective_parameters(new_template, given)

    unchanged = change_set_type == "UPDATE" and old_template == new_template and old_parameters == new_parameters
    if unchanged:
        change_set.status, change_set.execution_status = "FAILED", "UNAVAILABLE"
        change_set.status_reason = NO_CHANGES_REASON
        changes: list[dict[str, Any]] = []
    else:
        change_set.status, change_set.execution_status = "CREATE_COMPLETE", "AVAILABLE"
        change_set.status_reason = None
        changes = _plan_changes(stack, old_template, new_template, old_parameters, new_parameters)
    extras = ChangeSetExtras(
        parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in new_parameters.items()],
        changes=changes,
        capabilities=list(self._get_param("Capabilities", []) or []),
        rollback_configuration=rollback_configuration,
    )
    attach_extras(change_set, extras)
    return PlainResult({"Id": change_set.change_set_id, "StackId": stack.stack_id})


def describe_change_set(self: CloudFormationResponse) -> ActionResult:
    backend = self.cloudformation_backend
    change_set = find_change_set(backend, self._get_param("ChangeSetName"), self._get_param("StackName"))
    extras = extras_of(change_set)
    page_size = settings().change_set_page_size or max(len(extras.changes), 1)
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
        "RollbackConfiguration": (extras.rollback_configuration or rollback_triggers.NONE).api(),
    }
    if change_set.description:
        result["Description"] = change_set.description
    if change_set.status_reason:
        result["StatusReason"] = change_set.status_reason
    if start + page_size < len(extras.changes):
        result["NextToken"] = str(start + page_size)
    return PlainResult(result)


def list_change_sets(self: CloudFormationResponse) -> ActionResult:
    backend = self.cloudformation_backend
    stack_name = self._get_param("StackName")
    stack = live_stack(backend, stack_name)
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
    return PlainResult({"Summaries": summaries})


def execute_change_set(self: CloudFormationResponse) -> ActionResult:
    backend = self.cloudformation_backend
    change_set = find_change_set(backend, self._get_param("ChangeSetName"), self._get_param("StackName"))
    if change_set.status != "CREATE_COMPLETE":
        raise error(
            "InvalidChangeSetStatus",
            f"ChangeSet [{change_set.change_set_id}] cannot be executed in its current status of [{change_set.status}]",
        )
    if change_set.execution_status != "AVAILABLE":
        raise error(
            "InvalidChangeSetStatus",
            f"ChangeSet [{change_set.change_set_id}] cannot be executed "
            f"in its current execution status of [{change_set.execution_status}]",
        )
    stack = backend.stacks[change_set.stack_id]
    # Like AWS: executing a change set deletes the stack's other change sets, whatever the outcome.
    for change_set_id, other in list(backend.change_sets.items()):
        if other.stack_id == stack.stack_id and other is not change_set:
            del backend.change_sets[change_set_id]
    token = self._get_param("ClientRequestToken")
    touched = {c["ResourceChange"]["LogicalResourceId"] for c in extras_of(change_set).changes}
    failure = take_failure(backend, stack.name, touched)
    if failure is not None:
        roll_back(stack, change_set.change_set_type, failure, token)
        change_set.execution_status = "EXECUTE_FAILED"
        return EmptyResult()

    def apply() -> None:
        with recorded(stack, token):
            backend.execute_change_set(change_set_name=change_set.change_set_id, stack_name=change_set.stack_name)
        if change_set.change_set_type == "UPDATE":
            mark_updated(stack)
        # moto 5.2.5 keeps the old parameters, template dict, description and outputs: bring them up to date.
        stack.parameters = dict(change_set.parameters or {})
        stack._parse_template()
        stack.description = stack.template_dict.get("Description")
        stack.output_map = stack._create_output_map()

    run_operation(
        backend,
        stack,
        change_set.change_set_type,
        extras_of(change_set).rollback_configuration,
        token,
        apply,
        change_set=change_set,
    )
    return EmptyResult()


def delete_change_set(self: CloudFormationResponse) -> ActionResult:
    backend = self.cloudformation_backend
    change_set = find_change_set(backend, self._get_param("ChangeSetName"), self._get_param("StackName"))
    if change_set.execution_status == "EXECUTE_IN_PROGRESS":
        raise error(
            "InvalidChangeSetStatus",
            f"ChangeSet [{change_set.change_set_id}] cannot be deleted "
            f"in its current execution status of [{change_set.execution_status}]",
        )
    del backend.change_sets[change_set.change_set_id]
    return EmptyResult()


RESPONSES: Final[dict[str, Callable[..., object]]] = {
    "create_change_set": create_change_set,
    "describe_change_set": describe_change_set,
    "list_change_sets": list_change_sets,
    "execute_change_set": execute_change_set,
    "delete_change_set": delete_change_set,
}
"""CloudFormationResponse methods, by name."""
