"""The gateway's configuration, rendered from the config: pure functions.

Two halves. `gateway_settings` is the policy the gateway's cluster options handler
(`files/gateway_options.py`) enforces: limits per IAM group, sizes, images, placement,
lifetimes, the clusters' environment. `gateway_values` is the `dask-gateway` chart's values: the
Kubernetes backend, JupyterHub auth with the API token read from a Secret (never a value), and
the settings plus the handler as `gateway.extraConfig` snippets, which the chart appends to the
`dask_gateway_config.py` it generates (its `templates/gateway/configmap.yaml`).

Both are what a test runs: the settings and the snippets, in a real `dask-gateway-server` whose
backend is the local-process one instead of Kubernetes."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from ..common.kube import PART_OF, image_parts, resources
from ..common.shipped import shipped
from ..config.facility import FacilityConfig
from ..infra.config import NodeGroup, Taint
from ..names import (
    CA_CERT_DIR,
    CVMFS_CLAIM,
    CVMFS_MOUNT,
    DASK_NAMESPACE,
    DASK_USER_LABEL,
    GPU_PRESENT_LABEL,
    GPU_RESOURCE,
    GPU_TAINT_KEY,
    HUB_METRICS,
    SYSTEM_NODES,
    TRUST_CONFIGMAP,
    role_nodes,
)
from .config import worker_groups

NAMESPACE = DASK_NAMESPACE
RELEASE = "dask-gateway"
"""The Helm release; the chart names its objects after it (`api-`, `traefik-`, `controller-`)."""
CHART_REPO = "https://helm.dask.org"
SERVICE = "dask-gateway"
"""The gateway's name as a JupyterHub service: tokens need `access:services!service=dask-gateway`."""
PREFIX = f"/services/{SERVICE}"
"""Where the gateway's traefik serves the API and the dashboards, and the hub's proxy forwards
`https://<hub>/services/dask-gateway/` to it: dashboard links work from a browser."""
TRAEFIK = f"traefik-{RELEASE}"
TRAEFIK_PORT = 80
"""HTTP (API, dashboards) and TCP (Dask's TLS, routed by SNI) on one port (`traefik.service.ports`)."""
API_PORT = 8000
SCHEDULER_PORT, DASHBOARD_PORT = 8786, 8787
"""Ports of the clusters' pods (the Kubernetes backend's `make_pod`)."""
TOKEN_SECRET = "af-dask-gateway-token"
"""Secret (in the gateway's and in the hub's namespace) with the gateway's JupyterHub API token."""
TOKEN_KEY = f"hub.services.{SERVICE}.apiToken"
"""The key the chart reads by default (`gateway.auth.jupyterhub.apiTokenFromSecretKey`, left
unset: its name reads as a credential to the policy pack, its value is only a key name)."""
CLIENT_FILES = "af-dask-client-files"
"""ConfigMap of the files clusters get from other layers (XrdCl's proxy plugin, the pool's client)."""
USER_LABEL = DASK_USER_LABEL
"""Label of a cluster's pods naming its owner (metrics per user)."""
SETTINGS_NAME = "AF_DASK"
"""The name the settings snippet binds, and the options handler reads."""
LIFETIME_COMMAND = "timeout"
"""coreutils' `timeout` ends the scheduler after the maximum lifetime; the gateway sees the
scheduler gone and stops the cluster."""


def gateway_url() -> str:
    """The gateway's API for notebooks and the hub, in the cluster."""
    return f"http://{TRAEFIK}.{NAMESPACE}.svc.cluster.local:{TRAEFIK_PORT}{PREFIX}"


def proxy_address() -> str:
    """Where clients reach their schedulers (TLS, routed by SNI by the gateway's traefik)."""
    return f"gateway://{TRAEFIK}.{NAMESPACE}.svc.cluster.local:{TRAEFIK_PORT}"


def hub_api_url() -> str:
    """z2jh's hub Service, as the gateway calls it to check users' tokens."""
    return f"http://{HUB_METRICS}/hub/api"


@dataclass(frozen=True)
class ClusterSite:
    """What clusters need from other layers: the notebooks' environment and files (where the
    cache is, the pool's client config), the internal CA, and /cvmfs."""

    env: tuple[tuple[str, str], ...] = ()
    files: tuple[tuple[str, str], ...] = ()
    trust_internal_ca: bool = False
    cvmfs: bool = False
    notebook_images: tuple[str, ...] = field(default_factory=tuple)
    """Images of the hub's profiles: the default (first) and the only images clusters may use."""


def _tolerations(groups: dict[str, NodeGroup], gpu: bool) -> list[dict[str, Any]]:
    """Tolerations for every taint of `groups` (the GPU taint only for GPU pods)."""
    taints: dict[tuple[str, str, str], Taint] = {}
    for group in groups.values():
        for taint in group.taints:
            if taint.key != GPU_TAINT_KEY or gpu:
                taints[(taint.key, taint.value, taint.effect)] = taint
    return [
        {"key": t.key, "operator": "Equal", "value": t.value, "effect": t.effect}
        if t.value
        else {"key": t.key, "operator": "Exists", "effect": t.effect}
        for _, t in sorted(taints.items())
    ]


def _volumes(site: ClusterSite) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Pod volumes and container mounts giving clusters the notebooks' files, CA and /cvmfs."""
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    if site.files:
        volumes.append({"name": "af-files", "configMap": {"name": CLIENT_FILES}})
        for index, (path, _) in enumerate(site.files):
            mounts.append({"name": "af-files", "mountPath": path, "subPath": f"file-{index}", "readOnly": True})
    if site.trust_internal_ca:
        volumes.append({"name": "af-ca-certs", "configMap": {"name": TRUST_CONFIGMAP}})
        mounts.append({"name": "af-ca-certs", "mountPath": CA_CERT_DIR, "readOnly": True})
    if site.cvmfs:
        volumes.append({"name": "cvmfs", "persistentVolumeClaim": {"claimName": CVMFS_CLAIM}})
        mounts.append(
            {"name": "cvmfs", "mountPath": CVMFS_MOUNT, "readOnly": True, "mountPropagation": "HostToContainer"}
        )
    return volumes, mounts


def client_file_data(site: ClusterSite) -> dict[str, str]:
    """The data of the `CLIENT_FILES` ConfigMap: one key per file, mounted by `subPath`."""
    return {f"file-{index}": content for index, (_, content) in enumerate(site.files)}


def pod_settings(cfg: FacilityConfig, site: ClusterSite) -> dict[str, Any]:
    """Kubernetes placement and mounts of schedulers, CPU workers and GPU workers
    (`KubeClusterConfig.*_extra_pod_config` / `*_extra_container_config`)."""
    placement = cfg.dask.placement
    volumes, mounts = _volumes(site)
    security = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    container = {"volumeMounts": mounts, "securityContext": security}

    def pod(selector: dict[str, str], tolerations: list[dict[str, Any]]) -> dict[str, Any]:
        spec: dict[str, Any] = {"nodeSelector": selector, "volumes": volumes}
        if tolerations:
            spec["tolerations"] = tolerations
        return spec

    schedulers = {n: g for n, g in cfg.cluster.groups_with(placement.schedulers).items() if g.gpu is None}
    workers_role = role_nodes(placement.workers)
    gpu_groups = worker_groups(cfg, gpu=True)
    settings: dict[str, Any] = {
        "scheduler": pod(role_nodes(placement.schedulers), _tolerations(schedulers, gpu=False)),
        "worker": pod(workers_role, _tolerations(worker_groups(cfg, gpu=False), gpu=False)),
        "container": container,
        "gpuWorker": None,
    }
    if gpu_groups:
        settings["gpuWorker"] = pod({**workers_role, GPU_PRESENT_LABEL: "true"}, _tolerations(gpu_groups, gpu=True))
    return settings


def gateway_settings(cfg: FacilityConfig, site: ClusterSite) -> dict[str, Any]:
    """The policy the options handler enforces, as plain JSON data."""
    dask = cfg.dask
    assert cfg.identity is not None, "af:dask needs af:identity (checked by the config)"
    worker = dask.worker
    return {
        "images": list(site.notebook_images),
        "scheduler": {"cores": dask.scheduler.cores, "memoryGib": dask.scheduler.memory_gib},
        "worker": {
            "cores": worker.cores,
            "memoryGib": worker.memory_gib,
            "maxCores": worker.max_cores,
            "maxMemoryGib": worker.max_memory_gib,
            "maxGpus": worker.max_gpus if worker_groups(cfg, gpu=True) else 0,
        },
        "limits": {
            group: {
                "cores": limits.cores,
                "memoryGib": limits.memory_gib,
                "workersPerCluster": limits.workers_per_cluster,
                "clustersPerUser": limits.clusters_per_user,
            }
            for group, limits in sorted(dask.limits.items())
        },
        "gpuGroups": sorted(cfg.identity.roles.gpu),
        # Only where GPU workers can run: a facility without GPUs names nothing NVIDIA.
        "gpuResource": GPU_RESOURCE if worker_groups(cfg, gpu=True) else None,
        "idleTimeoutSeconds": round(dask.idle_timeout_minutes * 60, 3),
        "maxLifetimeSeconds": math.ceil(dask.max_lifetime_hours * 3600),
        "lifetimeCommand": LIFETIME_COMMAND,
        "environment": dict(sorted(site.env)),
        "userLabel": USER_LABEL,
        "podLabels": dict(PART_OF),
        "pods": pod_settings(cfg, site),
    }


def settings_snippet(settings: dict[str, Any]) -> str:
    """`gateway.extraConfig` code binding the settings for the options handler."""
    text = json.dumps(settings, indent=1, sort_keys=True)
    if "'''" in text:
        raise ValueError("settings must not contain three single quotes")
    return f"import json as _json\n\n{SETTINGS_NAME} = _json.loads(\n    r'''\n{text}\n'''\n)\n"


def extra_config(settings: dict[str, Any]) -> dict[str, str]:
    """The snippets, in the order the chart runs them (sorted by key)."""
    return {
        "10-af-settings": settings_snippet(settings),
        "20-af-options": shipped("dask", "gateway_options.py"),
    }


def _image(reference: str) -> dict[str, str]:
    name, tag = image_parts(reference)
    return {"name": name, "tag": tag}


def gateway_values(cfg: FacilityConfig, site: ClusterSite) -> dict[str, Any]:
    """The `dask-gateway` chart's values. The JupyterHub API token comes from the Secret
    `TOKEN_SECRET` (`apiTokenFromSecretName`: the chart's deployment reads it into
    `JUPYTERHUB_API_TOKEN`), so no secret is in the values."""
    dask = cfg.dask
    settings = gateway_settings(cfg, site)
    image = _image(dask.gateway_image)
    default_image = _image(site.notebook_images[0])
    system = {"nodeSelector": dict(SYSTEM_NODES)}
    return {
        "gateway": {
            "replicas": 1,
            "prefix": PREFIX,
            "loglevel": "INFO",
            "image": {**image, "pullPolicy": "IfNotPresent"},
            "resources": resources("100m", "256Mi", "1", "1Gi"),
            "auth": {
                "type": "jupyterhub",
                "jupyterhub": {
                    "apiUrl": hub_api_url(),
                    "apiTokenFromSecretName": TOKEN_SECRET,
                },
            },
            "env": [{"name": "JUPYTERHUB_SERVICE_NAME", "value": SERVICE}],
            "backend": {
                # Clusters run the notebook image; the options handler sets it per cluster too.
                "image": {**default_image, "pullPolicy": "IfNotPresent"},
                "namespace": NAMESPACE,
                "scheduler": {
                    "cores": {"request": dask.scheduler.cores, "limit": dask.scheduler.cores},
                    "memory": {
                        "request": f"{dask.scheduler.memory_gib:g}G",
                        "limit": f"{dask.scheduler.memory_gib:g}G",
                    },
                },
            },
            **system,
            "extraConfig": extra_config(settings),
        },
        "controller": {
            "image": {**image, "pullPolicy": "IfNotPresent"},
            "resources": resources("100m", "256Mi", "1", "1Gi"),
            **system,
        },
        "traefik": {
            "resources": resources("100m", "128Mi", "1", "512Mi"),
            # Notebooks reach it in the cluster; browsers through the hub's proxy.
            "service": {"type": "ClusterIP"},
            **system,
        },
        "rbac": {"enabled": True},
    }
