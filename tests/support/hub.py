"""Run a real JupyterHub configured from z2jh 4.x Helm values, on loopback, for integration tests.

run_hub plays the chart's part: it merges the chart defaults the hub config reads under the given values, renders the
hub Secret (values.yaml and generated secrets) and the hub container's environment (including hub.extraEnv), then
starts `jupyterhub -f hub_image/harness_config.py`. That file loads hub_image/jupyterhub_config.py, which reproduces
the hub image's config, and adds the test-only overrides. The proxy is the real configurable-http-proxy installed by
`npm ci --prefix tests/support`; KubeSpawner stays the spawner and finds a kubeconfig for an API server that refuses
connections, which is enough to render the spawn options page: only starting a server would reach for the cluster.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import yaml
from jupyterhub.app import JupyterHub

from .oidc import TestIssuer
from .ports import free_ports

SUPPORT_DIR = Path(__file__).resolve().parent
IMAGE_DIR = SUPPORT_DIR / "hub_image"
CHP = SUPPORT_DIR / "node_modules" / ".bin" / "configurable-http-proxy"
CHART = {"Name": "jupyterhub", "Version": "4.2.0"}
RELEASE = {"Name": "jupyterhub", "Namespace": "jupyterhub", "Service": "Helm"}

# The chart 4.2.0 defaults (values.yaml) that the reproduced hub config reads; Helm merges the given values over them.
CHART_DEFAULTS: dict[str, Any] = {
    "hub": {
        "baseUrl": "/",
        "concurrentSpawnLimit": 64,
        "consecutiveFailureLimit": 5,
        "allowNamedServers": False,
        "config": {"JupyterHub": {"admin_access": True, "authenticator_class": "dummy"}},
        "db": {"type": "sqlite-pvc"},
        "services": {},
        "loadRoles": {},
        "extraEnv": {},
        "extraConfig": {},
    },
    "singleuser": {
        "image": {"name": "quay.io/jupyterhub/k8s-singleuser-sample", "tag": CHART["Version"]},
        "cmd": "jupyterhub-singleuser",
        "startTimeout": 300,
        "events": True,
        "uid": 1000,
        "fsGid": 100,
        "allowPrivilegeEscalation": False,
        "extraLabels": {"hub.jupyter.org/network-access-hub": "true"},
        "extraEnv": {},
        "memory": {"guarantee": "1G"},
        "profileList": [],
        "storage": {
            "type": "dynamic",
            "capacity": "10Gi",
            "homeMountPath": "/home/jovyan",
            "static": {"subPath": "{username}"},
            "dynamic": {"volumeNameTemplate": "volume-{user_server}", "storageAccessModes": ["ReadWriteOnce"]},
            "extraVolumes": [],
            "extraVolumeMounts": [],
        },
    },
    "cull": {
        "enabled": True,
        "users": False,
        "adminUsers": True,
        "removeNamedServers": False,
        "timeout": 3600,
        "every": 600,
        "concurrency": 10,
        "maxAge": 0,
    },
}

# A kubeconfig for an API server that refuses connections: KubeSpawner loads one when instantiated.
DUMMY_KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "none", "cluster": {"server": "https://127.0.0.1:1"}}],
    "users": [{"name": "none", "user": {"token": "none"}}],
    "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none", "namespace": RELEASE["Namespace"]}}],
    "current-context": "none",
}
# What the hub process inherits from the test's environment; the rest is what the chart would put in the pod.
INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")


class HubError(RuntimeError):
    """The hub did not come up; the message ends with the tail of its log."""


@dataclass(frozen=True)
class Hub:
    url: str  # public base URL through the proxy, base_url included, no trailing slash: http://127.0.0.1:PORT
    log_path: Path  # the hub's stdout and stderr, the proxy's included
    api_token: str  # token of the "harness" service: admin:users, admin:groups, read:servers, tokens

    @property
    def oauth_callback_url(self) -> str:
        """The redirect URI to register for the hub at the identity provider."""
        return self.url + "/hub/oauth_callback"

    def admin(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A hub REST API call with the harness's admin token, e.g. hub.admin("GET", "users/alice")."""
        headers = {"Authorization": f"token {self.api_token}", **kwargs.pop("headers", {})}
        return requests.request(method, f"{self.url}/hub/api/{path}", headers=headers, timeout=10, **kwargs)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def prepare_hub(values: Mapping[str, Any], env: Mapping[str, str], workdir: Path) -> tuple[Hub, dict[str, str]]:
    """Play the chart: write the hub Secret and a dummy kubeconfig under `workdir`; the Hub to be and the environment
    of its process.

    `env` stands for what the cluster holds: an entry of hub.extraEnv with `valueFrom` (secretKeyRef, configMapKeyRef,
    fieldRef) takes env[<that variable's name>]. Nothing else from `env` reaches the hub.
    """
    values = helm_merge(CHART_DEFAULTS, values)
    root = workdir / "z2jh"
    hub_secret = _render_hub_secret(values, root / "secret")
    kubeconfig = workdir / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(DUMMY_KUBECONFIG))

    public_port, api_port, hub_port = free_ports(3)
    base_url = values["hub"]["config"].get("JupyterHub", {}).get("base_url") or values["hub"]["baseUrl"]
    hub = Hub(
        url=f"http://127.0.0.1:{public_port}{base_url.rstrip('/')}",
        log_path=workdir / "hub.log",
        api_token=secrets.token_hex(32),
    )
    process_env = {
        **{name: os.environ[name] for name in INHERITED_ENV if name in os.environ},
        # the hub container's env in the chart's Deployment
        "PYTHONUNBUFFERED": "1",
        "HELM_RELEASE_NAME": RELEASE["Name"],
        "POD_NAMESPACE": RELEASE["Namespace"],
        "CONFIGPROXY_AUTH_TOKEN": hub_secret["hub.config.ConfigurableHTTPProxy.auth_token"],
        **extra_env(values["hub"]["extraEnv"], env),
        # what Kubernetes adds for the chart's Services, pointing at loopback
        **{f"{svc}_SERVICE_HOST": "127.0.0.1" for svc in ("HUB", "PROXY_API", "PROXY_PUBLIC")},
        "HUB_SERVICE_PORT": str(hub_port),
        "PROXY_API_SERVICE_PORT": str(api_port),
        "PROXY_PUBLIC_SERVICE_PORT": str(public_port),
        # test-only
        "PYTHONPATH": str(IMAGE_DIR),
        "Z2JH_ROOT": str(root),
        "KUBECONFIG": str(kubeconfig),
        "HARNESS_WORKDIR": str(workdir),
        "HARNESS_CHP": str(CHP),
        "HARNESS_PUBLIC_URL": hub.url,
        "HARNESS_API_TOKEN": hub.api_token,
    }
    return hub, process_env


@contextmanager
def run_hub(values: Mapping[str, Any], env: Mapping[str, str], workdir: Path, *, timeout: float = 30) -> Iterator[Hub]:
    """Start a JupyterHub from z2jh `values` (see prepare_hub), wait until it answers /hub/health through the proxy,
    stop it on exit."""
    if not os.access(CHP, os.X_OK):
        raise HubError(f"{CHP} is missing: run `npm ci --prefix {SUPPORT_DIR}` (or `make test`)")
    hub, process_env = prepare_hub(values, env, workdir)
    with ExitStack() as stack:
        log = stack.enter_context(hub.log_path.open("wb"))
        process = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(IMAGE_DIR / "harness_config.py")],
            cwd=workdir,
            env=process_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        stack.callback(_stop, process, workdir / "proxy.pid")
        _wait_healthy(process, hub, timeout)
        yield hub


@contextmanager
def hub_app(values: Mapping[str, Any], env: Mapping[str, str], workdir: Path) -> Iterator[JupyterHub]:
    """The JupyterHub application object with the hub's config loaded, in this process and without starting it: what
    the hub would end up with. Inside the `with`, the process environment is the hub's, so traits that default from
    it (OAUTH_CLIENT_SECRET) resolve as in the hub; it is restored afterwards."""
    _, process_env = prepare_hub(values, env, workdir)
    saved_env, saved_path = dict(os.environ), list(sys.path)
    os.environ.clear()
    os.environ.update(process_env)
    sys.path.insert(0, str(IMAGE_DIR))
    try:
        app = JupyterHub()
        app.load_config_file(str(IMAGE_DIR / "harness_config.py"))
        yield app
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        sys.path[:] = saved_path
        sys.modules.pop("z2jh", None)


def login(
    session: requests.Session, hub: Hub, issuer: TestIssuer, username: str, next_url: str = "/hub/home"
) -> requests.Response:
    """Log `username` in through the browser redirects: hub /hub/oauth_login -> issuer /authorize -> hub callback.

    Returns the last response: the `next_url` page (relative to hub.url) once logged in, or the hub's error page, e.g.
    403 for a user in no allowed group. The default next_url is the home page because the hub's own default,
    /hub/spawn, starts a server at once when no profile list makes it render an options form.
    """
    start = session.get(
        f"{hub.url}/hub/oauth_login",
        params={"next": urlsplit(hub.url).path + next_url},
        allow_redirects=False,
        timeout=10,
    )
    location = start.headers.get("Location", "")
    if not (start.is_redirect and location.startswith(issuer.url + "authorize")):
        raise AssertionError(f"{start.url} answered {start.status_code}, not a redirect to {issuer.url}authorize")
    return session.get(location, params={"login_hint": username}, timeout=10)


def helm_merge(defaults: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's coalescing of values over chart defaults: mappings merge, anything else replaces, null deletes."""
    merged = dict(defaults)
    for key, value in values.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = helm_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def chart_secret(values: Mapping[str, Any]) -> dict[str, str]:
    """The hub Secret's generated keys: taken from the values when given there, random otherwise, as the chart does."""
    config = values["hub"]["config"]
    secret = {
        "hub.config.ConfigurableHTTPProxy.auth_token": config.get("ConfigurableHTTPProxy", {}).get("auth_token")
        or values.get("proxy", {}).get("secretToken")
        or secrets.token_hex(32),
        "hub.config.JupyterHub.cookie_secret": config.get("JupyterHub", {}).get("cookie_secret")
        or values["hub"].get("cookieSecret")
        or secrets.token_hex(32),
        "hub.config.CryptKeeper.keys": ";".join(config.get("CryptKeeper", {}).get("keys") or [secrets.token_hex(32)]),
    }
    for key, service in values["hub"]["services"].items():
        secret[f"hub.services.{key}.apiToken"] = service.get("apiToken") or secrets.token_hex(32)
    return secret


def extra_env(extra: Mapping[str, Any] | list[dict[str, Any]], env: Mapping[str, str]) -> dict[str, str]:
    """A container's extraEnv as the process would see it (the chart's "jupyterhub.extraEnv" helper, then the kubelet).

    The mapping form turns `NAME: "value"` into a plain variable and `NAME: {valueFrom: ...}` into an EnvVar named NAME;
    the list form is used as is. A valueFrom reads env[NAME], or is skipped when the reference is optional.
    """
    if isinstance(extra, Mapping):
        entries = []
        for name, value in sorted(extra.items()):
            if isinstance(value, Mapping):
                entries.append({"name": name, **value})
            elif isinstance(value, str):
                entries.append({"name": name, "value": value})
            else:
                raise ValueError(f"extraEnv.{name} had an unexpected type ({type(value).__name__})")
    else:
        entries = list(extra)
    resolved: dict[str, str] = {}
    for entry in entries:
        name = entry["name"]
        if "valueFrom" not in entry:
            resolved[name] = entry["value"]
        elif name in env:
            resolved[name] = env[name]
        elif not any(ref.get("optional") for ref in entry["valueFrom"].values() if isinstance(ref, Mapping)):
            raise LookupError(f"extraEnv {name} comes from {entry['valueFrom']}: pass env[{name!r}] to run_hub")
    return resolved


def _render_hub_secret(values: Mapping[str, Any], directory: Path) -> dict[str, str]:
    """Write the hub Secret as the hub pod mounts it: values.yaml (with Chart and Release) and one file per key."""
    secret = chart_secret(values)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "values.yaml").write_text(yaml.safe_dump({**values, "Chart": CHART, "Release": RELEASE}))
    for key, value in secret.items():
        (directory / key).write_text(value)
    return secret


def _wait_healthy(process: subprocess.Popen[bytes], hub: Hub, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise HubError(f"jupyterhub exited with status {process.returncode}\n{_tail(hub.log_path)}")
        with suppress(requests.ConnectionError):
            if requests.get(f"{hub.url}/hub/health", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise HubError(f"jupyterhub did not answer {hub.url}/hub/health within {timeout}s\n{_tail(hub.log_path)}")


def _stop(process: subprocess.Popen[bytes], proxy_pid_file: Path) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    # A hub that did not shut down cleanly leaves its proxy running (in its own session); the pid file names it.
    with suppress(FileNotFoundError, ValueError, ProcessLookupError):
        os.kill(int(proxy_pid_file.read_text()), signal.SIGKILL)


def _tail(path: Path, lines: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
