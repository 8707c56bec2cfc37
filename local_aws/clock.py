"""The emulator's clock: AWS's time as the emulator's timeouts see it, which a scenario can advance.

moto has no clock of its own: every operation completes at once and nothing ever expires. The
timeouts the product must respect are CodePipeline's (a manual approval expires after its
TimeoutInMinutes, 7 days by default; a Lambda invoke action that keeps returning continuation tokens is
ended after 24 hours: https://docs.aws.amazon.com/codepipeline/latest/userguide/limits.html). The
rehearsal measures them on this clock, and a scenario moves it forward with :func:`advance` instead of
waiting. Step Functions' Wait states and Retry intervals run on it too (:func:`sleep`): a 30-minute bake
ends when a scenario advances the clock past it, not after 30 real minutes. The offset lives in a
backend of its own, so moto's reset puts the clock back to real time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, Final

from moto.core.base_backend import BackendDict, BaseBackend
from moto.core.models import DEFAULT_ACCOUNT_ID

from local_aws.core import LOCK
from local_aws.core import now as real_now

__all__ = ["ACTIVITY", "POLL_SECONDS", "Activity", "advance", "now", "sleep"]

POLL_SECONDS: Final = 0.05
"""How often, in real seconds, :func:`sleep` looks at the clock."""


class ClockBackend(BaseBackend):
    """How far the emulator's clock runs ahead of real time (one instance: see :func:`_clock`)."""

    def __init__(self, region_name: str, account_id: str) -> None:
        super().__init__(region_name, account_id)
        self.offset = timedelta(0)


clock_backends: Final = BackendDict(
    ClockBackend, "local_aws_clock", use_boto3_regions=False, additional_regions=["aws"]
)


def _clock() -> ClockBackend:
    return clock_backends[DEFAULT_ACCOUNT_ID]["aws"]


def now() -> datetime:
    """The emulator's time (UTC)."""
    with LOCK:
        return real_now() + _clock().offset


def advance(delta: timedelta) -> datetime:
    """Move the clock forward by ``delta`` (never back); returns the new time."""
    if delta < timedelta(0):
        raise ValueError("the clock only moves forward")
    with LOCK:
        _clock().offset += delta
    return now()


class Activity:
    """What this process's emulated services are doing right now: work that runs on its own (a state
    machine's Lambda task, run in process) and waits for the clock (:func:`sleep`). A scenario that moves
    the clock does so once everything has come to wait for it (:meth:`waiting_for_clock`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._working = 0
        self._waiting = 0
        self._changed = time.monotonic()
        self._ends: list[datetime] = []  # when each wait for the clock ends

    @contextmanager
    def _counted(self, working: int, waiting: int) -> Iterator[None]:
        with self._lock:
            self._working += working
            self._waiting += waiting
            self._changed = time.monotonic()
        try:
            yield
        finally:
            with self._lock:
                self._working -= working
                self._waiting -= waiting
                self._changed = time.monotonic()

    def working(self) -> Any:
        """A context in which something works (not waiting for the clock)."""
        return self._counted(1, 0)

    @contextmanager
    def waiting(self, end: datetime) -> Iterator[None]:
        """A context in which something waits for the clock to reach ``end``."""
        with self._lock:
            self._ends.append(end)
        try:
            with self._counted(0, 1):
                yield
        finally:
            with self._lock:
                self._ends.remove(end)

    def next_end(self) -> datetime | None:
        """When the first of the waits for the clock ends (None when nothing waits)."""
        with self._lock:
            return min(self._ends, default=None)

    def waiting_for_clock(self, quiet: float = POLL_SECONDS * 3) -> bool:
        """Whether nothing works, something waits for the clock, and neither has changed for ``quiet``
        real seconds (longer than a waiting state takes to notice that the clock moved)."""
        with self._lock:
            return self._working == 0 and self._waiting > 0 and time.monotonic() - self._changed >= quiet

    def still(self, quiet: float = POLL_SECONDS * 3) -> bool:
        """Whether nothing works and nothing waits for the clock, unchanged for ``quiet`` real seconds."""
        with self._lock:
            return self._working == 0 and self._waiting == 0 and time.monotonic() - self._changed >= quiet


ACTIVITY: Final = Activity()
"""This process's activity (the emulator's services run in it)."""


def sleep(
    seconds: float,
    *,
    stopped: Callable[[], bool] = lambda: False,
    pause: Callable[[float], object] = time.sleep,
) -> bool:
    """Wait until this clock has moved ``seconds`` past now: as real time passes, or at once when a scenario
    advances the clock past the end. Looks every :data:`POLL_SECONDS` of real time (``pause`` waits, and may
    return early); returns False as soon as ``stopped()`` is true, True when the time has come."""
    end = now() + timedelta(seconds=seconds)
    with ACTIVITY.waiting(end):
        while (left := (end - now()).total_seconds()) > 0:
            if stopped():
                return False
            pause(min(left, POLL_SECONDS))
    return True
