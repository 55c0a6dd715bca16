"""Every shipped stack on a real control plane (tests/support/kube.py): its nodes registered as the stack registers
them (kwok), its Kubernetes objects applied in dependency order with server-side apply and admitted, and each of
its workloads, and of the Helm releases' workloads as our values render them (the chart stand-ins of
tests/support/charts), admitted by the PodSecurity admission under its namespace's labels and Running on a node of
the group it is meant for, node agents on every node they select, with no pod that needs no GPU on a GPU node.

Where the stack runs the pool, the autoscaler too: with a TokenRequest token of its ServiceAccount and the plan's
Role and RoleBinding, `autoscaler.kube.KubeApi` does its job and nothing more; and its scale-in path (mark the
chosen pods, then scale) removes exactly those pods under the real ReplicaSet controller.

The stacks follow each other on the session's control plane: one is deployed per module-scoped parameter and
removed before the next."""

from __future__ import annotations

import random
import ssl
import urllib.error
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import SHIPPED_STACKS
from support import placement
from support.kube import FIELD_MANAGER, ApiError, Kube, wait_for
from support.kubecharts import ChartWorkload, chart_workloads, meant_for
from support.kubeplan import (
    CRD_GROUPS,
    NodeSpec,
    StackPlan,
    cluster_mode,
    plan_objects,
    preview,
    release_namespaces,
    resources_of,
    runs_pool,
    without_namespace_dependency,
    workloads,
)
from support.kubestack import OnCluster, Placed, gpu_squatters, run_workloads
from support.kubestack import on_cluster as deployed_on

from autoscaler.controller import REMOVE_FIRST, apply
from autoscaler.kube import DELETION_COST, GROUP_LABEL, KubeApi
from autoscaler.model import Decision, Memory, Plan, Worker
from autoscaler.settings import ControllerSettings

LABEL = "af.infn.it"
SYSTEM = {f"{LABEL}/role-system": "true"}
PLACEMENT = {
    "af-condor-cm": {f"{LABEL}/role-system": "true"},
    "af-condor-schedd": {f"{LABEL}/role-system": "true"},
    "af-autoscaler": {f"{LABEL}/role-system": "true"},
    "af-xcache": {f"{LABEL}/role-cache": "true"},
    "af-node-labeller": {},  # mode magnum: on any node that takes it, before nodes carry the facility's labels
    "af-vk-leonardo": {f"{LABEL}/role-system": "true"},  # a gateway's virtual kubelet: with the services
    "af-condor-token-minter": {f"{LABEL}/role-system": "true"},  # mints the offloaded workers' token
}
"""Where each workload of ours belongs (the intent, stated independently of the selectors the program renders):
on a node of its role, or with the system services when no node has that role; worker groups
`af-condor-worker-<group>` belong on their node group."""
POOL_STACKS = [s for s in SHIPPED_STACKS if runs_pool(s)]
POOL = pytest.mark.parametrize("on_cluster", POOL_STACKS, indirect=True)
MAGNUM = pytest.mark.parametrize(
    "on_cluster", [s for s in SHIPPED_STACKS if cluster_mode(s) == "magnum"], indirect=True
)
"""The autoscaler's tests: on the stacks that run the pool (the same deployments as the other tests')."""
STRATEGIC = "application/strategic-merge-patch+json"
WORKERS = 5
ROUNDS = 20
GPU_NODE_AGENTS = frozenset(
    {
        "cvmfs-csi-nodeplugin",
        "nvidia-device-plugin",
        "nvidia-device-plugin-gpu-feature-discovery",
        "nvidia-device-plugin-node-feature-discovery-worker",
        "dcgm-exporter",
        "kube-prometheus-stack-prometheus-node-exporter",
    }
)
"""Workloads that may run on GPU nodes without requesting a GPU: node agents (the CVMFS node plugin mounts /cvmfs for
the GPU pods, the device plugin and feature discovery advertise the GPUs, the exporters read the node and its
GPUs)."""


def expected_labels(name: str, nodes: list[NodeSpec]) -> dict[str, str]:
    if name.startswith("af-condor-worker-"):
        group = name.removeprefix("af-condor-worker-")
        if any(n.labels.get(f"{LABEL}/offload-gateway") == group for n in nodes):
            return {f"{LABEL}/offload-gateway": group}  # an offload group: its gateway's virtual node
        return {f"{LABEL}/node-group": group}
    assert name in PLACEMENT, f"{name}: a workload the tests do not know where it belongs; add it to PLACEMENT"
    want = PLACEMENT[name]
    if not any(all(n.labels.get(k) == v for k, v in want.items()) for n in nodes):
        return dict(SYSTEM)  # no node has its role: it belongs with the facility's other services
    return want


def chart_stand_ins(stack: StackPlan) -> list[ChartWorkload]:
    """Workloads standing in for the Helm releases' own (exactly the node selectors, tolerations, resources and
    security contexts our values give the charts' workloads): tests/support/charts, as tests/support/kubecharts
    puts them on a cluster."""
    return chart_workloads(stack.plan)


def node_agent_coverage(placed: list[Placed], manifests: list[dict[str, Any]], nodes: list[NodeSpec]) -> list[str]:
    """DaemonSets whose pods do not run on exactly the nodes their selector, affinity and tolerations admit (Kubernetes'
    rules as tests/support/placement reads them), or on none."""
    where = {p.ref: set(p.pods.values()) for p in placed}
    found = []
    for manifest in manifests:
        if manifest["kind"] != "DaemonSet":
            continue
        ref = f"DaemonSet {manifest['metadata']['namespace']}/{manifest['metadata']['name']}"
        spec = manifest["spec"]["template"]["spec"]
        admitted = {
            n.name
            for n in nodes
            if not placement.admits(placement.Node(n.name, n.group, n.labels, tuple(n.taints)), spec)
        }
        if not admitted or where.get(ref, set()) != admitted:
            found.append(f"{ref}: runs on {sorted(where.get(ref, set()))}, its rules admit {sorted(admitted)}")
    return found


@pytest.fixture(scope="module", params=SHIPPED_STACKS)
def on_cluster(request: pytest.FixtureRequest, kube: Kube) -> Iterator[OnCluster]:
    with deployed_on(kube, preview(request.param)) as stack:
        yield stack


def test_every_object_of_the_plan_is_admitted(on_cluster: OnCluster, kube: Kube) -> None:
    deployed = on_cluster.deployed
    assert not deployed.rejected, "rejected by the API server:\n" + "\n".join(map(str, deployed.rejected))
    # Each in a namespace the plan makes (namespaces outlive a stack on the session's control plane: emptied only).
    made = {o.name for o in deployed.applied if o.kind == "Namespace"} | set(release_namespaces(on_cluster.stack.plan))
    assert {o.namespace for o in deployed.applied if o.namespace} <= made
    # Stored as applied, by the provider's field manager.
    for obj in deployed.applied:
        meta = obj.manifest["metadata"]
        live = kube.get(obj.manifest["apiVersion"], obj.kind, meta["name"], meta.get("namespace"))
        assert live is not None, obj.ref
        managers = {m["manager"] for m in live["metadata"].get("managedFields", [])}
        sets_fields = set(obj.manifest) - {"apiVersion", "kind", "metadata"} or set(meta) - {"name", "namespace"}
        assert FIELD_MANAGER in managers or not sets_fields, obj.ref  # an apply that sets no field owns none
    # Not applied, and said so: only objects whose kinds come with a chart of the plan or with k3s.
    assert {o.group for o in on_cluster.skipped} <= CRD_GROUPS.keys()
    print(
        f"{on_cluster.stack.stack}: not applied (CRDs of a chart or of k3s):",
        ", ".join(o.ref for o in on_cluster.skipped),
    )


def test_the_objects_not_applied_are_only_those_a_bare_control_plane_cannot_take(
    on_cluster: OnCluster, kube: Kube
) -> None:
    """Every kind of the plan outside the charts' groups is served by a bare Kubernetes; the charts' are not."""
    plan_kinds = {(o.manifest["apiVersion"], o.kind) for o in on_cluster.skipped}
    for api_version, kind in plan_kinds:
        with pytest.raises(KeyError):
            kube.resource(api_version, kind)
    for obj in on_cluster.deployed.applied:
        kube.resource(obj.manifest["apiVersion"], obj.kind)


def test_workloads_run_on_the_nodes_they_are_meant_for(on_cluster: OnCluster, kube: Kube) -> None:
    """Ours and the charts' (their stand-ins, applied like the plan's objects into the plan's labelled namespaces, so
    the PodSecurity admission judges them): every pod Running on a node of the group it is meant for, every node
    agent on each node it selects."""
    ours = [o.manifest for o in workloads(on_cluster.deployed.applied)]
    charts = chart_stand_ins(on_cluster.stack)
    services = [c for c in charts if c.manifest["kind"] != "Pod"]
    sessions = [c for c in charts if c.manifest["kind"] == "Pod"]
    refused = []
    for chart in services:
        kube.apply(chart.manifest)  # its pods meet the admission when its controller creates them
    placed, failures = run_workloads(kube, ours + [c.manifest for c in services], on_cluster.nodes)
    # The pods the hub and the Dask gateway create for users come and go: each on its own, beside the services.
    for chart in sessions:
        try:
            kube.apply(chart.manifest)
        except ApiError as exc:
            refused.append(f"{chart.ref}: {exc.message}")
            continue
        ran, failed = run_workloads(kube, [chart.manifest], on_cluster.nodes)
        placed, failures = placed + ran, failures + failed
        kube.call(
            "DELETE",
            kube.path("v1", "Pod", chart.stand_in.name, chart.stand_in.namespace),
            params={"gracePeriodSeconds": "0"},
        )
    assert not refused, "chart pods refused:\n" + "\n".join(refused)
    assert not failures, "workloads that do not run:\n" + "\n".join(failures)
    manifests = ours + [c.manifest for c in charts]
    cfg = on_cluster.stack.config
    intent = {
        f"{c.manifest['kind']} {c.stand_in.namespace}/{c.stand_in.name}": meant_for(
            c, cfg.dask.placement.schedulers, cfg.dask.placement.workers
        )
        for c in charts
    }
    nodes = {n.name: n for n in on_cluster.nodes}
    misplaced = []
    for workload in placed:
        if workload.ref.startswith("DaemonSet "):
            continue  # node agents: checked against the nodes they select
        want = intent.get(workload.ref) or expected_labels(workload.name, on_cluster.nodes)
        if not any(all(n.labels.get(k) == v for k, v in want.items()) for n in on_cluster.nodes):
            want = dict(SYSTEM)  # no node has its role: it belongs with the facility's other services
        for pod, node in workload.pods.items():
            if any(nodes[node].labels.get(k) != v for k, v in want.items()):
                misplaced.append(f"{workload.ref}: pod {pod} on {node} (group {nodes[node].group}), meant for {want}")
    assert not misplaced, "\n".join(misplaced)
    assert not (agents := node_agent_coverage(placed, manifests, on_cluster.nodes)), "\n".join(agents)
    squatters = gpu_squatters(placed, on_cluster.nodes, GPU_NODE_AGENTS)
    assert not squatters, "pods that need no GPU on GPU nodes:\n" + "\n".join(squatters)
    print(f"{on_cluster.stack.stack}: {len(placed)} workloads Running, {len(charts)} of them chart stand-ins")


@MAGNUM
def test_the_node_labeller_gives_magnums_nodes_the_facilitys_labels(on_cluster: OnCluster) -> None:
    """The plan's labeller, run with its own account's token, has labelled each Magnum worker node for the
    facility's node group behind its Magnum group (the first group by name is Magnum's `default-worker`) and
    left the masters alone."""
    for node in on_cluster.nodes:
        ours = {k: v for k, v in node.labels.items() if k.startswith("af.infn.it/")}
        if node.group == "default-master":
            assert not ours, node.name
        else:
            assert ours.get("af.infn.it/node-group"), f"{node.name}: not labelled"
    groups = {n.group: n.labels["af.infn.it/node-group"] for n in on_cluster.nodes if n.group != "default-master"}
    assert groups["default-worker"] == min(groups.values())  # the facility's first group, by name


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_every_namespaced_object_depends_on_its_namespace(stack: str) -> None:
    """Applied in declared dependency order (the engine starts independent resources at once), an object that
    does not wait for its Namespace may come first (issue 14 item 7)."""
    objects, _ = plan_objects(preview(stack).plan)
    assert not without_namespace_dependency(objects)


# -- the autoscaler ------------------------------------------------------------------------------------------------


def settings_of(stack: StackPlan) -> ControllerSettings:
    return ControllerSettings.from_json(stack.files["autoscaler/settings.json"])


def service_account(stack: StackPlan, settings: ControllerSettings) -> str:
    """The account the plan binds the autoscaler's Role to (the controller's Deployment runs as it)."""
    (deployment,) = [
        r["inputs"]
        for r in resources_of(stack.plan, "kubernetes:apps/v1:Deployment")
        if r["inputs"]["metadata"]["name"] == "af-autoscaler"
    ]
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    bound = [
        s["name"]
        for r in resources_of(stack.plan, "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding")
        for s in r["inputs"]["subjects"]
        if s["kind"] == "ServiceAccount" and s["namespace"] == settings.namespace
    ]
    assert account in bound, f"the controller runs as {account}, which no RoleBinding of the plan names"
    return account


def autoscaler_api(kube: Kube, stack: StackPlan) -> tuple[KubeApi, Kube]:
    """The controller's own client, with a bound token of its account; and a raw client with the same token."""
    settings = settings_of(stack)
    token = kube.create_token(settings.namespace, service_account(stack, settings))
    context = ssl.create_default_context(cafile=str(kube.ca))
    return KubeApi(kube.server, token, settings.namespace, context), kube.with_token(token)


def refused(call: Callable[[], Any]) -> int:
    """The HTTP status of a refused call (0 if it succeeded)."""
    try:
        call()
    except urllib.error.HTTPError as exc:
        return exc.code
    except ApiError as exc:
        return exc.status
    return 0


@POOL
def test_the_autoscalers_role_lets_it_do_its_job(on_cluster: OnCluster, kube: Kube) -> None:
    settings = settings_of(on_cluster.stack)
    api, _ = autoscaler_api(kube, on_cluster.stack)
    for group in settings.groups:
        api.scale(group.deployment, 1)
    groups = {g.name for g in settings.groups}
    pods = wait_for("a worker pod per group", lambda: (p := api.worker_pods()) and {x.group for x in p} == groups and p)
    assert {p.group for p in pods} == groups
    api.set_deletion_cost(pods[0].name, REMOVE_FIRST)
    live = kube.get("v1", "Pod", pods[0].name, settings.namespace)
    assert live is not None and live["metadata"]["annotations"][DELETION_COST] == str(REMOVE_FIRST)
    for group in settings.groups:
        api.scale(group.deployment, 0)
        scale = kube.call("GET", kube.path("apps/v1", "Deployment", group.deployment, settings.namespace) + "/scale")
        assert scale["spec"].get("replicas", 0) == 0  # omitted when 0


@POOL
def test_the_autoscalers_role_refuses_everything_else(on_cluster: OnCluster, kube: Kube) -> None:
    settings = settings_of(on_cluster.stack)
    api, raw = autoscaler_api(kube, on_cluster.stack)
    namespace = settings.namespace
    worker = settings.groups[0].deployment
    pod = wait_for("a pod", lambda: kube.list("v1", "Pod", namespace))[0]["metadata"]["name"]
    api.scale(worker, 1)
    worker_pod = wait_for("a worker pod", lambda: api.worker_pods())[0].name
    statefulsets = raw.path("apps/v1", "StatefulSet", "af-condor-schedd", namespace)
    attempts = {
        "scale the central manager": lambda: api.scale("af-condor-cm", 2),
        "scale the schedd": lambda: raw.call(
            "PATCH", statefulsets + "/scale", {"spec": {"replicas": 2}}, "application/merge-patch+json"
        ),
        "list Secrets": lambda: raw.call("GET", f"/api/v1/namespaces/{namespace}/secrets"),
        "read the pool key": lambda: raw.call("GET", f"/api/v1/namespaces/{namespace}/secrets/af-condor-pool-key"),
        "delete a pod": lambda: raw.call("DELETE", f"/api/v1/namespaces/{namespace}/pods/{pod}"),
        "delete a worker Deployment": lambda: raw.call("DELETE", raw.path("apps/v1", "Deployment", worker, namespace)),
        "edit a worker Deployment": lambda: raw.call(
            "PATCH",
            raw.path("apps/v1", "Deployment", worker, namespace),
            {"spec": {"template": {"spec": {"hostNetwork": True}}}},
            "application/merge-patch+json",
        ),
        "list pods of another namespace": lambda: KubeApi(api.base_url, api.token, "xcache", api.context).worker_pods(),
        # It may patch pods (the deletion cost), but the plan's admission policy refuses any other change.
        "change a worker's image": lambda: patch_pod(
            raw, namespace, worker_pod, image_patch(kube, namespace, worker_pod), STRATEGIC
        ),
        "relabel a worker": lambda: patch_pod(raw, namespace, worker_pod, {"metadata": {"labels": {GROUP_LABEL: "x"}}}),
        "annotate a worker otherwise": lambda: patch_pod(
            raw, namespace, worker_pod, {"metadata": {"annotations": {"a": "b"}}}
        ),
        "orphan a worker": lambda: patch_pod(raw, namespace, worker_pod, {"metadata": {"ownerReferences": None}}),
        "hold a worker with a finalizer": lambda: patch_pod(
            raw, namespace, worker_pod, {"metadata": {"finalizers": ["example.org/hold"]}}
        ),
        "create a pod": lambda: raw.call(
            "POST",
            f"/api/v1/namespaces/{namespace}/pods",
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": {"containers": []}},
        ),
    }
    statuses = {what: refused(call) for what, call in attempts.items()}
    assert statuses == dict.fromkeys(attempts, 403)
    # The deletion cost is still its to set, and the pod is as it was otherwise.
    before = kube.get("v1", "Pod", worker_pod, namespace)
    api.set_deletion_cost(worker_pod, REMOVE_FIRST)
    after = kube.get("v1", "Pod", worker_pod, namespace)
    assert before is not None and after is not None
    assert after["metadata"]["annotations"][DELETION_COST] == str(REMOVE_FIRST)
    assert (after["spec"], after["metadata"].get("labels")) == (before["spec"], before["metadata"].get("labels"))
    api.scale(worker, 0)


def patch_pod(
    client: Kube, namespace: str, pod: str, patch: dict[str, Any], kind: str = "application/merge-patch+json"
) -> Any:
    return client.call("PATCH", client.path("v1", "Pod", pod, namespace), patch, kind)


def image_patch(kube: Kube, namespace: str, pod: str) -> dict[str, Any]:
    """The pod's first container with another image, as a strategic merge patch (by container name)."""
    live = kube.get("v1", "Pod", pod, namespace)
    assert live is not None
    name = live["spec"]["containers"][0]["name"]
    return {"spec": {"containers": [{"name": name, "image": "registry.example.org/attacker:1"}]}}


class Drains:
    """HTCondor's side of a scale-in, recorded (these tests are about Kubernetes)."""

    def __init__(self) -> None:
        self.drained: list[str] = []

    def drain(self, pod: str) -> None:
        self.drained.append(pod)


def ready_workers(kube: Kube, namespace: str, group: str) -> list[dict[str, Any]]:
    pods = kube.list("v1", "Pod", namespace, f"{GROUP_LABEL}={group}")
    return [
        p
        for p in pods
        if "deletionTimestamp" not in p["metadata"]
        and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
    ]


def unschedulable(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable" for c in pod["status"].get("conditions", [])
    )


def _room_for_workers(stack: str, workers: int) -> bool:
    """A local CPU worker group of the stack has nodes for `workers` workers (one per node)."""
    from afctl.stackfile import read_stack
    from components.batch.config import worker_groups
    from components.config.loader import build_config

    cfg = build_config(*read_stack(stack))
    groups = worker_groups(cfg.condor, cfg.cluster, cfg.site.flavors, cfg.offload).values()
    return any(g.local and not g.gpus and g.max_workers >= workers for g in groups)


@pytest.mark.parametrize("on_cluster", [s for s in POOL_STACKS if _room_for_workers(s, WORKERS)], indirect=True)
def test_scale_in_removes_exactly_the_pods_the_controller_chose(on_cluster: OnCluster, kube: Kube) -> None:
    settings = settings_of(on_cluster.stack)
    group = next(g for g in settings.groups if g.local and g.gpus == 0 and g.max_workers >= WORKERS)
    api, _ = autoscaler_api(kube, on_cluster.stack)
    namespace = settings.namespace
    rng = random.Random(f"{on_cluster.stack.stack}-scale-in")

    def running(count: int) -> set[str]:
        def probe() -> set[str] | None:
            pods = kube.list("v1", "Pod", namespace, f"{GROUP_LABEL}={group.name}")
            stuck = [p["metadata"]["name"] for p in pods if unschedulable(p)]
            assert not stuck, f"{group.deployment}: no node for {stuck}"
            ready = ready_workers(kube, namespace, group.name)
            return {p["metadata"]["name"] for p in ready} if len(ready) == count else None

        return wait_for(f"{count} ready {group.name} workers", probe, timeout=20)

    api.scale(group.deployment, WORKERS)
    before = running(WORKERS)
    for _ in range(ROUNDS):
        chosen = tuple(rng.sample(sorted(before), rng.randint(1, WORKERS - 1)))
        decision = Decision(group.name, WORKERS, WORKERS - len(chosen), chosen, "test: scale in")
        plan = Plan({group.name: decision}, {}, (), (), Memory())
        workers = [Worker(p.name, p.group, "running", p.created) for p in api.worker_pods()]
        drains = Drains()
        apply(plan, settings, workers, drains, api)
        assert drains.drained == list(chosen)
        remaining = running(WORKERS - len(chosen))
        assert remaining == before - set(chosen), (
            f"chose {sorted(chosen)}, the ReplicaSet removed {sorted(before - remaining)}"
        )
        api.scale(group.deployment, WORKERS)
        before = running(WORKERS)
