"""Lambda: the limit on a function's environment, a Lambda context for handlers run in-process, and
handler modules loaded the way the Lambda runtime loads them.

- Environment variables: AWS refuses a function whose variables, measured as the JSON of the
  ``Variables`` map, exceed 4 KB ("The total size of all environment variables doesn't exceed 4 KB",
  Lambda's quotas). moto 5.2.5 accepts any size; :func:`install` makes its ``CreateFunction`` and
  ``UpdateFunctionConfiguration`` answer ``InvalidParameterValueException`` as AWS does, and
  :func:`check_environment_size` applies the same rule to a function that runs in-process.
- :class:`FakeLambdaContext`: the context object Lambda's Python runtime passes to a handler.
- :func:`load_handler`: ``<code dir>/app.py`` imported afresh, as a new sandbox would.
- :func:`run_in_process`: moto runs a function's code only in Docker, which these machines lack, so its
  Invoke fails; a test or scenario gives a function a handler in this process, and a synchronous Invoke of
  it (by the SDK or a state machine's task) calls that handler with the payload and a Lambda context and
  answers as Lambda does: the handler's result as the payload, or an unhandled exception as
  ``X-Amz-Function-Error: Unhandled`` with the Python runtime's ``errorMessage``, ``errorType``,
  ``requestId`` and ``stackTrace``
  (https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html,
  https://docs.aws.amazon.com/lambda/latest/dg/python-exceptions.html). The handler runs with this
  process's environment variables, not the function's.

State (:class:`InProcessFunctions`, the handlers given) is kept on moto's Lambda backend of the function's
account and Region.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Final
from urllib.parse import unquote

from aws_lambda_powertools.utilities.typing import LambdaContext
from moto.awslambda.exceptions import InvalidParameterValueException
from moto.awslambda.responses import LambdaResponse
from moto.awslambda.utils import get_backend
from moto.core.models import DEFAULT_ACCOUNT_ID

from local_aws import clock
from local_aws.core import LOCK, state_of

__all__ = [
    "ENVIRONMENT_MAX_BYTES",
    "EnvironmentTooLarge",
    "FakeLambdaContext",
    "Handler",
    "InProcessFunctions",
    "check_environment_size",
    "load_handler",
    "run_in_process",
]

ENVIRONMENT_MAX_BYTES: Final = 4 * 1024
"""Lambda's limit on a function's environment variables: the JSON of the Variables map, in bytes."""

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"


class EnvironmentTooLarge(ValueError):
    """A function's environment variables exceed Lambda's 4 KB; the message is AWS's."""

    def __init__(self, measured: str) -> None:
        self.measured = measured
        self.size = len(measured.encode())
        super().__init__(
            "Lambda was unable to configure your environment variables because the environment variables "
            f"you have provided exceeded the 4KB limit. String measured: {measured}"
        )


def check_environment_size(variables: Mapping[str, str]) -> None:
    """Raise :class:`EnvironmentTooLarge` when ``variables`` exceed what Lambda accepts."""
    measured = json.dumps(dict(variables), separators=(",", ":"), ensure_ascii=False)
    if len(measured.encode()) > ENVIRONMENT_MAX_BYTES:
        raise EnvironmentTooLarge(measured)


def _checked(operation: Callable[[LambdaResponse], Any]) -> Callable[[LambdaResponse], Any]:
    """A LambdaResponse method that first refuses an environment over the limit, as AWS does."""

    def method(self: LambdaResponse) -> Any:
        variables = (self.json_body.get("Environment") or {}).get("Variables") or {}
        try:
            check_environment_size(variables)
        except EnvironmentTooLarge as exc:
            raise InvalidParameterValueException(str(exc)) from None
        return operation(self)

    method.__name__ = operation.__name__
    method.__doc__ = operation.__doc__
    return method


Handler = Callable[[Any, "FakeLambdaContext"], Any]
"""A function's handler: (event, context) -> result, as the Lambda runtime calls it."""


@dataclass
class InProcessFunctions:
    """The functions of one account and Region that run in this process: function name -> handler."""

    handlers: dict[str, Handler] = field(default_factory=dict)


def run_in_process(function_name: str, region: str, handler: Handler, *, account_id: str = DEFAULT_ACCOUNT_ID) -> None:
    """From now on, a synchronous Invoke of the function ``function_name`` (which must exist, as in AWS)
    calls ``handler`` in this process instead of moto's Docker runner."""
    with LOCK:
        state_of(get_backend(account_id, region), InProcessFunctions).handlers[function_name] = handler


def _invoke_in_process(self: LambdaResponse, handler: Handler, function: Any) -> tuple[int, dict[str, str], str]:
    context = FakeLambdaContext(
        function.function_name,
        memory_limit_in_mb=function.memory_size,
        timeout_ms=function.timeout * 1000,
        region=self.region,
        account_id=self.current_account,
    )
    headers = {"content-type": "application/json", "x-amz-executed-version": "$LATEST"}
    try:
        event = json.loads(self.body) if self.body else {}
        with clock.ACTIVITY.working():
            result = handler(event, context)
        return 200, headers, json.dumps(result)
    except Exception as exc:  # noqa: BLE001 - Lambda reports any exception of the handler as the payload
        headers["x-amz-function-error"] = "Unhandled"
        error = {
            "errorMessage": str(exc),
            "errorType": type(exc).__name__,
            "requestId": context.aws_request_id,
            "stackTrace": traceback.format_tb(exc.__traceback__),
        }
        return 200, headers, json.dumps(error)


_moto_invoke: Final = LambdaResponse.invoke


def invoke(self: LambdaResponse) -> Any:
    """Invoke: a function given a handler in this process runs there when invoked synchronously; any other
    invocation goes to moto."""
    if self.headers.get("X-Amz-Invocation-Type", "RequestResponse") == "RequestResponse":
        function = self.backend.get_function(unquote(self.path.rsplit("/", 2)[-2]), self._get_param("qualifier"))
        with LOCK:
            handler = state_of(self.backend, InProcessFunctions).handlers.get(function.function_name)
        if handler is not None:
            return _invoke_in_process(self, handler, function)
    return _moto_invoke(self)


# moto's own methods, taken once when this module is imported, so that installing twice wraps once.
RESPONSES: Final[dict[str, Callable[..., object]]] = {
    "create_function": _checked(LambdaResponse.create_function),
    "update_function_configuration": _checked(LambdaResponse.update_function_configuration),
    "invoke": invoke,
}
"""What the emulator replaces on ``LambdaResponse``, by method name."""


class FakeLambdaContext(LambdaContext):
    """The attributes Lambda's Python runtime sets, plus a remaining-time clock that counts down;
    accepted wherever a handler is annotated with Powertools' LambdaContext."""

    def __init__(
        self,
        function_name: str = "test-function",
        *,
        memory_limit_in_mb: int = 256,
        timeout_ms: int = 60_000,
        aws_request_id: str | None = None,
        region: str = REGION,
        account_id: str = ACCOUNT_ID,
    ) -> None:
        self._function_name = function_name
        self._function_version = "$LATEST"
        self._invoked_function_arn = f"arn:aws:lambda:{region}:{account_id}:function:{function_name}"
        self._memory_limit_in_mb = memory_limit_in_mb
        self._aws_request_id = aws_request_id or str(uuid.uuid4())
        self._log_group_name = f"/aws/lambda/{function_name}"
        self._log_stream_name = f"2026/01/01/[$LATEST]{uuid.uuid4().hex}"
        self._tenant_id = None
        self._deadline = time.monotonic() + timeout_ms / 1000

    # Powertools declares it a staticmethod; callers see the same no-argument call either way.
    def get_remaining_time_in_millis(self) -> int:  # type: ignore[override]
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def load_handler(code_dir: Path, module_file: str = "app") -> ModuleType:
    """Import <code_dir>/<module_file>.py afresh, under a module name of its own.

    Every handler file is called app.py, so each gets the name ``functions_<folder>_app``; a new
    module object is made on every call, so module-level state never leaks between invocations.
    """
    path = code_dir / f"{module_file}.py"
    if not path.is_file():
        here = Path.cwd()
        shown = path.relative_to(here) if path.is_relative_to(here) else path
        raise FileNotFoundError(f"no handler {shown}")
    name = "functions_" + code_dir.name.replace("-", "_") + "_" + module_file
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module
