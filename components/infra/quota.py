"""What a stack takes from the OpenStack project's quota, and each quota's names: the field of
`Usage` and `Quotas`, its config key (`af:site.quotas.<key>`), and the words people read."""

from __future__ import annotations

from dataclasses import dataclass

from .config import Cluster, Site


@dataclass(frozen=True)
class Quota:
    """One quota of the project."""

    field: str
    """Attribute of `Usage` and of the `Quotas` model."""
    key: str
    """Its key under `af:site.quotas` (and in the policy pack's config)."""
    unit: str
    """What a number of it is, in a sentence: "12 GiB of RAM"."""
    column: str
    """Its row in the quota table."""


QUOTAS = (
    Quota("vcpus", "vcpus", "vCPUs", "vCPUs"),
    Quota("ram_gib", "ramGib", "GiB of RAM", "RAM (GiB)"),
    Quota("instances", "instances", "instances", "instances"),
    Quota("volumes", "volumes", "volumes", "volumes"),
    Quota("volume_gib", "volumeGib", "GiB of volumes", "volume storage (GiB)"),
    Quota("floating_ips", "floatingIps", "floating IPs", "floating IPs"),
    Quota("gpus", "gpus", "GPUs", "GPUs"),
)


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


def usage(site: Site, cluster: Cluster) -> Usage:
    """Quota the stack's VMs and volumes use; nothing for clusters that already exist."""
    if cluster.mode == "existing":
        return Usage()
    flavors = site.flavors
    cp = cluster.control_plane
    groups = [(cp.flavor, cp.count, 0)] + [(g.flavor, g.count, g.volume_gib) for g in cluster.node_groups.values()]
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
