"""Lambda: the limit on a function's environment, a Lambda context for handlers run in-process, and
handler modules loaded the way the Lambda runtime loads them.

- Environment variables: AWS refuses a function whose variables, measured as the JSON of the
  ``Variables`` map, exceed 4 KB ("The total size of all environment variables doesn't exceed 4 KB",
  Lambda's quotas). moto 5.2.5 accepts any size; :func:`install` makes its ``CreateFunction`` and
  ``UpdateFunctionConfiguration`` answer ``InvalidParameterValueException`` as AWS does, and
  :func:`check_environment_size` applies the same rule to a function that runs in-process.
- :class:`FakeLambdaContext`: the context object Lambda's Python runtime passes to a handler.
- :func:`load_handler`: ``<code dir>/app.py`` imported afresh, as a new sandbox would.

No state.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, Final

from aws_lambda_powertools.utilities.typing import LambdaContext
from moto.awslambda.exceptions import InvalidParameterValueException
from moto.awslambda.responses import LambdaResponse

__all__ = [
    "ENVIRONMENT_MAX_BYTES",
    "EnvironmentTooLarge",
    "FakeLambdaContext",
    "check_environment_size",
    "load_handler",
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


# moto's own methods, taken once when this module is imported, so that installing twice wraps once.
RESPONSES: Final[dict[str, Callable[..., object]]] = {
    "create_function": _checked(LambdaResponse.create_function),
    "update_function_configuration": _checked(LambdaResponse.update_function_configuration),
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
