"""Safety of the autoscaler for every legal config: a claimed worker is never named for removal,
and a scale-in names exactly the workers it removes, whatever `af:autoscaler` and
`af:condor.groups` hold (scale-down delay from 0, interval, min/max, START, preference, slot
sizes, triggers) and whatever the pool looks like, over several planning cycles.

Configs are drawn as stack values and go through the real config model and cross checks
(`build_config`) and the component's rendering (`controller_settings`), then through the
settings document the controller reads (JSON), exactly as in the cluster."""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Any

import classad2
from conftest import stack_values
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from autoscaler.model import Autocluster, Memory, Plan, Resources, Worker
from autoscaler.planner import plan
from autoscaler.settings import ControllerSettings
from components.batch.autoscaler import controller_settings
from components.config.errors import ConfigError
from components.config.loader import build_config

BASE, SECRET = stack_values("cms-bari")
NODES = {"cpu": 10, "gpu-a100": 2}
"""cms-bari's batch node groups and their node counts (maxWorkers may not exceed them)."""
STARTS = ("True", "TARGET.RequestGpus > 0", 'TARGET.AcctGroup =?= "cms.ml"', "TARGET.RequestCpus <= 8")
CONSTRAINTS = ('RequestGpus > 0 && AcctGroup == "cms.ml"', "RequestCpus >= 4", "true", "false")
REQUIREMENTS = (
    '(TARGET.Arch == "X86_64") && (TARGET.OpSys == "LINUX") && (TARGET.Disk >= RequestDisk) && '
    "(TARGET.Memory >= RequestMemory) && (TARGET.Cpus >= RequestCpus) && (TARGET.GPUs >= RequestGPUs)"
)
SAFETY = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


@st.composite
def stack_configs(draw: st.DrawFn) -> ControllerSettings:
    """Legal `af:autoscaler` and `af:condor.groups` values on cms-bari, as the controller reads them."""
    values: dict[str, Any] = copy.deepcopy(BASE)
    groups = {}
    for name, nodes in NODES.items():
        top = draw(st.integers(0, nodes))
        group: dict[str, Any] = {"minWorkers": draw(st.integers(0, top)), "maxWorkers": top}
        if draw(st.booleans()):
            group["start"] = draw(st.sampled_from(STARTS))
        if draw(st.booleans()):
            group["preference"] = draw(st.integers(0, 200))
        if draw(st.booleans()):
            group["cpus"] = draw(st.integers(1, 15))
            group["memoryGib"] = draw(st.integers(2, 27))
        groups[name] = group
    values.setdefault("condor", {})["groups"] = groups
    delay = draw(st.one_of(st.just(0), st.integers(0, 900), st.integers(0, 10**7)))
    triggers = draw(
        st.lists(
            st.fixed_dictionaries({"constraint": st.sampled_from(CONSTRAINTS), "group": st.sampled_from(list(NODES))}),
            max_size=3,
        )
    )
    values["autoscaler"] = {
        "enabled": True,
        "image": "registry.example.org/af/af-autoscaler:1.0.0",
        "intervalSeconds": draw(st.integers(1, 3600)),
        "scaleDownDelaySeconds": delay,
        "triggers": triggers,
    }
    try:
        cfg = build_config(values, SECRET)
    except ConfigError:
        assume(False)
    return ControllerSettings.from_json(controller_settings(cfg).to_json())


@dataclass
class Pool:
    """The pool between cycles: workers and idle demand, evolving as jobs start and end."""

    workers: list[Worker]
    demand: list[Autocluster]
    serial: int = 0


def job_ad(cpus: int, memory: int, gpus: int, acct: str) -> classad2.ClassAd:
    ad = classad2.ClassAd(
        {"MyType": "Job", "RequestCpus": cpus, "RequestMemory": memory, "RequestGPUs": gpus, "RequestDisk": 1000}
    )
    ad["AcctGroup"] = acct
    ad["Requirements"] = classad2.ExprTree(REQUIREMENTS)
    return ad


@st.composite
def demand(draw: st.DrawFn) -> list[Autocluster]:
    found = []
    for i in range(draw(st.integers(0, 4))):
        cpus, memory, gpus = draw(st.integers(1, 16)), draw(st.integers(500, 64_000)), draw(st.integers(0, 1))
        acct = draw(st.sampled_from(["cms.analysis", "cms.ml"]))
        request = Resources(cpus, memory, gpus)
        found.append(Autocluster(i + 1, draw(st.integers(1, 400)), request, job_ad(cpus, memory, gpus, acct)))
    return found


def worker(draw: st.DrawFn, name: str, group: str, size: Resources, now: float, pending: bool) -> Worker:
    """A worker in any state the controller can observe: pending, or running with 0-4 jobs."""
    started = now - draw(st.floats(0, 200_000))
    if pending:
        return Worker(name, group, "pending", started)
    jobs = draw(st.integers(0, 4))
    if not jobs:
        return Worker(name, group, "running", started, False, size, 0)
    used = Resources(
        draw(st.floats(1, max(size.cpus, 1))), draw(st.floats(0, size.memory_mb)), draw(st.floats(0, size.gpus))
    )
    return Worker(name, group, "running", started, True, size - used, jobs)


def check(result: Plan, workers: list[Worker]) -> None:
    """What must hold after every cycle, for every group."""
    for name, decision in result.decisions.items():
        mine = {w.name: w for w in workers if w.group == name}
        claimed = {n for n, w in mine.items() if w.claimed}
        assert len(set(decision.remove)) == len(decision.remove), decision
        assert set(decision.remove) <= set(mine), decision
        assert not claimed & set(decision.remove), f"claimed workers named for removal: {decision}"
        assert decision.desired >= len(claimed), decision
        if decision.desired < decision.current:
            # Kubernetes removes exactly the named ones (they get the lowest deletion cost).
            assert len(decision.remove) == decision.current - decision.desired, decision
        if decision.remove:
            assert decision.desired == decision.current - len(decision.remove), decision


@SAFETY
@given(config=stack_configs(), data=st.data())
def test_a_claimed_worker_is_never_removed_for_any_legal_config(config: ControllerSettings, data: st.DataObject):
    groups, triggers, planner = config.planner_groups(), config.planner_triggers(), config.planner_settings()
    assert planner.scale_down_delay == config.scale_down_delay_seconds
    now = 1_800_000_000.0
    pool = Pool([], data.draw(demand()))
    for g in groups:
        for i in range(data.draw(st.integers(0, g.max_workers + 3))):
            pool.workers.append(worker(data.draw, f"{g.name}-{i}", g.name, g.worker, now, data.draw(st.booleans())))
    # Memory as earlier cycles could have left it: surplus timers, last claims, load history.
    names = [w.name for w in pool.workers]
    memory = Memory(
        surplus_since={g.name: now - data.draw(st.floats(0, 20_000)) for g in groups if data.draw(st.booleans())},
        last_claimed={n: now - data.draw(st.floats(0, 20_000)) for n in names if data.draw(st.booleans())},
        load={
            g.name: tuple(
                (now - age, data.draw(st.floats(0, 50)))
                for age in sorted(data.draw(st.lists(st.floats(1, 20_000), max_size=6)), reverse=True)
            )
            for g in groups
        },
    )
    for _ in range(data.draw(st.integers(1, 6))):
        result = plan(groups, pool.workers, pool.demand, now, memory, planner, triggers)
        check(result, pool.workers)
        memory = result.memory
        # Apply the plan as the controller does, then let the pool move on one interval.
        gone = {n for d in result.decisions.values() for n in d.remove}
        pool.workers = [w for w in pool.workers if w.name not in gone]
        for d in result.decisions.values():
            for _ in range(max(0, d.desired - d.current)):
                pool.serial += 1
                pool.workers.append(Worker(f"{d.group}-new-{pool.serial}", d.group, "pending", now))
        now += config.interval_seconds
        moved = []
        for w in pool.workers:
            size = next(g.worker for g in groups if g.name == w.group)
            change = data.draw(st.sampled_from(["same", "same", "start", "finish", "fill"]))
            if (change, w.phase) in (("start", "pending"), ("finish", "running")):  # a fresh or emptied slot
                w = Worker(w.name, w.group, "running", w.started, False, size, 0)
            elif change == "fill" and w.phase == "running":
                w = replace(worker(data.draw, w.name, w.group, size, now, False), started=w.started)  # jobs started
            moved.append(w)
        pool.workers = moved
        pool.demand = data.draw(demand())
