"""Site: the plan fits the project's quota, and a production control plane survives the loss
of a hypervisor. Computed from the plan's resources, with flavor sizes from the pack config."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from components.infra.nodes import ROLE_METADATA
from components.infra.quota import QUOTAS

from .facts import Facts
from .walk import INSTANCE, MAGNUM_CLUSTER, MAGNUM_NODE_GROUP, MAGNUM_TEMPLATE, Finding, Resource, dig, opaque

VOLUME = "openstack:blockstorage/volume:Volume"
FLOATING_IP = "openstack:networking/floatingIp:FloatingIp"
SERVER_GROUP = "openstack:compute/serverGroup:ServerGroup"
CONTROL_PLANE = "control-plane"


def _count(value: Any, default: int = 1) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _linked(resource: Resource, by_urn: Mapping[str, Resource], type_: str) -> Resource | None:
    """The resource of `type_` this one depends on (a Magnum cluster's template, a node
    group's cluster): IDs are not in a plan, dependencies are."""
    return next((by_urn[d] for d in resource.dependencies if d in by_urn and by_urn[d].type == type_), None)


def usage(resources: Sequence[Resource], facts: Facts) -> tuple[Counter[str], list[Finding]]:
    """What the plan takes from the quota, and the servers whose flavor the pack does not know."""
    by_urn = {r.urn: r for r in resources}
    used: Counter[str] = Counter()
    unknown: list[Finding] = []

    def servers(resource: Resource, flavor: Any, count: int, docker_gib: Any = None) -> None:
        size = facts.flavors.get(flavor) if isinstance(flavor, str) else None
        if size is None:
            if count and not opaque(flavor):
                unknown.append(
                    Finding(
                        f"{resource.name}: flavor {flavor} is not in the pack's flavors, so its quota use is unknown: "
                        "use a flavor of af:site.flavors and pass the pack config afctl preview writes",
                        resource.urn,
                    )
                )
            return
        used.update(
            {"vcpus": size.vcpus * count, "ramGib": size.ram_gib * count, "gpus": size.gpus * count, "instances": count}
        )
        if isinstance(docker_gib, int) and docker_gib > 0:  # Magnum gives every node a container volume
            used.update({"volumes": count, "volumeGib": docker_gib * count})

    for resource in resources:
        props = resource.props
        if resource.type == INSTANCE:
            servers(resource, props.get("flavorName"), 1)
        elif resource.type == VOLUME:
            used.update({"volumes": 1, "volumeGib": _count(props.get("size"), 0)})
        elif resource.type == FLOATING_IP:
            used["floatingIps"] += 1
        elif resource.type == MAGNUM_CLUSTER:
            template = _linked(resource, by_urn, MAGNUM_TEMPLATE)
            template_props = template.props if template else {}
            docker = template_props.get("dockerVolumeSize")
            servers(resource, template_props.get("masterFlavor"), _count(props.get("masterCount")), docker)
            flavor = props.get("flavor") or template_props.get("flavor")
            servers(resource, flavor, _count(props.get("nodeCount")), docker)
        elif resource.type == MAGNUM_NODE_GROUP:
            cluster = _linked(resource, by_urn, MAGNUM_CLUSTER)
            template = _linked(cluster, by_urn, MAGNUM_TEMPLATE) if cluster else None
            docker = props.get("dockerVolumeSize") or (template.props.get("dockerVolumeSize") if template else None)
            servers(resource, props.get("flavorId"), _count(props.get("nodeCount")), docker)
    return +used, unknown  # without the zero counts


def site_quota(resources: Sequence[Resource], facts: Facts) -> list[Finding]:
    """The plan's servers, GPUs, volumes and floating IPs fit the project's quota."""
    used, found = usage(resources, facts)
    if not any(used.values()):
        return found
    for quota in QUOTAS:
        key, unit = quota.key, quota.unit
        need, limit = used[key], facts.quotas.get(key)
        if limit is None and need:
            found.append(
                Finding(
                    f"the plan needs {need} {unit} and the pack config has no quotas.{key}: "
                    "pass the pack config afctl preview writes"
                )
            )
        elif limit is not None and need > limit:
            found.append(
                Finding(
                    f"the plan needs {need} {unit} and the project's quota allows {limit} "
                    f"(af:site.quotas.{key}): shrink af:cluster or ask the site for more"
                )
            )
    return found


def _policies(group: Resource) -> list[str]:
    value = group.props.get("policies")
    return [value] if isinstance(value, str) else [str(p) for p in value or []]


def production_control_plane(resources: Sequence[Resource], facts: Facts) -> list[Finding]:
    """A production stack's control plane is three nodes that no single hypervisor failure
    takes down together: one strict anti-affinity server group (Magnum: three masters behind
    its API load balancer)."""
    if not facts.production:
        return []
    by_urn = {r.urn: r for r in resources}
    found = []
    control_plane = [
        r for r in resources if r.type == INSTANCE and dig(r.props, "metadata", ROLE_METADATA) == CONTROL_PLANE
    ]
    if control_plane and len(control_plane) != 3:
        found.append(
            Finding(
                f"a production stack has {len(control_plane)} control-plane instance(s): set "
                "af:cluster.controlPlane.count to 3, or af:policy.production to false"
            )
        )
    groups = set()
    for instance in control_plane:
        strict = [
            by_urn[d].urn
            for d in instance.dependencies
            if d in by_urn and by_urn[d].type == SERVER_GROUP and "anti-affinity" in _policies(by_urn[d])
        ]
        if not strict:
            found.append(
                Finding(
                    f"control-plane instance {instance.name} is not in an anti-affinity server group, so two etcd "
                    "members may share a hypervisor: schedule it with a server group whose policy is anti-affinity",
                    instance.urn,
                )
            )
        groups.update(strict)
    if len(groups) > 1:
        found.append(
            Finding(
                f"the control plane is split over {len(groups)} server groups: anti-affinity holds only "
                "within one; use a single group"
            )
        )
    for cluster in (r for r in resources if r.type == MAGNUM_CLUSTER):
        template = _linked(cluster, by_urn, MAGNUM_TEMPLATE)
        if _count(cluster.props.get("masterCount")) != 3:
            found.append(
                Finding(
                    f"Magnum cluster {cluster.name} has {_count(cluster.props.get('masterCount'))} "
                    "master(s): set af:cluster.controlPlane.count to 3",
                    cluster.urn,
                )
            )
        if template is None or template.props.get("masterLbEnabled") is not True:
            found.append(
                Finding(
                    f"Magnum cluster {cluster.name} has no load balancer in front of its masters "
                    "(masterLbEnabled): the API goes with the first master",
                    cluster.urn,
                )
            )
    return found
