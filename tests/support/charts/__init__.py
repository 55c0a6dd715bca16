"""A test oracle for what the pinned Helm charts do with the program's values.

Helm cannot download charts here, so this package encodes, per chart, the defaults of the keys
we set or that place pods and the template rules that turn values into workloads and
NetworkPolicies, each with the text it was read from (see each module's docstring; what could
not be read at the pinned version is listed in the module's `UNVERIFIED`).

    releases(plan)                 the Helm releases of a plan (plan.json dict or a RunResult), with
                                   the values Helm gets (valueYamlFiles, then values)
    merged(chart, values)          our values over the chart's defaults, as Helm merges them
    workloads(chart, values, ...)  StandIn per workload (and per user pod z2jh's hub creates)
    network_policies(chart, ...)   the NetworkPolicy manifests the chart renders
    unread_keys(chart, values)     keys we set that the chart's templates never read
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import yaml

from . import (
    cert_manager,
    cvmfs_csi,
    dask_gateway,
    dcgm_exporter,
    jupyterhub,
    kube_prometheus_stack,
    nvidia_device_plugin,
)
from .helm import Container, StandIn, Values, coalesce, merge_maps

__all__ = [
    "CHARTS",
    "Container",
    "Release",
    "StandIn",
    "coalesce",
    "merged",
    "network_policies",
    "releases",
    "unread_keys",
    "workloads",
]

CHARTS: dict[str, ModuleType] = {
    module.CHART: module
    for module in (
        jupyterhub,
        kube_prometheus_stack,
        cert_manager,
        cvmfs_csi,
        nvidia_device_plugin,
        dcgm_exporter,
        dask_gateway,
    )
}
RELEASE_TYPE = "kubernetes:helm.sh/v3:Release"


@dataclass(frozen=True)
class Release:
    """One `helm.v3.Release` of a plan."""

    chart: str
    """The chart's name (the last path element of an OCI reference)."""
    version: str
    name: str
    namespace: str
    values: Values
    """The user-supplied values Helm gets: the release's `valueYamlFiles`, then its `values`,
    merged (`merge_maps`); a null in them deletes the chart's default key."""
    inline: Values = field(default_factory=dict)
    """The release's `values` input alone."""

    @property
    def module(self) -> ModuleType:
        return CHARTS[self.chart]


def value_file(asset: Any) -> Values:
    """One `valueYamlFiles` entry as recorded (a string asset: a map with its `text`)."""
    if not (isinstance(asset, dict) and isinstance(asset.get("text"), str)):
        raise ValueError(f"a values file the oracle cannot read (only string assets): {asset!r}")
    return yaml.safe_load(asset["text"]) or {}


def releases(plan: Any) -> list[Release]:
    """The Helm releases of a plan: `plan.json` as a dict, or a `RunResult` of the mocks."""
    if isinstance(plan, dict):
        rows = [(r["type"], r["inputs"]) for r in plan["resources"]]
    else:
        rows = [(r.type, r.inputs) for r in plan.registrations]
    found = []
    for type_, inputs in rows:
        if type_ != RELEASE_TYPE:
            continue
        chart = str(inputs["chart"]).rstrip("/").rsplit("/", 1)[-1]
        inline = dict(inputs.get("values") or {})
        supplied: Values = {}
        for asset in inputs.get("valueYamlFiles") or []:
            supplied = merge_maps(supplied, value_file(asset))
        found.append(
            Release(
                chart,
                str(inputs["version"]),
                str(inputs["name"]),
                str(inputs["namespace"]),
                merge_maps(supplied, inline),
                inline,
            )
        )
    return found


def _module(chart: str) -> ModuleType:
    if chart not in CHARTS:
        raise KeyError(f"no oracle for chart {chart!r}; known: {sorted(CHARTS)}")
    return CHARTS[chart]


def merged(chart: str, values: Values) -> Values:
    return _module(chart).merged(values)


def workloads(chart: str, values: Values, release: str | None = None, namespace: str | None = None) -> list[StandIn]:
    kwargs = {k: v for k, v in (("release", release), ("namespace", namespace)) if v}
    return _module(chart).workloads(values, **kwargs)


def network_policies(
    chart: str, values: Values, release: str | None = None, namespace: str | None = None
) -> list[dict[str, Any]]:
    kwargs = {k: v for k, v in (("release", release), ("namespace", namespace)) if v}
    return _module(chart).network_policies(values, **kwargs)


def unread_keys(chart: str, values: Values) -> list[str]:
    return _module(chart).unread_keys(values)
