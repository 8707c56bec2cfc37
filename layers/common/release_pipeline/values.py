"""Value types shared by the modules. This module imports none of the package's others: every module may
import it, and it never pulls a job, a client or the environment in with it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis when it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def join_within(items: Sequence[str], separator: str, limit: int, left_out: Callable[[int], str]) -> str:
    """``items`` joined with ``separator`` in at most ``limit`` characters: as many whole items as fit,
    then ``left_out(count)`` saying how many were left out. When not even the first item fits beside
    that note, the first item is cut (:func:`shorten`) to make room."""
    text = separator.join(items)
    if len(text) <= limit or len(items) < 2:
        return shorten(text, limit)
    kept, length = 1, len(items[0])  # the first ``kept`` items, joined, are ``length`` characters
    for item in items[1:-1]:
        longer = length + len(separator) + len(item)
        if longer + len(separator) + len(left_out(len(items) - kept - 1)) > limit:
            break
        kept, length = kept + 1, longer
    note = separator + left_out(len(items) - kept)
    if length + len(note) > limit:
        return shorten(items[0], max(limit - len(note), 1)) + note
    return separator.join(items[:kept]) + note


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
