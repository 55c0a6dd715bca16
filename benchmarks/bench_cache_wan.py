"""The cache on an analysis workload over an emulated WAN: direct vs through XCache cold and warm, 1 and 4 readers,
and the node-level cache tier; plus the loopback xrdcp comparison of bench_xcache.py. Root only.

Setup (tests/support/wan.py): network namespaces for the remote site (a real origin xrootd behind Toxiproxy, which
adds the round trip), the facility's cache node (the site cache, from the shipped cms-bari stack's rendered config
with token auth, as in tests/test_xcache_xrootd.py) and two worker nodes; `tc tbf` limits the WAN and LAN links. The
workload (benchmarks/agc_workload.py): NanoAOD-like files written by uproot, read by uproot over root:// (fsspec-xrootd)
taking a quarter of the branches, each reader a process on a worker node.

Runs, each on files no earlier run read (a cold run is a true miss):
- 1 reader, set A: direct from the origin over the WAN; through the site cache cold; again warm.
- 4 readers on one node, set B (the files split among them, as an analysis's workers): direct, cold, warm.
- node tier, set A (warm in the site cache): 2 readers on each of 2 nodes, each reading every file, twice; first
  straight from the site cache, then through a node cache on each node (cold at first). Figure: bytes the site sent
  to the nodes with node caches over without.

Bytes come from the kernel's interface counters (tc/veth, headers included), not from the caches: bytes from the
origin = what the origin's namespace sent over the WAN; bytes the analysis needed = the compressed baskets of the
branches read (from the files' own TBranch records). Prints figures; nothing is asserted about them.

    python benchmarks/bench_cache_wan.py [--quick] [--rtt-ms 20] [--wan-gbit 1] [--lan-gbit 10]
        [--block-size 1m] [--prefetch N] [--ram 4g] [--cache-env XRD_X=v ...] [--skip-loopback]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the harness lives with the tests
sys.path.insert(0, str(ROOT / "benchmarks"))

import agc_workload  # noqa: E402
from support.wan import (  # noqa: E402
    ORIGIN_ADDR,
    SITE_ADDR,
    Namespace,
    Rates,
    Wan,
    emulated_wan,
    measure_rate,
    node_addr,
    run_toxiproxy,
    toxiproxy_dir,
)
from support.xrootd import (  # noqa: E402
    Cache,
    TestCA,
    TokenIssuer,
    client_env,
    give_to_server,
    program,
    run_cache,
    run_node_cache,
    run_origin,
    scratch_dir,
    stack_cache_config,
)

from components.cache.xrootd import NodeCache  # noqa: E402
from components.config.facility import FacilityConfig  # noqa: E402

STACK = "cms-bari"
EXPORT = "/store"
SCOPE = "storage.read:/"
TOXIPROXY_PORT = 1095
WORKLOAD = ROOT / "benchmarks" / "agc_workload.py"


@dataclass
class Run:
    """One set of readers started together."""

    name: str
    wall: float
    readers: list[dict[str, Any]]
    origin_bytes: int
    lan_bytes: int
    needed: int

    @property
    def throughput(self) -> float:
        """What the analysis needed, per second of wall time (MiB/s)."""
        return self.needed / 2**20 / self.wall


@dataclass
class Bench:
    wan: Wan
    ca: TestCA
    issuer: TokenIssuer
    cfg: FacilityConfig
    token: str
    manifest: dict[str, Any]
    branches: list[str]
    files: list[str]
    origin_url: str
    cache_url: str
    runs: dict[str, Run] = field(default_factory=dict)
    servers: dict[str, int] = field(default_factory=dict)
    """Process ids of the servers whose CPU time each run reports (origin, Toxiproxy, caches)."""

    def server_cpu(self) -> float:
        """CPU seconds the servers used so far (from /proc: user and system time)."""
        total = 0
        for pid in self.servers.values():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / os.sysconf("SC_CLK_TCK")

    def urls(self, base: str, subset: str, files: Sequence[str]) -> list[str]:
        return [f"{base}/{EXPORT}/agc/{subset}/{f}" for f in files]

    def needed(self, files: Sequence[str]) -> int:
        return agc_workload.needed_bytes(self.manifest, self.branches, list(files))


QUIET = 0.5
"""Seconds a byte counter must stand still before it is read (0.2 in the smoke run)."""


def settle(read: Any, quiet: float | None = None, timeout: float = 30) -> int:
    """A counter's value once it stopped moving for `quiet` seconds (a cache may still be writing or fetching)."""
    quiet = QUIET if quiet is None else quiet
    last, since, deadline = read(), time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = read()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return last


class Reader:
    """A reader process on a worker node (benchmarks/agc_workload.py serve), started once: each run hands it a list
    of files, so runs time reading, not starting Python."""

    def __init__(self, ns: Namespace, env: dict[str, str]) -> None:
        self.ns = ns
        argv = ns.argv(sys.executable, str(WORKLOAD), "serve")
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ready(self) -> None:
        if (line := self.proc.stdout.readline()).strip() != "ready":
            raise SystemExit(f"a reader on {self.ns.name} did not start: {line!r}")

    def submit(self, urls: list[str], branches: list[str]) -> None:
        self.proc.stdin.write(json.dumps({"urls": urls, "branches": branches}) + "\n")
        self.proc.stdin.flush()

    def result(self) -> dict[str, Any]:
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"a reader on {self.ns.name} failed ({self.proc.wait()})")
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def readers(bench: Bench, name: str, plan: Sequence[tuple[Reader, list[str]]], needed: int) -> Run:
    """Hand each reader its files at once, and collect what they report."""
    wan = bench.wan
    # The previous run waited for the counter to settle; the first waits here.
    origin0 = wan.origin_sent() if bench.runs else settle(wan.origin_sent)
    lan0, servers0 = wan.site_sent_to_nodes(), bench.server_cpu()
    for reader, urls in plan:
        reader.submit(urls, bench.branches)
    results = [reader.result() for reader, _ in plan]
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    origin_bytes = settle(wan.origin_sent) - origin0
    run = Run(name, wall, results, origin_bytes, wan.site_sent_to_nodes() - lan0, needed)
    bench.runs[name] = run
    cpu, servers = sum(r["cpu"] for r in results), bench.server_cpu() - servers0
    print(
        f"  {name:<24} wall {wall:6.2f} s {run.throughput:6.1f} MiB/s  origin sent {origin_bytes / 2**20:6.1f} MiB"
        f"  site sent to nodes {run.lan_bytes / 2**20:7.1f} MiB  {len(plan)} reader(s)  CPU: readers {cpu:5.1f} s,"
        f" servers {servers:5.1f} s, {(cpu + servers) / wall / (os.cpu_count() or 1):4.0%} of the machine",
        flush=True,
    )
    return run


@contextmanager
def reader_pool(nodes: Sequence[tuple[Namespace, int]], env: dict[str, str]) -> Iterator[dict[str, list[Reader]]]:
    """Idle readers on each node (node, how many), by namespace name."""
    pool: dict[str, list[Reader]] = {}
    try:
        for ns, count in nodes:
            pool[ns.name] = [Reader(ns, env) for _ in range(count)]
        for group in pool.values():
            for reader in group:
                reader.ready()
        yield pool
    finally:
        for group in pool.values():
            for reader in group:
                reader.close()


def split(items: Sequence[str], parts: int) -> list[list[str]]:
    return [list(items[i::parts]) for i in range(parts)]


def rtt_ms(ns: Namespace, url: str, env: dict[str, str]) -> float:
    """Median round trip of an xrootd ping (kXR_ping, one request and its answer) from `ns` to `url`."""
    code = (
        "import sys,time; from XRootD import client\n"
        "fs=client.FileSystem(sys.argv[1]); fs.ping(); t=[]\n"
        "for _ in range(7):\n"
        " s=time.perf_counter(); st,_=fs.ping(); assert st.ok, st; t.append(time.perf_counter()-s)\n"
        "print(sorted(t)[3]*1000)"
    )
    out = subprocess.run(ns.argv(sys.executable, "-c", code, url), env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def stage_dataset(dataset: Path, root: Path, subsets: Sequence[str]) -> list[str]:
    """The dataset's files under `root/store/agc/<subset>/` (hard links where possible), for the origin to serve."""
    files = sorted(p.name for p in dataset.glob("*.root"))
    for subset in subsets:
        target = root / EXPORT.strip("/") / "agc" / subset
        target.mkdir(parents=True, exist_ok=True)
        for name in files:
            dest = target / name
            try:
                os.link(dataset / name, dest)
            except OSError:
                shutil.copyfile(dataset / name, dest)
            dest.chmod(0o644)
    give_to_server(root)
    return files


@contextmanager
def facility(
    args: argparse.Namespace, dataset: Path, changes: dict[str, Any], cache_env: dict[str, str]
) -> Iterator[tuple[Bench, Cache, ExitStack, Path]]:
    rates = Rates(rtt_ms=args.rtt_ms, wan_bit=int(args.wan_gbit * 1e9), lan_bit=int(args.lan_gbit * 1e9))
    tools = toxiproxy_dir()
    with ExitStack() as stack:
        wan = stack.enter_context(emulated_wan(rates, nodes=2))
        work = stack.enter_context(scratch_dir("bench-cache-wan-"))
        ca = TestCA(work / "ca")
        issuer = stack.enter_context(TokenIssuer(ca, work / "issuer"))
        files = stage_dataset(dataset, work / "origin" / "data", ["a", "b"])
        origin = stack.enter_context(
            run_origin(work / "origin", port=1094, export=EXPORT, netns=wan.origin.name, host=ORIGIN_ADDR)
        )
        proxy = stack.enter_context(run_toxiproxy(wan, tools, work / "toxiproxy", TOXIPROXY_PORT, origin.server.port))
        upstream = f"{ORIGIN_ADDR}:{TOXIPROXY_PORT}"
        cfg = stack_cache_config(STACK, upstream, [issuer.url], base_path=EXPORT, changes=changes)
        cache = stack.enter_context(
            run_cache(
                cfg, work / "cache", ca, issuers=[issuer], port=1094, netns=wan.site.name, host=SITE_ADDR, env=cache_env
            )
        )
        token = issuer.mint(SCOPE, audience=cfg.cache.audiences[0], lifetime=7200)
        manifest = json.loads((dataset / "manifest.json").read_text())
        branches = agc_workload.analysis_branches()
        origin_url, cache_url = f"root://{upstream}/", f"root://{SITE_ADDR}:1094/"
        bench = Bench(wan, ca, issuer, cfg, token, manifest, branches, files, origin_url, cache_url)
        pids = (origin.server.process.pid, proxy.process.pid, cache.server.process.pid)
        bench.servers = dict(zip(("origin", "toxiproxy", "site cache"), pids, strict=True))
        yield bench, cache, stack, work


def print_setup(
    args: argparse.Namespace, bench: Bench, cache: Cache, dataset: Path, measured: dict[str, float]
) -> None:
    manifest = bench.manifest
    sizes = [info["size"] for info in manifest["files"].values()]
    total = sum(sizes)
    all_branches = len(next(iter(manifest["files"].values()))["branch_bytes"])
    print(f"setup: {os.cpu_count()} CPUs; xrootd {xrootd_version()}; uproot reads with fsspec-xrootd (XrdCl 6 client)")
    print(
        f"  WAN: RTT {args.rtt_ms:g} ms (Toxiproxy), {args.wan_gbit:g} Gbit/s (tc tbf); measured: xrootd ping "
        f"{measured['rtt']:.1f} ms, one TCP stream {measured['wan'] / 1e9:.2f} Gbit/s"
    )
    print(
        f"  LAN: {args.lan_gbit:g} Gbit/s (tc tbf); measured: one TCP stream site->node "
        f"{measured['lan'] / 1e9:.2f} Gbit/s (the most this machine sustains when below the setting)"
    )
    print(
        f"  files: {len(sizes)} x ~{statistics.mean(sizes) / 2**20:.0f} MiB = {total / 2**20:.0f} MiB "
        f"({dataset.name}), {manifest['params']['compression']} level {manifest['params']['level']}, "
        f"{sum(i['entries'] for i in manifest['files'].values())} events, {all_branches} branches"
    )
    needed = bench.needed(bench.files)
    print(
        f"  read: {len(bench.branches)} of {all_branches} branches ({len(bench.branches) / all_branches:.0%}); "
        f"their baskets: {needed / 2**20:.1f} MiB ({needed / total:.0%} of the bytes)"
    )
    pfc = [
        line for line in cache.server.config.read_text().splitlines() if line.startswith(("pfc.", "pss.", "xrd.tls"))
    ]
    print(f"  site cache ({STACK} rendered, token auth over TLS): {'; '.join(pfc)}")
    extra = {k: v for k, v in cache.server.env.items() if k.startswith("XRD")}
    if extra:
        print(f"  site cache upstream XrdCl env: {extra}")


def xrootd_version() -> str:
    proc = subprocess.run([program("xrootd"), "-v"], capture_output=True, text=True, check=False)
    return (proc.stdout + proc.stderr).strip()


def wan_runs(args: argparse.Namespace, dataset: Path, changes: dict[str, Any], cache_env: dict[str, str]) -> None:
    with facility(args, dataset, changes, cache_env) as (bench, cache, stack, work):
        wan = bench.wan
        n1, n2 = wan.nodes
        # One env for all readers: the origin asks for no credential, the caches for the token (over TLS).
        env = client_env(token=bench.token, ca=bench.ca, scratch=work)
        pool = stack.enter_context(reader_pool([(n1, 4), (n2, 2)], env))
        r1, r2 = pool[n1.name], pool[n2.name]
        measured = {
            "rtt": rtt_ms(n1, bench.origin_url, env),
            "wan": measure_rate(wan.origin, wan.site, "10.66.0.2", 16 * 2**20 if args.quick else 256 * 2**20),
            "lan": measure_rate(wan.site, n1, node_addr(1), 64 * 2**20 if args.quick else 1024 * 2**20),
        }
        print_setup(args, bench, cache, dataset, measured)
        files, needed = bench.files, bench.needed(bench.files)
        origin, site = bench.origin_url, bench.cache_url
        print("runs:")
        direct = readers(bench, "direct 1 reader", [(r1[0], bench.urls(origin, "a", files))], needed)
        cold = readers(bench, "cold 1 reader", [(r1[0], bench.urls(site, "a", files))], needed)
        warm = readers(bench, "warm 1 reader", [(r1[0], bench.urls(site, "a", files))], needed)
        four = split(files, 4)

        def split4(base: str) -> list[tuple[Reader, list[str]]]:
            return [(r, bench.urls(base, "b", part)) for r, part in zip(r1, four, strict=True)]

        direct4 = readers(bench, "direct 4 readers", split4(origin), needed)
        cold4 = readers(bench, "cold 4 readers", split4(site), needed)
        warm4 = readers(bench, "warm 4 readers", split4(site), needed)

        # Node tier: 2 readers on each node, every reader every file of set A (warm at the site), `passes` times.
        passes = 2
        pairs = [r1[0], r1[1], r2[0], r2[1]]
        plain = [(r, bench.urls(site, "a", files)) for r in pairs]
        without = [readers(bench, f"no node cache, pass {p + 1}", plain, 4 * needed) for p in range(passes)]
        node = NodeCache(site_cache=f"{SITE_ADDR}:1094", files_max="64g")
        audience = bench.cfg.cache.audiences[0]
        service = bench.issuer.mint(SCOPE, audience=audience, lifetime=7200, subject="node-cache")
        for i, ns in enumerate((n1, n2), 1):
            node_cache = stack.enter_context(
                run_node_cache(
                    bench.cfg,
                    node,
                    work / f"node-cache-{i}",
                    bench.ca,
                    issuers=[bench.issuer],
                    upstream_token=service,
                    port=1094,
                    netns=ns.name,
                    host=node_addr(i),
                )
            )
            bench.servers[f"node cache {i}"] = node_cache.server.process.pid
        local = {r: f"root://{node_addr(1 if r in r1 else 2)}:1094/" for r in pairs}
        via_node = [(r, bench.urls(local[r], "a", files)) for r in pairs]
        with_nodes = [readers(bench, f"node caches, pass {p + 1}", via_node, 4 * needed) for p in range(passes)]

        print("figures (ratios from this run; goal in brackets):")
        figure("warm/direct, 1 reader, wall", warm.wall / direct.wall, "<= 0.2")
        figure("cold/direct, 1 reader, wall", cold.wall / direct.wall, "<= 1.2")
        figure("origin bytes (cold, 1 reader) / needed", cold.origin_bytes / needed, "<= 1.3")
        figure("origin bytes (direct, 1 reader) / needed", direct.origin_bytes / needed, "reference")
        figure("origin bytes (cold, 4 readers) / needed", cold4.origin_bytes / needed, "<= 1.3")
        figure("origin bytes (warm, 1 + 4 readers)", (warm.origin_bytes + warm4.origin_bytes) / 2**20, "MiB, ~0")
        figure("warm 4 readers / 1 reader, aggregate throughput", warm4.throughput / warm.throughput, ">= 3")
        figure("cold 4 readers / 1 reader, aggregate throughput", cold4.throughput / cold.throughput, "reference")
        figure("direct 4 readers / 1 reader, aggregate throughput", direct4.throughput / direct.throughput, "reference")
        figure("warm/direct, 4 readers, wall", warm4.wall / direct4.wall, "reference")
        figure("cold/direct, 4 readers, wall", cold4.wall / direct4.wall, "reference")
        s0, s1 = sum(r.lan_bytes for r in without), sum(r.lan_bytes for r in with_nodes)
        figure(f"site bytes with/without node caches, {passes} passes", s1 / s0, "<= 0.5")
        first = with_nodes[0].lan_bytes / without[0].lan_bytes
        figure("site bytes with/without node caches, first pass", first, "reference")
        figure("node-cache pass 2 wall / no-node-cache pass 2 wall", with_nodes[1].wall / without[1].wall, "reference")


def figure(name: str, value: float, goal: str) -> None:
    print(f"  {name:<52} ratio {value:7.3f}   [{goal}]", flush=True)


def loopback_runs(args: argparse.Namespace, changes: dict[str, Any]) -> None:
    """bench_xcache.py's xrdcp comparison on loopback, with the same cache settings, and variants that take one cost
    out at a time: TLS and tokens (token auth off), writes to disk (the cache's disk on tmpfs), and the block size and
    prefetch (the previous shipped values, 1m and 10). All variants run side by side and the repetitions interleave,
    so a busy machine slows them alike; medians are printed."""
    import bench_xcache

    size_mib, repeat = (8, 1) if args.quick else (256, args.loopback_repeat)
    variants: list[tuple[str, dict[str, Any], bool]] = [("as configured", changes, False)]
    if not args.quick:
        variants += [
            ("no token auth (no TLS)", {**changes, "tokenAuth": False}, False),
            ("cache disk on tmpfs", changes, True),
            ("no TLS, disk on tmpfs", {**changes, "tokenAuth": False}, True),
            ("blocks 1m, prefetch 10", {**changes, "blockSize": "1m", "prefetch": 10}, False),
        ]
    print(
        f"loopback xrdcp ({size_mib} MiB random files, {repeat} repetition(s) interleaved; direct = plain root:// "
        f"to the origin, a read before and after):"
    )
    with ExitStack() as stack:
        sites = [stack.enter_context(bench_xcache.loopback(variant, tmpfs=tmpfs)) for _, variant, tmpfs in variants]
        for site in sites:
            warm_up = site.origin.add_file("bench/warm-up", size=4096)
            bench_xcache.timed_read(site.cache.server.url(warm_up), site.cache_env)
        rounds: list[list[Any]] = [[] for _ in variants]
        for i in range(repeat):
            for k, site in enumerate(sites):
                rounds[k].append(bench_xcache.measure(site, size_mib * 2**20, i))
        # Where the time goes on a machine this small: CPU seconds of origin, cache and xrdcp for each read.
        cpu = [cpu_per_read(bench_xcache, site, size_mib * 2**20) for site in sites]
    for (name, _, _), runs, used in zip(variants, rounds, cpu, strict=True):
        cold = statistics.median(r.cold / r.direct for r in runs)
        warm = statistics.median(r.warm / r.direct for r in runs)
        direct = statistics.median(r.direct for r in runs)
        print(
            f"  {name:<24} cold/direct ratio {cold:5.2f}  warm/direct ratio {warm:5.2f}  (direct {direct:.3f} s, "
            f"{size_mib / direct:.0f} MiB/s); CPU s direct {used['direct']:.2f} cold {used['cold']:.2f} "
            f"warm {used['warm']:.2f}"
        )


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a running process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_per_read(bench_xcache: Any, site: Any, size: int) -> dict[str, float]:
    """CPU seconds that origin, cache and the xrdcp client spend on one direct, cold and warm read of a new file."""
    path = site.origin.add_file(f"bench/cpu-{time.monotonic_ns()}.bin", size=size)
    pids = (site.origin.server.process.pid, site.cache.server.process.pid)
    used = {}
    for label, url, env in (
        ("direct", site.origin.server.url(path), None),
        ("cold", site.cache.server.url(path), site.cache_env),
        ("warm", site.cache.server.url(path), site.cache_env),
    ):
        before = sum(proc_cpu(p) for p in pids), resource.getrusage(resource.RUSAGE_CHILDREN)
        bench_xcache.timed_read(url, env)
        if label == "cold":  # the cache may still be writing the last blocks
            time.sleep(0.5)
        after = sum(proc_cpu(p) for p in pids), resource.getrusage(resource.RUSAGE_CHILDREN)
        client = after[1].ru_utime + after[1].ru_stime - before[1].ru_utime - before[1].ru_stime
        used[label] = after[0] - before[0] + client
    return used


def main(argv: list[str] | None = None) -> int:
    top = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    top.add_argument("--quick", action="store_true", help="a tiny run for the smoke test (a few MiB, same code path)")
    top.add_argument("--rtt-ms", type=float, default=20.0)
    top.add_argument("--wan-gbit", type=float, default=1.0)
    top.add_argument("--lan-gbit", type=float, default=10.0)
    top.add_argument("--total-mib", type=int, default=agc_workload.Params.total_mib)
    top.add_argument("--block-size", help="af:cache.blockSize for this run (default: the stack's)")
    top.add_argument("--prefetch", type=int, help="af:cache.prefetch for this run")
    top.add_argument("--ram", help="af:cache.ram for this run")
    top.add_argument("--cache-env", action="append", default=[], help="NAME=value in the site cache's environment")
    top.add_argument("--skip-loopback", action="store_true")
    top.add_argument("--loopback-repeat", type=int, default=5, help="xrdcp repetitions per loopback variant")
    top.add_argument("--skip-wan", action="store_true")
    args = top.parse_args(argv)
    global QUIET
    QUIET = 0.2 if args.quick else QUIET
    # A stopped run still removes its namespaces, servers and files.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    changes = {
        k: v
        for k, v in {"blockSize": args.block_size, "prefetch": args.prefetch, "ram": args.ram}.items()
        if v is not None
    }
    cache_env = dict(item.split("=", 1) for item in args.cache_env)
    params = (
        agc_workload.Params(total_mib=8, files=4, cluster=2000)
        if args.quick
        else agc_workload.Params(total_mib=args.total_mib)
    )
    print(f"bench_cache_wan: {'quick ' if args.quick else ''}run; cache changes {changes or 'none'}", flush=True)
    print(f"  load average at start {load()} (the machine is shared: other work slows runs unevenly)", flush=True)
    if not args.skip_wan:
        dataset = agc_workload.generate(params)
        wan_runs(args, dataset, changes, cache_env)
    if not args.skip_loopback:
        loopback_runs(args, changes)
    print(f"  load average at end {load()}")
    return 0


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
