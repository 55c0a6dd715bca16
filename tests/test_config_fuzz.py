"""Property test of the config error contract.

Valid bases come from the shipped `dev` and `cms-bari` stacks, with their profiles merged in and
every default made explicit. Each example applies one to four mutations that are invalid by
construction, and the error must follow the contract: `ConfigError`, one line per problem,
`af:<path>: got <value>; allowed: <text>`, and the mutated key path among the reported ones."""

from __future__ import annotations

import copy
import re
import tempfile
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal
from unittest import mock

import annotated_types
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from support.gateways import galileo
from test_config import JARGON, LINE

import afctl.runner
from afctl import cli
from afctl.stackfile import read_stack
from components.config.errors import ConfigError, key_path
from components.config.facility import FacilityConfig
from components.config.loader import PROFILES_DIR, _tags, _unwrap, build_config, deep_merge, load_yaml
from components.config.pulumi_source import StackConfigError
from components.infra.quota import Usage, usage

Loc = tuple[str | int, ...]

BASE_STACKS = ("dev", "cms-bari")
MIN_EXAMPLES = 200
FUZZ_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --- valid bases ---------------------------------------------------------------------------------

SECRETS = frozenset({"offload"})
"""The gateway's token in the bases is a Pulumi secret."""


@cache
def _base(stack: str) -> dict[str, Any]:
    """The stack's full config: profiles merged in, every default explicit, no profiles left,
    plus a node label and an offload gateway so those models have something to mutate."""
    values, secret = read_stack(stack)
    assert secret <= {"identity", "cache", "offload"}, "only the stood-in IAM client secrets"
    merged: dict[str, Any] = {}
    for name in values["profiles"]:
        merged = deep_merge(merged, load_yaml(PROFILES_DIR / f"{name}.yaml"))
    merged = deep_merge(merged, values)
    full = build_config(merged, secret).model_dump(by_alias=True, mode="json", exclude_none=True)
    full["profiles"] = []
    # The hub's cross checks need a deploy secret; they are covered in test_config_interactive.
    full["hub"]["enabled"] = False
    full["dask"]["enabled"] = False  # the gateway needs the hub; its checks are in test_config_dask
    full["identity"].pop("clientSecret", None)
    full["cache"].pop("upstream", None)  # its secret likewise: covered in test_config_data
    for group in full["cluster"]["nodeGroups"].values():
        group["labels"] = {"tier": "work"}
    if full["condor"]["enabled"]:
        full["offload"]["gateways"] = {"galileo": galileo(groups=full["identity"]["roles"]["batch"][:1])}
    build_config(full, SECRETS)  # still valid
    return full


def base(stack: str) -> dict[str, Any]:
    return copy.deepcopy(_base(stack))


# --- what the schema says about a location -------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """The schema at a location: a model, a mapping, a list, or a scalar."""

    kind: Literal["model", "dict", "list", "scalar"]
    annotation: Any
    field: FieldInfo | None  # the model field holding it, None for mapping values and list items


def _node(annotation: Any, info: FieldInfo | None) -> Node:
    annotation = _unwrap(annotation)
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return Node("model", annotation, info)
    if origin is dict:
        return Node("dict", _unwrap(typing.get_args(annotation)[1]), info)
    if origin is list:
        return Node("list", _unwrap(typing.get_args(annotation)[0]), info)
    return Node("scalar", annotation, info)


def aliases(model: type[BaseModel]) -> dict[str, FieldInfo]:
    return {(f.alias or n): f for n, f in model.model_fields.items()}


def _chosen(annotation: Any, value: Any) -> Any:
    """The member of a union of models (tagged by `kind`) that `value` is."""
    members = _tags(annotation)
    return members.get(value.get("kind"), annotation) if members and isinstance(value, dict) else annotation


def schema_at(loc: Loc, root: Any) -> Node:
    node, value = Node("model", FacilityConfig, None), root
    for part in loc:
        value = value[part]
        if node.kind == "model":
            info = aliases(node.annotation)[str(part)]
            node = _node(_chosen(_unwrap(info.annotation), value), info)
        elif node.kind in ("dict", "list"):
            node = _node(node.annotation, None)
        else:
            raise KeyError(loc)
    return node


def walk(value: Any, loc: Loc = ()) -> Iterator[tuple[Loc, Any]]:
    yield loc, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from walk(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk(item, (*loc, index))


@dataclass(frozen=True)
class Catalog:
    """Locations of a base config, sorted by what can be done to them."""

    nodes: dict[Loc, Node]
    values: dict[Loc, Any]

    def where(self, test: Callable[[Loc, Node, Any], bool]) -> list[Loc]:
        return [loc for loc, node in self.nodes.items() if loc and test(loc, node, self.values[loc])]


@cache
def catalog(stack: str) -> Catalog:
    full = _base(stack)
    nodes, values = {}, {}
    for loc, value in walk(full):
        nodes[loc] = schema_at(loc, full)
        values[loc] = value
    return Catalog(nodes, values)


# --- mutations -----------------------------------------------------------------------------------

# Level "schema": reported by field validation, always. Levels "cross", "flavor", "quota": reported by
# the cross checks, which only run when field validation passes; quota checks only run when every
# flavor is known. Level "existing" switches the cross checks off, so it never mixes with them.
Level = Literal["schema", "cross", "flavor", "quota", "existing"]


@dataclass
class Mutation:
    kind: str
    touches: list[Loc]
    expect: Loc
    allowed: str | None
    level: Level
    apply: Callable[[dict[str, Any]], None]
    value: Any = field(default=None)


def get(cfg: Any, loc: Loc) -> Any:
    for part in loc:
        cfg = cfg[part]
    return cfg


def put(cfg: Any, loc: Loc, value: Any) -> None:
    get(cfg, loc[:-1])[loc[-1]] = value


def delete(cfg: Any, loc: Loc) -> None:
    del get(cfg, loc[:-1])[loc[-1]]


def rename(cfg: Any, loc: Loc, new: str) -> None:
    parent = get(cfg, loc[:-1])
    parent[new] = parent.pop(loc[-1])


def setter(loc: Loc, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda cfg: put(cfg, loc, value)


Draw = Callable[[st.SearchStrategy[Any]], Any]


def _pick(draw: Draw, options: list[Any]) -> Any:
    assert options
    return draw(st.sampled_from(options))


def _is_int(node: Node, value: Any) -> bool:
    return node.kind == "scalar" and isinstance(value, int) and not isinstance(value, bool)


WRONG_TYPES: dict[str, list[Any]] = {
    "mapping": [7, "text", [1, 2], True, 2.5],
    "list": [7, "a,b", {"a": 1}, True],
    "int": ["many", [1], {"n": 1}, 2.5, "1e3x"],
    "bool": ["maybe", 2, [True], {"on": 1}, "enabled"],
    "str": [7, ["x"], {"x": "y"}, 1.5, True],
    # A number field (PositiveFloat dumps 2 as 2.0) takes 7 and 1.5: give it what no number is.
    "float": ["many", [1.5], {"x": 1.5}, "1e3x"],
}


def _type_kind(node: Node, value: Any) -> str:
    if node.kind in ("model", "dict"):
        return "mapping"
    if node.kind == "list":
        return "list"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, float):
        return "float"
    return "int" if isinstance(value, int) else "str"


@cache
def _locs_by_type(stack: str) -> dict[str, list[Loc]]:
    cat = catalog(stack)
    found: dict[str, list[Loc]] = {}
    for loc in cat.where(lambda loc, node, value: True):
        found.setdefault(_type_kind(cat.nodes[loc], cat.values[loc]), []).append(loc)
    return found


def m_wrong_type(kind: str) -> Callable[[Draw, str], Mutation]:
    """Replace a mapping, list, bool, int or str value by one of another type."""
    return lambda draw, stack: _wrong_type(draw, stack, kind)


def _wrong_type(draw: Draw, stack: str, kind: str) -> Mutation:
    loc = _pick(draw, _locs_by_type(stack)[kind])
    new = _pick(draw, WRONG_TYPES[kind])
    allowed = "a mapping" if kind == "mapping" else None
    level = "profile" if loc[0] == "profiles" else "schema"  # a bad profile list is reported alone
    return Mutation(f"wrong-type-{kind}", [loc], loc, allowed, level, setter(loc, new), new)


def m_non_mapping(draw: Draw, stack: str) -> Mutation:
    cat = catalog(stack)
    loc = _pick(draw, cat.where(lambda loc, node, value: node.kind in ("model", "dict")))
    new = _pick(draw, [[], ["a"], "section", 0, 3.5, False])
    return Mutation("non-mapping", [loc], loc, "a mapping", "schema", setter(loc, new), new)


def m_out_of_range(draw: Draw, stack: str) -> Mutation:
    cat = catalog(stack)
    loc = _pick(draw, cat.where(lambda loc, node, value: _is_int(node, value)))
    node = cat.nodes[loc]
    if typing.get_origin(node.annotation) is Literal:
        allowed_values = typing.get_args(node.annotation)
        new = draw(st.integers(-5, 10).filter(lambda n: n not in allowed_values))
        allowed = " or ".join(str(v) for v in allowed_values)
    else:
        positive = node.field is not None and any(isinstance(m, annotated_types.Gt) for m in node.field.metadata)
        new = draw(st.integers(-(10**9), 0 if positive else -1))
        allowed = "a number"
    return Mutation("out-of-range", [loc], loc, allowed, "schema", setter(loc, new), new)


UNKNOWN_KEYS = ["colour", "replicas", "ramGB", "enable", "x-extra", "size", "Name", "tls"]


def _snake(alias: str) -> str:
    return re.sub(r"[A-Z]", lambda m: "_" + m.group(0).lower(), alias)


def m_unknown_key(draw: Draw, stack: str) -> Mutation:
    cat = catalog(stack)
    parents = [(), *cat.where(lambda loc, node, value: node.kind == "model")]
    loc = _pick(draw, parents)
    model = cat.nodes[loc].annotation if loc else FacilityConfig
    known = set(aliases(model))
    names = sorted({*UNKNOWN_KEYS, *(_snake(a) for a in known)} - known)
    key = _pick(draw, names)
    new = _pick(draw, [1, "x", {"a": 1}, [1], None, True])
    target = (*loc, key)
    return Mutation("unknown-key", [target], target, "one of the keys", "schema", setter(target, new), new)


def m_delete_required(draw: Draw, stack: str) -> Mutation:
    cat = catalog(stack)
    loc = _pick(draw, cat.where(lambda loc, node, value: node.field is not None and node.field.is_required()))
    return Mutation("delete-required", [loc], loc, "this key is required", "schema", lambda cfg: delete(cfg, loc))


BAD_LABELS = ["Infn", "-site", "site-", "site_1", "1site", "a" * 33, "", "site.ba", "sïte", "UPPER", "a--", "x/y"]


def m_bad_label(draw: Draw, stack: str) -> Mutation:
    cat = catalog(stack)
    bad = _pick(draw, BAD_LABELS)
    renames = [(*g, name) for g in [("cluster", "nodeGroups"), ("offload", "gateways")] for name in cat.values[g]]
    values = [("site", "name"), *cat.where(lambda loc, node, value: loc[-2:-1] == ("gpu",) and loc[-1] == "model")]
    loc = _pick(draw, renames + values)
    if loc in renames:
        target = (*loc[:-1], bad)
        return Mutation("bad-label-key", [loc], target, "a DNS label", "schema", lambda cfg: rename(cfg, loc, bad), bad)
    return Mutation("bad-label", [loc], loc, "a DNS label", "schema", setter(loc, bad), bad)


BAD_FQDNS = [
    ("af", "fully qualified"),
    ("AF.ba.infn.it", "fully qualified"),
    ("af..infn.it", "fully qualified"),
    ("-af.infn.it", "fully qualified"),
    ("af.infn.i", "fully qualified"),
    ("af_1.infn.it", "fully qualified"),
    ("af.infn.it.", "fully qualified"),
    ("af.infn-.it", "fully qualified"),
    ("af.infn.123", "fully qualified"),
    ("https://af.infn.it", "fully qualified"),
    ("a" * 64 + ".infn.it", "fully qualified"),
    ("a." * 130 + "org", "253"),
]


def m_bad_fqdn(draw: Draw, stack: str) -> Mutation:
    loc = ("site", "dnsName")
    new, allowed = _pick(draw, BAD_FQDNS)
    return Mutation("bad-fqdn", [loc], loc, allowed, "schema", setter(loc, new), new)


BAD_ADMIN_CIDRS = [
    ("0.0.0.0/0", "narrower than the whole internet"),
    ("::/0", "narrower than the whole internet"),
    ("212.189.205.1/24", "host bits zero"),
    ("10.0.0.0/33", "CIDR notation"),
    ("not-a-net", "CIDR notation"),
    ("300.1.1.0/24", "CIDR notation"),
    ("10.0.0.0/-1", "CIDR notation"),
]
BAD_NODE_CIDRS = [
    ("10.10.0.0/27", "/26 or larger"),
    ("10.10.0.0/32", "/26 or larger"),
    ("fd00::/64", "IPv4"),
    ("10.10.0.1/24", "host bits zero"),
    ("10.10.0.0", "/26 or larger"),
]
BAD_CIDRS = [("10.42.0.1/16", "host bits zero"), ("10.42.0.0/99", "CIDR notation"), ("ten.net", "CIDR notation")]


def m_bad_cidr(draw: Draw, stack: str) -> Mutation:
    cat = catalog(stack)
    admin = cat.values[("site", "adminCidrs")]
    choice = _pick(draw, ["admin-item", "admin-append", "admin-empty", "node", "pod", "service"])
    if choice == "admin-empty":
        loc: Loc = ("site", "adminCidrs")
        return Mutation("bad-cidr", [loc], loc, "at least 1 item", "schema", setter(loc, []), [])
    if choice.startswith("admin"):
        new, allowed = _pick(draw, BAD_ADMIN_CIDRS)
        index = len(admin) if choice == "admin-append" else draw(st.integers(0, len(admin) - 1))
        loc = ("site", "adminCidrs")
        cidrs = [*admin[:index], new, *admin[index + 1 :]]
        return Mutation("bad-cidr", [loc], (*loc, index), allowed, "schema", setter(loc, cidrs), new)
    loc = {"node": ("site", "nodeCidr"), "pod": ("cluster", "podCidr"), "service": ("cluster", "serviceCidr")}[choice]
    new, allowed = _pick(draw, BAD_NODE_CIDRS if choice == "node" else BAD_CIDRS)
    return Mutation("bad-cidr", [loc], loc, allowed, "schema", setter(loc, new), new)


def m_bad_enum(draw: Draw, stack: str) -> Mutation:
    cat = catalog(stack)
    options: list[tuple[Loc, list[Any], str]] = [
        (("cluster", "mode"), ["kubeadm", "OpenStack", "k8s", ""], "'openstack', 'magnum' or 'existing'"),
        (("cluster", "k3s", "distribution"), ["rke2", "k0s", "K3S"], "'k3s'"),
        (("cluster", "magnum", "networkDriver"), ["cilium", "weave"], "'calico' or 'flannel'"),
        (("cluster", "controlPlane", "count"), [0, 2, 5], "1 or 3"),
    ]
    for loc in cat.where(lambda loc, node, value: len(loc) > 1 and loc[-2] == "roles" and isinstance(loc[-1], int)):
        roles = "'system', 'interactive', 'batch', 'cache' or 'dask'"
        options.append((loc, ["gpu", "worker", "System", "cache-node"], roles))
    for loc in cat.where(lambda loc, node, value: loc[-1] == "effect"):
        options.append((loc, ["NoScheduled", "noschedule", "Never"], "'NoSchedule', 'PreferNoSchedule' or 'NoExecute'"))
    for loc in cat.where(lambda loc, node, value: loc[:2] == ("offload", "gateways") and loc[-1] == "kind"):
        allowed = "'interlink-slurm'" if len(loc) == 4 else "one of 'iam-client', 'token'"
        options.append((loc, ["slurm", "interlink"], allowed))
    loc, values, allowed = _pick(draw, options)
    new = _pick(draw, values)
    return Mutation("bad-enum", [loc], loc, allowed, "schema", setter(loc, new), new)


BAD_TEXT: dict[Loc, list[tuple[Any, str]]] = {
    ("cache", "ram"): [("512m", "at least 1g"), ("0g", "at least 1g"), ("4G", "a size such as"), ("lots", "a size")],
    ("cache", "blockSize"): [("6k", "a multiple of 4k"), ("1k", "a multiple of 4k"), ("1x", "a size such as")],
    ("cache", "origin"): [("Host:1094", "such as"), ("host:123456", "such as"), ("root://h", "no root://")],
    ("cluster", "k3s", "version"): [("1.36.2", "such as"), ("v1.36.2", "such as")],
    ("cluster", "k3s", "sha256"): [("abc", "64 lowercase hexadecimal"), ("A" * 64, "64 lowercase hexadecimal")],
    ("cluster", "magnum", "kubeTag"): [("1.30.4", "such as"), ("v1.30", "such as")],
    ("hub", "chartVersion"): [("4.2", "such as"), ("v4.2.0", "such as")],
    ("hub", "notebookImage"): [
        ("quay.io/jupyter/scipy-notebook:latest", "never `latest`"),
        ("quay.io/jupyter/scipy-notebook", "pinned by tag"),
        ("img:tag with space", "pinned by tag"),
        ("img@sha256:abc", "pinned by tag"),
        (f"img@sha256:{'a' * 64}", "pinned by tag"),
    ],
    ("condor", "imageTag"): [("latest", "such as"), ("24.0.7", "such as")],
    ("identity", "issuer"): [
        ("iam.cloud.infn.it", "URL"),
        ("not a url", "URL"),
        ("ftp://iam.example.org/", "https"),
        ("http://iam.example.org/", "an https:// URL"),
    ],
    ("identity", "clientId"): [("", "at least 1 character")],
    ("offload", "gateways", "galileo", "endpoint"): [("galileo", "https://"), ("http://x.example.org/", "https://")],
    ("offload", "gateways", "galileo", "slurm", "partition"): [("two words", "a Slurm name"), ("", "a Slurm name")],
}


def m_bad_text(draw: Draw, stack: str) -> Mutation:
    cat = catalog(stack)
    taint_keys = cat.where(lambda loc, node, value: len(loc) > 2 and loc[-3] == "taints" and loc[-1] == "key")
    options = [(loc, value) for loc, values in BAD_TEXT.items() for value in values if loc[:-1] in cat.values]
    options += [(loc, (bad, "such as")) for loc in taint_keys for bad in ("bad key", "nvidia.com/gpu!", "/x")]
    repos = ("cvmfs", "repositories")
    options += [(repos, (bad, "repository names such as cms.cern.ch")) for bad in ("cms", "CMS.cern.ch", "cms..ch")]
    loc, (new, allowed) = _pick(draw, options)
    if loc == repos:
        index = draw(st.integers(0, len(cat.values[repos])))
        items = [*cat.values[repos][:index], new, *cat.values[repos][index:]]
        return Mutation("bad-text", [loc], loc, allowed, "schema", setter(loc, items), new)
    return Mutation("bad-text", [loc], loc, allowed, "schema", setter(loc, new), new)


def m_empty(draw: Draw, stack: str) -> Mutation:
    cat = catalog(stack)
    roles = cat.where(
        lambda loc, node, value: loc[:2] == ("cluster", "nodeGroups") and loc[-1] == "roles" and isinstance(value, list)
    )
    loc = _pick(draw, [("cluster", "nodeGroups"), ("site", "flavors"), ("site", "adminCidrs"), *roles])
    new: Any = {} if isinstance(cat.values[loc], dict) else []
    if loc == ("cluster", "nodeGroups"):
        # No node group is valid by itself (the control plane may carry the roles); with none, the
        # facility's services have nowhere to run.
        return Mutation("empty", [loc], loc, "a node group with role system", "cross", setter(loc, new), new)
    return Mutation("empty", [loc], loc, "at least 1 item", "schema", setter(loc, new), new)


def m_bad_profile(draw: Draw, stack: str) -> Mutation:
    name = _pick(
        draw, ["no-such", "sites/nowhere", "experiments/CMS", "../secrets", "experiments/cms.yaml", "", "sites"]
    )
    loc: Loc = ("profiles",)
    return Mutation("bad-profile", [loc], (*loc, 0), "experiments/cms", "profile", setter(loc, [name]), name)


# Cross-section mutations: every field stays valid, the sections disagree.

QUOTA_KEYS = {
    "vcpus": "vcpus",
    "ramGib": "ram_gib",
    "instances": "instances",
    "volumes": "volumes",
    "volumeGib": "volume_gib",
    "floatingIps": "floating_ips",
    "gpus": "gpus",
}


def _groups(stack: str) -> dict[str, dict[str, Any]]:
    return catalog(stack).values[("cluster", "nodeGroups")]


def _group_loc(name: str) -> Loc:
    return ("cluster", "nodeGroups", name)


@cache
def _usage(stack: str) -> Usage:
    cfg = build_config(_base(stack), SECRETS)
    return usage(cfg.site, cfg.cluster)


def m_quota_overrun(draw: Draw, stack: str) -> Mutation:
    used = _usage(stack)
    key = _pick(draw, sorted(k for k, attr in QUOTA_KEYS.items() if getattr(used, attr) > 0))
    need = getattr(used, QUOTA_KEYS[key])
    limit = draw(st.integers(0, need - 1))
    loc = ("site", "quotas", key)
    expect, allowed = ("cluster", "nodeGroups"), f"(af:site.quotas.{key})"
    return Mutation("quota-overrun", [loc], expect, allowed, "quota", setter(loc, limit), limit)


def m_count_overrun(draw: Draw, stack: str) -> Mutation:
    name = _pick(draw, sorted(_groups(stack)))
    limit = _base(stack)["site"]["quotas"]["instances"]
    count = draw(st.integers(limit, 10 * limit))
    loc = (*_group_loc(name), "count")
    allowed = "(af:site.quotas.instances)"
    return Mutation(
        "count-overrun", [_group_loc(name)], ("cluster", "nodeGroups"), allowed, "quota", setter(loc, count)
    )


UNTAINTED = [
    [],
    [{"key": "af.infn.it/gpu", "value": "present", "effect": "NoSchedule"}],
    [{"key": "nvidia.com/gpu", "value": "present", "effect": "PreferNoSchedule"}],
    [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoExecute"}],
    [{"key": "nvidia.com/gpu.product", "effect": "NoSchedule"}],
]
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


def _gpu_flavor(stack: str) -> tuple[str, dict[str, Any]]:
    flavors = _base(stack)["site"]["flavors"]
    return next((n, f) for n, f in sorted(flavors.items()) if f.get("gpus"))


def _gpu_group(draw: Draw, stack: str) -> tuple[Loc, Callable[[dict[str, Any]], None], dict[str, Any]]:
    """An existing GPU group, or (in stacks without one) a new valid GPU group to break."""
    existing = sorted(n for n, g in _groups(stack).items() if "gpu" in g)
    if existing:
        name = _pick(draw, existing)
        return _group_loc(name), lambda cfg: None, _groups(stack)[name]
    flavor, spec = _gpu_flavor(stack)
    group = {
        "flavor": flavor,
        "count": 1,
        "roles": ["batch"],
        "gpu": {"count": spec["gpus"], "model": spec["gpuModel"]},
        "taints": [dict(GPU_TAINT)],
    }
    loc = _group_loc("gpu-extra")
    return loc, setter(loc, copy.deepcopy(group)), group


def m_untainted_gpu(draw: Draw, stack: str) -> Mutation:
    loc, add, _ = _gpu_group(draw, stack)
    taints = _pick(draw, UNTAINTED)

    def apply(cfg: dict[str, Any]) -> None:
        add(cfg)
        put(cfg, (*loc, "taints"), copy.deepcopy(taints))

    return Mutation("untainted-gpu", [loc], (*loc, "taints"), "nvidia.com/gpu=present:NoSchedule", "cross", apply)


def m_gpu_count(draw: Draw, stack: str) -> Mutation:
    loc, add, group = _gpu_group(draw, stack)
    flavor_gpus = _base(stack)["site"]["flavors"][group["flavor"]]["gpus"]
    count = draw(st.integers(1, 16).filter(lambda n: n != flavor_gpus))

    def apply(cfg: dict[str, Any]) -> None:
        add(cfg)
        put(cfg, (*loc, "gpu", "count"), count)

    return Mutation("gpu-count", [loc], (*loc, "gpu", "count"), "the GPUs of flavor", "cross", apply, count)


def m_gpu_spec_missing(draw: Draw, stack: str) -> Mutation:
    loc, add, _ = _gpu_group(draw, stack)

    def apply(cfg: dict[str, Any]) -> None:
        add(cfg)
        delete(cfg, (*loc, "gpu"))

    return Mutation("gpu-spec-missing", [loc], (*loc, "gpu"), "a gpu spec", "cross", apply)


def m_gpu_sharing(draw: Draw, stack: str) -> Mutation:
    """A GPU group shared in a way that cannot be: time-slicing and MIG together, replicas out
    of range, or more MIG instances than a GPU's compute slices."""
    loc, add, _ = _gpu_group(draw, stack)
    gpu = (*loc, "gpu")
    choice = _pick(draw, ["both", "replicas", "slices"])
    if choice == "both":
        at, allowed = gpu, "not both"
        sharing = {"timeSlicing": {"replicas": 4}, "mig": {"profile": "1g.10gb", "instances": 7}}
    elif choice == "replicas":
        replicas = draw(st.one_of(st.integers(-3, 1), st.integers(65, 1000)))
        at, allowed = (*gpu, "timeSlicing", "replicas"), "a number of at "
        sharing = {"timeSlicing": {"replicas": replicas}}
    else:
        slices = draw(st.integers(2, 7))
        instances = draw(st.integers(7 // slices + 1, 7))
        at, allowed = (*gpu, "mig"), "compute slices"
        sharing = {"mig": {"profile": f"{slices}g.{slices * 10}gb", "instances": instances}}

    def apply(cfg: dict[str, Any]) -> None:
        add(cfg)
        get(cfg, gpu).update(copy.deepcopy(sharing))

    return Mutation("gpu-sharing", [loc], at, allowed, "schema", apply, sharing)


def m_gpu_model_missing(draw: Draw, stack: str) -> Mutation:
    name, _ = _gpu_flavor(stack)
    loc = ("site", "flavors", name, "gpuModel")
    return Mutation("gpu-model-missing", [loc[:-1]], loc, "the GPU model", "flavor", lambda cfg: delete(cfg, loc))


def m_unknown_flavor(draw: Draw, stack: str) -> Mutation:
    name = _pick(draw, ["huge", "m1.large", "XLARGE", "g2-h100", "largex"])
    users = [("cluster", "controlPlane"), *(_group_loc(g) for g in sorted(_groups(stack)))]
    owner = _pick(draw, users)
    loc = (*owner, "flavor")
    allowed = "a flavor of af:site.flavors"
    return Mutation("unknown-flavor", [owner], loc, allowed, "flavor", setter(loc, name), name)


def m_delete_used_flavor(draw: Draw, stack: str) -> Mutation:
    full = _base(stack)
    users = {("cluster", "controlPlane"): full["cluster"]["controlPlane"]["flavor"]}
    users |= {_group_loc(n): g["flavor"] for n, g in full["cluster"]["nodeGroups"].items()}
    flavor = _pick(draw, sorted(set(users.values())))
    owners = sorted(loc for loc, f in users.items() if f == flavor)
    loc = ("site", "flavors", flavor)
    expect = (*owners[0], "flavor")
    allowed = "a flavor of af:site.flavors"
    return Mutation("delete-used-flavor", [loc, *owners], expect, allowed, "flavor", lambda cfg: delete(cfg, loc))


def m_identity_missing(draw: Draw, stack: str) -> Mutation:
    loc: Loc = ("identity",)
    how = _pick(draw, ["delete", "null"])
    remove = (lambda cfg: delete(cfg, loc)) if how == "delete" else setter(loc, None)

    def apply(cfg: dict[str, Any]) -> None:
        remove(cfg)
        cfg["hub"]["enabled"] = True  # the bases run without the hub

    return Mutation("identity-missing", [loc, ("hub",)], loc, "an identity provider", "cross", apply)


def m_plaintext_secret(draw: Draw, stack: str) -> Mutation:
    loc = ("identity", "clientSecret")
    secret = "tok-" + draw(st.text(alphabet="abcdef0123456789", min_size=8, max_size=40))
    allowed = "pulumi config set --secret --path 'af:identity.clientSecret'"
    return Mutation("plaintext-secret", [loc], loc, allowed, "cross", setter(loc, secret), secret)


def m_existing(draw: Draw, stack: str) -> Mutation:
    kubeconfig = _pick(draw, [None, "apiVersion: v1\nkind: Config\nusers: [{user: {token: tok-0123456789}}]\n"])

    def apply(cfg: dict[str, Any]) -> None:
        put(cfg, ("cluster", "mode"), "existing")
        if kubeconfig is not None:
            put(cfg, ("cluster", "existing"), {"kubeconfig": kubeconfig})

    touches = [("cluster", "mode"), ("cluster", "existing")]
    if kubeconfig is None:
        return Mutation(
            "existing-without-kubeconfig", touches, ("cluster", "existing"), "kubeconfig", "existing", apply
        )
    expect = ("cluster", "existing", "kubeconfig")
    return Mutation("existing-plaintext-kubeconfig", touches, expect, "--secret --path", "existing", apply, kubeconfig)


MUTATIONS: dict[str, Callable[[Draw, str], Mutation]] = {
    "wrong-type-mapping": m_wrong_type("mapping"),
    "wrong-type-list": m_wrong_type("list"),
    "wrong-type-bool": m_wrong_type("bool"),
    "wrong-type-int": m_wrong_type("int"),
    "wrong-type-str": m_wrong_type("str"),
    "wrong-type-float": m_wrong_type("float"),
    "non-mapping": m_non_mapping,
    "out-of-range": m_out_of_range,
    "unknown-key": m_unknown_key,
    "delete-required": m_delete_required,
    "bad-label": m_bad_label,
    "bad-fqdn": m_bad_fqdn,
    "bad-cidr": m_bad_cidr,
    "bad-enum": m_bad_enum,
    "bad-text": m_bad_text,
    "empty": m_empty,
    "bad-profile": m_bad_profile,
    "quota-overrun": m_quota_overrun,
    "count-overrun": m_count_overrun,
    "untainted-gpu": m_untainted_gpu,
    "gpu-count": m_gpu_count,
    "gpu-spec-missing": m_gpu_spec_missing,
    "gpu-sharing": m_gpu_sharing,
    "gpu-model-missing": m_gpu_model_missing,
    "unknown-flavor": m_unknown_flavor,
    "delete-used-flavor": m_delete_used_flavor,
    "identity-missing": m_identity_missing,
    "plaintext-secret": m_plaintext_secret,
    "existing": m_existing,
}


def _overlap(a: Loc, b: Loc) -> bool:
    return a[: len(b)] == b or b[: len(a)] == a


def compatible(new: Mutation, chosen: list[Mutation]) -> bool:
    for old in chosen:
        if any(_overlap(a, b) for a in new.touches for b in old.touches):
            return False
        levels = {new.level, old.level}
        if "existing" in levels and levels != {"existing", "schema"}:
            return False
    return True


def expected(chosen: list[Mutation]) -> list[Mutation]:
    """Mutations whose problem must be reported, given which checks run: a missing profile is
    the root cause of whatever else is missing, so it is reported alone."""
    profile = [m for m in chosen if m.level == "profile"]
    if profile:
        return profile
    schema = [m for m in chosen if m.level == "schema"]
    if schema:
        return schema
    flavor_problem = any(m.level == "flavor" for m in chosen)
    return [m for m in chosen if not (m.level == "quota" and flavor_problem)]


@dataclass
class Case:
    stack: str
    config: dict[str, Any]
    mutations: list[Mutation]


@st.composite
def invalid_configs(draw: Draw) -> Case:
    stack = draw(st.sampled_from(BASE_STACKS))
    cfg = base(stack)
    chosen: list[Mutation] = []
    for _ in range(draw(st.integers(1, 4))):
        mutation = MUTATIONS[draw(st.sampled_from(sorted(MUTATIONS)))](draw, stack)
        if compatible(mutation, chosen):
            mutation.apply(cfg)
            chosen.append(mutation)
    return Case(stack, cfg, chosen)


# --- the contract --------------------------------------------------------------------------------


def assert_line_contract(lines: list[str]) -> None:
    assert lines
    for line in lines:
        assert "\n" not in line and "\r" not in line, line
        assert LINE.match(line), line
        assert "Traceback" not in line and "pydantic.dev" not in line and "errors.pydantic" not in line, line
        assert "For further information" not in line and "validation error" not in line, line
        allowed = line.split("; allowed: ", 1)[1]
        assert not any(word in allowed for word in JARGON), f"jargon or a raw regex in: {line}"


def check_contract(case: Case) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        build_config(case.config, SECRETS)
    error = info.value
    lines = error.lines()
    assert_line_contract(lines)
    assert str(error) == "\n".join(lines)
    assert error.problems == sorted(set(error.problems))
    for mutation in case.mutations:
        if "plaintext" in mutation.kind:
            assert "tok-" not in str(error), f"a plaintext secret is echoed: {lines}"
    for mutation in expected(case.mutations):
        path = key_path(mutation.expect)
        at_path = [p for p in error.problems if p.path == path]
        what = f"{mutation.kind} ({mutation.value!r}) on {case.stack}"
        assert at_path, f"{what}: {path} not reported in {lines}"
        if mutation.allowed is not None:
            assert any(mutation.allowed in p.allowed for p in at_path), f"{what}: {at_path}"
    return error


EXECUTED: list[str] = []


@FUZZ_SETTINGS
@given(invalid_configs())
def _fuzz_build_config(case: Case) -> None:
    check_contract(case)
    kinds = sorted({m.kind for m in case.mutations})
    EXECUTED.append(f"{case.stack}:{','.join(kinds)}")
    for kind in kinds:
        event(kind)


def test_bases_are_valid() -> None:
    for stack in BASE_STACKS:
        cfg = build_config(base(stack), SECRETS)
        assert cfg.cluster.node_groups and cfg.identity is not None
    assert "gpu-a100" in _base("cms-bari")["cluster"]["nodeGroups"]


def test_fuzzed_invalid_configs_follow_the_error_contract() -> None:
    EXECUTED.clear()
    _fuzz_build_config()
    assert len(EXECUTED) >= MIN_EXAMPLES, f"only {len(EXECUTED)} invalid configs checked"
    assert {e.split(":")[0] for e in EXECUTED} == set(BASE_STACKS)
    seen = {kind for e in EXECUTED for kind in e.split(":")[1].split(",")}
    missing = [k for k in MUTATIONS if not any(s.startswith(k) for s in seen)]
    assert not missing, f"mutation kinds never exercised: {missing}"
    assert sum("," in e for e in EXECUTED) >= MIN_EXAMPLES // 4, "too few examples with several mutations"


# --- end to end on a sample: afctl exits 2, the program registers nothing -------------------------


class SpyMonitor(afctl.runner.RecordingMonitor):
    """The runner's monitor, kept so a test can see what was registered before the program raised."""

    instances: typing.ClassVar[list[afctl.runner.RecordingMonitor]] = []

    def __init__(self) -> None:
        super().__init__()
        SpyMonitor.instances.append(self)


def write_stack_file(project_dir: Path, values: dict[str, Any]) -> None:
    config = {f"af:{key}": value for key, value in values.items()}
    (project_dir / "Pulumi.s.yaml").write_text(yaml.safe_dump({"config": config}, allow_unicode=True), encoding="utf-8")


def test_sampled_invalid_configs_end_to_end(capsys: pytest.CaptureFixture[str]) -> None:
    """On 20 generated configs: `afctl validate` and `afctl preview` exit 2 and print exactly the
    problem lines; the real program raises `StackConfigError` having registered only the stack."""
    executed: list[str] = []

    def run_cli(argv: list[str]) -> tuple[int, str, str]:
        capsys.readouterr()
        code = cli.main(argv)
        out, err = capsys.readouterr()
        return code, out, err

    @settings(FUZZ_SETTINGS, max_examples=20)
    @given(invalid_configs())
    def end_to_end(case: Case) -> None:
        error = check_contract(case)
        # The gateway's token is a deploy secret: the stack file leaves it out, the preview stands in.
        config = copy.deepcopy(case.config)
        for gateway in (config.get("offload") or {}).get("gateways", {}).values():
            if isinstance(gateway, dict) and isinstance(gateway.get("auth"), dict):
                gateway["auth"].pop("token", None)
        with tempfile.TemporaryDirectory() as tmp:
            project = Path(tmp)
            write_stack_file(project, config)
            stood_in: list[str] = []
            values, secret = read_stack("s", project, stood_in)
            for path in stood_in:  # placeholders for deploy secrets the config needs
                *parents, leaf = path.removeprefix("af:").split(".")
                node = values
                for key in parents:
                    node = node[key]
                del node[leaf]
            assert values == config and secret == {p.removeprefix("af:").split(".")[0] for p in stood_in}
            for command in (["validate", "s"], ["preview", "s", "--out", str(project / "out")]):
                code, out, err = run_cli(["--project-dir", str(project), *command])
                assert (code, out) == (2, ""), (command, out, err)
                assert err.splitlines() == error.lines()
                assert "Traceback" not in err
            assert not (project / "out").exists()

        SpyMonitor.instances.clear()
        with mock.patch.object(afctl.runner, "RecordingMonitor", SpyMonitor), pytest.raises(StackConfigError) as info:
            afctl.runner.run_program("s", case.config, set())
        assert_line_contract(info.value.config_error.lines())
        (monitor,) = SpyMonitor.instances
        assert [r.type for r in monitor.registrations] == ["pulumi:pulumi:Stack"]
        executed.append(case.stack)

    end_to_end()
    assert len(executed) >= 20
