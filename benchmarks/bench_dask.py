"""Dask Gateway on the local backend: time to a running cluster with N workers, and the throughput
of a columnar read through the cache with 1, 2 and 4 workers, as ratios to 1 worker.

One run starts the whole site of tests/test_dask_e2e.py (issuer, hub, origin, XCache and a real
dask-gateway-server with the rendered gateway config, local-process backend), logs a /cms user in
and works as that user's notebook: `GatewayCluster()` with the notebooks' Dask config, workers
getting the user's token through the client preload.

- startup: from asking for a cluster to N workers connected (a new cluster each time, one
  thread per worker), the median of the repetitions;
- read: `FILES` ROOT files written by uproot on the origin; a warm-up pass brings them into the
  cache, then each timed pass has every file's branches read as arrays (uproot over root://
  through the cache, with the user's token), one task per file; bytes are the arrays' in memory.

Workers are local processes on this machine (2 cores here), so ratios above the core count are
not expected. Prints figures only; nothing is asserted about time.

    python benchmarks/bench_dask.py [--files N] [--events N] [--repeat K] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the harness lives with the tests

import numpy as np  # noqa: E402
import uproot  # noqa: E402
from dask_gateway import GatewayCluster  # noqa: E402
from support.dask_site import run_site  # noqa: E402
from support.dask_tasks import read_columns  # noqa: E402
from support.xrootd import Origin, scratch_dir  # noqa: E402

BRANCHES = ("pt", "eta", "phi", "mass")
LIMITS = {"cores": 16, "memoryGib": 40, "workersPerCluster": 4, "clustersPerUser": 2}


def write_files(origin: Origin, files: int, events: int) -> list[str]:
    paths = []
    rng = np.random.default_rng(4)
    for index in range(files):
        local = origin.root.parent / f"bench-{index}.root"
        with uproot.recreate(local) as out:
            out["Events"] = {name: rng.normal(size=events) for name in BRANCHES}
        paths.append(origin.add_file(f"mc/bench/file-{index}.root", local.read_bytes()))
    return paths


def startup(workers: int) -> tuple[float, GatewayCluster]:
    start = time.perf_counter()
    cluster = GatewayCluster()
    cluster.scale(workers)
    client = cluster.get_client()
    client.wait_for_workers(workers, timeout=300)
    return time.perf_counter() - start, cluster


def read_pass(client, urls: list[str]) -> tuple[float, int]:
    start = time.perf_counter()
    sizes = client.gather([client.submit(read_columns, url, BRANCHES, pure=False) for url in urls])
    return time.perf_counter() - start, sum(sizes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small files, 1 and 2 workers, one repetition")
    args = parser.parse_args()
    counts = (1, 2) if args.quick else (1, 2, 4)
    if args.quick:
        args.files, args.events, args.repeat = 4, 50_000, 1
    urls: list[str] = []

    def files(origin: Origin) -> None:
        urls.extend(write_files(origin, args.files, args.events))

    with scratch_dir("bench-dask-") as work, tempfile.TemporaryDirectory() as hub_dir:
        changes = {"limits": {"/cms": LIMITS}}
        with run_site(work, Path(hub_dir), {"alice": ["/cms"]}, changes, files) as site, site.as_notebook("alice"):
            cache = f"root://127.0.0.1:{site.cache.runtime.port}/"
            urls = [cache + path for path in urls]
            print(f"{args.files} files x {args.events} events x {len(BRANCHES)} float64 branches, through XCache")
            startups: dict[int, float] = {}
            rates: dict[int, float] = {}
            for workers in counts:
                times: list[float] = []
                passes: list[tuple[float, int]] = []
                for _ in range(args.repeat):
                    seconds, cluster = startup(workers)
                    times.append(seconds)
                    client = cluster.get_client()
                    read_pass(client, urls)  # warm-up: the cache holds every file afterwards
                    passes += [read_pass(client, urls) for _ in range(args.repeat)]
                    cluster.shutdown()
                best = min(seconds for seconds, _ in passes)
                size = passes[0][1]
                startups[workers] = statistics.median(times)
                rates[workers] = size / best
                print(
                    f"workers={workers}: running after {startups[workers]:.2f} s (median), "
                    f"read {size / 2**20:.0f} MiB of arrays in {best:.2f} s = {rates[workers] / 2**20:.1f} MiB/s"
                )
            for workers in counts[1:]:
                startup_ratio, read_ratio = startups[workers] / startups[1], rates[workers] / rates[1]
                print(f"workers={workers}: startup ratio {startup_ratio:.2f}, throughput ratio {read_ratio:.2f} (to 1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
