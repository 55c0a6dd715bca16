"""Checks of the pool's and the autoscaler's config against the rest of the stack: worker groups
are node groups with role batch or offload gateways, their bounds are in order and within the
group's nodes, each worker fits a node (or, in mode existing, has a declared size), and the
autoscaler has the pool, its image and triggers naming those groups."""

from __future__ import annotations

from ..config.errors import Problem, problem
from ..config.facility import FacilityConfig
from ..infra.config import FIT_RULE, fits
from .config import CONTROL_PLANE_GROUP, SERVICE_ROLES, WorkerGroup, WorkerGroupConfig, worker_groups


def _local_group_problems(
    cfg: FacilityConfig, name: str, group: WorkerGroup, settings: WorkerGroupConfig | None
) -> list[Problem]:
    """A local group has at most one worker per node, and its workers fit the nodes."""
    assert group.node_group is not None
    loc = ("condor", "groups", name)
    on_control_plane = name == CONTROL_PLANE_GROUP
    nodes = "the control plane" if on_control_plane else f"node group {name}"
    found: list[Problem] = []
    if group.max_workers > group.node_group.count:
        found.append(
            problem(
                (*loc, "maxWorkers"),
                group.max_workers,
                f"at most {group.node_group.count}, one worker per node of {nodes}",
            )
        )
    if cfg.cluster.mode == "existing":
        for key, value in (("cpus", group.pod_cpus), ("memoryGib", group.pod_memory_mib)):
            if value is None:
                found.append(
                    problem((*loc, key), None, "the worker's size: node sizes are unknown in cluster mode existing")
                )
        return found
    flavor = cfg.site.flavors.get(group.node_group.flavor)
    if flavor is None:
        return found  # reported with the infrastructure's checks
    assert group.pod_cpus is not None and group.pod_memory_mib is not None
    flavor_loc = (
        ("cluster", "controlPlane", "flavor") if on_control_plane else ("cluster", "nodeGroups", name, "flavor")
    )
    keep_cores, keep_gib = group.reserve
    if group.pod_cpus < 1 or group.pod_memory_mib < 2048:
        room = _beside(group, on_control_plane)
        found.append(
            problem(
                flavor_loc,
                group.node_group.flavor,
                f"a flavor with room for a worker of at least 1 core and 2 GiB next to {room}"
                + (", or a node group with role batch alone" if _services(group) and not on_control_plane else ""),
            )
        )
    if settings is None or (settings.cpus is None and settings.memory_gib is None):
        return found  # default sizes fit by construction
    kept = f", less {_beside(group, on_control_plane)}" if keep_cores or keep_gib else ""
    if not fits(group.pod_cpus + keep_cores, group.pod_memory_mib / 1024 + keep_gib, flavor):
        found.append(
            problem(
                loc,
                f"{group.pod_cpus:g} cores, {group.pod_memory_mib / 1024:g} GiB",
                f"a worker that fits a node of flavor {flavor.vcpus} vCPUs, {flavor.ram_gib} GiB ({FIT_RULE}{kept})",
            )
        )
    return found


def _services(group: WorkerGroup) -> list[str]:
    """The roles of a local worker's node group whose pods run all the time."""
    assert group.node_group is not None
    return [r for r in group.node_group.roles if r in SERVICE_ROLES]


def _beside(group: WorkerGroup, on_control_plane: bool) -> str:
    """What a local worker leaves room for on its node, in words."""
    keep_cores, keep_gib = group.reserve
    if on_control_plane:
        return f"k3s's server and the control plane's other roles ({keep_cores:g} cores, {keep_gib:g} GiB)"
    services = _services(group)
    if not services:
        return "the system pods"
    return f"the group's roles {', '.join(services)} ({keep_cores:g} cores, {keep_gib:g} GiB)"


def _offload_group_problems(name: str, group: WorkerGroup, settings: WorkerGroupConfig | None) -> list[Problem]:
    """An offload group's workers are sized by its gateway, and bounded by what it allows."""
    assert group.gateway is not None
    loc = ("condor", "groups", name)
    found = [
        problem((*loc, key), value, f"unset: offloaded workers take af:offload.gateways.{name}.worker")
        for key, value in (("cpus", settings and settings.cpus), ("memoryGib", settings and settings.memory_gib))
        if value is not None
    ]
    if settings is not None and settings.max_workers is not None and settings.max_workers > group.gateway.max_workers:
        found.append(
            problem(
                (*loc, "maxWorkers"),
                settings.max_workers,
                f"at most {group.gateway.max_workers}, what gateway {name}'s limits and resources allow",
            )
        )
    return found


def _condor_problems(cfg: FacilityConfig) -> list[Problem]:
    condor = cfg.condor
    if not condor.enabled:
        return []
    groups = worker_groups(condor, cfg.cluster, cfg.site.flavors, cfg.offload)
    if not any(g.local for g in groups.values()):
        return [
            problem(
                ("cluster", "nodeGroups"),
                sorted(cfg.cluster.node_groups),
                "at least one node group with role batch, or af:cluster.controlPlane.roles with batch: "
                "HTCondor's workers run there",
            )
        ]
    batch = ", ".join(groups)
    found = [
        problem(("condor", "groups", name), name, f"the name of a batch node group or offload gateway ({batch})")
        for name in sorted(set(condor.groups) - set(groups))
    ]
    for name, group in groups.items():
        settings = condor.groups.get(name)
        if group.min_workers > group.max_workers:
            found.append(
                problem(
                    ("condor", "groups", name, "minWorkers"),
                    group.min_workers,
                    f"at most maxWorkers ({group.max_workers})",
                )
            )
        if settings is not None and settings.gpu_reserve is not None:
            if not group.gpus or group.gateway is not None:
                why = "unset: only a local GPU group keeps room for GPU jobs"
                found.append(problem(("condor", "groups", name, "gpuReserve"), settings.gpu_reserve, why))
            elif settings.start is not None:
                why = "unset, or no start: the default START is the one that keeps it"
                found.append(problem(("condor", "groups", name, "gpuReserve"), settings.gpu_reserve, why))
        if group.gateway is not None:
            found += _offload_group_problems(name, group, settings)
        else:
            found += _local_group_problems(cfg, name, group, settings)
    return found


def _autoscaler_problems(cfg: FacilityConfig) -> list[Problem]:
    """The autoscaler's triggers name the pool's worker groups."""
    autoscaler = cfg.autoscaler
    if not (autoscaler.enabled and cfg.condor.enabled):
        return []  # it comes with a pool, and only with one
    found: list[Problem] = []
    groups = sorted(worker_groups(cfg.condor, cfg.cluster, cfg.site.flavors, cfg.offload))
    for index, trigger in enumerate(autoscaler.triggers):
        if trigger.group not in groups:
            found.append(
                problem(
                    ("autoscaler", "triggers", index, "group"),
                    trigger.group,
                    f"a worker group: {', '.join(groups) or 'none (nothing has role batch)'}",
                )
            )
    return found


def problems(cfg: FacilityConfig) -> list[Problem]:
    return [*_condor_problems(cfg), *_autoscaler_problems(cfg)]
