"""Failures of a rollout, rehearsed with a deployment map (examples/hello-app/deployment-map.json): three
waves over four Regions and two accounts, the second account bootstrapped with
bootstrap/target-account.yaml, deployed wave by wave by the rollout state machine of template.yaml.

Each test asserts what a platform engineer would check: every target's stack, the release record, and the
rollout's report of each target's state.
"""

from __future__ import annotations

import pytest

from rehearsal.actions import FAILED
from tests.e2e.checks import assert_expected
from tests.e2e.conftest import Rehearsal
from tests.e2e.test_waves import CANARY, EARLY_HOME, EARLY_OTHER, REST, rollout_report

pytestmark = pytest.mark.e2e


def test_an_alarm_during_the_bake_rolls_back_and_the_last_wave_is_never_touched(rehearsal: Rehearsal) -> None:
    report = rehearsal.play("waves-alarm", "delete")

    assert_expected(report)
    released, failed = report.steps
    assert failed.result.status == FAILED
    assert failed.approved is True
    # every target runs the release again; the last wave never ran the change
    assert failed.production_after == failed.production_before
    assert report.state["release"]["execution_id"] == released.result.execution_id
    text = rollout_report(report)
    assert "ROLLED_BACK" in text
    for line in text.splitlines():
        if REST in line:
            assert "UNTOUCHED" in line, line


def test_a_failure_in_the_last_wave_returns_the_earlier_waves_to_the_release(rehearsal: Rehearsal) -> None:
    report = rehearsal.play("waves-late-failure", "delete")

    assert_expected(report)
    released, failed = report.steps
    assert failed.result.status == FAILED
    assert failed.production_after == failed.production_before
    assert report.state["release"]["execution_id"] == released.result.execution_id
    text = rollout_report(report)
    for key in (CANARY, EARLY_HOME, EARLY_OTHER):
        (line,) = [line for line in text.splitlines() if key in line]
        assert "RETURNED" in line, line
