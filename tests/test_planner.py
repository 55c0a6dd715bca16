"""The autoscaler's planner with real ClassAds: job ads as `condor_q -long` prints them,
slots as `condor_status -long` does, matched with classad2 against each group's slot."""

from __future__ import annotations

import random
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import classad2
import pytest

from autoscaler.condor import autoclusters, machine_ad, parse_ads, slot_worker
from autoscaler.model import Autocluster, Group, Memory, Resources, Settings, Trigger, Worker
from autoscaler.planner import GROWTH_WINDOW, PATIENCE, candidates, packing_order
from autoscaler.planner import plan as plan_with
from components.batch.config import Autoscaler, gpu_start
from components.batch.htcondor import PACKING_RANK
from components.names import PREFERENCE_ATTRIBUTE

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "condor"
NOW = 1_800_000_000.0
DELAY = float(Autoscaler().scale_down_delay_seconds)
"""The scale-down delay a stack gets by default (the config model's, its one place)."""
DEFAULTS = Settings(scale_down_delay=DELAY)


def plan(groups, workers, demand, now, memory=None, settings=DEFAULTS, triggers=()):
    return plan_with(groups, workers, demand, now, memory, settings, triggers)


def flat(load: float, since: float = NOW - 2 * DELAY, group: str = "cpu") -> Memory:
    """Memory of a group whose load has been `load` (in workers) since `since`, sampled every 30 s."""
    samples = tuple((t, load) for t in range(int(since), int(NOW), 30))
    return Memory(surplus_since={group: since}, load={group: samples})


def group(name: str, cpus: int, mem: int, gpus: int = 0, start: str = "true", **kw) -> Group:
    worker = Resources(cpus, mem, gpus)
    return Group(name=name, worker=worker, machine_ad=machine_ad(name, worker, start), **kw)


# The facility's shape: CPU workers first, GPU workers only for GPU jobs, an HPC gateway last.
CPU = group("cpu", 8, 30000, max_workers=10, preference=0)
GPU = group("gpu-a100", 16, 60000, 1, start="RequestGPUs > 0", max_workers=2, preference=10)
HPC = group("leonardo", 32, 120000, start="WantOffload =?= true", max_workers=50, preference=100, local=False)
GROUPS = [CPU, GPU, HPC]


def queue(name: str) -> list[Autocluster]:
    return autoclusters(parse_ads((FIXTURES / name).read_text()))


def by_id(demand: list[Autocluster]) -> dict[int, Autocluster]:
    return {ac.id: ac for ac in demand}


def test_unscoped_start_references_read_the_job_in_a_fresh_process():
    """classad2 only applies HTCondor's unscoped-reference rule once its parser has run: the
    planner must not depend on a test having parsed a fixture first."""
    code = (
        "import classad2\n"
        "from autoscaler.model import Resources\n"
        "from autoscaler.condor import machine_ad\n"
        "job = classad2.ClassAd({'RequestGPUs': 1, 'RequestCpus': 4})\n"
        "job['Requirements'] = classad2.ExprTree('TARGET.Cpus >= RequestCpus')\n"
        "print(job.symmetricMatch(machine_ad('gpu', Resources(16, 60000, 1), 'RequestGPUs > 0')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert done.stdout.strip() == "True"


def test_fixtures_parse_into_autoclusters_with_their_requests():
    demand = by_id(queue("queue_mixed.txt"))
    assert sorted(demand) == [1, 2, 3, 4]
    assert demand[2].idle == 3 and demand[2].request == Resources(4, 16000, 1)
    assert demand[1].request == Resources(1, 2000, 0)


def test_gpu_jobs_go_only_to_gpu_groups_and_cpu_jobs_prefer_cpu_groups():
    demand = by_id(queue("queue_mixed.txt"))
    assert [g.name for g in candidates(demand[1], GROUPS, ())] == ["cpu"]
    assert [g.name for g in candidates(demand[2], GROUPS, ())] == ["gpu-a100"]
    # Without the GPU group's START, a CPU job could use a GPU node, but the CPU group comes first.
    open_gpu = group("gpu-a100", 16, 60000, 1, max_workers=2, preference=10)
    assert [g.name for g in candidates(demand[1], [open_gpu, CPU], ())] == ["cpu", "gpu-a100"]


def test_demand_becomes_workers_by_shape():
    result = plan(GROUPS, [], queue("queue_mixed.txt"), NOW)
    # 120 one-core 2 GB jobs: 8 per 8-core 30 GB worker -> 15 workers, capped at the maximum of 10.
    assert result.decisions["cpu"].desired == 10 and result.assigned["cpu"] == 80
    # 3 one-GPU jobs on one-GPU nodes: 3 workers wanted, 2 allowed.
    assert result.decisions["gpu-a100"].desired == 2 and result.assigned["gpu-a100"] == 2
    assert result.decisions["leonardo"].desired == 0, "nothing opted in to offload"
    assert "idle jobs need" in result.decisions["cpu"].reason


def test_jobs_matching_no_group_are_reported_not_scaled_for():
    result = plan(GROUPS, [], queue("queue_mixed.txt"), NOW)
    assert (3, 7) in result.unmatched  # wants Windows
    assert (4, 2) in result.unmatched  # 64 cores: no slot of any group is that big
    alone = plan(GROUPS, [], [by_id(queue("queue_mixed.txt"))[3]], NOW)
    assert all(d.desired == 0 for d in alone.decisions.values())


def test_full_local_groups_overflow_to_offload_only_for_jobs_that_opt_in():
    small_cpu = group("cpu", 8, 30000, max_workers=2, preference=0)
    result = plan([small_cpu, GPU, HPC], [], queue("queue_offload.txt"), NOW)
    # Local first: 2 workers x 4 two-core jobs = 8 jobs, all from the first autocluster (ids in order).
    assert result.decisions["cpu"].desired == 2
    assert result.assigned["cpu"] == 8
    # The other 92 jobs that allow offload go to the HPC gateway: 16 per 32-core node -> 6 nodes.
    assert result.assigned["leonardo"] == 92 and result.decisions["leonardo"].desired == 6
    # The 50 that did not opt in wait: reported as unserved, never sent away.
    assert result.unserved == ((11, 50),)


def test_site_budget_limits_local_groups_and_overflows():
    budget = Settings(scale_down_delay=DELAY, budget=Resources(cpus=16, memory_mb=1e9, gpus=8))
    result = plan(GROUPS, [], queue("queue_offload.txt"), NOW, settings=budget)
    assert result.decisions["cpu"].desired == 2, "two 8-core workers exhaust 16 cores"
    assert result.decisions["leonardo"].desired == 6


def test_capacity_already_there_or_coming_is_used_first():
    demand = [by_id(queue("queue_mixed.txt"))[1]]  # 120 one-core jobs
    running = [
        Worker(f"cpu-{i}", "cpu", "running", NOW - 3600, claimed=True, free=Resources(4, 15000)) for i in range(3)
    ]
    pending = [Worker(f"cpu-p{i}", "cpu", "pending", NOW - 30) for i in range(2)]
    result = plan([CPU], running + pending, demand, NOW)
    # 3 x 4 free cores + 2 pending x 8 = 28 jobs placed on what exists; 92 left: 12 more workers, capped by 10 total.
    decision = result.decisions["cpu"]
    assert decision.current == 5 and decision.desired == 10


def test_scale_in_removes_only_unclaimed_workers_after_the_delay():
    slots = [s for s in map(slot_worker, parse_ads((FIXTURES / "slots_busy.txt").read_text())) if s]
    assert [(s.pod, s.claimed) for s in slots] == [
        ("af-condor-cpu-7d9f-aaaa1", True),
        ("af-condor-cpu-7d9f-bbbb2", False),
        ("af-condor-cpu-7d9f-cccc3", False),
        ("af-condor-worker-cpu-5b6d-dddd4", False),  # named by AfPodName, not by its IP-based Machine
    ]
    workers = [Worker(s.pod, s.group, "running", NOW - 7200, s.claimed, s.free, s.jobs) for s in slots]
    # The claimed worker's 6 of 8 cores have been the whole load for twice the delay: draining.
    result = plan([CPU], workers, [], NOW, memory=flat(0.75))
    decision = result.decisions["cpu"]
    assert decision.remove == (
        "af-condor-cpu-7d9f-bbbb2",
        "af-condor-cpu-7d9f-cccc3",
        "af-condor-worker-cpu-5b6d-dddd4",
    )
    assert decision.desired == 1 and "af-condor-cpu-7d9f-aaaa1" not in decision.remove


def test_no_removal_before_the_group_has_been_in_surplus_for_the_delay():
    workers = [Worker(f"cpu-{i}", "cpu", "running", NOW - 7200, free=Resources(8, 30000)) for i in range(3)]
    settings = Settings(scale_down_delay=DELAY)
    first = plan([CPU], workers, [], NOW, settings=settings)
    assert first.decisions["cpu"].desired == 3 and first.memory.surplus_since["cpu"] == NOW
    later = plan([CPU], workers, [], NOW + DELAY - 1, memory=first.memory, settings=settings)
    assert later.decisions["cpu"].desired == 3
    after = plan([CPU], workers, [], NOW + DELAY, memory=later.memory, settings=settings)
    assert after.decisions["cpu"].desired == 0 and len(after.decisions["cpu"].remove) == 3


def test_a_worker_claimed_recently_is_not_removed():
    settings = Settings(scale_down_delay=DELAY)
    busy = Worker("cpu-0", "cpu", "running", NOW - 7200, claimed=True, free=Resources(7, 28000))
    first = plan([CPU], [busy], [], NOW - 60, settings=settings)
    assert first.memory.last_claimed == {"cpu-0": NOW - 60}
    freed = Worker("cpu-0", "cpu", "running", NOW - 7200, free=Resources(8, 30000))
    memory = replace(flat(1.0, since=NOW - 2 * DELAY), last_claimed=first.memory.last_claimed)
    memory.load["cpu"] = (*memory.load["cpu"], (NOW - 60, 1.5))  # the load still grows: not draining
    result = plan([CPU], [freed], [], NOW, memory=memory, settings=settings)
    assert result.decisions["cpu"].remove == () and "none unclaimed for the delay" in result.decisions["cpu"].reason


def test_idle_workers_serving_demand_are_kept_and_minimum_honoured():
    demand = [Autocluster(1, 8, Resources(1, 2000), by_id(queue("queue_mixed.txt"))[1].ad)]
    idle = [Worker(f"cpu-{i}", "cpu", "running", NOW - 7200, free=Resources(8, 30000)) for i in range(3)]
    floor = group("cpu", 8, 30000, min_workers=1, max_workers=10)
    result = plan([floor], idle, demand, NOW, memory=flat(1.0))
    # The 8 jobs fill one of the idle workers: keep it (also the minimum), remove the other two.
    assert result.decisions["cpu"].desired == 1 and len(result.decisions["cpu"].remove) == 2
    assert plan([floor], [], [], NOW).decisions["cpu"].desired == 1


def test_pending_workers_nobody_needs_go_first():
    workers = [
        Worker("cpu-run", "cpu", "running", NOW - 7200, free=Resources(8, 30000)),
        Worker("cpu-pend", "cpu", "pending", NOW - 7200),
    ]
    decision = plan([CPU], workers, [], NOW, memory=flat(0.0)).decisions["cpu"]
    assert decision.remove[0] == "cpu-pend"


def test_triggers_send_matching_jobs_to_their_group_first():
    other_gpu = group("gpu-v100", 16, 60000, 1, start="RequestGPUs > 0", max_workers=4, preference=5)
    ml = by_id(queue("queue_mixed.txt"))[2]
    assert [g.name for g in candidates(ml, [other_gpu, GPU], ())] == ["gpu-v100", "gpu-a100"]
    trigger = Trigger(classad2.ExprTree('RequestGPUs > 0 && AcctGroup == "cms.ml"'), "gpu-a100")
    assert [g.name for g in candidates(ml, [other_gpu, GPU], [trigger])] == ["gpu-a100", "gpu-v100"]
    result = plan([other_gpu, GPU], [], [ml], NOW, triggers=[trigger])
    assert (result.decisions["gpu-a100"].desired, result.decisions["gpu-v100"].desired) == (2, 1)


@pytest.mark.parametrize("seed", range(20))
def test_claimed_workers_are_never_removed_whatever_the_state(seed):
    import random

    rng = random.Random(seed)
    workers = [
        Worker(
            f"cpu-{i}",
            "cpu",
            rng.choice(["running", "running", "pending"]),
            NOW - rng.uniform(0, 7200),
            claimed=rng.random() < 0.4,
            free=Resources(rng.randint(0, 8), rng.randint(0, 30000)),
        )
        for i in range(rng.randint(0, 12))
    ]
    workers = [
        w if w.phase == "running" or not w.claimed else Worker(w.name, w.group, "pending", w.started) for w in workers
    ]
    demand = queue("queue_mixed.txt")[: rng.randint(0, 2)]
    memory = Memory(surplus_since={"cpu": NOW - rng.uniform(0, 2 * DELAY)})
    decision = plan([CPU], workers, demand, NOW, memory=memory, settings=Settings(scale_down_delay=DELAY)).decisions[
        "cpu"
    ]
    claimed = {w.name for w in workers if w.claimed}
    assert not claimed & set(decision.remove)
    assert decision.desired >= len(claimed)
    assert decision.desired == decision.current - len(decision.remove) or not decision.remove


# --- room is counted worker by worker ------------------------------------------------------------

BIG = group("cpu", 16, 60000, max_workers=10)
EIGHT_CORE = Autocluster(1, 1, Resources(8, 16000), by_id(queue("queue_mixed.txt"))[1].ad)


WAITED = Memory(wanting_since={"cpu": NOW - PATIENCE})
"""The group's jobs have waited for room as long as the planner lets them."""


def test_room_spread_over_workers_is_not_room_for_a_job():
    """Two workers with 4 free cores each cannot run an 8-core job: one more worker is needed."""
    workers = [Worker(f"w{i}", "cpu", "running", NOW - 3600, claimed=True, free=Resources(4, 40000)) for i in range(2)]
    decision = plan([BIG], workers, [EIGHT_CORE], NOW, memory=WAITED).decisions["cpu"]
    assert (decision.current, decision.desired) == (2, 3)


def test_cores_of_one_worker_and_memory_of_another_do_not_add_up():
    workers = [
        Worker("cores", "cpu", "running", NOW - 3600, claimed=True, free=Resources(8, 1000)),
        Worker("memory", "cpu", "running", NOW - 3600, claimed=True, free=Resources(1, 50000)),
    ]
    assert plan([BIG], workers, [EIGHT_CORE], NOW, memory=WAITED).decisions["cpu"].desired == 3


def test_jobs_one_worker_would_take_wait_for_room_in_busy_workers_first():
    busy = [Worker(f"w{i}", "cpu", "running", NOW - 3600, claimed=True, free=Resources(4, 40000)) for i in range(2)]
    first = plan([BIG], busy, [EIGHT_CORE], NOW)
    assert first.decisions["cpu"].desired == 2 and "wait for room" in first.decisions["cpu"].reason
    assert first.memory.wanting_since == {"cpu": NOW}
    # Still short of room PATIENCE seconds later: the worker is started.
    later = plan([BIG], busy, [EIGHT_CORE], NOW + PATIENCE, memory=first.memory)
    assert later.decisions["cpu"].desired == 3
    # Room came free meanwhile: nothing to wait for, and the wait starts afresh next time.
    freed = [replace(busy[0], free=Resources(8, 40000)), busy[1]]
    room = plan([BIG], freed, [EIGHT_CORE], NOW + 60, memory=first.memory)
    assert room.decisions["cpu"].desired == 2 and room.memory.wanting_since == {}
    # Nothing running in the group (no room will come free), or more than a worker's worth: at once.
    idle_group = plan([BIG], [], [EIGHT_CORE], NOW)
    assert idle_group.decisions["cpu"].desired == 1
    assert plan([BIG], busy, [replace(EIGHT_CORE, idle=3)], NOW).decisions["cpu"].desired == 4


def test_the_idle_worker_a_job_fits_on_is_kept():
    workers = [Worker(f"w{i}", "cpu", "running", NOW - 3600, claimed=True, free=Resources(4, 40000)) for i in range(2)]
    workers.append(Worker("cpu-idle", "cpu", "running", NOW - 3600, free=Resources(16, 60000)))
    decision = plan([BIG], workers, [EIGHT_CORE], NOW, memory=flat(0.5))
    assert decision.decisions["cpu"].remove == () and decision.decisions["cpu"].desired == 3


# --- scale-in: draining, the delay, and holding an idle worker while the load holds -------------


def rising(values: list[float], step: float = 30.0, group: str = "cpu") -> Memory:
    """Memory whose load samples end at NOW - step with `values`, one every `step` seconds."""
    start = NOW - step * len(values)
    samples = tuple((start + i * step, v) for i, v in enumerate(values))
    return Memory(surplus_since={group: NOW - 2 * DELAY}, load={group: samples})


def test_a_draining_group_lets_idle_workers_go_at_once_whatever_the_delay():
    workers = [
        Worker("busy", "cpu", "running", NOW - 7200, claimed=True, free=Resources(4, 15000), jobs=2),
        Worker("idle", "cpu", "running", NOW - 100, free=Resources(8, 30000)),
    ]
    years = Settings(scale_down_delay=10**7)
    # The load (half a worker) has not grown for GROWTH_WINDOW: the idle worker goes, unclaimed for 100 s only.
    decision = plan([CPU], workers, [], NOW, memory=flat(0.5, since=NOW - GROWTH_WINDOW), settings=years)
    assert decision.decisions["cpu"].remove == ("idle",) and "not grown" in decision.decisions["cpu"].reason
    # Watched for less than the window: not known to be draining, the delay applies.
    short = plan([CPU], workers, [], NOW, memory=flat(0.5, since=NOW - GROWTH_WINDOW + 60), settings=years)
    assert short.decisions["cpu"].remove == ()


def test_an_idle_worker_is_kept_while_the_load_holds_and_goes_when_it_falls():
    workers = [
        Worker("busy", "cpu", "running", NOW - 7200, claimed=True, free=Resources(1, 5000), jobs=7),
        Worker("busy2", "cpu", "running", NOW - 7200, claimed=True, free=Resources(2, 10000), jobs=6),
        Worker("idle", "cpu", "running", NOW - 7200, free=Resources(8, 30000)),
    ]
    last_claimed = {"idle": NOW - 2 * DELAY}
    # Busy 13 of 16 cores now; the load grew a little in the last minutes, 2.4 workers at its peak: kept.
    holding = replace(rising([1.5] * 40 + [2.4, 1.6, 1.625]), last_claimed=last_claimed)
    kept = plan([CPU], workers, [], NOW, memory=holding).decisions["cpu"]
    assert kept.remove == () and "kept: the load holds" in kept.reason
    # The load's recent peak needed only the two busy workers: the idle one goes.
    low = replace(rising([1.5] * 40 + [1.6, 1.625]), last_claimed=last_claimed)
    low_decision = plan([CPU], workers, [], NOW, memory=low).decisions["cpu"]
    assert low_decision.remove == ("idle",) and low_decision.desired == 2
    # The load was two workers higher within the delay and only creeps up now: it goes.
    fallen = replace(rising([4.0] * 5 + [1.6] * 12 + [1.61, 1.62]), last_claimed=last_claimed)
    gone = plan([CPU], workers, [], NOW, memory=fallen).decisions["cpu"]
    assert gone.remove == ("idle",) and gone.desired == 2


def test_workers_packing_leaves_to_drain_go_first_newest_first():
    workers = [Worker(f"cpu-{age}", "cpu", "running", NOW - age, free=BIG.worker) for age in (900, 300, 600)]
    workers.append(Worker("cpu-pending", "cpu", "pending", NOW - 1000))
    decision = plan([BIG], workers, [], NOW, memory=flat(0.0)).decisions["cpu"]
    assert decision.remove == ("cpu-pending", "cpu-300", "cpu-600", "cpu-900")


def test_a_burst_gets_as_many_workers_again_a_trickle_does_not():
    one_core = Autocluster(1, 160, Resources(1, 2000), by_id(queue("queue_mixed.txt"))[1].ad)
    pool = group("cpu", 16, 60000, max_workers=40)
    # 160 one-core jobs appeared within a cycle: 10 workers for them, and 10 more for what is still arriving.
    burst = plan([pool], [], [one_core], NOW, memory=rising([0.0])).decisions["cpu"]
    assert burst.desired == 20
    # The same queue seen last cycle already: no growth, no extra.
    steady = plan([pool], [], [one_core], NOW, memory=rising([10.0])).decisions["cpu"]
    assert steady.desired == 10
    # A worker's worth of new jobs is no burst: just the worker they need.
    sixteen = replace(one_core, idle=16)
    assert plan([pool], [], [sixteen], NOW, memory=rising([0.0])).decisions["cpu"].desired == 1
    # Never beyond the maximum.
    small = group("cpu", 16, 60000, max_workers=12)
    assert plan([small], [], [one_core], NOW, memory=rising([0.0])).decisions["cpu"].desired == 12


def test_the_planner_fills_workers_in_the_order_of_the_rendered_packing_rank():
    """The planner's packing_order and the negotiator's NEGOTIATOR_PRE_JOB_RANK (classad2 on slot ads
    as the collector has them) order a group's running workers the same way."""
    rng = random.Random(7)
    rank = classad2.ExprTree(PACKING_RANK)
    for _ in range(50):
        workers = []
        for i in range(rng.randint(2, 12)):
            jobs = rng.choice([0, 0, 1, 2, 5, 16])
            started = NOW - rng.choice([60, 3600, 86_400, 7 * 86_400]) - rng.randint(0, 5)
            free = Resources(16 - min(jobs, 16), 60000 - 2000 * jobs)
            workers.append(Worker(f"w{i:02d}", "cpu", "running", started, jobs > 0, free, jobs))

        def slot(w: Worker) -> classad2.ClassAd:
            ad = classad2.ClassAd({"Cpus": int(w.free.cpus), "Memory": int(w.free.memory_mb)})
            ad.update({"NumDynamicSlots": w.jobs, "DaemonStartTime": int(w.started), PREFERENCE_ATTRIBUTE: 0})
            return ad

        job = classad2.ClassAd({"RequestCpus": 1, "RequestMemory": 2000})
        by_rank = sorted(workers, key=lambda w: (-rank.eval(slot(w), job), w.name))
        assert [w.name for w in sorted(workers, key=packing_order)] == [w.name for w in by_rank]


@pytest.mark.parametrize("interval", [7.0, 30.0, 45.0, 601.0])
def test_draining_is_seen_whatever_the_interval(interval):
    """Cycle after cycle with a flat load, an idle worker goes once the load has been watched not growing for
    GROWTH_WINDOW, not before, whether or not the interval divides the window."""
    busy = Worker("busy", "cpu", "running", NOW - 7200, claimed=True, free=Resources(4, 15000), jobs=1)
    idle = Worker("idle", "cpu", "running", NOW - 7200, free=CPU.worker)
    years = Settings(scale_down_delay=10**7)
    memory, now = None, NOW
    while True:
        decision = plan_with([CPU], [busy, idle], [], now, memory, years).decisions["cpu"]
        if decision.remove:
            break
        memory, now = plan_with([CPU], [busy, idle], [], now, memory, years).memory, now + interval
    assert decision.remove == ("idle",)
    assert GROWTH_WINDOW <= now - NOW < GROWTH_WINDOW + interval


# --- a GPU group's START that reads the slot's free room -----------------------------------------

SHARED_GPU = group("gpu", 16, 60000, 1, start=gpu_start(4, 16000), max_workers=4, preference=10)
"""A GPU group whose START keeps 4 cores and 16,000 MiB next to a free GPU and lends the rest."""


def start_admits(start: str, free: Resources, ac: Autocluster) -> bool:
    """The oracle: the START alone, evaluated by classad2 on a slot ad holding `free` as its unclaimed room."""
    slot = classad2.ClassAd({"Cpus": int(free.cpus), "Memory": int(free.memory_mb), "GPUs": int(free.gpus)})
    return classad2.ExprTree(start).eval(slot, ac.ad) is True


@pytest.mark.parametrize(
    "free",
    [Resources(16, 60000, 1), Resources(12, 44000, 0), Resources(11, 30000, 1), Resources(6, 21000, 1)],
)
def test_a_room_reading_start_is_matched_job_by_job_against_each_workers_room(free):
    one_core = by_id(queue("queue_mixed.txt"))[1]  # 1 core, 2,000 MiB, RequestGPUs = 0
    worker = Worker("gpu-0", "gpu", "running", NOW - 3600, claimed=True, free=free, jobs=1)
    alone = replace(SHARED_GPU, max_workers=1)  # no new worker: what this one takes
    taken = plan([alone], [worker], [replace(one_core, idle=40)], NOW).assigned["gpu"]
    # What the startd lets in, claim by claim: each job's START on the room the earlier ones left.
    expected, room = 0, free
    while room.copies_of(one_core.request) and start_admits(gpu_start(4, 16000), room, one_core):
        expected, room = expected + 1, room - one_core.request
    assert taken == expected
    assert taken == {16: 12, 12: 12, 11: 7, 6: 2}[int(free.cpus)]


def test_cpu_jobs_take_the_cores_gpu_jobs_leave_before_new_cpu_workers():
    one_core = replace(by_id(queue("queue_mixed.txt"))[1], idle=12)
    gpu_busy = Worker("gpu-0", "gpu", "running", NOW - 3600, claimed=True, free=Resources(12, 44000, 0), jobs=1)
    gpu_free = Worker("gpu-1", "gpu", "running", NOW - 3600, free=Resources(16, 60000, 1))
    result = plan([BIG, SHARED_GPU], [gpu_busy, gpu_free], [one_core], NOW)
    # The 12 cores next to the running GPU job take them all; the idle GPU worker keeps its share and no
    # CPU worker is started, though the CPU group comes first for a new worker.
    assert result.assigned == {"cpu": 0, "gpu": 12}
    assert result.decisions["cpu"].desired == 0 and "1 workers in surplus" in result.decisions["gpu"].reason
    # A fresh GPU slot keeps 4 cores for a GPU job and lends 12: new GPU workers could take CPU jobs, after
    # the CPU group. With the whole worker kept per free GPU, a CPU job never starts a GPU worker.
    assert [g.name for g in candidates(one_core, [BIG, SHARED_GPU], ())] == ["cpu", "gpu"]
    whole = group("gpu", 16, 60000, 1, start=gpu_start(16, 60000), max_workers=4, preference=10)
    assert [g.name for g in candidates(one_core, [BIG, whole], ())] == ["cpu"]
