"""`af:offload`: gateway declarations, and what they must agree with elsewhere in the config
(the pool, the identity's groups, the worker groups), each with the clean error contract."""

from __future__ import annotations

from typing import Any

import pytest
from support.gateways import galileo, leonardo
from test_config import DELETE, REQUIRED, base, edit, only_problem, problems_of

from components.batch.config import worker_groups
from components.config.loader import build_config
from components.offload.config import OFFLOAD_PREFERENCE

SECRET = {"offload"}


def offload_base(**gateways: dict[str, Any]) -> dict[str, Any]:
    """`base()` with the pool on, a batch group for /users and the given gateways."""
    cfg = edit(base(), "condor", {"enabled": True})
    cfg = edit(cfg, "identity.roles", {"batch": ["/users"], "gpu": ["/users/ml"]})
    chosen = gateways or {"leonardo": leonardo(groups=["/users/ml"])}
    return edit(cfg, "offload", {"gateways": chosen})


def test_a_gateway_becomes_a_remote_worker_group_after_the_local_ones() -> None:
    cfg = build_config(
        offload_base(leonardo=leonardo(groups=["/users/ml"]), galileo=galileo(groups=["/users"])), SECRET
    )
    groups = worker_groups(cfg.condor, cfg.cluster, cfg.site.flavors, cfg.offload)
    assert list(groups) == ["cpu", "gpu", "galileo", "leonardo"]
    leo = groups["leonardo"]
    assert not leo.local and leo.node_group is None and leo.gateway is cfg.offload.gateways["leonardo"]
    assert (leo.slot_cpus, leo.slot_memory_mib, leo.gpus, leo.max_workers) == (32, 119 * 1024, 4, 4)
    assert leo.preference == OFFLOAD_PREFERENCE and groups["cpu"].local
    assert 'stringListMember("/users/ml", TARGET.AuthTokenGroups, ",")' in leo.start
    assert "TARGET.WantOffload =?= True" in leo.start and "MaxWallTimeMins <= 1430" in leo.start
    assert "RequestGpus > 0" in leo.start and "RequestGpus" not in groups["galileo"].start


def test_a_group_start_override_narrows_the_gateways_own() -> None:
    cfg = offload_base()
    cfg = edit(cfg, "condor.groups", {"leonardo": {"start": 'AcctGroup == "cms.ml"', "maxWorkers": 2}})
    built = build_config(cfg, SECRET)
    leo = worker_groups(built.condor, built.cluster, built.site.flavors, built.offload)["leonardo"]
    assert leo.start.endswith('&& (AcctGroup == "cms.ml")') and "WantOffload" in leo.start
    assert leo.max_workers == 2


@pytest.mark.parametrize(
    ("path", "value", "reported", "allowed"),
    [
        # A group allowed but not declared in identity.
        ("offload.gateways.leonardo.groups", ["/cms"], "af:offload.gateways.leonardo.groups[0]", "declared in af"),
        # A gateway with no resources.
        ("offload.gateways.leonardo.resources", DELETE, "af:offload.gateways.leonardo.resources", REQUIRED),
        ("offload.gateways.leonardo.resources.cpus", 0, "af:offload.gateways.leonardo.resources.cpus", "above 0"),
        (
            "offload.gateways.leonardo.worker",
            {"cpus": 512, "memoryGib": 8},
            "af:offload.gateways.leonardo.worker",
            "within the virtual node's resources",
        ),
        ("offload.gateways.leonardo.resources.gpuModel", DELETE, "af:offload.gateways.leonardo.resources.gpuModel", ""),
        ("offload.gateways.leonardo.groups", [], "af:offload.gateways.leonardo.groups", "at least 1"),
        ("offload.gateways.leonardo.sourceCidrs", ["0.0.0.0/0"], "af:offload.gateways.leonardo.sourceCidrs[0]", ""),
        ("offload.gateways.leonardo.endpoint", "http://h.example.org/", "af:offload.gateways.leonardo.endpoint", ""),
        ("offload.gateways.leonardo.slurm.flags", ["-p x"], "af:offload.gateways.leonardo.slurm.flags[0]", ""),
        ("offload.gateways.leonardo.auth.kind", "kerberos", "af:offload.gateways.leonardo.auth.kind", "'token'"),
        ("offload.gateways.leonardo.auth.clientSecret", DELETE, "af:offload.gateways.leonardo.auth.clientSecret", ""),
        ("offload.gateways.leonardo.auth.colour", "x", "af:offload.gateways.leonardo.auth.colour", "clientId"),
        ("offload.gateways.leonardo.limits.wallTimeMinutes", 5, "af:offload.gateways.leonardo.limits", ""),
        # Settings of the gateway's worker group.
        ("condor.groups.leonardo.cpus", 4, "af:condor.groups.leonardo.cpus", "worker"),
        ("condor.groups.leonardo.maxWorkers", 9, "af:condor.groups.leonardo.maxWorkers", "at most 4"),
        ("condor.groups.nowhere", {"minWorkers": 1}, "af:condor.groups.nowhere", "(cpu, gpu, leonardo)"),
        # A name both a node group and a gateway would give two groups one name.
        ("offload.gateways.cpu", leonardo(groups=["/users"]), "af:offload.gateways.cpu", "no node group has"),
        ("condor.enabled", False, "af:offload.gateways", "af:condor.enabled"),
    ],
)
def test_bad_offload_config(path: str, value: Any, reported: str, allowed: str) -> None:
    found = problems_of(edit(offload_base(), path, value), SECRET)
    lines = [p.line() for p in found]
    assert any(p.path.startswith(reported) and allowed in p.allowed for p in found), lines
    assert all(p.path.startswith(reported) for p in found), lines
    assert "leonardo-client-secret-value" not in "\n".join(lines), "a secret echoed"


def test_a_trigger_may_name_a_gateway_but_not_an_unknown_group() -> None:
    cfg = edit(offload_base(), "autoscaler", {"enabled": True, "image": "registry.example.org/af:1.0"})
    ok = edit(cfg, "autoscaler.triggers", [{"constraint": "RequestGpus > 0", "group": "leonardo"}])
    assert build_config(ok, SECRET).autoscaler.triggers[0].group == "leonardo"
    bad = edit(cfg, "autoscaler.triggers", [{"constraint": "RequestGpus > 0", "group": "cineca"}])
    only_problem(bad, "af:autoscaler.triggers[0].group", "cpu, gpu, leonardo", SECRET)


def test_the_gateway_secret_must_be_a_pulumi_secret() -> None:
    only_problem(offload_base(), "af:offload.gateways.leonardo.auth.clientSecret", "--secret")
