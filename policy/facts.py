"""What the rules know about the stack beyond its resources: the pack's config properties.

Under the Pulumi CLI they come from the policy config file (`--policy-pack-config`), one copy
per rule that reads them; `afctl` writes that file from the stack's own config
(`stack_facts`), and the offline runner passes the same values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from components.config.facility import FacilityConfig
from components.infra.quota import QUOTAS
from components.names import NODE_LABELLER, virtual_node

DEFAULT_PRIVILEGED_ALLOW = (
    "cvmfs/cvmfs-csi-nodeplugin",
    "nvidia-device-plugin/nvidia-device-plugin",
    "nvidia-device-plugin/nvidia-device-plugin-gpu-feature-discovery",
    "nvidia-device-plugin/nvidia-device-plugin-node-feature-discovery-worker",
    "monitoring/kube-prometheus-stack-prometheus-node-exporter",
    "monitoring/dcgm-exporter",
)
"""Workloads (`namespace/name`) that need the host, the node agents: the CVMFS CSI node plugin
mounts /cvmfs for every pod of its node, the device plugin and feature discovery advertise the
GPUs, the exporters read the node and its GPUs (the last four come with Helm releases)."""
DEFAULT_CRITICAL = ("xcache/af-xcache", "condor/af-condor-cm", "condor/af-condor-schedd")
"""Workloads (`namespace/name`) a node drain must not take down unannounced."""


_STRINGS = {"type": "array", "items": {"type": "string"}}
SCHEMA: dict[str, dict[str, Any]] = {
    "adminCidrs": {**_STRINGS, "description": "Networks allowed to reach SSH and the Kubernetes API"},
    "publicPorts": {
        "type": "array",
        "items": {"type": "integer", "minimum": 1, "maximum": 65535},
        "description": "TCP ports besides 443 deliberately open to the internet",
    },
    "flavors": {
        "type": "object",
        "additionalProperties": {
            "type": "object",
            "properties": {
                "vcpus": {"type": "integer"},
                "ramGib": {"type": "integer"},
                "gpus": {"type": "integer"},
            },
            "required": ["vcpus", "ramGib"],
        },
        "description": "The site's flavors by name, with their sizes",
    },
    "quotas": {
        "type": "object",
        "properties": {q.key: {"type": "integer", "minimum": 0} for q in QUOTAS},
        "description": "The OpenStack project's quota",
    },
    "production": {"type": "boolean", "description": "The stack is a production facility"},
    "cacheTokenAuth": {"type": "boolean", "description": "The cache must require tokens from clients"},
    "privilegedAllowList": {**_STRINGS, "description": "Workloads (namespace/name) allowed host access"},
    "podSecurity": {
        "type": "object",
        "additionalProperties": {"enum": ["privileged", "baseline", "restricted"]},
        "description": "The Pod Security Standard each of the facility's namespaces enforces",
    },
    "criticalWorkloads": {**_STRINGS, "description": "Workloads (namespace/name) that need a PodDisruptionBudget"},
    "clusterRbacAllowList": {**_STRINGS, "description": "ClusterRoles (by name) a node agent may hold"},
    "secretMarkers": {
        "type": "boolean",
        "description": 'Pulumi secrets show as "[secret]" (the offline plan); the engine hands packs decrypted values',
    },
}


@dataclass(frozen=True)
class Flavor:
    vcpus: int
    ram_gib: int
    gpus: int = 0


@dataclass(frozen=True)
class Facts:
    """The pack config of one rule, with defaults for what was not given."""

    admin_cidrs: tuple[str, ...] = ()
    public_ports: tuple[int, ...] = ()
    flavors: Mapping[str, Flavor] = field(default_factory=dict)
    quotas: Mapping[str, int] = field(default_factory=dict)
    production: bool = False
    cache_token_auth: bool = True
    privileged_allow: tuple[str, ...] = DEFAULT_PRIVILEGED_ALLOW
    pod_security: Mapping[str, str] = field(default_factory=dict)
    critical_workloads: tuple[str, ...] = DEFAULT_CRITICAL
    cluster_rbac_allow: tuple[str, ...] = ()
    secret_markers: bool = False


def facts_from(config: Mapping[str, Any]) -> Facts:
    """Facts from a rule's pack config (JSON values; unknown keys, such as
    `enforcementLevel`, are ignored)."""
    flavors = {
        str(name): Flavor(int(f.get("vcpus", 0)), int(f.get("ramGib", 0)), int(f.get("gpus", 0) or 0))
        for name, f in (config.get("flavors") or {}).items()
        if isinstance(f, Mapping)
    }
    return Facts(
        admin_cidrs=tuple(str(c) for c in config.get("adminCidrs") or ()),
        public_ports=tuple(int(p) for p in config.get("publicPorts") or ()),
        flavors=flavors,
        quotas={str(k): int(v) for k, v in (config.get("quotas") or {}).items()},
        production=bool(config.get("production", False)),
        cache_token_auth=bool(config.get("cacheTokenAuth", True)),
        privileged_allow=tuple(config.get("privilegedAllowList") or DEFAULT_PRIVILEGED_ALLOW),
        pod_security={str(k): str(v) for k, v in (config.get("podSecurity") or {}).items()},
        critical_workloads=tuple(config.get("criticalWorkloads") or DEFAULT_CRITICAL),
        cluster_rbac_allow=tuple(config.get("clusterRbacAllowList") or ()),
        secret_markers=bool(config.get("secretMarkers", False)),
    )


def stack_facts(cfg: FacilityConfig) -> dict[str, Any]:
    """Every fact the stack's config determines, as JSON values under their config names."""
    site, quotas = cfg.site, cfg.site.quotas
    return {
        "adminCidrs": list(site.admin_cidrs),
        "publicPorts": list(cfg.policy.public_ports),
        "flavors": {
            name: {"vcpus": f.vcpus, "ramGib": f.ram_gib, "gpus": f.gpus} for name, f in sorted(site.flavors.items())
        },
        "quotas": {q.key: getattr(quotas, q.field) for q in QUOTAS},
        "production": cfg.policy.production,
        "cacheTokenAuth": cfg.cache.enabled and cfg.cache.token_auth,
        "privilegedAllowList": list(DEFAULT_PRIVILEGED_ALLOW),
        "podSecurity": cfg.policy.pod_security.namespaces(),
        "criticalWorkloads": list(DEFAULT_CRITICAL),
        # A gateway's virtual kubelet registers a Node, Magnum's node labeller labels them:
        # cluster-scoped by nature.
        "clusterRbacAllowList": [
            *(virtual_node(gateway) for gateway in sorted(cfg.offload.gateways)),
            *([NODE_LABELLER] if cfg.cluster.mode == "magnum" else []),
        ],
    }
