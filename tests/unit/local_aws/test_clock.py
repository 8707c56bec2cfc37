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


def test_activity_tells_when_everything_waits_for_the_clock_and_when_the_first_wait_ends() -> None:
    """A sleeper counts as waiting until its end; work in progress means the clock must not move yet; with
    nothing running the process is still."""
    activity = clock.Activity()
    with mock_aws():
        assert activity.next_end() is None
        time.sleep(clock.POLL_SECONDS * 4)
        assert activity.still()
        assert not activity.waiting_for_clock()
        soon, later = clock.now() + timedelta(minutes=5), clock.now() + timedelta(minutes=30)
        with activity.waiting(later), activity.waiting(soon):
            assert activity.next_end() == soon
            assert not activity.waiting_for_clock()  # not quiet long enough yet
            time.sleep(clock.POLL_SECONDS * 4)
            assert activity.waiting_for_clock()
            assert not activity.still()
            with activity.working():
                assert not activity.waiting_for_clock()  # a task runs: the clock must wait for it
        assert activity.next_end() is None


def test_a_sleep_counts_as_waiting_for_the_clock_while_it_lasts() -> None:
    with mock_aws():
        sleeper = threading.Thread(target=lambda: clock.sleep(600))
        sleeper.start()
        time.sleep(clock.POLL_SECONDS * 5)
        end = clock.ACTIVITY.next_end()
        assert end is not None
        assert timedelta(seconds=590) < end - clock.now() <= timedelta(seconds=600)
        assert clock.ACTIVITY.waiting_for_clock()
        clock.advance(timedelta(seconds=600))
        sleeper.join(timeout=2)
        assert not sleeper.is_alive()
        assert clock.ACTIVITY.next_end() is None
