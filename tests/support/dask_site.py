"""A whole Dask site on loopback for the e2e test and the benchmark: the IAM-like issuer over
HTTPS, the real JupyterHub with the program's hub values, a real origin and XCache from the
rendered cache config, and the real dask-gateway-server with the rendered gateway config (the
local-process backend instead of Kubernetes). Only addresses are made local, plus what the caller
changes in `af:dask` (a short idle timeout, limits); users' tokens carry `storage.read:/`, the scope
the cache checks."""

from __future__ import annotations

import copy
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import requests

from afctl.stackfile import read_stack
from components.config.facility import FacilityConfig
from components.config.loader import build_config
from components.dask.files import HERE as DASK_FILES
from components.dask.gateway import SERVICE, ClusterSite, extra_config, gateway_settings
from components.dask.hub import PRELOAD, notebook_dask_config
from components.dask.hub import SERVER_TOKEN_SCOPES as DASK_SCOPES
from components.facility import hub_site
from components.hub.files import HERE as HUBFILES
from components.hub.values import SERVER_TOKEN_SCOPES, hub_values

from .dask_gateway import Gateway, run_gateway
from .hub import Hub, login, run_hub
from .oidc import TestIssuer
from .ports import free_ports
from .xrootd import SYSTEM_CA_BUNDLE, Cache, Origin, TestCA, run_cache, run_origin

TESTS_DIR = Path(__file__).resolve().parents[1]

STACK = "cms-bari"
CLIENT_ID = "cms-analysis-facility"
CLIENT_SECRET = secrets.token_urlsafe(24)
GATEWAY_TOKEN = secrets.token_hex(32)
HUB_ENV = {
    "OAUTH_CLIENT_SECRET": CLIENT_SECRET,
    "AF_COOKIE_SECRET": secrets.token_hex(32),
    "JUPYTERHUB_CRYPT_KEY": secrets.token_hex(32),
    "AF_DASK_GATEWAY_TOKEN": GATEWAY_TOKEN,
}
# The hub's spawner made local, as the gateway's backend is: a "server" that is a plain HTTP
# server on loopback (the hub only needs an answer), so servers really start and stop.
LOCAL_SPAWNER = """
import os
import sys
from jupyterhub.spawner import SimpleLocalProcessSpawner


class AfTestSpawner(SimpleLocalProcessSpawner):
    def get_args(self):
        return [str(self.port)]


c.JupyterHub.spawner_class = AfTestSpawner
c.AfTestSpawner.cmd = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1"]
c.AfTestSpawner.home_dir_template = os.environ["HARNESS_WORKDIR"]
"""


@dataclass
class Site:
    cfg: FacilityConfig
    hub: Hub
    issuer: TestIssuer
    gateway: Gateway
    clusters: ClusterSite
    origin: Origin
    cache: Cache
    ca: TestCA
    work: Path

    def notebook(self, user: str) -> dict[str, str]:
        """Log `user` in and give them what their notebook would have: the server's API token
        (with the scopes the hub gives notebooks) and the IAM token file af_token.py writes."""
        session = requests.Session()
        session.trust_env = False  # REQUESTS_CA_BUNDLE would replace the test CA
        session.verify = str(self.ca.pem)
        page = login(session, self.hub, self.issuer, user)
        assert page.status_code == 200, page.text[-300:]
        scopes = [*SERVER_TOKEN_SCOPES, *DASK_SCOPES]
        made = self.hub.admin("POST", f"users/{user}/tokens", json={"scopes": scopes, "note": "server"})
        assert made.status_code == 201, made.text
        token = made.json()["token"]
        token_file = self.work / f"{user}-bearer-token"
        env = {
            "PATH": os.environ["PATH"],
            "JUPYTERHUB_API_URL": self.hub.url + "/hub/api",
            "JUPYTERHUB_API_TOKEN": token,
            "JUPYTERHUB_USER": user,
            "BEARER_TOKEN_FILE": str(token_file),
        }
        subprocess.run([sys.executable, str(HUBFILES / "af_token.py"), "--once"], env=env, check=True, timeout=30)
        return env

    @contextmanager
    def as_notebook(self, user: str) -> Iterator[dict[str, str]]:
        """This process as `user`'s notebook: the notebook's environment and the notebooks' Dask
        config (only the gateway's addresses and the preload's path made local)."""
        env = self.notebook(user)
        saved = dict(os.environ)
        os.environ.update({k: v for k, v in env.items() if k != "PATH"})
        os.environ["JUPYTER_IMAGE_SPEC"] = self.cfg.hub.notebook_image  # KubeSpawner sets it
        config = notebook_dask_config(self.cfg, "hub.example.org")
        config["gateway"] |= {"address": self.gateway.url, "proxy-address": self.gateway.proxy_address}
        assert config["distributed"]["client"]["preload"] == [PRELOAD]
        config["distributed"]["client"]["preload"] = [str(DASK_FILES / "af_dask_token.py")]
        try:
            with dask.config.set(dotted(config)):  # as a file in /etc/dask would be: over the defaults
                yield env
        finally:
            os.environ.clear()
            os.environ.update(saved)


def _config(issuer_url: str, origin: str, dask_changes: Mapping[str, Any]) -> FacilityConfig:
    values, secret = read_stack(STACK)
    values = copy.deepcopy(values)
    identity = values["identity"]
    identity["issuer"] = issuer_url
    identity["scopes"] = ["openid", "profile", "email", "offline_access", "wlcg", "wlcg.groups", "storage.read:/"]
    values["cache"] = {
        **values["cache"],
        "origin": origin,
        "issuers": [{"issuer": issuer_url, "basePath": "/store"}],
        "audiences": [CLIENT_ID],
    }
    values["dask"] = {**values["dask"], **dask_changes}  # limits merge over the profile's
    return build_config(values, secret)


def dotted(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested Dask config as dotted keys, so that it merges over the defaults."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping) and value and not key.startswith("job-extra"):
            flat |= dotted(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


@contextmanager
def start_gateway(
    cfg: FacilityConfig, clusters: ClusterSite, hub: Hub, ca: TestCA, work: Path, ports: tuple[int, int] | None = None
) -> Iterator[Gateway]:
    """A gateway running `cfg`'s rendered settings and options handler, with the hub's auth."""
    plugins = work / "no-plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    with run_gateway(
        extra_config(gateway_settings(cfg, clusters)),
        hub.url + "/hub/api",
        GATEWAY_TOKEN,
        SERVICE,
        work,
        env={
            "X509_CERT_DIR": str(ca.cert_dir),
            "XRD_PLUGINCONFDIR": str(plugins),
            "PYTHONPATH": str(TESTS_DIR),  # workers import support.dask_tasks
        },
        ports=ports,
    ) as gateway:
        yield gateway


@contextmanager
def run_site(
    work: Path,
    hub_dir: Path,
    users: Mapping[str, list[str]],
    dask_changes: Mapping[str, Any],
    files: Callable[[Origin], None] = lambda origin: None,
) -> Iterator[Site]:
    """Start everything; `files` adds the origin's files before the cache starts."""
    with ExitStack() as stack:
        ca = TestCA(work / "ca")
        issuer = stack.enter_context(TestIssuer(ca=ca))
        for user, groups in users.items():
            issuer.add_user(user, groups=groups)
        origin = stack.enter_context(run_origin(work / "origin", export="/store"))
        files(origin)
        cfg = _config(issuer.url, origin.address, dask_changes)
        cache = stack.enter_context(run_cache(cfg, work / "cache", ca, issuers=[issuer]))

        api_port, proxy_port = free_ports(2)
        gateway_url = f"http://127.0.0.1:{proxy_port}"
        values = hub_values(cfg, hub_site(cfg))
        values["custom"]["af"]["dask"] |= {"gatewayUrl": gateway_url, "serviceUrl": gateway_url}
        bundle = work / "ca-bundle.pem"
        bundle.write_bytes(SYSTEM_CA_BUNDLE.read_bytes() + b"\n" + ca.pem.read_bytes())
        values["hub"]["extraEnv"]["SSL_CERT_FILE"] = str(bundle)  # the hub trusts the issuer's CA
        values["hub"]["extraConfig"]["99-test-local-spawner"] = LOCAL_SPAWNER
        hub = stack.enter_context(run_hub(values, HUB_ENV, hub_dir))
        issuer.add_client(CLIENT_ID, CLIENT_SECRET, [hub.oauth_callback_url])

        notebook = hub_site(cfg)
        clusters = ClusterSite(notebook.extra_env, notebook.extra_files, True, True, (cfg.hub.notebook_image,))
        gateway = stack.enter_context(start_gateway(cfg, clusters, hub, ca, work / "gateway", (api_port, proxy_port)))
        yield Site(cfg, hub, issuer, gateway, clusters, origin, cache, ca, work)
