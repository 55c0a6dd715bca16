"""Checks of the hub's config against the rest of the stack: its certificate source is complete,
and every profile fits the nodes it is meant for."""

from __future__ import annotations

from ..config.errors import Problem, problem
from ..config.facility import FacilityConfig
from ..infra.config import FIT_RULE, fits


def _tls_problems(cfg: FacilityConfig) -> list[Problem]:
    tls = cfg.hub.tls
    found: list[Problem] = []
    if tls.mode == "cert-manager" and tls.acme_email is None:
        found.append(problem(("hub", "tls", "acmeEmail"), None, "a contact address for the ACME account"))
    if tls.mode == "provided":
        for key, value in (("certificate", tls.certificate), ("privateKey", tls.private_key)):
            if value is None:
                found.append(problem(("hub", "tls", key), None, "the PEM certificate and key when mode is provided"))
    return found


def _ingress_problems(cfg: FacilityConfig) -> list[Problem]:
    """On the facility's own VMs the only ingress controller is k3s's traefik: an Ingress of
    another class would be served by nothing (no hub, no ACME challenge, no redirect)."""
    if cfg.cluster.mode == "openstack" and cfg.hub.ingress_class != "traefik":
        return [
            problem(
                ("hub", "ingressClass"),
                cfg.hub.ingress_class,
                "traefik, the ingress controller k3s runs in mode openstack",
            )
        ]
    return []


def _cpu_profile_problems(cfg: FacilityConfig) -> list[Problem]:
    """Every CPU profile fits an interactive CPU node."""
    if cfg.cluster.mode == "existing":
        return []  # node sizes are unknown
    groups = cfg.cluster.groups_with("interactive").values()
    cpu_flavors = [f for g in groups if g.gpu is None and (f := cfg.site.flavors.get(g.flavor)) is not None]
    if not cpu_flavors:
        return [
            problem(
                ("cluster", "nodeGroups"),
                sorted(cfg.cluster.node_groups),
                "a CPU node group for notebooks (role interactive), or af:cluster.controlPlane.roles with interactive",
            )
        ]
    return [
        problem(
            ("hub", "profiles", index),
            f"{profile.name}: {profile.cpu} cores, {profile.memory_gib} GiB",
            f"a size that fits an interactive CPU node with room for system pods ({FIT_RULE})",
        )
        for index, profile in enumerate(cfg.hub.profiles)
        if not any(fits(profile.cpu, profile.memory_gib, f) for f in cpu_flavors)
    ]


def _gpu_profile_problems(cfg: FacilityConfig) -> list[Problem]:
    """GPU profiles are generated per GPU group with role interactive: a declared shape needs
    such a group, and must fit each one's schedulable GPUs (time-slicing and MIG multiply them)
    and, where flavors are known, its nodes."""
    hub = cfg.hub
    shape = hub.gpu_profile
    groups = {
        name: group
        for name, group in sorted(cfg.cluster.node_groups.items())
        if group.gpu is not None and "interactive" in group.roles
    }
    loc = ("hub", "gpuProfile")
    shown = f"{shape.gpus} GPUs, {shape.cpu:g} cores, {shape.memory_gib:g} GiB"
    if not groups:
        if "gpu_profile" in hub.model_fields_set:
            return [problem(loc, shown, "no GPU profile: no node group has a gpu spec and role interactive")]
        return []
    found: list[Problem] = []
    for name, group in groups.items():
        assert group.gpu is not None
        flavor = cfg.site.flavors.get(group.flavor) if cfg.cluster.mode != "existing" else None
        too_many = shape.gpus > group.gpu.schedulable
        if too_many or (flavor is not None and not fits(shape.cpu, shape.memory_gib, flavor)):
            found.append(
                problem(
                    loc,
                    shown,
                    f"a size that fits a node of GPU group {name} "
                    f"({group.gpu.schedulable} schedulable GPUs; {FIT_RULE})",
                )
            )
    return found


def problems(cfg: FacilityConfig) -> list[Problem]:
    if not cfg.hub.enabled:
        return []
    return [*_tls_problems(cfg), *_ingress_problems(cfg), *_cpu_profile_problems(cfg), *_gpu_profile_problems(cfg)]
