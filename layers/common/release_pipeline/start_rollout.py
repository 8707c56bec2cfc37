"""start-rollout: start the rollout state machine for the reviewed change, and follow it to its end.

When the application has a deployment map, its deploy stage is this one Lambda invoke action.
CodePipeline ends its own Step Functions action after one hour, and a Lambda invoke action that keeps
returning continuation tokens after 24 hours, the time the map's waves are given
(https://docs.aws.amazon.com/codepipeline/latest/userguide/limits.html).

- **First invocation:** read the deployment map from the Source artifact and start the state machine
  (``statemachines/rollout.asl.json``) on the reviewed change sets, the execution named after the
  pipeline execution. StartExecution of a STANDARD workflow with the name and input of a running
  execution answers that execution; when that execution is closed, or its input differs, it answers
  ExecutionAlreadyExists, and names can be reused only after 90 days
  (https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html). So a retried
  invocation, or a retried stage, follows the execution this pipeline execution already started (whose
  input is the same) and never runs the reviewed change sets twice.
- **Later invocations:** DescribeExecution; while it runs, the newest events of its history name the wave
  in progress. Every poll makes the same calls whatever the number of targets, and the continuation
  token holds only the execution's ARN and a count.
- **At the end:** one report to the topic, every target's state wave by wave (never a parameter value),
  then the job's result: success with output variables when the change is released, failure otherwise.
  Should reporting fail, a retry of the action follows the same execution and reports it again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError

from release_pipeline import artifacts, deployment_map, rollout
from release_pipeline.config import FromEnv, text, whole
from release_pipeline.errors import (
    ArtifactError,
    BadInputError,
    ConfigurationError,
    PipelineError,
    RolloutError,
    error_code,
)
from release_pipeline.jobs import SOURCE_ARTIFACT, Job, JobResult
from release_pipeline.notifications import publish_report
from release_pipeline.values import shorten

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_stepfunctions import SFNClient
    from mypy_boto3_stepfunctions.type_defs import DescribeExecutionOutputTypeDef, HistoryEventTypeDef


@dataclass(frozen=True)
class StartRolloutConfig(FromEnv):
    """start-rollout: the state machine; where the map is in the source; the stack name of a target that
    names none; the prefix CheckChanges named the change sets with; the role CloudFormation deploys with in
    the solution's account; the topic of the reports; how long the state machine waits between checks."""

    FUNCTION = "start-rollout"

    state_machine_arn: str = text("STATE_MACHINE_ARN")
    deployment_map_path: str = text("DEPLOYMENT_MAP_PATH")
    application_stack_name: str = text("APPLICATION_STACK_NAME")
    change_set_prefix: str = text("CHANGE_SET_PREFIX")
    cloudformation_role_arn: str = text("CLOUDFORMATION_ROLE_ARN")
    topic_arn: str = text("TOPIC_ARN")
    poll_seconds: int = whole("POLL_SECONDS", 5, 300)


# The outcomes the state machine's output names (its states Released and RolledBack).
RELEASED: Final = "RELEASED"
ROLLED_BACK: Final = "ROLLED_BACK"
# A target's state in a report, beyond those of deploy-target's returns (rollout.RETURNED and the others).
RETURN_FAILED: Final = "RETURN_FAILED"
FAILED: Final = "FAILED"
UNKNOWN: Final = "UNKNOWN"
STATE_MEANINGS: Final = {
    RELEASED: "runs the new release",
    rollout.RETURNED: "back on the last release",
    rollout.UNTOUCHED: "never changed by this execution",
    rollout.FIRST_RELEASE: "created by this execution; never deleted",
    rollout.NOT_RELEASED: "not in the last release; left as it is",
    RETURN_FAILED: "its return to the release failed; left as it is",
    FAILED: "failed",
    UNKNOWN: "not known: see the execution",
}
# The states of statemachines/rollout.asl.json that return the changed targets to the release.
RETURN_STATES: Final = frozenset(
    {
        "ReturnToRelease",
        "Return",
        "Returned",
        "WaitForReturn",
        "ReturnRefused",
        "ReturnErrored",
        "Reported",
        "Returns",
        "AllReturned",
        "ReturnFailed",
        "RolledBack",
    }
)
# The error of the state machine's Fail state after the returns, when one or more failed, and the state
# whose output holds every target's return (the Fail state's cause names only the failed targets).
RETURN_FAILED_ERROR: Final = "ReturnFailed"
RETURNS_STATE: Final = "Returns"
# The newest history events a poll reads. Every state a target passes through records its input, the
# target and its wave included, so the newest few name the wave in progress; 50 keep a margin for a wave
# whose targets all answer at once. GetExecutionHistory takes up to 1,000 per call:
# https://docs.aws.amazon.com/step-functions/latest/apireference/API_GetExecutionHistory.html
HISTORY_EVENTS: Final = 50
_STILL_RUNNING: Final = frozenset({"RUNNING", "PENDING_REDRIVE"})
_RETRY_NOTE: Final = "Retrying this action reports this same execution; a new pipeline execution starts a new rollout."


# ------------------------------------------------------------------------------------------ the plan


@dataclass(frozen=True)
class Plan:
    """The rollout as its execution's input lists it: each wave's name and its targets' keys, in order."""

    waves: tuple[tuple[str, tuple[str, ...]], ...]

    @classmethod
    def of(cls, document: Mapping[str, Any]) -> Plan:
        """The plan of a rollout input (``rollout.workflow_input``)."""
        try:
            return cls(
                tuple(
                    (str(wave["Name"]), tuple(str(target["Key"]) for target in wave["Targets"]))
                    for wave in document["Waves"]
                )
            )
        except (KeyError, TypeError) as error:
            raise RolloutError(f"The rollout execution's input lists no waves of targets ({error!r})") from None

    @classmethod
    def read(cls, raw: str | None) -> Plan:
        """The plan in an execution's input (DescribeExecution's ``input``)."""
        try:
            document = json.loads(raw or "")
        except ValueError:
            raise RolloutError("The rollout execution's input is not JSON") from None
        if not isinstance(document, Mapping):
            raise RolloutError("The rollout execution's input is not a JSON object")
        return cls.of(document)

    @property
    def targets(self) -> int:
        return sum(len(keys) for _, keys in self.waves)

    @property
    def size(self) -> str:
        """``4 targets in 3 waves``."""
        return f"{_count(self.targets, 'target')} in {_count(len(self.waves), 'wave')}"

    def number(self, wave: str) -> int | None:
        """The wave's place in the rollout (1 for the first), ``None`` for a wave it does not have."""
        return next((index for index, (name, _) in enumerate(self.waves, start=1) if name == wave), None)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


# -------------------------------------------------------------------------------------------- the job


def start_rollout(
    *,
    job: Job,
    job_s3: S3Client,
    sfn: SFNClient,
    sns: SNSClient,
    config: StartRolloutConfig,
    function_arn: str,
) -> JobResult:
    """Start the rollout (first invocation) or follow it (each later one)."""
    polls = job.token_count("polls")
    followed = _followed_execution(job, config.state_machine_arn)
    if followed is None:
        return start(job=job, job_s3=job_s3, sfn=sfn, config=config, function_arn=function_arn)
    return follow(sfn=sfn, sns=sns, config=config, execution=followed, check=polls + 1)


def execution_arn(state_machine_arn: str, name: str) -> str:
    """The ARN of the execution ``name`` of the state machine:
    ``arn:<partition>:states:<Region>:<account>:execution:<state machine>:<name>``."""
    parts = state_machine_arn.split(":")
    if len(parts) != 7 or parts[0] != "arn" or parts[2] != "states" or parts[5] != "stateMachine" or not parts[6]:
        raise ConfigurationError(f"STATE_MACHINE_ARN is not a state machine's ARN: {shorten(state_machine_arn, 200)!r}")
    return ":".join([*parts[:5], "execution", parts[6], name])


def _token(execution: str, polls: int) -> dict[str, Any]:
    """The continuation token: the execution followed and the number of invocations so far. Its size does
    not depend on the number of targets (an ARN is at most 256 characters)."""
    return {"execution": execution, "polls": polls}


def _followed_execution(job: Job, state_machine_arn: str) -> str | None:
    """The execution a continuation token names (``None`` on the first invocation), checked to be one of the
    rollout state machine's."""
    token = job.continuation_token
    if token is None:
        return None
    prefix = execution_arn(state_machine_arn, "")
    execution = token.get("execution")
    if not isinstance(execution, str) or not execution.startswith(prefix) or len(execution) == len(prefix):
        raise BadInputError(
            f"The job's continuation token names no execution of {state_machine_arn}: {shorten(repr(execution), 120)}"
        )
    return execution


def _caller(function_arn: str) -> tuple[str, str]:
    """(partition, account) of this function, from its ARN: the solution's home account."""
    parts = function_arn.split(":")
    if len(parts) < 7 or parts[0] != "arn" or not deployment_map.ACCOUNT_ID.fullmatch(parts[4]):
        raise PipelineError(f"Not a Lambda function ARN: {shorten(function_arn, 200)!r}")
    return parts[1], parts[4]


# ------------------------------------------------------------------------------------------ the start


def start(*, job: Job, job_s3: S3Client, sfn: SFNClient, config: StartRolloutConfig, function_arn: str) -> JobResult:
    """Read the reviewed map, start its rollout (or find the one this pipeline execution started) and wait."""
    execution_id = job.execution_id
    partition, home_account = _caller(function_arn)
    source = artifacts.Archive(
        artifacts.download(job_s3, job.input_artifact(SOURCE_ARTIFACT), what="source artifact"), "source artifact"
    )
    reviewed = read_map(source, config, home_account)
    # The map check (Validate) counts checks at the default interval; this function's may be shorter.
    problem = deployment_map.history_problem(reviewed.waves, config.poll_seconds)
    if problem is not None:
        raise ConfigurationError(f"POLL_SECONDS is {config.poll_seconds}: {problem}; nothing was started")
    document = rollout.workflow_input(
        reviewed,
        execution_id=execution_id,
        change_set_name=config.change_set_prefix + execution_id,
        partition=partition,
        home_execution_role_arn=config.cloudformation_role_arn,
        poll_seconds=config.poll_seconds,
    )
    execution, existing = start_once(sfn, config.state_machine_arn, execution_id, document)
    plan = Plan.of(document)
    if existing is None:
        summary = f"Started the rollout of {plan.size}: execution {execution_id}"
    else:
        summary = f"Following the rollout this pipeline execution already started ({existing}): {plan.size}"
    return JobResult.keep_waiting(_token(execution, 1), summary)


def read_map(source: artifacts.Archive, config: StartRolloutConfig, home_account: str) -> deployment_map.DeploymentMap:
    """The deployment map in the source, each target's parameters read from it."""
    path = config.deployment_map_path

    def read_file(name: str) -> str | None:
        if name not in source.names:
            return None
        return source.read(name).decode("utf-8", errors="replace")

    raw = read_file(path)
    if raw is None:
        raise ArtifactError(f"The source artifact has no deployment map at {path}")
    try:
        return deployment_map.parse(
            raw, read_file=read_file, default_stack_name=config.application_stack_name, home_account=home_account
        )
    except ConfigurationError as error:
        raise BadInputError(f"{path}: {error}") from None


def start_once(
    sfn: SFNClient, state_machine_arn: str, name: str, document: Mapping[str, Any]
) -> tuple[str, str | None]:
    """Start the execution ``name`` on ``document``: its ARN, and ``None`` (started now, or running with
    this input) or the status of the execution of that name found closed with this input. Another input
    under the name is an error: that execution is not this change's."""
    raw = json.dumps(document, separators=(",", ":"))
    try:
        return sfn.start_execution(stateMachineArn=state_machine_arn, name=name, input=raw)["executionArn"], None
    except ClientError as error:
        if error_code(error) != "ExecutionAlreadyExists":
            raise
    arn = execution_arn(state_machine_arn, name)
    existing = sfn.describe_execution(executionArn=arn)
    try:
        same = json.loads(existing.get("input") or "null") == json.loads(raw)
    except ValueError:
        same = False
    if not same:
        raise RolloutError(
            f"A rollout execution named {name} already exists with another input (a different map or "
            f"configuration), so this change's rollout cannot start: {console_url(arn)}"
        )
    return arn, existing["status"]


# ----------------------------------------------------------------------------------------- following


# Answers that say "not now" rather than "no": botocore has already retried them (standard mode), and the
# state machine goes on deploying meanwhile, so the job looks again at its next check instead of failing
# (a failed job would make stage-revert remove the change sets of waves still to come).
# https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html
_TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ServiceUnavailable",
        "InternalServerError",
        "InternalFailure",
        "RequestTimeout",
    }
)


def _transient(error: ClientError) -> bool:
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return error_code(error) in _TRANSIENT_CODES or status >= 500


def follow(*, sfn: SFNClient, sns: SNSClient, config: StartRolloutConfig, execution: str, check: int) -> JobResult:
    """One look at the execution: keep waiting while it runs; at its end, report it and give the result."""
    try:
        described = sfn.describe_execution(executionArn=execution)
    except ClientError as error:
        if not _transient(error):
            raise
        return JobResult.keep_waiting(
            _token(execution, check),
            f"Rollout in progress (check {check}): Step Functions did not answer this time "
            f"({error_code(error)}); looking again at the next check",
        )
    plan = Plan.read(described.get("input"))
    status = described["status"]
    if status in _STILL_RUNNING:
        return JobResult.keep_waiting(_token(execution, check), progress(sfn, execution, plan, check))
    read = _OUTCOMES.get(status)
    if read is None:
        raise RolloutError(f"The rollout execution has a status this function does not know: {status}")
    if status == "FAILED" and described.get("error") == RETURN_FAILED_ERROR:
        outcome = _returns_failed(described, recorded_returns(sfn, execution))
    else:
        outcome = read(described)
    publish_report(sns, config.topic_arn, outcome.subject(config.application_stack_name), outcome.report(plan))
    if outcome.name != RELEASED:
        raise RolloutError(outcome.message(plan))
    return JobResult(
        summary=f"Released to {plan.size}",
        output_variables={"Outcome": RELEASED, "Waves": str(len(plan.waves)), "Targets": str(plan.targets)},
    )


@dataclass(frozen=True)
class Position:
    """Where a running execution is: in a wave, returning targets to the release, or not yet known."""

    wave: str | None = None
    returning: bool = False


def progress(sfn: SFNClient, execution: str, plan: Plan, check: int) -> str:
    """The summary while the execution runs: the wave in progress, read from its newest events (one call,
    whatever the number of targets)."""
    prefix = f"Rollout in progress (check {check})"
    try:
        page = sfn.get_execution_history(executionArn=execution, reverseOrder=True, maxResults=HISTORY_EVENTS)
    except ClientError as error:
        if not _transient(error):
            raise
        return f"{prefix}: {plan.size}"  # only the summary needed the history
    where = position(page.get("events", []))
    if where.returning:
        return f"{prefix}: a target failed; returning the targets this execution changed to the release"
    number = plan.number(where.wave) if where.wave is not None else None
    if where.wave is None or number is None:
        return f"{prefix}: {plan.size}"
    keys = plan.waves[number - 1][1]
    return f"{prefix}: wave {number} of {len(plan.waves)}, {where.wave} ({_count(len(keys), 'target')})"


def position(events: Sequence[HistoryEventTypeDef]) -> Position:
    """Where the execution is, from the newest of ``events`` that tells. Events are numbered in the order
    they happened, so the newest is found by id whatever order the page lists them in."""
    for event in sorted(events, key=lambda item: item.get("id", 0), reverse=True):
        scheduled = event.get("taskScheduledEventDetails")
        entered = event.get("stateEnteredEventDetails")
        exited = event.get("stateExitedEventDetails")
        state = entered or exited
        if state is not None and state.get("name") in RETURN_STATES:
            return Position(returning=True)
        if scheduled is not None:
            document = _json_object(scheduled.get("parameters"))
        elif entered is not None:
            document = _json_object(entered.get("input"))
        else:
            document = _json_object(exited.get("output") if exited is not None else None)
        payload = document.get("Payload")  # a task's parameters: deploy-target's event
        if isinstance(payload, Mapping):
            if payload.get("Action") == "return":
                return Position(returning=True)
            document = payload
        wave = _wave_of(document)
        if wave is not None:
            return Position(wave=wave)
    return Position()


def _wave_of(document: Mapping[str, Any]) -> str | None:
    """The wave a state's data names: its target's (``Target.Wave``) or the wave's own (``Wave.Name``)."""
    target, wave = document.get("Target"), document.get("Wave")
    name = target.get("Wave") if isinstance(target, Mapping) else None
    if name is None and isinstance(wave, Mapping):
        name = wave.get("Name")
    return name if isinstance(name, str) and name else None


def _json_object(raw: object) -> Mapping[str, Any]:
    """The JSON object in ``raw``, or an empty one (an event's data may be cut, or not an object)."""
    if not isinstance(raw, str):
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, Mapping) else {}


# ------------------------------------------------------------------------------------------ the end


@dataclass(frozen=True)
class Outcome:
    """How a rollout ended: RELEASED, ROLLED_BACK or the status of an execution that stopped (FAILED,
    TIMED_OUT, ABORTED); what happened, in a sentence; each target's state and what it means."""

    name: str
    execution: str
    what_happened: str
    states: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # key -> (state, detail)
    default_state: tuple[str, str] = (UNKNOWN, "")
    next_step: str = ""

    def state(self, key: str) -> tuple[str, str]:
        return self.states.get(key, self.default_state)

    def subject(self, application: str) -> str:
        return f"Rollout {self.name.lower().replace('_', ' ')}: {application}"

    def report(self, plan: Plan) -> list[str]:
        """The report to the topic: what happened, then every target's state, wave by wave."""
        lines = [
            f"Rollout of pipeline execution {self.execution.rsplit(':', 1)[-1]}: {self.name}",
            self.what_happened,
        ]
        if self.next_step:
            lines.append(self.next_step)
        lines.append("")
        for number, (wave, keys) in enumerate(plan.waves, start=1):
            lines.append(f"Wave {number} of {len(plan.waves)}: {wave}")
            for key in keys:
                state, detail = self.state(key)
                meaning = detail or STATE_MEANINGS.get(state, "")
                lines.append(f"  {key}: {state}" + (f" ({meaning})" if meaning else ""))
        lines += ["", f"Execution: {console_url(self.execution)}"]
        return lines

    def message(self, plan: Plan) -> str:
        """The job's failure message: what happened, then the targets by state."""
        by_state: dict[str, list[str]] = {}
        for _, keys in plan.waves:
            for key in keys:
                by_state.setdefault(self.state(key)[0], []).append(key)
        states = "; ".join(
            f"{state} ({STATE_MEANINGS.get(state, 'as reported')}): {', '.join(keys)}"
            for state, keys in by_state.items()
        )
        # The list of targets comes last: a message over CodePipeline's limit is cut there.
        parts = [self.what_happened, self.next_step, _RETRY_NOTE, console_url(self.execution), f"Targets: {states}."]
        return " ".join(part for part in parts if part)


def _succeeded(described: DescribeExecutionOutputTypeDef) -> Outcome:
    """An execution that succeeded: the change released, or rolled back (every target it changed returned to
    the release, which the output's Returns list)."""
    execution = described["executionArn"]
    output = _json_object(described.get("output"))
    outcome = output.get("Outcome")
    if outcome == RELEASED:
        return Outcome(RELEASED, execution, "Every target runs the new release.", default_state=(RELEASED, ""))
    if outcome != ROLLED_BACK:
        raise RolloutError(f"The rollout execution ended with an outcome this function does not know: {outcome!r}")
    states = _return_states(output.get("Returns"))
    failure = output.get("Failure")
    error, cause = (failure.get("Error"), failure.get("Cause")) if isinstance(failure, Mapping) else (None, None)
    found = {state for state, _ in states.values()}
    kept = [
        text
        for state, text in (
            (rollout.FIRST_RELEASE, " Stacks it created (FIRST_RELEASE) are kept: never deleted."),
            (rollout.NOT_RELEASED, " Targets not in the last release (NOT_RELEASED) are left as they are."),
        )
        if state in found
    ]
    return Outcome(
        ROLLED_BACK,
        execution,
        f"Rolled back: {_failure(error, cause)}.",
        states,
        next_step="The targets this execution changed were returned to the last release." + "".join(kept),
    )


def _return_states(returns: object) -> dict[str, tuple[str, str]]:
    """Each target's (state, detail) in the state machine's list of returns."""
    states: dict[str, tuple[str, str]] = {}
    for item in returns if isinstance(returns, list) else []:
        if isinstance(item, Mapping) and isinstance(item.get("Key"), str):
            states[item["Key"]] = (str(item.get("State", UNKNOWN)), str(item.get("Detail") or ""))
    return states


def recorded_returns(sfn: SFNClient, execution: str) -> Mapping[str, Any] | None:
    """The output of the state ``Returns`` (every target's return, and the failure that started them), read
    from the newest events of the execution's history: it is among the last few. ``None`` when it cannot be
    read (the report then names the failed targets from the execution's cause)."""
    try:
        page = sfn.get_execution_history(executionArn=execution, reverseOrder=True, maxResults=HISTORY_EVENTS)
    except ClientError as error:
        if not _transient(error):
            raise
        return None
    for event in page.get("events", []):
        exited = event.get("stateExitedEventDetails")
        if exited is not None and exited.get("name") == RETURNS_STATE:
            document = _json_object(exited.get("output"))
            return document or None
    return None


def _returns_failed(described: DescribeExecutionOutputTypeDef, recorded: Mapping[str, Any] | None) -> Outcome:
    """An execution whose returns have all run and one or more failed: each target's state from the state
    ``Returns`` (or, when it could not be read, the failed targets the cause names)."""
    execution, cause = described["executionArn"], str(described.get("cause") or "")
    if recorded is not None:
        states = _return_states(recorded.get("Returns"))
        failure = recorded.get("Failure")
        error, first = (failure.get("Error"), failure.get("Cause")) if isinstance(failure, Mapping) else (None, None)
        started = f" after the rollout failed ({_failure(error, first)})"
    else:
        _, _, listed = cause.partition(": ")
        try:
            keys = json.loads(listed)
        except ValueError:
            return _stopped(described)  # not this state machine's cause: reported as any failure
        states = {key: (RETURN_FAILED, "") for key in keys if isinstance(key, str)} if isinstance(keys, list) else {}
        started = ""
    failed = sorted(key for key, (state, _) in states.items() if state == RETURN_FAILED)
    return Outcome(
        "FAILED",
        execution,
        f"Returning targets to the release{started}: {shorten(cause, 1000) or 'some returns failed'}; every "
        "other return ran to its end.",
        states,
        next_step=(
            "The execution failed, so its alarm fires: bring each RETURN_FAILED stack back to the release by hand "
            f"({', '.join(failed) or 'see the execution'}; its events name the cause)."
        ),
    )


def _stopped(described: DescribeExecutionOutputTypeDef) -> Outcome:
    """An execution that failed, timed out or was stopped: nothing more happens to any target."""
    status, execution = described["status"], described["executionArn"]
    error, cause = described.get("error"), described.get("cause")
    states: dict[str, tuple[str, str]] = {}
    key, _, detail = (cause or "").partition(": ")
    if detail:  # the cause of the state machine's Fail states names the target: "<key>: <detail>"
        states[key] = (RETURN_FAILED if error == "ReturnFailed" else FAILED, detail)
    if status == "FAILED" and error == "ReturnFailed":
        what = f"Returning a target to the release failed: {_failure(None, cause)}."
    elif status == "FAILED":
        what = f"The rollout execution failed: {_failure(error, cause)}."
    elif status == "TIMED_OUT":
        what = "The rollout execution timed out" + (f": {_failure(error, cause)}." if error or cause else ".")
    else:
        what = "The rollout execution was stopped (ABORTED)" + (
            f": {_failure(error, cause)}." if error or cause else "."
        )
    if status == "FAILED" and error == "ReturnFailed":
        next_step = (
            "The execution failed, so its alarm fires; nothing else is touched: bring that stack back to the "
            "release by hand (its events name the cause)."
        )
    elif status == "FAILED":
        next_step = (
            "The execution failed, so its alarm fires; nothing else is touched: targets may be partly deployed "
            "and none was returned to the release."
        )
    else:
        next_step = "Targets may be partly deployed; none was returned to the release."
    return Outcome(status, execution, what, states, next_step=next_step)


def _failure(error: object, cause: object) -> str:
    """A failure as a person reads it: the cause (``<key>: <detail>`` from a Fail state), after its error
    name when that is not one of the state machine's own."""
    shown_cause = shorten(str(cause), 1000) if cause else "no cause given"
    if error in (None, "", "TargetFailed", "ReturnFailed"):
        return shown_cause
    return f"{shorten(str(error), 200)}: {shown_cause}"


_OUTCOMES: Final[dict[str, Callable[[DescribeExecutionOutputTypeDef], Outcome]]] = {
    "SUCCEEDED": _succeeded,
    "FAILED": _stopped,
    "TIMED_OUT": _stopped,
    "ABORTED": _stopped,
}


def console_url(execution: str) -> str:
    """The Step Functions console's page of an execution."""
    region = execution.split(":")[3] if execution.count(":") >= 3 else ""
    return f"https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution}"
