"""Typed errors. Each one carries a message written for the person reading the pipeline console."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from botocore.exceptions import ClientError


def error_code(error: ClientError) -> str:
    """The AWS error code of a ClientError ("" when the answer had none)."""
    return str(error.response.get("Error", {}).get("Code", ""))


class PipelineError(Exception):
    """A failure whose message is shown to the user as it is."""

    failure_type = "JobFailed"


class ConfigurationError(PipelineError):
    """The function's environment (its template wiring) is missing or malformed."""

    failure_type = "ConfigurationError"


class BadInputError(PipelineError):
    """The job's input (event, artifact, parameters) cannot be used."""


class ArtifactError(BadInputError):
    """An input artifact is missing, corrupt, unsafe or lacks the expected file."""


class ChangeSetError(PipelineError):
    """A change set failed for a reason other than having no changes."""


class DriftBlockedError(PipelineError):
    """Drift was found and the drift policy is BLOCK."""


class RolloutError(PipelineError):
    """The rollout did not release the change: it was rolled back, failed, timed out or was stopped."""


class StackBusyError(Exception):
    """A stack is in a transitional state; the caller should retry later."""


class StackStuckError(Exception):
    """A stack is in a state only a person can fix; the event is kept in the dead-letter queue."""


class ReleaseRecordError(PipelineError):
    """The release record exists but cannot be read."""
