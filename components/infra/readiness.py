"""A gate between a freshly booted k3s cluster and everything deployed onto it.

VMs count as created when they boot, minutes before k3s serves its API; a Helm release sent
then fails the first `pulumi up`. `ApiReady` polls the API's `/readyz` with the admin
credential until it answers, and the Kubernetes provider depends on it."""

from __future__ import annotations

import os
import ssl
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any

import pulumi
import pulumi.dynamic as dynamic

DEFAULT_TIMEOUT_SECONDS = 1200.0
POLL_SECONDS = 10.0


def wait_until_ready(url: str, context: ssl.SSLContext | None, timeout: float, interval: float = POLL_SECONDS) -> int:
    """Poll `url` until it answers 200; the number of attempts it took. Raises `TimeoutError`
    naming the last answer, so a failed `pulumi up` says why."""
    deadline = time.monotonic() + timeout
    attempts, last = 0, "no answer yet"
    while True:
        attempts += 1
        try:
            with urllib.request.urlopen(url, timeout=min(10.0, timeout), context=context) as response:
                if response.status == 200:
                    return attempts
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except (OSError, ssl.SSLError) as exc:
            last = str(getattr(exc, "reason", exc))
        if time.monotonic() + interval > deadline:
            raise TimeoutError(f"{url} not ready after {timeout:.0f} s: {last}")
        time.sleep(interval)


def client_context(ca_pem: str, cert_pem: str, key_pem: str) -> ssl.SSLContext:
    """TLS context that trusts only the cluster's CA and presents the admin certificate."""
    context = ssl.create_default_context(cadata=ca_pem)
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        for path, text in ((cert, cert_pem), (key, key_pem)):
            with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as handle:
                handle.write(text)
        context.load_cert_chain(cert, key)
    return context


class _ApiReadyProvider(dynamic.ResourceProvider):
    """Create waits for the API; nothing to delete. A new endpoint is a new cluster: replace."""

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        context = client_context(props["caPem"], props["certPem"], props["keyPem"])
        attempts = wait_until_ready(f"{props['endpoint']}/readyz", context, float(props["timeoutSeconds"]))
        return dynamic.CreateResult(id_=props["endpoint"], outs={**props, "attempts": attempts})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        changed = olds.get("endpoint") != news.get("endpoint")
        return dynamic.DiffResult(changes=changed, replaces=["endpoint"] if changed else [])


class ApiReady(dynamic.Resource):
    """Exists once the cluster at `endpoint` serves `/readyz`."""

    def __init__(
        self,
        name: str,
        endpoint: pulumi.Input[str],
        ca_pem: pulumi.Input[str],
        cert_pem: pulumi.Input[str],
        key_pem: pulumi.Input[str],
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "endpoint": endpoint,
            "caPem": ca_pem,
            "certPem": cert_pem,
            "keyPem": pulumi.Output.secret(key_pem),
            "timeoutSeconds": timeout_seconds,
            "attempts": None,
        }
        super().__init__(_ApiReadyProvider(), name, props, opts)
