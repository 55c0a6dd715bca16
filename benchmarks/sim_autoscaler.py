"""The queue-driven autoscaler against the reference's HPA on busy-slot fraction, in a discrete-event simulation.

Each workload trace (deterministic, seeded) is replayed once per policy in the same run, on the same simulated pool:
worker groups of partitionable slots (`cpu`: 16 cores / 60 GB, `gpu`: 16 cores / 60 GB / 1 GPU with the config's
default START of a GPU group, `gpu_start`: jobs that ask for GPUs, and other jobs only in the room beyond the worker's
share kept for each free GPU, here all of it: they use the cores a running GPU job leaves), pods that take
`--startup` seconds from Pending to Running (a fresh startd), and one
negotiator shared by every policy, which does what the central manager's rendered config makes HTCondor's do: the
packing lines `components.batch.htcondor.negotiator_packing()` renders are read back with htcondor2 (CONDOR_CONFIG in a
subprocess; HTCondor's defaults for what they leave unset), and every 20 s the negotiator walks the idle jobs in
queue order (QDate; a killed job keeps its own); each request goes to the matching running slot (real ClassAd
matchmaking, `symmetricMatch` of the job's ad with the slot's ad as the collector holds it: the group's machine ad
with its free cores, memory and GPUs, which must cover the request, as Cpus, Memory and GPUs) that ranks highest by
NEGOTIATOR_PRE_JOB_RANK, then NEGOTIATOR_POST_JOB_RANK (classad2, MY the slot's ad, TARGET the job's), then the
collector's order (pod names, whose suffixes are random); a matched slot leaves the cycle; with
NEGOTIATOR_DEPTH_FIRST a match takes jobsInSlot = min(free cores / request, free memory / request) requests of the
autocluster, of which the schedd starts those that really fit, the startd matching the slot's ad with the room left
against each job's (CLAIM_PARTITIONABLE_LEFTOVERS; the startd checks START at every claim); an autocluster that
fits nowhere is not tried again that cycle. Jobs run for their duration and free their resources; idle startds stay
until a policy removes their pod. The policy modelled is printed.

- ours: `autoscaler.planner.plan` every `--interval` seconds, fed what the controller reads: groups with machine ads
  from `autoscaler.condor.machine_ad`, every pod as a Worker (pending or running, claimed, free resources, jobs),
  idle jobs as autoclusters (one per identical request and requirements, one classad2 job ad each). Replicas are set
  to `desired`; on scale-in exactly the named workers are deleted. A deleted worker that was running a job counts as
  a kill, so a planner that named a busy worker would show up there. Interval and scale-down delay default to the
  config model's defaults (`af:autoscaler`).
- ref: the INFN chart's HPA (an Object metric, `condor_slot_activity_busy`, target value 0.75), one per group, every
  15 s: busy fraction = claimed cores / cores of the group's running pods, recommendation = ceil(ready pods x
  fraction / 0.75) (Pending pods are not ready: not counted) unless |fraction / 0.75 - 1| <= 0.1; scale-down
  stabilisation 300 s (the highest recommendation of the window), default scale-up rate (max of +4 pods and +100%
  per 15 s), min 1 (an HPA cannot scale to zero), max as ours. Measured in cores, a GPU pod running its one 4-core
  GPU job reads 0.25 busy: this HPA does not grow the GPU group. Scale-in deletes the pods a ReplicaSet picks:
  Pending before Running, then the most recently ready (age compared in log2 buckets, LogarithmicScaleDown), then
  the newest, ties at random; no pod-deletion-cost, no drain. Jobs on a deleted pod are killed: they go back to the
  queue and restart from scratch.

Figures per trace: median and 95th-percentile queue wait (final start - submit, across kills), idle core-hours
(integral of the unclaimed cores of every pod that exists, Pending pods included since they are paid for; both
policies integrated to the same horizon, the later of the two ends, at their floor size after their own end), running
jobs killed, scale direction changes (a group's replica count turning from growth to shrinkage or back, summed over
groups); each as ours over the reference, measured in the same run. Idle core-hours are also split by group and
cause (pending pod, unclaimed slot, free room of a partly claimed slot) to show where they come from.

Goals (issue 16), one line per trace: no job killed; idle core-hours at most 0.35 of the reference's (0.65 on
waves); median wait at most the ceiling's plus one pod start-up; p95 wait at most the ceiling's plus one start-up and
one interval; direction changes at most the reference's. Bounds from runs in the same simulation say when a goal is
out of every policy's reach: `ceiling` (every group held at max, Running from the start: the least wait with this
negotiator), `reactive` (a group goes to max at the first planning cycle that sees its jobs and stays there: the
least wait of any policy that learns of jobs from its cycles), the idle floor (the ceiling's jobs, at their start
times, on as few workers as their load needs at every instant, as if jobs could move) and the least direction changes
(a group that must grow above its floor and is back there at the end turns at least once). Where ours turns more
than the reference and that bound, ours is run again kept through each of its turn pairs in turn (no scale-in of the
group from the first removal to the end of the scale-up that follows: two changes fewer), and the cheapest in idle
core-hours is printed: what turning less costs this planner.
`--interval`, `--delay` and `--min-workers` change only what `plan()` is given. Prints figures; asserts nothing.

    python benchmarks/sim_autoscaler.py [--startup SECONDS] [--interval S] [--delay S] [--min-workers N] [--quick]
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import classad2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autoscaler.condor import machine_ad  # noqa: E402
from autoscaler.model import Autocluster, Group, Memory, Resources, Settings, Worker  # noqa: E402
from autoscaler.planner import plan  # noqa: E402
from components.batch.config import Autoscaler as AutoscalerConfig  # noqa: E402
from components.batch.config import gpu_start  # noqa: E402
from components.batch.htcondor import negotiator_packing  # noqa: E402
from components.names import PREFERENCE_ATTRIBUTE  # noqa: E402

MINUTE, HOUR = 60.0, 3600.0
DEFAULT_INTERVAL = float(AutoscalerConfig.model_fields["interval_seconds"].default)
DEFAULT_DELAY = float(AutoscalerConfig.model_fields["scale_down_delay_seconds"].default)
"""The controller's cycle and scale-down delay as a stack gets them (the config model's defaults, their one place)."""
IDLE_GOAL = {"waves": 0.65}
"""Idle core-hours goal as a fraction of the reference's, by trace; 0.35 for the others."""
NEGOTIATOR_PERIOD = 20.0
HPA_PERIOD, HPA_TARGET, HPA_TOLERANCE, HPA_WINDOW = 15.0, 0.75, 0.1, 300.0
REQUIREMENTS = (
    '(TARGET.Arch == "X86_64") && (TARGET.OpSys == "LINUX") && (TARGET.Disk >= RequestDisk) && '
    "(TARGET.Memory >= RequestMemory) && (TARGET.Cpus >= RequestCpus)"
)
"""What `condor_submit` writes into a job's Requirements (tests/fixtures/condor); GPU jobs also get a GPUs clause."""
POD_SUFFIX = "bcdfghjklmnpqrstvwxz2456789"
"""The alphabet of Kubernetes' random name suffixes."""
IDLE_KINDS = ("pending", "unclaimed", "partly claimed")
"""Why a core is idle: its pod is starting, its slot has no job, or its slot's jobs leave it free."""


def group(name: str, cpus: int, memory_mb: int, gpus: int, start: str, min_workers: int, max_workers: int) -> Group:
    worker = Resources(cpus, memory_mb, gpus)
    preference = 10 if gpus else 0
    return Group(name, worker, machine_ad(name, worker, start), min_workers, max_workers, preference)


GPU_WORKER = Resources(16, 60_000, 1)


def facility_groups(gpu_reserve: Resources | None = None) -> tuple[Group, ...]:
    """The facility's batch groups; both policies get the same floor (1: an HPA cannot go lower) and ceiling. The
    GPU group's START is the config's default for a GPU group (`gpu_start`), keeping for each free GPU its share of
    the worker (`gpu_reserve`: by default the worker's cores and memory per GPU, here all of them)."""
    reserve = gpu_reserve or Resources(GPU_WORKER.cpus / GPU_WORKER.gpus, GPU_WORKER.memory_mb / GPU_WORKER.gpus)
    cpus, memory, gpus = int(GPU_WORKER.cpus), int(GPU_WORKER.memory_mb), int(GPU_WORKER.gpus)
    return (
        group("cpu", 16, 60_000, 0, "true", min_workers=1, max_workers=40),
        group("gpu", cpus, memory, gpus, gpu_start(reserve.cpus, reserve.memory_mb), min_workers=1, max_workers=4),
    )


# ---------------------------------------------------------------- workload


@dataclass(frozen=True)
class Shape:
    """What HTCondor groups jobs by (their significant attributes): one autocluster per shape."""

    cpus: int
    memory_mb: int
    gpus: int = 0
    acct: str = "cms.analysis"

    @property
    def request(self) -> Resources:
        return Resources(self.cpus, self.memory_mb, self.gpus)

    def ad(self) -> classad2.ClassAd:
        """A job ad as `condor_q -long` shows it, Requirements as condor_submit writes them."""
        ad = classad2.ClassAd(
            {
                "MyType": "Job",
                "JobStatus": 1,
                "AcctGroup": self.acct,
                "RequestCpus": self.cpus,
                "RequestMemory": self.memory_mb,
                "RequestGPUs": self.gpus,
                "RequestDisk": 2_000_000,
            }
        )
        gpus = " && (TARGET.GPUs >= RequestGPUs)" if self.gpus else ""
        ad["Requirements"] = classad2.ExprTree(f"{REQUIREMENTS}{gpus} && (TARGET.HasFileTransfer)")
        return ad


@dataclass(frozen=True, order=True)
class Arrival:
    submit: float
    shape: int
    duration: float


@dataclass(frozen=True)
class Trace:
    name: str
    about: str
    shapes: tuple[Shape, ...]
    arrivals: tuple[Arrival, ...]

    @property
    def end(self) -> float:
        return max((a.submit for a in self.arrivals), default=0.0)


def burst(jobs: int = 2000, seed: int = 1) -> Trace:
    """Many short one-core jobs at once: the lag of a policy that grows by a fraction per sync shows here."""
    rng = random.Random(seed)
    arrivals = sorted(Arrival(rng.uniform(60, 180), 0, 5 * MINUTE) for _ in range(jobs))
    about = f"{jobs} jobs of 1 core / 2 GB / 5 min submitted between 60 s and 180 s"
    return Trace("burst", about, (Shape(1, 2000),), tuple(arrivals))


DAY_SHAPES = (Shape(1, 2000), Shape(4, 8000), Shape(8, 16_000), Shape(4, 16_000, 1, "cms.ml"))
DAY_MIX = (0.6, 0.27, 0.13)
"""Shares of the CPU shapes among CPU jobs."""


def daily_arrivals(rng: random.Random, per_hour: float, hours: float) -> list[float]:
    """Poisson arrivals whose rate follows the working day: lowest at midnight, 1.8 x the mean at noon (thinning)."""
    times, t, peak = [], 0.0, per_hour * 1.8 / HOUR
    while (t := t + rng.expovariate(peak)) < hours * HOUR:
        if rng.random() < (1 - 0.8 * math.cos(2 * math.pi * t / (24 * HOUR))) / 1.8:
            times.append(t)
    return times


def day(hours: float = 24, cpu_per_hour: float = 100, gpu_per_hour: float = 1.0, seed: int = 2) -> Trace:
    """A working day of mixed work: CPU jobs of 10 min - 3 h (log-uniform) in three shapes, GPU jobs of 1-4 h."""
    rng = random.Random(seed)
    arrivals = [
        Arrival(t, rng.choices(range(3), DAY_MIX)[0], math.exp(rng.uniform(math.log(10), math.log(180))) * MINUTE)
        for t in daily_arrivals(rng, cpu_per_hour, hours)
    ]
    arrivals += [Arrival(t, 3, rng.uniform(60, 240) * MINUTE) for t in daily_arrivals(rng, gpu_per_hour, hours)]
    about = (
        f"{hours:g} h, Poisson with a daily rhythm: ~{cpu_per_hour:g} CPU jobs/h (1c/2GB, 4c/8GB, 8c/16GB; 10 min-3 h) "
        f"and ~{gpu_per_hour:g} GPU jobs/h (4c/16GB/1 GPU; 1-4 h), {len(arrivals)} jobs"
    )
    return Trace("day", about, DAY_SHAPES, tuple(sorted(arrivals)))


def trickle(hours: float = 8, seed: int = 3) -> Trace:
    """One small job every few minutes: what a policy costs when there is almost nothing to do."""
    rng = random.Random(seed)
    arrivals, t = [], 0.0
    while (t := t + rng.uniform(2, 8) * MINUTE) < hours * HOUR:
        arrivals.append(Arrival(t, 0, rng.uniform(5, 20) * MINUTE))
    about = f"{hours:g} h, one 1-core job of 5-20 min every 2-8 min, {len(arrivals)} jobs"
    return Trace("trickle", about, (Shape(1, 2000),), tuple(arrivals))


def waves(count: int = 6, jobs: int = 160, gap: float = 40 * MINUTE, seed: int = 4) -> Trace:
    """Bursts of 4-core jobs of 20-30 min every 40 min: scale-in between waves, busy pods when the next one comes."""
    rng = random.Random(seed)
    arrivals = sorted(
        Arrival(i * gap + rng.uniform(60, 120), 0, rng.uniform(20, 30) * MINUTE)
        for i in range(count)
        for _ in range(jobs)
    )
    about = f"{count} waves of {jobs} jobs of 4 cores / 8 GB / 20-30 min, one every {gap / MINUTE:g} min"
    return Trace("waves", about, (Shape(4, 8000),), tuple(arrivals))


# ---------------------------------------------------------------- pool


PACKING_PARAMS = ("NEGOTIATOR_PRE_JOB_RANK", "NEGOTIATOR_POST_JOB_RANK", "NEGOTIATOR_DEPTH_FIRST")
_PARAMS = "import json, sys, htcondor2; print(json.dumps({k: str(htcondor2.param.get(k)) for k in sys.argv[1:]}))"


def condor_params(config: str, names: Sequence[str]) -> dict[str, str]:
    """`names` as HTCondor reads them from `config` (htcondor2 with CONDOR_CONFIG, in a fresh process: the bindings
    read their config once), its own defaults for what the config leaves unset."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "condor_config"
        path.write_text(config)
        done = subprocess.run(
            [sys.executable, "-c", _PARAMS, *names],
            env={"PATH": os.environ.get("PATH", ""), "CONDOR_CONFIG": str(path)},
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    return json.loads(done.stdout)


class Negotiator:
    """The negotiator's packing policy, from its configuration: the order in which it offers a request's matching
    slots (pre-job rank, post-job rank, collector order) and how many requests one match takes (depth first)."""

    def __init__(self, params: dict[str, str]) -> None:
        self.params = params
        self.pre = self._expression(params["NEGOTIATOR_PRE_JOB_RANK"])
        self.post = self._expression(params["NEGOTIATOR_POST_JOB_RANK"])
        self.depth_first = params["NEGOTIATOR_DEPTH_FIRST"].strip().lower() == "true"

    @staticmethod
    def _expression(text: str) -> classad2.ExprTree | None:
        return None if text in ("", "None") else classad2.ExprTree(text)

    @classmethod
    def rendered(cls) -> Negotiator:
        """The policy the central manager's rendered config gives HTCondor (`negotiator_packing()`)."""
        return cls(condor_params("\n".join(negotiator_packing()) + "\n", PACKING_PARAMS))

    def describe(self) -> str:
        fill = "depth first (a match takes jobsInSlot requests)" if self.depth_first else "one request per match"
        return (
            f"slots ranked by NEGOTIATOR_PRE_JOB_RANK = {self.params['NEGOTIATOR_PRE_JOB_RANK']}, then "
            f"NEGOTIATOR_POST_JOB_RANK = {self.params['NEGOTIATOR_POST_JOB_RANK']}, then collector order; {fill}"
        )

    @staticmethod
    def slot_ad(pod: Pod) -> classad2.ClassAd:
        """The partitionable slot's ad as the collector holds it: the group's machine ad with the free room as Cpus,
        Memory and GPUs, the whole slot as TotalSlot*, one dynamic slot per job, the startd's start (the pod's
        Running time) as DaemonStartTime, its preference, SlotID 1 and the startd's default Rank 0; no RemoteOwner (a
        partitionable slot has none) and no KFlops (every pod the same hardware)."""
        worker = pod.group.worker
        ad = classad2.ClassAd(str(pod.group.machine_ad))
        ad.update({"Cpus": int(pod.free_cpus), "Memory": int(pod.free_memory), "GPUs": int(pod.free_gpus)})
        ad.update({"TotalSlotCpus": int(worker.cpus), "TotalSlotMemory": int(worker.memory_mb)})
        ad.update({"TotalSlotGPUs": int(worker.gpus), "NumDynamicSlots": len(pod.jobs)})
        starts = sorted(int(job.start or 0) for job in pod.jobs.values())
        ad["ChildEnteredCurrentState"] = classad2.ExprTree("{" + ", ".join(map(str, starts)) + "}")
        ad.update({"DaemonStartTime": int(pod.ready_at or 0), PREFERENCE_ATTRIBUTE: pod.group.preference})
        ad.update({"SlotID": 1, "Rank": 0.0})
        return ad

    def _rank(self, expr: classad2.ExprTree | None, slot: classad2.ClassAd, job: classad2.ClassAd) -> float:
        """As the negotiator evaluates a rank (MY: the slot, TARGET: the job): not a number ranks lowest."""
        if expr is None:
            return 0.0
        value = expr.eval(slot, job)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else -sys.float_info.max

    def _judge(self, pool: Pool, shape: int, pod: Pod) -> tuple[float, float, bool]:
        """(pre rank, post rank, match) of the job's shape with the slot as it is now (its ad: free room, jobs)."""
        starts = tuple(sorted(int(job.start or 0) for job in pod.jobs.values()))
        key = (shape, pod.group.name, pod.free_cpus, pod.free_memory, pod.free_gpus, starts, pod.ready_at or 0)
        if key not in pool.ranks:  # the slot ad is a function of the key, the job ad of the shape
            slot, job = self.slot_ad(pod), pool.ads[shape]
            pool.ranks[key] = (
                self._rank(self.pre, slot, job),
                self._rank(self.post, slot, job),
                bool(job.symmetricMatch(slot)),
            )
        return pool.ranks[key]

    def ranks(self, pool: Pool, shape: int, pod: Pod) -> tuple[float, float]:
        return self._judge(pool, shape, pod)[:2]

    def admits(self, pool: Pool, shape: int, pod: Pod) -> bool:
        """The slot takes a job of the shape now: its free room covers the request, and the job's Requirements and
        the slot's START both hold on the slot's ad with that room (the negotiator's match of the partitionable
        slot's ad, and the startd's check of the slot's START at every claim of its leftovers)."""
        return pod.fits(pool.shapes[shape]) and self._judge(pool, shape, pod)[2]

    per_request = False
    """The order depends only on the autocluster (HTCondor's match list), not on the job."""

    def order(self, pool: Pool, shape: int, pods: Sequence[Pod], job: Job | None = None) -> list[Pod]:
        """The slots (in the collector's order) that take the request (`admits`), best first."""
        fitting = [(i, p) for i, p in enumerate(pods) if self.admits(pool, shape, p)]
        fitting.sort(key=lambda ip: (*(-r for r in self.ranks(pool, shape, ip[1])), ip[0]))
        return [p for _, p in fitting]

    def jobs_per_match(self, pod: Pod, shape: Shape) -> int:
        """Requests one match takes: the negotiator's jobsInSlot (cores and memory only), or one."""
        if not self.depth_first:
            return 1
        return max(1, min(int(pod.free_cpus) // max(shape.cpus, 1), int(pod.free_memory) // max(shape.memory_mb, 1)))


class Clairvoyant(Negotiator):
    """Not a negotiator HTCondor has: the rendered one, except that it knows when every job will end and puts each on
    the worker it keeps busy the least extra time (a worker already busy past the job's end, the one ending soonest
    after it; else the one it extends least; an idle worker last). What placement alone could do for idle cores."""

    per_request = True

    def describe(self) -> str:
        return "clairvoyant placement (job end times known); " + super().describe().split("; ")[-1]

    def order(self, pool: Pool, shape: int, pods: Sequence[Pod], job: Job | None = None) -> list[Pod]:
        assert job is not None
        end = pool.now + job.duration

        def extension(i: int, pod: Pod) -> tuple[int, float, int]:
            busy_until = max((j.start + j.duration for j in pod.jobs.values() if j.start is not None), default=None)
            if busy_until is None:
                return (2, 0.0, i)
            return (0, busy_until - end, i) if busy_until >= end else (1, end - busy_until, i)

        fitting = sorted((extension(i, p), p) for i, p in enumerate(pods) if self.admits(pool, shape, p))
        return [p for _, p in fitting]


_RENDERED: list[Negotiator] = []


def rendered_negotiator() -> Negotiator:
    """The rendered policy, parsed once per process."""
    if not _RENDERED:
        _RENDERED.append(Negotiator.rendered())
    return _RENDERED[0]


@dataclass(eq=False, slots=True)
class Job:
    id: int
    shape: int
    submit: float
    duration: float
    start: float | None = None
    end: float | None = None
    attempt: int = 0
    """Bumped when the job is killed, so the completion of the killed run is ignored."""
    pod: Pod | None = None
    group: str = ""
    """The group of the worker its last run started on."""


@dataclass(eq=False, slots=True)
class Pod:
    """A worker pod: one partitionable slot of its group's size once Running."""

    name: str
    group: Group
    created: float
    ready_at: float | None = None
    free_cpus: float = 0.0
    free_memory: float = 0.0
    free_gpus: float = 0.0
    jobs: dict[int, Job] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.ready_at is not None

    def fits(self, shape: Shape) -> bool:
        return self.free_cpus >= shape.cpus and self.free_memory >= shape.memory_mb and self.free_gpus >= shape.gpus


class Pool:
    """The simulated cluster and HTCondor pool, with the bookkeeping the figures come from."""

    def __init__(
        self,
        groups: Sequence[Group],
        shapes: Sequence[Shape],
        startup: float,
        seed: int = 0,
        policy: Negotiator | None = None,
    ) -> None:
        self.groups = {g.name: g for g in groups}
        self.policy = policy or rendered_negotiator()
        self.ranks: dict[tuple[int, str, float, float, float, tuple[int, ...], float], tuple[float, float, bool]] = {}
        """The policy's (pre, post) ranks and the match by shape and slot state, as the negotiator's match list
        caches them."""
        self.shapes = tuple(shapes)
        self.ads = tuple(s.ad() for s in shapes)
        # Groups whose fresh slots each shape matches (where new workers would take it); running slots are matched
        # in their own state at every negotiation.
        self.eligible = tuple(frozenset(g.name for g in groups if ad.symmetricMatch(g.machine_ad)) for ad in self.ads)
        self.startup = startup
        self.rng = random.Random(seed)
        self.now = 0.0
        self.pods: dict[str, Pod] = {}
        self.idle: dict[int, Job] = {}
        self.idle_sorted = True
        self.idle_count = [0] * len(shapes)
        self.running_jobs = 0
        # Cores of each group by pod state ("busy": used by jobs, within "claimed"); GPUs in all.
        self.cores_in = {name: dict.fromkeys(("pending", "unclaimed", "claimed", "busy"), 0.0) for name in self.groups}
        self.idle_s = {(name, kind): 0.0 for name in self.groups for kind in IDLE_KINDS}
        self.gpus = self.busy_gpus = 0.0
        self.idle_gpu_s = self.lost_core_s = 0.0
        self.kills = 0
        self.changes = dict.fromkeys(self.groups, 0)
        self.last_direction: dict[str, int] = {}
        self.steps: list[tuple[float, str, int]] = []
        """(time, group, +1 or -1) of every change of a group's replicas."""
        self.peak = dict.fromkeys(self.groups, 0)
        self._events: list[tuple[float, int, int, object]] = []
        self._seq = itertools.count()

    # -- time and events
    def schedule(self, at: float, kind: int, payload: object = None) -> None:
        heapq.heappush(self._events, (at, kind, next(self._seq), payload))

    def next_event(self) -> tuple[float, int, object] | None:
        if not self._events:
            return None
        at, kind, _, payload = heapq.heappop(self._events)
        self.advance(at)
        return at, kind, payload

    def advance(self, to: float) -> None:
        """Integrate unclaimed cores (by group and why) and GPUs of existing pods up to `to`."""
        span = to - self.now
        if span > 0:
            for name, c in self.cores_in.items():
                self.idle_s[name, "pending"] += c["pending"] * span
                self.idle_s[name, "unclaimed"] += c["unclaimed"] * span
                self.idle_s[name, "partly claimed"] += (c["claimed"] - c["busy"]) * span
            self.idle_gpu_s += (self.gpus - self.busy_gpus) * span
            self.now = to

    @property
    def idle_core_s(self) -> float:
        return sum(self.idle_s.values())

    @property
    def cores(self) -> float:
        return sum(c["pending"] + c["unclaimed"] + c["claimed"] for c in self.cores_in.values())

    def _move(self, pod: Pod, source: str | None, target: str | None) -> None:
        """A pod's cores change state (None: created or deleted)."""
        cores = self.cores_in[pod.group.name]
        if source:
            cores[source] -= pod.group.worker.cpus
        if target:
            cores[target] += pod.group.worker.cpus

    # -- pods
    def group_pods(self, name: str) -> list[Pod]:
        return [p for p in self.pods.values() if p.group.name == name]

    def _new_name(self, group: str) -> str:
        while (name := f"af-condor-{group}-{''.join(self.rng.choices(POD_SUFFIX, k=5))}") in self.pods:
            pass
        return name

    def grow(self, name: str, count: int, ready: bool = False) -> None:
        """Create `count` pods (Pending, Running after the start-up time; `ready` for the initial floor)."""
        g = self.groups[name]
        for _ in range(count):
            pod = Pod(self._new_name(name), g, self.now)
            self.pods[pod.name] = pod
            self._move(pod, None, "pending")
            self.gpus += g.worker.gpus
            if ready:
                self.become_ready(pod)
            else:
                self.schedule(self.now + self.startup, READY, pod)
        self.peak[name] = max(self.peak[name], len(self.group_pods(name)))
        if not ready:
            self._direction(name, +1)

    def become_ready(self, pod: Pod) -> None:
        if self.pods.get(pod.name) is pod and pod.ready_at is None:
            pod.ready_at = self.now
            self._move(pod, "pending", "unclaimed")
            pod.free_cpus, pod.free_memory, pod.free_gpus = (
                pod.group.worker.cpus,
                pod.group.worker.memory_mb,
                pod.group.worker.gpus,
            )

    def shrink(self, name: str, pods: Iterable[Pod]) -> int:
        """Delete pods at once (no drain); jobs on them are killed and go back to the queue. Returns the kills."""
        killed = 0
        for pod in pods:
            if self.pods.get(pod.name) is not pod:
                continue
            for job in list(pod.jobs.values()):
                assert job.start is not None
                self.lost_core_s += (self.now - job.start) * self.shapes[job.shape].cpus
                self._release(job)
                job.attempt += 1
                job.start = None
                self.enqueue(job)
                killed += 1
            del self.pods[pod.name]
            self._move(pod, "unclaimed" if pod.running else "pending", None)
            self.gpus -= pod.group.worker.gpus
        self.kills += killed
        self._direction(name, -1)
        return killed

    def _direction(self, name: str, sign: int) -> None:
        self.steps.append((self.now, name, sign))
        if self.last_direction.get(name, sign) != sign:
            self.changes[name] += 1
        self.last_direction[name] = sign

    # -- jobs
    def enqueue(self, job: Job) -> None:
        if self.idle:
            last = next(reversed(self.idle.values()))
            if (job.submit, job.id) < (last.submit, last.id):
                self.idle_sorted = False  # a killed job keeps its place in the queue (its QDate)
        self.idle[job.id] = job
        self.idle_count[job.shape] += 1

    def _release(self, job: Job) -> None:
        pod, shape = job.pod, self.shapes[job.shape]
        assert pod is not None
        del pod.jobs[job.id]
        pod.free_cpus += shape.cpus
        pod.free_memory += shape.memory_mb
        pod.free_gpus += shape.gpus
        self.cores_in[pod.group.name]["busy"] -= shape.cpus
        self.busy_gpus -= shape.gpus
        if not pod.jobs:
            self._move(pod, "claimed", "unclaimed")
        self.running_jobs -= 1
        job.pod = None

    def _start(self, job: Job, pod: Pod) -> None:
        shape = self.shapes[job.shape]
        del self.idle[job.id]
        self.idle_count[job.shape] -= 1
        if not pod.jobs:
            self._move(pod, "unclaimed", "claimed")
        pod.jobs[job.id] = job
        pod.free_cpus -= shape.cpus
        pod.free_memory -= shape.memory_mb
        pod.free_gpus -= shape.gpus
        self.cores_in[pod.group.name]["busy"] += shape.cpus
        self.busy_gpus += shape.gpus
        self.running_jobs += 1
        job.pod, job.start, job.group = pod, self.now, pod.group.name
        self.schedule(self.now + job.duration, DONE, (job, job.attempt))

    def finish(self, job: Job, attempt: int) -> None:
        if job.attempt == attempt and job.pod is not None:
            self._release(job)
            job.end = self.now

    def negotiate(self) -> int:
        """One negotiation cycle, as the rendered policy makes HTCondor's negotiator run it: the idle jobs in queue
        order; each request goes to the matching slot (its group matches the job, its free room, as its ad showed
        at the start of the cycle, covers the request) that ranks highest by NEGOTIATOR_PRE_JOB_RANK, then
        NEGOTIATOR_POST_JOB_RANK, then the collector's order; a matched slot leaves the cycle. With
        NEGOTIATOR_DEPTH_FIRST the negotiator counts on the schedd to put jobsInSlot = min(free cores / request,
        free memory / request) requests of the autocluster into it (CLAIM_PARTITIONABLE_LEFTOVERS) and skips that
        many: the schedd starts those that really fit (GPUs included), the others wait for the next cycle. An
        autocluster that matches nothing is not tried again that cycle."""
        if not self.idle:
            return 0
        if not self.idle_sorted:
            self.idle = dict(sorted(self.idle.items(), key=lambda kv: (kv[1].submit, kv[0])))
            self.idle_sorted = True
        queue = list(self.idle.values())
        by_shape: list[list[Job]] = [[] for _ in self.shapes]
        for job in queue:
            by_shape[job.shape].append(job)
        cursor = [0] * len(self.shapes)
        slots = sorted((p for p in self.pods.values() if p.running), key=lambda p: p.name)
        matched: set[str] = set()
        ranked: dict[int, list[Pod]] = {}
        rejected: set[int] = set()
        waiting = {s for s, jobs in enumerate(by_shape) if jobs}
        started = 0
        for job in queue:
            s = job.shape
            if s in rejected or by_shape[s][cursor[s] : cursor[s] + 1] != [job]:
                continue  # started or skipped as part of an earlier request of its autocluster
            if s not in ranked or self.policy.per_request:  # the match list of the autocluster: sorted once
                ranked[s] = self.policy.order(self, s, slots, job)
            pod = next((p for p in ranked[s] if p.name not in matched), None)
            if pod is None:
                rejected.add(s)
                if rejected >= waiting:
                    break
                continue
            matched.add(pod.name)
            shape = self.shapes[s]
            count = self.policy.jobs_per_match(pod, shape)
            for other in by_shape[s][cursor[s] : cursor[s] + count]:
                if self.policy.admits(self, s, pod):
                    self._start(other, pod)
                    started += 1
            cursor[s] += count
        return started

    # -- what the autoscaler reads
    def workers(self) -> list[Worker]:
        """Every pod as Kubernetes and the collector show it to the controller."""
        return [
            Worker(
                p.name,
                p.group.name,
                "running" if p.running else "pending",
                p.created,
                claimed=bool(p.jobs),
                free=Resources(p.free_cpus, p.free_memory, p.free_gpus) if p.running else Resources(),
                jobs=len(p.jobs),
            )
            for p in self.pods.values()
        ]

    def autoclusters(self) -> list[Autocluster]:
        """The idle queue as `Schedd.query(opts=QueryOpt.AutoCluster)` returns it: one entry per shape."""
        return [Autocluster(s + 1, n, self.shapes[s].request, self.ads[s]) for s, n in enumerate(self.idle_count) if n]

    def settled(self, floor: Callable[[Group], int]) -> bool:
        """Nothing queued or running, no pod starting, every group at its floor."""
        return (
            not self.idle
            and not self.running_jobs
            and all(p.running for p in self.pods.values())
            and all(len(self.group_pods(n)) == floor(g) for n, g in self.groups.items())
        )


DONE, READY, ARRIVE, NEGOTIATE, AUTOSCALE = range(5)
"""Event kinds, in the order they are handled at the same instant."""


# ---------------------------------------------------------------- policies


class Policy(Protocol):
    label: str
    period: float

    def floor(self, g: Group) -> int: ...

    def act(self, pool: Pool) -> None: ...


class Ours:
    """The planner as the controller runs it: read, plan, apply, carry the memory."""

    label = "ours"

    def __init__(
        self, groups: Sequence[Group], interval: float | None = None, settings: Settings | None = None
    ) -> None:
        self.groups = tuple(groups)
        self.by_name = {g.name: g for g in groups}
        self.period = DEFAULT_INTERVAL if interval is None else interval
        self.settings = settings or Settings(scale_down_delay=DEFAULT_DELAY)
        self.memory = Memory()
        self.calls = 0
        self.seconds = 0.0
        self.anomalies: list[str] = []

    def floor(self, g: Group) -> int:
        return self.by_name[g.name].min_workers

    def may_shrink(self, group: str, now: float) -> bool:
        return True

    def act(self, pool: Pool) -> None:
        workers, demand = pool.workers(), pool.autoclusters()
        started = time.perf_counter()
        result = plan(self.groups, workers, demand, pool.now, self.memory, self.settings)
        self.seconds += time.perf_counter() - started
        self.calls += 1
        self.memory = result.memory
        for d in result.decisions.values():
            if d.desired > d.current:
                pool.grow(d.group, d.desired - d.current)
            elif d.desired < d.current and self.may_shrink(d.group, pool.now):
                named = [pool.pods[n] for n in d.remove if n in pool.pods]
                if len(named) != d.current - d.desired:
                    self.anomalies.append(f"t={pool.now:.0f} {d.group}: {d.current}->{d.desired} names {d.remove}")
                pool.shrink(d.group, named)


class Holding(Ours):
    """Not a policy one would run: ours, except that one group's scale-in is not applied between two instants (its
    workers are kept). Run over the gap of a turn pair of ours (a scale-in followed by a scale-up), it shows what it
    costs ours to turn two times fewer there."""

    def __init__(self, groups: Sequence[Group], interval: float, settings: Settings, hold: Hold) -> None:
        super().__init__(groups, interval, settings)
        self.hold = hold

    def may_shrink(self, group: str, now: float) -> bool:
        return not (group == self.hold.group and self.hold.start <= now <= self.hold.end)


@dataclass(frozen=True)
class Hold:
    group: str
    start: float
    """When the group began to shrink after growing."""
    end: float
    """When it ended growing again."""


def turn_pairs(outcome: Outcome) -> list[Hold]:
    """Each scale-in of a group that a scale-up follows (two direction changes): from the first removal to the last
    addition of that scale-up, while the jobs it was for arrive."""
    pairs = []
    for name in sorted({g for _, g, _ in outcome.steps}):
        runs: list[list[float]] = []  # [start, end, sign] of each run of same-direction steps
        for t, g, sign in outcome.steps:
            if g != name:
                continue
            if runs and runs[-1][2] == sign:
                runs[-1][1] = t
            else:
                runs.append([t, t, sign])
        pairs += [Hold(name, a[0], b[1]) for a, b in itertools.pairwise(runs) if a[2] < 0 < b[2]]
    return pairs


class Ceiling:
    """Not a policy one would run: every group held at its max, Running from the start. Its waits are the lowest
    any policy can reach within the same ceilings and negotiator, the bound the wait goal is read against."""

    label = "ceiling"
    period = 60.0

    def floor(self, g: Group) -> int:
        return g.max_workers

    def act(self, pool: Pool) -> None:
        pass


class Reactive:
    """Not a policy one would run either: the fastest any policy can react that only learns of jobs from its planning
    cycles (every `interval` s, like ours): a group goes to its max at the first cycle that sees idle jobs it matches,
    and stays there until everything has run. Its waits bound those of every reactive policy: it is the ceiling
    started late by the time it takes to see the first jobs and start the pods."""

    label = "reactive"

    def __init__(self, groups: Sequence[Group], interval: float) -> None:
        self.by_name = {g.name: g for g in groups}
        self.period = interval

    def floor(self, g: Group) -> int:
        return self.by_name[g.name].min_workers

    def act(self, pool: Pool) -> None:
        wanted = {name for s, n in enumerate(pool.idle_count) if n for name in pool.eligible[s]}
        for name, g in pool.groups.items():
            count = len(pool.group_pods(name))
            if name in wanted and count < g.max_workers:
                pool.grow(name, g.max_workers - count)
        if not pool.idle and not pool.running_jobs and all(p.running for p in pool.pods.values()):
            for name, g in self.by_name.items():
                pods = pool.group_pods(name)
                if len(pods) > g.min_workers:
                    pool.shrink(name, pods[g.min_workers :])


def log2_age(now: float, since: float) -> int:
    """Kubernetes' logarithmic rank of a timestamp: log2 of the age in nanoseconds, -1 for no age."""
    age = (now - since) * 1e9
    return int(math.log2(age)) if age > 0 else -1


class Hpa:
    """The reference: an HPA per group on the busy-slot fraction, and the ReplicaSet's choice of pods on scale-in."""

    label = "ref"
    period = HPA_PERIOD

    def __init__(self, groups: Sequence[Group], seed: int = 0) -> None:
        self.groups = tuple(groups)
        self.rng = random.Random(seed)
        self.history: dict[str, list[tuple[float, int]]] = {g.name: [] for g in groups}

    def floor(self, g: Group) -> int:
        return max(1, g.min_workers)

    @staticmethod
    def recommend(pods: Sequence[Pod], current: int) -> int:
        """Kubernetes' GetObjectMetricReplicas: keep within the tolerance, else scale the ready pods by the ratio."""
        running = [p for p in pods if p.running]
        total = sum(p.group.worker.cpus for p in running)
        if not total:
            return current  # no metric at all: the HPA keeps the replicas
        busy = sum(p.group.worker.cpus - p.free_cpus for p in running)
        ratio = busy / total / HPA_TARGET
        if abs(ratio - 1) <= HPA_TOLERANCE:
            return current
        return math.ceil(ratio * len(running) - 1e-9)

    def stabilise(self, name: str, recommendation: int, current: int, now: float) -> int:
        """Scale-up window 0 s, scale-down window 300 s: the highest recommendation of the window wins."""
        window = [(t, r) for t, r in self.history[name] if t > now - HPA_WINDOW]
        window.append((now, recommendation))
        self.history[name] = window
        down = max(r for _, r in window)
        return min(max(current, recommendation), down)

    def victims(self, pods: Sequence[Pod], count: int, now: float) -> list[Pod]:
        """ReplicaSet scale-in order (ActivePodsWithRanks): Pending first, then most recently ready, then newest,
        ages in log2 buckets; equal pods in arbitrary order."""

        def rank(p: Pod) -> tuple[int, int, int, float]:
            ready = log2_age(now, p.ready_at) if p.ready_at is not None else -1
            return (p.running, ready, log2_age(now, p.created), self.rng.random())

        return sorted(pods, key=rank)[:count]

    def act(self, pool: Pool) -> None:
        for g in self.groups:
            pods = pool.group_pods(g.name)
            current = len(pods)
            desired = self.stabilise(g.name, self.recommend(pods, current), current, pool.now)
            desired = min(desired, max(current + 4, 2 * current))  # default scale-up policies
            desired = min(max(desired, self.floor(g)), g.max_workers)
            if desired > current:
                pool.grow(g.name, desired - current)
            elif desired < current:
                pool.shrink(g.name, self.victims(pods, current - desired, pool.now))


# ---------------------------------------------------------------- simulation


@dataclass
class Outcome:
    label: str
    waits: list[float]
    never_started: int
    idle_s: dict[tuple[str, str], float]
    """Idle core-seconds by (group, why), up to `end`."""
    idle_gpu_s: float
    lost_core_s: float
    kills: int
    changes: dict[str, int]
    end: float
    floor: dict[str, float]
    """Cores each group keeps once settled (its floor)."""
    floor_gpus: float
    settled: bool
    peak: dict[str, int]
    last_done: float
    wall: float
    runs: list[tuple[float, float, int, str]] = field(default_factory=list)
    """(start, end, shape, group) of every job's final run."""
    steps: list[tuple[float, str, int]] = field(default_factory=list)
    """(time, group, +1 or -1) of every change of a group's replicas."""

    def idle_split(self, horizon: float) -> dict[tuple[str, str], float]:
        """Idle core-hours by (group, why) up to `horizon`: after its end a policy stays at its floor, unclaimed."""
        extra = max(0.0, horizon - self.end)
        return {
            (name, kind): (s + (self.floor[name] * extra if kind == "unclaimed" else 0.0)) / HOUR
            for (name, kind), s in self.idle_s.items()
        }

    def idle_core_hours(self, horizon: float) -> float:
        return sum(self.idle_split(horizon).values())

    def idle_gpu_hours(self, horizon: float) -> float:
        return (self.idle_gpu_s + self.floor_gpus * max(0.0, horizon - self.end)) / HOUR


def simulate(
    trace: Trace,
    policy: Policy,
    groups: Sequence[Group],
    startup: float = 90.0,
    negotiator: float = NEGOTIATOR_PERIOD,
    seed: int = 0,
    limit: float = 7 * 24 * HOUR,
    placement: Negotiator | None = None,
) -> Outcome:
    """Replay `trace` under `policy` until everything ran and the pool is back at its floor (or `limit` past the
    last arrival: a backlog the policy never serves)."""
    wall = time.perf_counter()
    pool = Pool(groups, trace.shapes, startup, seed, placement)
    for g in groups:
        pool.grow(g.name, policy.floor(g), ready=True)
    jobs = [Job(i, a.shape, a.submit, a.duration) for i, a in enumerate(trace.arrivals)]
    for job in jobs:
        pool.schedule(job.submit, ARRIVE, job)
    pool.schedule(0.0, NEGOTIATE)
    pool.schedule(0.0, AUTOSCALE)
    pending_arrivals, settled = len(jobs), False
    while (event := pool.next_event()) is not None:
        at, kind, payload = event
        if kind == DONE:
            job, attempt = payload  # type: ignore[misc]
            pool.finish(job, attempt)
        elif kind == READY:
            pool.become_ready(payload)  # type: ignore[arg-type]
        elif kind == ARRIVE:
            pool.enqueue(payload)  # type: ignore[arg-type]
            pending_arrivals -= 1
        elif kind == NEGOTIATE:
            pool.negotiate()
            pool.schedule(at + negotiator, NEGOTIATE)
        else:
            policy.act(pool)
            if not pending_arrivals and pool.settled(policy.floor):
                settled = True
                break
            if at > trace.end + limit:
                break
            pool.schedule(at + policy.period, AUTOSCALE)
    started = [j for j in jobs if j.start is not None]
    return Outcome(
        label=policy.label,
        waits=[j.start - j.submit for j in started],  # type: ignore[operator]
        never_started=len(jobs) - len(started),
        idle_s=dict(pool.idle_s),
        idle_gpu_s=pool.idle_gpu_s,
        lost_core_s=pool.lost_core_s,
        kills=pool.kills,
        changes=dict(pool.changes),
        end=pool.now,
        floor={name: c["pending"] + c["unclaimed"] + c["claimed"] for name, c in pool.cores_in.items()},
        floor_gpus=pool.gpus,
        settled=settled,
        peak=dict(pool.peak),
        last_done=max((j.end for j in jobs if j.end is not None), default=0.0),
        wall=time.perf_counter() - wall,
        runs=[(j.start, j.end, j.shape, j.group) for j in jobs if j.start is not None and j.end is not None],
        steps=list(pool.steps),
    )


# ---------------------------------------------------------------- figures


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def compare(ours: float, ref: float) -> str:
    """ours/ref, labelled `ratio` only when it is a positive number (the smoke test reads those)."""
    if ours > 0 and ref > 0:
        return f"ratio {ours / ref:.3g}"
    if ref > 0:
        return "ours/ref 0 (none for ours)"
    return "ours/ref undefined (ref is 0)" if ours > 0 else "ours/ref -- (both 0)"


@dataclass(frozen=True)
class Row:
    name: str
    ours: float
    ref: float
    unit: str
    digits: int


def rows(ours: Outcome, ref: Outcome) -> list[Row]:
    horizon = max(ours.end, ref.end)
    return [
        Row(
            "median wait",
            statistics.median(ours.waits or [math.nan]),
            statistics.median(ref.waits or [math.nan]),
            "s",
            0,
        ),
        Row("p95 wait", percentile(ours.waits, 95), percentile(ref.waits, 95), "s", 0),
        Row("idle core-hours", ours.idle_core_hours(horizon), ref.idle_core_hours(horizon), "h", 1),
        Row("killed", ours.kills, ref.kills, "", 0),
        Row("direction changes", sum(ours.changes.values()), sum(ref.changes.values()), "", 0),
    ]


def describe(o: Outcome, horizon: float) -> str:
    peak = ", ".join(f"{g} {n}" for g, n in o.peak.items())
    changes = " + ".join(f"{g} {n}" for g, n in o.changes.items())
    split = o.idle_split(horizon)
    idle = "; ".join(
        f"{name} " + ", ".join(f"{kind} {split[name, kind]:.1f}" for kind in IDLE_KINDS) for name in o.peak
    )
    return (
        f"  {o.label}: peak workers {peak}; last job done at {o.last_done / HOUR:.2f} h, at the floor from "
        f"{o.end / HOUR:.2f} h{'' if o.settled else ' (NOT settled)'}; direction changes {changes}; "
        f"never started {o.never_started}; core-hours lost to kills {o.lost_core_s / HOUR:.1f}; "
        f"idle GPU-hours {o.idle_gpu_hours(horizon):.1f}; simulated in {o.wall:.1f} s\n"
        f"    idle core-hours by group and why: {idle}"
    )


def idle_floor(outcome: Outcome, trace: Trace, groups: Sequence[Group]) -> float:
    """Idle core-hours if the outcome's jobs, started when they were, sat at every instant on as few workers of their
    group as their load needs (as if jobs could move between workers), never fewer than the group's floor: what no
    policy with these worker sizes goes below for these start times."""
    total = 0.0
    for g in groups:
        size = (g.worker.cpus, g.worker.memory_mb, g.worker.gpus)
        events = sorted(
            (
                (t, sign, trace.shapes[s])
                for start, end, s, name in outcome.runs
                if name == g.name
                for t, sign in ((start, 1), (end, -1))
            ),
            key=lambda e: (e[0], e[1]),
        )
        busy, last = [0.0, 0.0, 0.0], 0.0
        for t, sign, shape in events:
            need = max([math.ceil(b / z - 1e-9) for b, z in zip(busy, size, strict=True) if z > 0] + [g.min_workers])
            total += (need * g.worker.cpus - busy[0]) * (t - last)
            busy = [b + sign * r for b, r in zip(busy, (shape.cpus, shape.memory_mb, shape.gpus), strict=True)]
            last = t
    return total / HOUR


def least_turns(outcome: Outcome, groups: Sequence[Group]) -> int:
    """Direction changes no policy avoids: a group that must grow above its floor for the trace's jobs and is back at
    its floor at the end turns at least once."""
    used = {name for *_, name in outcome.runs}
    return sum(1 for g in groups if g.name in used and g.min_workers == 0)


@dataclass(frozen=True)
class Bounds:
    """What no policy beats on a trace, from runs in the same simulation."""

    ceiling: Outcome
    reactive: Outcome
    clairvoyant: Outcome
    """Ours with a negotiator that knows every job's end time."""
    idle: float
    """Idle floor of our groups for the ceiling's start times, core-hours."""
    turns: int
    held: tuple[Hold, Outcome] | None = None
    """Where ours turns more than the reference: the turn pair of ours that costs the least idle to save (ours,
    keeping that group's workers through its gap), and that run."""


def report(trace: Trace, ours: Outcome, ref: Outcome, planner: Ours, bounds: Bounds, startup: float) -> dict[str, bool]:
    """Print one trace's figures and a line of goals; return which goals hold."""
    horizon = max(ours.end, ref.end)
    print(f"[{trace.name}] {trace.about}")
    print(describe(ours, horizon))
    mean_ms = planner.seconds / max(planner.calls, 1) * 1000
    print(f"    {planner.calls} plan() calls, {mean_ms:.2f} ms each on average; anomalies {len(planner.anomalies)}")
    for line in planner.anomalies[:5]:
        print(f"    anomaly: {line}")
    print(describe(ref, horizon))
    figures = rows(ours, ref)
    for row in figures:
        tail = f"killed ours/ref: {row.ours:.0f}/{row.ref:.0f}" if row.name == "killed" else compare(row.ours, row.ref)
        unit = f" {row.unit}" if row.unit else ""
        ours_text, ref_text = f"{row.ours:>9.{row.digits}f}{unit:<2}", f"{row.ref:>9.{row.digits}f}{unit:<2}"
        print(f"  {row.name:<18} ours {ours_text}  ref {ref_text}  {tail}")
    ceiling, reactive = bounds.ceiling, bounds.reactive
    c_median, c_p95 = statistics.median(ceiling.waits or [math.nan]), percentile(ceiling.waits, 95)
    r_median, r_p95 = statistics.median(reactive.waits or [math.nan]), percentile(reactive.waits, 95)
    print(
        f"  bounds: ceiling (every group at max, Running from the start) waits median {c_median:.0f} s, p95 "
        f"{c_p95:.0f} s; reactive (a group to max at the first cycle that sees its jobs) median {r_median:.0f} s, p95 "
        f"{r_p95:.0f} s; idle floor (the ceiling's jobs on as few workers as their load needs) {bounds.idle:.1f} h; "
        f"least direction changes {bounds.turns}; ours with clairvoyant placement (the negotiator knows when jobs "
        f"end) idles {bounds.clairvoyant.idle_core_hours(horizon):.1f} h"
    )
    held_idle = math.nan
    if bounds.held is not None:
        hold, run = bounds.held
        held_idle = run.idle_core_hours(max(run.end, ref.end))
        print(
            f"  turning less: of ours' {len(turn_pairs(ours))} scale-ins that a scale-up follows, the cheapest to skip "
            f"(keeping {hold.group}'s workers from {hold.start / HOUR:.2f} h to {hold.end / HOUR:.2f} h) makes ours "
            f"turn {sum(run.changes.values())} times and idle {held_idle:.1f} h, waits median "
            f"{statistics.median(run.waits or [math.nan]):.0f} s, p95 {percentile(run.waits, 95):.0f} s"
        )
    by = {r.name: r for r in figures}
    ratio = IDLE_GOAL.get(trace.name, 0.35)
    median_goal, p95_goal = c_median + startup, c_p95 + startup + planner.period
    idle_goal, turns_goal = ratio * by["idle core-hours"].ref, by["direction changes"].ref
    goals = {
        "killed 0": (by["killed"].ours == 0, ""),
        f"idle <= {ratio:g} x ref ({idle_goal:.1f} h)": (
            by["idle core-hours"].ours <= idle_goal,
            f"unreachable: the idle floor, {bounds.idle:.1f} h, is above it"
            if bounds.idle > idle_goal
            else "nor with clairvoyant placement: the idle cores are kept by jobs that cannot move"
            if bounds.clairvoyant.idle_core_hours(horizon) > idle_goal
            else "",
        ),
        f"median wait <= ceiling + start-up ({median_goal:.0f} s)": (
            by["median wait"].ours <= median_goal,
            f"unreachable: the reactive bound waits {r_median:.0f} s" if r_median > median_goal else "",
        ),
        f"p95 wait <= ceiling + start-up + interval ({p95_goal:.0f} s)": (
            by["p95 wait"].ours <= p95_goal,
            f"unreachable: the reactive bound waits {r_p95:.0f} s" if r_p95 > p95_goal else "",
        ),
        f"direction changes <= ref ({turns_goal:.0f})": (
            by["direction changes"].ours <= turns_goal,
            f"unreachable: no policy that returns to its floor turns fewer than {bounds.turns} times"
            if bounds.turns > turns_goal
            else f"not within the idle goal for this planner: skipping its cheapest turn pair idles {held_idle:.1f} h"
            if held_idle > idle_goal
            else "",
        ),
    }
    verdicts = [
        f"{name}: " + ("met" if ok else "NOT met" + (f" ({why})" if why else "")) for name, (ok, why) in goals.items()
    ]
    print(f"  goals [{trace.name}]: " + "; ".join(verdicts))
    return {name: ok for name, (ok, _) in goals.items()}


def traces(quick: bool) -> list[Trace]:
    if quick:
        return [burst(jobs=200), day(hours=3, cpu_per_hour=30, gpu_per_hour=1), trickle(hours=1)]
    return [burst(), day(), trickle(), waves()]


def main(argv: list[str] | None = None) -> int:
    top = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    top.add_argument("--startup", type=float, default=90.0, help="seconds from Pending to Running (default 90)")
    top.add_argument("--interval", type=float, default=DEFAULT_INTERVAL, help=f"cycle ({DEFAULT_INTERVAL:g} s)")
    top.add_argument("--delay", type=float, default=DEFAULT_DELAY, help=f"scale-down delay ({DEFAULT_DELAY:g})")
    top.add_argument(
        "--min-workers",
        type=int,
        default=0,
        help="ours' floor for every group (default 0, the facility's default; the HPA cannot go below 1)",
    )
    top.add_argument("--trace", action="append", help="run only these traces (burst, day, trickle, waves)")
    top.add_argument("--quick", action="store_true", help="tiny traces for the smoke test")
    args = top.parse_args(argv)
    groups = facility_groups()
    ours_groups = tuple(replace(g, min_workers=args.min_workers) for g in groups)
    settings = Settings(scale_down_delay=args.delay)
    negotiator = rendered_negotiator()
    shape = ", ".join(
        f"{g.name} {g.worker.cpus:g}c/{g.worker.memory_mb / 1000:g}GB/{g.worker.gpus:g}GPU "
        f"x{o.min_workers}(ours)/{g.min_workers}(ref)-{g.max_workers}"
        for g, o in zip(groups, ours_groups, strict=True)
    )
    print(
        f"sim_autoscaler: discrete-event replay, same traces and negotiator (a cycle every {NEGOTIATOR_PERIOD:g} s) "
        f"for both; ours = autoscaler.planner.plan every {args.interval:g} s, scale-down delay {args.delay:g} s; "
        f"ref = HPA on busy-slot fraction (target {HPA_TARGET}, tolerance {HPA_TOLERANCE}, sync {HPA_PERIOD:g} s, "
        f"scale-down window {HPA_WINDOW:g} s, ReplicaSet pod choice, no drain); pod start-up {args.startup:g} s; "
        f"groups {shape}; idle core-hours count Pending pods' cores (paid for); ours/ref from the same run"
    )
    print(f"packing policy modelled (the central manager's rendered config read by htcondor2): {negotiator.describe()}")
    starts = "; ".join(f"{g.name} {g.machine_ad.lookup('Requirements')}" for g in groups)
    print(f"START of each group's slots (matched on the slot's free room at every match and claim): {starts}")
    met: dict[str, dict[str, bool]] = {}
    for trace in traces(args.quick):
        if args.trace and trace.name not in args.trace:
            continue
        ours_policy = Ours(ours_groups, args.interval, settings)
        ours = simulate(trace, ours_policy, groups, args.startup)
        ref = simulate(trace, Hpa(groups), groups, args.startup)
        ceiling = simulate(trace, Ceiling(), groups, args.startup)
        reactive = simulate(trace, Reactive(ours_groups, args.interval), groups, args.startup)
        knowing = Ours(ours_groups, args.interval, settings)
        clairvoyant = simulate(trace, knowing, groups, args.startup, placement=Clairvoyant(negotiator.params))
        floor, turns = idle_floor(ceiling, trace, ours_groups), least_turns(ceiling, ours_groups)
        held = None
        if sum(ours.changes.values()) > max(sum(ref.changes.values()), turns):
            runs = [
                (hold, simulate(trace, Holding(ours_groups, args.interval, settings, hold), groups, args.startup))
                for hold in turn_pairs(ours)
            ]
            fewer = [(h, r) for h, r in runs if sum(r.changes.values()) < sum(ours.changes.values())]
            held = min(fewer, key=lambda hr: hr[1].idle_core_hours(max(hr[1].end, ref.end)), default=None)
        bounds = Bounds(ceiling, reactive, clairvoyant, floor, turns, held)
        met[trace.name] = report(trace, ours, ref, ours_policy, bounds, args.startup)
    summary = ", ".join(f"{name} {sum(g.values())}/{len(g)}" for name, g in met.items())
    print(f"goals met per trace: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
