"""The pack evaluated on a recorded plan, as the engine would evaluate it during a preview:
each resource as `ResourceValidationArgs`, the whole plan as `StackValidationArgs`, each
policy with its own config and enforcement level."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.policy import _NotApplicableError  # what args.not_applicable() raises

from .rules import POLICIES

OFFLINE = {"secretMarkers": True}
"""What the offline plan adds to every rule's config: Pulumi secrets show as "[secret]"."""


@dataclass(frozen=True)
class Violation:
    rule: str
    level: str
    """`mandatory` or `advisory`."""
    urn: str
    """The resource's URN; the stack's when the finding is about the plan as a whole."""
    message: str


def level(policy: Policy, config: Mapping[str, Any]) -> EnforcementLevel:
    """The policy's level as the engine settles it: the config's, else the policy's own."""
    configured = config.get("enforcementLevel")
    if configured is not None:
        return EnforcementLevel(configured)
    return policy.enforcement_level or EnforcementLevel.ADVISORY


def _options(resource: Mapping[str, Any]) -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], resource.get("parent") or None)


def stack_resources(resources: Sequence[Mapping[str, Any]]) -> list[PolicyResource]:
    built = {
        r["urn"]: PolicyResource(r["type"], r["inputs"], r["urn"], r["name"], _options(r), None, None, [], {})
        for r in resources
    }
    for r in resources:
        built[r["urn"]].parent = built.get(r.get("parent") or "")
        built[r["urn"]].dependencies = [built[d] for d in r.get("dependencies", []) if d in built]
    return list(built.values())


def _findings(
    policy: Policy, resources: Sequence[Mapping[str, Any]], properties: Mapping[str, Any]
) -> list[tuple[str, str]]:
    """(URN, message) of each violation of one policy; the stack's URN for stack-wide ones."""
    found: list[tuple[str, str]] = []
    if isinstance(policy, ResourceValidationPolicy):
        for r in resources:
            if not r["custom"]:
                continue
            args = ResourceValidationArgs(r["type"], r["inputs"], r["urn"], r["name"], _options(r), None, properties)
            try:
                policy.validate(args, lambda message, urn=None, own=r["urn"]: found.append((urn or own, message)))
            except _NotApplicableError:
                continue
    elif isinstance(policy, StackValidationPolicy):
        stack_urn = next((r["urn"] for r in resources if r["type"] == "pulumi:pulumi:Stack"), "")
        args = StackValidationArgs(stack_resources(resources), properties)
        policy.validate(args, lambda message, urn=None: found.append((urn or stack_urn, message)))
    return found


def evaluate(
    plan: Mapping[str, Any], config: Mapping[str, Mapping[str, Any]], policies: Sequence[Policy] = POLICIES
) -> list[Violation]:
    """Every violation of `policies` on `plan` (a `plan.json` document) under the pack config
    `config` (`{rule: {"enforcementLevel": …, facts…}}`); disabled rules are skipped."""
    found: list[Violation] = []
    for policy in policies:
        settings = dict(config.get(policy.name, {}))
        enforcement = level(policy, settings)
        if enforcement == EnforcementLevel.DISABLED:
            continue
        properties = {k: v for k, v in settings.items() if k != "enforcementLevel"} | OFFLINE
        for urn, message in _findings(policy, plan["resources"], properties):
            found.append(Violation(policy.name, enforcement.value, urn, message))
    return found


def mandatory(violations: Sequence[Violation]) -> list[Violation]:
    return [v for v in violations if v.level == EnforcementLevel.MANDATORY.value]


def report_text(violations: Sequence[Violation], rules: int) -> str:
    """What a person reads: one block per violation, then a count."""
    lines = []
    for v in sorted(violations, key=lambda v: (v.level != "mandatory", v.rule, v.urn)):
        lines += [f"{v.level.upper():9}  {v.rule}  {v.urn}", f"           {v.message}"]
    strict = len(mandatory(violations))
    if violations:
        lines.append(f"policy: {len(violations)} violation(s), {strict} mandatory ({rules} rules)")
    else:
        lines.append(f"policy: no violation ({rules} rules)")
    return "\n".join(lines)
