"""The rehearsal reads the pipeline from the resolved template and refuses wiring that cannot run."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from local_aws.cloudformation import ResolvedTemplate
from rehearsal.pipeline import Variables, WiringError, change_set_name, check, load
from tests.support import solution

REGIONS = {"us-east-1", "eu-west-1"}


def template_with(edit: Any = None, delete_stage: str = "Yes") -> ResolvedTemplate:
    raw = copy.deepcopy(solution.solution_template())
    if edit is not None:
        edit(raw["Resources"]["Pipeline"]["Properties"])
    return ResolvedTemplate(
        {**solution.REQUIRED_PARAMETERS, "DeleteStageStack": delete_stage}, template=raw, stack_name="release-solution"
    )


def stage(properties: dict[str, Any], name: str) -> dict[str, Any]:
    """The stage ``name`` as written (inside its Fn::If, for a stage only one kind of pipeline has)."""
    written = (s["Fn::If"][1] if set(s) == {"Fn::If"} else s for s in properties["Stages"])
    found: dict[str, Any] = next(s for s in written if s.get("Name") == name)
    return found


@pytest.mark.parametrize("delete_stage", ["Yes", "No"])
def test_template_yaml_pipeline_passes_the_checks_in_both_modes(delete_stage: str) -> None:
    template = template_with(delete_stage=delete_stage)
    pipeline = load(template)

    check(pipeline, REGIONS, "us-east-1")

    assert pipeline.name == template.resource("Pipeline")["Properties"]["Name"]
    assert pipeline.name.startswith("pipeline-")
    assert [s.name for s in pipeline.stages][:3] == ["Source", "Validate", "CheckChanges"]
    stage_actions = [a.name for a in pipeline.stages[3].actions]
    assert ("PrepareStageArtifact" in stage_actions) is (delete_stage == "Yes")
    (approve,) = [a for a in pipeline.stages[3].actions if a.category == "Approval"]
    assert approve.run_order == 4
    assert pipeline.action("DeploySecondary.ExecuteChangeSet").region == "eu-west-1"
    for name in ("CheckChanges.PrimaryChangeSet", "CheckChanges.SecondaryChangeSet"):
        # the rehearsal's name for a reviewed change set is the one the template gives it
        assert pipeline.action(name).configuration["ChangeSetName"] == change_set_name(
            "#{codepipeline.PipelineExecutionId}"
        )


def test_an_action_in_a_region_without_an_artifact_store_is_refused() -> None:
    with pytest.raises(WiringError, match=r"DeploySecondary.ExecuteChangeSet: runs in eu-west-1, where the pipeline"):
        check(load(template_with()), {"us-east-1"}, "us-east-1")


def test_a_variable_read_before_its_namespace_is_declared_is_refused() -> None:
    def move_detect_changes_after_its_reader(properties: dict[str, Any]) -> None:
        check_changes = stage(properties, "CheckChanges")
        written = next(
            a for a in check_changes["Actions"] if "Fn::If" in a and a["Fn::If"][1]["Name"] == "DetectChanges"
        )
        check_changes["Actions"].remove(written)
        stage(properties, "Release")["Actions"].append({**written["Fn::If"][1], "RunOrder": 2})

    with pytest.raises(WiringError) as error:
        check(load(template_with(move_detect_changes_after_its_reader)), REGIONS, "us-east-1")
    assert "stage Stage condition ProductionChanges: #{Changes.HasChanges} names namespace 'Changes'" in str(
        error.value
    )


def test_an_artifact_produced_twice_or_a_template_path_outside_the_inputs_is_refused() -> None:
    def wire_badly(properties: dict[str, Any]) -> None:
        update = next(a for a in stage(properties, "Stage")["Actions"] if a.get("Name") == "UpdateStage")
        update["OutputArtifacts"] = [{"Name": "SourceOutput"}]
        update["Configuration"]["TemplatePath"] = "StageSource::template.yaml"

    with pytest.raises(WiringError) as error:
        check(load(template_with(wire_badly, delete_stage="No")), REGIONS, "us-east-1")
    message = str(error.value)
    assert "Stage.UpdateStage: output artifact 'SourceOutput' is already produced by Source.Source" in message
    assert "Stage.UpdateStage configuration TemplatePath: 'StageSource' is not an input artifact" in message


def test_an_unknown_codepipeline_variable_is_refused() -> None:
    def ask_for_unknown(properties: dict[str, Any]) -> None:
        release = stage(properties, "Release")["Actions"][0]
        release["Configuration"]["UserParameters"] = '{"executionId": "#{codepipeline.PipelineRunId}"}'

    with pytest.raises(WiringError, match=r"#\{codepipeline.PipelineRunId\} is not a variable CodePipeline provides"):
        check(load(template_with(ask_for_unknown)), REGIONS, "us-east-1")


def test_substitution_names_what_is_missing() -> None:
    variables = Variables({"Changes": {"HasChanges": "true"}})

    assert variables.substitute("#{Changes.HasChanges}!", "here") == "true!"
    with pytest.raises(WiringError, match=r"here: #\{Changes.Summary\} has no value .* has: HasChanges"):
        variables.substitute("#{Changes.Summary}", "here")
