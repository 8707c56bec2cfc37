"""Every scenario of the rehearsal, in both stage modes, through the pipeline template.yaml defines.

Each test asserts the end state a platform engineer would check by hand: the stacks in both Regions,
the release record, the notifications, and that production did not move before an approval.
"""

from __future__ import annotations

import json
import shutil

import pytest

from rehearsal.actions import FAILED, SKIPPED, SUCCEEDED
from rehearsal.scenarios import PRIMARY_REGION, SECONDARY_REGION, SOLUTION_STACK, Report, Step, deployed
from tests.e2e.conftest import Rehearsal, approval_messages, stacks, subjects

pytestmark = pytest.mark.e2e

APP = "hello-app"
STAGE = f"{APP}-stage"
REGIONAL_STORE = "mrd-artifacts-<stack UUID>"
MODES = ["delete", "retain"]
NAG_INSTALLED = shutil.which("cfn_nag_scan") is not None
CHANGE_REPORT = f"Changes to review: {APP}"
DRIFT_REPORT = f"Drift on production: {APP}"
APPROVAL = "APPROVAL NEEDED: AWS CodePipeline pipeline-<stack UUID> for action Approve"


def assert_expected(report: Report) -> None:
    assert report.ok, report.problems


def assert_untouched_before_approval(step: Step) -> None:
    """Production is exactly as it was until the approver said yes."""
    if step.approved is None:
        assert step.production_after == step.production_before
    else:
        assert step.production_at_approval == step.production_before
    if not step.approved:
        assert step.production_after == step.production_before


def assert_release(report: Report, step: Step) -> None:
    record = report.state["release"]
    assert record is not None
    assert record["execution_id"] == step.result.execution_id
    assert record["commit_id"] == step.commit_id
    assert record["key"] == f"releases/{step.result.execution_id}/source.zip"
    assert record["stage_parameters"] == {"EnvironmentName": "stage", "RetentionDays": "7"}


def assert_stage_stack(report: Report, mode: str, released: Step | None) -> None:
    """Delete mode leaves no stage stack; retain mode keeps one that runs the released template."""
    primary = stacks(report)[PRIMARY_REGION]
    if mode == "delete" or released is None:
        assert STAGE not in primary
    else:
        assert primary[STAGE] in {"CREATE_COMPLETE", "UPDATE_COMPLETE"}
        assert report.solution is not None
        stage = deployed(report.solution, STAGE, PRIMARY_REGION)
        assert stage is not None
        assert stage["template"] == released.template
        assert ("EnvironmentName", "stage") in stage["parameters"]


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


# ------------------------------------------------------------------------- real AWS failure paths


@pytest.mark.parametrize("mode", MODES)
def test_a_failed_first_release_is_removed_and_the_next_change_deploys_cleanly(rehearsal: Rehearsal, mode: str) -> None:
    """The primary's first creation fails (ROLLBACK_COMPLETE, a stack CloudFormation will only delete):
    stage-revert removes it and the secondary this execution created, and the next commit deploys."""
    report = rehearsal.play("failed-first-release", mode)

    assert_expected(report)
    failed, second = report.steps
    assert failed.approved is True
    assert failed.result.status == FAILED
    assert "ROLLBACK_COMPLETE" in failed.result.failure
    assert failed.production_after == {PRIMARY_REGION: None, SECONDARY_REGION: None}
    assert [d.outcome for d in failed.result.deliveries] == ["delivered"]
    assert second.result.status == SUCCEEDED
    assert stacks(report)[PRIMARY_REGION][APP] == "CREATE_COMPLETE"
    assert_release(report, second)


@pytest.mark.parametrize("mode", MODES)
def test_a_failed_primary_update_returns_the_secondary_to_the_release(rehearsal: Rehearsal, mode: str) -> None:
    """The secondary runs the change, the primary's update fails and CloudFormation rolls it back: the
    secondary returns to the release, the record is unchanged, and the topic says what each Region runs."""
    report = rehearsal.play("failed-update", mode)

    assert_expected(report)
    first, second = report.steps
    assert second.approved is True
    assert second.result.stage("DeploySecondary").status == SUCCEEDED  # type: ignore[union-attr]
    assert "UPDATE_ROLLBACK_COMPLETE" in second.result.failure
    for region in (PRIMARY_REGION, SECONDARY_REGION):
        assert second.production_after[region]["template"] == first.template
    assert stacks(report)[PRIMARY_REGION][APP] == "UPDATE_ROLLBACK_COMPLETE"
    assert_release(report, first)
    (report_message,) = [m for m in report.state["messages"] if "what each Region runs" in m["subject"]]
    assert f"release {first.result.execution_id}" in report_message["message"]
    assert "returning secondary stack" in report_message["message"]


def test_unchanged_pushes_never_fill_a_stack_with_change_sets(rehearsal: Rehearsal) -> None:
    report = rehearsal.play("unchanged-pushes", "delete")

    assert_expected(report)
    assert [step.result.status for step in report.steps] == [SUCCEEDED] * len(report.steps)
    assert report.solution is not None
    for region in (PRIMARY_REGION, SECONDARY_REGION):
        cfn = report.solution.admin("cloudformation", region)
        assert cfn.list_change_sets(StackName=APP)["Summaries"] == []


@pytest.mark.parametrize("mode", MODES)
def test_a_rejected_change_retried_and_approved_deploys_what_was_reviewed(rehearsal: Rehearsal, mode: str) -> None:
    report = rehearsal.play("retry", mode)

    assert_expected(report)
    _, second = report.steps
    assert second.approvals == 2
    assert second.approved is True
    assert second.result.status == SUCCEEDED
    assert_untouched_before_approval(second)
    assert_release(report, second)
    assert_stage_stack(report, mode, second)


@pytest.mark.parametrize("mode", MODES)
def test_an_approval_nobody_decides_times_out_and_is_reverted(rehearsal: Rehearsal, mode: str) -> None:
    report = rehearsal.play("approval-timeout", mode)

    assert_expected(report)
    first, second = report.steps
    assert second.result.status == FAILED
    assert "timed out: no decision within 720 minutes" in second.result.failure
    assert_untouched_before_approval(second)
    assert_release(report, first)
    assert_stage_stack(report, mode, first)


@pytest.mark.parametrize("mode", MODES)
def test_reinstall_releases_with_a_record_of_its_own_and_leaves_the_earlier_one(
    rehearsal: Rehearsal, mode: str
) -> None:
    """GIVEN a release, then the solution deleted as `sam delete` deletes it (its record, retained key and
    bucket stay) WHEN it is installed again under the same name and a change is pushed THEN the new
    installation releases it as a first release with a record of its own; the earlier one stays as left."""
    report = rehearsal.play("reinstall", mode)

    assert_expected(report)
    first, second = report.steps
    for step in report.steps:
        assert step.result.status == SUCCEEDED
        assert step.approved is True
        assert_untouched_before_approval(step)
    solution = report.solution
    assert solution is not None
    (left,) = report.leftovers
    old_uuid, new_uuid = left.stack_id.rsplit("/", 1)[-1], solution.stack_id.rsplit("/", 1)[-1]
    assert old_uuid != new_uuid
    assert left.record_parameter == f"/{SOLUTION_STACK}/release/{old_uuid}/record"
    assert solution.release_record_parameter == f"/{SOLUTION_STACK}/release/{new_uuid}/record"
    assert left.record is not None
    assert json.loads(left.record)["execution_id"] == first.result.execution_id
    assert set(left.retained) == {"ArtifactKey", "ArtifactBucket"}
    new_key = solution.template.physical["ArtifactKey"]["Arn"]
    new_bucket = solution.artifact_stores[PRIMARY_REGION][0]
    assert left.retained["ArtifactKey"] != new_key
    assert left.retained["ArtifactBucket"] != new_bucket
    # the new installation's record names the change, in its own bucket, under its own key
    assert_release(report, second)
    assert report.state["release"]["bucket"] == new_bucket
    described = solution.admin("ssm").describe_parameters()["Parameters"]
    parameters = {p["Name"]: p for p in described if p["Name"].startswith(f"/{SOLUTION_STACK}/")}
    assert set(parameters) == {left.record_parameter, solution.release_record_parameter}
    assert parameters[solution.release_record_parameter]["KeyId"] == new_key
    assert (parameters[left.record_parameter]["KeyId"], parameters[left.record_parameter]["Version"]) == (
        left.retained["ArtifactKey"],
        1,
    )
    if mode == "delete":  # the stage is built from the source, as for a first release
        prepared = second.result.action("Stage", "PrepareStageArtifact")
        assert prepared is not None
        assert prepared.variables == {"StageOrigin": "source"}
    # production (not part of the solution stack) survived the delete and now runs the change
    assert second.production_before[PRIMARY_REGION]["template"] == first.template
    assert second.production_after[PRIMARY_REGION]["template"] == second.template
    assert second.production_after[SECONDARY_REGION]["template"] == second.template
    assert_stage_stack(report, mode, second)
    # the earlier installation's pipeline and secondary store went with its stack
    assert [p["name"] for p in solution.admin("codepipeline").list_pipelines()["pipelines"]] == [solution.pipeline_name]
    assert stacks(report)[SECONDARY_REGION] == {REGIONAL_STORE: "CREATE_COMPLETE", APP: "UPDATE_COMPLETE"}
    assert subjects(report) == [CHANGE_REPORT, APPROVAL] * 2
