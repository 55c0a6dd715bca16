"""The checks single-field validation cannot see: each layer's own (`<layer>/checks.py`), and the
identity's, which serves every layer that logs users in."""

from __future__ import annotations

from ..batch import checks as batch_checks
from ..cache import checks as cache_checks
from ..dask import checks as dask_checks
from ..gpu import checks as gpu_checks
from ..hub import checks as hub_checks
from ..infra import checks as infra_checks
from ..offload import checks as offload_checks
from .errors import Problem, problem
from .facility import FacilityConfig
from .identity import WLCG_GROUPS_CLAIM


def _identity_problems(cfg: FacilityConfig) -> list[Problem]:
    """The identity serves every layer that logs users in: it must exist for them, carry the
    groups claim, and name the groups each of them admits."""
    needs = [name for name, on in (("hub", cfg.hub.enabled), ("condor", cfg.condor.enabled)) if on]
    identity = cfg.identity
    if identity is None:
        if needs:
            return [problem(("identity",), None, f"an identity provider: {', '.join(needs)} needs OIDC login")]
        return []
    found: list[Problem] = []
    loc = ("identity",)
    if "openid" not in identity.scopes:
        found.append(problem((*loc, "scopes"), identity.scopes, "scopes that include openid (the login is OIDC)"))
    if identity.groups_claim == WLCG_GROUPS_CLAIM:
        if WLCG_GROUPS_CLAIM not in identity.scopes:
            found.append(
                problem((*loc, "scopes"), identity.scopes, "scopes that include wlcg.groups, the groups claim")
            )
        for role, groups in identity.roles:
            for index, group in enumerate(groups):
                if not group.startswith("/"):
                    found.append(
                        problem(
                            (*loc, "roles", role, index),
                            group,
                            f"a WLCG group path such as /{group} (the wlcg.groups claim starts each with /)",
                        )
                    )
    if cfg.hub.enabled:
        if identity.client_secret is None:
            found.append(
                problem(
                    (*loc, "clientSecret"),
                    None,
                    "the IAM client secret: pulumi config set --secret --path 'af:identity.clientSecret' …",
                )
            )
        if not identity.roles.login:
            found.append(
                problem((*loc, "roles", "login"), [], "at least one group: the hub admits members of these only")
            )
    if cfg.condor.enabled and not identity.roles.batch:
        found.append(
            problem((*loc, "roles", "batch"), [], "at least one group: only its members may submit to HTCondor")
        )
    return found


def _system_services(cfg: FacilityConfig) -> list[str]:
    """What the stack runs on nodes with role system (`SYSTEM_NODES`)."""
    services = [
        ("the hub", cfg.hub.enabled),
        ("monitoring", cfg.monitoring.enabled),
        ("the pool's central manager and schedd", cfg.condor.enabled),
        ("the offload gateways", bool(cfg.offload.gateways)),
        ("cert-manager", cfg.hub.enabled or cfg.cache.enabled or cfg.condor.enabled),
        ("the CVMFS provisioner", cfg.cvmfs.enabled),
    ]
    return [name for name, on in services if on]


def _placement_problems(cfg: FacilityConfig) -> list[Problem]:
    """Every workload has a node it may run on: a role that some workload selects is carried by a
    node group or by the control plane (roles of notebooks and workers: their layers' checks)."""
    cluster = cfg.cluster
    carried = set(cluster.control_plane.roles) | {r for g in cluster.node_groups.values() for r in g.roles}
    services = _system_services(cfg)
    if "system" in carried or not services:
        return []
    return [
        problem(
            ("cluster", "nodeGroups"),
            sorted(cluster.node_groups),
            f"a node group with role system, or af:cluster.controlPlane.roles with system: {', '.join(services)} "
            "run there",
        )
    ]


def cross_checks(cfg: FacilityConfig) -> list[Problem]:
    """Checks single-field validation cannot see: each layer's own, and the identity's."""
    flavors = infra_checks.flavor_problems(cfg)
    # Quota arithmetic needs every flavor to be known.
    quota = [] if flavors else infra_checks.quota_problems(cfg)
    return [
        *infra_checks.mode_problems(cfg),
        *infra_checks.network_problems(cfg),
        *infra_checks.k3s_problems(cfg),
        *flavors,
        *infra_checks.gpu_problems(cfg),
        *gpu_checks.problems(cfg),
        *quota,
        *_identity_problems(cfg),
        *_placement_problems(cfg),
        *hub_checks.problems(cfg),
        *cache_checks.problems(cfg),
        *batch_checks.problems(cfg),
        *offload_checks.problems(cfg),
        *dask_checks.problems(cfg),
    ]
