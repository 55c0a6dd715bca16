"""Helm values of the zero-to-jupyterhub chart, rendered from the config: a pure function.

No secret is ever in the values: the hub reads its client secret, cookie secret and crypt key
from environment variables filled from a Kubernetes Secret named here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .certs import CA_CERT_DIR, TRUST_CONFIGMAP
from .cluster import LABEL_PREFIX, SYSTEM_NODES, role_nodes
from .config import GPU_TAINT_KEY, FacilityConfig, GpuSpec, NodeGroup
from .config.interactive import GpuProfile, NotebookProfile
from .cvmfs import CLAIM, MOUNT
from .dask.hub import apply_hub_values as apply_dask_values
from .shipped import shipped
from .workloads import resources

HUB_SECRET = "af-hub-secrets"
"""Kubernetes Secret with keys `client-secret`, `cookie-secret`, `crypt-key`."""
TLS_SECRET = "af-hub-tls"
CLUSTER_ISSUER = "af-acme"
TOKEN_SCRIPT = "/opt/af/af_token.py"
BEARER_TOKEN_FILE = "/tmp/af-bearer-token"
GPU_RESOURCE = "nvidia.com/gpu"
SERVER_TOKEN_SCOPES = ["users:activity!user", "access:servers!server", "read:users:name!user", "admin:auth_state!user"]
"""The notebook's API token: the default server scopes plus reading its owner's model with
its auth state (`GET /hub/api/users/<name>`)."""

INTERACTIVE_NODES = role_nodes("interactive")


@dataclass(frozen=True)
class HubSite:
    """What the values need beyond the config: where the hub is reached, and whether CVMFS is
    mounted (the claim exists in the hub's namespace)."""

    host: str
    cvmfs: bool
    extra_env: tuple[tuple[str, str], ...] = ()
    """Environment every notebook gets from other layers (where the cache is)."""
    extra_files: tuple[tuple[str, str], ...] = ()
    """Files (absolute path, content) every notebook gets from other layers."""
    trust_internal_ca: bool = False
    """Mount the facility's internal CA (the cache's TLS) as a hashed directory."""


def _quantity_gib(value: float) -> str:
    """KubeSpawner byte specification (binary G)."""
    return f"{value:g}G"


def _cores(value: float) -> float:
    return round(value, 3)


def cpu_profile(profile: NotebookProfile, guarantee_fraction: float) -> dict[str, Any]:
    """A KubeSpawner profile for a CPU size, on interactive nodes (GPU nodes are tainted)."""
    return {
        "display_name": profile.display_name,
        "slug": profile.name,
        "description": profile.description,
        "default": profile.default,
        "kubespawner_override": {
            "cpu_limit": _cores(profile.cpu),
            "cpu_guarantee": _cores(profile.cpu * guarantee_fraction),
            "mem_limit": _quantity_gib(profile.memory_gib),
            "mem_guarantee": _quantity_gib(profile.memory_gib),
            "node_selector": dict(INTERACTIVE_NODES),
        },
    }


def _gpu_kind(gpu: GpuSpec) -> str:
    """What one `nvidia.com/gpu` of the group is, as users read it."""
    model = gpu.model.upper()
    if gpu.mig is not None:
        return f"{model} MIG {gpu.mig.profile}"
    if gpu.time_slicing is not None:
        return f"{model} time-sliced {gpu.time_slicing.replicas} ways"
    return model


def gpu_profile(group_name: str, group: NodeGroup, shape: GpuProfile, guarantee_fraction: float) -> dict[str, Any]:
    """A KubeSpawner profile pinned to one GPU node group: it asks for the GPUs and tolerates
    the GPU taint; nothing else does."""
    assert group.gpu is not None
    model = _gpu_kind(group.gpu)
    return {
        "display_name": f"GPU: {shape.gpus}x {model} ({group_name})",
        "slug": f"gpu-{group_name}",
        "description": f"{shape.gpus} {model} GPU, {shape.cpu:g} cores, {shape.memory_gib:g} GiB",
        "default": False,
        "kubespawner_override": {
            "cpu_limit": _cores(shape.cpu),
            "cpu_guarantee": _cores(shape.cpu * guarantee_fraction),
            "mem_limit": _quantity_gib(shape.memory_gib),
            "mem_guarantee": _quantity_gib(shape.memory_gib),
            "extra_resource_limits": {GPU_RESOURCE: str(shape.gpus)},
            "extra_resource_guarantees": {GPU_RESOURCE: str(shape.gpus)},
            "node_selector": {f"{LABEL_PREFIX}/node-group": group_name},
            "tolerations": [{"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
        },
    }


def gpu_groups(cfg: FacilityConfig) -> dict[str, NodeGroup]:
    """GPU node groups that run notebooks."""
    return {
        name: group
        for name, group in sorted(cfg.cluster.node_groups.items())
        if group.gpu is not None and "interactive" in group.roles
    }


def profile_entries(cfg: FacilityConfig) -> list[dict[str, Any]]:
    """Every profile with the groups that may use it (`None`: everyone who can log in)."""
    hub, roles = cfg.hub, cfg.identity.roles if cfg.identity else None
    entries: list[dict[str, Any]] = [
        {"groups": None, "profile": cpu_profile(p, hub.cpu_guarantee_fraction)} for p in hub.profiles
    ]
    gpu_allowed = sorted(roles.gpu) if roles else []
    for name, group in gpu_groups(cfg).items():
        entries.append(
            {"groups": gpu_allowed, "profile": gpu_profile(name, group, hub.gpu_profile, hub.cpu_guarantee_fraction)}
        )
    return entries


def _image(reference: str) -> dict[str, str]:
    """`name:tag[@sha256:…]` as the chart's name and tag (the chart joins them with `:`)."""
    name, tag = reference.split(":", 1)
    return {"name": name, "tag": tag}


def _secret_env(key: str) -> dict[str, Any]:
    return {"valueFrom": {"secretKeyRef": {"name": HUB_SECRET, "key": key}}}


def hub_values(cfg: FacilityConfig, site: HubSite) -> dict[str, Any]:
    """The chart's values for this facility."""
    identity, hub = cfg.identity, cfg.hub
    assert identity is not None, "cross checks require an identity when the hub is enabled"
    roles = identity.roles
    default = next((p for p in hub.profiles if p.default), hub.profiles[0])
    storage: dict[str, Any] = {"type": "dynamic", "capacity": f"{hub.home_gib}Gi", "homeMountPath": "/home/jovyan"}
    if hub.storage_class:
        storage["dynamic"] = {"storageClass": hub.storage_class}
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    if site.cvmfs:
        volumes.append({"name": "cvmfs", "persistentVolumeClaim": {"claimName": CLAIM}})
        mounts.append({"name": "cvmfs", "mountPath": MOUNT, "readOnly": True, "mountPropagation": "HostToContainer"})
    if site.trust_internal_ca:
        volumes.append({"name": "af-ca-certs", "configMap": {"name": TRUST_CONFIGMAP}})
        mounts.append({"name": "af-ca-certs", "mountPath": CA_CERT_DIR, "readOnly": True})
    if volumes:
        storage["extraVolumes"] = volumes
        storage["extraVolumeMounts"] = mounts
    ingress_annotations = {}
    if hub.tls.mode == "cert-manager":
        ingress_annotations["cert-manager.io/cluster-issuer"] = CLUSTER_ISSUER
    values = {
        "hub": {
            "config": {
                "JupyterHub": {
                    "authenticator_class": "generic-oauth",
                    "admin_access": False,
                    # In-cluster Prometheus reads /hub/metrics without a token (counts, no names).
                    "authenticate_prometheus": not cfg.monitoring.enabled,
                },
                "Authenticator": {
                    "enable_auth_state": True,
                    "manage_groups": True,
                    "refresh_pre_spawn": True,
                    # Also the notebooks' polling period: each poll may refresh the token.
                    "auth_refresh_age": hub.token_refresh_minutes * 60,
                },
                "GenericOAuthenticator": {
                    "client_id": identity.client_id,
                    "oauth_callback_url": f"https://{site.host}/hub/oauth_callback",
                    "authorize_url": identity.endpoint("authorize"),
                    "token_url": identity.endpoint("token"),
                    "userdata_url": identity.endpoint("userinfo"),
                    "scope": list(identity.scopes),
                    "username_claim": identity.username_claim,
                    "allowed_groups": sorted(roles.login),
                    "admin_groups": sorted(roles.admin),
                    "login_service": "IAM",
                },
            },
            "extraEnv": {
                "OAUTH_CLIENT_SECRET": _secret_env("client-secret"),
                "AF_COOKIE_SECRET": _secret_env("cookie-secret"),
                "JUPYTERHUB_CRYPT_KEY": _secret_env("crypt-key"),
            },
            "extraConfig": {
                "10-af-auth": shipped("hubfiles", "extra_auth.py"),
                "20-af-profiles": shipped("hubfiles", "extra_profiles.py"),
                "30-af-token": shipped("hubfiles", "extra_token.py"),
            },
            "nodeSelector": dict(SYSTEM_NODES),
            "resources": resources("200m", "512Mi", "1", "1Gi"),
            "db": {"type": "sqlite-pvc", "pvc": {"storage": "1Gi"}},
            # The chart leaves its budgets off; a drain must move the single hub deliberately.
            "pdb": {"enabled": True, "minAvailable": 1},
        },
        "proxy": {
            "service": {"type": "ClusterIP"},
            "https": {"enabled": False},
            "chp": {
                "nodeSelector": dict(SYSTEM_NODES),
                "resources": resources("100m", "128Mi", "500m", "512Mi"),
                "pdb": {"enabled": True, "minAvailable": 1},
            },
        },
        "singleuser": {
            "image": _image(hub.notebook_image),
            "defaultUrl": "/lab",
            "cmd": ["python3", TOKEN_SCRIPT, "jupyterhub-singleuser"],
            "cpu": {"limit": _cores(default.cpu), "guarantee": _cores(default.cpu * hub.cpu_guarantee_fraction)},
            "memory": {"limit": _quantity_gib(default.memory_gib), "guarantee": _quantity_gib(default.memory_gib)},
            "nodeSelector": dict(INTERACTIVE_NODES),
            "storage": storage,
            "extraEnv": {
                "BEARER_TOKEN_FILE": BEARER_TOKEN_FILE,
                "AF_TOKEN_REFRESH_SECONDS": str(hub.token_refresh_minutes * 60),
                **dict(site.extra_env),
            },
            "extraFiles": {
                "af-token": {
                    "mountPath": TOKEN_SCRIPT,
                    "mode": 0o555,
                    "stringData": shipped("hubfiles", "af_token.py"),
                },
                **{
                    f"af-file-{index}": {"mountPath": path, "mode": 0o444, "stringData": content}
                    for index, (path, content) in enumerate(site.extra_files)
                },
            },
        },
        "scheduling": {
            "userScheduler": {"enabled": True, "resources": resources("50m", "256Mi", "500m", "512Mi")},
            "userPlaceholder": {"enabled": False},
        },
        "prePuller": {
            "resources": resources("10m", "16Mi", "100m", "64Mi"),
            "hook": {"resources": resources("10m", "16Mi", "100m", "64Mi")},
        },
        "cull": {"enabled": True, "timeout": hub.idle_cull_minutes * 60, "every": 300},
        "ingress": {
            "enabled": True,
            "ingressClassName": hub.ingress_class,
            "annotations": ingress_annotations,
            "hosts": [site.host],
            "tls": [{"hosts": [site.host], "secretName": TLS_SECRET}],
        },
        "custom": {
            "af": {
                "groupsClaim": identity.groups_claim,
                # Two polls fit in the margin: the token file never holds an expired token.
                "tokenRefreshMarginSeconds": 3 * hub.token_refresh_minutes * 60,
                "serverTokenScopes": list(SERVER_TOKEN_SCOPES),
                "profiles": profile_entries(cfg),
            }
        },
    }
    if cfg.dask.enabled:
        apply_dask_values(values, cfg, site.host)
    return values
