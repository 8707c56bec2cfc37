"""CloudWatch: an alarm's change reaches at once the CloudFormation operations that monitor it.

CloudFormation rolls an operation back "If any of the alarms goes to ALARM state during the stack
operation or the monitoring period", and fails it "If a specified trigger is missing"
(https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-cfn-rollback-triggers.html). The
emulator settles monitored operations lazily (:func:`local_aws.cloudformation.operations.settle`); an
alarm set to ALARM and back to OK between two reads of the stack would go unseen, so ``SetAlarmState``
and ``DeleteAlarms`` settle the operations of their account and Region as soon as moto has changed the
alarm. The alarm states themselves are moto's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from moto.cloudwatch.responses import CloudWatchResponse
from moto.core.responses import ActionResult

from local_aws.cloudformation.models import cfn_backend
from local_aws.cloudformation.operations import settle

__all__ = ["RESPONSES"]

_MOTO_RESPONSES: Final[dict[str, Callable[[CloudWatchResponse], ActionResult]]] = {
    name: getattr(CloudWatchResponse, name) for name in ("set_alarm_state", "delete_alarms")
}


def set_alarm_state(self: CloudWatchResponse) -> ActionResult:
    result = _MOTO_RESPONSES["set_alarm_state"](self)
    settle(cfn_backend(self.current_account, self.region))
    return result


def delete_alarms(self: CloudWatchResponse) -> ActionResult:
    result = _MOTO_RESPONSES["delete_alarms"](self)
    settle(cfn_backend(self.current_account, self.region))
    return result


RESPONSES: Final[dict[str, Callable[..., object]]] = {
    "set_alarm_state": set_alarm_state,
    "delete_alarms": delete_alarms,
}
"""CloudWatchResponse methods, by name."""
