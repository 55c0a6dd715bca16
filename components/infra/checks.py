"""Checks of the infrastructure's config that single fields cannot make: the cluster's mode has
what it needs, node groups use the site's flavors and match their GPUs, and the VMs fit the
project's quota."""

from __future__ import annotations

import ipaddress

from ..config.errors import Problem, problem
from ..config.facility import FacilityConfig
from ..names import CONTROL_PLANE_GROUP, GPU_TAINT_KEY
from .config import K3s
from .quota import QUOTAS, usage


def mode_problems(cfg: FacilityConfig) -> list[Problem]:
    cluster = cfg.cluster
    found: list[Problem] = []
    if CONTROL_PLANE_GROUP in cluster.node_groups:
        found.append(
            problem(
                ("cluster", "nodeGroups", CONTROL_PLANE_GROUP),
                CONTROL_PLANE_GROUP,
                "another name: the control plane's VMs, nodes and worker group are named control-plane",
            )
        )
    if cluster.mode == "existing" and cluster.existing is None:
        found.append(problem(("cluster", "existing"), None, "a kubeconfig secret when mode is existing"))
    if cluster.mode != "openstack" and cluster.control_plane.roles:
        found.append(
            problem(
                ("cluster", "controlPlane", "roles"),
                list(cluster.control_plane.roles),
                f"no roles in cluster mode {cluster.mode}: only the facility's own k3s control plane hosts workloads",
            )
        )
    if cluster.mode != "openstack" and not cluster.node_groups:
        found.append(problem(("cluster", "nodeGroups"), {}, f"at least one node group in cluster mode {cluster.mode}"))
    return found


def network_problems(cfg: FacilityConfig) -> list[Problem]:
    """The VMs' subnet, the pod network and the service network are three separate ranges: k3s
    routes the pod and service networks inside every node, so a VM address inside either is
    unreachable from the pods, and the network policies' "nodes" peer would admit pods."""
    if cfg.cluster.mode != "openstack":
        return []  # Magnum and an existing cluster choose their own pod and service networks
    site, cluster = cfg.site, cfg.cluster
    # In this order, so the VMs' subnet (a site's choice) is the one reported against the
    # cluster's defaults.
    ranges = {
        ("cluster", "podCidr"): cluster.pod_cidr,
        ("cluster", "serviceCidr"): cluster.service_cidr,
        ("site", "nodeCidr"): site.node_cidr,
    }
    found: list[Problem] = []
    checked = list(ranges.items())
    for index, (loc, cidr) in enumerate(checked):
        clashes = [
            f"af:{'.'.join(other)} ({other_cidr})"
            for other, other_cidr in checked[:index]
            if ipaddress.ip_network(cidr).overlaps(ipaddress.ip_network(other_cidr))
        ]
        if clashes:
            found.append(problem(loc, cidr, f"a network that does not overlap {' or '.join(clashes)}"))
    return found


def k3s_problems(cfg: FacilityConfig) -> list[Problem]:
    """The k3s pin is one value in two keys: cloud-init checks the downloaded binary against the
    checksum, so a version with another release's checksum fails every node at first boot. The
    shipped pin is the default of both; changing one without the other is refused."""
    k3s, shipped = cfg.cluster.k3s, K3s()
    if (k3s.version == shipped.version) == (k3s.sha256 == shipped.sha256):
        return []
    loc = ("cluster", "k3s")
    if k3s.version != shipped.version:
        given = k3s.sha256 if "sha256" in k3s.model_fields_set else None
        return [
            problem(
                (*loc, "sha256"),
                given,
                f"the SHA-256 of the amd64 k3s binary of {k3s.version} (its release's sha256sum-amd64.txt), "
                f"given with the version: {shipped.sha256[:12]}… is {shipped.version}'s",
            )
        ]
    given = k3s.version if "version" in k3s.model_fields_set else None
    return [
        problem(
            (*loc, "version"),
            given,
            f"the release whose amd64 k3s binary has SHA-256 {k3s.sha256[:12]}…, given with it "
            f"({shipped.version} is the release of the default checksum)",
        )
    ]


def flavor_problems(cfg: FacilityConfig) -> list[Problem]:
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


def gpu_problems(cfg: FacilityConfig) -> list[Problem]:
    """A GPU group declares its flavor's GPUs, is tainted, and boots an image that can run them."""
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
        known_model = flavor.gpu_model if flavor is not None and cfg.cluster.mode != "existing" else None
        if known_model and flavor_gpus and known_model.lower() != group.gpu.model:
            found.append(
                problem(
                    (*loc, "gpu", "model"),
                    group.gpu.model,
                    f"{known_model.lower()}, the GPU model of flavor {group.flavor} (af:site.flavors.{group.flavor}"
                    ".gpuModel): jobs and notebooks select GPUs by it",
                )
            )
        if not any(t.key == GPU_TAINT_KEY and t.effect == "NoSchedule" for t in group.taints):
            found.append(
                problem(
                    (*loc, "taints"),
                    [t.render() for t in group.taints],
                    f"GPU groups tainted {GPU_TAINT_KEY}=present:NoSchedule, so CPU-only pods stay off",
                )
            )
        if cfg.cluster.mode == "magnum" and group.gpu.driver == "install":
            found.append(
                problem(
                    (*loc, "gpu", "driver"),
                    group.gpu.driver,
                    "preinstalled in cluster mode magnum: its nodes boot the template's image without the "
                    "facility's cloud-init, so the image must have the driver and container toolkit",
                )
            )
    # Per-group images exist for GPU-ready images; Magnum has one image for the whole cluster.
    for name, group in cfg.cluster.node_groups.items():
        if cfg.cluster.mode == "magnum" and group.image is not None:
            found.append(
                problem(
                    ("cluster", "nodeGroups", name, "image"),
                    group.image,
                    "no per-group image in cluster mode magnum: nodes boot af:cluster.magnum.image",
                )
            )
    return found


def quota_problems(cfg: FacilityConfig) -> list[Problem]:
    used = usage(cfg.site, cfg.cluster)
    found: list[Problem] = []
    for quota in QUOTAS:
        need, limit = getattr(used, quota.field), getattr(cfg.site.quotas, quota.field)
        if need > limit:
            found.append(
                problem(
                    ("cluster", "nodeGroups"),
                    f"{need} {quota.unit} in total",
                    f"at most {limit} {quota.unit} (af:site.quotas.{quota.key})",
                )
            )
    return found
