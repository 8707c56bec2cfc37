"""One pipeline execution, stage by stage, as CodePipeline runs it.

Stages run in order; a stage's BeforeEntry conditions are evaluated first (a VariableCheck rule that
fails applies the condition's result: SKIP skips the stage, FAIL fails it). Actions run by run order.
Stage state changes are reported where CodePipeline reports them (GetPipelineState, the execution's
status in ListPipelineExecutions) and sent as EventBridge events to every rule whose pattern matches;
a matching rule's Lambda target is invoked in this process, with the rule's retry policy and dead-letter
queue.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import local_aws
from local_aws import clock
from rehearsal import actions
from rehearsal.actions import FAILED, SKIPPED, SUCCEEDED, ActionFailed, Decider, Execution, Outcome
from rehearsal.pipeline import Action, Condition, Pipeline, Stage, Variables, WiringError
from rehearsal.report import Console
from rehearsal.solution import Solution

# A rehearsal retries a failing asynchronous invocation at once (Lambda waits a minute, then two);
# at most this many attempts, whatever the function's EventInvokeConfig allows.
MAX_TARGET_ATTEMPTS = 3
# RetryStageExecution's retry modes, as the console names them.
RETRY_MODES = {"all": "all actions", "failed": "failed actions"}


@dataclass
class StageResult:
    name: str
    status: str  # Succeeded, Failed, Skipped
    reason: str = ""
    actions: list[tuple[Action, Outcome]] = field(default_factory=list)


@dataclass
class Delivery:
    rule: str
    target: str
    state: str
    stage: str
    attempts: int
    outcome: str  # delivered, dead-lettered


@dataclass
class ExecutionResult:
    execution_id: str
    revision: str
    status: str  # Succeeded, Failed
    stages: list[StageResult]
    deliveries: list[Delivery]
    variables: dict[str, dict[str, str]]
    lambda_seconds: list[tuple[str, float]]
    failure: str = ""

    def stage(self, name: str) -> StageResult | None:
        """The stage's latest attempt."""
        return next((s for s in reversed(self.stages) if s.name == name), None)

    def action(self, stage: str, name: str) -> Outcome | None:
        found = self.stage(stage)
        if found is None:
            return None
        return next((outcome for action, outcome in found.actions if action.name == name), None)


def run_execution(
    solution: Solution,
    pipeline: Pipeline,
    *,
    source_dir: Path,
    revision: str,
    decide: Decider,
    console: Console,
    show_logs: bool = False,
    retry: str | None = None,
) -> ExecutionResult:
    """Run one execution; ``retry`` ("all" or "failed") retries the first stage that fails once, as a
    person would from the console (RetryStageExecution with ALL_ACTIONS or FAILED_ACTIONS)."""
    admin = solution.admin("codepipeline")
    execution_id = admin.start_pipeline_execution(name=pipeline.name)["pipelineExecutionId"]
    _set_execution(solution, pipeline, execution_id, "InProgress")
    variables = Variables({"codepipeline": {"PipelineExecutionId": execution_id}})
    execution = Execution(
        solution=solution,
        execution_id=execution_id,
        variables=variables,
        reporter=console,
        decide=decide,
        source_dir=source_dir,
        revision_label=revision,
        show_logs=show_logs,
        retry_mode=retry,
    )
    console.execution_started(pipeline.name, execution_id, revision)
    result = ExecutionResult(execution_id, revision, SUCCEEDED, [], [], {}, execution.invocations)
    index, earlier_attempt = 0, None
    while index < len(pipeline.stages):
        stage = pipeline.stages[index]
        stage_result = _run_stage(execution, pipeline, stage, console, result.deliveries, earlier_attempt)
        result.stages.append(stage_result)
        if stage_result.status == FAILED:
            _set_execution(solution, pipeline, execution_id, "Failed")
            result.deliveries.extend(_emit(solution, execution, pipeline, stage.name, "FAILED", console))
            if retry in RETRY_MODES and earlier_attempt is None:
                # A person chooses Retry on the failed stage: the same execution, id and variables.
                console.line(f"retry of stage {stage.name} ({RETRY_MODES[retry]}) in execution {execution_id}")
                _set_execution(solution, pipeline, execution_id, "InProgress")
                earlier_attempt = stage_result
                continue
            result.status = FAILED
            result.failure = f"{stage.name}: {stage_result.reason}"
            break
        index, earlier_attempt = index + 1, None
    else:
        _set_execution(solution, pipeline, execution_id, "Succeeded")
    result.variables = {k: dict(v) for k, v in variables.values.items()}
    console.execution_finished(result.status, result.failure)
    return result


def _set_execution(solution: Solution, pipeline: Pipeline, execution_id: str, status: str) -> None:
    local_aws.set_execution_status(
        pipeline.name, execution_id, status, region=solution.primary_region, account_id=solution.account_id
    )


def _set_stage(solution: Solution, pipeline: Pipeline, stage: str, execution_id: str, status: str) -> None:
    """What GetPipelineState reports for the stage from now on."""
    local_aws.set_stage_execution(
        pipeline.name, stage, execution_id, status, region=solution.primary_region, account_id=solution.account_id
    )


def _run_stage(
    execution: Execution,
    pipeline: Pipeline,
    stage: Stage,
    console: Console,
    deliveries: list[Delivery],
    earlier_attempt: StageResult | None = None,
) -> StageResult:
    """Run ``stage``; with ``earlier_attempt`` it is a retry (entry conditions are not evaluated again),
    and in "failed actions" mode the actions that succeeded in it are not run again."""
    solution = execution.solution
    done = (
        {action.name for action, outcome in earlier_attempt.actions if outcome.status == SUCCEEDED}
        if earlier_attempt is not None and execution.retry_mode == "failed"
        else set()
    )
    for condition in () if earlier_attempt is not None else stage.before_entry:
        met, reason = _condition_met(execution, stage, condition)
        if not met:
            if condition.result == "SKIP":
                console.stage_skipped(stage.name, reason)
                return StageResult(stage.name, SKIPPED, reason)
            console.stage_started(stage.name)
            console.stage_finished(stage.name, FAILED, reason)
            return StageResult(stage.name, FAILED, f"entry condition failed: {reason}")
    console.stage_started(stage.name)
    _set_stage(solution, pipeline, stage.name, execution.execution_id, "InProgress")
    deliveries.extend(_emit(solution, execution, pipeline, stage.name, "STARTED", console))
    result = StageResult(stage.name, SUCCEEDED)
    for group in stage.run_orders():
        for action in group:
            if action.name in done:
                continue
            outcome = _run_action(execution, action, console)
            result.actions.append((action, outcome))
            if outcome.status == FAILED:
                result.status, result.reason = FAILED, f"{action.name}: {outcome.summary}"
        if result.status == FAILED:
            break
    status = "Failed" if result.status == FAILED else "Succeeded"
    _set_stage(solution, pipeline, stage.name, execution.execution_id, status)
    console.stage_finished(stage.name, result.status, result.reason)
    if result.status != FAILED:
        deliveries.extend(_emit(solution, execution, pipeline, stage.name, "SUCCEEDED", console))
    return result


def _condition_met(execution: Execution, stage: Stage, condition: Condition) -> tuple[bool, str]:
    for rule in condition.rules:
        where = f"stage {stage.name} condition {rule.name}"
        if rule.provider != "VariableCheck":
            raise WiringError(f"{where}: rule provider {rule.provider} is not rehearsed (VariableCheck is)")
        variable = rule.configuration.get("Variable", "")
        value = execution.variables.substitute(variable, where)
        expected = rule.configuration.get("Value", "")
        operator = rule.configuration.get("Operator", "EQ")
        checks = {
            "EQ": value == expected,
            "NE": value != expected,
            "CONTAINS": expected in value,
            "MATCHES": re.search(expected, value) is not None,
        }
        if operator not in checks:
            raise WiringError(f"{where}: operator {operator} is not one of {', '.join(checks)}")
        if not checks[operator]:
            return False, f"{rule.name}: {variable} is '{value}', not {operator} '{expected}'"
    return True, ""


def _run_action(execution: Execution, action: Action, console: Console) -> Outcome:
    console.action_started(action)
    started = time.perf_counter()
    on_the_clock = clock.now()
    try:
        outcome = actions.provider_of(action)(execution, action)
    except ActionFailed as failure:
        outcome = Outcome(FAILED, str(failure))
    outcome.clock_seconds = (clock.now() - on_the_clock).total_seconds()
    if outcome.status != FAILED and action.namespace:
        execution.variables.set(action.namespace, outcome.variables)
    _record(execution, action, outcome)
    console.action_finished(action, outcome, time.perf_counter() - started)
    for message in execution.solution.new_messages():
        console.notification(message["subject"], message["message"])
    return outcome


def _record(execution: Execution, action: Action, outcome: Outcome) -> None:
    """The action's execution as ListActionExecutions lists it: its type and, once it succeeded, where
    its output artifacts are."""
    solution = execution.solution
    artifacts = [execution.artifacts[name] for name in action.outputs if name in execution.artifacts]
    now = datetime.now(UTC)
    detail = {
        "pipelineExecutionId": execution.execution_id,
        "actionExecutionId": str(uuid.uuid4()),
        "pipelineVersion": 1,
        "stageName": action.stage,
        "actionName": action.name,
        "startTime": now,
        "lastUpdateTime": now,
        "status": "Failed" if outcome.status == FAILED else "Succeeded",
        "input": {
            "actionTypeId": {
                "category": action.category,
                "owner": action.owner,
                "provider": action.provider,
                "version": "1",
            },
            "configuration": dict(action.configuration),
            "inputArtifacts": [{"name": name} for name in action.inputs],
        },
        "output": {
            "outputArtifacts": [
                {"name": artifact.name, "s3location": {"bucket": artifact.bucket, "key": artifact.key}}
                for artifact in artifacts
                if outcome.status != FAILED
            ]
        },
    }
    local_aws.record_action_execution(
        solution.pipeline_name, detail, region=solution.primary_region, account_id=solution.account_id
    )


def stage_event(solution: Solution, pipeline: Pipeline, execution_id: str, stage: str, state: str) -> dict[str, Any]:
    """A "CodePipeline Stage Execution State Change" event as EventBridge delivers it."""
    region, account = solution.primary_region, solution.account_id
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "CodePipeline Stage Execution State Change",
        "source": "aws.codepipeline",
        "account": account,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:codepipeline:{region}:{account}:{pipeline.name}"],
        "detail": {
            "pipeline": pipeline.name,
            "execution-id": execution_id,
            "stage": stage,
            "state": state,
            "version": 1.0,
            "pipeline-execution-attempt": 1.0,
        },
    }


def _emit(
    solution: Solution, execution: Execution, pipeline: Pipeline, stage: str, state: str, console: Console
) -> list[Delivery]:
    """Send the stage event to every enabled rule of the default bus whose pattern matches it."""
    event = stage_event(solution, pipeline, execution.execution_id, stage, state)
    events = solution.admin("events")
    deliveries = []
    for rule in events.list_rules(EventBusName="default").get("Rules", []):
        if rule.get("State") != "ENABLED" or not rule.get("EventPattern"):
            continue
        matched = events.test_event_pattern(EventPattern=rule["EventPattern"], Event=json.dumps(event))["Result"]
        if not matched:
            continue
        for target in events.list_targets_by_rule(Rule=rule["Name"]).get("Targets", []):
            deliveries.append(_deliver(solution, execution, rule, target, event, console))
    return deliveries


def _deliver(
    solution: Solution,
    execution: Execution,
    rule: dict[str, Any],
    target: dict[str, Any],
    event: dict[str, Any],
    console: Console,
) -> Delivery:
    """EventBridge invokes a Lambda target asynchronously: it needs the function's permission (else its
    own retries end in the rule target's dead-letter queue); a function error is then retried by
    Lambda (the function's EventInvokeConfig) and ends in the function's dead-letter queue."""
    detail, name = event["detail"], rule["Name"]
    function = solution.function_by_name(target["Arn"])
    if function is None:
        raise WiringError(f"rule {name} targets {target['Arn']}, which is not a function of the template")
    console.event_delivered(name, function.logical_id, detail["stage"], detail["state"])
    if not solution.may_invoke(function, "events.amazonaws.com", rule["Arn"]):
        console.detail(f"no AWS::Lambda::Permission lets rule {name} invoke {function.logical_id}")
        _dead_letter(solution, target.get("DeadLetterConfig", {}).get("Arn"), event, console)
        return Delivery(name, function.logical_id, detail["state"], detail["stage"], 0, "not invoked: no permission")
    attempts = min(function.async_retries + 1, MAX_TARGET_ATTEMPTS)
    for attempt in range(1, attempts + 1):
        try:
            actions.invoke(execution, function, event)
        except Exception as error:  # noqa: BLE001 (any error makes Lambda retry an asynchronous invocation)
            console.detail(f"attempt {attempt} of {function.logical_id} failed: {type(error).__name__}: {error}")
            continue
        if not execution.show_logs:
            for line in execution.last_logs:
                console.detail(f"log: {line}")
        console.detail(f"{function.logical_id} handled the {detail['stage']} {detail['state']} event")
        return Delivery(name, function.logical_id, detail["state"], detail["stage"], attempt, "delivered")
    dead_lettered = _dead_letter(solution, function.dead_letter_arn, event, console, principal=function.logical_id)
    outcome = "dead-lettered" if dead_lettered else "lost"
    return Delivery(name, function.logical_id, detail["state"], detail["stage"], attempts, outcome)


def _dead_letter(
    solution: Solution, target_arn: str | None, event: dict[str, Any], console: Console, principal: str = "admin"
) -> bool:
    """Send the event to a dead-letter queue or topic, as ``principal`` (Lambda uses the function's
    role, so that role must be allowed to send)."""
    if not target_arn:
        console.detail("no dead-letter queue: the event is lost")
        return False
    service, region = target_arn.split(":")[2], target_arn.split(":")[3]
    client = solution.emulator.client(service, region, solution.credentials(principal))
    if service == "sqs":
        # Lambda derives the queue from its ARN; looking its URL up is the rehearsal's bookkeeping
        url = solution.admin("sqs", region).get_queue_url(QueueName=target_arn.rsplit(":", 1)[-1])["QueueUrl"]
        client.send_message(QueueUrl=url, MessageBody=json.dumps(event))
    elif service == "sns":
        client.publish(TopicArn=target_arn, Message=json.dumps(event))
    else:
        raise WiringError(f"dead-letter target {target_arn} is neither an SQS queue nor an SNS topic")
    console.detail(f"event sent to the dead-letter target {target_arn.rsplit(':', 1)[-1]}")
    return True
