"""The autoscaler simulator itself (benchmarks/sim_autoscaler.py): its negotiator, the reference HPA's kills, our
policy's scale-in, and the figures on traces small enough to check by hand. Nothing here is about time."""

from __future__ import annotations

import itertools
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import stack_values
from support.benchruns import ratios, run_quick

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import sim_autoscaler as sim  # noqa: E402

from autoscaler.model import Decision, Memory, Plan, Settings  # noqa: E402
from components.batch.htcondor import PACKING_RANK  # noqa: E402

CPU, GPU = sim.facility_groups()
JOB_IDS = itertools.count()
ONE_CORE, GPU_JOB, BIG_MEMORY = sim.Shape(1, 2000), sim.Shape(4, 16_000, 1, "cms.ml"), sim.Shape(1, 50_000)


def pool_with(shapes: list[sim.Shape], groups=(CPU, GPU), **running: int) -> sim.Pool:
    pool = sim.Pool(groups, shapes, startup=90.0)
    for name, count in running.items():
        pool.grow(name, count, ready=True)
    return pool


def submit(pool: sim.Pool, shape: int, count: int, duration: float = 3600.0) -> list[sim.Job]:
    jobs = [sim.Job(next(JOB_IDS), shape, pool.now, duration) for _ in range(count)]
    for job in jobs:
        pool.enqueue(job)
    return jobs


class Static:
    """No autoscaling at all: the pool stays at its floor."""

    label, period = "static", 30.0

    def floor(self, g) -> int:
        return g.min_workers

    def act(self, pool: sim.Pool) -> None:
        pass


def test_negotiator_respects_resources_and_gpu_rules():
    pool = pool_with([ONE_CORE, GPU_JOB, BIG_MEMORY], cpu=1, gpu=1)
    # Fresh slots: CPU jobs match the CPU group only (a GPU worker keeps its whole share for a free GPU).
    assert pool.eligible == (frozenset({"cpu"}), frozenset({"gpu"}), frozenset({"cpu"}))
    gpu_jobs = submit(pool, 1, 2)
    big = submit(pool, 2, 2)
    small = submit(pool, 0, 20)
    pool.grow("cpu", 1)  # Pending: no startd yet, nothing may land on it
    pool.negotiate()
    cpu_pod, gpu_pod, pending = pool.group_pods("cpu")[0], pool.group_pods("gpu")[0], pool.group_pods("cpu")[1]
    # One match per slot and cycle. The GPU slot's match takes jobsInSlot = min(16/4 cores, 60/16 GB) = 3 requests
    # of its autocluster, but one GPU fits one job: the second GPU job is skipped until the next cycle.
    assert list(gpu_pod.jobs) == [gpu_jobs[0].id] and gpu_pod.free_gpus == 0
    # The first 50 GB job takes the CPU slot (jobsInSlot 1); the slots have left the cycle, so the rest wait.
    assert list(cpu_pod.jobs) == [big[0].id] and not pending.jobs
    assert pool.idle_count == [20, 1, 1]
    pool.negotiate()
    # Next cycle: the second 50 GB job fits nowhere (10 GB left, 44 GB on the GPU worker); 5 one-core 2 GB jobs
    # take the CPU slot's 10 GB, not its 15 cores. Then, the CPU slot matched, the GPU worker's START lets CPU jobs
    # into the 12 cores its GPU job leaves (no GPU is free, so none is kept): jobsInSlot = 12.
    assert sorted(j.id for j in cpu_pod.jobs.values()) == sorted([big[0].id] + [j.id for j in small[:5]])
    assert (cpu_pod.free_cpus, cpu_pod.free_memory) == (10, 0)
    assert sorted(gpu_pod.jobs) == sorted([gpu_jobs[0].id] + [j.id for j in small[5:17]])
    assert (gpu_pod.free_cpus, gpu_pod.free_gpus) == (0, 0) and not pending.jobs
    assert pool.idle_count == [3, 1, 1]
    assert pool.cores_in["cpu"]["busy"] == 6 and pool.cores_in["gpu"]["busy"] == 16


def test_a_gpu_worker_with_a_free_gpu_keeps_its_share_for_gpu_jobs():
    pool = pool_with([ONE_CORE, GPU_JOB], groups=(GPU,), gpu=1)
    small = submit(pool, 0, 5)
    pool.negotiate()
    assert not any(j.pod for j in small) and pool.idle_count == [5, 0]
    (gpu_job,) = submit(pool, 1, 1)
    pool.negotiate()  # the GPU job takes its share; the rest of the worker is lent to the waiting CPU jobs
    pool.negotiate()
    assert gpu_job.pod is not None and all(j.pod is gpu_job.pod for j in small)


def _rendered_central_manager(tmp_path: Path) -> dict[str, str]:
    from components.batch.pods import rendered_files
    from components.config.loader import build_config
    from components.facility import cache_client

    cfg = build_config(*stack_values("cms-bari"))
    files = rendered_files(cfg, cache_client(cfg))
    return sim.condor_params(files["pool.conf"] + files["central-manager.conf"], sim.PACKING_PARAMS)


def test_the_simulated_negotiator_is_the_one_the_central_manager_config_makes(tmp_path):
    """The simulator reads the packing policy as HTCondor does (htcondor2 on the rendered lines), and what it reads
    is what the whole central-manager config of a shipped stack gives HTCondor."""
    negotiator = sim.rendered_negotiator()
    assert negotiator.params == _rendered_central_manager(tmp_path)
    assert negotiator.depth_first and negotiator.pre is not None
    assert "NumDynamicSlots" in negotiator.describe()


def _three_workers() -> tuple[sim.Pool, dict[str, sim.Pod]]:
    """An old worker running 3 jobs, a newer one running 1, and an idle one; 1-core jobs queued."""
    pool = pool_with([ONE_CORE], groups=(CPU,), cpu=1)
    pool.now = 100.0
    pool.grow("cpu", 2, ready=True)
    old, *others = sorted(pool.group_pods("cpu"), key=lambda p: p.ready_at)
    pods = {"old": old, "new": others[0], "idle": others[1]}
    for pod, count in ((old, 3), (others[0], 1)):
        for job in submit(pool, 0, count, duration=10 * sim.HOUR):
            pool._start(job, pod)
    return pool, pods


def test_jobs_go_where_the_rendered_rank_sends_them_depth_first():
    pool, pods = _three_workers()
    jobs = submit(pool, 0, 20)
    pool.negotiate()
    # The worker running the most jobs fills first, depth first: 13 more fit (16 cores); then the next-busiest.
    assert sum(1 for j in jobs if j.pod is pods["old"]) == 13
    assert sum(1 for j in jobs if j.pod is pods["new"]) == 7 and not pods["idle"].jobs


def test_the_simulator_follows_whatever_policy_the_config_gives():
    """Not a hard-coded order: a rank preferring the emptiest slot, and no depth first, place jobs differently."""
    params = {**sim.rendered_negotiator().params, "NEGOTIATOR_PRE_JOB_RANK": "Cpus", "NEGOTIATOR_DEPTH_FIRST": "False"}
    spread = sim.Negotiator(params)
    assert not spread.depth_first
    pool, pods = _three_workers()
    pool.policy = spread
    jobs = submit(pool, 0, 5)
    pool.negotiate()
    # One request per match, one match per slot and cycle: the three slots take one job each, emptiest first.
    assert [j.pod.name if j.pod else None for j in jobs[:3]] == [pods[k].name for k in ("idle", "new", "old")]
    assert all(j.pod is None for j in jobs[3:])


def test_negotiator_fills_slots_in_queue_order_and_keeps_a_killed_jobs_place():
    pool = pool_with([ONE_CORE], groups=(CPU,), cpu=1)
    first = submit(pool, 0, 16)
    pool.now = 10.0
    later = submit(pool, 0, 4)
    pool.negotiate()
    assert all(j.start == 10.0 for j in first) and all(j.start is None for j in later)
    pool.now = 20.0
    pool.shrink("cpu", pool.group_pods("cpu"))
    assert pool.kills == 16 and all(j.start is None and j.attempt == 1 for j in first)
    pool.grow("cpu", 1, ready=True)
    pool.negotiate()
    # The killed jobs were submitted first: they go first, ahead of the 4 later ones.
    assert all(j.start == 20.0 for j in first) and all(j.start is None for j in later)


def test_the_reference_kills_the_jobs_of_busy_pods_it_removes():
    # Four pods with one 2-core 50 GB job each: every pod is claimed, the busy fraction is 1/8.
    pool = pool_with([sim.Shape(2, 50_000)], groups=(CPU,), cpu=4)
    jobs = submit(pool, 0, 4, duration=10 * sim.HOUR)
    pool.negotiate()
    assert all(len(p.jobs) == 1 for p in pool.pods.values())
    hpa = sim.Hpa([CPU])
    hpa.history["cpu"] = [(0.0, 4)]  # a recommendation of 4 at t=0: the window holds it for 300 s
    for t in range(15, 300, 15):
        pool.advance(float(t))
        hpa.act(pool)
        assert len(pool.pods) == 4, f"removed within the stabilisation window at t={t}"
    pool.advance(300.0)
    hpa.act(pool)  # the t=0 recommendation has left the window: ceil(4 x 0.125 / 0.75) = 1
    assert len(pool.pods) == 1
    assert pool.kills == 3 and pool.idle_count == [3]
    assert sum(j.attempt for j in jobs) == 3 and pool.lost_core_s == 3 * 2 * 300.0


@pytest.mark.parametrize(
    ("busy", "pending", "current", "expected"),
    [
        (40, 2, 5, 4),  # 40/48 = 0.83: 1.11 x the target, outside the tolerance: ceil(3 running x 1.11)
        (36, 0, 3, 3),  # exactly the target: keep
        (34, 0, 3, 3),  # 0.71 = 0.94 x the target, within 10%: keep the current count
        (20, 1, 4, 2),  # 0.42 = 0.56 x the target: ceil(3 x 0.56)
    ],
)
def test_the_reference_recommends_like_kubernetes(busy, pending, current, expected):
    pool = pool_with([ONE_CORE], groups=(CPU,), cpu=3)
    submit(pool, 0, busy)
    pool.grow("cpu", pending)  # Pending pods have no metric: ignored
    pool.negotiate()
    assert sim.Hpa.recommend(pool.group_pods("cpu"), current) == expected


def test_the_replicaset_removes_pending_pods_then_the_most_recently_ready():
    pool = pool_with([ONE_CORE], groups=(CPU,), cpu=1)
    old = pool.group_pods("cpu")[0]
    pool.now = 4000.0
    pool.grow("cpu", 1, ready=True)
    recent = next(p for p in pool.group_pods("cpu") if p is not old)
    pool.grow("cpu", 1)
    pending = next(p for p in pool.group_pods("cpu") if not p.running)
    pool.now = 4010.0
    assert sim.Hpa([CPU]).victims(pool.group_pods("cpu"), 2, pool.now) == [pending, recent]


def test_ours_never_removes_a_worker_running_a_job():
    trace = sim.waves(count=3, jobs=40, gap=20 * sim.MINUTE)
    ours = sim.Ours([CPU, GPU], interval=30.0, settings=Settings(scale_down_delay=60.0))
    outcome = sim.simulate(trace, ours, [CPU, GPU])
    assert outcome.settled and outcome.peak["cpu"] > 5
    assert outcome.changes["cpu"] >= 2, "the planner scaled in between the waves"
    assert outcome.kills == 0 and not ours.anomalies


def test_a_planner_naming_a_busy_worker_shows_up_as_a_kill(monkeypatch):
    pool = pool_with([ONE_CORE], groups=(CPU,), cpu=2)
    submit(pool, 0, 1)
    pool.negotiate()
    busy = next(p for p in pool.pods.values() if p.jobs)

    def wrong(groups, workers, demand, now, memory, settings) -> Plan:
        decision = Decision("cpu", 2, 1, (busy.name,), "a bug")
        return Plan({"cpu": decision}, {}, (), (), Memory())

    monkeypatch.setattr(sim, "plan", wrong)
    sim.Ours([CPU]).act(pool)
    assert pool.kills == 1 and busy.name not in pool.pods


def test_figures_on_a_trace_checked_by_hand():
    alone = sim.group("cpu", 16, 60_000, 0, "true", min_workers=1, max_workers=1)
    trace = sim.Trace(
        "tiny",
        "three jobs",
        (sim.Shape(16, 2000), ONE_CORE),
        (sim.Arrival(5, 0, 100), sim.Arrival(10, 1, 50), sim.Arrival(130, 1, 10)),
    )
    out = sim.simulate(trace, Static(), [alone])
    # Negotiation every 20 s: the 16-core job starts at 20 and ends at 120; the 1-core job waits for it (120);
    # the last one starts at the next cycle (140).
    assert sorted(out.waits) == [10, 15, 110]
    assert sim.statistics.median(out.waits) == 15
    assert sim.percentile(out.waits, 95) == pytest.approx(15 + 0.9 * 95)
    # Idle cores: 16 x 20 s, 0 while the big job runs, then 15 x 20, 14 x 10, 15 x 20, and 16 x 10 until the policy
    # tick at 180 s that sees everything done.
    assert out.settled and out.end == 180.0
    assert out.idle_core_hours(180.0) == pytest.approx((320 + 300 + 140 + 300 + 160) / 3600)
    assert out.idle_split(180.0)["cpu", "partly claimed"] == pytest.approx((300 + 140 + 300) / 3600)
    # After its end a policy sits at its floor: 16 idle cores per second up to a later horizon.
    assert out.idle_core_hours(360.0) == pytest.approx((1220 + 16 * 180) / 3600)
    assert out.kills == 0 and sum(out.changes.values()) == 0


def test_the_ceiling_bounds_every_policys_waits():
    """The bound the wait goal is read against: a pool held at max from the start waits least, job by job in order."""
    trace = sim.burst(jobs=300)
    groups = sim.facility_groups()
    bound = sim.simulate(trace, sim.Ceiling(), groups)
    assert bound.peak == {g.name: g.max_workers for g in groups}
    assert bound.kills == 0 and sum(bound.changes.values()) == 0
    for policy in (sim.Ours(groups), sim.Hpa(groups)):
        out = sim.simulate(trace, policy, groups)
        # Every quantile, not just the median.
        assert all(b <= o for b, o in zip(sorted(bound.waits), sorted(out.waits), strict=True))
        assert sim.statistics.median(bound.waits) < sim.statistics.median(out.waits)


def test_direction_changes_count_turns_not_steps():
    pool = pool_with([ONE_CORE], groups=(CPU,), cpu=1)
    pool.grow("cpu", 3)
    pool.grow("cpu", 1)
    pool.shrink("cpu", pool.group_pods("cpu")[-1:])
    pool.shrink("cpu", pool.group_pods("cpu")[-1:])
    pool.grow("cpu", 2)
    assert pool.changes == {"cpu": 2}


def test_quick_mode_prints_positive_ratios_for_the_smoke_test():
    output = run_quick("sim_autoscaler.py", timeout=120)
    found = ratios(output)
    assert found and all(r > 0 for r in found), output
    assert output.count("killed ours/ref: 0/") == 3 and output.count("  goals [") == 3
    assert "packing policy modelled" in output and PACKING_RANK in output.split("\n")[1]


def test_bad_planners_show_kills_and_idle_cores(monkeypatch):
    """The figures catch a planner that scales in the wrong workers (kills) or not at all (idle cores), on a trace
    where ours does neither."""
    trace = sim.waves(count=3, jobs=40, gap=20 * sim.MINUTE)
    groups = sim.facility_groups()
    good = sim.simulate(trace, sim.Ours(groups), groups)
    real = sim.plan

    def busiest_first(groups, workers, demand, now, memory, settings) -> Plan:
        result = real(groups, workers, demand, now, memory, settings)
        ranked = [w.name for w in sorted(workers, key=lambda w: -w.jobs)]
        return replace(
            result,
            decisions={
                name: replace(d, remove=tuple(n for n in ranked if n.startswith(f"af-condor-{name}-"))[: len(d.remove)])
                for name, d in result.decisions.items()
            },
        )

    def never_in(groups, workers, demand, now, memory, settings) -> Plan:
        result = real(groups, workers, demand, now, memory, settings)
        kept = {name: replace(d, desired=max(d.desired, d.current), remove=()) for name, d in result.decisions.items()}
        return replace(result, decisions=kept)

    monkeypatch.setattr(sim, "plan", busiest_first)
    killing = sim.simulate(trace, sim.Ours(groups), groups)
    monkeypatch.setattr(sim, "plan", never_in)
    idling = sim.simulate(trace, sim.Ours(groups), groups, limit=sim.HOUR)
    assert good.kills == 0 and killing.kills > 0 and idling.kills == 0
    horizon = max(good.end, idling.end)
    assert idling.idle_core_hours(horizon) > 2 * good.idle_core_hours(horizon)


def test_clairvoyant_placement_puts_a_job_where_it_extends_no_worker():
    """The bound's negotiator: a 500 s job goes to the worker busy for 1000 s more, not to the one done in 100 s
    (which the rendered rank prefers, as it runs more jobs), nor to the idle one."""
    pool = pool_with([ONE_CORE], groups=(CPU,), cpu=3)
    short, long_, idle = sorted(pool.group_pods("cpu"), key=lambda p: p.name)
    for pod, count, duration in ((short, 3, 100.0), (long_, 1, 1000.0)):
        for job in submit(pool, 0, count, duration=duration):
            pool._start(job, pod)
    pool.policy = sim.Clairvoyant(sim.rendered_negotiator().params)
    (job,) = submit(pool, 0, 1, duration=500.0)
    pool.negotiate()
    assert job.pod is long_ and not idle.jobs


def test_turn_pairs_and_holding_through_one():
    """The figure behind an unmet direction goal: each scale-in that a scale-up follows, and ours kept from it."""
    pool = pool_with([ONE_CORE], groups=(CPU,), cpu=1)
    for t, step in ((10.0, +2), (20.0, +1), (100.0, -1), (110.0, -2), (200.0, +1), (210.0, +1), (300.0, -1)):
        pool.now = t
        if step > 0:
            pool.grow("cpu", step)
        else:
            pool.shrink("cpu", pool.group_pods("cpu")[step:])
    outcome = sim.Outcome(
        "x", [], 0, {}, 0.0, 0.0, 0, dict(pool.changes), 0.0, {}, 0.0, True, {}, 0.0, 0.0, steps=pool.steps
    )
    assert pool.changes == {"cpu": 3}
    assert sim.turn_pairs(outcome) == [sim.Hold("cpu", 100.0, 210.0)]
    # Kept through the gap of each of its turn pairs, ours never scales in there, and kills nothing.
    trace = sim.waves(count=3, jobs=40, gap=20 * sim.MINUTE)
    settings = Settings(scale_down_delay=60.0)
    ours = sim.simulate(trace, sim.Ours([CPU, GPU], 30.0, settings), [CPU, GPU])
    (first, *_) = sim.turn_pairs(ours)
    held = sim.simulate(trace, sim.Holding([CPU, GPU], 30.0, settings, first), [CPU, GPU])
    assert not [t for t, g, s in held.steps if g == "cpu" and s < 0 and first.start <= t <= first.end]
    assert held.kills == 0 and sum(held.changes.values()) < sum(ours.changes.values())
