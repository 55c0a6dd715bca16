"""A cache that reports about itself, for the exporter's tests: the real origin and cache of `support.xrootd` (the cache
from a shipped stack's rendered config) with the summary report and the file cache's g-stream sent to a loopback UDP
port every second.

Run as a program it captures what the real xrootd sends while a file is read twice through the cache, and writes it
as the fixture the exporter's parser tests read (from tests/: `../.venv/bin/python -m support.xcachemon`).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from components.cache.xrootd import REPORT_OPTIONS

from .xrootd import (
    Cache,
    Origin,
    TestCA,
    TokenIssuer,
    cinfo,
    client_env,
    run_cache,
    run_origin,
    scratch_dir,
    stack_cache_config,
    wait_for,
    xrdcp,
)

STACK = "cms-bari"
SCOPE = "storage.read:/mc"
FIXTURE = Path(__file__).parent.parent / "fixtures" / "xrootd" / "cache-reports.json"


@dataclass
class ReportingSite:
    origin: Origin
    cache: Cache
    issuer: TokenIssuer
    ca: TestCA
    audience: str
    work: Path

    def read(self, path: str, dest: Path) -> subprocess.CompletedProcess[str]:
        """Read `path` through the cache with a token covering it; the caller checks `returncode`."""
        token = self.issuer.mint(SCOPE, audience=self.audience)
        env = client_env(token=token, ca=self.ca, scratch=self.work / "client")
        return xrdcp(self.cache.server.url(path), dest, env=env)

    def wait_cached(self, path: str) -> bool:
        """Until the cache holds all of `path` on its disk."""
        return wait_for(lambda: cinfo(self.cache.cinfo_path(path))["state_complete"] == "complete")


@contextmanager
def reporting_site(report_port: int, *, prefetch: int = 0) -> Iterator[ReportingSite]:
    """Origin, token issuer and the shipped stack's cache (its `prefetch` changed), reporting to `report_port`.

    Prefetch is off by default: the file cache counts a block another request (a prefetch) already asked the origin
    for as a hit, so only without it is a first read all misses."""
    with ExitStack() as stack:
        work = stack.enter_context(scratch_dir())
        (work / "client").mkdir()
        ca = TestCA(work / "ca")
        issuer = stack.enter_context(TokenIssuer(ca, work / "issuer"))
        origin = stack.enter_context(run_origin(work / "origin"))
        cfg = stack_cache_config(STACK, origin.address, [issuer.url], changes={"prefetch": prefetch})
        cache = stack.enter_context(run_cache(cfg, work / "cache", ca, issuers=[issuer], report_port=report_port))
        yield ReportingSite(origin, cache, issuer, ca, cfg.cache.audiences[0], work)


class Recorder:
    """Every datagram sent to a loopback UDP port, with the time it came, while used as a context manager."""

    def __init__(self) -> None:
        self.datagrams: list[tuple[float, bytes]] = []
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.settimeout(0.2)
        self.port: int = self._socket.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)

    def __enter__(self) -> Recorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._socket.close()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                self.datagrams.append((time.time(), self._socket.recv(65535)))
            except TimeoutError:
                continue

    def since(self, start: float, head: bytes) -> list[bytes]:
        return [data for when, data in list(self.datagrams) if when >= start and data.startswith(head)]

    def next(self, start: float, head: bytes, timeout: float = 10) -> bytes:
        """The first datagram beginning with `head` that came after `start`."""
        assert wait_for(lambda: bool(self.since(start, head)), timeout), f"no {head!r} datagram in {timeout}s"
        return self.since(start, head)[0]


def capture() -> dict[str, object]:
    """What xrootd sends: a summary report before any read, the g-stream of a first read (misses) and a second one
    (hits), and a summary report after both."""
    size = 3 * 2**20 + 12345
    with Recorder() as recorder, reporting_site(recorder.port) as site:
        idle = recorder.next(0, b"<")
        path = site.origin.add_file("mc/RunIII/monitored.root", size=size)
        start = time.time()
        assert site.read(path, site.work / "first").returncode == 0
        first = recorder.next(start, b"{")
        assert site.wait_cached(path)
        start = time.time()
        assert site.read(path, site.work / "second").returncode == 0
        second = recorder.next(start, b"{")
        after = recorder.next(time.time(), b"<")
        version = subprocess.run(["xrootd", "-v"], capture_output=True, text=True, check=True)
    return {
        "about": (
            f"Datagrams from xrootd {(version.stdout + version.stderr).strip()} running the {STACK} stack's rendered"
            f" cache config (prefetch 0; xrd.report {REPORT_OPTIONS}, pfc g-stream send nohdr): a {size}-byte file"
            " read through the cache twice. Made by `python -m support.xcachemon` in tests/."
        ),
        "file_size": size,
        "datagrams": {
            "summary_before_reads": idle.decode(),
            "gstream_first_read": first.decode(),
            "gstream_second_read": second.decode(),
            "summary_after_reads": after.decode(),
        },
    }


def main() -> int:
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps(capture(), indent=2) + "\n")
    print(f"wrote {FIXTURE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
