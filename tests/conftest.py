"""Fixtures every test gets: no real AWS settings, fake credentials, moto's missing operations."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto import mock_aws

from tests.support import moto_ext
from tests.support.lambda_context import FakeLambdaContext

moto_ext.install()

_CLEARED_PREFIXES = ("AWS_",)
_FAKE_SETTINGS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Remove every AWS_* setting (profiles, endpoints, credentials), set fake credentials and
    us-east-1, point the config and credentials files at nothing, and reset moto_ext's state."""
    for name in list(os.environ):
        if name.startswith(_CLEARED_PREFIXES):
            monkeypatch.delenv(name)
    for name, value in _FAKE_SETTINGS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    moto_ext.reset()
    yield
    moto_ext.reset()


@pytest.fixture
def aws(aws_environment: None) -> Iterator[None]:
    """Run the test inside moto's mock_aws (every service, in-process)."""
    with mock_aws():
        yield


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    """A Lambda context usable with Powertools Logger.inject_lambda_context."""
    return FakeLambdaContext("test-function")
