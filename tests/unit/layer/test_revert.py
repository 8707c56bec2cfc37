"""revert: which Regions a failed deploy returns to the release, and what the report says of each."""

from __future__ import annotations

import pytest

from release_pipeline import revert
from release_pipeline.revert import StageRevertConfig
from tests.unit.layer.test_config import environ

EXECUTION = "e1a2b3c4-0000-4000-8000-000000000001"
OTHER = "f0f0f0f0-0000-4000-8000-000000000009"
CONFIG = StageRevertConfig.from_env(environ(StageRevertConfig))


def event(stage: str, state: str = "FAILED") -> revert.StageEvent:
    return revert.StageEvent(pipeline="release-pipeline", execution_id=EXECUTION, stage=stage, state=state)


@pytest.mark.parametrize(
    ("failed", "latest", "returned"),
    [
        # the secondary ran this execution's change, then the primary failed: the secondary returns
        ("DeployPrimary", {"DeploySecondary": (EXECUTION, "Succeeded")}, ["secondary"]),
        # the secondary had no change (skipped): its latest run is another execution's
        ("DeployPrimary", {"DeploySecondary": (OTHER, "Succeeded")}, []),
        # the secondary itself failed (CloudFormation rolled it back): nothing earlier to return
        ("DeploySecondary", {}, []),
        # a failed Stage never reached production
        ("Stage", {"DeploySecondary": (EXECUTION, "Succeeded")}, []),
    ],
)
def test_only_regions_this_execution_already_changed_return(
    failed: str, latest: dict[str, tuple[str, str]], returned: list[str]
) -> None:
    targets = revert.regions_to_return(event(failed), CONFIG, latest)

    assert [role for role, _, _ in targets] == returned


def test_a_stopped_deploy_returns_nothing() -> None:
    """STOPPED is a person's choice to stop the execution: no Region is changed on their behalf."""
    latest = {"DeploySecondary": (EXECUTION, "Succeeded")}

    assert revert.regions_to_return(event("DeployPrimary", "STOPPED"), CONFIG, latest) == []


@pytest.mark.parametrize(
    ("status", "says"),
    [
        ("UPDATE_ROLLBACK_COMPLETE", "CloudFormation rolled the failed update back: it runs release R"),
        ("UPDATE_ROLLBACK_FAILED", "CloudFormation could not roll the failed update back: fix it by hand"),
        ("ROLLBACK_COMPLETE", "its creation failed: it runs nothing"),
        (None, "its creation failed and it was removed: it runs nothing"),
        # a status a failed deploy never leaves is never read as "runs the release"
        ("UPDATE_COMPLETE", "status not expected after a failed deploy: check its events"),
    ],
)
def test_the_report_says_what_the_failed_regions_status_means(status: str | None, says: str) -> None:
    assert revert.version_of(status, "release R") == says
