"""What every whole-pipeline rehearsal test checks, as a platform engineer would by hand."""

from __future__ import annotations

import shutil

from rehearsal.scenarios import PRIMARY_REGION, Report, Step, deployed
from tests.e2e.conftest import stacks

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
