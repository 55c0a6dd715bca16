"""The wiring of the facility as one, class by class, for every shipped stack and the variants
that turn on what the shipped stacks leave off: every namespaced object waits for its
Namespace, every workload has a node it may run on, and the network policies allow exactly the
declared flows."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import SHIPPED_STACKS, preview_values, stack_values
from support.gateways import galileo, leonardo

from afctl.plan import plan_document

NAMESPACE = "kubernetes:core/v1:Namespace"
RELEASE = "kubernetes:helm.sh/v3:Release"


def variant(name: str) -> tuple[str, dict[str, Any], set[str]]:
    """A shipped stack with what it leaves off turned on: the autoscaler, offload gateways, the
    cache with an upstream credential, the in-cluster squid."""
    if name != "cms-bari-full":
        values, secret = stack_values(name)
        return name, values, secret
    values, secret = stack_values("cms-bari")
    values = copy.deepcopy(values)
    values["autoscaler"] = {"enabled": True, "image": "registry.example.org/af-autoscaler:1.0"}
    values["offload"] = {"gateways": {"leonardo": leonardo(), "galileo": galileo()}}
    values["identity"] = {"clientSecret": "identity-secret"}
    values["cache"] = {"enabled": True, "upstream": {"kind": "bearer-token", "clientId": "cache", "clientSecret": "x"}}
    values["cvmfs"] = {"squidProxy": True}
    return "cms-bari", values, secret | {"offload", "identity", "cache"}


STACKS = [*SHIPPED_STACKS, "cms-bari-full"]
_PLANS: dict[str, dict[str, Any]] = {}


def plan_of(name: str) -> dict[str, Any]:
    if name not in _PLANS:
        stack, values, secret = variant(name)
        _PLANS[name] = plan_document(preview_values(stack, values, secret))
    return _PLANS[name]


def _closure(urn: str, by_urn: dict[str, dict[str, Any]]) -> Iterator[str]:
    seen, todo = set(), [urn]
    while todo:
        for dep in by_urn[todo.pop()]["dependencies"]:
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
                yield dep


def _namespace_of(resource: dict[str, Any]) -> str | None:
    inputs = resource["inputs"]
    if resource["type"] == RELEASE:
        return inputs.get("namespace")
    if resource["type"].startswith("kubernetes:") and resource["type"] != NAMESPACE:
        metadata = inputs.get("metadata")
        return metadata.get("namespace") if isinstance(metadata, dict) else None
    return None


@pytest.mark.parametrize("stack", STACKS)
def test_every_namespaced_object_waits_for_its_namespace(stack):
    """Created before its Namespace, an object fails; only the provider's retries would hide it.
    A namespace a chart creates (cert-manager's) counts through that chart's release."""
    resources = plan_of(stack)["resources"]
    by_urn = {r["urn"]: r for r in resources}
    makers: dict[str, set[str]] = {}
    for r in resources:
        if r["type"] == NAMESPACE:
            makers.setdefault(r["inputs"]["metadata"]["name"], set()).add(r["urn"])
        elif r["type"] == RELEASE and r["inputs"].get("createNamespace"):
            makers.setdefault(r["inputs"]["namespace"], set()).add(r["urn"])
    missing = []
    for r in resources:
        namespace = _namespace_of(r)
        if namespace is None or r["urn"] in makers.get(namespace, set()):
            continue
        if not makers.get(namespace, set()) & set(_closure(r["urn"], by_urn)):
            missing.append(f"{r['name']} ({r['type']}) in {namespace}")
    assert missing == []
