"""The Helm releases' workloads on the test control plane: each chart stand-in (tests/support/charts) as the object
that owns its pods in a real cluster (a Deployment, StatefulSet, DaemonSet or Job with the stand-in's pod as its
template, or the bare Pod a controller creates at run time), so that the scheduler, the DaemonSet controller, the
PodSecurity admission and np-guard's analyzer see exactly the placement, security and ports our values give the
charts' workloads.

z2jh's user pods name the chart's own `user-scheduler`, a kube-scheduler with other scores and the same filters: they
stand in with the default scheduler (`StandIn.pod(default_scheduler=True)`), as the test cluster runs no second one.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import charts
from .charts.helm import StandIn

STAND_IN_LABEL = {"af.infn.it/test-stand-in": "chart"}
"""On every object made from a stand-in (not on its pods: their labels are the chart's, which policies select)."""
APIS = {"Deployment": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1", "Job": "batch/v1", "Pod": "v1"}


@dataclass(frozen=True)
class ChartWorkload:
    """A chart's workload as the cluster sees it."""

    release: charts.Release
    stand_in: StandIn
    manifest: dict[str, Any]

    @property
    def ref(self) -> str:
        return f"{self.manifest['kind']} {self.stand_in.namespace}/{self.stand_in.name} (chart {self.release.chart})"


def manifest_of(stand_in: StandIn) -> dict[str, Any]:
    """The object owning the stand-in's pods: one replica, its template the stand-in's pod."""
    pod = stand_in.pod(default_scheduler=True)
    meta = {"name": stand_in.name, "namespace": stand_in.namespace, "labels": dict(STAND_IN_LABEL)}
    if stand_in.kind == "Pod":
        return {**pod, "metadata": {**pod["metadata"], "name": stand_in.name}}
    template = {"metadata": {k: pod["metadata"][k] for k in ("labels", "annotations")}, "spec": pod["spec"]}
    spec: dict[str, Any] = {"template": copy.deepcopy(template)}
    if stand_in.kind == "Job":
        spec["template"]["spec"]["restartPolicy"] = "Never"
        spec["backoffLimit"] = 0
    else:
        spec["selector"] = {"matchLabels": dict(stand_in.labels)}
    if stand_in.kind in ("Deployment", "StatefulSet"):
        spec["replicas"] = 1
    if stand_in.kind == "StatefulSet":
        spec["serviceName"] = stand_in.name
    return {"apiVersion": APIS[stand_in.kind], "kind": stand_in.kind, "metadata": meta, "spec": spec}


def chart_workloads(plan: Mapping[str, Any]) -> list[ChartWorkload]:
    """Every chart workload of the plan's Helm releases, as our values render it."""
    return [
        ChartWorkload(release, s, manifest_of(s))
        for release in charts.releases(dict(plan))
        for s in charts.workloads(release.chart, release.values, release.name, release.namespace)
    ]


ROLE = "af.infn.it/role-{}"
GROUP = "af.infn.it/node-group"


def meant_for(workload: ChartWorkload, dask_schedulers: str, dask_workers: str) -> dict[str, str]:
    """Where a chart's pod belongs, stated from what it is (not from the selectors the program renders): notebooks on
    interactive nodes (a GPU profile's on its group), Dask's schedulers and workers on the roles the config names for
    them, every other service with the facility's services. DaemonSets are node agents, checked against the nodes
    they select."""
    s = workload.stand_in
    if s.created_by == "hub":
        slug = s.name.removeprefix("jupyter-")  # a GPU profile is `gpu-<its node group>`
        wanted = {ROLE.format("interactive"): "true"}
        return wanted | {GROUP: slug.removeprefix("gpu-")} if slug.startswith("gpu-") else wanted
    if workload.release.chart == "dask-gateway" and s.kind == "Pod":
        role = dask_schedulers if s.name.startswith("dask-scheduler") else dask_workers
        return {ROLE.format(role): "true"}
    return {ROLE.format("system"): "true"}
