"""What every service module of the emulator shares: AWS-shaped results and errors, and the emulator's
state kept on moto's own backend objects.

State lives where moto keeps a service's data: on the backend of one account and Region
(``cloudformation_backends[account][region]``...). moto's reset (``mock_aws`` start and stop,
``BackendDict.reset``, a ``ThreadedMotoServer``'s ``POST /moto-api/reset``) empties every backend
object and drops it, and the emulator's state with it: no test resets anything by hand.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any, Final

from moto import settings
from moto.core.base_backend import BaseBackend
from moto.core.common_types import TYPE_RESPONSE
from moto.core.exceptions import ServiceException
from moto.core.responses import ActionContext, ActionResult
from moto.core.serialize import XFormedAttributePicker

__all__ = ["LOCK", "MOTO_VERSION", "PlainResult", "ServiceError", "error", "is_true", "now", "state_of"]

MOTO_VERSION: Final = "5.2.5"
"""The moto version the emulator was written and verified against."""

LOCK: Final = threading.RLock()
"""Held while the emulator reads or changes its state (the server answers requests on many threads)."""


def state_of[T](backend: BaseBackend, kind: type[T]) -> T:
    """The emulator's ``kind`` state for one backend, made on first use and kept as an attribute of the
    backend object, so that moto's reset (which empties the object's ``__dict__``) forgets it."""
    attribute = f"_local_aws_{kind.__name__}"
    with LOCK:
        found = backend.__dict__.get(attribute)
        if not isinstance(found, kind):
            found = kind()
            backend.__dict__[attribute] = found
        return found


class PlainResult(ActionResult):
    """A result already in AWS's shape: serialized without the response class's key transformers."""

    def execute_result(self, context: ActionContext) -> TYPE_RESPONSE:
        serializer = context.serializer_class(
            operation_model=context.operation_model,
            pretty_print=settings.PRETTIFY_RESPONSES,
            value_picker=XFormedAttributePicker(response_transformers=None),
        )
        serialized = serializer.serialize(self.result)
        return serialized["status_code"], dict(serialized["headers"]), serialized["body"]


class ServiceError(ServiceException):
    """An AWS error by code. Defined here, not in a moto module, because moto looks the error shape
    up in the service model named after the exception's moto package ("core" for ServiceException)."""


def error(code: str, message: str) -> ServiceException:
    return ServiceError(code, message)


def now() -> datetime:
    return datetime.now(UTC)


def is_true(value: Any) -> bool:
    return value is True or str(value).lower() == "true"
