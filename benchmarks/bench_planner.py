"""One planning cycle for 100,000 idle jobs, as a ratio to naive job-by-job matching.

The queue is realistic: 100,000 idle jobs from a few dozen users in a few hundred autoclusters
(the shapes HTCondor aggregates: cores, memory, GPUs, requirements, offload opt-in) across six
worker groups (small and large CPU, high-memory, two GPU models, an HPC gateway). `plan()` is
timed as the autoscaler runs it each cycle: one symmetric ClassAd match per autocluster and
group. The naive baseline does what a job-by-job autoscaler would: one match per job and
group, then assigns each job to the first matching group with room. Job ads are built before
timing for both; only matching and deciding are timed. Nothing is asserted about time.

    python benchmarks/bench_planner.py [--jobs N] [--quick]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import classad2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autoscaler.condor import machine_ad  # noqa: E402
from autoscaler.model import Autocluster, Group, Resources, Settings  # noqa: E402
from autoscaler.planner import plan  # noqa: E402
from components.batch.config import Autoscaler as AutoscalerConfig  # noqa: E402

REQUIREMENTS = (
    '(TARGET.Arch == "X86_64") && (TARGET.OpSys == "LINUX") && (TARGET.Disk >= RequestDisk) && '
    "(TARGET.Memory >= RequestMemory) && (TARGET.Cpus >= RequestCpus) && (TARGET.GPUs >= RequestGPUs)"
)


def groups() -> list[Group]:
    def g(name: str, cpus: int, mem: int, gpus: int, start: str, max_workers: int, pref: int, local=True) -> Group:
        worker = Resources(cpus, mem, gpus)
        return Group(name, worker, machine_ad(name, worker, start), 0, max_workers, pref, local)

    cpu_only = "RequestGPUs =?= 0 || RequestGPUs =?= undefined"
    return [
        g("cpu-small", 8, 30_000, 0, cpu_only, 100, 0),
        g("cpu-large", 32, 120_000, 0, cpu_only, 40, 1),
        g("highmem", 32, 480_000, 0, f"({cpu_only}) && RequestMemory > 8000", 10, 2),
        g("gpu-a100", 16, 60_000, 1, "RequestGPUs > 0", 8, 10),
        g("gpu-t4", 8, 30_000, 1, 'RequestGPUs > 0 && (GPUsModel =?= undefined || GPUsModel =!= "A100")', 8, 11),
        g("leonardo", 32, 480_000, 4, "WantOffload =?= true", 200, 100, local=False),
    ]


def job_ad(cpus: int, mem: int, gpus: int, user: str, offload: bool) -> classad2.ClassAd:
    ad = classad2.ClassAd(
        {
            "MyType": "Job",
            "RequestCpus": cpus,
            "RequestMemory": mem,
            "RequestGPUs": gpus,
            "RequestDisk": 2_000_000,
            "Owner": user,
            "AcctGroup": f"cms.{user}",
            "WantOffload": offload,
        }
    )
    ad["Requirements"] = classad2.ExprTree(REQUIREMENTS)
    return ad


def queue(jobs: int, seed: int = 7) -> list[tuple[int, int, classad2.ClassAd, Resources]]:
    """(autocluster id, idle jobs, ad, request): users submit a few shapes each, heavy-tailed."""
    rng = random.Random(seed)
    shapes = [(1, 2000, 0), (1, 4000, 0), (2, 4000, 0), (4, 8000, 0), (8, 16000, 0), (4, 32000, 0), (4, 16000, 1)]
    clusters = []
    for user in (f"user{i:02d}" for i in range(40)):
        for _ in range(rng.randint(2, 10)):
            cpus, mem, gpus = rng.choice(shapes)
            offload = rng.random() < 0.3
            clusters.append((cpus, mem, gpus, user, offload))
    weights = [rng.paretovariate(1.2) for _ in clusters]
    total = sum(weights)
    counts = [max(1, int(jobs * w / total)) for w in weights]
    counts[0] += jobs - sum(counts)
    return [
        (index, count, job_ad(cpus, mem, gpus, user, offload), Resources(cpus, mem, gpus))
        for index, ((cpus, mem, gpus, user, offload), count) in enumerate(zip(clusters, counts, strict=True))
    ]


def naive(job_ads: list[tuple[classad2.ClassAd, Resources]], pool: list[Group]) -> dict[str, int]:
    """Job by job: match each job against every group, place it in the first with room."""
    ordered = sorted(pool, key=lambda g: (g.preference, g.name))
    capacity = {g.name: g.worker.times(g.max_workers) for g in pool}
    placed = {g.name: 0 for g in pool}
    for ad, request in job_ads:
        for g in ordered:
            if ad.symmetricMatch(g.machine_ad) and capacity[g.name].covers(request):
                capacity[g.name] -= request
                placed[g.name] += 1
                break
    return placed


def timed(fn, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    top = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    top.add_argument("--jobs", type=int, default=100_000)
    top.add_argument("--quick", action="store_true", help="smoke test: 2,000 jobs, one repetition")
    args = top.parse_args()
    jobs, repeat = (2_000, 1) if args.quick else (args.jobs, 3)
    pool = groups()
    clusters = queue(jobs)
    demand = [Autocluster(i, n, req, ad) for i, n, ad, req in clusters]
    job_ads = [(ad, req) for _, n, ad, req in clusters for _ in range(n)]
    print(
        f"bench_planner: one plan() over {len(demand)} autoclusters ({sum(a.idle for a in demand)} idle jobs, "
        f"{len(pool)} worker groups) vs naive job-by-job matching and placement of the same {len(job_ads)} jobs; "
        f"best and median of {repeat} (classad2 {classad2.version()})"
    )
    settings = Settings(scale_down_delay=float(AutoscalerConfig().scale_down_delay_seconds))
    ours = timed(lambda: plan(pool, [], demand, 0.0, None, settings), repeat)
    result = plan(pool, [], demand, 0.0, None, settings)
    baseline = timed(lambda: naive(job_ads, pool), repeat)
    print(f"  plan()   best {min(ours) * 1e3:9.2f} ms  median {statistics.median(ours) * 1e3:9.2f} ms")
    print(f"  naive    best {min(baseline) * 1e3:9.2f} ms  median {statistics.median(baseline) * 1e3:9.2f} ms")
    print(
        f"  ratio naive/plan: {statistics.median(baseline) / statistics.median(ours):.1f} (median)  "
        f"{min(baseline) / min(ours):.1f} (best)"
    )
    wanted = ", ".join(f"{n}={d.desired}" for n, d in result.decisions.items())
    print(f"  plan: desired workers {wanted}; unmatched {sum(n for _, n in result.unmatched)} jobs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
