"""Offload gateways in the planner, with the groups the program derives from a stack's config (the
controller's settings) and real job ads (`condor_q -long` autoclusters): overflow only when local
groups are full, only for jobs that opted in from an allowed group, GPU jobs only to GPU gateways."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import classad2
import pytest
from conftest import stack_values
from support.gateways import galileo, leonardo
from test_condor_config import condor_params

from autoscaler.condor import autoclusters, parse_ads
from autoscaler.model import Resources, Settings, Worker
from autoscaler.planner import candidates, plan
from components.batch.autoscaler import controller_settings
from components.batch.config import worker_groups
from components.batch.htcondor import render_execute
from components.batch.pods import RUNTIME
from components.config.loader import build_config

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "condor"
NOW = 1_800_000_000.0
OPTED_IN_CPU, OPTED_IN_GPU, NOT_OPTED_IN, OTHER_VO, NEEDS_CLUSTER, TOO_LONG = 20, 21, 22, 23, 24, 25
SETTINGS = Settings(scale_down_delay=600.0)
"""No budget: these tests are about the groups' limits and START (the scale-down delay plays no part)."""


@pytest.fixture(scope="module")
def cfg():
    values, secret = stack_values("cms-bari")
    values["offload"] = {"gateways": {"leonardo": leonardo(), "galileo": galileo()}}
    values["identity"]["clientSecret"] = "hub-client-secret"
    values["cache"] = {"upstream": {"clientSecret": "cache-client-secret"}}
    return build_config(values, secret | {"offload", "identity", "cache"})


@pytest.fixture(scope="module")
def groups(cfg):
    return controller_settings(cfg).planner_groups()


def demand():
    return {ac.id: ac for ac in autoclusters(parse_ads((FIXTURES / "queue_gateways.txt").read_text()))}


def full(groups) -> list[Worker]:
    """Every local group at its maximum, every worker busy to the last core."""
    return [
        Worker(f"{g.name}-{i}", g.name, "running", NOW - 3600, claimed=True, free=Resources())
        for g in groups
        if g.local
        for i in range(g.max_workers)
    ]


def names(groups) -> list[str]:
    return [g.name for g in groups]


def test_the_settings_carry_gateways_as_remote_groups_after_the_local_ones(groups):
    by_name = {g.name: g for g in groups}
    assert {"cpu", "gpu-a100", "leonardo", "galileo"} <= set(by_name)
    assert not by_name["leonardo"].local and not by_name["galileo"].local and by_name["cpu"].local
    assert by_name["leonardo"].worker == Resources(32, 120 * 1024 - 1024, 4)
    assert (by_name["leonardo"].max_workers, by_name["galileo"].max_workers) == (4, 32)  # jobs, then cores
    assert min(g.preference for g in groups if not g.local) > max(g.preference for g in groups if g.local)


def test_candidates_follow_opt_in_groups_wall_time_and_gpus(groups):
    ads = demand()
    assert names(candidates(ads[OPTED_IN_CPU], groups, ())) == ["cpu", "galileo"]
    assert names(candidates(ads[OPTED_IN_GPU], groups, ())) == ["gpu-a100", "leonardo"]
    assert names(candidates(ads[NOT_OPTED_IN], groups, ())) == ["cpu"]
    assert names(candidates(ads[OTHER_VO], groups, ())) == ["cpu"], "/atlas may not use the gateways"
    assert names(candidates(ads[NEEDS_CLUSTER], groups, ())) == ["cpu"], "it requires TARGET.AfInCluster"
    assert names(candidates(ads[TOO_LONG], groups, ())) == ["cpu"], "2000 min exceed both gateways' wall time"


def test_nothing_overflows_while_local_groups_have_room(groups):
    ads = demand()
    small = [replace(ads[OPTED_IN_CPU], idle=20), replace(ads[OPTED_IN_GPU], idle=2)]
    result = plan(groups, [], small, NOW, None, SETTINGS)
    # 20 jobs of 4 cores / 8 GB: 3 per 15-core 28 GB cpu worker -> 7; 2 one-GPU jobs -> 2 GPU nodes.
    assert result.decisions["cpu"].desired == 7 and result.decisions["gpu-a100"].desired == 2
    assert result.assigned["galileo"] == result.assigned["leonardo"] == 0
    assert result.decisions["galileo"].desired == result.decisions["leonardo"].desired == 0


def test_full_local_groups_overflow_to_the_gateways_only_for_jobs_that_may_go(groups):
    ads = demand()
    result = plan(groups, full(groups), list(ads.values()), NOW, None, SETTINGS)
    assert result.decisions["cpu"].desired == result.decisions["cpu"].current
    # 400 opted-in CPU jobs of 4 cores: 4 per 16-core galileo worker, capped by its 32 workers.
    assert result.decisions["galileo"].desired == 32 and result.assigned["galileo"] == 128
    # 12 one-GPU jobs of 8 cores / 32 GB: 3 per leonardo worker (119 GiB of memory binds before its
    # 4 GPUs) -> 4 workers, the gateway's maximum; none goes to galileo (no GPUs).
    assert result.decisions["leonardo"].desired == 4 and result.assigned["leonardo"] == 12
    unserved = dict(result.unserved)
    assert unserved[OPTED_IN_CPU] == 400 - 128
    for stays in (NOT_OPTED_IN, OTHER_VO, NEEDS_CLUSTER, TOO_LONG):
        assert unserved[stays] == ads[stays].idle, f"autocluster {stays} must wait for local capacity"


def test_the_site_budget_never_limits_the_gateways(cfg, groups):
    settings = controller_settings(cfg)
    local = sum(
        (Resources(g.cpus, g.memory_mb, g.gpus).times(g.max_workers) for g in settings.groups if g.local), Resources()
    )
    assert settings.budget == local
    result = plan(groups, full(groups), list(demand().values()), NOW, None, settings.planner_settings())
    assert result.decisions["galileo"].desired == 32


def test_a_gateways_worker_config_is_what_htcondor_reads_and_starts_only_admitted_jobs(cfg, tmp_path):
    group = worker_groups(cfg.condor, cfg.cluster, cfg.site.flavors, cfg.offload)["leonardo"]
    text = render_execute(cfg, RUNTIME, group, {"XRD_PLUGINCONFDIR": "/etc/xrootd/client.plugins.d"})
    params = condor_params(tmp_path, text, env={"POD_NAME": "af-condor-worker-leonardo-x"})
    assert params["AfInCluster"] == "False" and params["AfOffloadGateway"] == '"leonardo"'
    assert "AfOffloadGateway" in params["STARTD_ATTRS"] and int(params["NUM_CPUS"]) == 32
    assert "STARTER_JOB_ENVIRONMENT" not in params, "the cache's address means nothing at the centre"
    # START as the startd evaluates it (MY the slot, TARGET the job), on the fixture's jobs.
    slot = classad2.ClassAd({"Cpus": 32, "Memory": int(params["MEMORY"]), "GPUs": 4, "AfInCluster": False})
    start = classad2.ExprTree(params["START"])
    admitted = {i for i, ac in demand().items() if start.eval(slot, ac.ad) is True}
    assert admitted == {OPTED_IN_GPU}, "a GPU gateway: opted-in GPU jobs of an allowed group within its wall time"
