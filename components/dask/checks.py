"""Checks of the Dask layer's config against the rest of the stack: the gateway needs the hub;
limits name groups `af:identity.roles` declares and leave room for a worker; schedulers and
workers have nodes of their roles, and fit them."""

from __future__ import annotations

from ..config.errors import Problem, problem
from ..config.facility import FacilityConfig
from ..infra.config import FIT_RULE, fits
from .config import worker_groups


def problems(cfg: FacilityConfig) -> list[Problem]:
    """The gateway needs the hub; limits name declared groups and leave room for a worker; the
    pods have nodes of their roles, and fit them."""
    dask = cfg.dask
    if not dask.enabled:
        return []
    loc = ("dask",)
    found: list[Problem] = []
    if not cfg.hub.enabled or cfg.identity is None:
        found.append(
            problem((*loc, "enabled"), True, "true only with af:hub.enabled and af:identity (users log in there)")
        )
    if not dask.limits:
        found.append(
            problem((*loc, "limits"), {}, "limits for at least one IAM group: only their members get clusters")
        )
    declared = set(cfg.identity.roles.all_groups()) if cfg.identity else set()
    smallest = (dask.scheduler.cores + dask.worker.cores, dask.scheduler.memory_gib + dask.worker.memory_gib)
    for group, limits in sorted(dask.limits.items()):
        if group not in declared:
            found.append(
                problem(
                    (*loc, "limits", group),
                    group,
                    "a group declared in af:identity.roles: " + (", ".join(sorted(declared)) or "none declared"),
                )
            )
        if limits.cores < smallest[0] or limits.memory_gib < smallest[1]:
            found.append(
                problem(
                    (*loc, "limits", group),
                    f"{limits.cores:g} cores, {limits.memory_gib:g} GiB",
                    f"at least a scheduler and one default worker: {smallest[0]:g} cores, {smallest[1]:g} GiB",
                )
            )
    placement = dask.placement
    for key, role in (("schedulers", placement.schedulers), ("workers", placement.workers)):
        if not cfg.cluster.groups_with(role) or (key == "workers" and not worker_groups(cfg, gpu=False)):
            found.append(
                problem(
                    (*loc, "placement", key),
                    role,
                    f"a role of a {'CPU ' if key == 'workers' else ''}node group in af:cluster.nodeGroups "
                    f"or of af:cluster.controlPlane.roles (add {role!r} to its roles)",
                )
            )
    if cfg.cluster.mode == "existing":
        return found  # node sizes are unknown
    flavors = cfg.site.flavors
    sized = (
        (("worker",), dask.worker.max_cores, dask.worker.max_memory_gib, worker_groups(cfg, gpu=False)),
        (
            ("scheduler",),
            dask.scheduler.cores,
            dask.scheduler.memory_gib,
            cfg.cluster.groups_with(placement.schedulers),
        ),
    )
    for key, cores, memory, groups in sized:
        known = {n: flavors[g.flavor] for n, g in groups.items() if g.flavor in flavors}
        if known and not any(fits(cores, memory, f) for f in known.values()):
            found.append(
                problem(
                    (*loc, *key),
                    f"{cores:g} cores, {memory:g} GiB",
                    f"a pod that fits a node of {', '.join(known)} ({FIT_RULE})",
                )
            )
    return found
