"""The local AWS emulator: a moto server on a free localhost port, extended by local_aws, in this process.

Running the server in the rehearsal's own process is what lets local_aws's operations (job results,
drift, GetPipelineState) be served over HTTP and lets a scenario inject drift between two runs. Every
Region is served by the same endpoint; boto3 finds it through ``AWS_ENDPOINT_URL`` (``localhost``, not
``127.0.0.1``, or S3 would take the address for a bucket name).
"""

from __future__ import annotations

import logging
import os
import urllib.request
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import boto3
from botocore.config import Config
from moto import settings
from moto.core.authorization import ActionAuthenticatorMixin
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.server import ThreadedMotoServer

import local_aws
from local_aws.iam import AccessKey

# What a process needs to reach the emulator instead of AWS. Credentials are replaced per principal.
_CLEARED = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_DEFAULT_PROFILE",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
)


# moto accepts any key while IAM is not enforced.
UNCHECKED = AccessKey("testing", "testing")


class Emulator:
    """A moto server with local_aws's operations. Use as a context manager, or start() and stop()."""

    def __init__(self, *, account_id: str = DEFAULT_ACCOUNT_ID, port: int = 0) -> None:
        self.account_id = account_id
        self._requested_port = port
        self._server: ThreadedMotoServer | None = None
        self.port = 0
        self._saved_auth: tuple[float, int] | None = None
        # One session (its service models loaded once) and one client per service, Region and principal.
        self._session: boto3.session.Session | None = None
        self._clients: dict[tuple[str, str, str, int], Any] = {}

    @property
    def endpoint(self) -> str:
        if not self.port:
            raise RuntimeError("the emulator is not running")
        return f"http://localhost:{self.port}"

    def start(self) -> Emulator:
        local_aws.install()
        # The server's request log and moto's notes on resources its CloudFormation does not model
        # (the regional store's bucket policy) would drown the rehearsal's own output.
        logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
        logging.getLogger("moto").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", message="Tried to parse", category=UserWarning)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=self._requested_port, verbose=False)
        server.start()
        self._server = server
        self.port = server.get_host_and_port()[1]
        return self

    def stop(self) -> None:
        self.enforce_iam(False)
        if self._server is not None:
            self._server.stop()
            self._server = None
        self.port = 0

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget every resource in every Region, and every local_aws record (kept on moto's backends)."""
        self.enforce_iam(False)
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST", data=b"")  # noqa: S310
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (always http://localhost)
            response.read()

    def enforce_iam(self, on: bool) -> None:
        """From now on, check every request's credentials and IAM policies (moto: action level outside S3,
        resource level for S3), or stop checking."""
        if on:
            if self._saved_auth is None:
                self._saved_auth = (settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count)
            settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
            ActionAuthenticatorMixin.request_count = 0
        elif self._saved_auth is not None:
            settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count = self._saved_auth
            self._saved_auth = None

    @property
    def iam_enforced(self) -> bool:
        return self._saved_auth is not None

    def environment(self) -> dict[str, str]:
        """Variables that point boto3 (and the AWS CLI, SAM's containers...) at the emulator."""
        return {"AWS_ENDPOINT_URL": self.endpoint, **UNCHECKED.as_environment()}

    def client(self, service: str, region: str, credentials: AccessKey = UNCHECKED) -> Any:
        key = (service, region, credentials.access_key_id, self.port)
        if key not in self._clients:
            self._clients[key] = self._new_client(service, region, credentials)
        return self._clients[key]

    def _new_client(self, service: str, region: str, credentials: AccessKey) -> Any:
        if self._session is None:
            self._session = boto3.session.Session()
        config = Config(retries={"mode": "standard", "max_attempts": 3}, signature_version="s3v4")
        return self._session.client(
            service,  # type: ignore[call-overload]
            region_name=region,
            endpoint_url=self.endpoint,
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key,
            aws_session_token=credentials.session_token or None,
            config=config,
        )

    @contextmanager
    def process_environment(self, extra: Mapping[str, str] | None = None) -> Iterator[None]:
        """Point this process's AWS SDK at the emulator (and set ``extra``) for the duration."""
        values = {**self.environment(), **(extra or {})}
        # Service-specific endpoints (AWS_ENDPOINT_URL_S3...) would win over the emulator's.
        cleared = [*_CLEARED, *(name for name in os.environ if name.startswith("AWS_ENDPOINT_URL_"))]
        saved = {name: os.environ.get(name) for name in (*values, *cleared)}
        for name in cleared:
            os.environ.pop(name, None)
        os.environ.update(values)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
