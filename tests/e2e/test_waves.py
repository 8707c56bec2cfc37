"""The rehearsal of an application with a deployment map (examples/hello-app/deployment-map.json): three
waves over four Regions and two accounts, the second account bootstrapped with
bootstrap/target-account.yaml, deployed wave by wave by the rollout state machine of template.yaml.

Each test asserts what a platform engineer would check: every target's stack, the release record, and the
rollout's report of each target's state.
"""

from __future__ import annotations

import pytest

from rehearsal.actions import FAILED, SUCCEEDED
from rehearsal.scenarios import Report
from tests.e2e.checks import assert_expected
from tests.e2e.conftest import Rehearsal
from tests.support.rollout import executed_order

pytestmark = pytest.mark.e2e

CANARY, EARLY_HOME, EARLY_OTHER, REST = (
    "123456789012/us-west-2/hello-app",
    "123456789012/eu-west-1/hello-app",
    "222233334444/us-east-2/hello-app",
    "123456789012/us-east-1/hello-app",
)


def rollout_report(report: Report) -> str:
    """The last rollout report the topic sent (start-rollout's, one line per target)."""
    messages = report.state["messages"]
    rollouts = [m for m in messages if m["subject"].startswith("Rollout")]
    assert rollouts, "no rollout report was sent"
    return str(rollouts[-1]["message"])


def test_a_change_goes_out_wave_by_wave_to_every_target_and_is_recorded(rehearsal: Rehearsal) -> None:
    report = rehearsal.play("waves", "delete", decision="approve")

    assert_expected(report)
    first, second = report.steps
    assert first.result.status == SUCCEEDED
    assert second.result.status == SUCCEEDED
    # Nothing ran anywhere before the first approval; afterwards every target runs the change.
    assert set(first.production_before.values()) == {None}
    assert first.production_at_approval is not None
    assert set(first.production_at_approval.values()) == {None}
    assert set(second.production_after) == {CANARY, EARLY_HOME, EARLY_OTHER, REST}
    assert {target["template"] for target in second.production_after.values()} == {second.template}
    assert second.production_at_approval == second.production_before
    # each target with its own parameter file
    assert ("EnvironmentName", "partner") in second.production_after[EARLY_OTHER]["parameters"]
    assert ("EnvironmentName", "canary") in second.production_after[CANARY]["parameters"]
    stages = [stage.name for stage in second.result.stages]
    assert "DeployWaves" in stages
    assert "DeployPrimary" not in stages
    assert "DeploySecondary" not in stages
    record = report.state["release"]
    assert record["execution_id"] == second.result.execution_id
    assert record["deployment_map_digest"]
    assert "RELEASED" in rollout_report(report)
    # the waves ran in order: the state machine asked for each wave's executions after the wave before
    assert report.solution is not None
    sfn = report.solution.admin("stepfunctions")
    (machine,) = sfn.list_state_machines()["stateMachines"]
    executions = sfn.list_executions(stateMachineArn=machine["stateMachineArn"])["executions"]
    (rollout,) = [e for e in executions if e["name"] == second.result.execution_id]
    order = executed_order(sfn, rollout["executionArn"])
    assert order[0] == CANARY
    assert set(order[1:3]) == {EARLY_HOME, EARLY_OTHER}
    assert order[3:] == [REST]


def test_a_map_with_errors_fails_validate_naming_each_entry_and_creates_nothing(rehearsal: Rehearsal) -> None:
    report = rehearsal.play("waves-map-error", "delete")

    assert_expected(report)
    (step,) = report.steps
    assert step.result.status == FAILED
    assert step.result.failure is not None
    assert step.result.failure.startswith("Validate:")
    for entry in ("Waves[1].Targets[0]", "Waves[1].Targets[1]", "Waves[1].Targets[2]", "Waves[2].Targets[0]"):
        assert entry in step.result.failure
    assert set(step.production_after.values()) == {None}
    assert report.state["release"] is None
    assert [m for m in report.state["messages"] if "Changes to review" in m["subject"]] == []
