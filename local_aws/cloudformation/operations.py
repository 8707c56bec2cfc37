"""Stack operations as CloudFormation runs them: they can fail, a failure rolls back, and each one
carries its request token and time.

moto 5.2.5 creates and updates a stack at once and never fails or rolls back, never sets
``LastUpdatedTime``, drops ``ClientRequestToken`` and lets UpdateStack change a stack in any status but
ROLLBACK_COMPLETE. The emulator models what AWS documents:

- A resource that fails while a stack is created rolls the stack back: every resource created is
  deleted and the stack ends ``ROLLBACK_COMPLETE``, a state in which it can only be deleted
  (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/troubleshooting.html#troubleshooting-errors-update-rollback-failed,
  https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-cfn-describing-stacks.html#cfn-console-view-stack-data-resources-status-codes).
- A resource that fails during an update rolls the stack back to its previous template, parameters and
  resources: ``UPDATE_ROLLBACK_COMPLETE``, which accepts updates again.
- The API call that starts the operation (ExecuteChangeSet, UpdateStack) succeeds either way: the
  failure shows in the stack's status and events, never as an error of the call.
- Executing a change set deletes the stack's other change sets, whatever the outcome.
- ``LastUpdatedTime`` is set by every update, never by a create
  (https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_Stack.html).
- Each stack event carries the ``ClientRequestToken`` of the operation that caused it
  (https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_StackEvent.html).
- UpdateStack accepts only a stack in an updatable status (:data:`UPDATABLE_STATUSES`).

An operation given rollback triggers and a monitoring time (:mod:`.rollback_triggers`) is monitored on
the emulator's clock (:mod:`local_aws.clock`): the stack stays ``CREATE_IN_PROGRESS`` or
``UPDATE_IN_PROGRESS`` until the clock passes the end of the monitoring time, then completes (an update
through ``UPDATE_COMPLETE_CLEANUP_IN_PROGRESS``: "if the monitoring period expires without any alarms
going to ALARM state, CloudFormation proceeds to dispose of old resources as usual"; the status during
the period is the one CancelUpdateStack, which the API reference offers for that period, accepts:
"You can cancel only stacks that are in the UPDATE_IN_PROGRESS state",
https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_CancelUpdateStack.html). A trigger
alarm in ALARM, or missing, at the start or during the period rolls the operation back as a failed
resource does. The status is brought up to the clock lazily: every CloudFormation request first settles
the monitored operations of its account and Region (:func:`call_action`), and so does every CloudWatch
SetAlarmState or DeleteAlarms (:mod:`local_aws.cloudwatch`), so an alarm that goes to ALARM and back
to OK between two reads of the stack still rolls it back. A creation is applied at once (its resources
exist while monitored, as in AWS) and its rollback deletes them; an update is held back until the
monitoring ends (AWS updates the resources at once and keeps the old ones until cleanup: while
monitored, the emulator shows the previous template, parameters and resources), so its rollback has
nothing to undo.

A test or scenario makes a resource fail with :func:`fail_resource`; nothing fails by itself. The
failure is modelled where the product deploys: ExecuteChangeSet (the pipeline's production and stage
change sets) and UpdateStack (stage-revert); CreateStack creates as moto does. A status that no call
reaches here, because moto finishes every operation at once (``UPDATE_IN_PROGRESS`` while an operation
runs, ``DELETE_FAILED``...), is set with :func:`set_stack_status`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Final

import botocore.session
from botocore.model import StringShape
from moto.cloudformation.exceptions import ValidationError
from moto.cloudformation.models import ChangeSet, CloudFormationBackend, Event, Stack
from moto.cloudformation.parsing import OutputMap
from moto.cloudformation.responses import CloudFormationResponse
from moto.core.common_types import TYPE_RESPONSE
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.core.responses import ActionResult, BaseResponse

from local_aws import clock
from local_aws.cloudformation import rollback_triggers
from local_aws.cloudformation.models import (
    CHANGE_SETS_PER_STACK,
    UPDATABLE_STATUSES,
    CloudFormationState,
    Monitoring,
    ResourceFailure,
    cfn_backend,
    cfn_state,
    effective_parameters,
    live_stack,
    parse_template,
    resources_of,
    settings,
    template_of,
)
from local_aws.cloudformation.rollback_triggers import RollbackConfiguration
from local_aws.core import LOCK, is_true, now, state_of

__all__ = ["STACK_STATUSES", "fail_resource", "run_operation", "set_change_set_limit", "set_stack_status", "settle"]


def _enum(service: str, shape_name: str) -> frozenset[str]:
    shape = botocore.session.get_session().get_service_model(service).shape_for(shape_name)
    assert isinstance(shape, StringShape), shape
    return frozenset(shape.enum)


# Every StackStatus CloudFormation reports (botocore's service model, the API reference's enum:
# https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_Stack.html).
STACK_STATUSES: Final = _enum("cloudformation", "StackStatus")

_MOTO_RESPONSES: Final[dict[str, Callable[..., ActionResult]]] = {
    name: getattr(CloudFormationResponse, name) for name in ("create_stack", "update_stack", "delete_stack")
}


def fail_resource(
    stack_name: str,
    region: str,
    logical_id: str,
    reason: str,
    *,
    times: int = 1,
    account_id: str = DEFAULT_ACCOUNT_ID,
) -> None:
    """Make the next ``times`` operations on ``stack_name`` that create or change ``logical_id`` fail at
    that resource with ``reason`` (as a CREATE_FAILED or UPDATE_FAILED event), and roll back."""
    if times < 1:
        raise ValueError("times must be 1 or more")
    with LOCK:
        failing = cfn_state(account_id, region).failing.setdefault(stack_name, {})
        failing[logical_id] = ResourceFailure(reason=reason, remaining=times)


def set_stack_status(
    stack_name: str,
    region: str,
    status: str,
    *,
    account_id: str = DEFAULT_ACCOUNT_ID,
) -> None:
    """Put the live stack ``stack_name`` (a name or a stack id) in ``status``, as DescribeStacks and
    ListStacks then report it and every operation then finds it. Only CloudFormation's own statuses,
    and not ``DELETE_COMPLETE``: a stack is deleted with DeleteStack."""
    if status not in STACK_STATUSES or status == "DELETE_COMPLETE":
        raise ValueError(f"status must be one of {sorted(STACK_STATUSES - {'DELETE_COMPLETE'})}, not {status!r}")
    with LOCK:
        stack = live_stack(cfn_backend(account_id, region), stack_name)
        if stack is None:
            raise ValueError(f"no stack {stack_name} in {account_id}/{region}")
        stack.status = status


def set_change_set_limit(limit: int | None) -> None:
    """Change sets a stack may hold (None: AWS's 1,000), so a scenario reaches the limit in a few pushes."""
    if limit is not None and limit < 1:
        raise ValueError("limit must be 1 or more")
    with LOCK:
        settings().change_set_limit = CHANGE_SETS_PER_STACK if limit is None else limit


def take_failure(backend: CloudFormationBackend, stack_name: str, touched: Iterable[str]) -> tuple[str, str] | None:
    """(logical id, reason) of the injected failure this operation meets, counting it down."""
    with LOCK:
        failing = cfn_state(backend.account_id, backend.region_name).failing.get(stack_name, {})
        for logical_id in sorted(touched):
            failure = failing.get(logical_id)
            if failure is None:
                continue
            failure.remaining -= 1
            if failure.remaining <= 0:
                del failing[logical_id]
            return logical_id, failure.reason
    return None


def _event(stack: Stack, status: str, reason: str | None = None, logical_id: str | None = None) -> None:
    if logical_id is None:
        stack._add_stack_event(status, resource_status_reason=reason)
        return
    resource_type = str(resources_of(template_of(stack)).get(logical_id, {}).get("Type", ""))
    stack.events.append(
        Event(
            stack_id=stack.stack_id,
            stack_name=stack.name,
            logical_resource_id=logical_id,
            physical_resource_id="",
            resource_type=resource_type,
            resource_status=status,
            resource_status_reason=reason,
            resource_properties=None,
        )
    )


def roll_back(stack: Stack, kind: str, failure: tuple[str, str], token: str | None) -> None:
    """The stack after an operation of ``kind`` (CREATE or UPDATE) failed at one resource: its events,
    its status, and (for an update) everything as it was before. Nothing of the new template is
    applied, so nothing needs undoing."""
    logical_id, reason = failure
    with recorded(stack, token):
        _event(stack, f"{kind}_IN_PROGRESS", "User Initiated")
        _event(stack, f"{kind}_FAILED", reason, logical_id)
        if kind == "CREATE":
            summary = f"The following resource(s) failed to create: [{logical_id}]. Rollback requested by user."
        else:
            summary = f"The following resource(s) failed to update: [{logical_id}]."
        rolled_back(stack, kind, summary)


def rolled_back(stack: Stack, kind: str, summary: str) -> None:
    """The rollback of an operation of ``kind`` that failed for ``summary``: its events and final status."""
    if kind == "CREATE":
        _event(stack, "ROLLBACK_IN_PROGRESS", summary)
        _event(stack, "ROLLBACK_COMPLETE")
        stack.status = "ROLLBACK_COMPLETE"
    else:
        _event(stack, "UPDATE_ROLLBACK_IN_PROGRESS", summary)
        _event(stack, "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS")
        _event(stack, "UPDATE_ROLLBACK_COMPLETE")
        stack.status = "UPDATE_ROLLBACK_COMPLETE"
        mark_updated(stack)
    _set(stack, "stack_status_reason", summary)


def _set(target: object, attribute: str, value: object) -> None:
    """Set an attribute moto's class does not declare (or types as None); moto's serializer picks it up
    by its name (StackStatusReason, LastUpdatedTime, ClientRequestToken)."""
    setattr(target, attribute, value)


def mark_updated(stack: Stack) -> None:
    """DescribeStacks' LastUpdatedTime from now on (moto picks the attribute up by its name)."""
    _set(stack, "last_updated_time", now())


@contextmanager
def recorded(stack: Stack, token: str | None) -> Iterator[None]:
    """Stamp the events the block adds to ``stack`` with the operation's ClientRequestToken."""
    before = len(stack.events)
    yield
    if token:
        for event in stack.events[before:]:
            _set(event, "client_request_token", token)


def _events_holder(backend: CloudFormationBackend, stack_id: str) -> Stack | None:
    return backend.stacks.get(stack_id) or backend.deleted_stacks.get(stack_id)


def run_operation(
    backend: CloudFormationBackend,
    stack: Stack,
    kind: str,
    requested: RollbackConfiguration | None,
    token: str | None,
    apply: Callable[[], object],
    *,
    change_set: ChangeSet | None = None,
) -> None:
    """Create or update ``stack`` (``kind`` CREATE or UPDATE) under its rollback configuration: the one
    requested, applied to the one the stack keeps. ``apply`` does what moto does at once. A CREATE is
    applied now; an UPDATE now if nothing is monitored, else when the monitoring ends. A trigger in
    ALARM (or missing) at the start rolls the operation back at once, even with 0 minutes ("If you
    specify 0 for this parameter, CloudFormation still monitors the specified rollback triggers during
    stack creation and update operations")."""
    previous = rollback_triggers.saved(stack)
    configuration = previous if requested is None else requested.applied_to(previous)
    rollback_triggers.save(stack, configuration)
    if kind == "CREATE":
        apply()
    reason = rollback_triggers.breach(backend.account_id, backend.region_name, configuration)
    if reason is None and not configuration.monitoring_minutes:
        if kind == "UPDATE":
            apply()
        return
    operation = Monitoring(
        stack_id=stack.stack_id,
        kind=kind,
        configuration=configuration,
        previous=previous,
        ends_at=clock.now() + timedelta(minutes=configuration.monitoring_minutes),
        token=token,
        apply=apply,
        change_set=change_set,
    )
    with recorded(stack, token):
        if kind == "CREATE":
            # moto created the stack at once: it is still being created while CloudFormation monitors.
            stack.events[:] = [e for e in stack.events if e.resource_status != "CREATE_COMPLETE"]
        else:
            _event(stack, "UPDATE_IN_PROGRESS", "User Initiated")
        stack.status = f"{kind}_IN_PROGRESS"
    if reason is not None:
        _roll_back_monitored(backend, stack, operation, reason)
        return
    if change_set is not None:
        change_set.execution_status = "EXECUTE_IN_PROGRESS"
    with LOCK:
        state_of(backend, CloudFormationState).monitoring[stack.stack_id] = operation


def settle(backend: CloudFormationBackend) -> None:
    """Bring the monitored operations of one account and Region up to the emulator's clock: one whose
    monitoring time has passed completes; one whose trigger is in ALARM (or missing) rolls back."""
    with LOCK:
        monitoring = state_of(backend, CloudFormationState).monitoring
        for stack_id, operation in list(monitoring.items()):
            stack = backend.stacks.get(stack_id)
            if stack is None:  # deleted meanwhile
                del monitoring[stack_id]
                continue
            if clock.now() >= operation.ends_at:
                del monitoring[stack_id]
                _complete(stack, operation)
                continue
            reason = rollback_triggers.breach(backend.account_id, backend.region_name, operation.configuration)
            if reason is not None:
                del monitoring[stack_id]
                _roll_back_monitored(backend, stack, operation, reason)


def _complete(stack: Stack, operation: Monitoring) -> None:
    with recorded(stack, operation.token):
        if operation.kind == "UPDATE":
            with _replaced_events(stack):
                operation.apply()
            _event(stack, "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")
        _event(stack, f"{operation.kind}_COMPLETE")
        stack.status = f"{operation.kind}_COMPLETE"
    if operation.change_set is not None:
        operation.change_set.execution_status = "EXECUTE_COMPLETE"


def _roll_back_monitored(backend: CloudFormationBackend, stack: Stack, operation: Monitoring, reason: str) -> None:
    """Roll back as a failed resource does, the stack's previous rollback configuration with the rest."""
    with recorded(stack, operation.token):
        if operation.kind == "CREATE":
            _delete_created_resources(backend, stack)
        rolled_back(stack, operation.kind, reason)
    rollback_triggers.save(stack, operation.previous)
    if operation.change_set is not None:
        operation.change_set.execution_status = "EXECUTE_FAILED"


def _delete_created_resources(backend: CloudFormationBackend, stack: Stack) -> None:
    """A creation that rolls back deletes every resource it created, and its exports with them."""
    for export in list(stack.exports):
        backend.exports.pop(export.name, None)
    stack.resource_map.delete()
    # moto's map creates a template's resource again when it is listed: leave it none to list (it keeps
    # the stack's parameters), and no outputs.
    stack.resource_map._resource_json_map = {}
    stack.output_map = OutputMap(stack.resource_map, {}, stack.stack_id)


@contextmanager
def _replaced_events(stack: Stack) -> Iterator[None]:
    """Drop the events moto writes in the block (it writes an update's start and end at once)."""
    before = len(stack.events)
    yield
    del stack.events[before:]


def call_action(self: CloudFormationResponse) -> TYPE_RESPONSE:
    """Every CloudFormation request first settles the monitored operations of its account and Region,
    so whatever it reads or changes is up to the emulator's clock."""
    settle(self.cloudformation_backend)
    return BaseResponse.call_action(self)


def create_stack(self: CloudFormationResponse) -> ActionResult:
    requested = rollback_triggers.requested(self._get_param("RollbackConfiguration"))
    result = _MOTO_RESPONSES["create_stack"](self)
    backend = self.cloudformation_backend
    stack = live_stack(backend, self._get_param("StackName"))
    if stack is None:
        return result
    token = self._get_param("ClientRequestToken")
    rollback_triggers.save(stack, rollback_triggers.NONE)
    run_operation(backend, stack, "CREATE", requested, token, lambda: None)  # moto has created it already
    if token:
        for event in stack.events:
            _set(event, "client_request_token", token)
    return result


def update_stack(self: CloudFormationResponse) -> ActionResult:
    backend = self.cloudformation_backend
    name = self._get_param("StackName")
    stack = live_stack(backend, name)
    if stack is None:
        raise ValidationError(message=f"Stack [{name}] does not exist")
    if stack.status not in UPDATABLE_STATUSES:
        raise ValidationError(message=f"Stack:{stack.stack_id} is in {stack.status} state and can not be updated.")
    requested = rollback_triggers.requested(self._get_param("RollbackConfiguration"))
    token = self._get_param("ClientRequestToken")
    body = self._get_param("TemplateBody")
    if body is None and self._get_param("TemplateURL"):
        body = self._get_stack_from_s3_url(self._get_param("TemplateURL"))
    if body is not None:
        old, new = resources_of(template_of(stack)), resources_of(parse_template(body))
        touched = {logical_id for logical_id, resource in new.items() if old.get(logical_id) != resource}
        failure = take_failure(backend, stack.name, touched)
        if failure is not None:
            roll_back(stack, "UPDATE", failure, token)
            return ActionResult({"StackId": stack.stack_id})
    # What moto refuses when it updates, refused now: the update may be held back while it is monitored.
    incoming = self._get_param("Parameters", []) or []
    for parameter in incoming:
        if is_true(parameter.get("UsePreviousValue", False)) and parameter.get("ParameterValue"):
            raise ValidationError(
                message=f"Invalid input for parameter key {parameter.get('ParameterKey')}. Cannot specify "
                "usePreviousValue as true and non empty value for a parameter"
            )
    if body is None and is_true(self._get_param("UsePreviousTemplate", False)):
        body = stack.template
    if isinstance(body, str):
        self._validate_different_update(incoming, body, stack)

    def apply() -> None:
        # A parameter the stack took from its template's Default has that value as its previous value (AWS
        # lists it in DescribeStacks and accepts UsePreviousValue for it); moto 5.2.5 knows only given ones.
        previous = effective_parameters(template_of(stack), stack.parameters or {})
        for parameter in incoming:
            key = parameter.get("ParameterKey")
            if is_true(parameter.get("UsePreviousValue", False)) and key in previous:
                stack.parameters.setdefault(key, previous[key])
        with recorded(stack, token):
            _MOTO_RESPONSES["update_stack"](self)
        mark_updated(stack)

    run_operation(backend, stack, "UPDATE", requested, token, apply)
    return ActionResult({"StackId": stack.stack_id})


def delete_stack(self: CloudFormationResponse) -> ActionResult:
    backend = self.cloudformation_backend
    stack = live_stack(backend, self._get_param("StackName"))
    if stack is None:
        return _MOTO_RESPONSES["delete_stack"](self)
    stack_id, before = stack.stack_id, len(stack.events)
    result = _MOTO_RESPONSES["delete_stack"](self)
    token = self._get_param("ClientRequestToken")
    holder = _events_holder(backend, stack_id)
    if holder is not None and token:
        for event in holder.events[before:]:
            _set(event, "client_request_token", token)
    return result


RESPONSES: Final[dict[str, Callable[..., Any]]] = {
    "call_action": call_action,
    "create_stack": create_stack,
    "update_stack": update_stack,
    "delete_stack": delete_stack,
}
"""CloudFormationResponse methods, by name."""
