"""A real dask-gateway-server on loopback running the program's rendered gateway configuration.

The chart generates `dask_gateway_config.py` from its values and appends `gateway.extraConfig`
(its `templates/gateway/configmap.yaml`); here the generated part is replaced by what a single
host needs: the local-process backend instead of the Kubernetes one (`UnsafeLocalBackend`:
clusters run as the test's user), loopback addresses, and JupyterHub auth against the test hub,
as the chart sets it for `gateway.auth.type: jupyterhub`. The extraConfig snippets (settings and
options handler) are the program's, unchanged."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import requests

from .ports import free_ports

BIN = Path(sys.executable).parent
INHERITED = ("PATH", "PYTHONPATH", "VIRTUAL_ENV", "LANG", "LC_ALL", "X509_CERT_DIR", "XRD_PLUGINCONFDIR")
"""What the local backend passes from the gateway to schedulers and workers (its
`inherited_environment`): the venv's programs, and the test CA for TLS to the cache."""


@dataclass(frozen=True)
class Gateway:
    url: str  # the gateway's public address (API and dashboards): http://127.0.0.1:PORT
    proxy_address: str  # Dask's TLS to schedulers: gateway://127.0.0.1:PORT
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def local_preamble(hub_api_url: str, api_port: int, proxy_port: int, clusters_dir: Path) -> str:
    """What the chart's generated config does, for one host."""
    return "\n".join(
        [
            "# ruff: noqa: F821",
            f'c.DaskGateway.address = "127.0.0.1:{api_port}"',
            f'c.Proxy.address = "127.0.0.1:{proxy_port}"',
            'c.DaskGateway.backend_class = "dask_gateway_server.backends.local.UnsafeLocalBackend"',
            f'c.LocalBackend.clusters_directory = "{clusters_dir}"',
            f"c.LocalBackend.inherited_environment = {list(INHERITED)!r}",
            "# A scheduler that exits without telling the gateway (its maximum lifetime) is found by",
            "# its missing heartbeats here; the Kubernetes backend watches the scheduler's pod instead.",
            "c.LocalBackend.cluster_heartbeat_period = 1",
            "c.LocalBackend.cluster_heartbeat_timeout = 3",
            "c.LocalBackend.check_timeouts_period = 1",
            'c.DaskGateway.authenticator_class = "dask_gateway_server.auth.JupyterHubAuthenticator"',
            f'c.JupyterHubAuthenticator.jupyterhub_api_url = "{hub_api_url}"',
            "",
        ]
    )


@contextmanager
def run_gateway(
    extra_config: Mapping[str, str],
    hub_api_url: str,
    api_token: str,
    service_name: str,
    workdir: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
    ports: tuple[int, int] | None = None,
) -> Iterator[Gateway]:
    """Start `dask-gateway-server -f <config>` with the local preamble and `extra_config`
    appended in key order (as the chart does), and stop it after."""
    workdir.mkdir(parents=True, exist_ok=True)
    api_port, proxy_port = ports or free_ports(2)
    clusters = workdir / "clusters"
    clusters.mkdir(exist_ok=True)
    parts = [local_preamble(hub_api_url, api_port, proxy_port, clusters)]
    parts += [f"# From gateway.extraConfig.{key}\n{extra_config[key]}" for key in sorted(extra_config)]
    config = workdir / "dask_gateway_config.py"
    config.write_text("\n".join(parts))
    process_env = {
        **{k: v for k, v in os.environ.items() if k in ("HOME", "LANG", "LC_ALL", "TMPDIR")},
        "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "VIRTUAL_ENV": str(BIN.parent),
        # the chart's Deployment: the token from the Secret, the service name from gateway.env
        "JUPYTERHUB_API_TOKEN": api_token,
        "JUPYTERHUB_SERVICE_NAME": service_name,
        **(env or {}),
    }
    gateway = Gateway(f"http://127.0.0.1:{proxy_port}", f"gateway://127.0.0.1:{proxy_port}", workdir / "gateway.log")
    with gateway.log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(BIN / "dask-gateway-server"), "-f", str(config)],
            cwd=workdir,
            env=process_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + timeout
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"dask-gateway-server exited {process.returncode}:\n{gateway.log()[-3000:]}")
                with suppress(requests.ConnectionError):
                    if requests.get(f"{gateway.url}/api/health", timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"dask-gateway-server not healthy after {timeout}s:\n{gateway.log()[-3000:]}")
                time.sleep(0.2)
            yield gateway
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
