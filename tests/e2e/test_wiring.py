"""A wiring mistake in template.yaml makes the rehearsal fail with a message that points at it.

Each test copies template.yaml, breaks one piece of wiring the way an edit could, and rehearses the
copy: the run must not pass, and what it prints must name the stage, action, variable or permission.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rehearsal.actions import FAILED
from rehearsal.paths import TEMPLATE
from rehearsal.pipeline import WiringError
from tests.e2e.conftest import Rehearsal

pytestmark = pytest.mark.e2e


def broken_template(tmp_path: Path, *edits: tuple[str, str]) -> Path:
    """A copy of template.yaml with each (old, new) edit made; each old text must occur exactly once."""
    text = TEMPLATE.read_text(encoding="utf-8")
    for old, new in edits:
        assert text.count(old) == 1, f"the test's anchor must occur exactly once in template.yaml: {old!r}"
        text = text.replace(old, new)
    path = tmp_path / "template.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_renamed_output_artifact_names_the_action_that_needs_it(rehearsal: Rehearsal, tmp_path: Path) -> None:
    path = broken_template(
        tmp_path,
        (
            "                OutputArtifacts:\n                  - Name: StageSource\n",
            "                OutputArtifacts:\n                  - Name: StageSrc\n",
        ),
    )
    with pytest.raises(WiringError) as error:
        rehearsal.play("first-release", "delete", decision="approve", solution_template=path)

    message = str(error.value)
    assert "Stage.DeployReleasedToStage: input artifact 'StageSource' is not an output of any earlier action" in message
    assert "StageSrc" in message  # what is produced instead


def test_renamed_namespace_names_every_variable_left_dangling(rehearsal: Rehearsal, tmp_path: Path) -> None:
    path = broken_template(
        tmp_path,
        (
            "              - Name: DetectChanges\n                Namespace: Changes\n",
            "              - Name: DetectChanges\n                Namespace: ChangeReport\n",
        ),
    )
    with pytest.raises(WiringError) as error:
        rehearsal.play("first-release", "retain", decision="approve", solution_template=path)

    message = str(error.value)
    assert "stage Stage condition ProductionChanges: #{Changes.HasChanges} names namespace 'Changes'" in message
    assert "Stage.Approve configuration CustomData: #{Changes.Summary}" in message
    assert "ChangeReport" in message  # the namespaces that do exist


def test_renamed_environment_variable_fails_the_function_and_names_it(rehearsal: Rehearsal, tmp_path: Path) -> None:
    path = broken_template(
        tmp_path,
        (
            "          SECONDARY_STACK_NAME: !Ref ApplicationStackName\n          CHANGE_SET_PREFIX: pipeline-\n"
            "          TOPIC_ARN: !Ref NotificationTopic\n      Policies:\n",
            "          SECONDARY_STACK: !Ref ApplicationStackName\n          CHANGE_SET_PREFIX: pipeline-\n"
            "          TOPIC_ARN: !Ref NotificationTopic\n      Policies:\n",
        ),
    )
    report = rehearsal.play("first-release", "delete", decision="approve", solution_template=path)

    assert not report.ok
    (step,) = report.steps
    detect = step.result.action("CheckChanges", "DetectChanges")
    assert detect is not None
    assert detect.status == FAILED
    assert "SECONDARY_STACK_NAME is not set" in detect.summary
    assert step.result.failure.startswith("CheckChanges: DetectChanges:")
    assert any(
        "'first release': must reach the approval, but execution Failed at CheckChanges" in p for p in report.problems
    )
    # nothing past the failed check ran, and production was never touched
    assert [stage.name for stage in step.result.stages][-1] == "CheckChanges"
    assert step.production_after == step.production_before


def test_missing_permission_fails_the_function_and_names_the_action(rehearsal: Rehearsal, tmp_path: Path) -> None:
    path = broken_template(
        tmp_path, ("              Action: ssm:PutParameter\n", "              Action: ssm:GetParameter\n")
    )
    report = rehearsal.play("first-release", "delete", decision="approve", solution_template=path)

    assert not report.ok
    (step,) = report.steps
    record = step.result.action("Release", "RecordRelease")
    assert record is not None
    assert record.status == FAILED
    assert "ssm:PutParameter" in record.summary
    assert report.state["release"] is None
    assert f"RecordRelease: {record.summary}" in step.result.failure
    # production was deployed after approval, but the run is flagged: nothing recorded it as released
    assert any("though nothing was released" in problem for problem in report.problems), report.problems


def test_the_unbroken_template_passes_the_same_checks(rehearsal: Rehearsal, tmp_path: Path) -> None:
    """The control: a byte-for-byte copy of template.yaml rehearses cleanly."""
    path = broken_template(tmp_path)
    report = rehearsal.play("first-release", "delete", decision="approve", solution_template=path)

    assert report.ok, report.problems


def test_missing_invoke_permission_leaves_the_stage_event_undelivered(rehearsal: Rehearsal, tmp_path: Path) -> None:
    path = broken_template(
        tmp_path, ("      Principal: events.amazonaws.com\n", "      Principal: sns.amazonaws.com\n")
    )
    report = rehearsal.play("rejection", "delete", solution_template=path)

    assert not report.ok
    (delivery,) = report.steps[-1].result.deliveries
    assert delivery.outcome == "not invoked: no permission"
    assert report.state["dead_letters"] == 1  # the rule target's dead-letter queue holds the event
    assert any("was not handled by StageRevertFunction (not invoked: no permission" in p for p in report.problems)
    assert any("stage stack hello-app-stage was left behind" in p for p in report.problems)


@pytest.mark.parametrize(("retries", "attempts"), [("2", 3), ("0", 1)])
def test_a_failing_stage_revert_is_retried_as_configured_then_dead_lettered(
    rehearsal: Rehearsal, tmp_path: Path, retries: str, attempts: int
) -> None:
    path = broken_template(
        tmp_path,
        ("          STAGE_NAME: Stage\n", "          STAGE: Stage\n"),
        (
            "      EventInvokeConfig:\n        MaximumRetryAttempts: 2\n",
            f"      EventInvokeConfig:\n        MaximumRetryAttempts: {retries}\n",
        ),
    )
    report = rehearsal.play("rejection", "retain", solution_template=path)

    assert not report.ok
    (delivery,) = report.steps[-1].result.deliveries
    assert (delivery.outcome, delivery.attempts) == ("dead-lettered", attempts)
    assert report.state["dead_letters"] == 1
    assert "STAGE_NAME is not set" in rehearsal.output.getvalue()


def test_a_deploy_running_beside_the_approval_counts_as_unapproved(rehearsal: Rehearsal, tmp_path: Path) -> None:
    """CodePipeline runs actions of one run order in parallel: a production deploy next to the
    approval does not wait for it."""
    beside = (
        "            - Name: ExecuteSecondaryEarly\n"
        "              Region: !Ref SecondaryRegion\n"
        "              ActionTypeId:\n"
        "                Category: Deploy\n"
        "                Owner: AWS\n"
        "                Provider: CloudFormation\n"
        '                Version: "1"\n'
        "              Configuration:\n"
        "                ActionMode: CHANGE_SET_EXECUTE\n"
        "                StackName: !Ref ApplicationStackName\n"
        '                ChangeSetName: "pipeline-#{codepipeline.PipelineExecutionId}"\n'
        "              RunOrder: 4\n"
    )
    anchor = "            - Name: Approve\n"
    path = broken_template(tmp_path, (anchor, beside + anchor))
    report = rehearsal.play("first-release", "delete", decision="approve", solution_template=path)

    assert not report.ok
    assert any("production changed before anyone approved it" in problem for problem in report.problems)
