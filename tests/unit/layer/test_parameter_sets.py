"""release_pipeline.parameter_sets: the three parameter sets, read from the pipeline's own actions and
checked, every problem named at once before any change set is made from them."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from release_pipeline.errors import ConfigurationError
from release_pipeline.parameter_sets import PARAMETER_SET_ACTIONS, check, parse_parameters

if TYPE_CHECKING:
    from mypy_boto3_codepipeline import CodePipelineClient

REGION = "us-east-1"
PIPELINE = "release-pipeline"
BUCKET = "release-pipeline-artifacts"
CLOUDFORMATION = {"category": "Deploy", "owner": "AWS", "provider": "CloudFormation", "version": "1"}
SOURCE = {"category": "Source", "owner": "AWS", "provider": "S3", "version": "1"}
APPROVAL = {"category": "Approval", "owner": "AWS", "provider": "Manual", "version": "1"}


# ----------------------------------------------------------------------------------- parse_parameters


def test_a_json_object_of_strings_is_the_parameter_set() -> None:
    assert parse_parameters('{"Env": "prod", "Size": "3"}', "PrimaryParameters") == {"Env": "prod", "Size": "3"}
    assert parse_parameters("{}", "PrimaryParameters") == {}


@pytest.mark.parametrize(
    ("raw", "position"),
    [
        ('{"Env": "prod",}', 14),  # the comma
        ('{"Env" "prod"}', 7),
        ("", 0),
        ('{"Env": "prod"} trailing', 16),
    ],
)
def test_invalid_json_names_the_set_and_the_position(raw: str, position: int) -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse_parameters(raw, "StageParameters")

    message = str(raised.value)
    assert message.startswith("StageParameters is not valid JSON: ")
    assert message.endswith(f" at position {position}")


@pytest.mark.parametrize(
    "raw",
    ['["Env", "prod"]', '"Env=prod"', "3", "null", '{"Size": 3}', '{"On": true}', '{"Env": null}', '{"L": ["a"]}'],
)
def test_anything_but_an_object_of_strings_is_refused_by_name(raw: str) -> None:
    with pytest.raises(ConfigurationError, match=r"^SecondaryParameters must be a JSON object whose values are all"):
        parse_parameters(raw, "SecondaryParameters")


@pytest.mark.parametrize("raw", ["[" * 100_000 + "]" * 100_000, '{"a": ' + "9" * 5_000 + "}"])
def test_json_the_decoder_cannot_hold_is_refused_by_name_not_raised_as_a_python_error(raw: str) -> None:
    with pytest.raises(ConfigurationError, match="PrimaryParameters is not a parameter set"):
        parse_parameters(raw, "PrimaryParameters")


def test_the_error_does_not_chain_the_json_decoder_traceback() -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse_parameters("{", "PrimaryParameters")

    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__


# ---------------------------------------------------------------------------------------------- check


@pytest.fixture
def pipeline(aws: None) -> CodePipelineClient:
    client: CodePipelineClient = boto3.client("codepipeline", region_name=REGION)
    return client


def cfn_action(name: str, overrides: str | None) -> dict[str, Any]:
    configuration = {"ActionMode": "CHANGE_SET_REPLACE", "StackName": "demo-app", "ChangeSetName": "cs"}
    if overrides is not None:
        configuration["ParameterOverrides"] = overrides
    return {"name": name, "actionTypeId": CLOUDFORMATION, "configuration": configuration}


def create(pipeline: CodePipelineClient, stages: list[dict[str, Any]]) -> None:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "codepipeline.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    role = boto3.client("iam", region_name=REGION).create_role(
        RoleName="pipeline-role", AssumeRolePolicyDocument=json.dumps(trust)
    )["Role"]["Arn"]
    source = {
        "name": "Source",
        "actions": [
            {
                "name": "Source",
                "actionTypeId": SOURCE,
                "configuration": {"S3Bucket": BUCKET, "S3ObjectKey": "source.zip"},
                "outputArtifacts": [{"name": "SourceOutput"}],
            }
        ],
    }
    declaration: Any = {
        "name": PIPELINE,
        "roleArn": role,
        "artifactStore": {"type": "S3", "location": BUCKET},
        "stages": [source, *stages],
    }
    pipeline.create_pipeline(pipeline=declaration)


def stages(primary: str | None, secondary: str | None, stage: str | None) -> list[dict[str, Any]]:
    """The pipeline's stages after Source, as the solution lays them out (the sets in three stages)."""
    return [
        {
            "name": "CheckChanges",
            "actions": [cfn_action("PrimaryChangeSet", primary), cfn_action("SecondaryChangeSet", secondary)],
        },
        {"name": "Stage", "actions": [cfn_action("UpdateStage", stage)]},
        {"name": "Approve", "actions": [{"name": "Approval", "actionTypeId": APPROVAL}]},
    ]


def test_check_returns_each_set_by_its_template_parameter(pipeline: CodePipelineClient) -> None:
    create(pipeline, stages('{"Env": "prod"}', '{"Env": "prod", "Replicas": "2"}', '{"Env": "stage"}'))

    assert check(pipeline, PIPELINE) == {
        "PrimaryParameters": {"Env": "prod"},
        "SecondaryParameters": {"Env": "prod", "Replicas": "2"},
        "StageParameters": {"Env": "stage"},
    }


def test_an_action_without_overrides_or_with_blank_ones_carries_an_empty_set(pipeline: CodePipelineClient) -> None:
    create(pipeline, stages(None, "   ", '{"Env": "stage"}'))

    found = check(pipeline, PIPELINE)

    assert found["PrimaryParameters"] == {}
    assert found["SecondaryParameters"] == {}
    assert found["StageParameters"] == {"Env": "stage"}


def test_every_bad_set_is_reported_together_by_name(pipeline: CodePipelineClient) -> None:
    create(pipeline, stages('{"Env": "prod",}', '{"Env": "prod"}', '{"Replicas": 2}'))

    with pytest.raises(ConfigurationError) as raised:
        check(pipeline, PIPELINE)

    message = str(raised.value)
    assert "PrimaryParameters (the PrimaryParameters parameter set) is not valid JSON" in message
    assert "at position 14" in message
    assert "StageParameters (the StageParameters parameter set) must be a JSON object" in message
    assert "SecondaryParameters" not in message
    assert message.count(";") == 1


def test_missing_actions_are_named_with_the_bad_sets(pipeline: CodePipelineClient) -> None:
    """A pipeline edited by hand that lost its stage action and has a bad primary set: both are told."""
    create(
        pipeline,
        [{"name": "CheckChanges", "actions": [cfn_action("PrimaryChangeSet", "not json"), cfn_action("X", "{")]}],
    )

    with pytest.raises(ConfigurationError) as raised:
        check(pipeline, PIPELINE)

    message = str(raised.value)
    assert "PrimaryParameters (the PrimaryParameters parameter set) is not valid JSON" in message
    assert f"pipeline {PIPELINE} has no action carrying SecondaryParameters, StageParameters" in message


def test_actions_of_other_names_are_not_read(pipeline: CodePipelineClient) -> None:
    """Only the three named actions carry sets: another CloudFormation action's overrides are not checked."""
    create(pipeline, [*stages("{}", "{}", "{}"), {"name": "Extra", "actions": [cfn_action("Other", "not json")]}])

    assert set(check(pipeline, PIPELINE)) == set(PARAMETER_SET_ACTIONS.values())


def test_with_a_deployment_map_only_the_stage_set_is_carried_and_checked(pipeline: CodePipelineClient) -> None:
    """With a map the production change sets come from the map's parameter files (checked at Validate):
    the pipeline has no Primary/SecondaryChangeSet action, and that is no error; the stage's set still is."""
    create(pipeline, [{"name": "Stage", "actions": [cfn_action("UpdateStage", '{"Env": "stage"}')]}])

    assert check(pipeline, PIPELINE, with_map=True) == {"StageParameters": {"Env": "stage"}}
    with pytest.raises(ConfigurationError, match="has no action carrying PrimaryParameters, SecondaryParameters"):
        check(pipeline, PIPELINE)


def test_with_a_deployment_map_a_bad_or_missing_stage_set_still_fails(pipeline: CodePipelineClient) -> None:
    create(pipeline, [{"name": "Stage", "actions": [cfn_action("UpdateStage", '{"Env": 1}')]}])
    with pytest.raises(ConfigurationError, match=r"StageParameters .* must be a JSON object"):
        check(pipeline, PIPELINE, with_map=True)


def test_with_a_deployment_map_a_pipeline_without_the_stage_action_fails(pipeline: CodePipelineClient) -> None:
    create(pipeline, [{"name": "Approve", "actions": [{"name": "Approval", "actionTypeId": APPROVAL}]}])
    with pytest.raises(ConfigurationError, match=f"pipeline {PIPELINE} has no action carrying StageParameters"):
        check(pipeline, PIPELINE, with_map=True)
