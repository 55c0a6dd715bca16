"""Every rule of the pack, and the `pulumi_policy` policies built from them.

Importing this module builds policy objects only; the analyzer's server starts when
`PolicyPack(...)` is constructed, which only `policy/__main__.py` does."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

from . import capacity, exposure, identity, leaks, workloads
from .facts import SCHEMA, Facts, facts_from
from .walk import UNKNOWN, Finding, NotApplicable, Resource

ResourceCheck = Callable[[Resource, Facts], list[str]]
StackCheck = Callable[[Sequence[Resource], Facts], list[Finding]]
MANDATORY, ADVISORY = EnforcementLevel.MANDATORY, EnforcementLevel.ADVISORY
PACK_NAME = "analysis-facility"


@dataclass(frozen=True)
class Rule:
    """A rule: its name, what it requires, its default level, the pack config properties
    it reads, and its check (of one resource, or of the whole stack)."""

    name: str
    description: str
    level: EnforcementLevel
    facts: tuple[str, ...] = ()
    resource: ResourceCheck | None = None
    stack: StackCheck | None = None


RULES: tuple[Rule, ...] = (
    Rule(
        "no-world-open-ports",
        "Only HTTPS, HTTP that redirects to it, and declared public ports are open to 0.0.0.0/0 or ::/0.",
        MANDATORY,
        ("publicPorts",),
        resource=exposure.world_open_ports,
    ),
    Rule(
        "http-redirects-to-https",
        "HTTP (tcp 80) open to the internet only redirects to HTTPS (and answers the ACME challenge).",
        MANDATORY,
        ("publicPorts",),
        stack=exposure.http_redirects_to_https,
    ),
    Rule(
        "admin-ports-from-admin-cidrs",
        "SSH and the Kubernetes API are reachable from the site's admin networks only.",
        MANDATORY,
        ("adminCidrs",),
        resource=exposure.admin_ports_from_admin_cidrs,
    ),
    Rule(
        "hub-oidc-login",
        "The hub logs users in with OIDC and admits the login groups only.",
        MANDATORY,
        resource=identity.hub_oidc_login,
    ),
    Rule(
        "condor-authenticated",
        "HTCondor requires authentication: no CLAIMTOBE, no anonymous write access.",
        MANDATORY,
        resource=identity.condor_authenticated,
    ),
    Rule(
        "cache-token-auth",
        "With token auth declared, the cache authorizes every client request by its token.",
        MANDATORY,
        ("cacheTokenAuth",),
        resource=identity.cache_token_auth,
    ),
    Rule(
        "no-secrets-in-helm-values",
        "Helm values carry no literal secret.",
        MANDATORY,
        resource=leaks.helm_values_secrets,
    ),
    Rule(
        "no-secrets-in-configmaps",
        "ConfigMaps carry no literal secret.",
        MANDATORY,
        resource=leaks.config_map_secrets,
    ),
    Rule(
        "no-secrets-in-container-env",
        "Containers get no secret as a literal environment value.",
        MANDATORY,
        resource=leaks.env_secrets,
    ),
    Rule(
        "no-secrets-in-user-data",
        "VM user-data with credentials is a Pulumi secret; plaintext user-data has none.",
        MANDATORY,
        ("secretMarkers",),
        resource=leaks.user_data_secrets,
    ),
    Rule(
        "container-resources",
        "Every container requests and limits CPU and memory.",
        MANDATORY,
        resource=workloads.container_resources,
    ),
    Rule(
        "pinned-images",
        "Every container image is pinned to a version tag or digest, never latest.",
        MANDATORY,
        resource=workloads.pinned_images,
    ),
    Rule(
        "pinned-charts",
        "Every Helm release pins an exact chart version.",
        MANDATORY,
        resource=workloads.pinned_charts,
    ),
    Rule(
        "no-privileged-workloads",
        "Only allow-listed node agents need Pod Security privileged (privileged containers, host namespaces, "
        "hostPath, host ports, extra capabilities), and only in namespaces enforcing it; namespaces enforce the "
        "declared levels.",
        MANDATORY,
        ("privilegedAllowList", "podSecurity"),
        resource=workloads.privileged_workloads,
    ),
    Rule(
        "gpu-nodes-tainted",
        "GPU nodes register with the nvidia.com/gpu:NoSchedule taint.",
        MANDATORY,
        ("flavors",),
        resource=workloads.gpu_nodes_tainted,
    ),
    Rule(
        "gpu-toleration-needs-gpu-request",
        "Only pods that request GPUs tolerate the GPU taint.",
        MANDATORY,
        resource=workloads.gpu_toleration_needs_gpu_request,
    ),
    Rule(
        "rbac-namespaced",
        "RBAC is namespaced: Roles and RoleBindings, no ClusterRole outside the allow-list.",
        MANDATORY,
        ("clusterRbacAllowList",),
        resource=workloads.rbac_namespaced,
    ),
    Rule(
        "rbac-no-wildcards",
        "No RBAC rule grants wildcard verbs, resources or API groups.",
        MANDATORY,
        resource=workloads.rbac_no_wildcards,
    ),
    Rule(
        "disruption-budgets",
        "The hub, the cache and the HTCondor central manager have PodDisruptionBudgets.",
        ADVISORY,
        ("criticalWorkloads",),
        stack=workloads.disruption_budgets,
    ),
    Rule(
        "site-quota",
        "The plan fits the OpenStack project's quota.",
        MANDATORY,
        ("flavors", "quotas"),
        stack=capacity.site_quota,
    ),
    Rule(
        "production-control-plane",
        "A production stack has three control-plane nodes in an anti-affinity server group.",
        MANDATORY,
        ("production",),
        stack=capacity.production_control_plane,
    ),
)
RULE_NAMES = tuple(rule.name for rule in RULES)


def plain(value: Any) -> Any:
    """Inputs as plain JSON values, as the offline plan has them. The engine's inputs come
    wrapped in pulumi_policy's proxies, which raise on values unknown at preview: those become
    `UNKNOWN`, so a rule judges what is known instead of giving up on the whole resource. They
    travel as protobuf Structs, where every number is a float: integral ones become ints."""
    if isinstance(value, Mapping):
        out = {}
        for key in value:
            try:
                item = value[key]
            except UnknownValueError:
                item = UNKNOWN
            out[str(key)] = plain(item)
        return out
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        items = []
        for index in range(len(value)):
            try:
                items.append(plain(value[index]))
            except UnknownValueError:
                items.append(UNKNOWN)
        return items
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _schema(rule: Rule) -> PolicyConfigSchema | None:
    return PolicyConfigSchema(properties={f: SCHEMA[f] for f in rule.facts}) if rule.facts else None


def _resource_policy(rule: Rule, check: ResourceCheck) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        resource = Resource(args.resource_type, args.name, plain(args.props), args.urn)
        try:
            messages = check(resource, facts_from(args.get_config()))
        except NotApplicable as reason:
            args.not_applicable(str(reason))  # raises: the engine records the rule as not applicable
            return
        for message in messages:
            report(message, None)

    return ResourceValidationPolicy(
        rule.name, rule.description, validate, enforcement_level=rule.level, config_schema=_schema(rule)
    )


def _stack_policy(rule: Rule, check: StackCheck) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        resources = [
            Resource(r.resource_type, r.name, plain(r.props), r.urn, tuple(d.urn for d in r.dependencies))
            for r in args.resources
        ]
        for finding in check(resources, facts_from(args.get_config())):
            report(finding.message, finding.urn)

    return StackValidationPolicy(
        rule.name, rule.description, validate, enforcement_level=rule.level, config_schema=_schema(rule)
    )


def policy(rule: Rule) -> Policy:
    if rule.resource is not None:
        return _resource_policy(rule, rule.resource)
    assert rule.stack is not None, f"rule {rule.name} checks nothing"
    return _stack_policy(rule, rule.stack)


POLICIES: list[Policy] = [policy(rule) for rule in RULES]
"""What `PolicyPack(...)` serves, one policy per rule."""
