"""The response endpoint records what is PUT to an event's ResponseURL, over HTTPS that a client
verifies only when it trusts the endpoint's authority."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from http.client import HTTPSConnection
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support.custom_resource import ResponseEndpoint
from tests.support.events import load_event


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[ResponseEndpoint]:
    served = ResponseEndpoint(tmp_path)
    yield served
    served.close()


def put(url: str, body: dict[str, str], context: ssl.SSLContext) -> int:
    parts = urlsplit(url)
    connection = HTTPSConnection(parts.netloc, context=context, timeout=10)
    try:
        connection.request("PUT", f"{parts.path}?{parts.query}", body=json.dumps(body))
        return connection.getresponse().status
    finally:
        connection.close()


def test_a_put_to_the_redirected_url_is_recorded_for_that_event(endpoint: ResponseEndpoint) -> None:
    event = load_event("regional-artifact-store", "create")
    other = load_event("regional-artifact-store", "delete")
    redirected = endpoint.redirect(event)
    original, moved = urlsplit(event["ResponseURL"]), urlsplit(redirected["ResponseURL"])
    assert (moved.scheme, moved.path, moved.query) == ("https", original.path, original.query)
    assert moved.netloc != original.netloc
    trusting = ssl.create_default_context(cafile=str(endpoint.ca_file))

    assert put(redirected["ResponseURL"], {"Status": "SUCCESS"}, trusting) == 200

    assert endpoint.responses(event) == [{"Status": "SUCCESS"}]
    assert endpoint.responses(other) == []


def test_a_client_that_does_not_trust_the_endpoint_cannot_reach_it(
    endpoint: ResponseEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = load_event("regional-artifact-store", "create")
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)

    with pytest.raises(ssl.SSLCertVerificationError):
        put(endpoint.redirect(event)["ResponseURL"], {"Status": "SUCCESS"}, ssl.create_default_context())

    assert endpoint.responses(event) == []
