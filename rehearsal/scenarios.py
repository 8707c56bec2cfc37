"""The scenarios a rehearsal can play, what each must end with, and the checks that prove it.

A scenario is a list of commits pushed one after the other (each a source folder, optionally with an
overlay folder copied over it) with the approver's decision for each. What it must end with is worked
out from what actually happened (which commits were approved and released), so the same checks hold
whether the decision came from a flag or from the terminal:

- production (both Regions) runs exactly the last released template, or nothing if nothing was released;
- production never changed while an execution had not been approved;
- the stage stack is gone in delete mode; in retain mode it runs the last released template (or is
  gone if nothing was ever released);
- the release record names the last released commit and execution;
- no review change set of a rejected or failed execution is left on a production stack.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

import local_aws
from rehearsal import waves
from rehearsal.actions import FAILED, SKIPPED, SUCCEEDED, commit_id, missing_stack
from rehearsal.emulator import Emulator
from rehearsal.paths import ROOT
from rehearsal.pipeline import Action, Pipeline, change_set_name, check, load
from rehearsal.report import Console, summary
from rehearsal.runner import ExecutionResult, run_execution
from rehearsal.solution import Leftovers, Solution, install, uninstall

EXAMPLE = ROOT / "examples" / "hello-app"
SECOND_CHANGE = ROOT / "examples" / "changes" / "second-change"
# The second change, and the deployment map with the alarm hello-app-errors watched in its early wave.
SECOND_CHANGE_WITH_ALARMS = ROOT / "examples" / "changes" / "second-change-with-alarms"
MAP_ERROR = ROOT / "examples" / "changes" / "map-error"
MAP_PATH = "deployment-map.json"
WAVE_ALARM = "hello-app-errors"
FAILS_LINT = ROOT / "examples" / "changes" / "fails-lint"
PRIMARY_REGION = "us-east-1"
SECONDARY_REGION = "eu-west-1"
SOLUTION_STACK = "release-solution"
RUNNING = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE"})
PARAMETER_FILES = {"StageParameters": "stage", "PrimaryParameters": "primary", "SecondaryParameters": "secondary"}


@dataclass(frozen=True)
class Commit:
    label: str
    overlay: Path | None = None
    approve: bool = True
    # After the execution fails, a person retries the failed stage ("all" or "failed" actions) and
    # decides the retried approval with ``retry_approve``.
    retry: str | None = None
    retry_approve: bool = True
    # Nobody decides: the approval stays open until it times out (the emulator's clock moves on).
    leave_open: bool = False
    # Something that happens in AWS before this commit is pushed (drift made by hand, for example).
    before: Callable[[Solution], str] | None = None
    # First (before ``before``), the solution is deleted as `sam delete` deletes it and installed again
    # under the same stack name: a new stack id, so a new key, artifact buckets and pipeline.
    reinstall: bool = False
    # How its execution must end: "decided" (released if approved, rejected otherwise), "skipped" (no
    # production change: the gated stages skip), "fails at <Stage>" (before any approval), or
    # "approved, fails at <Stage>" (a production deploy fails after the approval).
    expect: str = "decided"


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    commits: tuple[Commit, ...]
    drift_policy: str = "NOTIFY"
    # What the last commit's execution must show, beyond the common checks.
    last_check: Callable[[ExecutionResult, Pipeline], list[str]] | None = None
    # Set up the emulator once the solution is installed (a lower change-set limit, for example).
    setup: Callable[[Solution], str] | None = None
    # What the whole run must show, beyond the common checks (given the run's steps and messages).
    run_check: Callable[[list[Step], list[dict[str, str]]], list[str]] | None = None
    # The application ships with its deployment map (DeploymentMapPath): waves of targets, not two Regions.
    deployment_map: bool = False


def _drift_by_hand(solution: Solution) -> str:
    """Someone changes a production resource in the console: versioning suspended on the example's data
    bucket, or, for another application, a tag added to its first resource."""
    stack = solution.template.parameters["ApplicationStackName"]
    cfn = solution.admin("cloudformation")
    resources = [r["LogicalResourceId"] for r in cfn.list_stack_resources(StackName=stack)["StackResourceSummaries"]]
    if not resources:
        raise RuntimeError(f"stack {stack} has no resource to drift")
    if "DataBucket" in resources:
        logical_id, path, expected, actual, kind = (
            "DataBucket",
            "/VersioningConfiguration/Status",
            "Enabled",
            "Suspended",
            "NOT_EQUAL",
        )
    else:
        logical_id, path, expected, actual, kind = (
            resources[0],
            "/Tags/0",
            "null",
            '{"Key":"changed-by","Value":"hand"}',
            "ADD",
        )
    local_aws.inject_drift(
        stack,
        solution.primary_region,
        logical_id,
        [{"PropertyPath": path, "ExpectedValue": expected, "ActualValue": actual, "DifferenceType": kind}],
        account_id=solution.account_id,
    )
    return f"drift injected by hand: {stack} in {solution.primary_region}, {logical_id} {path}: {expected} -> {actual}"


def _drift_reported(result: ExecutionResult, pipeline: Pipeline) -> list[str]:
    drift = result.variables.get("Drift", {})
    if drift.get("DriftStatus") != "DRIFTED":
        return [f"drift on the primary stack must be reported as DRIFTED, got {drift or 'no Drift variables'}"]
    return []


def _drift_blocked(result: ExecutionResult, pipeline: Pipeline) -> list[str]:
    problems = []
    stage = result.stage("Stage")
    if stage is None or stage.status != FAILED or "DetectDrift" not in stage.reason:
        problems.append(f"under BLOCK, drift must fail the Stage stage at DetectDrift (got {stage})")
    if stage is not None and any(action.category == "Approval" for action, _ in stage.actions):
        problems.append("under BLOCK, no approval may be requested once drift is found")
    return problems


def _bucket_name_taken(solution: Solution) -> str:
    """The primary stack's first creation will fail: its data bucket's name is taken (the example's
    DataBucket), so CloudFormation rolls the new stack back to ROLLBACK_COMPLETE."""
    stack = solution.template.parameters["ApplicationStackName"]
    reason = "example-data already exists in another account (S3 bucket names are global)"
    local_aws.fail_resource(stack, solution.primary_region, "DataBucket", reason, account_id=solution.account_id)
    return f"made to fail: the first creation of {stack} in {solution.primary_region} fails at DataBucket ({reason})"


def _queue_quota_reached(solution: Solution) -> str:
    """The primary stack's next update will fail where the change adds the example's WorkQueue, so
    CloudFormation rolls it back to UPDATE_ROLLBACK_COMPLETE; the secondary has already run the change."""
    stack = solution.template.parameters["ApplicationStackName"]
    reason = "Resource handler returned message: Service quota exceeded (HandlerErrorCode: ServiceLimitExceeded)"
    local_aws.fail_resource(stack, solution.primary_region, "WorkQueue", reason, account_id=solution.account_id)
    return f"made to fail: the next update of {stack} in {solution.primary_region} fails at WorkQueue ({reason})"


def _retried_with_the_reviewed_change_sets(steps: list[Step], messages: list[dict[str, str]]) -> list[str]:
    """The rejection reverted the Stage, the retry asked again, and the deploys executed the change
    sets reviewed before the rejection (the revert kept them)."""
    result = steps[-1].result
    stages = [(stage.name, stage.status) for stage in result.stages]
    problems = []
    if ("Stage", FAILED) not in stages or stages.count(("Stage", SUCCEEDED)) != 1:
        problems.append(f"the Stage must fail once (rejected), then succeed once when retried: {stages}")
    if not any(d.stage == "Stage" and d.state == "FAILED" and d.outcome == "delivered" for d in result.deliveries):
        problems.append("the rejection did not reach stage-revert before the retry")
    for stage in ("DeploySecondary", "DeployPrimary"):
        outcome = result.action(stage, "ExecuteChangeSet") if result.stage(stage) else None
        if outcome is None or change_set_name(result.execution_id) not in outcome.summary:
            problems.append(f"{stage} must execute the change set reviewed before the rejection: {outcome}")
    return problems


def _approval_timed_out(steps: list[Step], messages: list[dict[str, str]]) -> list[str]:
    result = steps[-1].result
    stage = result.stage("Stage")
    if stage is None or stage.status != FAILED or "timed out" not in stage.reason:
        return [f"the open approval must time out and fail the Stage: {stage}"]
    if not any(d.stage == "Stage" and d.state == "FAILED" and d.outcome == "delivered" for d in result.deliveries):
        return ["the timed-out Stage was not reverted (no FAILED event reached stage-revert)"]
    return []


UNCHANGED_PUSHES = 5
CHANGE_SET_LIMIT = 3


def _low_change_set_limit(solution: Solution) -> str:
    local_aws.set_change_set_limit(CHANGE_SET_LIMIT)
    return (
        f"each production stack may hold {CHANGE_SET_LIMIT} change sets (AWS: {local_aws.CHANGE_SETS_PER_STACK}), "
        f"so {UNCHANGED_PUSHES} unchanged pushes would pass the limit if empty change sets stayed"
    )


def _regions_reported(steps: list[Step], messages: list[dict[str, str]]) -> list[str]:
    """After the failed deploy, the topic says what each Region runs."""
    reports = [m for m in messages if "failed: what each Region runs" in m["subject"]]
    if not reports:
        return ["no message told what each Region runs after the failed deploy"]
    text = reports[-1]["message"]
    wanted = ("The release record is unchanged", "primary", "secondary")
    missing = [word for word in wanted if word not in text]
    return [f"the failed-deploy report lacks {missing}: {text[:300]}"] if missing else []


def _alarm_during_bake(solution: Solution) -> str:
    """The early wave watches hello-app-errors: the alarm exists (state OK) in each of its targets, and
    fires once the first of them is baking the change (its update done, CloudFormation monitoring)."""
    early = [target for target in solution.map_targets if target.wave == "early"]
    for target in early:
        waves.create_alarm(solution, target, WAVE_ALARM)
    fired: list[str] = []

    def fire_while_baking(solution: Solution) -> str | None:
        if fired:
            return None
        for target in early:
            stack = waves.stack_state(solution, target)
            if stack and stack["StackStatus"] == "UPDATE_IN_PROGRESS":  # the change executed, baking
                waves.fire_alarm(solution, target, WAVE_ALARM, "rehearsal: errors after the change")
                fired.append(target.key)
                return f"alarm {WAVE_ALARM} in {target.key} went to ALARM while the change was baking"
        return None

    solution.while_waiting.append(fire_while_baking)
    where = ", ".join(target.key for target in early)
    return f"alarm {WAVE_ALARM} created (OK) in {where}; it fires during the early wave's bake"


def _last_wave_fails(solution: Solution) -> str:
    """The last wave's target fails where the change adds WorkQueue: CloudFormation rolls it back."""
    target = solution.map_targets[-1]
    reason = "Resource handler returned message: Service quota exceeded (HandlerErrorCode: ServiceLimitExceeded)"
    local_aws.fail_resource(target.stack, target.region, "WorkQueue", reason, account_id=target.account)
    return f"made to fail: the next update of {target.key} (wave {target.wave}) fails at WorkQueue"


def _rollout_report(messages: list[dict[str, str]]) -> str:
    reports = [m for m in messages if "rollout" in m["subject"].lower()]
    return reports[-1]["subject"] + "\n" + reports[-1]["message"] if reports else ""


def _waves_in_order(steps: list[Step], messages: list[dict[str, str]]) -> list[str]:
    """The rollout's report says every target is released (the order the waves ran in is checked by the
    end-to-end test, from the state machine's history)."""
    report = _rollout_report(messages)
    return [] if "RELEASED" in report else [f"no rollout report says RELEASED: {report[:400]}"]


def _rolled_back_before_the_last_wave(steps: list[Step], messages: list[dict[str, str]]) -> list[str]:
    report = _rollout_report(messages)
    wanted = ("ROLLED_BACK", "RETURNED", "UNTOUCHED")
    missing = [word for word in wanted if word not in report]
    return [f"the rollout report lacks {missing}: {report[:600]}"] if missing else []


def _returned_after_the_late_failure(steps: list[Step], messages: list[dict[str, str]]) -> list[str]:
    report = _rollout_report(messages)
    wanted = ("ROLLED_BACK", "RETURNED")
    missing = [word for word in wanted if word not in report]
    return [f"the rollout report lacks {missing}: {report[:600]}"] if missing else []


def _map_errors_named(steps: list[Step], messages: list[dict[str, str]]) -> list[str]:
    failure = steps[-1].result.failure or ""
    wanted = ("eu-west-9", "the same target as", "parameters/missing.json", "unknown key 'Stack'")
    missing = [word for word in wanted if word not in failure]
    return [f"Validate's failure does not name {missing}: {failure[:600]}"] if missing else []


SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario(
            "demo",
            "a first release, then a second change on top of it, both approved",
            (Commit("first release"), Commit("second change", SECOND_CHANGE)),
        ),
        Scenario("first-release", "a first release, approved", (Commit("first release"),)),
        Scenario(
            "second-change",
            "a first release, then a second change on top of it (the approval of the change is the one asked)",
            (Commit("first release"), Commit("second change", SECOND_CHANGE)),
        ),
        Scenario(
            "rejection",
            "a first release, then a second change that the approver rejects",
            (Commit("first release"), Commit("second change", SECOND_CHANGE, approve=False)),
        ),
        Scenario(
            "unchanged",
            "a first release, then the same commit again: nothing changes, the gated stages are skipped",
            (Commit("first release"), Commit("same commit again", expect="skipped")),
        ),
        Scenario(
            "lint-failure",
            "a first commit whose template fails cfn-lint: nothing is deployed",
            (Commit("template that fails cfn-lint", FAILS_LINT, expect="fails at Validate"),),
        ),
        Scenario(
            "reinstall",
            "a first release, then the solution deleted (sam delete) and installed again under the same name, "
            "then a change released by the new installation",
            (Commit("first release"), Commit("second change", SECOND_CHANGE, reinstall=True)),
        ),
        Scenario(
            "drift-notify",
            "a first release, drift made by hand on the primary stack, then a change (DriftPolicy NOTIFY)",
            (Commit("first release"), Commit("second change", SECOND_CHANGE, before=_drift_by_hand)),
            last_check=_drift_reported,
        ),
        Scenario(
            "drift-block",
            "a first release, drift made by hand on the primary stack, then a change (DriftPolicy BLOCK)",
            (
                Commit("first release"),
                Commit("second change", SECOND_CHANGE, before=_drift_by_hand, expect="fails at Stage"),
            ),
            drift_policy="BLOCK",
            last_check=_drift_blocked,
        ),
        Scenario(
            "retry",
            "a release, then a change that is rejected, retried (Retry of the Stage, all actions) and approved",
            (Commit("first release"), Commit("second change", SECOND_CHANGE, approve=False, retry="all")),
            run_check=_retried_with_the_reviewed_change_sets,
        ),
        Scenario(
            "approval-timeout",
            "a release, then a change whose approval nobody decides: it times out and is reverted like a rejection",
            (Commit("first release"), Commit("second change", SECOND_CHANGE, approve=False, leave_open=True)),
            run_check=_approval_timed_out,
        ),
        Scenario(
            "failed-first-release",
            "a first release whose primary stack fails to create (ROLLBACK_COMPLETE), then the next change",
            (
                Commit("first release", before=_bucket_name_taken, expect="approved, fails at DeployPrimary"),
                Commit("second change", SECOND_CHANGE),
            ),
            run_check=_regions_reported,
        ),
        Scenario(
            "failed-update",
            "a release, then a change the secondary runs but whose primary update fails and rolls back",
            (
                Commit("first release"),
                Commit(
                    "second change",
                    SECOND_CHANGE,
                    before=_queue_quota_reached,
                    expect="approved, fails at DeployPrimary",
                ),
            ),
            run_check=_regions_reported,
        ),
        Scenario(
            "waves",
            "a first release to a three-wave deployment map (four Regions, two accounts), then a second change "
            "deployed wave by wave with bake times",
            (Commit("first release"), Commit("second change", SECOND_CHANGE)),
            deployment_map=True,
            run_check=_waves_in_order,
        ),
        Scenario(
            "waves-alarm",
            "a release to a three-wave map, then a change whose early wave's alarm fires during its bake: "
            "CloudFormation rolls that target back, the canary returns to the release, the last wave is untouched",
            (
                Commit("first release"),
                Commit(
                    "second change, alarm hello-app-errors watched in the early wave",
                    SECOND_CHANGE_WITH_ALARMS,
                    before=_alarm_during_bake,
                    expect="approved, fails at DeployWaves",
                ),
            ),
            deployment_map=True,
            run_check=_rolled_back_before_the_last_wave,
        ),
        Scenario(
            "waves-late-failure",
            "a release to a three-wave map, then a change that fails in the last wave: the canary and the early "
            "wave return to the release",
            (
                Commit("first release"),
                Commit(
                    "second change", SECOND_CHANGE, before=_last_wave_fails, expect="approved, fails at DeployWaves"
                ),
            ),
            deployment_map=True,
            run_check=_returned_after_the_late_failure,
        ),
        Scenario(
            "waves-map-error",
            "a first commit whose deployment map has errors: Validate names each entry, nothing is created",
            (Commit("deployment map with four errors", MAP_ERROR, expect="fails at Validate"),),
            deployment_map=True,
            run_check=_map_errors_named,
        ),
        Scenario(
            "unchanged-pushes",
            f"a release, then {UNCHANGED_PUSHES} pushes that change nothing, with a change-set limit of "
            f"{CHANGE_SET_LIMIT} per stack",
            (
                Commit("first release"),
                *(Commit(f"unchanged push {n}", expect="skipped") for n in range(1, UNCHANGED_PUSHES + 1)),
            ),
            setup=_low_change_set_limit,
        ),
    )
}


@dataclass
class Options:
    scenario: str = "demo"
    stage_mode: str = "delete"  # delete (DeleteStageStack=Yes) or retain (No)
    decision: str | None = None  # approve, reject, ask; None: the scenario's own decision
    source: Path = EXAMPLE
    change: Path = SECOND_CHANGE
    broken: Path = FAILS_LINT
    template_path: str = "template.yaml"
    drift_policy: str | None = None
    enforce_iam: bool = True
    solution_template: Path | None = None
    verbose: bool = True
    show_logs: bool = False
    strict: bool = False  # a check that cannot run here (a tool not installed) makes the run fail
    ask: Callable[[str], str] = input


@dataclass
class Step:
    commit: Commit
    source: Path
    commit_id: str
    approved: bool | None  # None: no approval was asked
    result: ExecutionResult
    production_before: dict[str, Any]
    production_at_approval: dict[str, Any] | None
    production_after: dict[str, Any]
    template: str = ""  # hash of the commit's application template, as deployed stacks are compared
    approvals: int = 0  # approvals asked (a retried Stage asks again)
    note: str = ""


@dataclass
class Report:
    scenario: Scenario
    options: Options
    steps: list[Step] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    solution: Solution | None = None
    leftovers: list[Leftovers] = field(default_factory=list)  # what each uninstall left behind

    @property
    def ok(self) -> bool:
        return not self.problems


def stack_name_of(folder: Path) -> str:
    """A CloudFormation stack name made from the source folder's name (letters, digits, hyphens)."""
    name = re.sub(r"[^A-Za-z0-9-]+", "-", folder.name).strip("-")
    if not name or not name[0].isalpha():
        name = f"app-{name}".rstrip("-")
    return name[:100]


def solution_parameters(options: Options, scenario: Scenario) -> dict[str, str]:
    parameters = {
        "ConnectionArn": f"arn:aws:codeconnections:{PRIMARY_REGION}:123456789012:connection/rehearsal",
        "RepositoryId": f"example/{options.source.name}",
        "TemplatePath": options.template_path,
        "ApplicationStackName": stack_name_of(options.source),
        "SecondaryRegion": SECONDARY_REGION,
        "CloudFormationExecutionPolicyArn": "arn:aws:iam::123456789012:policy/application-deploy",
        "DeleteStageStack": "Yes" if options.stage_mode == "delete" else "No",
        "DriftPolicy": options.drift_policy or scenario.drift_policy,
    }
    for parameter, name in PARAMETER_FILES.items():
        path = options.source / "parameters" / f"{name}.json"
        if path.is_file():
            parameters[parameter] = json.dumps(json.loads(path.read_text(encoding="utf-8")), separators=(",", ":"))
    if scenario.deployment_map:
        parameters["DeploymentMapPath"] = MAP_PATH
    return parameters


@contextmanager
def materialize(base: Path, overlay: Path | None) -> Iterator[Path]:
    """The commit's tree: ``base`` with ``overlay``'s files copied over it."""
    if overlay is None:
        yield base
        return
    with tempfile.TemporaryDirectory(prefix="rehearsal-commit-") as workdir:
        tree = Path(workdir) / base.name
        shutil.copytree(base, tree)
        shutil.copytree(overlay, tree, dirs_exist_ok=True)
        yield tree


def production(solution: Solution) -> dict[str, Any]:
    """The production stacks as a fingerprint: status class, template and parameters per Region
    (a REVIEW_IN_PROGRESS placeholder counts as not deployed)."""
    name = solution.template.parameters["ApplicationStackName"]
    fingerprint: dict[str, Any] = {}
    if solution.map_targets:
        for target in solution.map_targets:
            fingerprint[target.key] = _fingerprint(waves.stack_state(solution, target))
        return fingerprint
    for region in (solution.primary_region, solution.secondary_region):
        fingerprint[region] = deployed(solution, name, region)
    return fingerprint


def deployed(solution: Solution, name: str, region: str) -> dict[str, Any] | None:
    cfn = solution.admin("cloudformation", region)
    try:
        stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    except ClientError as error:
        if not missing_stack(error):
            raise
        return None
    if stack["StackStatus"] in {"REVIEW_IN_PROGRESS", "DELETE_COMPLETE"}:
        return None
    body = cfn.get_template(StackName=name)["TemplateBody"]
    stack["TemplateBody"] = body if isinstance(body, str) else json.dumps(body, sort_keys=True)
    return _fingerprint(stack)


def _fingerprint(stack: dict[str, Any] | None) -> dict[str, Any] | None:
    """A stack (with its TemplateBody) by what it runs; None when it does not run anything."""
    if stack is None or stack["StackStatus"] in {"REVIEW_IN_PROGRESS", "DELETE_COMPLETE"}:
        return None
    text = stack["TemplateBody"]
    status = stack["StackStatus"]
    return {
        # A stack that runs its template, however it got there (created, updated, or an update rolled
        # back by CloudFormation), is compared by what it runs, not by how it got there.
        "status": "running" if status in RUNNING else status,
        "template": hashlib.sha256(text.encode()).hexdigest()[:16],
        "parameters": sorted((p["ParameterKey"], p.get("ParameterValue", "")) for p in stack.get("Parameters", [])),
    }


def template_hash(source: Path, template_path: str) -> str:
    path = source / template_path
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else ""


def run(options: Options, emulator: Emulator, console: Console | None = None) -> Report:
    """Play ``options.scenario`` on a fresh solution in ``emulator`` (emptied first) and check how it ends."""
    started = time.perf_counter()
    emulator.reset()
    console = console or Console(verbose=options.verbose)
    scenario = SCENARIOS[options.scenario]
    report = Report(scenario, options)
    console.heading(f"Scenario {scenario.name}: {scenario.description}")
    console.line(f"stage mode: {options.stage_mode}, DriftPolicy: {options.drift_policy or scenario.drift_policy}")
    solution = install(
        emulator,
        solution_parameters(options, scenario),
        stack_name=SOLUTION_STACK,
        region=PRIMARY_REGION,
        enforce_iam=options.enforce_iam,
        template_path=options.solution_template,
    )
    # Drift detection takes a while in AWS: make each one report DETECTION_IN_PROGRESS once, so the
    # drift function's continuation token is followed as CodePipeline follows it.
    local_aws.set_detection_progress(1)
    report.solution = solution
    if scenario.deployment_map:
        app = solution.template.parameters["ApplicationStackName"]
        solution.map_targets = waves.read_targets(options.source, MAP_PATH, app, solution.account_id)
        for account in sorted({t.account for t in solution.map_targets} - {solution.account_id}):
            stacks = sorted({t.stack for t in solution.map_targets if t.account == account})
            console.line(waves.bootstrap(solution, account, stacks))
    if scenario.setup is not None:
        console.line(scenario.setup(solution))
    pipeline = load(solution.template)
    check(pipeline, set(solution.artifact_stores), solution.primary_region)
    console.line(
        f"emulator {emulator.endpoint}; solution {solution.stack_name} installed in {solution.primary_region} "
        f"and {solution.secondary_region}; pipeline {pipeline.name}: "
        + " > ".join(stage.name for stage in pipeline.stages)
        + ("; IAM enforced per principal" if emulator.iam_enforced else "")
    )
    for index, commit in enumerate(scenario.commits):
        last = index == len(scenario.commits) - 1
        overlay = commit.overlay
        if overlay == SECOND_CHANGE and not scenario.deployment_map:
            overlay = options.change
        elif overlay == FAILS_LINT:
            overlay = options.broken
        if commit.reinstall:
            solution, pipeline = _reinstall(solution, options, scenario, report, console)
        with materialize(options.source, overlay) as tree:
            note = commit.before(solution) if commit.before else ""
            if note:
                console.line(note)
            approve, decided_by = commit.approve, "the scenario"
            if last and options.decision in {"approve", "reject"}:
                approve, decided_by = options.decision == "approve", f"--{options.decision}"
            step = _play(
                solution,
                pipeline,
                console,
                commit,
                tree,
                approve,
                ask=last and options.decision == "ask",
                options=options,
                decided_by=decided_by,
            )
            step.note = note
            report.steps.append(step)
    report.state = final_state(solution)
    report.state["lambda_time"] = [
        (step.commit.label, len(step.result.lambda_seconds), sum(seconds for _, seconds in step.result.lambda_seconds))
        for step in report.steps
    ]
    report.state["not_run"] = [
        f"{step.commit.label}: {action.where}: {outcome.summary}"
        for step in report.steps
        for stage in step.result.stages
        for action, outcome in stage.actions
        if outcome.status == SKIPPED
    ]
    report.problems = verify(report, solution, pipeline)
    if options.strict and report.state["not_run"]:
        report.problems.append(f"{len(report.state['not_run'])} check(s) could not run here (--strict)")
    report.seconds = time.perf_counter() - started
    summary(console, report.state)
    if report.problems:
        console.heading(f"Scenario {scenario.name}: NOT as expected")
        for problem in report.problems:
            console.line(f"  - {problem}")
    else:
        not_run = len(report.state["not_run"])
        caveat = f"; {not_run} check(s) NOT run locally, listed above" if not_run else ""
        console.heading(
            f"Scenario {scenario.name} ({options.stage_mode} mode) ended as expected in {report.seconds:.1f}s{caveat}"
        )
    return report


def _reinstall(
    solution: Solution, options: Options, scenario: Scenario, report: Report, console: Console
) -> tuple[Solution, Pipeline]:
    """`sam delete` of the solution, then `sam deploy` under the same stack name: what the deleted stack
    left stays (report.leftovers); the e-mail inbox stays subscribed, so earlier messages are kept."""
    solution.new_messages()
    left = uninstall(solution)
    report.leftovers.append(left)
    console.line(
        f"solution {solution.stack_name} deleted as `sam delete` deletes it; left: the release record "
        f"{left.record_parameter if left.record else '(none)'}, retained {', '.join(sorted(left.retained))}"
    )
    again = install(
        solution.emulator,
        solution_parameters(options, scenario),
        stack_name=solution.stack_name,
        region=solution.primary_region,
        enforce_iam=options.enforce_iam,
        template_path=options.solution_template,
    )
    again.sent = solution.sent
    report.solution = again
    pipeline = load(again.template)
    check(pipeline, set(again.artifact_stores), again.primary_region)
    console.line(
        f"solution {again.stack_name} installed again: stack id {again.stack_id.rsplit('/', 1)[-1]}, "
        f"pipeline {pipeline.name}, release record {again.release_record_parameter}"
    )
    return again, pipeline


def _play(
    solution: Solution,
    pipeline: Pipeline,
    console: Console,
    commit: Commit,
    tree: Path,
    approve: bool,
    *,
    ask: bool,
    options: Options,
    decided_by: str,
) -> Step:
    before = production(solution)
    at_approval: list[dict[str, Any]] = []
    decisions: list[bool] = []

    def decide(action: Action, custom_data: str, link: str) -> tuple[bool | None, str]:
        at_approval.append(production(solution))
        console.approval_requested(action, custom_data, link)
        if ask:
            answer = ""
            while answer not in {"a", "approve", "r", "reject"}:
                answer = options.ask("    approve or reject? [a/r] ").strip().lower()
            decision = answer.startswith("a")
            who = "you, at the terminal"
        elif commit.leave_open and not decisions:
            decisions.append(False)  # never approved
            return None, "nobody decided"
        elif decisions and commit.retry:
            decision, who = commit.retry_approve, f"{decided_by} (after the retry)"
        else:
            decision = approve
            who = decided_by
        decisions.append(decision)
        return decision, who

    result = run_execution(
        solution, pipeline, source_dir=tree, revision=commit.label, decide=decide, console=console, retry=commit.retry
    )
    return Step(
        commit=commit,
        source=tree,
        commit_id=commit_id(tree),
        approved=decisions[-1] if decisions else None,
        result=result,
        production_before=before,
        production_at_approval=at_approval[-1] if at_approval else None,
        production_after=production(solution),
        template=template_hash(tree, options.template_path),
        approvals=len(decisions),
    )


def final_state(solution: Solution) -> dict[str, Any]:
    stacks: dict[str, list[dict[str, str]]] = {}
    for region in (solution.primary_region, solution.secondary_region):
        cfn = solution.admin("cloudformation", region)
        stacks[region] = [
            {"name": s["StackName"], "status": s["StackStatus"]}
            for s in cfn.describe_stacks()["Stacks"]
            if s["StackStatus"] != "DELETE_COMPLETE"
        ]
    ssm = solution.admin("ssm")
    record_name = solution.release_record_parameter
    try:
        release = json.loads(ssm.get_parameter(Name=record_name, WithDecryption=True)["Parameter"]["Value"])
    except ClientError as error:
        if error.response["Error"]["Code"] != "ParameterNotFound":
            raise
        release = None
    solution.new_messages()
    messages = list(solution.sent)
    sqs = solution.admin("sqs")
    dead_letters = 0
    for queue_url in sqs.list_queues().get("QueueUrls", []):
        if queue_url != solution.inbox_url:
            attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
            dead_letters += int(attributes["Attributes"]["ApproximateNumberOfMessages"])
    return {
        "stacks": stacks,
        "release": release,
        "messages": messages,
        "dead_letters": dead_letters,
        "not_emulated": solution.not_emulated,
    }


def verify(report: Report, solution: Solution, pipeline: Pipeline) -> list[str]:
    """Every way the run could differ from what the scenario must end with."""
    problems: list[str] = []
    app = solution.template.parameters["ApplicationStackName"]
    released: Step | None = None
    for step in report.steps:
        label = f"'{step.commit.label}'"
        problems.extend(_outcome_problems(step, pipeline))
        if step.approved is None:
            if step.production_after != step.production_before:
                problems.append(f"{label}: production changed although no one was asked to approve")
        elif step.production_at_approval != step.production_before:
            problems.append(f"{label}: production changed before anyone approved it")
        if step.approved is False or step.result.status == FAILED:
            if step.production_after != step.production_before:
                problems.append(f"{label}: production changed although the execution was not released")
            later = report.steps[report.steps.index(step) + 1 :]
            if not solution.map_targets:
                problems.extend(_review_change_set_problems(solution, app, step, passed_gate_since=_passed_gate(later)))
        if step.approved is False and step.result.status == SUCCEEDED:
            problems.append(f"{label}: a rejected execution ended Succeeded")
        if step.approved and step.result.status == SUCCEEDED:
            released = step
    for region in () if solution.map_targets else (solution.primary_region, solution.secondary_region):
        now = deployed(solution, app, region)
        if released is None:
            if now is not None:
                problems.append(
                    f"production stack {app} in {region} exists ({now['status']}) though nothing was released"
                )
        elif now is None:
            problems.append(f"production stack {app} in {region} is not deployed after a release")
        elif now["template"] != released.template:
            problems.append(f"production stack {app} in {region} does not run the released template")
        else:
            problems.extend(_parameter_problems(report, f"production stack {app} in {region}", now, region))
    stage_name = f"{app}-stage"
    stage_now = deployed(solution, stage_name, solution.primary_region)
    if report.options.stage_mode == "delete" or released is None:
        if _exists(solution, stage_name):
            problems.append(f"stage stack {stage_name} was left behind ({report.options.stage_mode} mode)")
    elif stage_now is None:
        problems.append(f"stage stack {stage_name} must live on in retain mode, but it is gone")
    elif stage_now["template"] != released.template:
        problems.append(f"stage stack {stage_name} does not run the last released template")
    else:
        problems.extend(_parameter_problems(report, f"stage stack {stage_name}", stage_now, "stage"))
    record = report.state.get("release")
    if released is None:
        if record is not None:
            problems.append(f"a release record exists though nothing was released: {record}")
    elif record is None:
        problems.append("no release record after a release")
    else:
        if record.get("commit_id") != released.commit_id:
            problems.append(f"the release record names commit {record.get('commit_id')}, not {released.commit_id}")
        problems.extend(_released_source_problems(solution, record))
        if record.get("execution_id") != released.result.execution_id:
            problems.append(
                f"the release record names execution {record.get('execution_id')}, not {released.result.execution_id}"
            )
        if record.get("bucket") != solution.artifact_stores[solution.primary_region][0]:
            problems.append(f"the release record points at bucket {record.get('bucket')}, not this installation's")
    reinstalled = [step for step in report.steps if step.commit.reinstall]
    for left, step in zip(report.leftovers, reinstalled, strict=False):
        problems.extend(_leftover_problems(solution, left, step))
    if solution.map_targets:
        problems.extend(_target_problems(solution, released, record))
    else:
        problems.extend(_empty_change_sets(solution, app))
    if report.state.get("dead_letters"):
        problems.append(f"{report.state['dead_letters']} stage event(s) ended in the dead-letter queue")
    if report.steps and report.scenario.last_check:
        problems.extend(report.scenario.last_check(report.steps[-1].result, pipeline))
    if report.scenario.run_check:
        problems.extend(report.scenario.run_check(report.steps, report.state.get("messages", [])))
    approvals = sum(step.approvals for step in report.steps)
    asked = sum(1 for m in report.state.get("messages", []) if m["subject"].startswith("APPROVAL NEEDED"))
    if asked != approvals:
        problems.append(f"{approvals} approval(s) were asked but {asked} approval notification(s) were sent")
    return problems


def _target_problems(solution: Solution, released: Step | None, record: dict[str, Any] | None) -> list[str]:
    """With a deployment map: every target runs the released template (none before a release), and the
    release record names the map it went out with."""
    problems = []
    for target in solution.map_targets:
        now = _fingerprint(waves.stack_state(solution, target))
        if released is None:
            if now is not None:
                problems.append(f"target {target.key} runs a stack ({now['status']}) though nothing was released")
        elif now is None:
            problems.append(f"target {target.key} runs nothing after a release")
        elif now["template"] != released.template:
            problems.append(f"target {target.key} does not run the released template")
        elif now["status"] != "running":
            problems.append(f"target {target.key} is {now['status']}")
    if released is not None and record is not None and not record.get("deployment_map_digest"):
        problems.append("the release record does not name the deployment map the release went out with")
    return problems


def _parameter_problems(report: Report, what: str, deployed_now: dict[str, Any], where: str) -> list[str]:
    """The stack must run with its parameter set (parameters/<stage|primary|secondary>.json)."""
    solution = report.solution
    assert solution is not None  # set before anything is verified
    files = {"stage": "stage", solution.primary_region: "primary", solution.secondary_region: "secondary"}
    path = report.options.source / "parameters" / f"{files[where]}.json"
    if not path.is_file():
        return []
    expected = {str(k): str(v) for k, v in json.loads(path.read_text(encoding="utf-8")).items()}
    actual = dict(deployed_now["parameters"])
    wrong = {k: actual.get(k) for k, v in expected.items() if actual.get(k) != v}
    return [f"{what} runs with {wrong}, not the values of parameters/{path.name}"] if wrong else []


def _leftover_problems(solution: Solution, left: Leftovers, first: Step) -> list[str]:
    """After a reinstall: the new installation has its own stack id and record, and never read, wrote or
    needed what the deleted one left (its record, retained key and bucket stay exactly as AWS leaves them);
    ``first``, the first execution after the reinstall, starts as a first release."""
    problems = []
    if left.stack_id == solution.stack_id:
        problems.append(f"the reinstall kept the deleted installation's stack id {left.stack_id}")
    if left.record_parameter == solution.release_record_parameter:
        problems.append(
            f"the new installation's release record is the deleted installation's {left.record_parameter}, "
            "encrypted with its retained key and pointing at its retained bucket"
        )
    ssm = solution.admin("ssm")
    try:
        now: str | None = ssm.get_parameter(Name=left.record_parameter, WithDecryption=True)["Parameter"]["Value"]
    except ClientError as error:
        if error.response["Error"]["Code"] != "ParameterNotFound":
            raise
        now = None
    if now != left.record:
        problems.append(f"the record {left.record_parameter} that `sam delete` left was changed after the reinstall")
    new_key = solution.template.physical["ArtifactKey"]["Arn"]
    new_bucket = solution.artifact_stores[solution.primary_region][0]
    for logical_id, physical_id in left.retained.items():
        if physical_id in {new_key, new_bucket}:
            problems.append(f"the new installation's {logical_id} is the deleted installation's {physical_id}")
    if "ArtifactKey" in left.retained:
        key = solution.admin("kms").describe_key(KeyId=left.retained["ArtifactKey"])["KeyMetadata"]
        if key["KeyState"] != "Enabled":
            problems.append(f"the retained key {key['Arn']} is {key['KeyState']}, not kept as AWS keeps it")
    if left.record:  # the retained bucket still holds the deleted installation's releases/ copy
        problems.extend(_released_source_problems(solution, json.loads(left.record)))
    # Delete mode builds the stage from the release record: after a reinstall, from the source.
    prepared = first.result.action("Stage", "PrepareStageArtifact")
    if prepared is not None and prepared.variables.get("StageOrigin") != "source":
        problems.append(
            f"'{first.commit.label}': the stage was not built from the source as a first release "
            f"({prepared.status}: {prepared.summary})"
        )
    return problems


def _released_source_problems(solution: Solution, record: dict[str, Any]) -> list[str]:
    """The copy of the released source the record points at exists, in the version it names."""
    s3 = solution.admin("s3")
    try:
        head = s3.head_object(
            Bucket=record["bucket"],
            Key=record["key"],
            **({"VersionId": record["version_id"]} if record.get("version_id") else {}),
        )
    except ClientError as error:
        return [f"the release record points at s3://{record['bucket']}/{record['key']}, which cannot be read: {error}"]
    if head["ContentLength"] == 0:
        return [f"the released source s3://{record['bucket']}/{record['key']} is empty"]
    return []


def _status(result: ExecutionResult, stage: str) -> str | None:
    found = result.stage(stage)
    return found.status if found else None


def _rejected_at_approval(result: ExecutionResult) -> bool:
    failed = next((stage for stage in result.stages if stage.status == FAILED), None)
    if failed is None:
        return False
    action, outcome = failed.actions[-1]
    return action.category == "Approval" and outcome.status == FAILED


def _outcome_problems(step: Step, pipeline: Pipeline) -> list[str]:
    """How the step's execution ended, against how its commit must end."""
    label, result = f"'{step.commit.label}'", step.result
    failed_stage = next((stage.name for stage in result.stages if stage.status == FAILED), None)
    got = f"execution {result.status}" + (f" at {failed_stage}: {result.failure}" if failed_stage else "")
    expect = step.commit.expect
    problems = []
    if expect == "decided":
        if step.approved is None:
            problems.append(f"{label}: must reach the approval, but {got}")
        elif step.approved and (result.status != SUCCEEDED or _status(result, "Release") != SUCCEEDED):
            problems.append(f"{label}: approved, so it must be released, but {got}")
        elif not step.approved and not _rejected_at_approval(result):
            problems.append(f"{label}: rejected, so its execution must fail at the approval, but {got}")
    elif expect == "skipped":
        gated = {stage.name for stage in pipeline.stages if stage.before_entry}
        ran = sorted(gated - {stage.name for stage in result.stages if stage.status == SKIPPED})
        if result.status != SUCCEEDED or step.approved is not None or ran:
            problems.append(f"{label}: must change nothing and skip {sorted(gated)}, but {got}; ran {ran}")
    elif expect.startswith("approved, fails at "):
        stage_name = expect.removeprefix("approved, fails at ")
        if failed_stage != stage_name or step.approved is not True:
            problems.append(f"{label}: must be approved, then fail at {stage_name}, but {got}")
    elif expect.startswith("fails at "):
        stage_name = expect.removeprefix("fails at ")
        if failed_stage != stage_name or step.approved is not None:
            problems.append(f"{label}: must fail at {stage_name} before any approval, but {got}")
    for delivery in result.deliveries:
        if delivery.outcome != "delivered":
            problems.append(
                f"{label}: the {delivery.stage} {delivery.state} event was not handled by {delivery.target} "
                f"({delivery.outcome} after {delivery.attempts} attempt(s))"
            )
    return problems


def _exists(solution: Solution, name: str) -> bool:
    cfn = solution.admin("cloudformation")
    try:
        status = cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
    except ClientError as error:
        if not missing_stack(error):
            raise
        return False
    return bool(status != "DELETE_COMPLETE")


def _passed_gate(steps: list[Step]) -> bool:
    """Whether one of ``steps`` got past CheckChanges (its execution gate removes earlier change sets)."""
    return any(_status(step.result, "CheckChanges") == SUCCEEDED for step in steps)


def _change_sets(solution: Solution, app: str, region: str) -> list[dict[str, Any]]:
    """The change set summaries on the production stack in ``region`` (none when it does not exist)."""
    cfn = solution.admin("cloudformation", region)
    try:
        summaries: list[dict[str, Any]] = cfn.list_change_sets(StackName=app).get("Summaries", [])
    except ClientError as error:
        if not missing_stack(error):
            raise
        return []
    return summaries


def _review_change_set_problems(solution: Solution, app: str, step: Step, *, passed_gate_since: bool) -> list[str]:
    """A rejected or failed execution's reviewed change sets stay for a Retry until a later execution
    passes the execution gate, which removes them."""
    name = change_set_name(step.result.execution_id)
    changes = step.result.variables.get("Changes", {})
    problems = []
    for region, role in ((solution.primary_region, "Primary"), (solution.secondary_region, "Secondary")):
        present = any(summary["ChangeSetName"] == name for summary in _change_sets(solution, app, region))
        if passed_gate_since and present:
            problems.append(
                f"'{step.commit.label}': change set {name} is still on {app} in {region} after a later execution "
                "passed the execution gate"
            )
        executed = _status(step.result, f"Deploy{role}") is not None  # its deploy stage ran: gone by design
        if not passed_gate_since and not present and not executed and changes.get(f"{role}HasChanges") == "true":
            problems.append(
                f"'{step.commit.label}': the reviewed change set {name} on {app} in {region} is gone: "
                "a Retry could not deploy it"
            )
    return problems


def _empty_change_sets(solution: Solution, app: str) -> list[str]:
    """Change sets that can never be executed (FAILED: nothing to change) left on production stacks."""
    problems = []
    for region in (solution.primary_region, solution.secondary_region):
        empty = [s["ChangeSetName"] for s in _change_sets(solution, app, region) if s.get("Status") == "FAILED"]
        if empty:
            problems.append(f"{len(empty)} empty change set(s) left on {app} in {region}: {', '.join(empty[:3])}")
    return problems
