"""A Lambda context for tests, accepted wherever a handler is annotated with Powertools' LambdaContext."""

from __future__ import annotations

import time
import uuid

from aws_lambda_powertools.utilities.typing import LambdaContext

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"


class FakeLambdaContext(LambdaContext):
    """The attributes Lambda's Python runtime sets, plus a remaining-time clock that counts down."""

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
