"""The cache server's pod: XRootD with the rendered config, an init container preparing its
directories, the sidecar keeping its upstream credential fresh and the metrics exporter. Pure
functions of the config."""

from __future__ import annotations

from typing import Any

from ..common.kube import PART_OF, resources, tolerations
from ..config.facility import FacilityConfig
from ..credential.sidecar import SCRIPT, bearer_env, credential_container
from ..names import (
    CACHE_HTTPS_PORT,
    CACHE_METRICS_PORT,
    CACHE_PORT,
    CACHE_SERVICE,
    GPU_TAINT_KEY,
    SYSTEM_NODES,
    role_nodes,
)
from .config import BearerToken, X509Proxy, size_bytes
from .xrootd import CacheRuntime

EXPORTER = "af_xcache_exporter.py"
"""The metrics exporter's program (`files/`), shipped in the cache's ConfigMap."""
XROOTD_USER = 10940
"""The `xrootd` user of the OSG XCache images (opensciencegrid/docker-xcache's Dockerfiles create it
with this fixed UID and GID): the server drops to it, files it reads must be its."""
REPORT_PORT = 9930
"""Loopback UDP port where the server sends the exporter its reports."""
EXPORTER_USER = 65534
"""The exporter runs as nobody: it only reads the config and the disk's usage."""
CONFIG_DIR = "/etc/xrootd/af"
TLS_DIR = "/etc/xrootd/af-tls"
CRED_DIR = "/run/af-cred"
SECRET_DIR = "/etc/af-cred-secret"
RUNTIME = CacheRuntime(
    data_dir="/xcache/data",
    run_dir="/xcache/run",
    scitokens_cfg=f"{CONFIG_DIR}/scitokens.cfg",
    port=CACHE_PORT,
    https_port=CACHE_HTTPS_PORT,
    tls_cert=f"{TLS_DIR}/tls.crt",
    tls_key=f"{TLS_DIR}/tls.key",
    report_port=REPORT_PORT,
    report_seconds=10,
)
LABELS = {"app.kubernetes.io/name": CACHE_SERVICE, **PART_OF}


def _gib(n_bytes: int) -> int:
    return -(-n_bytes // (1 << 30))


def _credential_container(
    upstream: X509Proxy | BearerToken, token_url: str, image: str, once: bool = False
) -> dict[str, Any]:
    """The sidecar (and, `once`, the init container) that renews the upstream credential."""
    if isinstance(upstream, BearerToken):
        mode = "bearer"
        env = bearer_env(
            upstream, token_url, f"{CRED_DIR}/token", f"{SECRET_DIR}/client-secret", upstream.refresh_minutes * 60
        )
    else:
        mode = "x509"
        env = {
            "X509_USER_PROXY": f"{CRED_DIR}/x509up",
            "AF_CERT_FILE": f"{SECRET_DIR}/usercert.pem",
            "AF_KEY_FILE": f"{SECRET_DIR}/userkey.pem",
            "AF_VOMS": upstream.voms or "",
            "AF_VALID_HOURS": str(upstream.valid_hours),
            "AF_REFRESH_SECONDS": str(upstream.valid_hours * 900),
        }
    mounts = [
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": "credential-secret", "mountPath": SECRET_DIR, "readOnly": True},
        {"name": "credential", "mountPath": CRED_DIR},
    ]
    name = "credential-init" if once else "credential"
    container = credential_container(name, image, f"{CONFIG_DIR}/{SCRIPT}", mode, env, mounts, once)
    # As the user the server drops to (`-R xrootd`): the credential it writes, private, must be its.
    container["securityContext"] = {
        "runAsUser": XROOTD_USER,
        "runAsGroup": XROOTD_USER,
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    return container


def exporter_container(image: str) -> dict[str, Any]:
    """The sidecar turning the server's reports into Prometheus metrics. The cache image runs it:
    its python3 (EL9's) already runs the credential sidecar, and no second image is pulled."""
    return {
        "name": "exporter",
        "image": image,
        "command": [
            "python3",
            f"{CONFIG_DIR}/{EXPORTER}",
            *(
                "--udp",
                f"127.0.0.1:{REPORT_PORT}",
                "--http",
                f"0.0.0.0:{CACHE_METRICS_PORT}",
                "--disk",
                RUNTIME.data_dir,
            ),
        ],
        "ports": [{"name": "metrics", "containerPort": CACHE_METRICS_PORT}],
        "resources": resources("10m", "32Mi", "200m", "64Mi"),
        "securityContext": {
            "runAsUser": EXPORTER_USER,
            "runAsGroup": EXPORTER_USER,
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        # No readiness probe: a metrics hiccup must not take the cache out of its Service.
        "livenessProbe": {"httpGet": {"path": "/metrics", "port": "metrics"}, "periodSeconds": 30},
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            # For the disk's size and use (statvfs); XRootD 5.5 does not report them.
            {"name": "data", "mountPath": RUNTIME.data_dir, "readOnly": True},
        ],
    }


def upstream_env(upstream: X509Proxy | BearerToken | None) -> list[dict[str, str]]:
    """What the cache server's XrdCl reads to authenticate upstream."""
    if upstream is None:
        return []
    if isinstance(upstream, BearerToken):
        return [{"name": "BEARER_TOKEN_FILE", "value": f"{CRED_DIR}/token"}]
    return [{"name": "X509_USER_PROXY", "value": f"{CRED_DIR}/x509up"}]


def pod_spec(cfg: FacilityConfig, token_url: str) -> dict[str, Any]:
    """The cache server pod: on cache nodes when there are any, one per node."""
    cache = cfg.cache
    ram = _gib(size_bytes(cache.ram))
    server = {
        "name": "xrootd",
        "image": cache.image,
        # Started as root only to drop to the image's xrootd user (-R) after binding.
        "command": ["xrootd", "-c", f"{CONFIG_DIR}/xrootd.cfg", "-n", CACHE_SERVICE, "-R", "xrootd"],
        "ports": [
            {"name": "root", "containerPort": CACHE_PORT},
            {"name": "https", "containerPort": CACHE_HTTPS_PORT},
        ],
        # scitokens-cpp caches the issuers' keys under XDG_CACHE_HOME: somewhere the server may write.
        "env": [{"name": "XDG_CACHE_HOME", "value": f"{RUNTIME.run_dir}/cache"}, *upstream_env(cache.upstream)],
        "resources": resources("500m", f"{ram + 1}Gi", "4", f"{2 * ram + 2}Gi"),
        "readinessProbe": {"tcpSocket": {"port": CACHE_PORT}, "periodSeconds": 10},
        "livenessProbe": {"tcpSocket": {"port": CACHE_PORT}, "initialDelaySeconds": 30, "periodSeconds": 20},
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "tls", "mountPath": TLS_DIR, "readOnly": True},
            {"name": "data", "mountPath": RUNTIME.data_dir},
            {"name": "run", "mountPath": RUNTIME.run_dir},
            {"name": "credential", "mountPath": CRED_DIR, "readOnly": True},
        ],
    }
    # Root (the image's user) with root's capabilities: hands the volumes to the server's user, as
    # the server itself starts as root to drop to it. So the cache's namespace enforces Pod Security
    # `baseline`, not `restricted` (`af:policy.podSecurity.xcache`).
    prepare = {
        "name": "prepare",
        "image": cache.image,
        "command": ["chown", "-R", "xrootd:xrootd", RUNTIME.data_dir, RUNTIME.run_dir, CRED_DIR],
        "resources": resources("10m", "16Mi", "100m", "64Mi"),
        "volumeMounts": [
            {"name": "data", "mountPath": RUNTIME.data_dir},
            {"name": "run", "mountPath": RUNTIME.run_dir},
            {"name": "credential", "mountPath": CRED_DIR},
        ],
    }
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": f"{CACHE_SERVICE}-config"}},
        {"name": "tls", "secret": {"secretName": f"{CACHE_SERVICE}-tls"}},
        {"name": "run", "emptyDir": {}},
        {"name": "credential", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
    ]
    spec: dict[str, Any] = {
        "terminationGracePeriodSeconds": 60,
        "initContainers": [prepare],
        "containers": [server, exporter_container(cache.image)],
        "volumes": volumes,
        "affinity": {
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": dict(LABELS)}, "topologyKey": "kubernetes.io/hostname"}
                ]
            }
        },
    }
    if cache.upstream is not None:
        spec["initContainers"].append(_credential_container(cache.upstream, token_url, cache.image, once=True))
        spec["containers"].append(_credential_container(cache.upstream, token_url, cache.image))
        volumes.append({"name": "credential-secret", "secret": {"secretName": f"{CACHE_SERVICE}-upstream"}})
    cache_groups = cfg.cluster.groups_with("cache").values()
    if cache_groups:
        spec["nodeSelector"] = role_nodes("cache")
        # Cache nodes' own taints; a GPU group's taint stays for GPU pods only.
        spec["tolerations"] = tolerations(t for g in cache_groups for t in g.taints if t.key != GPU_TAINT_KEY)
    else:
        spec["nodeSelector"] = dict(SYSTEM_NODES)  # no node is meant for it: with the other services
    return spec
