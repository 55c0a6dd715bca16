"""The whole stack config and the checks that span sections."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field

from .base import StrictModel
from .cluster import GPU_TAINT_KEY, Cluster
from .errors import Problem, problem
from .layers import Autoscaler, Cache, Condor, Cvmfs, Hub, Identity, Offload
from .site import Site


class FacilityConfig(StrictModel):
    """Everything a facility is: the `af:*` keys of a stack, after profiles are merged."""

    profiles: list[str] = Field(default_factory=list)
    """Profiles from `stacks/` merged in order below the stack's own values."""
    site: Site
    """The OpenStack site."""
    cluster: Cluster
    """The Kubernetes cluster."""
    identity: Identity | None = None
    """The OIDC provider; required by the hub, HTCondor user auth and cache token auth."""
    hub: Hub = Field(default_factory=Hub)
    """JupyterHub."""
    cvmfs: Cvmfs = Field(default_factory=Cvmfs)
    """CVMFS."""
    cache: Cache = Field(default_factory=Cache)
    """XCache."""
    condor: Condor = Field(default_factory=Condor)
    """HTCondor pool."""
    autoscaler: Autoscaler = Field(default_factory=Autoscaler)
    """Worker autoscaler."""
    offload: Offload = Field(default_factory=Offload)
    """HPC offload gateways."""


@dataclass(frozen=True)
class Usage:
    """What a plan takes from the site's quota."""

    vcpus: int = 0
    ram_gib: int = 0
    instances: int = 0
    volumes: int = 0
    volume_gib: int = 0
    floating_ips: int = 0
    gpus: int = 0


def usage(cfg: FacilityConfig) -> Usage:
    """Quota the stack's VMs and volumes use; nothing for clusters that already exist."""
    if cfg.cluster.mode == "existing":
        return Usage()
    flavors = cfg.site.flavors
    cp = cfg.cluster.control_plane
    groups = [(cp.flavor, cp.count, 0)] + [(g.flavor, g.count, g.volume_gib) for g in cfg.cluster.node_groups.values()]
    vcpus = ram = instances = volumes = volume_gib = gpus = 0
    for flavor_name, count, vol in groups:
        flavor = flavors[flavor_name]
        vcpus += flavor.vcpus * count
        ram += flavor.ram_gib * count
        gpus += flavor.gpus * count
        instances += count
        if vol:
            volumes += count
            volume_gib += vol * count
    return Usage(vcpus, ram, instances, volumes, volume_gib, floating_ips=1, gpus=gpus)


def _flavor_problems(cfg: FacilityConfig) -> list[Problem]:
    known = sorted(cfg.site.flavors)
    allowed = f"a flavor of af:site.flavors ({', '.join(known)})"
    found: list[Problem] = []
    if cfg.cluster.mode != "existing" and cfg.cluster.control_plane.flavor not in cfg.site.flavors:
        found.append(problem(("cluster", "controlPlane", "flavor"), cfg.cluster.control_plane.flavor, allowed))
    for name, group in cfg.cluster.node_groups.items():
        if cfg.cluster.mode != "existing" and group.flavor not in cfg.site.flavors:
            found.append(problem(("cluster", "nodeGroups", name, "flavor"), group.flavor, allowed))
    for name, flavor in cfg.site.flavors.items():
        if flavor.gpus and not flavor.gpu_model:
            found.append(problem(("site", "flavors", name, "gpuModel"), None, "the GPU model when gpus > 0"))
    return found


def _gpu_problems(cfg: FacilityConfig) -> list[Problem]:
    found: list[Problem] = []
    for name, group in cfg.cluster.node_groups.items():
        loc = ("cluster", "nodeGroups", name)
        flavor = cfg.site.flavors.get(group.flavor)
        flavor_gpus = flavor.gpus if flavor else 0
        if group.gpu is None and flavor_gpus and cfg.cluster.mode != "existing":
            found.append(problem((*loc, "gpu"), None, f"a gpu spec: flavor {group.flavor} has {flavor_gpus} GPUs"))
        if group.gpu is None:
            continue
        if cfg.cluster.mode != "existing" and flavor is not None and flavor.gpus != group.gpu.count:
            found.append(
                problem((*loc, "gpu", "count"), group.gpu.count, f"{flavor.gpus}, the GPUs of flavor {group.flavor}")
            )
        if not any(t.key == GPU_TAINT_KEY and t.effect == "NoSchedule" for t in group.taints):
            found.append(
                problem(
                    (*loc, "taints"),
                    [t.render() for t in group.taints],
                    f"GPU groups tainted {GPU_TAINT_KEY}=present:NoSchedule, so CPU-only pods stay off",
                )
            )
    return found


def _quota_problems(cfg: FacilityConfig) -> list[Problem]:
    used = usage(cfg)
    found: list[Problem] = []
    for field, key, label in (
        ("vcpus", "vcpus", "vCPUs"),
        ("ram_gib", "ramGib", "GiB of RAM"),
        ("instances", "instances", "instances"),
        ("volumes", "volumes", "volumes"),
        ("volume_gib", "volumeGib", "GiB of volumes"),
        ("floating_ips", "floatingIps", "floating IPs"),
        ("gpus", "gpus", "GPUs"),
    ):
        need, limit = getattr(used, field), getattr(cfg.site.quotas, field)
        if need > limit:
            found.append(
                problem(
                    ("cluster", "nodeGroups"),
                    f"{need} {label} in total",
                    f"at most {limit} {label} (af:site.quotas.{key})",
                )
            )
    return found


def _mode_problems(cfg: FacilityConfig) -> list[Problem]:
    if cfg.cluster.mode == "existing" and cfg.cluster.existing is None:
        return [problem(("cluster", "existing"), None, "a kubeconfig secret when mode is existing")]
    return []


def _identity_problems(cfg: FacilityConfig) -> list[Problem]:
    needs = [name for name, on in (("hub", cfg.hub.enabled),) if on]
    if needs and cfg.identity is None:
        return [problem(("identity",), None, f"an identity provider: {', '.join(needs)} needs OIDC login")]
    return []


def cross_checks(cfg: FacilityConfig) -> list[Problem]:
    """Checks between sections that single-field validation cannot see."""
    flavors = _flavor_problems(cfg)
    # Quota arithmetic needs every flavor to be known.
    quota = [] if flavors else _quota_problems(cfg)
    return [*_mode_problems(cfg), *flavors, *_gpu_problems(cfg), *quota, *_identity_problems(cfg)]
