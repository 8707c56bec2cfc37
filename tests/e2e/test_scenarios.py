"""Every scenario of the rehearsal, in both stage modes, through the pipeline template.yaml defines.

Each test asserts the end state a platform engineer would check by hand: the stacks in both Regions,
the release record, the notifications, and that production did not move before an approval.
"""

from __future__ import annotations

import pytest

from rehearsal.actions import FAILED, SKIPPED, SUCCEEDED
from rehearsal.scenarios import PRIMARY_REGION, SECONDARY_REGION
from tests.e2e.checks import (
    APP,
    APPROVAL,
    CHANGE_REPORT,
    DRIFT_REPORT,
    MODES,
    NAG_INSTALLED,
    REGIONAL_STORE,
    assert_expected,
    assert_release,
    assert_stage_stack,
    assert_untouched_before_approval,
)
from tests.e2e.conftest import Rehearsal, approval_messages, stacks, subjects

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("mode", MODES)
def test_first_release_reaches_both_regions_after_approval(rehearsal: Rehearsal, mode: str) -> None:
    report = rehearsal.play("first-release", mode, decision="approve")

    assert_expected(report)
    (step,) = report.steps
    assert step.result.status == SUCCEEDED
    assert step.approved is True
    assert_untouched_before_approval(step)
    assert step.production_before == {PRIMARY_REGION: None, SECONDARY_REGION: None}
    assert stacks(report)[PRIMARY_REGION][APP] == "CREATE_COMPLETE"
    assert stacks(report)[SECONDARY_REGION] == {REGIONAL_STORE: "CREATE_COMPLETE", APP: "CREATE_COMPLETE"}
    assert step.production_after[PRIMARY_REGION]["template"] == step.template
    assert step.production_after[SECONDARY_REGION]["template"] == step.template
    assert ("EnvironmentName", "secondary") in step.production_after[SECONDARY_REGION]["parameters"]
    assert ("EnvironmentName", "primary") in step.production_after[PRIMARY_REGION]["parameters"]
    assert_stage_stack(report, mode, step)
    assert_release(report, step)
    assert subjects(report) == [CHANGE_REPORT, APPROVAL]
    # The secondary Region is deployed before the primary Region.
    ran = [stage.name for stage in step.result.stages if stage.status == SUCCEEDED]
    assert ran.index("DeploySecondary") < ran.index("DeployPrimary") < ran.index("Release")
    if NAG_INSTALLED:
        assert report.state["not_run"] == []
    else:
        (not_run,) = report.state["not_run"]
        assert "Validate.CfnNag: NOT RUN: cfn_nag_scan not installed here" in not_run
        assert "Not counted as passed" in not_run


@pytest.mark.parametrize("mode", MODES)
def test_second_change_is_proven_on_the_stage_then_released(rehearsal: Rehearsal, mode: str) -> None:
    report = rehearsal.play("second-change", mode, decision="approve")

    assert_expected(report)
    first, second = report.steps
    for step in report.steps:
        assert step.result.status == SUCCEEDED
        assert_untouched_before_approval(step)
    assert second.production_before[PRIMARY_REGION]["template"] == first.template
    assert second.production_after[PRIMARY_REGION]["template"] == second.template
    assert second.production_after[SECONDARY_REGION]["template"] == second.template
    assert_release(report, second)
    assert_stage_stack(report, mode, second)
    stage_actions = [action.name for action, _ in second.result.stage("Stage").actions]  # type: ignore[union-attr]
    if mode == "delete":
        # The stage is rebuilt from the release, then updated to the change.
        assert stage_actions[:3] == ["PrepareStageArtifact", "DeployReleasedToStage", "UpdateStage"]
        prepared = second.result.action("Stage", "PrepareStageArtifact")
        assert prepared is not None
        assert first.result.execution_id in prepared.summary
        assert stage_actions[-1] == "RemoveStageStack"
    else:
        assert "PrepareStageArtifact" not in stage_actions
        assert "RemoveStageStack" not in stage_actions
    changes = second.result.variables["Changes"]
    assert changes["HasChanges"] == "true"
    assert changes["Summary"].startswith(f"primary {PRIMARY_REGION}: +1 ~1 -0")
    assert subjects(report) == [CHANGE_REPORT, APPROVAL] * 2


@pytest.mark.parametrize("mode", MODES)
def test_rejection_leaves_production_and_the_release_alone(rehearsal: Rehearsal, mode: str) -> None:
    report = rehearsal.play("rejection", mode)

    assert_expected(report)
    first, second = report.steps
    assert second.approved is False
    assert second.result.status == FAILED
    assert "rejected" in second.result.failure
    assert_untouched_before_approval(second)
    assert second.production_after[PRIMARY_REGION]["template"] == first.template
    assert second.production_after[SECONDARY_REGION]["template"] == first.template
    assert {s.name for s in second.result.stages} == {"Source", "Validate", "CheckChanges", "Stage"}
    (delivery,) = second.result.deliveries
    assert (delivery.target, delivery.stage, delivery.state, delivery.outcome) == (
        "StageRevertFunction",
        "Stage",
        "FAILED",
        "delivered",
    )
    assert_release(report, first)
    assert_stage_stack(report, mode, first)
    assert report.state["dead_letters"] == 0
    assert report.solution is not None
    for region in (PRIMARY_REGION, SECONDARY_REGION):
        # the reviewed change set stays for a Retry of the Stage (which asks for approval again); the next
        # execution's gate removes it
        cfn = report.solution.admin("cloudformation", region)
        names = [s["ChangeSetName"] for s in cfn.list_change_sets(StackName=APP)["Summaries"]]
        assert names == [f"pipeline-{second.result.execution_id}"]


@pytest.mark.parametrize("mode", MODES)
def test_unchanged_commit_skips_every_gated_stage(rehearsal: Rehearsal, mode: str) -> None:
    report = rehearsal.play("unchanged", mode)

    assert_expected(report)
    first, second = report.steps
    commits = [step.result.variables["SourceVariables"]["CommitId"] for step in report.steps]
    assert commits[0] == commits[1] == first.commit_id
    assert second.result.status == SUCCEEDED
    assert second.approved is None
    statuses = {stage.name: stage.status for stage in second.result.stages}
    assert statuses == {
        "Source": SUCCEEDED,
        "Validate": SUCCEEDED,
        "CheckChanges": SUCCEEDED,
        "Stage": SKIPPED,
        "DeploySecondary": SKIPPED,
        "DeployPrimary": SKIPPED,
        "Release": SKIPPED,
    }
    assert second.result.variables["Changes"]["HasChanges"] == "false"
    assert_untouched_before_approval(second)
    assert_release(report, first)
    assert subjects(report).count(APPROVAL) == 1


@pytest.mark.parametrize("mode", MODES)
def test_template_failing_cfn_lint_deploys_nothing(rehearsal: Rehearsal, mode: str) -> None:
    report = rehearsal.play("lint-failure", mode)

    assert_expected(report)
    (step,) = report.steps
    assert step.result.status == FAILED
    assert [stage.name for stage in step.result.stages] == ["Source", "Validate"]
    lint = step.result.action("Validate", "CfnLint")
    assert lint is not None
    assert lint.status == FAILED
    assert "E3002" in lint.summary
    nag = step.result.action("Validate", "CfnNag")
    assert nag is not None
    assert (nag.status == SKIPPED) is not NAG_INSTALLED  # where cfn_nag is missing it never counts as passed
    assert stacks(report) == {PRIMARY_REGION: {}, SECONDARY_REGION: {REGIONAL_STORE: "CREATE_COMPLETE"}}
    assert report.state["release"] is None
    assert subjects(report) == []


@pytest.mark.parametrize("mode", MODES)
def test_drift_under_notify_is_reported_and_the_change_still_ships(rehearsal: Rehearsal, mode: str) -> None:
    report = rehearsal.play("drift-notify", mode)

    assert_expected(report)
    _, second = report.steps
    assert second.result.status == SUCCEEDED
    assert second.result.variables["Drift"]["DriftStatus"] == "DRIFTED"
    assert DRIFT_REPORT in subjects(report)
    custom_data = approval_messages(report)[-1]["approval"]["customData"]
    assert f"primary {PRIMARY_REGION}: DRIFTED" in custom_data
    assert_untouched_before_approval(second)
    assert_release(report, second)


@pytest.mark.parametrize("mode", MODES)
def test_drift_under_block_stops_before_approval(rehearsal: Rehearsal, mode: str) -> None:
    report = rehearsal.play("drift-block", mode)

    assert_expected(report)
    first, second = report.steps
    assert second.result.status == FAILED
    assert second.approved is None
    drift = second.result.action("Stage", "DetectDrift")
    assert drift is not None
    assert drift.status == FAILED
    assert "DriftPolicy is BLOCK" in drift.summary
    assert second.result.action("Stage", "Approve") is None
    assert_untouched_before_approval(second)
    assert second.production_after[PRIMARY_REGION]["template"] == first.template
    assert_release(report, first)
    assert_stage_stack(report, mode, first)
    assert subjects(report).count(APPROVAL) == 1
    assert [d.outcome for d in second.result.deliveries] == ["delivered"]
