"""The API readiness gate: it waits for a real TLS endpoint with the cluster's credentials,
gives up with a reason, and every Kubernetes resource of a k3s stack waits for it."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import by_name, of_type
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from components.infra.readiness import client_context, wait_until_ready

DYNAMIC = "pulumi-python:dynamic:Resource"


def _cert(subject: str, issuer_key, issuer_name, key, *, ca=False, ip=None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(obj) -> str:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM).decode()
    return obj.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture(scope="module")
def pki() -> dict[str, str]:
    """A cluster CA, the API server's certificate for 127.0.0.1 and an admin client certificate."""
    ca_key, server_key, admin_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-server-ca")])
    ca = _cert("test-server-ca", ca_key, ca_name, ca_key, ca=True)
    return {
        "ca": _pem(ca),
        "server_cert": _pem(_cert("kube-apiserver", ca_key, ca_name, server_key, ip="127.0.0.1")),
        "server_key": _pem(server_key),
        "admin_cert": _pem(_cert("af-admin", ca_key, ca_name, admin_key)),
        "admin_key": _pem(admin_key),
    }


@contextmanager
def api_server(answers: list[int], tls: dict[str, str] | None, tmp: Path) -> Iterator[str]:
    """An HTTP(S) server on loopback whose /readyz gives `answers` in turn, then the last one.
    With `tls`, it requires a client certificate signed by the CA, as kube-apiserver does."""
    served: list[int] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code = answers[min(len(served), len(answers) - 1)]
            served.append(code)
            self.send_response(code if self.path == "/readyz" else 404)
            self.end_headers()
            self.wfile.write(b"ok" if code == 200 else b"not ready")

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    scheme = "http"
    if tls:
        (tmp / "server.pem").write_text(tls["server_cert"])
        (tmp / "server.key").write_text(tls["server_key"])
        (tmp / "ca.pem").write_text(tls["ca"])
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tmp / "server.pem", tmp / "server.key")
        context.load_verify_locations(tmp / "ca.pem")
        context.verify_mode = ssl.CERT_REQUIRED
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_waits_until_the_api_answers(tmp_path):
    with api_server([503, 503, 200], None, tmp_path) as url:
        assert wait_until_ready(f"{url}/readyz", None, timeout=5, interval=0.01) == 3


def test_gives_up_naming_the_last_answer(tmp_path):
    with api_server([503], None, tmp_path) as url, pytest.raises(TimeoutError, match=r"not ready after 0 s: HTTP 503"):
        wait_until_ready(f"{url}/readyz", None, timeout=0.2, interval=0.05)


def test_uses_the_cluster_ca_and_the_admin_certificate(pki, tmp_path):
    context = client_context(pki["ca"], pki["admin_cert"], pki["admin_key"])
    with api_server([200], pki, tmp_path) as url:
        assert wait_until_ready(f"{url}/readyz", context, timeout=5, interval=0.01) == 1
        # Without the admin certificate the server refuses the handshake: never "ready".
        anonymous = ssl.create_default_context(cadata=pki["ca"])
        with pytest.raises(TimeoutError):
            wait_until_ready(f"{url}/readyz", anonymous, timeout=0.3, interval=0.05)
        # A server the cluster CA did not sign is not trusted.
        with pytest.raises(TimeoutError, match="CERTIFICATE_VERIFY_FAILED"):
            wait_until_ready(f"{url}/readyz", ssl.create_default_context(), timeout=0.3, interval=0.05)


def test_kubernetes_resources_wait_for_the_api_of_a_k3s_cluster(shipped):
    result = shipped("cms-bari")
    ready = by_name(result, "af-cluster-api-ready")
    assert ready.type == DYNAMIC and ready.inputs["keyPem"] == "[secret]"
    assert ready.inputs["endpoint"] == result.outputs["apiEndpoint"]
    assert by_name(result, "af-cluster-api-fip-assoc").urn in ready.dependencies
    assert by_name(result, "af-cluster-control-plane-0").urn in ready.dependencies
    (provider,) = of_type(result, "pulumi:providers:kubernetes")
    assert ready.urn in provider.dependencies


def test_magnum_clusters_need_no_gate(shipped):
    assert of_type(shipped("atlas-cnaf"), DYNAMIC) == []
