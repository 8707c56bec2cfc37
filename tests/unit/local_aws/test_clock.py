"""local_aws.clock: the emulator's time moves forward when a scenario says so, and moto's reset puts it
back to real time."""

from __future__ import annotations

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
