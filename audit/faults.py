"""Faults: throttling, 5xx answers, connection errors and read timeouts injected on each AWS call a
function makes in its working scenario, the job result calls included.

A fault that passes is retried and the scenario still succeeds. A fault that lasts ends in exactly one
clear job failure (or, for stage-revert, an error raised so that Lambda retries the event and then
keeps it in the dead-letter queue), never later than the function's deadline: time is counted on a
virtual clock (each retry's back-off, and each timeout at its full length).

A step of the rollout state machine (deploy-target) is judged by what the state machine does with its
answer: a fault that passes is survived, or raised (the state machine's Catch ends the wave and returns
the targets), never answered with a state the target is not in (DONE, UNCHANGED or RETURNED for a target
that was not deployed or returned) and never followed by a second execution of a change set; a fault
that lasts ends in an error raised or a FAILED answer naming the target, never in a success.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import botocore.endpoint
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
from moto.core.botocore_stubber import BotocoreStubber, MockRawResponse

import local_aws
from audit import sandbox
from audit.fuzz import PYTHON_ERROR
from audit.scenarios import SCENARIOS, Scenario, run_steps
from audit.table import Row
from local_aws import FakeLambdaContext
from release_pipeline import clients, jobs
from tests.integration import test_least_privilege as lp
from tests.support.solution import solution_template

KINDS = ("throttling", "5xx", "connection", "read timeout")
_PROTOCOL = {
    "cloudformation": "query",
    "sns": "query",
    "sts": "query",
    "s3": "rest-xml",
    "codepipeline": "json",
    "ssm": "json",
    "sfn": "json",
}
_CONNECT_TIMEOUT: float = getattr(clients._CONFIG, "connect_timeout", 60)
_READ_TIMEOUT: float = getattr(clients._CONFIG, "read_timeout", 60)


class VirtualClock:
    """Stands for time.sleep in botocore's retries: nothing waits, every second is counted."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def sleep(self, seconds: float) -> None:
        self.seconds += seconds

    def __getattr__(self, name: str) -> Any:
        import time

        return getattr(time, name)


def _headers(values: dict[str, str]) -> HTTPHeaders:
    headers = HTTPHeaders()
    for name, value in values.items():
        headers[name] = value
    return headers


def _error_response(service: str, kind: str, url: str) -> AWSResponse:
    throttled = kind == "throttling"
    protocol = _PROTOCOL.get(service, "json")
    if protocol == "json":
        code = "ThrottlingException" if throttled else "InternalFailure"
        body = json.dumps({"__type": code, "message": "injected"}).encode()
        return AWSResponse(
            url, 400 if throttled else 500, _headers({"x-amzn-RequestId": "audit"}), MockRawResponse(body)
        )
    if protocol == "query":
        code = "Throttling" if throttled else "InternalFailure"
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>injected</Message></Error>"
            "<RequestId>audit</RequestId></ErrorResponse>"
        ).encode()
        return AWSResponse(url, 400 if throttled else 500, _headers({}), MockRawResponse(body))
    code = "SlowDown" if throttled else "InternalError"
    body = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
    return AWSResponse(url, 503 if throttled else 500, _headers({}), MockRawResponse(body))


@contextmanager
def injected(targets: list[tuple[str, str]], kind: str, attempts: int | None, clock: VirtualClock) -> Iterator[None]:
    """Fail ``attempts`` attempts (every one when None) of each (service id, operation) in ``targets``.

    The fault stands in front of the emulator: a faulted request never reaches it, as a throttled or
    unanswered request never reaches AWS's service."""
    failed: dict[tuple[str, str], int] = {}
    emulator = BotocoreStubber.__call__

    def answer(stubber: BotocoreStubber, event_name: str, request: Any, **kwargs: Any) -> Any:
        service, operation = event_name.split(".")[1:]
        key = (service, operation)
        if not stubber.enabled or key not in targets or (attempts is not None and failed.get(key, 0) >= attempts):
            return emulator(stubber, event_name, request, **kwargs)
        failed[key] = failed.get(key, 0) + 1
        if kind == "connection":
            clock.seconds += _CONNECT_TIMEOUT
            raise EndpointConnectionError(endpoint_url=request.url)
        if kind == "read timeout":
            clock.seconds += _READ_TIMEOUT
            raise ReadTimeoutError(endpoint_url=request.url)
        return _error_response(service, kind, request.url)

    random.seed(0)  # botocore's back-off jitter: the same delays on every run
    endpoint: Any = botocore.endpoint
    original = endpoint.time
    endpoint.time = clock
    stubber: Any = BotocoreStubber
    stubber.__call__ = answer
    try:
        yield
    finally:
        stubber.__call__ = emulator
        endpoint.time = original


def _has_dead_letter_queue(logical_id: str) -> bool:
    properties = solution_template()["Resources"][logical_id]["Properties"]
    return bool(properties.get("DeadLetterQueue") or properties.get("EventInvokeConfig", {}).get("DestinationConfig"))


def inject(function: str) -> Row:
    target = sandbox.functions()[function]
    row = Row(f"faults {function}", "faults on each AWS call, retried or one clear failure")
    is_job = function in sandbox.job_functions()
    is_step = function in sandbox.state_machine_functions()
    deadline = target.timeout_s - (jobs.TIMEOUT_GRACE_SECONDS if is_job else 0)
    if not is_job and not is_step and not _has_dead_letter_queue(target.logical_id):
        row.breach("the function raises on a lasting fault, but has no dead-letter queue")
    # the calls the working scenario makes, in order
    with sandbox.emulator():
        scenario = SCENARIOS[function](lp.Accounts())
        with sandbox.recording() as log:
            _invoke(target, scenario)
    operations = list(dict.fromkeys(log.calls))
    cases: list[tuple[list[tuple[str, str]], str, int | None]] = []
    for index, operation in enumerate(operations):
        cases.append(([operation], KINDS[index % len(KINDS)], None))  # lasting
        cases.append(([operation], KINDS[(index + 1) % len(KINDS)], 1))  # passing
    if is_job:
        both = [("codepipeline", "PutJobSuccessResult"), ("codepipeline", "PutJobFailureResult")]
        cases += [(both, kind, None) for kind in KINDS]
        # the success report, lasting, with every kind of fault (a timeout is not a ClientError)
        success = ("codepipeline", "PutJobSuccessResult")
        cases += [([success], kind, None) for kind in KINDS if (success, kind, None) not in _lasting(cases)]
    longest = 0.0
    outcomes = {"failed": 0, "survived": 0, "raised once": 0}
    for targets, kind, attempts in cases:
        row.cases += 1
        described = f"{kind} on {'+'.join(op for _, op in targets)} ({'lasting' if attempts is None else 'once'})"
        clock = VirtualClock()
        with sandbox.emulator():
            accounts = lp.Accounts()
            scenario = SCENARIOS[function](accounts)
            with injected(targets, kind, attempts, clock):
                raised = _invoke(target, scenario)
            longest = max(longest, clock.seconds)
            if clock.seconds > deadline:
                row.breach(f"{described}: {clock.seconds:.0f} s of retries, past the {deadline} s deadline")
            if is_step:
                _judge_step(row, described, scenario, accounts, raised, attempts is None)
                outcomes["raised once"] += attempts is not None and raised is not None
            else:
                _judge(row, described, function, is_job, scenario, accounts, raised, attempts is None, len(targets) > 1)
            if attempts is None:
                ended = local_aws.job_results(scenario.event["CodePipeline.job"]["id"]) if is_job else []
                failed = (
                    raised is not None
                    or any(r.accepted and r.status == "Failed" for r in ended)
                    or any(a.get("State") == "FAILED" for a in scenario.answers)
                )
                outcomes["failed"] += failed
                outcomes["survived"] += not failed
    row.figure = (
        f"{len(operations)} operations: {outcomes['failed']} lasting faults failed clearly, "
        f"{outcomes['survived']} survived; longest {longest:.0f} s of {deadline} s"
    )
    if outcomes["raised once"]:
        row.figure += f"; {outcomes['raised once']} passing faults raised to the state machine's Catch"
    return row


def _lasting(cases: list[tuple[list[tuple[str, str]], str, int | None]]) -> set[tuple[tuple[str, str], str, None]]:
    return {(targets[0], kind, None) for targets, kind, attempts in cases if len(targets) == 1 and attempts is None}


def _invoke(target: sandbox.Function, scenario: Scenario) -> BaseException | None:
    sandbox.set_environment(scenario.environment)
    context = FakeLambdaContext(target.folder, memory_limit_in_mb=target.memory_mb, timeout_ms=target.timeout_s * 1000)
    try:
        if scenario.steps:
            run_steps(scenario, lambda event: target.handler(event, context))
        else:
            target.handler(copy.deepcopy(scenario.event), context)
    except Exception as error:  # noqa: BLE001 (whatever escapes the handler is judged)
        return error
    return None


def _judge_step(
    row: Row, described: str, scenario: Scenario, accounts: lp.Accounts, raised: BaseException | None, lasting: bool
) -> None:
    """A state machine's step (see the module's docstring): every answer given is the expected one or a
    FAILED naming its target; no change set ran twice; a passing fault is survived or raised, a lasting
    one ends in an error or a FAILED answer."""
    failed = False
    for answer, (state, key) in zip(scenario.answers, scenario.expected, strict=False):
        if not isinstance(answer, dict) or answer.get("Key") != key:
            row.breach(f"{described}: an answer that does not name its target {key}: {str(answer)[:160]}")
            return
        if answer.get("State") == "FAILED" and state != "FAILED":
            failed = True
            if lasting:
                continue
            row.breach(f"{described}: a fault that passed was answered FAILED: {answer.get('Detail')}")
        elif answer.get("State") != state:
            row.breach(f"{described}: answered {answer.get('State')} for {key}, where {state} was due")
    twice = {key: count for key, count in scenario.executions(accounts).items() if count > 1}
    if twice:
        row.breach(f"{described}: a change set executed more than once: {twice}")
    if raised is not None or failed:
        if isinstance(raised, (KeyError, TypeError, AttributeError, IndexError)):
            row.breach(f"{described}: unclear error raised: {type(raised).__name__}: {str(raised)[:160]}")
        return
    if lasting:
        row.breach(f"{described}: a lasting fault ended neither in an error nor in a FAILED answer")
    elif not scenario.succeeded(accounts):
        row.breach(f"{described}: a fault that passed was not survived")


def _judge(
    row: Row,
    described: str,
    function: str,
    is_job: bool,
    scenario: Any,
    accounts: lp.Accounts,
    raised: BaseException | None,
    lasting: bool,
    no_result_call: bool,
) -> None:
    if not lasting:
        if raised is not None or not scenario.succeeded(accounts):
            outcome = type(raised).__name__ if raised else "no success"
            row.breach(f"{described}: a fault that passed was not survived ({outcome})")
        return
    if not is_job:
        if raised is None and not scenario.succeeded(accounts):
            row.breach(f"{described}: neither done nor raised for a retry (the dead-letter queue would never see it)")
        return
    results = local_aws.job_results(scenario.event["CodePipeline.job"]["id"])
    accepted = [r for r in results if r.accepted]
    if no_result_call:
        # nothing can be reported: the handler must raise, so that Lambda invokes it again
        if raised is None:
            row.breach(f"{described}: no result could be sent, yet the handler returned quietly")
        return
    if raised is not None:
        row.breach(f"{described}: {type(raised).__name__} escaped the handler")
    if len(accepted) != 1:
        row.breach(f"{described}: {len(accepted)} job results")
        return
    if accepted[0].status == "Succeeded":
        if not scenario.succeeded(accounts):
            row.breach(f"{described}: reported success without doing the work")
        return
    message = (accepted[0].failure_details or {}).get("message", "")
    if PYTHON_ERROR.match(message):
        row.breach(f"{described}: unclear failure: {message[:160]}")
