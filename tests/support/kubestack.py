"""A stack on the test control plane: its nodes registered (kwok), its Kubernetes objects applied in dependency
order with server-side apply, volumes provisioned by a stand-in provisioner, and its workloads run to check
where the scheduler puts them. `Deployed.remove` takes it all away again, so stacks can follow each other on one
control plane.

In mode magnum the plan's node labeller runs once after the objects are applied (its own script, config and
account, as its pod would run it), so the nodes carry the labels and taints the facility gives them in the cluster.

What stands in for the cluster's own parts (none of them is the facility's):
- k3s's `local-path` StorageClass, the cluster's default, with its `WaitForFirstConsumer` binding;
- a provisioner that creates a PersistentVolume for each claim, on the node the scheduler selected for
  `WaitForFirstConsumer` classes (as local-path does) and right away for `Immediate` ones (as a CSI driver does).
"""

from __future__ import annotations

import json
import ssl
import threading
import time
import types
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from .kube import FIELD_MANAGER, ApiError, Kube, wait_for
from .kubeplan import GPU, NodeSpec, PlanObject, StackPlan, namespaces_of, plan_objects, release_namespaces, stack_nodes

LOCAL_PATH = {
    "apiVersion": "storage.k8s.io/v1",
    "kind": "StorageClass",
    "metadata": {"name": "local-path", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
    "provisioner": "rancher.io/local-path",
    "reclaimPolicy": "Delete",
    "volumeBindingMode": "WaitForFirstConsumer",
}
"""The default StorageClass k3s ships (its local-path-provisioner addon)."""
SELECTED_NODE = "volume.kubernetes.io/selected-node"
LABELLER_SCRIPT = "af_node_labeller.py"
"""The node labeller's program (mode magnum), shipped in its ConfigMap."""
STAND_IN = {"af.infn.it/test-stand-in": "provisioner"}
RUN_TIMEOUT = 20.0
"""Seconds a workload's pods get to be Running: on kwok they are Running within a second or never."""


@dataclass
class Rejection:
    ref: str
    status: int
    reason: str
    message: str

    def __str__(self) -> str:
        return f"{self.ref}: {self.status} {self.reason}: {self.message}"


@dataclass
class Deployed:
    kube: Kube
    nodes: list[NodeSpec]
    applied: list[PlanObject]
    rejected: list[Rejection]
    cluster_scoped: list[tuple[str, str, str]] = field(default_factory=list)
    extra_namespaces: list[str] = field(default_factory=list)

    @property
    def namespaces(self) -> list[str]:
        return namespaces_of(self.applied)

    def remove(self) -> None:
        self.kube.delete_namespaces(sorted({*self.namespaces, *self.extra_namespaces}))
        for api_version, kind, name in self.cluster_scoped:
            self.kube.delete(api_version, kind, name)
        remove_nodes(self.kube, self.nodes)
        stand_ins = ",".join(f"{k}={v}" for k, v in STAND_IN.items())
        for volume in self.kube.list("v1", "PersistentVolume", selector=stand_ins):
            self.kube.delete("v1", "PersistentVolume", volume["metadata"]["name"])


def remove_nodes(kube: Kube, nodes: list[NodeSpec]) -> None:
    names = {n.name for n in nodes}
    for name in names:
        kube.delete("v1", "Node", name)
    wait_for("the nodes to go", lambda: not names & {n["metadata"]["name"] for n in kube.list("v1", "Node")}, 30)


def register_nodes(kube: Kube, nodes: list[NodeSpec]) -> None:
    """Create the nodes and wait until each is Ready and free of the node lifecycle controller's own taints
    (`node.kubernetes.io/not-ready`, `.../unreachable`): a pod scheduled before that would be refused by a
    condition that passes, not by the stack."""
    for node in nodes:
        kube.create_node(node.name, node.labels, node.taints, node.capacity)
    names = {n.name for n in nodes}

    def usable(node: dict[str, Any]) -> bool:
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", []))
        transient = [t for t in node["spec"].get("taints", []) if t["key"].startswith("node.kubernetes.io/")]
        return ready and not transient

    wait_for(
        f"{len(nodes)} nodes to be Ready",
        lambda: names <= {n["metadata"]["name"] for n in kube.list("v1", "Node") if usable(n)},
        30,
    )


def apply_objects(kube: Kube, objects: list[PlanObject]) -> tuple[list[PlanObject], list[Rejection]]:
    """Apply in order, as the Pulumi provider would (server-side apply, its field manager); every refusal kept."""
    applied, rejected = [], []
    for obj in objects:
        try:
            kube.apply(obj.manifest, FIELD_MANAGER)
            applied.append(obj)
        except ApiError as exc:
            rejected.append(Rejection(obj.ref, exc.status, exc.reason, exc.message))
        except KeyError as exc:  # the kind is not served at all
            rejected.append(Rejection(obj.ref, 404, "NotServed", str(exc)))
    return applied, rejected


def deploy(
    kube: Kube, nodes: list[NodeSpec], objects: list[PlanObject], release_namespaces: Collection[str] = ()
) -> Deployed:
    """Register the nodes, then apply the objects. `release_namespaces`, the namespaces Helm releases create
    (`createNamespace`), exist first: the objects that depend on such a release find theirs."""
    register_nodes(kube, nodes)
    kube.apply(LOCAL_PATH)
    for namespace in release_namespaces:
        kube.namespace(namespace)
    applied, rejected = apply_objects(kube, objects)
    cluster_scoped = [("storage.k8s.io/v1", "StorageClass", "local-path")] + [
        (o.manifest["apiVersion"], o.kind, o.name) for o in applied if o.namespace is None and o.kind != "Namespace"
    ]
    run_node_labeller(kube, applied)
    deployed = Deployed(kube, live_nodes(kube, nodes), applied, rejected, cluster_scoped)
    deployed.extra_namespaces = sorted(set(release_namespaces) - set(deployed.namespaces))
    return deployed


def live_nodes(kube: Kube, nodes: list[NodeSpec]) -> list[NodeSpec]:
    """The nodes with the labels and taints they carry now (the node labeller may have added some)."""
    live = {n["metadata"]["name"]: n for n in kube.list("v1", "Node")}
    return [
        NodeSpec(
            n.name,
            n.group,
            dict(live[n.name]["metadata"].get("labels", {})),
            [t for t in live[n.name]["spec"].get("taints", []) if not t["key"].startswith("node.kubernetes.io/")],
            n.capacity,
        )
        for n in nodes
    ]


def run_node_labeller(kube: Kube, applied: list[PlanObject]) -> list[str]:
    """Mode magnum: the plan's node labeller, run once as its pod runs it: the script and config of its ConfigMap
    in the plan, with a token of the ServiceAccount its Deployment runs as (so its ClusterRole is what lets it
    patch the nodes). Returns the nodes it labelled; nothing when the plan has no labeller."""
    for config in (o for o in applied if o.kind == "ConfigMap" and LABELLER_SCRIPT in o.manifest.get("data", {})):
        (deployment,) = [
            o
            for o in applied
            if o.kind == "Deployment"
            and o.namespace == config.namespace
            and any(
                v.get("configMap", {}).get("name") == config.name for v in _pod_template(o.manifest).get("volumes", [])
            )
        ]
        account = _pod_template(deployment.manifest)["serviceAccountName"]
        token = kube.create_token(config.namespace or "", account)
        program = types.ModuleType("af_node_labeller")
        exec(compile(config.manifest["data"][LABELLER_SCRIPT], LABELLER_SCRIPT, "exec"), program.__dict__)
        api = program.Api(kube.server, token, ssl.create_default_context(cafile=str(kube.ca)))
        return program.reconcile(api, json.loads(config.manifest["data"]["config.json"]))
    return []


@dataclass
class OnCluster:
    """A stack deployed on the control plane."""

    stack: StackPlan
    nodes: list[NodeSpec]
    skipped: list[PlanObject]
    """Objects of kinds a chart defines: not applied."""
    deployed: Deployed


@contextmanager
def on_cluster(kube: Kube, stack: StackPlan, nodes: list[NodeSpec] | None = None) -> Iterator[OnCluster]:
    """The stack's nodes (or `nodes`) and objects on the control plane, with volumes provisioned, while the block
    runs; removed after it."""
    nodes = stack_nodes(stack.plan, stack.files, stack.flavors) if nodes is None else nodes
    objects, skipped = plan_objects(stack.plan)
    with provisioner(kube):
        try:
            deployed = deploy(kube, nodes, objects, release_namespaces(stack.plan))
        except BaseException:
            # Half deployed: take away what may be there, so that the next stack starts clean.
            kube.delete_namespaces(sorted({o.name for o in objects if o.kind == "Namespace"}))
            remove_nodes(kube, nodes)
            raise
        try:
            yield OnCluster(stack, deployed.nodes, skipped, deployed)
        finally:
            deployed.remove()


# -- volumes --------------------------------------------------------------------------------------------------------


def _provision(kube: Kube, claim: dict[str, Any], classes: Mapping[str, dict[str, Any]]) -> None:
    meta, spec = claim["metadata"], claim["spec"]
    klass = classes.get(spec.get("storageClassName") or "")
    if klass is None:
        return  # no such class: the claim stays Pending, as in a real cluster
    node = meta.get("annotations", {}).get(SELECTED_NODE)
    if klass.get("volumeBindingMode") == "WaitForFirstConsumer" and node is None:
        return
    volume: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"pvc-{meta['uid']}", "labels": dict(STAND_IN)},
        "spec": {
            "capacity": {"storage": spec["resources"]["requests"]["storage"]},
            "accessModes": spec["accessModes"],
            "storageClassName": klass["metadata"]["name"],
            "persistentVolumeReclaimPolicy": "Delete",
            "claimRef": {"namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]},
            "hostPath": {"path": f"/var/lib/af-test/{meta['uid']}"},
        },
    }
    if node is not None:
        term = {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}
        volume["spec"]["nodeAffinity"] = {"required": {"nodeSelectorTerms": [term]}}
    with suppress(ApiError):  # already created by an earlier pass
        kube.call("POST", "/api/v1/persistentvolumes", volume)


@contextmanager
def provisioner(kube: Kube, interval: float = 0.2) -> Iterator[None]:
    """Volumes for the claims of every namespace while the block runs (a thread with its own client)."""
    client = Kube(kube.server, kube.ca, cert=kube.session.cert)  # type: ignore[arg-type]
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval):
            with suppress(ApiError, OSError):
                classes = {c["metadata"]["name"]: c for c in client.list("storage.k8s.io/v1", "StorageClass")}
                for claim in client.list("v1", "PersistentVolumeClaim"):
                    if claim.get("status", {}).get("phase") == "Pending" and not claim["spec"].get("volumeName"):
                        _provision(client, claim, classes)

    thread = threading.Thread(target=loop, name="af-test-provisioner", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


# -- scheduling -----------------------------------------------------------------------------------------------------


@dataclass
class Placed:
    """Where a workload's pods run."""

    ref: str
    namespace: str
    name: str
    pod_spec: dict[str, Any]
    pods: dict[str, str]
    """Pod name -> node name."""


def _tolerates(tolerations: list[dict[str, Any]], taint: Mapping[str, str]) -> bool:
    for t in tolerations:
        if t.get("effect") and t["effect"] != taint["effect"]:
            continue
        if t.get("operator") == "Exists" and (not t.get("key") or t["key"] == taint["key"]):
            return True
        if t.get("key") == taint["key"] and t.get("value", "") == taint.get("value", ""):
            return True
    return False


def _selects(pod_spec: Mapping[str, Any], node: NodeSpec) -> bool:
    return all(node.labels.get(k) == v for k, v in (pod_spec.get("nodeSelector") or {}).items())


def placement_problems(pod_spec: Mapping[str, Any], nodes: list[NodeSpec]) -> list[str]:
    """Why no node may take the pod, in the plan's terms: labels no node has, taints not tolerated."""
    problems = [
        f"no node has the label {key}={value} (nodeSelector)"
        for key, value in sorted((pod_spec.get("nodeSelector") or {}).items())
        if not any(n.labels.get(key) == value for n in nodes)
    ]
    selected = [n for n in nodes if _selects(pod_spec, n)]
    if not problems and not selected:
        problems.append(f"no node has all the labels {pod_spec.get('nodeSelector')} (nodeSelector)")
    tolerations = pod_spec.get("tolerations") or []
    blocked = {
        n.name: [t for t in n.taints if t["effect"] in ("NoSchedule", "NoExecute") and not _tolerates(tolerations, t)]
        for n in selected
    }
    if selected and all(blocked.values()):
        taints = sorted({f"{t['key']}:{t['effect']}" for ts in blocked.values() for t in ts})
        problems.append(f"every node it selects carries a taint it does not tolerate: {', '.join(taints)}")
    return problems


def _pod_template(manifest: Mapping[str, Any]) -> dict[str, Any]:
    return manifest["spec"]["template"]["spec"]


def _pods_of(kube: Kube, manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    labels = manifest["spec"]["selector"].get("matchLabels", {}) if manifest["kind"] != "Job" else {}
    if manifest["kind"] == "Job":
        labels = {"batch.kubernetes.io/job-name": manifest["metadata"]["name"]}
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return [
        p
        for p in kube.list("v1", "Pod", manifest["metadata"]["namespace"], selector)
        if "deletionTimestamp" not in p["metadata"]
    ]


def _wanted(kube: Kube, manifest: Mapping[str, Any]) -> int:
    meta, kind = manifest["metadata"], manifest["kind"]
    live = kube.get(manifest["apiVersion"], kind, meta["name"], meta["namespace"]) or {}
    if kind == "DaemonSet":
        return int(live.get("status", {}).get("desiredNumberScheduled", 0))
    if kind == "Job":
        return int(live.get("spec", {}).get("parallelism", 1))
    return int(live.get("spec", {}).get("replicas", 0))


def _unschedulable(pod: Mapping[str, Any]) -> bool:
    return any(
        c["type"] == "PodScheduled" and c["status"] == "False" and c.get("reason") == "Unschedulable"
        for c in pod.get("status", {}).get("conditions", [])
    )


def _done(pod: Mapping[str, Any], kind: str) -> bool:
    phase = pod.get("status", {}).get("phase")
    return phase in ("Running", "Succeeded") if kind == "Job" else phase == "Running"


def run_workloads(
    kube: Kube, manifests: list[dict[str, Any]], nodes: list[NodeSpec], timeout: float = RUN_TIMEOUT
) -> tuple[list[Placed], list[str]]:
    """Run each workload with at least one pod (a Deployment or StatefulSet at 0 replicas is scaled to 1) and
    wait for its pods to be Running. Returns where they run, and a message per workload that does not run:
    its name, the scheduler's own reason and, from the plan, the labels or taints that keep it off every node."""
    for manifest in manifests:
        meta = manifest["metadata"]
        if manifest["kind"] in ("Deployment", "StatefulSet") and not manifest["spec"].get("replicas", 1):
            path = kube.path(manifest["apiVersion"], manifest["kind"], meta["name"], meta["namespace"]) + "/scale"
            kube.call("PATCH", path, {"spec": {"replicas": 1}}, "application/merge-patch+json")

    def ref(manifest: Mapping[str, Any]) -> str:
        return f"{manifest['kind']} {manifest['metadata']['namespace']}/{manifest['metadata']['name']}"

    def state() -> dict[str, tuple[int, list[dict[str, Any]]]]:
        return {ref(m): (_wanted(kube, m), _pods_of(kube, m)) for m in manifests}

    since: list[float] = []

    def settled() -> bool:
        """Every workload runs, or every pod it lacks is one the scheduler found no node for, for a second and a
        half in a row (nothing in these tests frees a node later: waiting longer would change nothing)."""
        stuck = False
        for manifest, (want, pods) in zip(manifests, state().values(), strict=True):
            if want > 0 and sum(_done(p, manifest["kind"]) for p in pods) >= want:
                continue
            waiting = [p for p in pods if not _done(p, manifest["kind"])]
            if want == 0 or len(pods) < want or not all(map(_unschedulable, waiting)):
                since.clear()
                return False
            stuck = True
        if not stuck:
            return True
        since[:] = since or [time.monotonic()]
        return time.monotonic() - since[0] >= 1.5

    with suppress(TimeoutError):
        wait_for("every workload to run or be unschedulable", settled, timeout, interval=0.25)
    placed, failures = [], []
    for manifest, (want, pods) in zip(manifests, state().values(), strict=True):
        meta = manifest["metadata"]
        running = [p for p in pods if _done(p, manifest["kind"])]
        if want > 0 and len(running) >= want:
            placed.append(
                Placed(ref(manifest), meta["namespace"], meta["name"], _pod_template(manifest),
                       {p["metadata"]["name"]: p["spec"]["nodeName"] for p in running})
            )  # fmt: skip
            continue
        scheduler = sorted(
            {
                c.get("message", "")
                for p in pods
                for c in p.get("status", {}).get("conditions", [])
                if c["type"] == "PodScheduled" and c["status"] == "False"
            }
        )
        reasons = placement_problems(_pod_template(manifest), nodes) or ["(the plan's labels and taints allow it)"]
        failures.append(
            f"{ref(manifest)}: {len(running)} of {max(want, 1)} pods Running; "
            + "; ".join(reasons)
            + (f"; scheduler: {' / '.join(scheduler)}" if scheduler else "")
            + ("" if want else "; the controller placed no pod at all")
        )
    return placed, failures


def requests_gpu(pod_spec: Mapping[str, Any]) -> bool:
    containers = [*pod_spec.get("containers", []), *pod_spec.get("initContainers", [])]
    return any(
        int(str((c.get("resources") or {}).get(part, {}).get(GPU, "0"))) > 0
        for c in containers
        for part in ("requests", "limits")
    )


def gpu_squatters(placed: list[Placed], nodes: list[NodeSpec], allowed: Collection[str] = ()) -> list[str]:
    """Pods that request no GPU but run on a node with GPUs (allowed: node agents, by workload name)."""
    gpu_nodes = {n.name for n in nodes if n.gpus}
    return sorted(
        f"{p.ref}: pod {pod} on GPU node {node}"
        for p in placed
        if p.name not in allowed and not requests_gpu(p.pod_spec)
        for pod, node in p.pods.items()
        if node in gpu_nodes
    )
