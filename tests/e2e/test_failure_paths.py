"""The real-AWS failure paths, rehearsed in both stage modes: a failed first release, a failed update,
unchanged pushes against the change-set limit, a retry after a rejection, an approval that times out,
and a reinstall after `sam delete`."""

from __future__ import annotations

import json

import pytest

from rehearsal.actions import FAILED, SUCCEEDED
from rehearsal.scenarios import PRIMARY_REGION, SECONDARY_REGION, SOLUTION_STACK
from tests.e2e.checks import (
    APP,
    APPROVAL,
    CHANGE_REPORT,
    MODES,
    REGIONAL_STORE,
    assert_expected,
    assert_release,
    assert_stage_stack,
    assert_untouched_before_approval,
)
from tests.e2e.conftest import Rehearsal, stacks, subjects

pytestmark = pytest.mark.e2e


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
