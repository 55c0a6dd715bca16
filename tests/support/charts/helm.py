"""What Helm does with a release's values, and the stand-in pods a chart's workloads become.

`coalesce` merges user values over a chart's defaults the way Helm 3 does
(helm/helm `pkg/chartutil/coalesce.go`, `coalesceTablesFullKey`): maps merge key by key,
recursively; a user value `null` deletes the key (the default is dropped too); any other value,
lists included, replaces the default whole. A subchart's values are the parent's section under
the subchart's name (or alias) coalesced over the subchart's own defaults.

A `StandIn` is one workload a chart renders (or, for pods a controller creates at run time such
as z2jh's user pods and the operator's Prometheus, one the chart's values describe): everything
that decides where its pods land, what they may do and what they listen on, as plain dicts that
`pod()` turns into a Pod manifest the API server admits."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

Values = dict[str, Any]


def coalesce(defaults: Values, overrides: Values | None) -> Values:
    """`overrides` over `defaults` as Helm merges user values over a chart's values.yaml.
    Neither input is modified."""
    result = copy.deepcopy(defaults)
    for key, value in (overrides or {}).items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = coalesce(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def merge_maps(base: Values, overrides: Values) -> Values:
    """Values files merged as Helm merges `-f` files (helm/helm `pkg/cli/values`, `mergeMaps`),
    which pulumi-kubernetes uses for a Release's `valueYamlFiles` and then its `values` (PR #4293,
    from 4.30.0): maps merge key by key, anything else in `overrides` (a null included, which stays
    a null for `coalesce` to apply) replaces. Neither input is modified."""
    result = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge_maps(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def get(values: Values, path: str, default: Any = None) -> Any:
    """`values` at a dotted path (`a.b.c`); `default` when any step is missing or not a map."""
    node: Any = values
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def truthy(value: Any) -> bool:
    """Go template truth (`if`, `with`): false, 0, "", nil and empty maps/lists are false."""
    return bool(value)


def leaf_paths(values: Values, prefix: str = "") -> list[str]:
    """Dotted paths of the leaves of a values tree; lists and empty maps are leaves."""
    paths: list[str] = []
    for key, value in values.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            paths.extend(leaf_paths(value, path))
        else:
            paths.append(path)
    return paths


def unread(values: Values, reads: set[str]) -> list[str]:
    """Leaf paths of `values` that no path in `reads` covers. A read path covers itself and
    everything below it (a template that renders a subtree with `toYaml` reads all of it)."""
    return [
        path for path in leaf_paths(values) if not any(path == read or path.startswith(read + ".") for read in reads)
    ]


@dataclass
class Container:
    """One container of a stand-in pod."""

    name: str
    ports: list[dict[str, Any]] = field(default_factory=list)
    resources: dict[str, Any] = field(default_factory=dict)
    security_context: dict[str, Any] = field(default_factory=dict)
    init: bool = False

    def manifest(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"name": self.name, "image": f"registry.invalid/stand-in/{self.name}:0"}
        if self.ports:
            spec["ports"] = copy.deepcopy(self.ports)
        if self.resources:
            spec["resources"] = copy.deepcopy(self.resources)
        if self.security_context:
            spec["securityContext"] = copy.deepcopy(self.security_context)
        return spec


@dataclass
class StandIn:
    """A chart workload as our values place it: the owner (kind, name, namespace) and its pod."""

    chart: str
    kind: str
    """Deployment, DaemonSet, StatefulSet or Job: what owns the pods in the cluster."""
    name: str
    namespace: str
    labels: dict[str, str]
    containers: list[Container]
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    affinity: dict[str, Any] = field(default_factory=dict)
    pod_security_context: dict[str, Any] = field(default_factory=dict)
    host_network: bool = False
    host_pid: bool = False
    volumes: list[dict[str, Any]] = field(default_factory=list)
    """Volumes that decide what the pod may do (hostPath: only Pod Security `privileged` admits it); others are left
    out."""
    priority_class_name: str | None = None
    scheduler_name: str | None = None
    created_by: str = "chart"
    """`chart` when the chart renders the workload; otherwise who creates its pods at run time
    (`hub` for z2jh's user pods, `prometheus-operator` for the Prometheus StatefulSet)."""
    source: str = ""
    """The template (repo, path, version) the stand-in mirrors."""

    @property
    def privileged(self) -> bool:
        return any(c.security_context.get("privileged") for c in self.containers)

    @property
    def ports(self) -> list[int]:
        """Container ports of the pod's regular containers (init containers listen on nothing)."""
        return sorted({p["containerPort"] for c in self.containers if not c.init for p in c.ports})

    def requests(self) -> dict[str, dict[str, Any]]:
        """Per regular container, its resources as rendered."""
        return {c.name: c.resources for c in self.containers if not c.init}

    def pod(self, default_scheduler: bool = False) -> dict[str, Any]:
        """A Pod manifest with exactly this placement, security and ports (images are fake).
        `default_scheduler` drops `schedulerName` (z2jh's user-scheduler is a kube-scheduler with
        other scores and the same filters; a test cluster without it would leave the pod Pending)."""
        spec: dict[str, Any] = {
            "containers": [c.manifest() for c in self.containers if not c.init],
        }
        inits = [c.manifest() for c in self.containers if c.init]
        if inits:
            spec["initContainers"] = inits
        if self.node_selector:
            spec["nodeSelector"] = dict(self.node_selector)
        if self.tolerations:
            spec["tolerations"] = copy.deepcopy(self.tolerations)
        if self.affinity:
            spec["affinity"] = copy.deepcopy(self.affinity)
        if self.pod_security_context:
            spec["securityContext"] = copy.deepcopy(self.pod_security_context)
        if self.host_network:
            spec["hostNetwork"] = True
        if self.host_pid:
            spec["hostPID"] = True
        if self.volumes:
            spec["volumes"] = copy.deepcopy(self.volumes)
        if self.priority_class_name:
            spec["priorityClassName"] = self.priority_class_name
        if self.scheduler_name and not default_scheduler:
            spec["schedulerName"] = self.scheduler_name
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{self.name}-stand-in"[:63].rstrip("-"),
                "namespace": self.namespace,
                "labels": dict(self.labels),
                "annotations": {"af.test/owner": f"{self.kind}/{self.name}", "af.test/chart": self.chart},
            },
            "spec": spec,
        }


def resources_of(value: Any) -> dict[str, Any]:
    """A `resources` value as a template renders it with `with`/`toYaml`: nothing when empty."""
    return copy.deepcopy(value) if isinstance(value, dict) and value else {}
