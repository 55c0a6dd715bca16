"""Kubernetes building blocks every layer uses: container resources, images, tolerations and a
layer's namespace."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import pulumi
import pulumi_kubernetes as k8s


def resources(cpu: str, memory: str, cpu_limit: str, memory_limit: str) -> dict[str, Any]:
    """Requests and limits of a container: every container declares both."""
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": cpu_limit, "memory": memory_limit}}


PART_OF = {"app.kubernetes.io/part-of": "analysis-facility"}
"""The label every object of the facility carries."""

SMALL = resources("50m", "128Mi", "500m", "512Mi")
"""A small controller's resources."""

RUNTIME_DEFAULT_SECCOMP = {"seccompProfile": {"type": "RuntimeDefault"}}
"""The container runtime's default seccomp profile, for a pod's `securityContext`: Pod Security's
`restricted` level requires it (or a node-local profile)."""
NO_PRIVILEGES = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
"""A container's `securityContext` entries that Pod Security's `restricted` level requires besides
a non-root user: no privilege escalation (setuid binaries gain nothing) and no capability."""


def image_parts(reference: str) -> tuple[str, str]:
    """`name:tag[@sha256:…]` as the name and the tag (with the digest, if any) that charts join
    again with `:`. The first `:` splits, so a digest stays with its tag."""
    name, tag = reference.split(":", 1)
    return name, tag


class _Taint(Protocol):
    key: str
    effect: str


def tolerations(taints: Iterable[_Taint]) -> list[dict[str, str]]:
    """Tolerations of every key and effect among `taints`, whatever their values, each once."""
    return [
        {"key": key, "operator": "Exists", "effect": effect}
        for key, effect in sorted({(t.key, t.effect) for t in taints})
    ]


def layer_namespace(
    component: pulumi.ComponentResource,
    name: str,
    namespace: str,
    provider: k8s.Provider,
    labels: Mapping[str, str] | None = None,
) -> tuple[k8s.core.v1.Namespace, pulumi.ResourceOptions, pulumi.ResourceOptions]:
    """Create the layer's namespace with `labels` (its Pod Security level: the facility's
    `namespace_labels`); it, options for the layer's cluster-wide objects, and options for objects
    inside the namespace (which wait for it)."""
    k8s_opts = pulumi.ResourceOptions(parent=component, provider=provider)
    metadata: dict[str, Any] = {"name": namespace}
    if labels:
        metadata["labels"] = dict(labels)
    ns = k8s.core.v1.Namespace(f"{name}-ns", metadata=metadata, opts=k8s_opts)
    return ns, k8s_opts, pulumi.ResourceOptions(parent=component, provider=provider, depends_on=[ns])
