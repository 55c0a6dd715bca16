"""Helm values of the zero-to-jupyterhub chart, rendered from the config: a pure function.

No secret is ever in the values: the hub reads its client secret, cookie secret and crypt key
from environment variables filled from a Kubernetes Secret named here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..common.kube import image_parts, resources
from ..common.shipped import shipped
from ..config.facility import FacilityConfig
from ..infra.config import GpuSpec, NodeGroup
from ..names import (
    BEARER_TOKEN_FILE,
    CA_CERT_DIR,
    CVMFS_CLAIM,
    CVMFS_MOUNT,
    GPU_RESOURCE,
    GPU_TOLERATION,
    HUB_NAMESPACE,
    INTERACTIVE_NODES,
    SYSTEM_NODES,
    TRUST_CONFIGMAP,
    group_nodes,
)
from .config import GpuProfile, NotebookProfile

HUB_SECRET = "af-hub-secrets"
"""Kubernetes Secret with keys `client-secret`, `cookie-secret`, `crypt-key`."""
TLS_SECRET = "af-hub-tls"
CLUSTER_ISSUER = "af-acme"
HTTPS_REDIRECT = "af-https-redirect"
"""traefik Middleware (in the hub's namespace) that answers plain HTTP with a redirect to HTTPS."""
TRAEFIK_MIDDLEWARE_API = "traefik.io/v1alpha1"
"""Group and version of traefik's Middleware CRD (traefik v2.10 and later, k3s's traefik v3)."""
TOKEN_SCRIPT = "/opt/af/af_token.py"
SERVER_TOKEN_SCOPES = ["users:activity!user", "access:servers!server", "read:users:name!user", "admin:auth_state!user"]
"""The notebook's API token: the default server scopes plus reading its owner's model with
its auth state (`GET /hub/api/users/<name>`)."""


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
    extensions: tuple[Callable[[dict[str, Any]], None], ...] = ()
    """Other layers' parts of the values (the Dask gateway's service, notebook files), applied
    last, in order."""


def redirect_middleware_spec() -> dict[str, Any]:
    """The traefik Middleware's spec: a permanent redirect of HTTP to HTTPS. traefik redirects
    only a request whose scheme differs, so the router it shares with HTTPS is unaffected."""
    return {"redirectScheme": {"scheme": "https", "permanent": True}}


def http_redirect_annotations(ingress_class: str) -> dict[str, str]:
    """Annotations that make the hub's Ingress answer HTTP (port 80) with a redirect to HTTPS,
    by ingress class; none for a class whose redirect is not known here. Only the hub's Ingress
    carries them: cert-manager's HTTP-01 solver makes its own Ingress, for
    `/.well-known/acme-challenge/<token>` only, which still answers on port 80 (traefik routes the
    longer rule first; ingress-nginx never redirects that path, its `no-tls-redirect-locations`)."""
    if ingress_class == "traefik":
        # traefik names a CRD Middleware `<namespace>-<name>@kubernetescrd` from an Ingress.
        return {"traefik.ingress.kubernetes.io/router.middlewares": f"{HUB_NAMESPACE}-{HTTPS_REDIRECT}@kubernetescrd"}
    if ingress_class == "nginx":
        return {"nginx.ingress.kubernetes.io/ssl-redirect": "true"}
    return {}


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
            "node_selector": group_nodes(group_name),
            "tolerations": [dict(GPU_TOLERATION)],
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
    """The chart's image: name and tag, which it joins with `:`."""
    name, tag = image_parts(reference)
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
        volumes.append({"name": "cvmfs", "persistentVolumeClaim": {"claimName": CVMFS_CLAIM}})
        mounts.append(
            {"name": "cvmfs", "mountPath": CVMFS_MOUNT, "readOnly": True, "mountPropagation": "HostToContainer"}
        )
    if site.trust_internal_ca:
        volumes.append({"name": "af-ca-certs", "configMap": {"name": TRUST_CONFIGMAP}})
        mounts.append({"name": "af-ca-certs", "mountPath": CA_CERT_DIR, "readOnly": True})
    if volumes:
        storage["extraVolumes"] = volumes
        storage["extraVolumeMounts"] = mounts
    ingress_annotations = http_redirect_annotations(hub.ingress_class)
    if hub.tls.mode == "cert-manager":
        ingress_annotations["cert-manager.io/cluster-issuer"] = CLUSTER_ISSUER
    values = {
        "hub": {
            # The facility's own NetworkPolicies (components/flows) decide the hub's flows.
            "networkPolicy": {"enabled": False},
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
                "10-af-auth": shipped("hub", "extra_auth.py"),
                "20-af-profiles": shipped("hub", "extra_profiles.py"),
                "30-af-token": shipped("hub", "extra_token.py"),
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
                "networkPolicy": {"enabled": False},
                "nodeSelector": dict(SYSTEM_NODES),
                "resources": resources("100m", "128Mi", "500m", "512Mi"),
                "pdb": {"enabled": True, "minAvailable": 1},
            },
        },
        "singleuser": {
            "networkPolicy": {"enabled": False},
            # The metadata service is kept from notebooks by the facility's egress policy, not by
            # the chart's privileged iptables init container.
            "cloudMetadata": {"blockWithIptables": False},
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
                    "stringData": shipped("hub", "af_token.py"),
                },
                **{
                    f"af-file-{index}": {"mountPath": path, "mode": 0o444, "stringData": content}
                    for index, (path, content) in enumerate(site.extra_files)
                },
            },
        },
        "scheduling": {
            "userScheduler": {
                "enabled": True,
                "nodeSelector": dict(SYSTEM_NODES),
                "resources": resources("50m", "256Mi", "500m", "512Mi"),
            },
            "userPlaceholder": {"enabled": False},
        },
        "prePuller": {
            "resources": resources("10m", "16Mi", "100m", "64Mi"),
            "hook": {"nodeSelector": dict(SYSTEM_NODES), "resources": resources("10m", "16Mi", "100m", "64Mi")},
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
    for extend in site.extensions:
        extend(values)
    return values
