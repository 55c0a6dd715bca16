"""The node-level caches (`af:cache.nodeLocal`): a DaemonSet of small XCaches on the nodes of the chosen groups, each
a proxy file cache whose only origin is the site cache (`xrootd.render_node_xrootd_cfg`). Pure functions of the
config: the settings, the pod, the Service.

Trust: XRootD 5.5's proxy cannot pass a user's token on, so a node cache reads the site cache as itself (its own IAM
client, `af:cache.nodeLocal.client`) and checks every user's token itself, with the site cache's rules, before it
reads anything. A node cache is therefore a trusted component of the facility, like the site cache."""

from __future__ import annotations

import hashlib
import math
from typing import Any

from ..common.kube import PART_OF, resources, tolerations
from ..config.facility import FacilityConfig
from ..credential.sidecar import SCRIPT, bearer_env, credential_container
from ..names import (
    CA_CERT_DIR,
    CACHE_HTTPS_PORT,
    CACHE_NAMESPACE,
    CACHE_PORT,
    CACHE_SERVICE,
    CONFIG_HASH_ANNOTATION,
    NODE_CACHE_SERVICE,
    NODE_GROUP_LABEL,
    TRUST_CONFIGMAP,
    app,
)
from .config import NODE_DISK_HEADROOM, NodeCacheClient, node_cache_groups, size_bytes
from .pod import CONFIG_DIR, CRED_DIR, RUNTIME, SECRET_DIR, TLS_DIR, XROOTD_USER, exporter_container
from .xrootd import NodeCache, render_node_xrootd_cfg, render_scitokens_cfg

LABELS = {**app(NODE_CACHE_SERVICE), **PART_OF}
CONFIG_MAP = f"{NODE_CACHE_SERVICE}-config"
CLIENT_SECRET = f"{NODE_CACHE_SERVICE}-client"
TLS_SECRET = f"{NODE_CACHE_SERVICE}-tls"
XRDCL_OVERHEAD_MIB = 256
"""Memory a node cache's server needs besides `pfc.ram`: its XrdCl towards the site cache, TLS, the token library."""
RUN_DIR_LIMIT = "256Mi"
"""The server's admin path and the token library's key cache: small files only."""


def site_cache_address() -> str:
    """`host:port` of the site cache, as its certificate names it (the node caches verify it with the internal CA)."""
    return f"{CACHE_SERVICE}.{CACHE_NAMESPACE}.svc.cluster.local:{CACHE_PORT}"


def node_cache(cfg: FacilityConfig) -> NodeCache:
    """The node caches' settings, from `af:cache.nodeLocal`."""
    local = cfg.cache.node_local
    return NodeCache(
        site_cache=site_cache_address(),
        files_max=local.files_max,
        ram=local.ram,
        block_size=local.block_size,
        prefetch=local.prefetch,
    )


def config_files(cfg: FacilityConfig) -> dict[str, str]:
    """The rendered server config of a node cache: its `xrootd.cfg` and the site cache's `scitokens.cfg`."""
    return {
        "xrootd.cfg": render_node_xrootd_cfg(cfg, RUNTIME, node_cache(cfg)),
        "scitokens.cfg": render_scitokens_cfg(cfg),
    }


def disk_limit_mib(cfg: FacilityConfig) -> int:
    """The node cache's disk (`sizeLimit` of its emptyDir), in MiB: `filesMax` and `NODE_DISK_HEADROOM` above it.
    The purge keeps the cached files under `filesMax`; the kubelet evicts a pod whose emptyDir outgrows its limit,
    so a node never gives the cache more than this."""
    return math.ceil(size_bytes(cfg.cache.node_local.files_max) * (1 + NODE_DISK_HEADROOM) / (1 << 20))


def _ram_mib(cfg: FacilityConfig) -> int:
    return size_bytes(cfg.cache.node_local.ram) >> 20


def server_resources(cfg: FacilityConfig) -> dict[str, Any]:
    """The server's requests and limits: `pfc.ram` and what XrdCl needs besides, twice that at most."""
    ram = _ram_mib(cfg)
    return resources("100m", f"{ram + XRDCL_OVERHEAD_MIB}Mi", "2", f"{2 * (ram + XRDCL_OVERHEAD_MIB)}Mi")


def _quantity_milli(text: str) -> int:
    return int(text[:-1]) if text.endswith("m") else int(float(text) * 1000)


def _quantity_mib(text: str) -> int:
    units = {"Mi": 1, "Gi": 1024}
    return int(text[:-2]) * units[text[-2:]]


def pod_requests(cfg: FacilityConfig) -> tuple[int, int]:
    """What a node cache's pod requests of its node: millicores and MiB, over its long-running containers (its init
    container requests less than they do)."""
    containers = node_pod_spec(cfg, token_url="")["containers"]
    requests = [c["resources"]["requests"] for c in containers]
    return sum(_quantity_milli(r["cpu"]) for r in requests), sum(_quantity_mib(r["memory"]) for r in requests)


def _hardened(container: dict[str, Any]) -> dict[str, Any]:
    """No privilege escalation and no capability: the pod already runs as the image's unprivileged user."""
    context = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    return {**container, "securityContext": {**context, **container.get("securityContext", {})}}


def _credential_container(client: NodeCacheClient, cfg: FacilityConfig, token_url: str, once: bool) -> dict[str, Any]:
    """The sidecar (and, `once`, the init container) fetching the node caches' own token (the site cache's shared
    program, `credential/files/af_credential.py`)."""
    client = client if client.audience else client.model_copy(update={"audience": cfg.cache.audiences[0]})
    env = bearer_env(client, token_url, f"{CRED_DIR}/token", f"{SECRET_DIR}/client-secret", client.refresh_minutes * 60)
    mounts = [
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": "credential-secret", "mountPath": SECRET_DIR, "readOnly": True},
        {"name": "credential", "mountPath": CRED_DIR},
    ]
    name = "credential-init" if once else "credential"
    return _hardened(credential_container(name, cfg.cache.image, f"{CONFIG_DIR}/{SCRIPT}", "bearer", env, mounts, once))


def node_pod_spec(cfg: FacilityConfig, token_url: str) -> dict[str, Any]:
    """A node cache: on the nodes of its groups only (required node affinity on the group label), tolerating their
    taints, unprivileged, with a bounded node-local disk, the internal CA to verify the site cache, its certificate
    for clients, its own token upstream and the metrics exporter."""
    cache, local = cfg.cache, cfg.cache.node_local
    groups = node_cache_groups(cache, cfg.cluster)
    env = [
        # scitokens-cpp caches the issuers' keys under XDG_CACHE_HOME: somewhere the server may write.
        {"name": "XDG_CACHE_HOME", "value": f"{RUNTIME.run_dir}/cache"},
        # XrdCl verifies the site cache's certificate (internal CA) before it sends its token.
        {"name": "X509_CERT_DIR", "value": CA_CERT_DIR},
    ]
    if local.client is not None:
        env.append({"name": "BEARER_TOKEN_FILE", "value": f"{CRED_DIR}/token"})
    server = {
        "name": "xrootd",
        "image": cache.image,
        "command": ["xrootd", "-c", f"{CONFIG_DIR}/xrootd.cfg", "-n", NODE_CACHE_SERVICE],
        "ports": [
            {"name": "root", "containerPort": CACHE_PORT},
            {"name": "https", "containerPort": CACHE_HTTPS_PORT},
        ],
        "env": env,
        "resources": server_resources(cfg),
        "readinessProbe": {"tcpSocket": {"port": CACHE_PORT}, "periodSeconds": 10},
        "livenessProbe": {"tcpSocket": {"port": CACHE_PORT}, "initialDelaySeconds": 30, "periodSeconds": 20},
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "tls", "mountPath": TLS_DIR, "readOnly": True},
            {"name": "ca-certs", "mountPath": CA_CERT_DIR, "readOnly": True},
            {"name": "data", "mountPath": RUNTIME.data_dir},
            {"name": "run", "mountPath": RUNTIME.run_dir},
            {"name": "credential", "mountPath": CRED_DIR, "readOnly": True},
        ],
    }
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": CONFIG_MAP}},
        {"name": "tls", "secret": {"secretName": TLS_SECRET, "defaultMode": 0o440}},
        {"name": "ca-certs", "configMap": {"name": TRUST_CONFIGMAP}},
        {"name": "data", "emptyDir": {"sizeLimit": f"{disk_limit_mib(cfg)}Mi"}},
        {"name": "run", "emptyDir": {"sizeLimit": RUN_DIR_LIMIT}},
        {"name": "credential", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
    ]
    spec: dict[str, Any] = {
        "securityContext": {
            "runAsUser": XROOTD_USER,
            "runAsGroup": XROOTD_USER,
            "runAsNonRoot": True,
            "fsGroup": XROOTD_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationGracePeriodSeconds": 30,
        "automountServiceAccountToken": False,
        "initContainers": [],
        "containers": [_hardened(server), exporter_container(cache.image)],
        "volumes": volumes,
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": NODE_GROUP_LABEL, "operator": "In", "values": groups}]}
                    ]
                }
            }
        },
    }
    taints = [t for name in groups for t in cfg.cluster.node_groups[name].taints]
    if taints:
        # A node agent: on every node of its groups, the GPU nodes' too (it requests no GPU, and sees none).
        spec["tolerations"] = tolerations(taints)
    if local.client is not None:
        spec["initContainers"].append(_credential_container(local.client, cfg, token_url, once=True))
        spec["containers"].append(_credential_container(local.client, cfg, token_url, once=False))
        volumes.append({"name": "credential-secret", "secret": {"secretName": CLIENT_SECRET, "defaultMode": 0o440}})
    return spec


def config_digest(files: dict[str, str]) -> str:
    """The pod template's config digest: a new config rolls the node caches."""
    return hashlib.sha256("\x00".join(f"{k}\x00{v}" for k, v in sorted(files.items())).encode()).hexdigest()


def daemon_set_spec(cfg: FacilityConfig, token_url: str, files: dict[str, str]) -> dict[str, Any]:
    """The DaemonSet's spec: one node cache per node of its groups, replaced one node at a time."""
    return {
        "selector": {"matchLabels": dict(LABELS)},
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
        "template": {
            "metadata": {"labels": dict(LABELS), "annotations": {CONFIG_HASH_ANNOTATION: config_digest(files)}},
            "spec": node_pod_spec(cfg, token_url),
        },
    }


def service_spec() -> dict[str, Any]:
    """The Service pods reach their own node's cache by: traffic stays on the node (`internalTrafficPolicy: Local`),
    so a pod on a node without a node cache gets no answer, and clients are given this name only on nodes with one."""
    return {
        "selector": dict(LABELS),
        "internalTrafficPolicy": "Local",
        "ports": [
            {"name": "root", "port": CACHE_PORT, "targetPort": "root"},
            {"name": "https", "port": CACHE_HTTPS_PORT, "targetPort": "https"},
        ],
    }


def dns_names() -> list[str]:
    """The names its certificate covers: the ones clients use (the FQDN, as `client.node_cache_url` gives it)."""
    return [
        NODE_CACHE_SERVICE,
        f"{NODE_CACHE_SERVICE}.{CACHE_NAMESPACE}.svc",
        f"{NODE_CACHE_SERVICE}.{CACHE_NAMESPACE}.svc.cluster.local",
    ]
