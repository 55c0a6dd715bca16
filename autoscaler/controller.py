"""The controller: each cycle it reads demand and slots from HTCondor and worker pods from
Kubernetes, asks the planner, and applies the plan. Scale-in drains the chosen idle startds
(peacefully: no new claims), makes their pods the first Kubernetes deletes, then lowers the
Deployment's replicas; a worker claimed in between keeps its job until it retires."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from . import planner
from .condor import Slot
from .kube import Pod
from .metrics import Metrics
from .model import Autocluster, Memory, Plan, Worker
from .settings import ControllerSettings

log = logging.getLogger("af-autoscaler")

REMOVE_FIRST, KEEP, BUSY = -1000, 0, 1000
"""Pod deletion costs: the chosen idle workers, other idle ones, claimed ones."""


class Batch(Protocol):
    def demand(self) -> list[Autocluster]: ...
    def slots(self) -> list[Slot]: ...
    def drain(self, pod: str) -> None: ...


class Cluster(Protocol):
    def worker_pods(self) -> list[Pod]: ...
    def set_deletion_cost(self, pod: str, cost: int) -> None: ...
    def scale(self, deployment: str, replicas: int) -> None: ...


def observe(pods: Iterable[Pod], slots: Iterable[Slot]) -> list[Worker]:
    """Workers as the planner sees them. A running pod whose startd has not reported yet is
    capacity still coming, like a pending one."""
    by_pod = {slot.pod: slot for slot in slots}
    workers = []
    for pod in pods:
        slot = by_pod.get(pod.name)
        if pod.phase == "Running" and slot is not None:
            workers.append(Worker(pod.name, pod.group, "running", pod.created, slot.claimed, slot.free, slot.jobs))
        elif pod.phase in ("Pending", "Running"):
            workers.append(Worker(pod.name, pod.group, "pending", pod.created))
    return workers


def apply(plan: Plan, settings: ControllerSettings, workers: list[Worker], batch: Batch, cluster: Cluster) -> None:
    deployments = {g.name: g.deployment for g in settings.groups}
    local = {g.name: g.local for g in settings.groups}
    for name, decision in plan.decisions.items():
        log.info("group %s: %d -> %d workers: %s", name, decision.current, decision.desired, decision.reason)
        if decision.desired == decision.current:
            continue
        if decision.remove:
            # Only unclaimed workers are removed; draining them first closes the gap in which a
            # job could still land. Offloaded startds take no remote commands (they hold no
            # signing key): their preStop retires them. A failed drain must not stop the scale-in.
            for pod in decision.remove if local.get(name, True) else ():
                try:
                    batch.drain(pod)
                except Exception as exc:
                    log.warning("group %s: could not drain %s (%s); its preStop retires it", name, pod, exc)
            for worker in (w for w in workers if w.group == name):
                cost = REMOVE_FIRST if worker.name in decision.remove else BUSY if worker.claimed else KEEP
                cluster.set_deletion_cost(worker.name, cost)
        cluster.scale(deployments[name], decision.desired)


def cycle(
    settings: ControllerSettings,
    batch: Batch,
    cluster: Cluster,
    memory: Memory,
    now: float,
    metrics: Metrics,
    clock: Callable[[], float] = time.monotonic,
) -> Memory:
    """One planning cycle; the memory for the next."""
    start = clock()
    slots = batch.slots()
    workers = observe(cluster.worker_pods(), slots)
    plan = planner.plan(
        settings.planner_groups(),
        workers,
        batch.demand(),
        now,
        memory,
        settings.planner_settings(),
        settings.planner_triggers(),
    )
    for ac_id, idle in plan.unmatched:
        log.warning("autocluster %d: %d idle jobs match no worker group", ac_id, idle)
    apply(plan, settings, workers, batch, cluster)
    metrics.record(plan, clock() - start, slots)
    return plan.memory


def main() -> None:  # pragma: no cover - the in-cluster entry point
    from .condor import HTCondorBatch
    from .kube import KubeApi
    from .metrics import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    with open(os.environ.get("AF_AUTOSCALER_CONFIG", "/etc/af-autoscaler/settings.json"), encoding="utf-8") as f:
        settings = ControllerSettings.from_json(f.read())
    cluster = KubeApi.in_cluster(os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"])
    batch = HTCondorBatch(settings.collector, settings.schedds)
    metrics = Metrics()
    serve(metrics, settings.metrics_port)
    memory = Memory()
    while True:
        try:
            memory = cycle(settings, batch, cluster, memory, time.time(), metrics)
        except Exception:
            log.exception("cycle failed; trying again next interval")
            metrics.error()
        time.sleep(settings.interval_seconds)


if __name__ == "__main__":  # pragma: no cover
    main()
