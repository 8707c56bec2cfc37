"""release_pipeline.config: typed configuration that fails loudly, naming every bad variable at once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from release_pipeline.changes import ChangeDetectionConfig
from release_pipeline.config import FromEnv, ProductionStacks, Regions, home_region, whole
from release_pipeline.drift import DriftDetectionConfig
from release_pipeline.errors import ConfigurationError
from release_pipeline.gate import ExecutionGateConfig
from release_pipeline.map_check import MapCheckConfig
from release_pipeline.record_release import RecordReleaseConfig
from release_pipeline.revert import StageRevertConfig
from release_pipeline.stage_artifact import PrepareStageArtifactConfig
from release_pipeline.start_rollout import StartRolloutConfig
from release_pipeline.target_changes import TargetChangesConfig

# The variables template.yaml sets for each function (the wiring contract).
VARIABLES: dict[type[Any], dict[str, str]] = {
    PrepareStageArtifactConfig: {
        "RELEASE_RECORD_PARAMETER": "/release-pipeline/release/5b7e9a10-3c2d-4f10-9a4e-0a1b2c3d4e5f/record",
        "STAGE_PARAMETERS": '{"Env": "stage"}',
        "TEMPLATE_PATH": "infra/app.yaml",
    },
    ChangeDetectionConfig: {
        "AWS_REGION": "us-east-1",
        "SECONDARY_REGION": "eu-west-1",
        "PRIMARY_STACK_NAME": "demo-app",
        "SECONDARY_STACK_NAME": "demo-app",
        "CHANGE_SET_PREFIX": "pipeline-",
        "TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:release-pipeline",
    },
    DriftDetectionConfig: {
        "AWS_REGION": "us-east-1",
        "SECONDARY_REGION": "eu-west-1",
        "PRIMARY_STACK_NAME": "demo-app",
        "SECONDARY_STACK_NAME": "demo-app",
        "TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:release-pipeline",
        "DRIFT_POLICY": "NOTIFY",
    },
    RecordReleaseConfig: {
        "RELEASE_RECORD_PARAMETER": "/release-pipeline/release/5b7e9a10-3c2d-4f10-9a4e-0a1b2c3d4e5f/record",
        "ARTIFACT_BUCKET": "release-pipeline-artifacts",
        "KMS_KEY_ARN": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "STAGE_PARAMETERS": "{}",
        "TEMPLATE_PATH": "infra/app.yaml",
    },
    StageRevertConfig: {
        "PIPELINE_NAME": "release-pipeline",
        "STAGE_NAME": "Stage",
        "DELETE_STAGE_STACK": "Yes",
        "STAGE_STACK_NAME": "demo-app-stage",
        "AWS_REGION": "us-east-1",
        "SECONDARY_REGION": "eu-west-1",
        "PRIMARY_STACK_NAME": "demo-app",
        "SECONDARY_STACK_NAME": "demo-app",
        "RELEASE_RECORD_PARAMETER": "/release-pipeline/release/5b7e9a10-3c2d-4f10-9a4e-0a1b2c3d4e5f/record",
        "CLOUDFORMATION_ROLE_ARN": "arn:aws:iam::123456789012:role/release-pipeline-cfn",
        "CHANGE_SET_PREFIX": "pipeline-",
        "WATCHED_STAGES": "Stage,DeploySecondary,DeployPrimary",
        "DEPLOY_STAGES": "DeploySecondary=secondary,DeployPrimary=primary",
        "TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:release-pipeline",
    },
    ExecutionGateConfig: {
        "PIPELINE_NAME": "pipeline-release-solution",
        "STAGE_STACK_NAME": "demo-app-stage",
        "AWS_REGION": "us-east-1",
        "SECONDARY_REGION": "eu-west-1",
        "PRIMARY_STACK_NAME": "demo-app",
        "SECONDARY_STACK_NAME": "demo-app",
        "CHANGE_SET_PREFIX": "pipeline-",
    },
    MapCheckConfig: {"DEPLOYMENT_MAP_PATH": "deploy/map.json", "APPLICATION_STACK_NAME": "demo-app"},
    TargetChangesConfig: {
        "DEPLOYMENT_MAP_PATH": "deployment-map.json",
        "APPLICATION_STACK_NAME": "demo-app",
        "TEMPLATE_PATH": "infra/app.yaml",
        "CHANGE_SET_PREFIX": "pipeline-",
        "CLOUDFORMATION_ROLE_ARN": "arn:aws:iam::123456789012:role/release-pipeline-cfn",
        "TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:release-pipeline",
        "RELEASE_RECORD_PARAMETER": "/release-pipeline/release/5b7e9a10-3c2d-4f10-9a4e-0a1b2c3d4e5f/record",
    },
    StartRolloutConfig: {
        "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:release-pipeline-rollout",
        "DEPLOYMENT_MAP_PATH": "deployment-map.json",
        "APPLICATION_STACK_NAME": "demo-app",
        "CHANGE_SET_PREFIX": "pipeline-",
        "CLOUDFORMATION_ROLE_ARN": "arn:aws:iam::123456789012:role/release-pipeline-cfn",
        "TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:release-pipeline",
        "POLL_SECONDS": "30",
    },
}
CONFIGS = list(VARIABLES)
FUNCTION_NAMES = {
    PrepareStageArtifactConfig: "prepare-stage-artifact",
    ChangeDetectionConfig: "change-detection",
    DriftDetectionConfig: "drift-detection",
    RecordReleaseConfig: "record-release",
    StageRevertConfig: "stage-revert",
    ExecutionGateConfig: "execution-gate",
    MapCheckConfig: "check-deployment-map",
    TargetChangesConfig: "target-change-sets",
    StartRolloutConfig: "start-rollout",
}
WITH_STAGE_PARAMETERS = [PrepareStageArtifactConfig, RecordReleaseConfig]


def environ(config: type[Any], **changes: str | None) -> dict[str, str]:
    values: dict[str, str | None] = {**VARIABLES[config], **changes}
    return {name: value for name, value in values.items() if value is not None}


def config_error(config: type[Any], env: dict[str, str]) -> str:
    with pytest.raises(ConfigurationError) as error:
        config.from_env(env)
    return str(error.value)


# ------------------------------------------------------------------------------------------ from_env


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: FUNCTION_NAMES[c])
def test_from_env_names_every_missing_variable_in_one_error(config: type[Any]) -> None:
    message = config_error(config, {})

    assert message.startswith(f"{FUNCTION_NAMES[config]} configuration: ")
    for name in VARIABLES[config]:
        assert f"{name} is not set" in message


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: FUNCTION_NAMES[c])
def test_blank_variable_counts_as_missing(config: type[Any]) -> None:
    first = next(iter(VARIABLES[config]))

    message = config_error(config, environ(config, **{first: "   "}))

    assert message == f"{FUNCTION_NAMES[config]} configuration: {first} is not set"


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: FUNCTION_NAMES[c])
def test_from_env_reads_the_process_environment(config: type[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in VARIABLES[config].items():
        monkeypatch.setenv(name, value)

    assert config.from_env() == config.from_env(VARIABLES[config])


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: FUNCTION_NAMES[c])
def test_from_env_reads_nothing_from_the_process_when_given_a_mapping(
    config: type[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in VARIABLES[config].items():
        monkeypatch.setenv(name, value)

    with pytest.raises(ConfigurationError):
        config.from_env({})


def test_prepare_stage_artifact_config_values() -> None:
    config = PrepareStageArtifactConfig.from_env(VARIABLES[PrepareStageArtifactConfig])

    assert config == PrepareStageArtifactConfig(
        release_record_parameter="/release-pipeline/release/5b7e9a10-3c2d-4f10-9a4e-0a1b2c3d4e5f/record",
        stage_parameters={"Env": "stage"},
        template_path="infra/app.yaml",
    )


def test_record_release_config_values() -> None:
    config = RecordReleaseConfig.from_env(environ(RecordReleaseConfig, STAGE_PARAMETERS='{"A": "1", "B": ""}'))

    assert config.stage_parameters == {"A": "1", "B": ""}
    assert config.artifact_bucket == "release-pipeline-artifacts"
    assert config.kms_key_arn.startswith("arn:aws:kms:")


def test_record_release_without_a_deployment_map_path_has_none() -> None:
    """GIVEN no DEPLOYMENT_MAP_PATH, unset or empty WHEN read THEN no map (the two-Region rollout), and no
    application stack name is needed."""
    for value in (None, "", "  "):
        config = RecordReleaseConfig.from_env(environ(RecordReleaseConfig, DEPLOYMENT_MAP_PATH=value))

        assert (config.deployment_map_path, config.application_stack_name) == ("", "")


def test_record_release_with_a_deployment_map_path_reads_it_and_the_application_stack_name() -> None:
    env = environ(RecordReleaseConfig, DEPLOYMENT_MAP_PATH=" deploy/map.json ", APPLICATION_STACK_NAME="demo-app")

    config = RecordReleaseConfig.from_env(env)

    assert (config.deployment_map_path, config.application_stack_name) == ("deploy/map.json", "demo-app")


@pytest.mark.parametrize("stack_name", [None, "", " "])
def test_a_deployment_map_path_without_the_application_stack_name_is_refused(stack_name: str | None) -> None:
    env = environ(RecordReleaseConfig, DEPLOYMENT_MAP_PATH="deploy/map.json", APPLICATION_STACK_NAME=stack_name)

    message = config_error(RecordReleaseConfig, env)

    assert message == (
        "record-release configuration: "
        "APPLICATION_STACK_NAME is not set (it is required when DEPLOYMENT_MAP_PATH is set)"
    )


def test_an_optional_variable_is_reported_with_the_missing_ones() -> None:
    env = environ(RecordReleaseConfig, DEPLOYMENT_MAP_PATH="deploy/map.json", KMS_KEY_ARN=None)

    message = config_error(RecordReleaseConfig, env)

    assert "KMS_KEY_ARN is not set" in message
    assert "APPLICATION_STACK_NAME is not set" in message


def test_an_application_stack_name_alone_is_read_but_asks_for_nothing() -> None:
    config = RecordReleaseConfig.from_env(environ(RecordReleaseConfig, APPLICATION_STACK_NAME="demo-app"))

    assert (config.deployment_map_path, config.application_stack_name) == ("", "demo-app")


def test_change_detection_config_builds_this_executions_change_set_name() -> None:
    config = ChangeDetectionConfig.from_env(VARIABLES[ChangeDetectionConfig])

    name = config.change_set_name("0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9")

    assert name == "pipeline-0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9"
    assert config.stacks == ProductionStacks(
        regions=Regions(primary="us-east-1", secondary="eu-west-1"),
        primary_stack="demo-app",
        secondary_stack="demo-app",
    )
    assert config.stacks.targets() == (
        ("primary", "us-east-1", "demo-app"),
        ("secondary", "eu-west-1", "demo-app"),
    )


def test_the_primary_region_is_the_region_the_function_runs_in() -> None:
    """GIVEN Lambda's AWS_REGION WHEN a configuration is read THEN it is the primary Region: one source."""
    env = environ(ChangeDetectionConfig, AWS_REGION="eu-central-1")

    assert ChangeDetectionConfig.from_env(env).stacks.regions.primary == "eu-central-1"
    assert home_region(env) == "eu-central-1"


@pytest.mark.parametrize("value", [None, "", "  "])
def test_a_missing_home_region_is_a_configuration_error(value: str | None) -> None:
    env = environ(ExecutionGateConfig, AWS_REGION=value)

    with pytest.raises(ConfigurationError, match=r"^AWS_REGION is not set$"):
        home_region(env)
    assert "AWS_REGION is not set" in config_error(ExecutionGateConfig, env)


# ---------------------------------------------------------------------------------- stage parameters


@pytest.mark.parametrize("config", WITH_STAGE_PARAMETERS, ids=lambda c: FUNCTION_NAMES[c])
@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ('["Env", "stage"]', "must be a JSON object whose values are all strings"),
        ('{"Port": 8080}', "must be a JSON object whose values are all strings"),
        ('{"Flag": true}', "must be a JSON object whose values are all strings"),
        ('{"Env": null}', "must be a JSON object whose values are all strings"),
        ('{"Nested": {"A": "b"}}', "must be a JSON object whose values are all strings"),
        ('"Env=stage"', "must be a JSON object whose values are all strings"),
        ("42", "must be a JSON object whose values are all strings"),
        ('{"Env": "stage",}', "is not valid JSON"),
        ("Env=stage", "is not valid JSON"),
    ],
    ids=["list", "number-value", "bool-value", "null-value", "nested", "string", "number", "trailing-comma", "text"],
)
def test_stage_parameters_that_are_not_an_object_of_strings_are_refused(
    config: type[Any], raw: str, problem: str
) -> None:
    message = config_error(config, environ(config, STAGE_PARAMETERS=raw))

    assert f"STAGE_PARAMETERS {problem}" in message


@pytest.mark.parametrize("config", WITH_STAGE_PARAMETERS, ids=lambda c: FUNCTION_NAMES[c])
def test_bad_stage_parameters_and_missing_variables_are_reported_together(config: type[Any]) -> None:
    message = config_error(config, environ(config, STAGE_PARAMETERS="[1]", TEMPLATE_PATH=None))

    assert "STAGE_PARAMETERS must be a JSON object" in message
    assert "TEMPLATE_PATH is not set" in message


@pytest.mark.parametrize("config", WITH_STAGE_PARAMETERS, ids=lambda c: FUNCTION_NAMES[c])
def test_empty_object_is_no_stage_parameters(config: type[Any]) -> None:
    assert config.from_env(environ(config, STAGE_PARAMETERS=" {} ")).stage_parameters == {}


# ----------------------------------------------------------------------------------------- choices


@pytest.mark.parametrize(("policy", "blocks"), [("NOTIFY", False), ("BLOCK", True)])
def test_drift_policy(policy: str, blocks: bool) -> None:
    config = DriftDetectionConfig.from_env(environ(DriftDetectionConfig, DRIFT_POLICY=policy))

    assert config.block_on_drift is blocks


@pytest.mark.parametrize("policy", ["notify", "Block", "WARN", "true", "NONE"])
def test_bad_drift_policy_is_refused(policy: str) -> None:
    message = config_error(DriftDetectionConfig, environ(DriftDetectionConfig, DRIFT_POLICY=policy))

    assert message == f"drift-detection configuration: DRIFT_POLICY must be one of NOTIFY, BLOCK, not {policy!r}"


def test_missing_drift_policy_is_refused_not_defaulted() -> None:
    message = config_error(DriftDetectionConfig, environ(DriftDetectionConfig, DRIFT_POLICY=None))

    assert message == "drift-detection configuration: DRIFT_POLICY is not set"


@pytest.mark.parametrize(
    ("value", "path"), [(None, ""), ("", ""), ("  ", ""), (" deploy/map.json ", "deploy/map.json")]
)
def test_the_deployment_map_path_is_optional_and_empty_means_the_two_production_stacks(
    value: str | None, path: str
) -> None:
    config = DriftDetectionConfig.from_env(environ(DriftDetectionConfig, DEPLOYMENT_MAP_PATH=value))

    assert config.deployment_map_path == path


@pytest.mark.parametrize(("value", "deletes"), [("Yes", True), ("No", False)])
def test_delete_stage_stack(value: str, deletes: bool) -> None:
    config = StageRevertConfig.from_env(environ(StageRevertConfig, DELETE_STAGE_STACK=value))

    assert config.delete_stage_stack is deletes


@pytest.mark.parametrize("value", ["yes", "true", "True", "1", "Y", "NO"])
def test_bad_delete_stage_stack_is_refused(value: str) -> None:
    message = config_error(StageRevertConfig, environ(StageRevertConfig, DELETE_STAGE_STACK=value))

    assert message == f"stage-revert configuration: DELETE_STAGE_STACK must be one of Yes, No, not {value!r}"


def test_watched_stages_are_read_as_a_list() -> None:
    config = StageRevertConfig.from_env(environ(StageRevertConfig, WATCHED_STAGES=" Stage , DeployPrimary,,"))

    assert config.watched_stages == ("Stage", "DeployPrimary")


def test_deploy_stages_keep_the_pipeline_order_and_name_each_stack() -> None:
    config = StageRevertConfig.from_env(
        environ(StageRevertConfig, DEPLOY_STAGES=" DeploySecondary = secondary , DeployPrimary=primary ")
    )

    assert config.deploy_stages == ("DeploySecondary", "DeployPrimary")
    assert config.deploy_roles == {"DeploySecondary": "secondary", "DeployPrimary": "primary"}


@pytest.mark.parametrize("value", ["DeploySecondary", "DeployPrimary=tertiary", "=primary"])
def test_a_deploy_stage_without_a_known_stack_is_a_configuration_error(value: str) -> None:
    message = config_error(StageRevertConfig, environ(StageRevertConfig, DEPLOY_STAGES=value))

    assert "DEPLOY_STAGES" in message
    assert repr(value.strip()) in message


@pytest.mark.parametrize("value", [None, "", "   "])
def test_an_unset_or_empty_deployment_map_path_leaves_the_map_off(value: str | None) -> None:
    config = StageRevertConfig.from_env(environ(StageRevertConfig, DEPLOYMENT_MAP_PATH=value))

    assert config.deployment_map_path == ""


def test_a_deployment_map_path_is_read_as_written() -> None:
    config = StageRevertConfig.from_env(environ(StageRevertConfig, DEPLOYMENT_MAP_PATH=" deploy/map.json "))

    assert config.deployment_map_path == "deploy/map.json"


# ------------------------------------------------------------------------------------------ numbers


def test_start_rollout_reads_its_poll_interval_as_seconds() -> None:
    config = StartRolloutConfig.from_env(environ(StartRolloutConfig, POLL_SECONDS="45"))

    assert config.poll_seconds == 45
    message = config_error(StartRolloutConfig, environ(StartRolloutConfig, POLL_SECONDS="600"))
    assert message == "start-rollout configuration: POLL_SECONDS must be a whole number from 5 to 300, not '600'"


@dataclass(frozen=True)
class Polling(FromEnv):
    FUNCTION = "polling"

    seconds: int = whole("POLL_SECONDS", 5, 300)


@pytest.mark.parametrize(("value", "seconds"), [("5", 5), ("300", 300), (" 30 ", 30), ("060", 60)])
def test_a_whole_number_is_read_within_its_bounds(value: str, seconds: int) -> None:
    assert Polling.from_env({"POLL_SECONDS": value}).seconds == seconds


@pytest.mark.parametrize("value", ["4", "301", "0", "-30", "+30", "30.0", "3e1", "thirty", "\u0663\u0660", "1" * 5000])
def test_a_number_outside_its_bounds_or_not_whole_is_refused(value: str) -> None:
    with pytest.raises(ConfigurationError) as error:
        Polling.from_env({"POLL_SECONDS": value})

    assert str(error.value) == (
        f"polling configuration: POLL_SECONDS must be a whole number from 5 to 300, not {value.strip()[:40]!r}"
    )


def test_a_missing_number_is_refused_not_defaulted() -> None:
    with pytest.raises(ConfigurationError, match=r"^polling configuration: POLL_SECONDS is not set$"):
        Polling.from_env({})
