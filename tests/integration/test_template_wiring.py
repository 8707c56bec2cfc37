"""template.yaml and the code agree: names, variables, artifacts and environment, in both stage modes."""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from local_aws.cloudformation import ResolvedTemplate
from release_pipeline import changes, drift, stage_artifact
from release_pipeline.config import (
    ArtifactCheckConfig,
    ChangeDetectionConfig,
    DriftDetectionConfig,
    ExecutionGateConfig,
    RecordReleaseConfig,
    StageRevertConfig,
)
from release_pipeline.release import SOURCE_ARTIFACT
from release_pipeline.revert import REVERT_STATES, STAGE_EVENT
from tests.support import solution
from tests.support.events import REPO_ROOT

CONFIGS: dict[str, Any] = {
    "ArtifactCheckFunction": ArtifactCheckConfig,
    "ChangeDetectionFunction": ChangeDetectionConfig,
    "DriftDetectionFunction": DriftDetectionConfig,
    "ExecutionGateFunction": ExecutionGateConfig,
    "RecordReleaseFunction": RecordReleaseConfig,
    "StageRevertFunction": StageRevertConfig,
}
VARIABLE = re.compile(r"#\{([A-Za-z0-9_]+)\.([A-Za-z0-9_]+)\}")
EXECUTION_CHANGE_SET = "pipeline-#{codepipeline.PipelineExecutionId}"


@pytest.fixture(params=["Yes", "No"], ids=["delete-mode", "retain-mode"])
def resolved(request: pytest.FixtureRequest) -> ResolvedTemplate:
    return solution.resolved(request.param)


def stages(resolved: ResolvedTemplate) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = resolved.resource("Pipeline")["Properties"]["Stages"]
    return result


def actions(resolved: ResolvedTemplate) -> Iterator[tuple[str, dict[str, Any]]]:
    for stage in stages(resolved):
        for action in stage["Actions"]:
            yield stage["Name"], action


def environment(resolved: ResolvedTemplate, function: str) -> dict[str, str]:
    return resolved.function_environment(function)


@pytest.mark.parametrize("function", sorted(CONFIGS))
def test_every_function_gets_the_environment_its_config_reads(resolved: ResolvedTemplate, function: str) -> None:
    config = CONFIGS[function].from_env(environment(resolved, function))
    assert config is not None


def test_output_variables_used_by_the_pipeline_are_the_ones_the_functions_publish(resolved: ResolvedTemplate) -> None:
    published = {"Changes": set(changes.OUTPUT_VARIABLES), "Drift": set(drift.OUTPUT_VARIABLES)}
    namespaces = {action.get("Namespace") for _, action in actions(resolved)}
    used = set(VARIABLE.findall(json.dumps(stages(resolved))))
    assert used, "the pipeline reads no action variables at all"
    for namespace, name in used:
        assert namespace in namespaces | {"codepipeline"}, f"#{{{namespace}.{name}}} has no such namespace"
        if namespace in published:
            assert name in published[namespace], f"#{{{namespace}.{name}}} is never published"


def test_change_detection_and_drift_detection_actions_carry_their_namespaces(resolved: ResolvedTemplate) -> None:
    by_function = {
        action["Configuration"]["FunctionName"]: action
        for _, action in actions(resolved)
        if action["ActionTypeId"]["Provider"] == "Lambda"
    }
    assert by_function["ChangeDetectionFunction"]["Namespace"] == "Changes"
    assert by_function["DriftDetectionFunction"]["Namespace"] == "Drift"
    user_parameters = json.loads(by_function["ChangeDetectionFunction"]["Configuration"]["UserParameters"])
    assert user_parameters == {"executionId": "#{codepipeline.PipelineExecutionId}"}
    release = json.loads(by_function["RecordReleaseFunction"]["Configuration"]["UserParameters"])
    assert release["executionId"] == "#{codepipeline.PipelineExecutionId}"
    assert [a["Name"] for a in by_function["RecordReleaseFunction"]["InputArtifacts"]] == [SOURCE_ARTIFACT]


def test_the_gate_runs_before_any_change_set_is_created(resolved: ResolvedTemplate) -> None:
    check = next(stage for stage in stages(resolved) if stage["Name"] == "CheckChanges")
    gate = check["Actions"][0]
    assert gate["Configuration"]["FunctionName"] == "ExecutionGateFunction"
    assert json.loads(gate["Configuration"]["UserParameters"]) == {"executionId": "#{codepipeline.PipelineExecutionId}"}
    later = check["Actions"][1:]
    assert later
    assert all(a["RunOrder"] > gate["RunOrder"] for a in later)
    pipeline_name = resolved.resource("Pipeline")["Properties"]["Name"]
    assert environment(resolved, "ExecutionGateFunction")["PIPELINE_NAME"] == pipeline_name
    policy = json.dumps(resolved.function_policy("ExecutionGateFunction"))
    assert f":{pipeline_name}" in policy


def test_every_change_set_action_uses_the_execution_change_set(resolved: ResolvedTemplate) -> None:
    modes = [
        (stage, action["Configuration"])
        for stage, action in actions(resolved)
        if action["Configuration"].get("ActionMode", "").startswith("CHANGE_SET")
    ]
    assert sorted(config["ActionMode"] for _, config in modes) == [
        "CHANGE_SET_EXECUTE",
        "CHANGE_SET_EXECUTE",
        "CHANGE_SET_REPLACE",
        "CHANGE_SET_REPLACE",
    ]
    assert {config["ChangeSetName"] for _, config in modes} == {EXECUTION_CHANGE_SET}
    for function in ("ChangeDetectionFunction", "StageRevertFunction"):
        prefix = environment(resolved, function)["CHANGE_SET_PREFIX"]
        assert EXECUTION_CHANGE_SET.startswith(prefix)
        assert prefix + "#{codepipeline.PipelineExecutionId}" == EXECUTION_CHANGE_SET


def test_production_deploys_come_after_the_approval_and_secondary_before_primary(resolved: ResolvedTemplate) -> None:
    names = [stage["Name"] for stage in stages(resolved)]
    assert names == ["Source", "Validate", "CheckChanges", "Stage", "DeploySecondary", "DeployPrimary", "Release"]
    secondary, primary = stages(resolved)[4], stages(resolved)[5]
    assert secondary["Actions"][0]["Region"] == "eu-west-1"
    assert primary["Actions"][0].get("Region", "us-east-1") == "us-east-1"
    stage = stages(resolved)[3]
    approval = [a for a in stage["Actions"] if a["ActionTypeId"]["Category"] == "Approval"]
    assert len(approval) == 1
    assert "#{Changes.Summary}" in approval[0]["Configuration"]["CustomData"]
    assert approval[0]["Configuration"]["ExternalEntityLink"] == "#{Changes.ReviewUrl}"


def test_stages_after_check_changes_skip_on_the_right_variable(resolved: ResolvedTemplate) -> None:
    expected = {
        "Stage": "#{Changes.HasChanges}",
        "DeploySecondary": "#{Changes.SecondaryHasChanges}",
        "DeployPrimary": "#{Changes.PrimaryHasChanges}",
        "Release": "#{Changes.HasChanges}",
    }
    for stage in stages(resolved):
        if stage["Name"] not in expected:
            assert "BeforeEntry" not in stage
            continue
        (condition,) = stage["BeforeEntry"]["Conditions"]
        (rule,) = condition["Rules"]
        assert condition["Result"] == "SKIP"
        assert rule["RuleTypeId"]["Provider"] == "VariableCheck"
        assert rule["Configuration"] == {"Variable": expected[stage["Name"]], "Operator": "EQ", "Value": "true"}


def test_delete_mode_builds_the_stage_from_the_artifact_check_outputs() -> None:
    stage = stages(solution.resolved("Yes"))[3]
    names = [(a["Name"], a["RunOrder"]) for a in stage["Actions"]]
    prepare = stage["Actions"][0]
    assert prepare["Configuration"]["FunctionName"] == "ArtifactCheckFunction"
    outputs = [a["Name"] for a in prepare["OutputArtifacts"]]
    assert outputs == [stage_artifact.STAGE_SOURCE_ARTIFACT, stage_artifact.STAGE_CONFIG_ARTIFACT]
    deploy = stage["Actions"][1]["Configuration"]
    assert deploy["TemplatePath"] == f"{stage_artifact.STAGE_SOURCE_ARTIFACT}::app/template.yaml"
    assert deploy["TemplateConfiguration"] == (
        f"{stage_artifact.STAGE_CONFIG_ARTIFACT}::{stage_artifact.CONFIGURATION_FILE}"
    )
    assert names[-1][0] == "RemoveStageStack"
    assert stage["Actions"][-1]["Configuration"]["ActionMode"] == "DELETE_ONLY"
    assert max(order for _, order in names[:-1]) < names[-1][1]


def test_retain_mode_has_no_artifact_check_and_never_deletes_the_stage() -> None:
    stage = stages(solution.resolved("No"))[3]
    assert [a["Name"] for a in stage["Actions"]] == ["UpdateStage", "DetectDrift", "Approve"]
    modes = [a["Configuration"].get("ActionMode") for _, a in actions(solution.resolved("No"))]
    assert "DELETE_ONLY" not in modes


def test_stage_revert_rule_matches_the_stage_the_function_expects(resolved: ResolvedTemplate) -> None:
    rule = resolved.resource("StageFailedRule")["Properties"]
    env = environment(resolved, "StageRevertFunction")
    pattern = rule["EventPattern"]
    assert pattern["detail-type"] == [STAGE_EVENT]
    watched = env["WATCHED_STAGES"].split(",")
    assert pattern["detail"]["stage"] == watched
    assert env["STAGE_NAME"] in watched
    assert set(watched) <= {stage["Name"] for stage in stages(resolved)}
    assert env["STAGE_NAME"] in [stage["Name"] for stage in stages(resolved)]
    assert pattern["detail"]["pipeline"] == [env["PIPELINE_NAME"]]
    assert set(pattern["detail"]["state"]) == REVERT_STATES
    (target,) = rule["Targets"]
    assert target["Arn"] == "StageRevertFunction.Arn"
    assert "DeadLetterConfig" in target


def test_no_lifecycle_rule_can_expire_released_sources(resolved: ResolvedTemplate) -> None:
    bucket = resolved.resource("ArtifactBucket")["Properties"]
    assert bucket["VersioningConfiguration"]["Status"] == "Enabled"
    for rule in bucket["LifecycleConfiguration"]["Rules"]:
        prefix = rule.get("Prefix", rule.get("Filter", {}).get("Prefix"))
        assert prefix, f"lifecycle rule {rule.get('Id')} applies to the whole bucket, releases/ included"
        assert not "releases/".startswith(prefix)
        assert not prefix.startswith("releases")


def test_every_function_is_arm64_python313_with_a_description() -> None:
    resolved = solution.resolved()
    globals_ = resolved.raw["Globals"]["Function"]
    assert globals_["Runtime"] == "python3.13"
    assert globals_["Architectures"] == ["arm64"]
    functions = resolved.resources_of_type("AWS::Serverless::Function")
    assert len(functions) == 7
    for name, function in functions.items():
        assert function["Properties"].get("Description"), f"{name} has no Description"
        handler = function["Properties"].get("Handler", globals_.get("Handler"))
        assert handler == "app.lambda_handler"
        assert (REPO_ROOT / function["Properties"]["CodeUri"] / "app.py").is_file(), f"{name} has no handler file"


def test_the_regional_store_may_empty_only_its_own_bucket(resolved: ResolvedTemplate) -> None:
    """The custom resource's BucketName is inside the S3 resources its policy names, and nothing wider."""
    bucket = resolved.resource("RegionalArtifactStore")["Properties"]["BucketName"]
    assert re.fullmatch(r"mrd-eu-west-1-[0-9a-f-]{1,36}", bucket)
    assert len(bucket) <= 63
    s3_statements = [
        statement
        for statement in resolved.function_policy("RegionalArtifactStoreFunction")["Statement"]
        if all(str(action).startswith("s3:") for action in _as_list(statement["Action"]))
    ]
    assert s3_statements
    for statement in s3_statements:
        resources = _as_list(statement["Resource"])
        assert all(not resource.endswith(":::*") and ":::*/" not in resource for resource in resources)
        assert any(fnmatch.fnmatchcase(f"arn:aws:s3:::{bucket}", resource) for resource in resources)
    empty = next(s for s in s3_statements if "s3:DeleteObjectVersion" in _as_list(s["Action"]))
    assert any(fnmatch.fnmatchcase(f"arn:aws:s3:::{bucket}/key", r) for r in _as_list(empty["Resource"]))
    assert not any(
        fnmatch.fnmatchcase("arn:aws:s3:::release-pipeline-artifacts/releases/x", r)
        for r in _as_list(empty["Resource"])
    )


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_the_approval_text_stays_within_codepipeline_limits_with_the_longest_summaries(
    resolved: ResolvedTemplate,
) -> None:
    stage = next(stage for stage in stages(resolved) if stage["Name"] == "Stage")
    approval = next(a for a in stage["Actions"] if a["ActionTypeId"]["Category"] == "Approval")
    longest = {
        "Changes": "c" * changes.SUMMARY_VARIABLE_LIMIT,
        "Drift": "d" * drift.SUMMARY_VARIABLE_LIMIT,
    }
    text = VARIABLE.sub(lambda m: longest[m.group(1)], approval["Configuration"]["CustomData"])
    assert "c" * changes.SUMMARY_VARIABLE_LIMIT in text
    assert len(text) <= 1000
