"""The clients reach the local emulator only under sam local invoke, never in Lambda."""

from __future__ import annotations

import pytest

from release_pipeline import clients


@pytest.fixture(autouse=True)
def fresh_session() -> None:
    clients._session.cache_clear()


def test_sam_local_with_an_endpoint_uses_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SAM_LOCAL", "true")
    monkeypatch.setenv("LOCAL_ENDPOINT_URL", "http://localhost:5000")

    assert clients.cloudformation("us-east-1").meta.endpoint_url == "http://localhost:5000"


@pytest.mark.parametrize(
    "environment",
    [
        {"LOCAL_ENDPOINT_URL": "http://localhost:5000"},  # in Lambda: AWS_SAM_LOCAL is never set
        {"AWS_SAM_LOCAL": "true", "LOCAL_ENDPOINT_URL": ""},  # the template's empty default
        {"AWS_SAM_LOCAL": "false", "LOCAL_ENDPOINT_URL": "http://localhost:5000"},
    ],
)
def test_otherwise_the_regional_aws_endpoint_is_used(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str]
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    assert clients.cloudformation("eu-west-1").meta.endpoint_url == "https://cloudformation.eu-west-1.amazonaws.com"
