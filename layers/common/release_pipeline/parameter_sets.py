"""The three parameter sets, read from the pipeline's own CloudFormation actions and checked.

The solution stack passes PrimaryParameters, SecondaryParameters and StageParameters to the pipeline as
the ParameterOverrides of the actions below. They are not in any function's environment: three sets of
up to 1,000 characters, JSON-escaped, could exceed Lambda's 4 KB environment limit. The execution gate
reads them with GetPipeline, so a set that is not a JSON object of strings fails the first action of
CheckChanges, naming the set, before any change set is made from it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from release_pipeline.errors import ConfigurationError

if TYPE_CHECKING:
    from mypy_boto3_codepipeline import CodePipelineClient

# Pipeline action -> the solution template's parameter its ParameterOverrides holds.
STAGE_SET = "StageParameters"
PARAMETER_SET_ACTIONS = {
    "PrimaryChangeSet": "PrimaryParameters",
    "SecondaryChangeSet": "SecondaryParameters",
    "UpdateStage": "StageParameters",
}


def parse_parameters(raw: str, what: str) -> dict[str, str]:
    """Parse a parameter set: a JSON object whose values are all strings."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ConfigurationError(f"{what} is not valid JSON: {error.msg} at position {error.pos}") from None
    except (RecursionError, ValueError):
        # Valid JSON the decoder still refuses: nesting deeper than the interpreter's recursion limit, or
        # an integer over Python's 4,300-digit conversion limit. Neither is a parameter set.
        raise ConfigurationError(f"{what} is not a parameter set: nested too deeply or a number too long") from None
    if not isinstance(value, dict) or not all(
        isinstance(key, str) and isinstance(item, str) for key, item in value.items()
    ):
        raise ConfigurationError(f"{what} must be a JSON object whose values are all strings")
    return value


def check(pipeline: CodePipelineClient, pipeline_name: str, *, with_map: bool = False) -> dict[str, dict[str, str]]:
    """Each parameter set (by its template parameter's name), parsed from the pipeline's definition. With
    a deployment map (``with_map``) the production change sets are the map's, made from its parameter
    files (checked at Validate): only the stage's set is carried by an action."""
    declaration = pipeline.get_pipeline(name=pipeline_name)["pipeline"]
    found: dict[str, dict[str, str]] = {}
    problems: list[str] = []
    seen: set[str] = set()
    for stage in declaration["stages"]:
        for action in stage["actions"]:
            label = PARAMETER_SET_ACTIONS.get(action["name"])
            if label is None:
                continue
            seen.add(label)
            raw = action.get("configuration", {}).get("ParameterOverrides", "").strip()
            try:
                found[label] = parse_parameters(raw or "{}", f"{label} (the {label} parameter set)")
            except ConfigurationError as error:
                problems.append(str(error))
    expected = [STAGE_SET] if with_map else list(PARAMETER_SET_ACTIONS.values())
    missing = [label for label in expected if label not in seen]
    if missing:
        problems.append(f"pipeline {pipeline_name} has no action carrying {', '.join(missing)}")
    if problems:
        raise ConfigurationError("; ".join(problems))
    return found
