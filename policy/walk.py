"""Plain-dict views of resource inputs the rules share: what a resource is, its pod spec and
containers, Helm values, and the config text formats some inputs carry."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

SECRET = "[secret]"
"""How the offline plan shows a Pulumi secret (`afctl.mocks.SECRET`)."""
UNKNOWN = "[unknown]"
"""A value not known before deployment (the offline plan's and `plain`'s rendering)."""

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
INSTANCE = "openstack:compute/instance:Instance"
MAGNUM_TEMPLATE = "openstack:containerinfra/clusterTemplate:ClusterTemplate"
MAGNUM_CLUSTER = "openstack:containerinfra/cluster:Cluster"
MAGNUM_NODE_GROUP = "openstack:containerinfra/nodeGroup:NodeGroup"
GPU_RESOURCE = "nvidia.com/gpu"

# Where each workload type keeps its pod spec.
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:ReplicaSet": ("spec", "template", "spec"),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "kubernetes:core/v1:Pod": ("spec",),
}


@dataclass(frozen=True)
class Resource:
    """One resource as a rule sees it: its type, name, URN and inputs (plain JSON values;
    Pulumi secrets may show as `SECRET`, values unknown at preview as `UNKNOWN`)."""

    type: str
    name: str
    props: Mapping[str, Any]
    urn: str = ""
    dependencies: tuple[str, ...] = field(default_factory=tuple)
    """URNs this resource depends on (stack rules follow them)."""


class NotApplicable(Exception):
    """A rule cannot judge this resource in this setting; the message says why."""


@dataclass(frozen=True)
class Finding:
    """A stack rule's violation: what is wrong, and the resource it is about (None: the stack)."""

    message: str
    urn: str | None = None


def opaque(value: Any) -> bool:
    """A value a rule cannot look into: a Pulumi secret marker or unknown."""
    return isinstance(value, str) and value in (SECRET, UNKNOWN)


def dig(value: Any, *path: str) -> Any:
    """`value[path[0]][path[1]]…`, or None where a step is missing or not a mapping."""
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def kind(resource: Resource) -> str:
    return resource.type.rsplit(":", 1)[-1]


def label(resource: Resource) -> str:
    """`Deployment condor/af-condor-cm`: the kind and the Kubernetes name when there is one,
    else the Pulumi resource name."""
    meta = resource.props.get("metadata")
    name = dig(meta, "name")
    if isinstance(name, str) and name and not opaque(name):
        namespace = dig(meta, "namespace")
        return f"{kind(resource)} {namespace}/{name}" if isinstance(namespace, str) else f"{kind(resource)} {name}"
    if resource.type == HELM_RELEASE:
        namespace = resource.props.get("namespace") or "default"
        return f"Helm release {namespace}/{resource.props.get('name') or resource.name}"
    return f"{kind(resource)} {resource.name}"


def k8s_name(resource: Resource) -> str:
    """`namespace/name` of a Kubernetes object, as allow-lists name it."""
    meta = resource.props.get("metadata")
    return f"{dig(meta, 'namespace') or 'default'}/{dig(meta, 'name') or resource.name}"


def pod_spec(resource: Resource) -> Mapping[str, Any] | None:
    path = POD_SPEC_PATHS.get(resource.type)
    if path is None:
        return None
    spec = dig(resource.props, *path)
    return spec if isinstance(spec, Mapping) else None


def pod_labels(resource: Resource) -> Mapping[str, Any]:
    """Labels of the pods a workload makes."""
    path = POD_SPEC_PATHS.get(resource.type)
    labels = dig(resource.props, *path[:-1], "metadata", "labels") if path else None
    return labels if isinstance(labels, Mapping) else {}


def containers(pod: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(`container x` or `init container x`, the container) for every container of a pod."""
    for key, what in (("initContainers", "init container"), ("containers", "container")):
        for container in pod.get(key) or []:
            if isinstance(container, Mapping):
                yield f"{what} {container.get('name', '?')}", container


def helm_values(resource: Resource) -> Mapping[str, Any] | None:
    values = resource.props.get("values") if resource.type == HELM_RELEASE else None
    return values if isinstance(values, Mapping) else None


def chart_name(resource: Resource) -> str:
    """The chart's own name, whether given bare, as `repo/name` or as an OCI URL."""
    return str(resource.props.get("chart") or "").rstrip("/").rsplit("/", 1)[-1]


def config_map_files(resource: Resource) -> dict[str, str]:
    """A ConfigMap's text entries by key."""
    if resource.type != CONFIG_MAP:
        return {}
    data = resource.props.get("data")
    if not isinstance(data, Mapping):
        return {}
    return {str(k): v for k, v in data.items() if isinstance(v, str)}


def leaves(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every (path, scalar) below `value`; list items are addressed by index."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from leaves(item, (*path, str(key)))
    elif isinstance(value, Sequence) and not isinstance(value, str):
        for index, item in enumerate(value):
            yield from leaves(item, (*path, str(index)))
    else:
        yield path, value


def mappings(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Mapping[str, Any]]]:
    """Every (path, mapping) below `value`, `value` itself included."""
    if isinstance(value, Mapping):
        yield path, value
        for key, item in value.items():
            yield from mappings(item, (*path, str(key)))
    elif isinstance(value, Sequence) and not isinstance(value, str):
        for index, item in enumerate(value):
            yield from mappings(item, (*path, str(index)))


_CONDOR_LINE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(.*?)\s*$")
_CONDOR_HINT = re.compile(r"^\s*(use\s+ROLE\b|CONDOR_HOST\s*=|SEC_\w+\s*=|ALLOW_\w+\s*=)", re.MULTILINE | re.IGNORECASE)


def is_condor_config(text: str) -> bool:
    return bool(_CONDOR_HINT.search(text))


def condor_settings(text: str) -> list[tuple[str, str]]:
    """`(NAME, value)` of each assignment in an HTCondor config text, names upper-cased (HTCondor
    ignores their case), continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    found = []
    for line in joined.splitlines():
        if line.lstrip().startswith("#"):
            continue
        match = _CONDOR_LINE.match(line)
        if match:
            found.append((match.group(1).upper(), match.group(2)))
    return found


def yaml_mapping(text: str) -> Mapping[str, Any] | None:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    return doc if isinstance(doc, Mapping) else None


def cloud_config(text: str) -> Mapping[str, Any] | None:
    """User-data as a mapping when it is `#cloud-config` YAML."""
    return yaml_mapping(text) if text.startswith("#cloud-config") else None


def written_file(user_data: Mapping[str, Any], path: str) -> str | None:
    """Content of the file cloud-init's `write_files` writes at `path`."""
    for entry in user_data.get("write_files") or []:
        if isinstance(entry, Mapping) and entry.get("path") == path and isinstance(entry.get("content"), str):
            return entry["content"]
    return None
