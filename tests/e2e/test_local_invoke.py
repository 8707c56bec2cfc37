"""`make emulator` + `sam local invoke -e events/local/... --env-vars events/env.json`, without Docker.

SAM CLI's own code decides what a container gets: its function provider reads template.yaml (only the
variables the template declares can be set from env.json) and its EnvironmentVariables class merges
env.json over them and adds AWS_SAM_LOCAL. Each handler then runs in this process with exactly that
environment, and no AWS_ENDPOINT_URL: it reaches the seeded emulator only through LOCAL_ENDPOINT_URL.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from samcli.lib.providers.sam_function_provider import SamFunctionProvider
from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider
from samcli.local.lambdafn.env_vars import EnvironmentVariables

import local_aws
from local_aws import FakeLambdaContext
from local_aws.awslambda import load_handler
from local_aws.cloudformation import load_template
from rehearsal.emulator import Emulator
from rehearsal.local import EVENTS, environment_file, seed
from rehearsal.paths import ROOT, TEMPLATE
from rehearsal.solution import Solution

pytestmark = pytest.mark.e2e

JOBS = [
    ("ExecutionGateFunction", "execution-gate/job.json"),
    ("ChangeDetectionFunction", "change-detection/job.json"),
    ("PrepareStageArtifactFunction", "prepare-stage-artifact/job.json"),
    ("DriftDetectionFunction", "drift-detection/job.json"),
    ("RecordReleaseFunction", "record-release/job.json"),
]


@pytest.fixture(scope="module")
def seeded(emulator: Emulator) -> Iterator[tuple[Solution, str, dict[str, dict[str, str]]]]:
    solution, execution_id = seed(emulator)
    yield solution, execution_id, environment_file(solution, emulator.endpoint)
    emulator.enforce_iam(False)


def container_environment(logical_id: str, env_json: dict[str, dict[str, str]]) -> dict[str, str]:
    """What `sam local invoke <logical_id> --env-vars events/env.json` gives the container."""
    # as `sam local invoke` reads the template with samconfig.toml's language_extensions = true
    stacks, _ = SamLocalStackProvider.get_stacks(str(TEMPLATE), language_extensions_enabled=True)
    function = SamFunctionProvider(stacks).get(logical_id)
    assert function is not None
    overrides = {**env_json.get("Parameters", {}), **env_json.get(logical_id, {})}
    variables = EnvironmentVariables(
        function_name=function.name,
        function_memory=function.memory,
        function_timeout=function.timeout,
        function_handler=function.handler,
        variables=(function.environment or {}).get("Variables", {}),
        override_values=overrides,
        aws_creds={"region": "us-east-1", "key": "testing", "secret": "testing"},
    )
    resolved: dict[str, str] = variables.resolve()
    return resolved


def invoke(solution: Solution, logical_id: str, event: dict[str, Any], env_json: dict[str, dict[str, str]]) -> None:
    environment = container_environment(logical_id, env_json)
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(environment)
    try:
        module = load_handler(solution.functions[logical_id].code_dir)  # CodeUri, as SAM builds it
        module.lambda_handler(event, FakeLambdaContext(logical_id, timeout_ms=300_000))
    finally:
        os.environ.clear()
        os.environ.update(saved)


def local_event(path: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / "local" / path).read_text(encoding="utf-8"))
    return event


def test_env_json_reaches_the_container_only_through_declared_variables(
    seeded: tuple[Solution, str, dict[str, dict[str, str]]],
) -> None:
    solution, _, env_json = seeded
    environment = container_environment("ChangeDetectionFunction", env_json)
    assert environment["AWS_SAM_LOCAL"] == "true"
    assert environment["LOCAL_ENDPOINT_URL"] == env_json["Parameters"]["LOCAL_ENDPOINT_URL"]
    assert environment["TOPIC_ARN"].startswith("arn:aws:sns:us-east-1:")
    assert "AWS_ENDPOINT_URL" not in environment  # undeclared in template.yaml: SAM would drop it
    # every function the seeded solution has: without a deployment map, all but the map's four
    functions = {
        name
        for name, spec in load_template(TEMPLATE)["Resources"].items()
        if isinstance(spec, dict)
        and spec["Type"] == "AWS::Serverless::Function"  # not a Fn::ForEach loop
        and solution.template.conditions.get(spec.get("Condition", ""), True)
    }
    assert "DeployTargetFunction" not in functions
    assert "StageRevertFunction" in functions
    assert set(env_json) == {"Parameters", *functions}
    # resolved as CloudFormation would: the release record's name comes from the stack's name and id
    assert env_json["StageRevertFunction"]["RELEASE_RECORD_PARAMETER"] == solution.release_record_parameter


@pytest.mark.parametrize(("logical_id", "path"), JOBS)
def test_sample_job_events_do_real_work_against_the_seeded_emulator(
    seeded: tuple[Solution, str, dict[str, dict[str, str]]], logical_id: str, path: str
) -> None:
    event = local_event(path)
    invoke(seeded[0], logical_id, event, seeded[2])

    (result,) = local_aws.job_results(event["CodePipeline.job"]["id"])
    assert result.accepted
    assert result.status == "Succeeded", result.failure_details
    if logical_id == "ChangeDetectionFunction":
        assert result.output_variables["HasChanges"] == "true"
        assert result.output_variables["Summary"].startswith("primary us-east-1: +1 ~1 -0")


def test_sample_stage_failed_event_keeps_the_change_in_review_for_a_retry(
    seeded: tuple[Solution, str, dict[str, dict[str, str]]],
) -> None:
    solution, execution_id, env_json = seeded
    # the seed marked the change's Stage stage Failed; marked again so the test does not rest on the seed's order
    local_aws.set_stage_execution(solution.pipeline_name, "Stage", execution_id, "Failed")
    for region in (solution.primary_region, solution.secondary_region):
        cfn = solution.admin("cloudformation", region)
        names = [s["ChangeSetName"] for s in cfn.list_change_sets(StackName="hello-app")["Summaries"]]
        assert f"pipeline-{execution_id}" in names  # the change in review, seeded
    invoke(solution, "StageRevertFunction", local_event("stage-revert/stage-failed.json"), env_json)

    # The reviewed change sets stay, so that Retry of the Stage deploys exactly them; production is not
    # touched and the stage stack is gone (delete mode).
    for region in (solution.primary_region, solution.secondary_region):
        cfn = solution.admin("cloudformation", region)
        names = [s["ChangeSetName"] for s in cfn.list_change_sets(StackName="hello-app")["Summaries"]]
        assert f"pipeline-{execution_id}" in names
        assert cfn.describe_stacks(StackName="hello-app")["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    stacks = solution.admin("cloudformation").describe_stacks()["Stacks"]
    assert "hello-app-stage" not in [s["StackName"] for s in stacks if s["StackStatus"] != "DELETE_COMPLETE"]


def test_local_events_are_ignored_by_git() -> None:
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "events/env.json" in ignored
    assert "events/local/" in ignored
    assert Path(EVENTS / "local").is_dir()
