"""CloudFormation's side of a custom resource, for tests: the pre-signed ResponseURL it gives the
function, served over HTTPS on this machine, where the response the function PUTs is read back.

CloudFormation waits for the function's answer at ``ResponseURL`` (a pre-signed S3 URL): the function
PUTs a JSON body there
(https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-responses.html). The
endpoint listens on 127.0.0.1 with a certificate of its own certificate authority; a test trusts
that authority through ``SSL_CERT_FILE`` (OpenSSL's default verify paths, which Python's default SSL
context loads), so the function's HTTPS client verifies the endpoint as it would verify S3.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["ResponseEndpoint"]

_HOST = "127.0.0.1"


class ResponseEndpoint:
    """An HTTPS server that records every PUT to it; :meth:`redirect` points an event's ResponseURL at
    it (same path and query) and :meth:`responses` reads what reached that URL."""

    def __init__(self, directory: Path) -> None:
        self.ca_file, cert_file, key_file = _certificates(directory)
        self._lock = threading.Lock()
        self._puts: list[tuple[str, dict[str, Any]]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:  # the name http.server looks up
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with endpoint._lock:
                    endpoint._puts.append((self.path, json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # no request log on stderr

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        self._server = ThreadingHTTPServer((_HOST, 0), Handler)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def netloc(self) -> str:
        return f"{_HOST}:{self._server.server_address[1]}"

    def redirect(self, event: dict[str, Any]) -> dict[str, Any]:
        """``event`` with its ResponseURL moved to this endpoint (path and query kept)."""
        parts = urlsplit(event["ResponseURL"])
        return {**event, "ResponseURL": urlunsplit(("https", self.netloc, parts.path, parts.query, ""))}

    def responses(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """The bodies PUT so far to ``event``'s ResponseURL, oldest first."""
        parts = urlsplit(event["ResponseURL"])
        target = urlunsplit(("", "", parts.path, parts.query, ""))
        with self._lock:
            return [body for path, body in self._puts if path == target]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A certificate authority and a server certificate for 127.0.0.1 it signed; returns the paths of
    the authority's certificate, the server's certificate and the server's key (PEM)."""
    now = datetime.datetime.now(datetime.UTC)
    valid = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(hours=1))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test response endpoint CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _HOST)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(_HOST))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = directory / "ca.pem", directory / "server.pem", directory / "server-key.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ca_file, cert_file, key_file
