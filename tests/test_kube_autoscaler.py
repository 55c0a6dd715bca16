"""The autoscaler against a real control plane, for every shipped stack that runs the pool: with a TokenRequest
token of its ServiceAccount and the plan's Role and RoleBinding, `autoscaler.kube.KubeApi` does its job and
nothing more; and its scale-in path (mark the chosen pods, then scale) removes exactly those pods under the real
ReplicaSet controller."""

from __future__ import annotations

import random
import ssl
import urllib.error
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import SHIPPED_STACKS
from support.kube import ApiError, Kube, wait_for
from support.kubeplan import MAGNUM_CLUSTER, StackPlan, preview, resources_of, runs_pool
from support.kubestack import OnCluster, on_cluster

from autoscaler.controller import REMOVE_FIRST, apply
from autoscaler.kube import DELETION_COST, GROUP_LABEL, KubeApi
from autoscaler.model import Decision, Memory, Plan, Worker
from autoscaler.settings import ControllerSettings

POOL_STACKS = [s for s in SHIPPED_STACKS if runs_pool(s)]
MAGNUM_LABELS = pytest.mark.xfail(
    strict=True,
    reason="issue 14 item 6: no Magnum node carries the af.infn.it/node-group label the worker groups select, "
    "so no worker pod runs",
)
WORKERS = 5
ROUNDS = 20


@pytest.fixture(scope="module", params=POOL_STACKS)
def pool(request: pytest.FixtureRequest, kube: Kube) -> Iterator[OnCluster]:
    with on_cluster(kube, preview(request.param)) as deployed:
        assert not deployed.deployed.rejected, deployed.deployed.rejected
        yield deployed


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


def test_the_autoscalers_role_lets_it_do_its_job(pool: OnCluster, kube: Kube) -> None:
    settings = settings_of(pool.stack)
    api, _ = autoscaler_api(kube, pool.stack)
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


def test_the_autoscalers_role_refuses_everything_else(pool: OnCluster, kube: Kube) -> None:
    settings = settings_of(pool.stack)
    api, raw = autoscaler_api(kube, pool.stack)
    namespace = settings.namespace
    worker = settings.groups[0].deployment
    pod = wait_for("a pod", lambda: kube.list("v1", "Pod", namespace))[0]["metadata"]["name"]
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
        "create a pod": lambda: raw.call(
            "POST",
            f"/api/v1/namespaces/{namespace}/pods",
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": {"containers": []}},
        ),
    }
    statuses = {what: refused(call) for what, call in attempts.items()}
    assert statuses == dict.fromkeys(attempts, 403)


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


def test_scale_in_removes_exactly_the_pods_the_controller_chose(
    pool: OnCluster, kube: Kube, request: pytest.FixtureRequest
) -> None:
    if resources_of(pool.stack.plan, MAGNUM_CLUSTER):
        request.applymarker(MAGNUM_LABELS)
    settings = settings_of(pool.stack)
    group = next(g for g in settings.groups if g.local and g.gpus == 0)
    api, _ = autoscaler_api(kube, pool.stack)
    namespace = settings.namespace
    rng = random.Random(f"{pool.stack.stack}-scale-in")

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
