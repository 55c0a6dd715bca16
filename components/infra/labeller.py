"""Mode `magnum`: the node labeller, which gives Magnum's nodes the labels and taints the node
groups declare (Magnum's own node group `labels` configure its driver and never reach the nodes;
it taints nothing). Every later layer selects nodes by those labels, so without it nothing of the
facility would find a node. See `files/af_node_labeller.py`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ..common.kube import NO_PRIVILEGES, PART_OF, RUNTIME_DEFAULT_SECCOMP, SMALL, layer_namespace
from ..common.shipped import shipped
from ..names import NODE_LABELLER, NODE_LABELLER_NAMESPACE
from .config import Cluster
from .nodes import node_labels

MAGNUM_NODEGROUP_LABEL = "magnum.openstack.org/nodegroup"
"""The one label Magnum puts on every node: its node group's name."""
MAGNUM_DEFAULT_GROUP = "default-worker"
"""Magnum's name for a cluster's own worker group: the facility's first node group."""
SCRIPT = "af_node_labeller.py"
USER = 65534


def magnum_groups(cluster: Cluster) -> dict[str, str]:
    """Magnum's node group name of each facility node group: the first (by name) is the
    cluster's default worker group, the others are node groups of their own name."""
    names = sorted(cluster.node_groups)
    return {name: MAGNUM_DEFAULT_GROUP if index == 0 else name for index, name in enumerate(names)}


def labeller_config(cluster: Cluster, interval_seconds: int = 30) -> dict[str, Any]:
    """What the labeller sets, by Magnum node group: the facility's labels and taints."""
    groups = {
        magnum: {
            "labels": node_labels(name, cluster.node_groups[name]),
            "taints": [{"key": t.key, "value": t.value, "effect": t.effect} for t in cluster.node_groups[name].taints],
        }
        for name, magnum in magnum_groups(cluster).items()
    }
    return {"selector": MAGNUM_NODEGROUP_LABEL, "intervalSeconds": interval_seconds, "groups": groups}


def labeller_pod(image: str) -> dict[str, Any]:
    """The labeller's pod: on any untainted node (it runs before any node has the facility's
    labels, and system nodes stay untainted), unprivileged."""
    return {
        "serviceAccountName": NODE_LABELLER,
        "securityContext": {"runAsNonRoot": True, "runAsUser": USER, "runAsGroup": USER, **RUNTIME_DEFAULT_SECCOMP},
        "containers": [
            {
                "name": "labeller",
                "image": image,
                "command": ["python3", f"/etc/af/{SCRIPT}", "/etc/af/config.json"],
                "resources": SMALL,
                "securityContext": {"readOnlyRootFilesystem": True, **NO_PRIVILEGES},
                "volumeMounts": [{"name": "config", "mountPath": "/etc/af", "readOnly": True}],
            }
        ],
        "volumes": [{"name": "config", "configMap": {"name": NODE_LABELLER}}],
    }


class NodeLabeller(pulumi.ComponentResource):
    """The labeller in its namespace, allowed to read and patch nodes and nothing else."""

    def __init__(
        self,
        name: str,
        cluster: Cluster,
        provider: k8s.Provider,
        opts: pulumi.ResourceOptions | None = None,
        namespace_labels: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__("af:infra:NodeLabeller", name, None, opts)
        _, cluster_opts, ns_opts = layer_namespace(self, name, NODE_LABELLER_NAMESPACE, provider, namespace_labels)
        labels = {"app.kubernetes.io/name": NODE_LABELLER, **PART_OF}
        meta = {"name": NODE_LABELLER, "namespace": NODE_LABELLER_NAMESPACE, "labels": labels}
        account = k8s.core.v1.ServiceAccount(f"{name}-sa", metadata=meta, opts=ns_opts)
        role = k8s.rbac.v1.ClusterRole(
            f"{name}-role",
            metadata={"name": NODE_LABELLER, "labels": labels},
            rules=[{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "patch"]}],
            opts=cluster_opts,
        )
        binding = k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-binding",
            metadata={"name": NODE_LABELLER, "labels": labels},
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NODE_LABELLER},
            subjects=[{"kind": "ServiceAccount", "name": NODE_LABELLER, "namespace": NODE_LABELLER_NAMESPACE}],
            opts=pulumi.ResourceOptions.merge(cluster_opts, pulumi.ResourceOptions(depends_on=[role, account])),
        )
        config = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata=meta,
            data={
                "config.json": json.dumps(labeller_config(cluster), indent=2, sort_keys=True),
                SCRIPT: shipped("infra", SCRIPT),
            },
            opts=ns_opts,
        )
        k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=meta,
            spec={
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": labeller_pod(cluster.magnum.labeller_image)},
            },
            opts=pulumi.ResourceOptions.merge(ns_opts, pulumi.ResourceOptions(depends_on=[binding, config])),
        )
        self.register_outputs({})
