"""CloudFormation rollback configuration: the CloudWatch alarms (rollback triggers) and the monitoring time
that CreateStack, UpdateStack and CreateChangeSet accept, which moto 5.2.5 ignores.

What AWS documents, and the emulator follows
(https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-cfn-rollback-triggers.html,
https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_RollbackConfiguration.html,
https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_RollbackTrigger.html):

- "You can set a monitoring time from the default of 0 up to 180 minutes" (MonitoringTimeInMinutes:
  "Valid Range: Minimum value of 0. Maximum value of 180"); at most five triggers (the user guide; the
  RollbackTriggers list is ``max: 5`` in botocore's service model). botocore checks neither maximum
  before sending, so the service refuses them: ValidationError in the shape CloudFormation gives every
  constraint on a request member ("1 validation error detected: Value '181' at
  'rollbackConfiguration.monitoringTimeInMinutes' failed to satisfy constraint: ..."), as it does for
  the change set name.
- A trigger's Type: "Specify either AWS::CloudWatch::Alarm or AWS::CloudWatch::CompositeAlarm resource
  types". Another type is refused with ValidationError; the wording of that message is not documented.
- "If a specified trigger is missing, the entire stack operation fails and is rolled back": an alarm
  that does not exist in the stack's account and Region is not refused by the call; the operation that
  meets it rolls back (see :func:`breach`).
- "If any of the alarms goes to ALARM state during the stack operation or the monitoring period,
  CloudFormation rolls back the entire stack operation"; only ALARM counts ("not INSUFFICIENT_DATA").
- "CloudFormation saves the rollback triggers specified for a stack and applies them to any subsequent
  update operations for the stack, unless you specify otherwise. If you do specify rollback triggers for
  this parameter, those triggers replace any list of triggers previously specified for the stack":
  triggers left out keep the saved ones; an empty list removes them. MonitoringTimeInMinutes: "The
  default is 0 minutes". Whether a stack also keeps its monitoring time for an update that gives no
  RollbackConfiguration at all is not documented: the emulator keeps it (the stricter reading: that
  update waits as well).
- DescribeStacks and DescribeChangeSet show ``RollbackConfiguration``, ``{}`` when none was given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from moto.cloudformation.exceptions import ValidationError
from moto.cloudformation.models import Stack
from moto.cloudwatch.models import cloudwatch_backends

__all__ = [
    "MAX_MONITORING_MINUTES",
    "MAX_TRIGGERS",
    "NONE",
    "TRIGGER_TYPES",
    "RollbackConfiguration",
    "Trigger",
    "breach",
    "requested",
    "save",
    "saved",
]

MAX_TRIGGERS: Final = 5
MAX_MONITORING_MINUTES: Final = 180
TRIGGER_TYPES: Final = frozenset({"AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm"})

_ATTRIBUTE: Final = "rollback_configuration"  # moto's serializer shows it as the Stack's RollbackConfiguration


@dataclass(frozen=True)
class Trigger:
    arn: str
    type: str


@dataclass(frozen=True)
class RollbackConfiguration:
    """A rollback configuration as a request gave it or a stack keeps it. ``triggers`` None: not given
    (an update then keeps the stack's); ``minutes`` None: not given (0 minutes)."""

    triggers: tuple[Trigger, ...] | None = None
    minutes: int | None = None

    @property
    def monitoring_minutes(self) -> int:
        return self.minutes or 0

    @property
    def alarms(self) -> tuple[Trigger, ...]:
        return self.triggers or ()

    def applied_to(self, saved: RollbackConfiguration) -> RollbackConfiguration:
        """What an operation given this configuration runs with on a stack that keeps ``saved``."""
        return RollbackConfiguration(
            triggers=saved.triggers if self.triggers is None else self.triggers,
            minutes=self.monitoring_minutes,
        )

    def api(self) -> dict[str, Any]:
        """The RollbackConfiguration structure as DescribeStacks and DescribeChangeSet return it."""
        shape: dict[str, Any] = {}
        if self.triggers is not None:
            shape["RollbackTriggers"] = [{"Arn": t.arn, "Type": t.type} for t in self.triggers]
        if self.minutes is not None:
            shape["MonitoringTimeInMinutes"] = self.minutes
        return shape


NONE: Final = RollbackConfiguration()


def requested(raw: Mapping[str, Any] | None) -> RollbackConfiguration | None:
    """The request's RollbackConfiguration (None: not given), refused as CloudFormation refuses it."""
    if not raw:
        return None
    raw_triggers = raw.get("RollbackTriggers")
    triggers = None if raw_triggers is None else _triggers(raw_triggers)
    raw_minutes = raw.get("MonitoringTimeInMinutes")
    minutes = None if raw_minutes in (None, "") else _integer(raw_minutes)
    violations: list[str] = []
    if triggers is not None and len(triggers) > MAX_TRIGGERS:
        listed = ", ".join(f"{{Arn: {t.arn}, Type: {t.type}}}" for t in triggers)  # value rendering undocumented
        violations.append(
            f"Value '[{listed}]' at 'rollbackConfiguration.rollbackTriggers' failed to satisfy constraint: "
            f"Member must have length less than or equal to {MAX_TRIGGERS}"
        )
    if minutes is not None and minutes > MAX_MONITORING_MINUTES:
        violations.append(
            f"Value '{minutes}' at 'rollbackConfiguration.monitoringTimeInMinutes' failed to satisfy constraint: "
            f"Member must have value less than or equal to {MAX_MONITORING_MINUTES}"
        )
    if minutes is not None and minutes < 0:
        violations.append(
            f"Value '{minutes}' at 'rollbackConfiguration.monitoringTimeInMinutes' failed to satisfy constraint: "
            "Member must have value greater than or equal to 0"
        )
    if violations:
        count = f"{len(violations)} validation error{'s' if len(violations) > 1 else ''} detected"
        raise ValidationError(message=f"{count}: {'; '.join(violations)}")
    for trigger in triggers or ():
        if trigger.type not in TRIGGER_TYPES:
            # AWS documents the two types, not the wording of this refusal.
            raise ValidationError(
                message=f"Rollback trigger {trigger.arn} has an unsupported type {trigger.type}: specify "
                f"{' or '.join(sorted(TRIGGER_TYPES))}"
            )
    return RollbackConfiguration(triggers=triggers, minutes=minutes)


def _triggers(raw: Any) -> tuple[Trigger, ...]:
    if raw == "":  # the Query protocol's empty list: "specify an empty list" removes the triggers
        return ()
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise ValidationError(message="RollbackTriggers must be a list")
    triggers: list[Trigger] = []
    for item in raw:
        arn = item.get("Arn") if isinstance(item, Mapping) else None
        kind = item.get("Type") if isinstance(item, Mapping) else None
        if not arn or not kind:
            raise ValidationError(message="Each rollback trigger needs an Arn and a Type")
        triggers.append(Trigger(arn=str(arn), type=str(kind)))
    return tuple(triggers)


def _integer(raw: Any) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError) as exc:
        raise ValidationError(message=f"MonitoringTimeInMinutes must be an integer, not {raw!r}") from exc


def saved(stack: Stack) -> RollbackConfiguration:
    """The rollback configuration ``stack`` keeps for its next update."""
    shape = getattr(stack, _ATTRIBUTE, None) or {}
    raw_triggers = shape.get("RollbackTriggers")
    return RollbackConfiguration(
        triggers=None if raw_triggers is None else tuple(Trigger(t["Arn"], t["Type"]) for t in raw_triggers),
        minutes=shape.get("MonitoringTimeInMinutes"),
    )


def save(stack: Stack, configuration: RollbackConfiguration) -> None:
    """Keep ``configuration`` on ``stack``, as DescribeStacks shows it."""
    setattr(stack, _ATTRIBUTE, configuration.api())


def breach(account_id: str, region: str, configuration: RollbackConfiguration) -> str | None:
    """Why the operation must roll back now (a trigger's alarm in ALARM, or missing), or None.

    The alarm must exist in the stack's own account and Region. CloudFormation's wording of both
    reasons is not documented: these name the alarm's ARN."""
    alarms = {alarm.alarm_arn: alarm for alarm in cloudwatch_backends[account_id][region].alarms.values()}
    for trigger in configuration.alarms:
        alarm = alarms.get(trigger.arn)
        if alarm is None:
            return f"Rollback trigger {trigger.arn} was not found: the stack operation is rolled back."
        if alarm.state_value == "ALARM":
            return f"Rollback trigger {trigger.arn} is in ALARM state: the stack operation is rolled back."
    return None
