"""A real Kubernetes control plane on loopback for the tests: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok (simulated kubelets: pods on its nodes become Running without containers).

The binaries are the pinned Go tools of `tools/kube` and `tools/kwok` (`make kube-tools` builds them once into a
cache outside the work tree). The API server runs as k3s runs it (k3s `pkg/daemons/control/server.go`): Node and
RBAC authorization, anonymous requests refused, the default admission plugins of the release plus
`NodeRestriction` (so PodSecurity is on), privileged containers allowed, a service-account issuer of
`https://kubernetes.default.svc.cluster.local`. The controller manager uses one service account per controller
(`--use-service-account-credentials`), so the replica set, deployment, stateful set, daemon set and job
controllers act with the permissions k3s gives them. Every credential is generated per run: a CA, the API
server's serving certificate, a client certificate per component, an EC service-account signing key.

Each process runs in its own session with a parent-death signal, and `ControlPlane.stop` ends them all (SIGTERM,
then SIGKILL): a failed or interrupted test leaves no process behind.
"""

from __future__ import annotations

import ctypes
import datetime
import ipaddress
import json
import os
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .ports import free_port, free_ports

REPO = Path(__file__).resolve().parents[2]
GO_TOOLS = REPO / "tools" / "go-tools"
BUILD_COMMAND = "make kube-tools"
FIELD_MANAGER = "pulumi-kubernetes-af"
"""Server-side apply's field manager, named like the Pulumi provider's (`pulumi-kubernetes-<suffix>`)."""
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
API_AUDIENCES = f"{SERVICE_ACCOUNT_ISSUER},k3s"
SERVICE_CIDR = "10.43.0.0/16"
POD_CIDR = "10.42.0.1/16"
"""k3s's default service and pod ranges; kwok gives pods addresses from the pod range."""
KWOK_NODE = {"kwok.x-k8s.io/node": "fake"}
"""The annotation of the nodes kwok manages (every node a test creates through `Kube.create_node`)."""
KWOK_STAGES = (
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
)
"""kwok's own stages (what `kwokctl` configures), read from the pinned kwok module: nodes become Ready and keep
their lease, pods on them Running (Jobs' pods Succeeded), deleted pods go away."""
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
POLL = 0.1

T = TypeVar("T")


class ToolsMissing(RuntimeError):
    """The pinned tools are not built: the message says which and the command that builds them."""


@dataclass(frozen=True)
class KubeTools:
    etcd: Path
    apiserver: Path
    controller_manager: Path
    scheduler: Path
    kwok: Path
    kwok_module: Path
    """The pinned kwok module's source (its stages)."""


def _built(tool_set: str) -> Path:
    run = subprocess.run(
        [str(GO_TOOLS), "--cached", str(REPO / "tools" / tool_set)], capture_output=True, text=True, check=False
    )
    if run.returncode == 3:
        raise ToolsMissing(f"the Go tools of tools/{tool_set} are not built: run `{BUILD_COMMAND}`")
    if run.returncode != 0:
        raise ToolsMissing(f"tools/go-tools --cached tools/{tool_set} failed: {run.stderr.strip()}")
    return Path(run.stdout.strip())


def _module_dir(tool_set: str, module: str) -> Path:
    """The source of a module the set pins (`go mod download` fetches it again if the module cache was
    cleaned since the build)."""
    try:
        run = subprocess.run(
            ["go", "mod", "download", "-json", module],
            cwd=REPO / "tools" / tool_set,
            capture_output=True,
            text=True,
            check=False,
            env=os.environ | {"GOFLAGS": "-mod=readonly"},
        )
    except FileNotFoundError:
        raise ToolsMissing("Go is not installed: the project's machines have Go 1.26") from None
    folder = json.loads(run.stdout or "{}").get("Dir") if run.returncode == 0 else None
    if not folder:
        raise ToolsMissing(f"cannot locate {module} of tools/{tool_set}: {run.stderr.strip() or run.stdout.strip()}")
    return Path(folder)


def find_tools() -> KubeTools:
    """The built binaries; `ToolsMissing` (never a silent fallback) when a set is not built."""
    kube, kwok = _built("kube"), _built("kwok")
    return KubeTools(
        etcd=kube / "server",  # go build names go.etcd.io/etcd/server/v3's binary after its last element
        apiserver=kube / "kube-apiserver",
        controller_manager=kube / "kube-controller-manager",
        scheduler=kube / "kube-scheduler",
        kwok=kwok / "kwok",
        kwok_module=_module_dir("kwok", "sigs.k8s.io/kwok"),
    )


# -- credentials ------------------------------------------------------------------------------------------------------


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass
class Pki:
    """Files of one run's credentials, all under `root`."""

    root: Path
    ca: Path = field(init=False)
    _ca_key: ec.EllipticCurvePrivateKey = field(init=False)
    _ca_cert: x509.Certificate = field(init=False)

    def __post_init__(self) -> None:
        now = datetime.datetime.now(datetime.UTC)
        self._ca_key = _key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "af-test-kubernetes-ca")])
        self._ca_cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
            .sign(self._ca_key, hashes.SHA256())
        )
        self.ca = self._write("ca.crt", self._ca_cert.public_bytes(serialization.Encoding.PEM))

    def _write(self, name: str, data: bytes) -> Path:
        path = self.root / name
        path.write_bytes(data)
        path.chmod(0o600)
        return path

    def issue(
        self, name: str, common_name: str, organizations: tuple[str, ...] = (), server: bool = False
    ) -> tuple[Path, Path]:
        """A certificate signed by the CA: a client certificate (user `common_name`, groups `organizations`), or
        the API server's serving certificate."""
        now = datetime.datetime.now(datetime.UTC)
        key = _key()
        subject = x509.Name(
            [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
            + [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.DNSName("kubernetes.default.svc"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    ]
                ),
                critical=False,
            )
        cert = builder.sign(self._ca_key, hashes.SHA256())
        return (
            self._write(f"{name}.crt", cert.public_bytes(serialization.Encoding.PEM)),
            self._write(f"{name}.key", _pem_key(key)),
        )

    def signing_key(self) -> tuple[Path, Path]:
        """The service-account token signing key and its public half."""
        key = _key()
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return self._write("sa.key", _pem_key(key)), self._write("sa.pub", public)

    def kubeconfig(self, name: str, server: str, cert: Path, key: Path) -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "af-test", "cluster": {"server": server, "certificate-authority": str(self.ca)}}],
            "users": [{"name": name, "user": {"client-certificate": str(cert), "client-key": str(key)}}],
            "contexts": [{"name": name, "context": {"cluster": "af-test", "user": name}}],
            "current-context": name,
        }
        return self._write(f"{name}.kubeconfig", yaml.safe_dump(config).encode())


# -- the API --------------------------------------------------------------------------------------------------------


class ApiError(Exception):
    """A refused request: HTTP status, the Status reason (`Forbidden`, `Invalid`, …) and its message."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        self.status = status
        self.reason = body.get("reason", "") if isinstance(body, dict) else ""
        self.message = body.get("message", str(body)) if isinstance(body, dict) else str(body)
        super().__init__(f"{method} {path}: {status} {self.reason}: {self.message}")


@dataclass(frozen=True)
class Resource:
    """What discovery says of a kind: its path segment and whether it lives in a namespace."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool

    def collection(self, namespace: str | None = None) -> str:
        prefix = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        if self.namespaced:
            if namespace is None:
                return f"{prefix}/{self.plural}"  # across namespaces (list only)
            return f"{prefix}/namespaces/{namespace}/{self.plural}"
        return f"{prefix}/{self.plural}"


class Kube:
    """A small client of the API server (requests): discovery, server-side apply, get/list/delete, polling,
    TokenRequest. Authenticates with a client certificate or a bearer token."""

    def __init__(self, server: str, ca: Path, cert: tuple[Path, Path] | None = None, token: str | None = None) -> None:
        self.server = server.rstrip("/")
        self.ca = ca
        self.session = requests.Session()
        self.session.trust_env = False  # no CA bundle or proxy from the environment: this CA, loopback only
        self.session.verify = str(ca)
        if cert is not None:
            self.session.cert = (str(cert[0]), str(cert[1]))
        if token is not None:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self._resources: dict[tuple[str, str], Resource] = {}

    def with_token(self, token: str) -> Kube:
        return Kube(self.server, self.ca, token=token)

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
    ) -> Any:
        response = self.session.request(
            method,
            self.server + path,
            params=params,
            data=None if body is None else json.dumps(body),
            headers={"Content-Type": content_type, "Accept": "application/json"},
            timeout=30,
        )
        try:
            payload = response.json()
        except ValueError:
            payload = response.text
        if response.status_code >= 400:
            raise ApiError(method, path, response.status_code, payload)
        return payload

    def resource(self, api_version: str, kind: str) -> Resource:
        key = (api_version, kind)
        if key not in self._resources:
            path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            try:
                listing = self.call("GET", path)["resources"]
            except ApiError as exc:
                raise KeyError(f"{api_version} is not served ({exc.status})") from None
            for item in listing:
                if "/" not in item["name"]:
                    self._resources[(api_version, item["kind"])] = Resource(
                        api_version, item["kind"], item["name"], item["namespaced"]
                    )
            if key not in self._resources:
                raise KeyError(f"{kind} is not a kind of {api_version}")
        return self._resources[key]

    def path(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> str:
        return f"{self.resource(api_version, kind).collection(namespace)}/{name}"

    def apply(
        self, obj: dict[str, Any], field_manager: str = FIELD_MANAGER, force: bool = False, dry_run: bool = False
    ) -> dict[str, Any]:
        """Server-side apply, as the Pulumi provider creates and updates objects."""
        meta = obj["metadata"]
        params = {"fieldManager": field_manager, "force": str(force).lower()}
        if dry_run:
            params["dryRun"] = "All"
        path = self.path(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
        return self.call("PATCH", path, obj, "application/apply-patch+yaml", params)

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        try:
            return self.call("GET", self.path(api_version, kind, name, namespace))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def list(
        self, api_version: str, kind: str, namespace: str | None = None, selector: str | None = None
    ) -> list[dict[str, Any]]:
        params = {"labelSelector": selector} if selector else None
        return self.call("GET", self.resource(api_version, kind).collection(namespace), params=params)["items"]

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> None:
        with suppress(KeyError):
            try:
                self.call("DELETE", self.path(api_version, kind, name, namespace), {"propagationPolicy": "Background"})
            except ApiError as exc:
                if exc.status != 404:
                    raise

    def create_token(self, namespace: str, service_account: str, seconds: int = 3600) -> str:
        """A bound token for a ServiceAccount (TokenRequest), as the kubelet mounts into its pods."""
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": seconds},
        }
        path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token"
        return self.call("POST", path, body)["status"]["token"]

    def create_node(
        self, name: str, labels: dict[str, str], taints: list[dict[str, str]], capacity: dict[str, str]
    ) -> None:
        """A Node kwok manages (its kubelet, simulated): it registers with `labels`, `taints` and `capacity`."""
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": labels, "annotations": dict(KWOK_NODE)},
            "spec": {"taints": taints},
            "status": {"capacity": capacity, "allocatable": capacity},
        }
        self.call("POST", "/api/v1/nodes", node)

    def namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}})

    def delete_namespaces(self, names: list[str], timeout: float = 60.0) -> None:
        """Delete namespaces and wait until they are gone, their objects with them (at least 5 s: the namespace
        controller waits that long after a deletion before it empties the namespace)."""
        for name in names:
            self.delete("v1", "Namespace", name)
            # Pods go at once, as kwok's kubelets have nothing to stop: the namespace controller would otherwise
            # wait out their grace period (an hour for a batch worker).
            with suppress(ApiError):
                self.call("DELETE", f"/api/v1/namespaces/{name}/pods", params={"gracePeriodSeconds": "0"})
        wait_for(
            f"namespaces {names} to be deleted",
            lambda: not [n for n in names if self.get("v1", "Namespace", n) is not None],
            timeout,
        )

    def namespaced_collections(self) -> list[str]:
        """Every namespaced kind the API server serves that can be deleted as a collection, as a path template with
        `{namespace}` (what the namespace controller goes through when it empties a namespace)."""
        if not hasattr(self, "_collections"):
            versions = ["/api/v1"] + [
                f"/apis/{v['groupVersion']}" for g in self.call("GET", "/apis")["groups"] for v in g["versions"]
            ]
            found = []
            for prefix in versions:
                for item in self.call("GET", prefix)["resources"]:
                    if item["namespaced"] and "/" not in item["name"] and "deletecollection" in item["verbs"]:
                        found.append(f"{prefix}/namespaces/{{namespace}}/{item['name']}")
            self._collections = sorted(set(found))
        return self._collections

    def empty_namespaces(self, names: list[str], timeout: float = 60.0) -> None:
        """Delete everything in the namespaces and leave them, empty, for the next objects that go there: seconds
        faster than deleting them (the namespace controller goes through every kind of every namespace, then waits
        on finalizers such as the claims' protection, which it re-checks only after a delay).

        Controllers go first, orphaning their pods, so that no pod is recreated; pods go at once (kwok's kubelets have
        nothing to stop; their grace periods are up to hours); claims lose their protection finalizer (no pod uses
        them any more); then every other kind. The namespaces' own ServiceAccount `default` and CA bundle are made
        again by their controllers."""
        first = [
            ("/apis/apps/v1/namespaces/{namespace}/" + kind, {"propagationPolicy": "Orphan"})
            for kind in ("deployments", "statefulsets", "daemonsets", "replicasets")
        ] + [
            ("/apis/batch/v1/namespaces/{namespace}/" + kind, {"propagationPolicy": "Orphan"})
            for kind in ("cronjobs", "jobs")
        ]
        first.append(("/api/v1/namespaces/{namespace}/pods", {"gracePeriodSeconds": "0"}))
        for name in names:
            for path, params in first:
                self.call("DELETE", path.format(namespace=name), params=params)
            for claim in self.list("v1", "PersistentVolumeClaim", name):
                if claim["metadata"].get("finalizers"):
                    with suppress(ApiError):
                        self.call(
                            "PATCH",
                            self.path("v1", "PersistentVolumeClaim", claim["metadata"]["name"], name),
                            {"metadata": {"finalizers": None}},
                            "application/merge-patch+json",
                        )
        done = {path for path, _ in first}
        for name in names:
            for path in self.namespaced_collections():
                if path not in done:
                    with suppress(ApiError):  # a kind that refuses (or no longer exists)
                        self.call("DELETE", path.format(namespace=name), params={"propagationPolicy": "Background"})

        def empty() -> bool:
            return not any(
                self.list(api_version, kind, name)
                for name in names
                for api_version, kind in (
                    ("v1", "Pod"), ("v1", "PersistentVolumeClaim"), ("apps/v1", "ReplicaSet"), ("batch/v1", "Job"),
                )
            )  # fmt: skip

        wait_for(f"namespaces {names} to be empty", empty, timeout)


def wait_for(what: str, probe: Callable[[], T], timeout: float = 30.0, interval: float = POLL) -> T:
    """Poll `probe` until it returns something truthy; its last value (or exception) is in the timeout error."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = probe()
            if last:
                return last
        except (ApiError, requests.RequestException) as exc:
            last = exc
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")
        time.sleep(interval)


# -- processes ------------------------------------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the test process dies, however it dies."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.tail()}")

    def stop(self) -> None:
        if self.popen.poll() is not None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(STOP_TIMEOUT)


class ControlPlane:
    """etcd, the API server, the controller manager, the scheduler and kwok on free loopback ports, in a temporary
    directory. `admin` is a cluster-admin client (a `system:masters` client certificate)."""

    def __init__(self, tools: KubeTools) -> None:
        self.tools = tools
        self.dir = Path(tempfile.mkdtemp(prefix="af-kube-"))
        self.processes: list[Process] = []
        self.pki = Pki(self.dir)
        self.api_port = free_port()
        self.server = f"https://127.0.0.1:{self.api_port}"
        self.admin = Kube(self.server, self.pki.ca, cert=self.pki.issue("admin", "af-test-admin", ("system:masters",)))

    def _start(self, name: str, argv: list[str]) -> Process:
        log = self.dir / f"{name}.log"
        with open(log, "wb") as out:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # only prctl: safe before exec
            )
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def _wait(self, process: Process, what: str, probe: Callable[[], Any]) -> None:
        def alive_and_ready() -> Any:
            process.check_alive()
            return probe()

        try:
            wait_for(what, alive_and_ready, START_TIMEOUT)
        except TimeoutError as exc:
            raise RuntimeError(f"{exc}\n{process.name} log:\n{process.tail()}") from None

    def start(self) -> ControlPlane:
        tools, pki = self.tools, self.pki
        etcd_port, peer_port = free_ports(2)
        etcd = self._start(
            "etcd",
            [
                str(tools.etcd),
                "--name=af-test",
                f"--data-dir={self.dir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=af-test=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync",  # a test cluster: speed over durability
                "--log-level=warn",
            ],
        )
        self._wait(
            etcd,
            "etcd to be healthy",
            lambda: (
                self.admin.session.get(f"http://127.0.0.1:{etcd_port}/health", timeout=2).json().get("health") == "true"
            ),
        )
        serving = pki.issue("apiserver", "kube-apiserver", server=True)
        sa_key, sa_pub = pki.signing_key()
        apiserver = self._start(
            "kube-apiserver",
            [
                str(tools.apiserver),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.api_port}",
                f"--cert-dir={self.dir / 'apiserver'}",
                f"--tls-cert-file={serving[0]}",
                f"--tls-private-key-file={serving[1]}",
                f"--client-ca-file={pki.ca}",
                # As k3s runs it:
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                "--anonymous-auth=false",
                "--allow-privileged=true",
                "--profiling=false",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--api-audiences={API_AUDIENCES}",
                f"--service-account-key-file={sa_pub}",
                f"--service-account-signing-key-file={sa_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                # The `kubernetes` Service's endpoint would be 127.0.0.1, which Endpoints refuse (no pod here
                # calls the API through that Service).
                "--endpoint-reconciler-type=none",
            ],
        )
        self._wait(apiserver, "the API server to be ready", lambda: self.admin.call("GET", "/readyz") == "ok")

        def kubeconfig(name: str, user: str, groups: tuple[str, ...] = ()) -> Path:
            cert, key = pki.issue(name, user, groups)
            return pki.kubeconfig(name, self.server, cert, key)

        controllers = self._start(
            "kube-controller-manager",
            [
                str(tools.controller_manager),
                f"--kubeconfig={kubeconfig('controller-manager', 'system:kube-controller-manager')}",
                "--secure-port=0",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={sa_key}",
                f"--root-ca-file={pki.ca}",
                "--leader-elect=true",
                "--profiling=false",
                "--concurrent-replicaset-syncs=10",
                "--concurrent-deployment-syncs=10",
                "--concurrent-statefulset-syncs=10",
            ],
        )
        scheduler = self._start(
            "kube-scheduler",
            [
                str(tools.scheduler),
                f"--kubeconfig={kubeconfig('scheduler', 'system:kube-scheduler')}",
                "--secure-port=0",
                "--leader-elect=true",
                "--profiling=false",
            ],
        )
        stages = self.dir / "kwok.yaml"
        stages.write_text("\n---\n".join((tools.kwok_module / s).read_text() for s in KWOK_STAGES))
        kwok = self._start(
            "kwok",
            [
                str(tools.kwok),
                f"--kubeconfig={kubeconfig('kwok', 'af-test-kwok', ('system:masters',))}",
                f"--config={stages}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector={}={}".format(*next(iter(KWOK_NODE.items()))),
                f"--cidr={POD_CIDR}",
                "--node-ip=127.0.0.1",
                "--node-lease-duration-seconds=40",
            ],
        )
        for process, lease in ((controllers, "kube-controller-manager"), (scheduler, "kube-scheduler")):
            self._wait(
                process,
                f"{lease} to lead",
                lambda lease=lease: (
                    (self.admin.get("coordination.k8s.io/v1", "Lease", lease, "kube-system") or {})
                    .get("spec", {})
                    .get("holderIdentity")
                ),
            )
        # The service-account controller is running once the default namespace has its account.
        self._wait(
            controllers,
            "the default ServiceAccount",
            lambda: self.admin.get("v1", "ServiceAccount", "default", "default"),
        )
        kwok.check_alive()
        return self

    def check_alive(self) -> None:
        for process in self.processes:
            process.check_alive()

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        subprocess.run(["rm", "-rf", str(self.dir)], check=False)

    def log(self, name: str, lines: int = 40) -> str:
        return next((p.tail(lines) for p in self.processes if p.name == name), "")


@contextmanager
def control_plane(tools: KubeTools | None = None) -> Iterator[ControlPlane]:
    plane = ControlPlane(tools or find_tools())
    try:
        yield plane.start()
    finally:
        plane.stop()


# -- helpers tests share ------------------------------------------------------------------------------------------


def unique(prefix: str) -> str:
    """A fresh DNS-label name (a namespace per test)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@contextmanager
def labelled_namespace(kube: Kube, labels: dict[str, str], prefix: str = "pss") -> Iterator[str]:
    """A fresh namespace with `labels` (a Pod Security level, say) while the block runs."""
    namespace = unique(prefix)
    kube.namespace(namespace, labels)
    try:
        yield namespace
    finally:
        kube.delete("v1", "Namespace", namespace)


def admission_refusal(kube: Kube, namespace: str, pod_spec: dict[str, Any], name: str = "probe") -> str | None:
    """Whether the real PodSecurity admission admits a pod with `pod_spec` in `namespace`: None if it does, else the
    API server's message. The pod is created with a server-side dry run, so nothing is stored."""
    # Pod Security looks at no account; a probe's namespace has none but its `default`.
    spec = {k: v for k, v in pod_spec.items() if k not in ("serviceAccountName", "serviceAccount")}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace}, "spec": spec}
    try:
        kube.call("POST", f"/api/v1/namespaces/{namespace}/pods", pod, params={"dryRun": "All"})
    except ApiError as exc:
        if exc.status == 403 and "violates PodSecurity" in exc.message:
            return exc.message
        raise
    return None


def enforcing(level: str, version: str = "latest") -> dict[str, str]:
    """The labels of a namespace that enforces Pod Security `level` at `version`."""
    return {"pod-security.kubernetes.io/enforce": level, "pod-security.kubernetes.io/enforce-version": version}


def pod_security_verdict(kube: Kube, level: str, pod_spec: dict[str, Any], name: str = "probe") -> str | None:
    """Whether the real PodSecurity admission admits a pod with `pod_spec` in a namespace enforcing `level`
    (`privileged`, `baseline` or `restricted`, latest version): None if admitted, else the API server's message."""
    with labelled_namespace(kube, enforcing(level), f"pss-{level}") as namespace:
        return admission_refusal(kube, namespace, pod_spec, name)


PSS_LEVELS = ("restricted", "baseline", "privileged")


def strictest_level(kube: Kube, pod_spec: dict[str, Any]) -> str:
    """The strictest Pod Security Standard whose real admission admits a pod with `pod_spec`."""
    for level in PSS_LEVELS:
        if pod_security_verdict(kube, level, pod_spec) is None:
            return level
    raise AssertionError("not even `privileged` admits the pod")
