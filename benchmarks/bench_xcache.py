"""Reading through XCache, cold and warm, as a ratio to reading straight from the origin, on loopback.

One run starts a real origin and a real cache from the rendered config of the shipped cms-bari stack (only the origin,
the token issuer, ports and local paths made local) with the harness of tests/test_xcache_xrootd.py. Each repetition
writes a new file of random bytes to the origin, so every cold read is a true miss, then times `xrdcp` to /dev/null:

- direct: from the origin (plain root://, no auth), once before and once after the cache reads; their mean is used;
- cold: through the cache, first read: the cache fetches the file from the origin while serving it;
- warm: through the cache again: served from the cache's disk, the origin untouched.

Reads through the cache carry a token (ztn), which makes the client connection TLS; the direct reads do not. Both
servers are on loopback and the files sit in the OS page cache, so the ratios measure XRootD's own cost (the cache's
fetch and writes, TLS) rather than a network or disks. Prints figures only; nothing is asserted about time.

    python benchmarks/bench_xcache.py [--size-mib N] [--repeat K] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the harness lives with the tests

from support.xrootd import (  # noqa: E402
    Cache,
    Origin,
    TestCA,
    TokenIssuer,
    client_env,
    program,
    run_cache,
    run_origin,
    scratch_dir,
    stack_cache_config,
    xrdcp,
)

STACK = "cms-bari"
SCOPE = "storage.read:/"  # relative to the issuer's basePath, /store


@dataclass
class Loopback:
    origin: Origin
    cache: Cache
    cache_env: dict[str, str]


@contextmanager
def loopback(changes: dict[str, Any] | None = None, *, tmpfs: bool = False) -> Iterator[Loopback]:
    """Origin and cache on loopback; `changes` to `af:cache` (as in a stack file); with `tmpfs` the cache's disk is a
    tmpfs (root only), which takes disk writes out of the cold read."""
    with ExitStack() as stack:
        work = stack.enter_context(scratch_dir("bench-xcache-"))
        ca = TestCA(work / "ca")
        issuer = stack.enter_context(TokenIssuer(ca, work / "issuer"))
        origin = stack.enter_context(run_origin(work / "origin"))
        if tmpfs:
            data = work / "cache" / "data"
            data.mkdir(parents=True)
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4g", "tmpfs", str(data)], check=True)
            stack.callback(subprocess.run, ["umount", str(data)], check=False)
        cfg = stack_cache_config(STACK, origin.address, [issuer.url], changes=changes)
        cache = stack.enter_context(run_cache(cfg, work / "cache", ca, issuers=[issuer]))
        token = issuer.mint(SCOPE, audience=cfg.cache.audiences[0], lifetime=3600)
        yield Loopback(origin, cache, client_env(token=token, ca=ca))


def timed_read(url: str, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    proc = xrdcp(url, "/dev/null", env=env, timeout=600)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"xrdcp {url} failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
    return seconds


@dataclass
class Round:
    direct: float
    cold: float
    warm: float


def measure(site: Loopback, size: int, index: int) -> Round:
    path = site.origin.add_file(f"bench/file-{index}.bin", size=size)
    direct_url, cache_url = site.origin.server.url(path), site.cache.server.url(path)
    before = timed_read(direct_url)
    cold = timed_read(cache_url, site.cache_env)
    warm = timed_read(cache_url, site.cache_env)
    after = timed_read(direct_url)
    served = site.origin.transfers(path)
    if served.opens != 3:  # two direct reads and the cache's one fetch
        raise SystemExit(f"{path}: the origin saw {served.opens} opens, expected 3 (2 direct, 1 by the cache)")
    return Round((before + after) / 2, cold, warm)


def report(rounds: list[Round], size: int) -> None:
    mib = size / 2**20
    for i, r in enumerate(rounds, 1):
        print(
            f"  rep {i}: direct {r.direct:7.3f} s ({mib / r.direct:6.0f} MiB/s)  "
            f"cold {r.cold:7.3f} s ({mib / r.cold:6.0f} MiB/s)  warm {r.warm:7.3f} s ({mib / r.warm:6.0f} MiB/s)"
        )
    for name in ("cold", "warm"):
        ratios = [getattr(r, name) / r.direct for r in rounds]
        times = [getattr(r, name) for r in rounds]
        direct = [r.direct for r in rounds]
        print(
            f"  {name}/direct ratio: {statistics.median(ratios):.2f} (median)  {min(ratios):.2f} (best)   "
            f"{name} median {statistics.median(times):.3f} s, direct median {statistics.median(direct):.3f} s"
        )


def main(argv: list[str] | None = None) -> int:
    top = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    top.add_argument("--size-mib", type=int, default=256, help="size of each file in MiB (default 256)")
    top.add_argument("--repeat", type=int, default=3, help="repetitions, each with a new file (default 3)")
    top.add_argument("--quick", action="store_true", help="a tiny run for the smoke test: 8 MiB, 1 repetition")
    args = top.parse_args(argv)
    size_mib, repeat = (8, 1) if args.quick else (max(1, args.size_mib), max(1, args.repeat))
    size = size_mib * 2**20
    proc = subprocess.run([program("xrootd"), "-v"], capture_output=True, text=True, check=False)
    version = (proc.stdout + proc.stderr).strip()
    print(
        f"bench_xcache: xrdcp to /dev/null through XCache ({STACK} rendered config; token over TLS) vs straight from "
        f"the origin (root://, no auth), on loopback; a new {size_mib} MiB random file per repetition: cold = first "
        f"read through the cache, warm = second, direct = mean of a read before and after; cold/direct and "
        f"warm/direct = time through the cache over time direct; {repeat} repetition(s) (xrootd {version})"
    )
    with loopback() as site:
        timed_read(site.cache.server.url(site.origin.add_file("bench/warm-up", size=4096)), site.cache_env)
        rounds = [measure(site, size, i) for i in range(repeat)]
    report(rounds, size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
