"""HPC offload gateways: per gateway, interLink's virtual kubelet in the cluster (a virtual node
whose pods become Slurm jobs at the centre), the credential it presents to the centre's interLink
API, and the files the centre installs on its edge (`files/offload/<gateway>/`).

The virtual kubelet registers a Node, so it needs a ClusterRole (nodes are cluster-scoped); it
reads only what pods bound to its node reference. Its token for the edge comes either from IAM
(client-credentials grant, renewed by a sidecar) or from a Secret holding the centre's token;
neither appears in a ConfigMap or an environment variable."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ..common import rendered
from ..common.kube import NO_PRIVILEGES, PART_OF, RUNTIME_DEFAULT_SECCOMP, layer_namespace, resources
from ..config.identity import Identity
from ..credential import sidecar
from ..names import OFFLOAD_NAMESPACE, SYSTEM_NODES, virtual_node
from .config import Gateway, IamClientAuth
from .config import Offload as OffloadConfig
from .interlink import TOKEN_FILE, edge_files, virtual_kubelet_config

USER = 65534
TOKEN_DIR = TOKEN_FILE.rsplit("/", 1)[0]
CONFIG_DIR = "/etc/interlink"
SECRET_DIR = "/etc/af-gateway-secret"
TOKEN_REFRESH_SECONDS = 600
VK_RULES: list[dict[str, Any]] = [
    # Its own Node, its heartbeat and status.
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["create", "get", "list", "watch", "update", "patch"]},
    {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["update", "patch"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create", "get", "update", "patch"]},
    # Pods bound to it, and what they reference (shipped to the centre with the pod).
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "delete"]},
    {"apiGroups": [""], "resources": ["pods/status"], "verbs": ["update", "patch"]},
    {"apiGroups": [""], "resources": ["configmaps", "secrets", "services"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
]
"""What a virtual kubelet does, and nothing else: no wildcard."""


def _token_container(offload: OffloadConfig, auth: IamClientAuth, token_url: str, once: bool) -> dict[str, Any]:
    """The sidecar renewing the IAM token (and, `once`, the init container fetching the first)."""
    env = sidecar.bearer_env(auth, token_url, TOKEN_FILE, f"{SECRET_DIR}/client-secret", TOKEN_REFRESH_SECONDS)
    mounts = [
        {"name": "config", "mountPath": f"{CONFIG_DIR}/{sidecar.SCRIPT}", "subPath": sidecar.SCRIPT},
        {"name": "secret", "mountPath": SECRET_DIR, "readOnly": True},
        {"name": "token", "mountPath": TOKEN_DIR},
    ]
    name = "first-token" if once else "token"
    script = f"{CONFIG_DIR}/{sidecar.SCRIPT}"
    return sidecar.credential_container(name, offload.token_image, script, "bearer", env, mounts, once)


def virtual_kubelet_pod(offload: OffloadConfig, name: str, gateway: Gateway, token_url: str) -> dict[str, Any]:
    """The virtual kubelet of `gateway`, on a system node, unprivileged. `token_url`: IAM's token
    endpoint, for an IAM client without its own."""
    vk = {
        "name": "vk",
        "image": offload.virtual_kubelet_image,
        "env": [
            {"name": "NODENAME", "value": virtual_node(name)},
            {"name": "KUBELET_PORT", "value": "10250"},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "CONFIGPATH", "value": f"{CONFIG_DIR}/InterLinkConfig.yaml"},
            {"name": "VKTOKENFILE", "value": TOKEN_FILE},
        ],
        "resources": resources("100m", "128Mi", "500m", "512Mi"),
        "securityContext": dict(NO_PRIVILEGES),
        "volumeMounts": [
            {
                "name": "config",
                "mountPath": f"{CONFIG_DIR}/InterLinkConfig.yaml",
                "subPath": "InterLinkConfig.yaml",
                "readOnly": True,
            },
            {"name": "token", "mountPath": TOKEN_DIR, "readOnly": True},
        ],
    }
    spec: dict[str, Any] = {
        "serviceAccountName": virtual_node(name),
        "nodeSelector": dict(SYSTEM_NODES),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": USER,
            "runAsGroup": USER,
            "fsGroup": USER,
            **RUNTIME_DEFAULT_SECCOMP,
        },
        "containers": [vk],
        "volumes": [{"name": "config", "configMap": {"name": virtual_node(name)}}],
    }
    if isinstance(gateway.auth, IamClientAuth):
        spec["initContainers"] = [_token_container(offload, gateway.auth, token_url, once=True)]
        spec["containers"].append(_token_container(offload, gateway.auth, token_url, once=False))
        spec["volumes"] += [
            {
                "name": "secret",
                "secret": {
                    "secretName": virtual_node(name),
                    "items": [{"key": "client-secret", "path": "client-secret"}],
                },
            },
            {"name": "token", "emptyDir": {"medium": "Memory"}},
        ]
    else:
        # The centre's token, as the file the kubelet reads.
        spec["volumes"].append(
            {
                "name": "token",
                "secret": {"secretName": virtual_node(name), "items": [{"key": "token", "path": "token"}]},
            }
        )
    return spec


class Offload(pulumi.ComponentResource):
    """Every gateway's virtual kubelet in the `interlink` namespace. `nodes` are the virtual
    nodes' names by gateway."""

    nodes: dict[str, str]

    def __init__(
        self,
        name: str,
        offload: OffloadConfig,
        identity: Identity | None,
        provider: k8s.Provider,
        opts: pulumi.ResourceOptions | None = None,
        namespace_labels: Mapping[str, str] | None = None,
    ) -> None:
        """`identity` gives the token endpoint of IAM clients that do not name their own;
        `namespace_labels`: its namespace's."""
        super().__init__("af:index:Offload", name, None, opts)
        _, cluster_opts, ns_opts = layer_namespace(self, name, OFFLOAD_NAMESPACE, provider, namespace_labels)
        token_url = identity.endpoint("token") if identity else ""
        self.nodes = {}
        for gw_name, gateway in sorted(offload.gateways.items()):
            self.nodes[gw_name] = self._gateway(name, offload, token_url, gw_name, gateway, cluster_opts, ns_opts)
        self.register_outputs({"nodes": self.nodes})

    def _gateway(
        self,
        name: str,
        offload: OffloadConfig,
        token_url: str,
        gw_name: str,
        gateway: Gateway,
        cluster_opts: pulumi.ResourceOptions,
        ns_opts: pulumi.ResourceOptions,
    ) -> str:
        node = virtual_node(gw_name)
        labels = {"app.kubernetes.io/name": node, **PART_OF}
        prefix = f"{name}-{gw_name}"
        vk_config = virtual_kubelet_config(gw_name, gateway, OFFLOAD_NAMESPACE).render()
        rendered.publish(f"offload/{gw_name}", "virtual-kubelet.yaml", vk_config)
        for filename, text in edge_files(gateway, OFFLOAD_NAMESPACE).items():
            rendered.publish(f"offload/{gw_name}", filename, text)
        account = k8s.core.v1.ServiceAccount(
            f"{prefix}-sa", metadata={"name": node, "namespace": OFFLOAD_NAMESPACE, "labels": labels}, opts=ns_opts
        )
        role = k8s.rbac.v1.ClusterRole(
            f"{prefix}-role", metadata={"name": node, "labels": labels}, rules=VK_RULES, opts=cluster_opts
        )
        binding = k8s.rbac.v1.ClusterRoleBinding(
            f"{prefix}-binding",
            metadata={"name": node, "labels": labels},
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": node},
            subjects=[{"kind": "ServiceAccount", "name": node, "namespace": OFFLOAD_NAMESPACE}],
            opts=pulumi.ResourceOptions.merge(cluster_opts, pulumi.ResourceOptions(depends_on=[role, account])),
        )
        auth = gateway.auth
        if isinstance(auth, IamClientAuth):
            assert auth.client_secret is not None, "checked by the config"
            secret_data = {"client-secret": pulumi.Output.secret(auth.client_secret.get_secret_value())}
        else:
            assert auth.token is not None, "checked by the config"
            secret_data = {"token": pulumi.Output.secret(auth.token.get_secret_value())}
        secret = k8s.core.v1.Secret(
            f"{prefix}-secret",
            metadata={"name": node, "namespace": OFFLOAD_NAMESPACE, "labels": labels},
            type="Opaque",
            string_data=secret_data,
            opts=ns_opts,
        )
        config = k8s.core.v1.ConfigMap(
            f"{prefix}-config",
            metadata={"name": node, "namespace": OFFLOAD_NAMESPACE, "labels": labels},
            data={"InterLinkConfig.yaml": vk_config, sidecar.SCRIPT: sidecar.script()},
            opts=ns_opts,
        )
        k8s.apps.v1.Deployment(
            f"{prefix}-vk",
            metadata={"name": node, "namespace": OFFLOAD_NAMESPACE, "labels": labels},
            spec={
                "replicas": 1,
                # Two kubelets for one node would fight over it: the old one goes first.
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": virtual_kubelet_pod(offload, gw_name, gateway, token_url),
                },
            },
            opts=pulumi.ResourceOptions.merge(ns_opts, pulumi.ResourceOptions(depends_on=[binding, secret, config])),
        )
        return node
