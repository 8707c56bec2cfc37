"""IAM mutation: each function runs its scenario under moto's IAM enforcement with its template policy,
then once with each statement removed and once with each action of a statement removed. Every removal
must make the scenario fail; one that fails nothing is either unneeded or untested, and is listed.

moto checks S3 statements at resource level and every other statement at action level only (resources
compared with "*"): a removal that another statement still covers for the same action cannot fail here,
and is listed too, for a person to judge.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

from moto.core import set_initial_no_auth_action_count

import local_aws
from audit import sandbox
from audit.scenarios import MAP_SCENARIOS, SCENARIOS, Scenario, follow, map_template
from audit.table import Row
from local_aws import FakeLambdaContext
from release_pipeline import clients
from tests.integration import test_least_privilege as lp


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement.get("Action", [])
    return [actions] if isinstance(actions, str) else list(actions)


def mutations(policy: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], list[str]]]:
    """(description, mutated policy, the actions it removes) for each statement and each action."""
    statements = policy["Statement"]
    for index, statement in enumerate(statements):
        name = statement.get("Sid") or f"statement {index + 1}"
        actions = _actions(statement)
        rest = [s for i, s in enumerate(statements) if i != index]
        yield f"without {name}", {**policy, "Statement": rest}, actions
        if len(actions) > 1:
            for action in actions:
                kept = {**statement, "Action": [a for a in actions if a != action]}
                mutated = copy.deepcopy(policy)
                mutated["Statement"][index] = kept
                yield f"without {action} in {name}", mutated, [action]


# Actions no scenario can prove in the emulator, and why.
UNCHECKABLE = {
    # moto never checks a caller's KMS permissions when S3 or SSM use a key on its behalf (AWS does,
    # through kms:ViaService)
    "kms:": "kms: used by S3 and SSM",
    # moto does not check iam:PassRole when CloudFormation is handed a role
    "iam:PassRole": "iam:PassRole",
    # Lambda's service sends a failed asynchronous event to the dead-letter queue, not the function's code
    "sqs:SendMessage": "the dead-letter queue (Lambda writes it)",
}
# Removals that fail no scenario yet, each with what is missing: the table counts them apart, and any
# removal that survives and is not listed here is a breach.
UNTESTED: dict[tuple[str, str], str] = {
    ("drift-detection", "cloudformation:DescribeStackResourceDrifts"): "needs a scenario in which drift is found",
    ("drift-detection", "without PublishDriftReport"): "needs a scenario in which drift is found",
    ("drift-detection", "cloudformation:DetectStackResourceDrift"): (
        "moto's DetectStackDrift does not call it per resource as AWS does"
    ),
    ("drift-detection", "cloudformation:BatchDescribeTypeConfigurations"): (
        "moto's drift detection does not read type configurations as AWS does"
    ),
    ("stage-revert", "cloudformation:ContinueUpdateRollback"): "needs a stage stack in UPDATE_ROLLBACK_FAILED",
    ("stage-revert", "cloudformation:CreateStack"): "needs a scenario in which the stage stack is missing",
    ("stage-revert", "without ReleasedTemplateTransforms"): "needs a released template with a transform",
    ("stage-revert", "without KeepLargeReleasedTemplate"): "needs a released template over 51,200 bytes",
    ("deploy-target", "without ReleasedTemplateTransforms"): "needs a released template with a transform",
    ("start-rollout", "states:GetExecutionHistory"): (
        "needs a check while the execution runs: the scenario's state machine (one Pass state) ends at once"
    ),
}


# Pipeline-role statements the demo cannot prove needed, each with what proving it would take.
PIPELINE_UNTESTED: dict[str, str] = {
    "ArtifactBuckets": "CodePipeline's own bucket checks (GetBucketLocation, GetBucketVersioning): the rehearsal "
    "does not make them",
    "ArtifactKeys": "KMS use on S3's behalf: moto never checks it",
    "SourceConnection": "the source action reads a local folder, not GitHub through the connection",
    "ValidationBuilds": "the rehearsal runs the CodeBuild projects itself, not through StartBuild",
    "InvokeActionFunctions": "the rehearsal calls the handlers in process, not through lambda:Invoke",
    "ApplicationTemplateTransforms": "needs an application template with a transform (a change set on it)",
    "ValidateTemplate": "CodePipeline's CloudFormation action validates in AWS; the rehearsal does not call it",
    "PassExecutionRole": "iam:PassRole: moto never checks it",
}


Factory = Callable[[lp.Accounts], Scenario]


def _run(function: str, policy: dict[str, Any], factory: Factory) -> bool:
    """Whether every scenario of the function succeeds for a principal holding only ``policy``: the
    working one (``factory``'s), and for a job function one that must report a failure (its configuration
    missing)."""
    if not _run_one(function, policy, factory, report_failure=False):
        return False
    return function not in sandbox.job_functions() or _run_one(function, policy, factory, report_failure=True)


def _run_one(function: str, policy: dict[str, Any], factory: Factory, *, report_failure: bool) -> bool:
    target = sandbox.functions()[function]
    with sandbox.emulator():
        holder: list[lp.Accounts] = []
        set_initial_no_auth_action_count(3)(lambda: holder.append(lp.Accounts()))()
        accounts = holder[0]
        scenario: Scenario = factory(accounts)
        key = _principal(accounts, f"{function}-role", policy)
        environment = dict(scenario.environment)
        if report_failure:
            environment = dict.fromkeys(environment, "")
        context = FakeLambdaContext(target.folder, memory_limit_in_mb=target.memory_mb)
        with mock.patch.dict(os.environ):  # every variable set below is put back afterwards
            sandbox.set_environment(environment)
            os.environ["AWS_ACCESS_KEY_ID"] = key["AccessKeyId"]
            os.environ["AWS_SECRET_ACCESS_KEY"] = key["SecretAccessKey"]
            os.environ.pop("AWS_SESSION_TOKEN", None)
            clients._session.cache_clear()

            def invoke(event: dict[str, Any]) -> Any:
                return set_initial_no_auth_action_count(0)(lambda: target.handler(event, context))()

            try:
                follow(scenario, accounts, invoke)  # to the job's end, when the scenario says how it ends
                raised = False
            except Exception:  # noqa: BLE001 (whatever escapes the handler is judged)
                raised = True
            finally:
                clients._session.cache_clear()
        if report_failure:
            results = local_aws.job_results(scenario.event["CodePipeline.job"]["id"])
            return not raised and [r.status for r in results if r.accepted] == ["Failed"]
        return not raised and (scenario.finished or scenario.succeeded)(accounts)


def _principal(accounts: lp.Accounts, name: str, policy: dict[str, Any]) -> dict[str, str]:
    """The access key of a user holding ``policy``; with no statement left, a user holding nothing (IAM
    takes no policy without a statement)."""
    if policy["Statement"]:
        return accounts.user(name, policy)
    iam = accounts.client("iam")
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"]}


def _still_granted(policy: dict[str, Any], action: str) -> bool:
    return not action.startswith("s3:") and any(action in _actions(s) for s in policy["Statement"])


def _untested(function: str, name: str, removal: str) -> bool:
    return (name, removal) in UNTESTED or (function, removal) in UNTESTED


def mutate(function: str, *, with_map: bool = False) -> Row:
    """``function``'s row; ``with_map``: its policy and scenario with a deployment map, for a function that
        works otherwise too (its rows are apart; UNTESTED's entries for the function apply to them as well, and
    keys naming "<function> with a map" to them alone)."""
    target = sandbox.functions()[function]
    factory = MAP_SCENARIOS[function] if with_map else SCENARIOS[function]
    name = f"{function} with a map" if with_map else function
    row = Row(f"iam {name}", "each statement and action removed, under IAM enforcement")
    if with_map or function in sandbox.MAP_FUNCTIONS:
        template = map_template()
    else:
        template = lp.resolved_template("Yes" if function == "prepare-stage-artifact" else "No")
    policy = template.function_policy(target.logical_id)
    all_actions = sorted({a for s in policy["Statement"] for a in _actions(s)})
    row.cases += 1
    if not _run(function, policy, factory):
        row.breach("the scenario fails with the whole policy: no removal could prove anything")
        return row
    proven: set[str] = set()
    unprovable: set[str] = set()
    shadowed: set[str] = set()
    untested: set[str] = set()
    for described, mutated, removed in mutations(policy):
        row.cases += 1
        if not _run(function, mutated, factory):
            proven.update(removed)
        elif _untested(function, name, described):
            untested.update(removed)
        else:
            unexplained = []
            for action in removed:
                if action.startswith(tuple(UNCHECKABLE)):
                    unprovable.add(action)
                elif _still_granted(mutated, action):
                    # moto compares non-S3 resources with "*": another statement with the action hides it
                    shadowed.add(action)
                elif _untested(function, name, action):
                    untested.add(action)
                else:
                    unexplained.append(action)
            if unexplained:
                row.breach(f"{described}: every scenario still succeeds (unneeded, or untested): {unexplained}")
    row.figure = f"{len(proven & set(all_actions))} of {len(all_actions)} actions proven needed"
    for count, what in (
        (len(unprovable - proven), "not checkable in moto"),
        (len(shadowed - proven - unprovable), "granted again at another resource"),
        (len(untested - proven), "untested (listed)"),
    ):
        if count:
            row.figure += f"; {count} {what}"
    return row


def pipeline_role() -> Row:
    """Each statement of the pipeline role removed in turn, the demo rehearsed (both executions, delete
    mode) with the pipeline's actions made as that role under IAM enforcement: every removal must fail it.
    The rehearsal runs in a process of its own (``audit.pipeline_role``): this one's moto is in-process."""
    row = Row("iam pipeline role", "each statement removed, the demo rehearsed as the role under IAM enforcement")
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_", "TEST_SERVER_MODE"))}
    done = subprocess.run(
        [sys.executable, "-m", "audit.pipeline_role"], capture_output=True, text=True, check=False, env=environment
    )
    try:
        results: list[list[Any]] = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        row.breach(f"the rehearsal did not report: {done.stderr.strip()[-300:]}")
        return row
    row.cases = len(results)
    (_, whole), *removals = results
    if not whole:
        row.breach("the demo fails with the whole policy: no removal could prove anything")
        return row
    proven = [sid for sid, ok in removals if not ok]
    untested = [sid for sid, ok in removals if ok and sid in PIPELINE_UNTESTED]
    for sid, ok in removals:
        if ok and sid not in PIPELINE_UNTESTED:
            row.breach(f"without {sid} the demo still succeeds: the statement is unneeded or untested")
    row.figure = f"{len(proven)} of {len(removals)} statements proven needed"
    if untested:
        row.figure += f"; {len(untested)} untested (listed)"
    return row
