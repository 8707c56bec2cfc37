"""target-change-sets: the handler, run as CodePipeline runs it (first invocation, then continuations until
a final result), makes every target's change set, reports every target and wave to the topic with the
map's changes since the release, and fails naming the target or the map entry at fault. No parameter value
reaches the topic or an output variable.

Three Regions and two accounts (see tests/unit/layer/test_target_changes.py for the map and its files)."""

from __future__ import annotations

import json
from typing import Any

import pytest

import local_aws
from local_aws import FakeLambdaContext
from release_pipeline import deployment_map
from release_pipeline.jobs import SUMMARY_VARIABLE_LIMIT
from tests.support.events import continuation_of, load_event
from tests.support.jobs import run_job, run_until_final
from tests.support.notifications import Inbox
from tests.unit.layer.test_target_changes import (
    CHANGE_SET,
    ENVIRONMENT,
    HOME,
    MAP,
    MAP_PATH,
    OTHER,
    PARAMETERS,
    PRIMARY,
    RELEASED_CANARY,
    SECRET,
    STACK,
    TARGETS,
    TEMPLATE_PATH,
    _clients,
    cfn,
    change_set_names,
    deploy,
    files,
    inbox,
    put_source,
    record_release,
    released_files,
    stack_status,
    template,
)

FUNCTION = "target-change-sets"
OUTPUT_VARIABLES = {"HasChanges", "Summary", "ChangedTargets", "MapDigest"}
__all__ = ["_clients", "inbox"]  # the layer tests' fixtures, used here too


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch, inbox: Inbox) -> None:
    """TargetChangeSetsFunction's variables (the function runs in the primary Region)."""
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_REGION", PRIMARY)


def source_event(repository: dict[str, str] | None = None) -> dict[str, Any]:
    event = load_event(FUNCTION, "job")
    put_source(event, files() if repository is None else repository)
    return event


def final_outputs(results: list[local_aws.ReportedJobResult]) -> dict[str, str]:
    """The final result's output variables, after a first invocation that kept waiting."""
    assert results[0].continuation_token is not None
    assert results[0].output_variables == {}
    final = results[-1]
    assert final.status == "Succeeded", final
    assert final.continuation_token is None
    assert set(final.output_variables) == OUTPUT_VARIABLES
    assert len(final.output_variables["Summary"]) <= SUMMARY_VARIABLE_LIMIT
    assert final.execution_details is not None
    assert final.execution_details["summary"] == final.output_variables["Summary"]
    return final.output_variables


def failure(result: local_aws.ReportedJobResult) -> str:
    assert result.status == "Failed", result
    assert result.output_variables == {}
    assert result.failure_details is not None
    return str(result.failure_details["message"])


def assert_nothing_made() -> None:
    for account, region, _ in TARGETS:
        assert cfn(region, account).describe_stacks()["Stacks"] == [], (region, account)


def test_every_target_and_wave_is_reported_against_the_released_map(
    inbox: Inbox, lambda_context: FakeLambdaContext
) -> None:
    """GIVEN release r1 went out with three targets (canary us-west-2, early eu-west-1, rest us-east-1) and
    the map under review drops us-east-1, adds two targets in OTHER and gives the canary a new password,
    while eu-west-1 already runs the template under review THEN the canary changes, eu-west-1 is unchanged
    (its empty change set kept), both OTHER targets are new, the removed target's stack is left alone, and
    the report says all of it wave by wave without a single parameter value."""
    record_release(released_files())
    deploy("us-west-2", HOME, 1, RELEASED_CANARY)
    deploy("eu-west-1", HOME, 2, PARAMETERS["p/eu.json"])
    deploy("us-east-1", HOME, 1, PARAMETERS["p/home.json"])  # in the released map only

    results = run_until_final(FUNCTION, source_event(), lambda_context)

    outputs = final_outputs(results)
    assert len(results) == 2
    assert outputs["HasChanges"] == "true"
    assert outputs["ChangedTargets"] == "3"
    summary = (
        "3 of 4 targets change. canary: 1 changed, 0 unchanged, 0 new; early: 0 changed, 1 unchanged, 1 new; "
        "rest: 0 changed, 0 unchanged, 1 new"
    )
    assert outputs["Summary"] == summary
    parsed = deployment_map.parse(
        json.dumps(MAP),
        read_file=lambda path: files().get(path),
        default_stack_name=STACK,
        home_account=HOME,
    )
    assert outputs["MapDigest"] == deployment_map.digest(parsed)
    ((report, subject),) = inbox.messages()
    assert subject == f"Changes to review: 3 of 4 targets of {STACK}"
    lines = report.splitlines()
    assert f"Summary: {summary}" in lines
    assert "   wave 1 canary: 1 target (us-west-2), concurrency 1, bake 30 min, alarms app-5xx" in lines
    assert "Deployment map: Compared with the map of release r1." in lines
    assert f"   stack {STACK} in eu-west-1, account {OTHER}: added, in wave early" in lines
    assert f"   stack {STACK} in us-east-1, account {OTHER}: added, in wave rest" in lines
    removed = f"   stack {STACK} in us-east-1: removed from the map; its stack is not deleted (it was in wave rest)"
    assert removed in lines
    assert f"   stack {STACK} in us-west-2 (wave canary): parameters changed: DbPassword" in lines
    canary = report.split("== wave canary: 1 changed, 0 unchanged, 0 new\n")[1].split("\n\n")[0].splitlines()
    assert canary[0] == f"-- stack {STACK} in us-west-2: +1 ~1 -0"
    assert canary[1].startswith("   Review: https://us-west-2.console.aws.amazon.com/cloudformation/")
    assert any(" Setting (AWS::SSM::Parameter) replacement=False" in line for line in canary)
    assert any(" AppRole (AWS::IAM::Role)" in line and line.endswith("[permissions]") for line in canary)
    early = report.split("== wave early: 0 changed, 1 unchanged, 1 new\n")[1].split("\n\n")[0].splitlines()
    assert f"-- stack {STACK} in eu-west-1: no changes" in early
    assert f"-- stack {STACK} in eu-west-1, account {OTHER}: +2 ~0 -0 [first release]" in early
    assert f"-- stack {STACK} in us-east-1, account {OTHER}: +2 ~0 -0 [first release]" in report
    assert lines[-1] == "Changes to permissions (IAM and resource policies): AppRole"
    for text in (report, subject, *outputs.values()):
        assert SECRET not in text
    # The removed target: its stack runs release 1 as before, with no change set made for it.
    assert stack_status("us-east-1") == "CREATE_COMPLETE"
    assert change_set_names("us-east-1") == []
    assert change_set_names("eu-west-1") == [CHANGE_SET]  # the empty one, kept for the rollout


def test_a_failed_change_set_fails_the_job_naming_the_target_and_cloudformations_reason(
    inbox: Inbox, lambda_context: FakeLambdaContext
) -> None:
    event = source_event()
    first = run_job(FUNCTION, event, lambda_context)
    reason = "Template error: instance of Fn::GetAtt references undefined resource Missing"
    local_aws.fail_change_set(STACK, CHANGE_SET, "us-east-1", reason, account_id=OTHER)

    results = run_until_final(FUNCTION, continuation_of(event, first.continuation_token or ""), lambda_context)

    message = failure(results[-1])
    assert f"stack {STACK} in us-east-1, account {OTHER}: the change set {CHANGE_SET} is FAILED: {reason}" in message
    assert "1 of 4 targets" in message
    assert inbox.messages() == []


def test_a_bad_map_fails_naming_the_entry_and_makes_no_change_set(
    inbox: Inbox, lambda_context: FakeLambdaContext
) -> None:
    """GIVEN a map whose second wave's second target names a parameter file the repository lacks THEN the
    job fails naming that entry (Validate should have caught it; this job checks again)."""
    bad = json.loads(json.dumps(MAP))
    bad["Waves"][1]["Targets"][1]["ParameterFile"] = "p/missing.json"

    result = run_job(FUNCTION, source_event(files(bad)), lambda_context)

    assert failure(result) == (
        f"{MAP_PATH}: the deployment map has 1 problem: Waves[1].Targets[1] (eu-west-1): ParameterFile "
        "'p/missing.json' is not in the repository"
    )
    assert_nothing_made()
    assert inbox.messages() == []


def test_a_template_over_the_inline_limit_fails_saying_a_template_url_is_not_supported_yet(
    inbox: Inbox, lambda_context: FakeLambdaContext
) -> None:
    body = template(2, padding=51_200)

    result = run_job(FUNCTION, source_event(files(body=body)), lambda_context)

    message = failure(result)
    assert message.startswith(f"The template {TEMPLATE_PATH} is {len(body.encode()):,} bytes, over the 51,200 bytes")
    assert "TemplateURL" in message
    assert "not supported yet" in message
    assert_nothing_made()


def test_nothing_to_release_sends_no_report(inbox: Inbox, lambda_context: FakeLambdaContext) -> None:
    """GIVEN every target runs the template under review and the map is the released one THEN nothing
    changes, and no report is published."""
    record_release(files())
    for account, region, path in TARGETS:
        deploy(region, account, 2, PARAMETERS[path])

    outputs = final_outputs(run_until_final(FUNCTION, source_event(), lambda_context))

    assert (outputs["HasChanges"], outputs["ChangedTargets"]) == ("false", "0")
    assert inbox.messages() == []
