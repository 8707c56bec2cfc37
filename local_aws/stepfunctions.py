"""Step Functions: state machines run by moto's interpreter, where it differs from AWS patched to do what
AWS documents.

moto 5.2.5 runs a state machine's definition only when ``stepfunctions.execute_state_machine`` is on in
its config (otherwise an execution does nothing). :func:`run_state_machines` turns it on, as
``mock_aws(config=...)`` or ``POST /moto-api/config`` would, for every later ``mock_aws`` and for a
``ThreadedMotoServer`` in this process; :func:`local_aws.install` calls it. The interpreter
(``moto.stepfunctions.parser``, taken from LocalStack) then differs from AWS where a rollout state machine
relies on it; :data:`PATCHES` replaces, by name, what it does there:

- **Paths that name one node give that node.** A path of fields and indexes only
  (``$.Stacks[0].StackStatus``) identifies a single node and gives its value: moto answered
  ``["CREATE_COMPLETE"]`` for any path through an array index, so a Choice on a stack's status never
  matched and a ResultSelector kept a list
  (https://docs.aws.amazon.com/step-functions/latest/dg/amazon-states-language-paths.html#amazon-states-language-reference-paths).
  Paths with wildcards, slices, filters or unions are left as moto evaluates them.
- **A task's result and an execution's output are JSON.** An ``aws-sdk`` task gives the API's response as
  JSON, timestamps as ISO-8601 text (``"2013-08-23T01:02:15.422Z"``); moto kept Python datetimes, which a
  Choice cannot compare and which made DescribeExecution fail with a server error. DescribeExecution's
  ``output`` is the JSON text of the output (``"CREATE_COMPLETE"`` with its quotes; moto dropped them)
  (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-input-output-filtering.html,
  https://docs.aws.amazon.com/step-functions/latest/apireference/API_DescribeExecution.html).
- **Errors of an aws-sdk task are named ``<Service>.<Error>Exception``**, with the service in Pascal case
  (``CloudFormation.ChangeSetNotFoundException``; an error the service does not model, such as
  CloudFormation's ValidationError, is its SDK's ``CloudFormation.CloudFormationException``), so that a
  Retry or Catch on them matches. moto named them after the lower-case service
  (``cloudformation.cloudformationException``)
  (https://docs.aws.amazon.com/step-functions/latest/dg/supported-services-awssdk.html#use-awssdk-integ).
- **States.ALL does not catch States.Runtime or States.DataLimitExceeded**; moto's matched every error
  (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html#error-handling-error-representation).
- **A task acts as a role, in that role's account.** With ``Credentials.RoleArn`` the task assumes that
  role; without, it acts as the state machine's execution role. moto called every service with one fixed
  key, in the default account, whatever the role
  (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-access-cross-acct-resources.html). The
  calls are served by moto in this process, so a ``ThreadedMotoServer`` on any port runs them too (moto
  sent them to ``localhost:5000`` outside ``mock_aws``).
- **The context object's ``$$.State.EnteredTime`` is the emulator's clock**, as the Wait states' time is
  (https://docs.aws.amazon.com/step-functions/latest/dg/input-output-contextobject.html).
- **Wait states and Retry intervals run on the emulator's clock** (:mod:`local_aws.clock`): a Wait of
  ``Seconds``, ``SecondsPath``, ``Timestamp`` or ``TimestampPath`` ends when the clock passes its end,
  whether real time gets there or a scenario advances the clock; a Retry waits its interval the same
  way. moto slept in real time, so a 30-minute bake held a test for 30 minutes
  (https://docs.aws.amazon.com/step-functions/latest/dg/state-wait.html,
  https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html#error-handling-retrying-after-an-error).

Left as moto does it, and checked by the tests: Map's ``MaxConcurrency`` (items run at most that many at
a time), ``ItemsPath`` and ``ItemSelector``; ``States.TaskFailed`` matching any task error.

No state of its own: assumed-role sessions are cached on moto's STS backend (moto's reset forgets them).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timezone
from functools import cache
from types import ModuleType, SimpleNamespace
from typing import Any, Final

import boto3
import botocore.session
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import UnknownServiceError
from jsonpath_ng.ext.parser import parse as parse_path
from moto.core.botocore_stubber import BotocoreStubber
from moto.core.config import default_user_config
from moto.core.models import botocore_stubber as moto_stubber
from moto.core.responses import ActionResult
from moto.stepfunctions.exceptions import InvalidToken, ValidationException
from moto.stepfunctions.parser.api import ExecutionStatus
from moto.stepfunctions.parser.asl.component.common.error_name import error_equals_decl
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEventException
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import StatesErrorNameType
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.common.string import string_expression
from moto.stepfunctions.parser.asl.component.intrinsic.argument import argument
from moto.stepfunctions.parser.asl.component.state import state as state_module
from moto.stepfunctions.parser.asl.component.state.choice.comparison.operator.implementations import (
    boolean_equals,
    numeric,
    string_operators,
    timestamp_operators,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_map.item_reader.eval import (
    resource_eval_s3 as item_reader_s3,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.resource_eval import (
    resource_eval_s3 as result_writer_s3,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
from moto.stepfunctions.parser.asl.component.state.exec.state_task.credentials import StateCredentials
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_aws_sdk,
    state_task_service_batch,
    state_task_service_dynamodb,
    state_task_service_ecs,
    state_task_service_events,
    state_task_service_glue,
    state_task_service_sfn,
    state_task_service_sns,
    state_task_service_sqs,
    state_task_service_unsupported,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
    StateTaskServiceAwsSdk,
)
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.timestamp import Timestamp
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction
from moto.stepfunctions.parser.asl.eval import states
from moto.stepfunctions.parser.asl.utils import boto_client, json_path
from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication
from moto.stepfunctions.responses import StepFunctionResponse
from moto.sts.models import STSBackend, sts_backends
from moto.utilities.utils import get_partition

from local_aws import clock
from local_aws.core import LOCK, state_of

__all__ = ["PATCHES", "TASK_SESSION_NAME", "run_state_machines", "task_client"]

TASK_SESSION_NAME: Final = "StepFunctions"
"""The session name of the role sessions tasks act in (it shows in the assumed-role ARN)."""


def run_state_machines() -> None:
    """Have moto run state machine definitions from now on, in ``mock_aws`` and in a moto server of this
    process (what ``mock_aws(config={"stepfunctions": {"execute_state_machine": True}})`` does for one
    block, and ``POST /moto-api/config`` for a server). The setting is changed in place, so a ``mock_aws``
    block that ends puts back a configuration that still has it."""
    with LOCK:
        default_user_config.setdefault("stepfunctions", {})["execute_state_machine"] = True


# --- Paths ---------------------------------------------------------------------------------------------

# A reference path: fields by dot or bracket notation and array indexes, nothing else.
_DEFINITE_PATH: Final = re.compile(r"\$(?:\.[^.\[\]*@?,:()'\"\s]+|\['[^']*'\]|\[\"[^\"]*\"\]|\[\d+\])*")
_moto_extract_json: Final = json_path.extract_json


def extract_json(path: str, data: Any) -> Any:
    """The value ``path`` selects in ``data``: the node itself for a path that can name one node only
    (fields and indexes), else as moto evaluates it."""
    if not _DEFINITE_PATH.fullmatch(path):
        return _moto_extract_json(path, data)
    matches = parse_path(path).find(data)
    if not matches:
        raise json_path.NoSuchJsonPathError(json_path=path, data=data)
    return matches[0].value


# Every module of the interpreter that imported moto's extract_json by name.
_PATH_READERS: Final[tuple[ModuleType, ...]] = (
    json_path,
    string_expression,
    argument,
    boolean_equals,
    numeric,
    string_operators,
    timestamp_operators,
    states,
)


# --- aws-sdk tasks: results and errors -----------------------------------------------------------------


def _json_value(value: Any) -> Any:
    """A timestamp as Step Functions writes it in a task's result: ISO-8601 UTC with milliseconds."""
    if isinstance(value, datetime):
        moment = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def as_json(value: Any) -> Any:
    """``value`` as the JSON a state passes on."""
    return json.loads(json.dumps(value, default=_json_value))


_moto_eval_service_task: Final = StateTaskServiceAwsSdk._eval_service_task


def eval_service_task(self: StateTaskServiceAwsSdk, env: Any, *args: Any, **kwargs: Any) -> None:
    """moto's aws-sdk call, its response then turned into JSON."""
    _moto_eval_service_task(self, env, *args, **kwargs)
    env.stack[-1] = as_json(env.stack[-1])


_moto_reflect_execution_status: Final[Callable[[Any], None]] = (
    BaseExecutionWorkerCommunication._reflect_execution_status
)


def reflect_execution_status(self: Any) -> None:
    """moto's record of how an execution ended, its output kept as JSON text: moto's DescribeExecution
    passes a string output through as it is, so a state machine whose output is a string answered
    ``CREATE_COMPLETE`` where AWS answers ``"CREATE_COMPLETE"``."""
    _moto_reflect_execution_status(self)
    if self.execution.exec_status == ExecutionStatus.SUCCEEDED:
        self.execution.output = json.dumps(as_json(self.execution.output))


# Step Functions' names where they are not the service id (moto's own table, from AWS's answers).
_ERROR_SERVICE_NAMES: Final = {"dynamodb": "DynamoDb", "sfn": "Sfn"}


@cache
def service_error_name(service: str) -> str:
    """The service part of an aws-sdk error name: ``CloudFormation`` for ``cloudformation``."""
    if service.lower() in _ERROR_SERVICE_NAMES:
        return _ERROR_SERVICE_NAMES[service.lower()]
    try:
        model = botocore.session.get_session().get_service_model(service)
    except UnknownServiceError:
        return service  # as moto names it; the call itself fails for an unknown service anyway
    return str(model.service_id).replace(" ", "")


_moto_error_equals: Final = error_equals_decl.ErrorEqualsDecl._eval_body
_UNCATCHABLE_BY_ALL: Final = frozenset(
    {StatesErrorNameType.StatesRuntime, StatesErrorNameType.StatesStatesDataLimitExceeded}
)


def error_equals(self: error_equals_decl.ErrorEqualsDecl, env: Any) -> None:
    """moto's ErrorEquals match, except that States.ALL leaves States.Runtime and States.DataLimitExceeded."""
    error_name = env.stack[-1]
    uncatchable = isinstance(error_name, StatesErrorName) and error_name.typ in _UNCATCHABLE_BY_ALL
    if uncatchable and self._STATE_ALL_ERROR in self.error_names:
        env.stack.pop()
        env.stack.append(error_name in [name for name in self.error_names if name != self._STATE_ALL_ERROR])
        return
    _moto_error_equals(self, env)


# --- Who a task acts as --------------------------------------------------------------------------------


@dataclass
class TaskSessions:
    """The sessions tasks act in, kept on the STS backend of the role's account (moto's reset forgets them):
    role ARN -> (access key id, secret, session token), and the clients made with them."""

    keys: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    clients: dict[tuple[str, str, str], BaseClient] = field(default_factory=dict)


def _sessions(role_arn: str, region: str) -> tuple[TaskSessions, STSBackend]:
    parts = role_arn.split(":")
    if len(parts) < 6 or not parts[4].isdigit():
        raise ValueError(f"not a role ARN: {role_arn!r}")
    backend = sts_backends[parts[4]][get_partition(region)]
    return state_of(backend, TaskSessions), backend


def role_session(role_arn: str, region: str) -> tuple[str, str, str]:
    """Credentials of a session of ``role_arn``, assumed through moto's STS (once per role)."""
    with LOCK:
        sessions, backend = _sessions(role_arn, region)
        if role_arn not in sessions.keys:
            role = backend.assume_role(
                region_name=region,
                role_session_name=TASK_SESSION_NAME,
                role_arn=role_arn,
                policy="",
                duration=43200,
                external_id="",
            )
            sessions.keys[role_arn] = (role.access_key_id, role.secret_access_key, role.session_token)
        return sessions.keys[role_arn]


# Answers a task client's requests from moto's backends in this process when mock_aws is not active (a
# threaded server). Under mock_aws, moto's own stubber (registered on every client made in the process)
# answers them: botocore's before-send runs every handler, so answering twice would run each request twice
# (a Lambda task's function invoked twice, a change set executed twice).
_STUBBER: Final = BotocoreStubber()
_STUBBER.enabled = True


def _in_process(event_name: str, request: Any, **kwargs: Any) -> Any:
    if moto_stubber.enabled:
        return None
    return _STUBBER(event_name, request, **kwargs)


_IN_PROCESS: Final = _in_process
# One session for every task client, so that service models load once (made lazily: boto3 reads the
# environment when a session is made).
_BOTO: list[boto3.session.Session] = []
_CLIENTS_LOCK: Final = threading.Lock()


def task_client(region: str, service: str, state_credentials: StateCredentials | None = None) -> BaseClient:
    """The client a task calls ``service`` with: as the task's role (Credentials.RoleArn, else the execution
    role), answered by moto in this process. Otherwise configured as moto's own (no retries, no parameter
    validation)."""
    if state_credentials is None or not state_credentials.role_arn:
        raise ValueError("a task acts as a role: the state machine's execution role or its Credentials.RoleArn")
    role_arn = state_credentials.role_arn
    key_id, secret, token = role_session(role_arn, region)
    with _CLIENTS_LOCK:  # boto3 sessions are not thread-safe; Map iterations make clients at once
        sessions, _ = _sessions(role_arn, region)
        client = sessions.clients.get((role_arn, service, region))
        if client is None:
            if not _BOTO:
                _BOTO.append(boto3.session.Session())
            client = _BOTO[0].client(
                service,  # type: ignore[call-overload]
                region_name=region,
                aws_access_key_id=key_id,
                aws_secret_access_key=secret,
                aws_session_token=token,
                config=Config(
                    parameter_validation=False,
                    retries={"max_attempts": 0, "total_max_attempts": 1},
                    ignore_configured_endpoint_urls=True,  # type: ignore[call-arg]  # botocore has it; its stubs not
                ),
            )
            client.meta.events.register("before-send", _IN_PROCESS)
            sessions.clients[(role_arn, service, region)] = client
        return client


# Every module of the interpreter that imported moto's boto_client_for by name.
_CLIENT_MAKERS: Final[tuple[ModuleType, ...]] = (
    boto_client,
    state_task_service_aws_sdk,
    lambda_eval_utils,
    state_task_service_batch,
    state_task_service_dynamodb,
    state_task_service_ecs,
    state_task_service_events,
    state_task_service_glue,
    state_task_service_sfn,
    state_task_service_sns,
    state_task_service_sqs,
    state_task_service_unsupported,
    item_reader_s3,
    result_writer_s3,
)


# --- Time ----------------------------------------------------------------------------------------------


def wait_interval(self: WaitFunction, env: Any, wait_seconds: int) -> None:
    """A Wait state: until the emulator's clock passes its end, or the execution stops."""
    clock.sleep(wait_seconds, stopped=lambda: not env.is_running(), pause=env.program_state_event.wait)


def timestamp_wait_seconds(self: Timestamp, env: Any) -> int:
    """Seconds from the emulator's now to a Wait state's Timestamp (UTC); moto measured from the machine's
    local time."""
    self.string.eval(env=env)
    text: str = env.stack.pop()
    moment = self._from_timestamp_string(timestamp=text)
    if moment is None:
        raise FailureEventException(self._create_failure_event(env, text))
    return int((moment.replace(tzinfo=UTC) - clock.now()).total_seconds())


# The ``time`` a Retry sleeps its interval with: the emulator's clock.
_RETRY_TIME: Final = SimpleNamespace(sleep=lambda seconds: clock.sleep(seconds))


class _ClockDatetime(datetime):
    """``datetime`` whose ``now`` is the emulator's clock."""

    @classmethod
    def now(cls, tz: Any = None) -> Any:
        moment = clock.now()
        return moment if tz is None else moment.astimezone(tz)


# The ``datetime`` module a state reads the context object's State.EnteredTime from: the emulator's clock.
_STATE_DATETIME: Final = SimpleNamespace(datetime=_ClockDatetime, timezone=timezone)


# --- GetExecutionHistory ---------------------------------------------------------------------------------

# maxResults: 100 by default (also for 0), at most 1,000
# (https://docs.aws.amazon.com/step-functions/latest/apireference/API_GetExecutionHistory.html)
HISTORY_PAGE_DEFAULT: Final = 100
HISTORY_PAGE_MAX: Final = 1_000


def get_execution_history(self: StepFunctionResponse) -> ActionResult:
    """GetExecutionHistory a page at a time, oldest first or, with ``reverseOrder``, newest first, as AWS
    documents it; moto answered every event, oldest first, whatever ``maxResults``, ``reverseOrder`` or
    ``nextToken`` asked."""
    events = list(self.stepfunction_backend.get_execution_history(self._get_param("executionArn"))["events"])
    size = self._get_param("maxResults") or HISTORY_PAGE_DEFAULT
    if not isinstance(size, int) or not 0 <= size <= HISTORY_PAGE_MAX:
        raise ValidationException(f"maxResults must be from 0 to {HISTORY_PAGE_MAX}")
    token = self._get_param("nextToken")
    if token is not None and not (isinstance(token, str) and token.isdigit() and int(token) <= len(events)):
        raise InvalidToken(str(token)[:80])
    if self._get_param("reverseOrder"):
        events.reverse()
    start = int(token or 0)
    answer: dict[str, Any] = {"events": events[start : start + size]}
    if start + size < len(events):
        answer["nextToken"] = str(start + size)
    return ActionResult(answer)


RESPONSES: Final[dict[str, Callable[..., object]]] = {"get_execution_history": get_execution_history}
"""What the emulator replaces on ``StepFunctionResponse``, by method name."""


# --- What install() sets -------------------------------------------------------------------------------

PATCHES: Final[tuple[tuple[object, Mapping[str, object]], ...]] = (
    *((module, {"extract_json": extract_json}) for module in _PATH_READERS),
    *((module, {"boto_client_for": task_client}) for module in _CLIENT_MAKERS),
    (
        StateTaskServiceAwsSdk,
        {
            "_eval_service_task": eval_service_task,
            "_normalise_service_error_name": staticmethod(service_error_name),
        },
    ),
    (BaseExecutionWorkerCommunication, {"_reflect_execution_status": reflect_execution_status}),
    (error_equals_decl.ErrorEqualsDecl, {"_eval_body": error_equals}),
    (WaitFunction, {"_wait_interval": wait_interval}),
    (Timestamp, {"_get_wait_seconds": timestamp_wait_seconds}),
    (retrier_decl, {"time": _RETRY_TIME}),
    (state_module, {"datetime": _STATE_DATETIME}),
)
"""What the emulator replaces in moto's Step Functions interpreter: (module or class, name -> value)."""
