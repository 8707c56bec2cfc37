"""local_aws.clock: the emulator's time moves forward when a scenario says so, sleeps end on it, and moto's
reset puts it back to real time."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from moto import mock_aws

from local_aws import clock
from local_aws.core import now as real_now


def test_the_clock_runs_with_real_time_until_advanced_and_only_forward() -> None:
    with mock_aws():
        assert abs(clock.now() - real_now()) < timedelta(seconds=5)
        later = clock.advance(timedelta(hours=12))
        assert abs(later - real_now() - timedelta(hours=12)) < timedelta(seconds=5)
        with pytest.raises(ValueError, match="only moves forward"):
            clock.advance(timedelta(minutes=-1))


def test_motos_reset_puts_the_clock_back() -> None:
    with mock_aws():
        clock.advance(timedelta(days=8))
    with mock_aws():
        assert abs(clock.now() - real_now()) < timedelta(seconds=5)


def test_sleep_ends_when_the_clock_passes_its_end_and_not_before() -> None:
    """A 30-minute sleep returns as soon as a scenario moves the clock 30 minutes, not after 30 real ones;
    a stopped sleep returns False."""
    with mock_aws():
        ended: list[bool] = []
        sleeper = threading.Thread(target=lambda: ended.append(clock.sleep(1800)))
        sleeper.start()
        time.sleep(0.2)
        clock.advance(timedelta(seconds=1700))
        time.sleep(0.2)
        assert sleeper.is_alive()

        clock.advance(timedelta(seconds=100))

        sleeper.join(timeout=1)
        assert ended == [True]
        assert clock.sleep(1800, stopped=lambda: True) is False
