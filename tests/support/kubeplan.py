"""A stack's plan as a Kubernetes cluster sees it: the nodes it registers and the objects it applies.

Everything comes from the plan (`plan.json`'s shape: resources with type, name, parent, dependencies, inputs) and
its rendered files, never from a second copy of the program's rules:
- openstack mode: one Node per VM, named as k3s names it, with the labels and taints its instance metadata
  declares (`af-node-label:<key>` entries, `af-node-taints`: what the VM's k3s config registers), the labels
  kubelet and k3s add themselves, and its flavor's capacity; `nvidia.com/gpu` is what the NVIDIA device plugin would
  advertise with the plan's own device-plugin config (the GPUs times the time-slicing replicas, or the MIG
  instances the node's user-data creates), and nothing when the plan deploys no device plugin;
- magnum mode: one Node per VM of the cluster and its node groups, with the labels Magnum's driver really gives
  its nodes (`magnum.openstack.org/role` and `.../nodegroup`): the node groups' `labels` are driver settings and
  never reach the nodes.
The flavors' sizes are site config (`af:site.flavors`): the plan names the flavor, not its size.
"""

from __future__ import annotations

import base64
import functools
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from components.infra.nodes import LABEL_METADATA_PREFIX, ROLE_METADATA, TAINTS_METADATA

INSTANCE = "openstack:compute/instance:Instance"
MAGNUM_CLUSTER = "openstack:containerinfra/cluster:Cluster"
MAGNUM_TEMPLATE = "openstack:containerinfra/clusterTemplate:ClusterTemplate"
MAGNUM_GROUP = "openstack:containerinfra/nodeGroup:NodeGroup"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
GPU = "nvidia.com/gpu"
DEVICE_PLUGIN_CHART = "nvidia-device-plugin"
DEVICE_PLUGIN_CONFIG_LABEL = "nvidia.com/device-plugin.config"
SECRET, UNKNOWN = "[secret]", "[unknown]"
SECRET_TYPE_KEYS = {"kubernetes.io/tls": ["tls.crt", "tls.key"], "kubernetes.io/ssh-auth": ["ssh-privatekey"]}
"""The keys the API server requires of a Secret type (its validation), for secrets whose keys the plan hides."""
REDACTED = "redacted-by-the-preview"
"""What a secret of the plan (`[secret]`) is replaced with when its object is applied."""
EVICTION_RESERVE_MIB = 100
"""kubelet's default hard eviction threshold (`memory.available<100Mi`), which allocatable memory leaves out."""
MAX_PODS = "110"
CRD_GROUPS = {"cert-manager.io": "the cert-manager chart of the plan", "traefik.io": "k3s's packaged Traefik"}
"""API groups whose CustomResourceDefinitions come with a Helm release of the plan or with the cluster's
distribution: their objects cannot be applied to a bare control plane, and are listed as not applied."""
INSTALL_ORDER = [
    "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodDisruptionBudget", "ServiceAccount",
    "Secret", "ConfigMap", "StorageClass", "PersistentVolume", "PersistentVolumeClaim",
    "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Service",
    "DaemonSet", "Pod", "ReplicaSet", "Deployment", "HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob",
    "IngressClass", "Ingress",
]  # fmt: skip
"""Helm's install order of kinds: how ties between independent objects are broken (the Pulumi engine starts them
in parallel; only declared dependencies order them)."""
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")


@dataclass(frozen=True)
class Flavor:
    vcpus: int
    ram_gib: int
    gpus: int = 0


@dataclass
class NodeSpec:
    """A node as the cluster would register it."""

    name: str
    group: str
    """The node group (`control-plane` for servers; Magnum's node group name in magnum mode)."""
    labels: dict[str, str]
    taints: list[dict[str, str]]
    capacity: dict[str, str]

    @property
    def gpus(self) -> int:
        return int(self.capacity.get(GPU, "0"))


def parse_taint(text: str) -> dict[str, str]:
    """`key=value:Effect` or `key:Effect`, as kubelet's `--register-with-taints` and k3s's `node-taint` take them."""
    spec, effect = text.rsplit(":", 1)
    key, _, value = spec.partition("=")
    return {"key": key, "value": value, "effect": effect} if value else {"key": key, "effect": effect}


def _capacity(flavor: Flavor, gpus: int) -> dict[str, str]:
    capacity = {
        "cpu": str(flavor.vcpus),
        "memory": f"{flavor.ram_gib * 1024 - EVICTION_RESERVE_MIB}Mi",
        "pods": MAX_PODS,
    }
    if gpus:
        capacity[GPU] = str(gpus)
    return capacity


def _kubelet_labels(name: str) -> dict[str, str]:
    return {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}


def resources_of(plan: Mapping[str, Any], type_: str) -> list[dict[str, Any]]:
    return [r for r in plan["resources"] if r["type"] == type_]


def _device_plugin_configs(plan: Mapping[str, Any]) -> dict[str, dict[str, Any]] | None:
    """The device plugin's config per name (its `config.map`), or None when the plan deploys no device plugin."""
    for release in resources_of(plan, HELM_RELEASE):
        if release["inputs"].get("chart") == DEVICE_PLUGIN_CHART:
            config = release["inputs"].get("values", {}).get("config", {})
            configs = {name: yaml.safe_load(text) for name, text in config.get("map", {}).items()}
            configs[""] = configs.get(config.get("default", ""), {})
            return configs
    return None


_MIG_CREATE = re.compile(r"mig -cgi (\S+) -C")


def advertised_gpus(physical: int, labels: Mapping[str, str], user_data: str, plugin: dict[str, Any] | None) -> int:
    """`nvidia.com/gpu` as the device plugin advertises it on a node: nothing without the plugin; with it, each
    GPU times its time-slicing replicas, or the MIG instances the node's boot unit creates (strategy `single`)."""
    if plugin is None or physical == 0:
        return 0
    config = plugin.get(labels.get(DEVICE_PLUGIN_CONFIG_LABEL, ""), plugin[""])
    for resource in config.get("sharing", {}).get("timeSlicing", {}).get("resources", []):
        if resource.get("name") == GPU:
            return physical * int(resource["replicas"])
    if config.get("flags", {}).get("migStrategy", "none") != "none":
        found = _MIG_CREATE.search(user_data)
        assert found, "MIG strategy set but the node's user-data creates no MIG instance"
        return physical * len(found.group(1).split(","))
    return physical


def openstack_nodes(plan: Mapping[str, Any], files: Mapping[str, str], flavors: Mapping[str, Flavor]) -> list[NodeSpec]:
    plugin = _device_plugin_configs(plan)
    nodes = []
    for instance in resources_of(plan, INSTANCE):
        inputs = instance["inputs"]
        metadata = inputs["metadata"]
        role, name = metadata[ROLE_METADATA], inputs["name"]
        flavor = flavors[inputs["flavorName"]]
        labels = _kubelet_labels(name) | {"node.kubernetes.io/instance-type": "k3s"}  # k3s's embedded cloud provider
        if role == "control-plane":
            # k3s labels its servers (embedded etcd) itself.
            labels |= {f"node-role.kubernetes.io/{r}": "true" for r in ("control-plane", "master", "etcd")}
        labels |= {
            k.removeprefix(LABEL_METADATA_PREFIX): v for k, v in metadata.items() if k.startswith(LABEL_METADATA_PREFIX)
        }
        taints = [parse_taint(t) for t in metadata.get(TAINTS_METADATA, "").split(",") if t]
        user_data = files.get(f"cluster/cloud-init/{role}.yaml", "")
        gpus = advertised_gpus(flavor.gpus, labels, user_data, plugin)
        nodes.append(NodeSpec(name, role, labels, taints, _capacity(flavor, gpus)))
    return nodes


MAGNUM_MASTER_TAINT = "node-role.kubernetes.io/master=:NoSchedule"
"""What Magnum's Heat driver registers its masters with (`--register-with-taints`)."""


def magnum_nodes(plan: Mapping[str, Any], flavors: Mapping[str, Flavor]) -> list[NodeSpec]:
    """Magnum's driver labels each node `magnum.openstack.org/role=<group role>` and
    `magnum.openstack.org/nodegroup=<group name>` (kubelet `--node-labels`); the default groups are
    `default-master` (role `master`) and `default-worker` (role `worker`)."""
    (cluster,) = resources_of(plan, MAGNUM_CLUSTER)
    (template,) = resources_of(plan, MAGNUM_TEMPLATE)
    c, t = cluster["inputs"], template["inputs"]
    groups = [
        ("default-master", "master", int(c.get("masterCount", 1)), c.get("masterFlavor") or t["masterFlavor"]),
        ("default-worker", "worker", int(c.get("nodeCount", 1)), c.get("flavor") or t["flavor"]),
    ] + [
        (g["inputs"]["name"], g["inputs"].get("role", "worker"), int(g["inputs"]["nodeCount"]), g["inputs"]["flavorId"])
        for g in resources_of(plan, MAGNUM_GROUP)
    ]
    nodes = []
    for group, role, count, flavor_name in groups:
        for index in range(count):
            name = f"{c['name']}-{group}-{index}"
            labels = _kubelet_labels(name) | {
                "magnum.openstack.org/role": role,
                "magnum.openstack.org/nodegroup": group,
            }
            taints = [parse_taint(MAGNUM_MASTER_TAINT)] if role == "master" else []
            nodes.append(NodeSpec(name, group, labels, taints, _capacity(flavors[flavor_name], 0)))
    return nodes


def virtual_nodes(plan: Mapping[str, Any]) -> list[NodeSpec]:
    """Each offload gateway's virtual node, as interLink's virtual kubelet registers it from its
    `InterLinkConfig.yaml`: its node name, labels, taints and the resources it advertises."""
    nodes = []
    for config_map in resources_of(plan, "kubernetes:core/v1:ConfigMap"):
        data = config_map["inputs"].get("data") or {}
        if "InterLinkConfig.yaml" not in data:
            continue
        config = yaml.safe_load(data["InterLinkConfig.yaml"])
        name = config_map["inputs"]["metadata"]["name"]
        labels = _kubelet_labels(name) | dict(label.split("=", 1) for label in config["NodeLabels"])
        taints = [{"key": t["Key"], "value": t["Value"], "effect": t["Effect"]} for t in config["NodeTaints"]]
        resources = config["Resources"]
        capacity = {"cpu": resources["CPU"], "memory": resources["Memory"], "pods": resources["Pods"]}
        gpus = sum(a["Available"] for a in resources.get("Accelerators") or [] if a["ResourceType"] == GPU)
        if gpus:
            capacity[GPU] = str(gpus)
        nodes.append(NodeSpec(name, name, labels, taints, capacity))
    return nodes


def stack_nodes(plan: Mapping[str, Any], files: Mapping[str, str], flavors: Mapping[str, Flavor]) -> list[NodeSpec]:
    if resources_of(plan, MAGNUM_CLUSTER):
        return magnum_nodes(plan, flavors) + virtual_nodes(plan)
    return openstack_nodes(plan, files, flavors) + virtual_nodes(plan)


# -- objects ----------------------------------------------------------------------------------------------------------


@dataclass
class PlanObject:
    urn: str
    manifest: dict[str, Any]
    depends_on: set[str] = field(default_factory=set)
    """URNs of the plan's Kubernetes objects this one waits for (through components too)."""

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    @property
    def name(self) -> str:
        return self.manifest["metadata"]["name"]

    @property
    def namespace(self) -> str | None:
        return self.manifest["metadata"].get("namespace")

    @property
    def ref(self) -> str:
        """`Kind namespace/name` for messages."""
        return f"{self.kind} {self.namespace + '/' if self.namespace else ''}{self.name}"

    @property
    def group(self) -> str:
        api_version = self.manifest["apiVersion"]
        return api_version.split("/")[0] if "/" in api_version else ""


def _unsecret(value: Any, encoded: bool) -> Any:
    if isinstance(value, dict):
        return {k: _unsecret(v, encoded) for k, v in value.items()}
    if isinstance(value, list):
        return [_unsecret(v, encoded) for v in value]
    if value == SECRET:
        return base64.b64encode(REDACTED.encode()).decode() if encoded else REDACTED
    if value == UNKNOWN:
        raise ValueError("an unknown value in a Kubernetes object of the plan: it cannot be applied")
    return value


def manifest_of(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The object the provider would send, with the plan's `[secret]` values replaced by a placeholder
    (base64-encoded where the field holds base64: a Secret's or ConfigMap's `data`/`binaryData`). A map that is
    secret as a whole becomes a map of one placeholder key."""
    manifest = {}
    for key, value in inputs.items():
        encoded = key == "binaryData" or (key == "data" and inputs.get("kind") == "Secret")
        if key in ("data", "stringData", "binaryData") and value == SECRET:
            # A wholly secret map hides its keys too: the ones its Secret type requires, or a placeholder.
            value = dict.fromkeys(SECRET_TYPE_KEYS.get(inputs.get("type", ""), ["redacted"]), SECRET)
        manifest[key] = _unsecret(value, encoded)
    return manifest


def _descendants(plan: Mapping[str, Any]) -> dict[str, set[str]]:
    children: dict[str, set[str]] = defaultdict(set)
    for resource in plan["resources"]:
        if resource["parent"]:
            children[resource["parent"]].add(resource["urn"])

    def walk(urn: str) -> set[str]:
        found = set()
        for child in children.get(urn, ()):
            found |= {child} | walk(child)
        return found

    return {r["urn"]: walk(r["urn"]) for r in plan["resources"]}


def plan_objects(plan: Mapping[str, Any]) -> tuple[list[PlanObject], list[PlanObject]]:
    """The plan's Kubernetes objects (Helm releases aside) in the order to apply them, and those of kinds a chart
    defines (not applied). A dependency on a component stands for all of its children, as in the engine."""
    descendants = _descendants(plan)
    objects = {
        r["urn"]: r
        for r in plan["resources"]
        if r["type"].startswith("kubernetes:") and r["type"] != HELM_RELEASE and r["custom"]
        and not r["type"].startswith("pulumi:providers")
    }  # fmt: skip
    result = []
    for urn, resource in objects.items():
        deps: set[str] = set()
        for dep in resource["dependencies"]:
            deps |= ({dep} | descendants.get(dep, set())) & objects.keys()
        result.append(PlanObject(urn, manifest_of(resource["inputs"]), deps - {urn}))
    apply = [o for o in result if o.group not in CRD_GROUPS]
    skipped = [o for o in result if o.group in CRD_GROUPS]
    return _ordered(apply), sorted(skipped, key=lambda o: o.urn)


def _rank(obj: PlanObject) -> tuple[int, str]:
    kind = obj.kind
    return (INSTALL_ORDER.index(kind) if kind in INSTALL_ORDER else len(INSTALL_ORDER), obj.urn)


def _ordered(objects: list[PlanObject]) -> list[PlanObject]:
    """Topological order of the declared dependencies (among the objects applied); ties by install order."""
    by_urn = {o.urn: o for o in objects}
    waiting = {o.urn: {d for d in o.depends_on if d in by_urn} for o in objects}
    ordered: list[PlanObject] = []
    while waiting:
        ready = sorted((by_urn[u] for u, deps in waiting.items() if not deps), key=_rank)
        if not ready:
            raise ValueError(f"dependency cycle among {sorted(waiting)}")
        first = ready[0]
        ordered.append(first)
        del waiting[first.urn]
        for deps in waiting.values():
            deps.discard(first.urn)
    return ordered


def namespaces_of(objects: list[PlanObject]) -> list[str]:
    return sorted({o.name for o in objects if o.kind == "Namespace"} | {o.namespace for o in objects if o.namespace})


def without_namespace_dependency(objects: list[PlanObject]) -> list[str]:
    """Namespaced objects that do not depend, even through other objects, on their Namespace object of the plan:
    the engine may create them first (only the provider's retries hide it)."""
    namespaces = {o.name: o.urn for o in objects if o.kind == "Namespace"}
    by_urn = {o.urn: o for o in objects}

    def closure(obj: PlanObject) -> set[str]:
        seen: set[str] = set()
        todo = list(obj.depends_on)
        while todo:
            urn = todo.pop()
            if urn not in seen:
                seen.add(urn)
                todo.extend(by_urn[urn].depends_on if urn in by_urn else ())
        return seen

    return sorted(o.ref for o in objects if o.namespace in namespaces and namespaces[o.namespace] not in closure(o))


def release_namespaces(plan: Mapping[str, Any]) -> list[str]:
    """Namespaces that Helm releases of the plan create themselves (`createNamespace`)."""
    return sorted(
        {r["inputs"]["namespace"] for r in resources_of(plan, HELM_RELEASE) if r["inputs"].get("createNamespace")}
    )


def workloads(objects: list[PlanObject]) -> list[PlanObject]:
    return [o for o in objects if o.kind in WORKLOAD_KINDS]


# -- a stack's plan, as the Kubernetes tests preview it ------------------------------------------------------------

AUTOSCALER_IMAGE = "registry.example.org/af/af-autoscaler:0.1.0"


@dataclass
class StackPlan:
    stack: str
    plan: dict[str, Any]
    files: dict[str, str]
    flavors: dict[str, Flavor]
    pool: bool
    """Whether the stack runs the HTCondor pool (and so the autoscaler)."""
    config: Any = None
    """The stack's `FacilityConfig`, as previewed (the autoscaler on wherever the pool runs)."""


@functools.cache
def preview(stack: str) -> StackPlan:
    """The stack's plan, previewed in-process once per session, with the autoscaler on wherever the pool runs
    (its RBAC and Deployment are what the Kubernetes tests check)."""
    import copy

    from afctl.plan import plan_document
    from afctl.runner import run_program
    from afctl.stackfile import read_stack
    from components.config.loader import build_config

    values, secret = read_stack(stack)
    values = copy.deepcopy(values)
    cfg = build_config(values, secret)
    if cfg.condor.enabled and not cfg.autoscaler.enabled:
        values["autoscaler"] = {**values.get("autoscaler", {}), "enabled": True, "image": AUTOSCALER_IMAGE}
        cfg = build_config(values, secret)
    result = run_program(stack, values, set(secret))
    flavors = {name: Flavor(f.vcpus, f.ram_gib, f.gpus) for name, f in cfg.site.flavors.items()}
    return StackPlan(stack, plan_document(result), dict(result.files), flavors, cfg.condor.enabled, cfg)


def runs_pool(stack: str) -> bool:
    """Whether the stack's config runs the HTCondor pool (read without previewing the stack)."""
    from afctl.stackfile import read_stack
    from components.config.loader import build_config

    return build_config(*read_stack(stack)).condor.enabled


def pod_spec_of(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The spec of a pod the workload creates; a StatefulSet's claim templates become the claims they make."""
    spec = dict(manifest["spec"]["template"]["spec"])
    claims = [
        {"name": t["metadata"]["name"], "persistentVolumeClaim": {"claimName": f"{t['metadata']['name']}-0"}}
        for t in manifest["spec"].get("volumeClaimTemplates", [])
    ]
    if claims:
        spec["volumes"] = [*spec.get("volumes", []), *claims]
    return spec


def cluster_mode(stack: str) -> str:
    """The stack's `af:cluster.mode` (read without previewing the stack)."""
    from afctl.stackfile import read_stack
    from components.config.loader import build_config

    return build_config(*read_stack(stack)).cluster.mode
