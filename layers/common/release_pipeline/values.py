"""Value types shared by the modules. This module imports none of the package's others: every module may
import it, and it never pulls a job, a client or the environment in with it."""

from __future__ import annotations

from dataclasses import dataclass


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis when it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class S3Location:
    """An S3 object's bucket and key."""

    bucket: str
    key: str


class Credentials:
    """Temporary credentials, kept out of ``repr`` so they never reach a log line."""

    __slots__ = ("access_key_id", "secret_access_key", "session_token")

    def __init__(self, access_key_id: str, secret_access_key: str, session_token: str) -> None:
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key
        self.session_token = session_token

    def __repr__(self) -> str:
        return "Credentials(<redacted>)"
