"""What one pipeline execution costs: billable units counted from rehearsals, priced at public prices.

Each case is a rehearsal (``python -m rehearsal run``) played in this process against the emulator;
the execution counted is the scenario's last one (the first release before it only sets the stage):

- a release: a change on top of a release, approved (scenario second-change);
- an unchanged push: the same commit again, whose gated stages are skipped (scenario unchanged);
- an approval left open: nobody decides, it expires after ApprovalTimeoutInMinutes and the change is
  reverted like a rejection (scenario approval-timeout);
- an execution queued behind that open approval: it waits in the execution gate (a Lambda invoke
  action returning continuation tokens) for as long as the approval stays open. The rehearsal plays
  executions one after another, so this case is computed from the gate's measured invocation.

Counted: Lambda invocations and GB-seconds (each invocation's handler time in the rehearsal, which
imports the handler afresh each time, times the function's MemorySize), CodePipeline V2 action
executions (each billed for at least one minute; manual approvals are free), CodeBuild builds, SNS
publishes and email deliveries, SSM Parameter Store calls, Step Functions transitions. The emulator
answers far faster than AWS, so an action's minutes are not measured: each is billed at its one-minute
minimum, except the gate's wait, whose length is what the other execution takes.

    make benchmark
"""

from __future__ import annotations

import io
import math
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from botocore.client import BaseClient

# Public prices, us-east-1, read on 2026-12-01. Written once; every figure below derives from them.
PRICES_DATE = "2026-12-01"
LAMBDA_GB_SECOND_ARM = 0.0000133334  # https://aws.amazon.com/lambda/pricing/ (Arm, first 7.5 billion GB-s)
LAMBDA_REQUEST = 0.20 / 1_000_000  # https://aws.amazon.com/lambda/pricing/
CODEPIPELINE_V2_ACTION_MINUTE = 0.002  # https://aws.amazon.com/codepipeline/pricing/ (manual approvals free)
CODEBUILD_ARM1_SMALL_MINUTE = 0.0034  # https://aws.amazon.com/codebuild/pricing/ (arm1.small, on demand)
CODEBUILD_GENERAL1_SMALL_MINUTE = 0.005  # https://aws.amazon.com/codebuild/pricing/ (x86 general1.small)
SNS_PUBLISH = 0.50 / 1_000_000  # https://aws.amazon.com/sns/pricing/ (standard topics)
SNS_EMAIL = 2.00 / 100_000  # https://aws.amazon.com/sns/pricing/ (email deliveries)
SSM_STANDARD_CALL = 0.0  # https://aws.amazon.com/systems-manager/pricing/ (standard throughput: no charge)
SSM_ADVANCED_CALL = 0.05 / 10_000  # same page: advanced parameters' API interactions
STEP_FUNCTIONS_TRANSITION = 0.025 / 1_000  # https://aws.amazon.com/step-functions/pricing/ (standard)

# CodePipeline does not document how often it asks a Lambda action that returned a continuation token
# again ("periodically": https://docs.aws.amazon.com/codepipeline/latest/userguide/limits.html); once a
# minute is assumed. The action's minutes do not depend on it, only the count of Lambda invocations.
ASSUMED_CONTINUATION_INTERVAL_MINUTES = 1
EMAIL_SUBSCRIBERS = 1  # NotificationEmail: one address, one delivery per message

CASES = {
    "release": "second-change",
    "unchanged push": "unchanged",
    "approval open": "approval-timeout",
    "release, 4 targets": "waves",  # the example's deployment map: 3 waves, 4 Regions, 2 accounts
}


@dataclass
class Units:
    invocations: Counter[str] = field(default_factory=Counter)
    gb_seconds: float = 0.0
    action_minutes: int = 0
    actions: int = 0
    builds: int = 0
    publishes: int = 0
    ssm_calls: int = 0
    state_transitions: int = 0

    def dollars(self) -> dict[str, float]:
        return {
            "Lambda requests": sum(self.invocations.values()) * LAMBDA_REQUEST,
            "Lambda GB-seconds": self.gb_seconds * LAMBDA_GB_SECOND_ARM,
            "CodePipeline action minutes": self.action_minutes * CODEPIPELINE_V2_ACTION_MINUTE,
            "CodeBuild build minutes": self.builds * CODEBUILD_ARM1_SMALL_MINUTE,
            "SNS publishes and emails": self.publishes * (SNS_PUBLISH + EMAIL_SUBSCRIBERS * SNS_EMAIL),
            "SSM calls (standard tier)": self.ssm_calls * SSM_STANDARD_CALL,
            "Step Functions transitions": self.state_transitions * STEP_FUNCTIONS_TRANSITION,
        }


class ApiCalls:
    """Every AWS API call made in this process while recording, as (service, operation, by the product)."""

    def __init__(self, product_agent: str) -> None:
        self.product_agent = product_agent
        self.calls: list[tuple[str, str, bool]] = []
        self.recording = False

    @contextmanager
    def installed(self) -> Iterator[None]:
        original = vars(BaseClient)["_make_api_call"]
        recorder = self

        def counting(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
            if recorder.recording:
                agent = str(getattr(client.meta.config, "user_agent_extra", "") or "")
                recorder.calls.append(
                    (client.meta.service_model.service_name, operation, recorder.product_agent in agent)
                )
            return original(client, operation, params)

        BaseClient._make_api_call = counting  # type: ignore[attr-defined]
        try:
            yield
        finally:
            BaseClient._make_api_call = original  # type: ignore[attr-defined]


def count_last_execution(scenario: str, calls: ApiCalls) -> tuple[Units, dict[str, Any]]:
    """Play ``scenario`` and count the units of its last execution."""
    from rehearsal import scenarios
    from rehearsal.emulator import Emulator
    from rehearsal.report import Console

    # The scenarios call run_execution by the name they imported: replaced there, for the run.
    namespace = vars(scenarios)
    original_run: Callable[..., Any] = namespace["run_execution"]

    def run_execution(*args: Any, **kwargs: Any) -> Any:
        calls.calls.clear()
        calls.recording = True
        try:
            return original_run(*args, **kwargs)
        finally:
            calls.recording = False

    namespace["run_execution"] = run_execution
    try:
        options = scenarios.Options(scenario=scenario, enforce_iam=False, verbose=False)
        with Emulator() as emulator:
            report = scenarios.run(options, emulator, Console(io.StringIO(), verbose=False))
            transitions = _state_transitions(report)
    finally:
        namespace["run_execution"] = original_run
    if not report.ok or report.solution is None:
        raise SystemExit(f"rehearsal {scenario} did not end as expected: {report.problems}")
    step = report.steps[-1]
    functions = report.solution.functions
    units = Units()
    for logical_id, seconds in step.result.lambda_seconds:
        units.invocations[logical_id] += 1
        units.gb_seconds += seconds * functions[logical_id].memory_mb / 1024
    for stage in step.result.stages:
        if stage.status == "Skipped":  # a stage skipped by its entry condition runs no action
            continue
        # An action the rehearsal could not run here (cfn_nag not installed) still runs in AWS: counted.
        for action, outcome in stage.actions:
            if action.provider == "Manual":
                continue
            units.actions += 1
            # each action is billed at least one minute, rounded up: a rollout's bakes are its minutes
            units.action_minutes += max(1, math.ceil(outcome.clock_seconds / 60))
            units.builds += action.provider == "CodeBuild"
    units.state_transitions = transitions
    units.publishes = sum(1 for service, operation, _ in calls.calls if (service, operation) == ("sns", "Publish"))
    units.ssm_calls = sum(1 for service, _, product in calls.calls if service == "ssm" and product)
    # The execution's first invocation is the execution gate's (the first action of CheckChanges), where
    # an execution queued behind another waits.
    gate, gate_seconds = step.result.lambda_seconds[0]
    extra = {
        "gate_seconds": gate_seconds,
        "gate_memory_mb": functions[gate].memory_mb,
        "approval_minutes": int(report.solution.template.parameters.get("ApprovalTimeoutInMinutes", "720")),
        "gate_logical_id": gate,
    }
    return units, extra


def _state_transitions(report: Any) -> int:
    """State transitions of the last execution's rollout (Step Functions bills each state entered)."""
    solution = report.solution
    if solution is None or not solution.map_targets:
        return 0
    sfn = solution.admin("stepfunctions")
    (machine,) = sfn.list_state_machines()["stateMachines"]
    name = report.steps[-1].result.execution_id
    execution = next(
        e for e in sfn.list_executions(stateMachineArn=machine["stateMachineArn"])["executions"] if e["name"] == name
    )
    pages = sfn.get_paginator("get_execution_history").paginate(executionArn=execution["executionArn"])
    return sum(1 for page in pages for event in page["events"] if event["type"].endswith("StateEntered"))


def queued_behind(extra: dict[str, Any]) -> Units:
    """An execution that waits in the gate for as long as the approval ahead of it stays open."""
    minutes = int(extra["approval_minutes"])
    polls = math.ceil(minutes / ASSUMED_CONTINUATION_INTERVAL_MINUTES)
    units = Units()
    units.invocations[str(extra["gate_logical_id"])] = polls
    units.gb_seconds = polls * float(extra["gate_seconds"] or 0) * int(extra["gate_memory_mb"]) / 1024
    units.actions = 1
    units.action_minutes = minutes
    return units


def main() -> int:
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    from release_pipeline.clients import USER_AGENT

    calls = ApiCalls(USER_AGENT)
    results: dict[str, Units] = {}
    extra: dict[str, Any] = {}
    with calls.installed():
        for label, scenario in CASES.items():
            results[label], case_extra = count_last_execution(scenario, calls)
            if label == "release":
                extra = case_extra
            if label == "approval open":
                extra["approval_minutes"] = case_extra["approval_minutes"]
    results["queued behind it"] = queued_behind(extra)
    print_table(results, extra)
    return 0


def print_table(results: dict[str, Units], extra: dict[str, Any]) -> None:
    labels = list(results)
    width = 16
    print(f"Cost of one execution, counted from rehearsals, priced at us-east-1 public prices of {PRICES_DATE}")
    print(f"{'units':<38}" + "".join(f"{label[:width]:>{width + 2}}" for label in labels))
    rows: list[tuple[str, Callable[[Units], str]]] = [
        ("Lambda invocations", lambda u: str(sum(u.invocations.values()))),
        ("Lambda GB-seconds", lambda u: f"{u.gb_seconds:.2f}"),
        ("CodePipeline actions billed", lambda u: str(u.actions)),
        ("CodePipeline action minutes, at least", lambda u: str(u.action_minutes)),
        ("CodeBuild builds", lambda u: str(u.builds)),
        ("SNS messages (one email each)", lambda u: str(u.publishes)),
        ("SSM Parameter Store calls", lambda u: str(u.ssm_calls)),
        ("Step Functions transitions", lambda u: str(u.state_transitions)),
    ]
    for name, value in rows:
        print(f"{name:<38}" + "".join(f"{value(results[label]):>{width + 2}}" for label in labels))
    print(f"{'USD':<38}" + "".join(f"{'':>{width + 2}}" for _ in labels))
    for item in Units().dollars():
        print(f"{'  ' + item:<38}" + "".join(f"{results[label].dollars()[item]:>{width + 2}.5f}" for label in labels))
    totals = {label: sum(results[label].dollars().values()) for label in labels}
    print(f"{'total USD':<38}" + "".join(f"{totals[label]:>{width + 2}.4f}" for label in labels))
    minutes = int(extra["approval_minutes"])
    queued = totals["queued behind it"]
    print(
        "An approval left open costs nothing while it waits (manual approvals are free), but every execution "
        f"queued behind it holds the gate's action for up to {minutes} minutes (ApprovalTimeoutInMinutes): "
        f"${queued:.2f} each before its own release, {queued / totals['release']:.0f}x a release."
    )
    print(
        f"Gate invocations while queued assume one per {ASSUMED_CONTINUATION_INTERVAL_MINUTES} minute(s) "
        "(CodePipeline does not document the interval); action minutes do not depend on it."
    )


if __name__ == "__main__":
    sys.exit(main())
