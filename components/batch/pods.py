"""The pool's pods and files: the central manager's and the schedd's pods, the workers' of each
group (local or offloaded), the init container minting a limited IDTOKEN, and every file of the
pool's ConfigMap. Pure functions of the config; `pool.Condor` deploys them."""

from __future__ import annotations

import hashlib
from typing import Any

from ..common.kube import PART_OF, resources, tolerations
from ..common.layers import ServiceClient
from ..config.facility import FacilityConfig
from ..names import (
    CA_CERT_DIR,
    CONDOR_CM,
    CONDOR_NAMESPACE,
    CONDOR_SCHEDD,
    CONDOR_WORKER,
    CVMFS_CLAIM,
    CVMFS_MOUNT,
    GATEWAY_LABEL,
    GATEWAY_TAINT_KEY,
    SYSTEM_NODES,
    TRUST_CONFIGMAP,
    VIRTUAL_NODE_TAINT,
    WORKER_GROUP_LABEL,
    group_nodes,
)
from .config import WorkerGroup, worker_groups
from .htcondor import (
    MAPFILE,
    PLUGIN_CONFIG,
    PLUGIN_SCRIPT,
    PoolRuntime,
    daemon_identity,
    offloading,
    render_central_manager,
    render_client,
    render_execute,
    render_mapfile,
    render_offload,
    render_plugin_config,
    render_pool,
    render_submit,
)

WORKER = CONDOR_WORKER
KEY_SECRET = "af-condor-pool-key"
CONFIG_MAP = "af-condor-config"
JOB_FILES = "af-condor-job-files"
OFFLOAD_TOKEN = "af-condor-offload-token"
"""The Secret holding offloaded workers' IDTOKEN (minted in the cluster by a Job)."""
MINTER = "af-condor-token-minter"
STORE_SCRIPT = "af_store_token.py"
OFFLOAD_AUTHZ = ["READ", "ADVERTISE_MASTER", "ADVERTISE_STARTD", "DAEMON"]
"""What an offloaded worker's token allows: advertising itself and what a startd does, nothing
more (claims are activated with the negotiator's match session, not with this token)."""
CONFIG_DIR = "/etc/condor/config.d"
RUNTIME = PoolRuntime(
    central_manager=f"{CONDOR_CM}.{CONDOR_NAMESPACE}.svc.cluster.local",
    schedd=f"{CONDOR_SCHEDD}.{CONDOR_NAMESPACE}.svc.cluster.local",
    key_dir="/etc/condor/af-keys",
    token_dir="/etc/condor/af-tokens",
    files_dir="/etc/condor/af",
    tls_dir="/etc/condor/af-tls",
    spool_dir="/var/lib/condor/spool",
)
CLIENT_CONFIG = "/etc/af/condor/condor_config"
"""Where notebooks find the client config (`CONDOR_CONFIG`)."""
POOL_FILE, ROLE_FILE, REMOTE_FILE = "90-af-pool.conf", "91-af-role.conf", "92-af-offload.conf"
"""Names in `config.d`: after the images' own `01-*.conf`, so these settings win."""
PRESTOP = (
    "condor_off -graceful -daemon startd || true; "
    "while grep -qx condor_startd /proc/[0-9]*/comm 2>/dev/null; do sleep 10; done"
)
"""A worker being removed: retire its jobs (MaxJobRetirementTime), wait until the startd is gone."""
RETIRE_MARGIN_SECONDS = 120
"""Termination grace beyond the retirement time: vacating and transferring outputs."""


def worker_name(group: str) -> str:
    """Name of a worker group's Deployment."""
    return f"{WORKER}-{group}"


def worker_labels(group: str) -> dict[str, str]:
    """Labels of a worker group's pods (and its Deployment's selector)."""
    return {
        "app.kubernetes.io/name": WORKER,
        "app.kubernetes.io/component": "worker",
        WORKER_GROUP_LABEL: group,
        **PART_OF,
    }


def pool_client(cfg: FacilityConfig) -> ServiceClient:
    """What notebooks need to use the pool: HTCondor's tools and bindings read its client config."""
    return ServiceClient(env={"CONDOR_CONFIG": CLIENT_CONFIG}, files={CLIENT_CONFIG: render_client(cfg, RUNTIME)})


def service_labels(name: str) -> dict[str, str]:
    """Labels of the central manager's or the schedd's pods (and their selectors)."""
    return {"app.kubernetes.io/name": name, **PART_OF}


def digest(*texts: str) -> str:
    """A pod template's config digest: a change of any of `texts` rolls its pods."""
    return hashlib.sha256("\x00".join(texts).encode()).hexdigest()


def token_init_container(
    cfg: FacilityConfig, identity: str, authz: list[str], token_mount: str, owner: int | None = None
) -> dict[str, Any]:
    """An init container that mints an IDTOKEN for `identity`, limited to `authz` (for example
    READ and ADMINISTRATOR for the autoscaler), into `token_mount`/token. It needs the pod to
    have the `config` and `pool-key` volumes of `daemon_volumes()`; the key stays in the init
    container, the main container mounts only the token's volume (owned by `owner` if the main
    container runs as that user)."""
    limits = " ".join(f"-authz {a}" for a in authz)
    return {
        "name": "mint-token",
        "image": cfg.condor.image("cm"),
        "command": [
            "/bin/sh",
            "-c",
            f"umask 077 && condor_token_create -identity {identity} {limits} > {token_mount}/token"
            + (f" && chown {owner}:{owner} {token_mount}/token" if owner is not None else ""),
        ],
        "resources": resources("10m", "32Mi", "200m", "128Mi"),
        "volumeMounts": [
            {"name": "config", "mountPath": f"{CONFIG_DIR}/{POOL_FILE}", "subPath": "pool.conf", "readOnly": True},
            {"name": "pool-key", "mountPath": RUNTIME.key_dir, "readOnly": True},
            {"name": "token", "mountPath": token_mount},
        ],
    }


def _daemon_container(cfg: FacilityConfig, image: str, role_file: str, resources: dict[str, Any]) -> dict[str, Any]:
    """The daemon's container: its token minted from the signing key, then condor_master in
    the foreground (the pod shares its process namespace, so the master is not PID 1)."""
    token = f"{RUNTIME.token_dir}/pool"
    start = (
        f"umask 077 && condor_token_create -identity {daemon_identity(cfg)} > {token}.new "
        f"&& mv {token}.new {token} && exec /usr/sbin/condor_master -f"
    )
    return {
        "name": "condor",
        "image": image,
        "command": ["/bin/sh", "-c", start],
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "resources": resources,
        "volumeMounts": [
            {"name": "config", "mountPath": f"{CONFIG_DIR}/{POOL_FILE}", "subPath": "pool.conf", "readOnly": True},
            {"name": "config", "mountPath": f"{CONFIG_DIR}/{ROLE_FILE}", "subPath": role_file, "readOnly": True},
            {"name": "files", "mountPath": RUNTIME.files_dir, "readOnly": True},
            {"name": "pool-key", "mountPath": RUNTIME.key_dir, "readOnly": True},
            {"name": "tokens", "mountPath": RUNTIME.token_dir},
        ],
    }


def daemon_volumes() -> list[dict[str, Any]]:
    """The config, the plugin files, the signing key and the daemon's token directory."""
    files = [MAPFILE, PLUGIN_CONFIG, PLUGIN_SCRIPT]
    return [
        {"name": "config", "configMap": {"name": CONFIG_MAP}},
        {"name": "files", "configMap": {"name": CONFIG_MAP, "items": [{"key": f, "path": f} for f in files]}},
        {"name": "pool-key", "secret": {"secretName": KEY_SECRET, "defaultMode": 0o400}},
        {"name": "tokens", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
    ]


def service_pod(
    cfg: FacilityConfig, service: str, image: str, role_file: str, resources: dict[str, Any], port: int
) -> dict[str, Any]:
    """The central manager's or the schedd's pod: on system nodes, reachable on its shared
    port, with its certificate for users' TLS and its spool."""
    container = _daemon_container(cfg, image, role_file, resources)
    container["ports"] = [{"name": "condor", "containerPort": port}]
    container["readinessProbe"] = {"tcpSocket": {"port": port}, "periodSeconds": 10}
    container["livenessProbe"] = {"tcpSocket": {"port": port}, "initialDelaySeconds": 60, "periodSeconds": 30}
    container["volumeMounts"] += [
        {"name": "tls", "mountPath": RUNTIME.tls_dir, "readOnly": True},
        {"name": "spool", "mountPath": RUNTIME.spool_dir},
    ]
    return {
        "shareProcessNamespace": True,
        "terminationGracePeriodSeconds": 120,
        "nodeSelector": dict(SYSTEM_NODES),
        "containers": [container],
        "volumes": [*daemon_volumes(), {"name": "tls", "secret": {"secretName": f"{service}-tls"}}],
    }


def worker_pod(cfg: FacilityConfig, group: WorkerGroup, cache: ServiceClient | None) -> dict[str, Any]:
    """A worker of `group`: on the group's nodes, tolerating their taints, sized to the node
    (requests = limits: a guaranteed pod), with its GPUs, /cvmfs and the `cache`'s client files."""
    assert group.pod_cpus is not None and group.pod_memory_mib is not None, "sizes are checked by cross_checks"
    size = {"cpu": f"{round(group.pod_cpus * 1000)}m", "memory": f"{group.pod_memory_mib}Mi"}
    if group.gpus:
        size["nvidia.com/gpu"] = str(group.gpus)
    container = _daemon_container(
        cfg, cfg.condor.image("execute"), f"execute-{group.name}.conf", {"requests": dict(size), "limits": size}
    )
    container["lifecycle"] = {"preStop": {"exec": {"command": ["/bin/sh", "-c", PRESTOP]}}}
    volumes = daemon_volumes()
    container["volumeMounts"].append({"name": "execute", "mountPath": "/var/lib/condor/execute"})
    volumes.append({"name": "execute", "emptyDir": {}})
    if cfg.cvmfs.enabled:
        container["volumeMounts"].append(
            {"name": "cvmfs", "mountPath": CVMFS_MOUNT, "readOnly": True, "mountPropagation": "HostToContainer"}
        )
        volumes.append({"name": "cvmfs", "persistentVolumeClaim": {"claimName": CVMFS_CLAIM, "readOnly": True}})
    if cache is not None:
        for index, path in enumerate(sorted(cache.files)):
            container["volumeMounts"].append(
                {"name": "job-files", "mountPath": path, "subPath": f"file-{index}", "readOnly": True}
            )
        container["volumeMounts"].append({"name": "ca-certs", "mountPath": CA_CERT_DIR, "readOnly": True})
        volumes += [
            {"name": "job-files", "configMap": {"name": JOB_FILES}},
            {"name": "ca-certs", "configMap": {"name": TRUST_CONFIGMAP}},
        ]
    assert group.node_group is not None
    spec: dict[str, Any] = {
        "shareProcessNamespace": True,
        "terminationGracePeriodSeconds": cfg.condor.retire_grace_minutes * 60 + RETIRE_MARGIN_SECONDS,
        "nodeSelector": group_nodes(group.name),
        "containers": [container],
        "volumes": volumes,
    }
    if group.node_group.taints:
        spec["tolerations"] = tolerations(group.node_group.taints)
    return spec


def offload_worker_pod(cfg: FacilityConfig, group: WorkerGroup) -> dict[str, Any]:
    """A worker of an offload group: on its gateway's virtual node (a Slurm job at the centre,
    its flags in the annotation the plugin reads), sized by the gateway, with a minted token
    instead of the signing key, and no /cvmfs or cache files (the cluster's, not the centre's)."""
    assert group.gateway is not None and group.pod_cpus is not None and group.pod_memory_mib is not None
    size = {"cpu": str(int(group.pod_cpus)), "memory": f"{group.pod_memory_mib}Mi"}
    if group.gpus:
        size["nvidia.com/gpu"] = str(group.gpus)
    config = {"name": "config", "readOnly": True}
    container = {
        "name": "condor",
        "image": cfg.condor.image("execute"),
        "command": ["/usr/sbin/condor_master", "-f"],
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "resources": {"requests": dict(size), "limits": size},
        "lifecycle": {"preStop": {"exec": {"command": ["/bin/sh", "-c", PRESTOP]}}},
        "volumeMounts": [
            {**config, "mountPath": f"{CONFIG_DIR}/{POOL_FILE}", "subPath": "pool.conf"},
            {**config, "mountPath": f"{CONFIG_DIR}/{ROLE_FILE}", "subPath": f"execute-{group.name}.conf"},
            {**config, "mountPath": f"{CONFIG_DIR}/{REMOTE_FILE}", "subPath": "offload.conf"},
            {"name": "tokens", "mountPath": RUNTIME.token_dir, "readOnly": True},
            {"name": "execute", "mountPath": "/var/lib/condor/execute"},
        ],
    }
    return {
        "terminationGracePeriodSeconds": cfg.condor.retire_grace_minutes * 60 + RETIRE_MARGIN_SECONDS,
        "nodeSelector": {GATEWAY_LABEL: group.name},
        "tolerations": [
            {"key": VIRTUAL_NODE_TAINT, "operator": "Exists", "effect": "NoSchedule"},
            {"key": GATEWAY_TAINT_KEY, "operator": "Equal", "value": group.name, "effect": "NoSchedule"},
        ],
        "containers": [container],
        "volumes": [
            {"name": "config", "configMap": {"name": CONFIG_MAP}},
            {
                "name": "tokens",
                "secret": {
                    "secretName": OFFLOAD_TOKEN,
                    "items": [{"key": "token", "path": "pool"}],
                    "defaultMode": 0o400,
                },
            },
            {"name": "execute", "emptyDir": {}},
        ],
    }


def rendered_files(cfg: FacilityConfig, cache: ServiceClient | None) -> dict[str, str]:
    """Every file of the pool's ConfigMap, by key (the role fragments, the map file, the plugin);
    jobs on local workers get the `cache`'s client environment (their node group's, if it has one)."""
    groups = worker_groups(cfg.condor, cfg.cluster, cfg.site.flavors, cfg.offload)
    job_env = dict(cache.env) if cache is not None else {}
    group_env = cache.group_env if cache is not None else {}
    return {
        "pool.conf": render_pool(cfg, RUNTIME),
        "central-manager.conf": render_central_manager(cfg, RUNTIME),
        "submit.conf": render_submit(cfg, RUNTIME),
        **{
            f"execute-{g.name}.conf": render_execute(cfg, RUNTIME, g, job_env | dict(group_env.get(g.name, {})))
            for g in groups.values()
        },
        MAPFILE: render_mapfile(cfg),
        PLUGIN_CONFIG: render_plugin_config(cfg),
        **({"offload.conf": render_offload(cfg, RUNTIME)} if offloading(cfg) else {}),
    }
