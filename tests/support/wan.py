"""An emulated wide-area network on one machine, from real kernel and userspace tools (root only).

Network namespaces stand for machines: `origin` is the remote site (the federation's server), `site` is the
facility's cache node (and its router), `nodes` are worker nodes. Each pair is joined by a veth pair whose both ends
are rate-limited with `tc tbf` (the kernel here has tbf but no netem): the WAN link origin-site at `wan_rate`, each
LAN link site-node at `lan_rate`. Latency comes from Toxiproxy (built from the pinned module in tools/wan): it runs in
the origin's namespace, listens on the origin's WAN address and forwards to the origin server on loopback, delaying
every chunk by half the round trip in each direction. Toxiproxy terminates TCP, so the emulated delay is the
application's (a request waits one RTT for its answer), not TCP's window growth over a long path.

Independent byte counters: the kernel's per-interface counters (`tx_bytes`) say what crossed each link, whatever the
servers report about themselves.

    10.66.0.1 origin ==(WAN, tbf wan_rate, Toxiproxy rtt)== 10.66.0.2 site [10.66.100.1 on lo: the site cache]
                                                         site 10.66.i.1 ==(LAN, tbf lan_rate)== 10.66.i.2 node i
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "tools" / "wan"
CLONE_NEWNET = 0x40000000
T = TypeVar("T")

ORIGIN_ADDR = "10.66.0.1"
SITE_WAN_ADDR = "10.66.0.2"
SITE_ADDR = "10.66.100.1"
"""The site cache's address, on the site namespace's loopback and routed from every node and the origin."""


def node_addr(index: int) -> str:
    """Worker node `index`'s address (1-based)."""
    return f"10.66.{index}.2"


def require_root() -> None:
    if os.geteuid() != 0:
        raise RuntimeError("the emulated WAN needs root (network namespaces, veth pairs, tc)")
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed (Debian iproute2)")


def toxiproxy_dir() -> Path:
    """The folder holding the pinned Toxiproxy's `server` and `cli`, built once by tools/go-tools (a Go toolchain is
    needed the first time; a missing one is an error, never a skip)."""
    if shutil.which("go") is None and not os.environ.get("AF_WAN_TOOLS"):
        raise RuntimeError("Go is needed to build Toxiproxy from tools/wan (`make wan-tools`)")
    if os.environ.get("AF_WAN_TOOLS"):
        return Path(os.environ["AF_WAN_TOOLS"])
    proc = subprocess.run(
        [str(ROOT / "tools" / "go-tools"), str(TOOLS)], capture_output=True, text=True, timeout=1800, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"building the WAN tools failed:\n{proc.stderr}")
    return Path(proc.stdout.strip().splitlines()[-1])


def _run(argv: Sequence[str]) -> str:
    proc = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


@dataclass(frozen=True)
class Namespace:
    """A network namespace (`ip netns`), standing for one machine."""

    name: str

    def argv(self, *command: str) -> list[str]:
        """`command` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *command]

    def ip(self, *args: str) -> str:
        return _run(["ip", "-n", self.name, *args])

    def call(self, fn: Callable[[], T]) -> T:
        """`fn()` with this thread's sockets in the namespace (setns(2) on a fresh thread: the caller's threads stay
        where they are)."""
        result: list[Any] = []

        def target() -> None:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    result.append(OSError(ctypes.get_errno(), f"setns {self.name}"))
                    return
            finally:
                os.close(fd)
            try:
                result.append(("ok", fn()))
            except Exception as error:  # handed back to the caller's thread
                result.append(error)

        thread = threading.Thread(target=target, name=f"netns-{self.name}")
        thread.start()
        thread.join()
        outcome = result[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome[1]

    def accepts(self, host: str, port: int) -> bool:
        """Whether something in this namespace's view listens on host:port."""

        def probe() -> bool:
            with socket.socket() as s:
                s.settimeout(0.5)
                return s.connect_ex((host, port)) == 0

        return self.call(probe)

    def counters(self, dev: str) -> dict[str, int]:
        """The kernel's byte counters of an interface: {"tx": bytes sent, "rx": bytes received}."""
        (link,) = json.loads(self.ip("-s", "-j", "link", "show", "dev", dev))
        stats = link["stats64"]
        return {"tx": int(stats["tx"]["bytes"]), "rx": int(stats["rx"]["bytes"])}


@dataclass(frozen=True)
class Rates:
    """The emulated links: WAN round trip and rates in bit/s."""

    rtt_ms: float = 20.0
    wan_bit: int = 1_000_000_000
    lan_bit: int = 10_000_000_000


def _tbf(ns: Namespace, dev: str, rate_bit: int) -> None:
    # Burst: 1 ms of traffic at the rate (at least 64 KiB, so GSO segments pass whole); queue up to 20 ms.
    burst = max(rate_bit // 8 // 1000, 1 << 16)
    _run(
        ns.argv(
            "tc",
            "qdisc",
            "replace",
            "dev",
            dev,
            "root",
            "tbf",
            "rate",
            f"{rate_bit}bit",
            "burst",
            str(burst),
            "latency",
            "20ms",
        )
    )


@dataclass
class Wan:
    """The namespaces and links of one emulated setup; `origin_port` is where clients reach the origin (Toxiproxy)."""

    prefix: str
    rates: Rates
    origin: Namespace
    site: Namespace
    nodes: list[Namespace]
    toxiproxy: Toxiproxy | None = None
    _made: list[Namespace] = field(default_factory=list)

    WAN_DEV_ORIGIN = "wan0"
    WAN_DEV_SITE = "wan0"

    def node_dev(self, index: int) -> str:
        """The site's interface towards node `index` (its `tx` is what the site sent that node)."""
        return f"lan{index}"

    def origin_sent(self) -> int:
        """Bytes the origin's site sent over the WAN (kernel counter, headers included)."""
        return self.origin.counters(self.WAN_DEV_ORIGIN)["tx"]

    def site_sent_to_nodes(self) -> int:
        """Bytes the site sent over the LAN to all nodes (kernel counters, headers included)."""
        return sum(self.site.counters(self.node_dev(i))["tx"] for i in range(1, len(self.nodes) + 1))


@contextmanager
def emulated_wan(rates: Rates = Rates(), nodes: int = 2, prefix: str | None = None) -> Iterator[Wan]:
    """Create the namespaces and links (removed after, also on error). Toxiproxy is started by `Wan` users with
    `run_toxiproxy`, once they know the origin's port."""
    require_root()
    prefix = prefix or f"afw{os.getpid()}"
    wan = Wan(
        prefix,
        rates,
        Namespace(f"{prefix}-o"),
        Namespace(f"{prefix}-s"),
        [Namespace(f"{prefix}-n{i}") for i in range(1, nodes + 1)],
    )
    names = {ORIGIN_ADDR: "origin.wan", SITE_ADDR: "cache.site"}
    names |= {node_addr(i): f"node-{i}.site" for i in range(1, nodes + 1)}
    hosts = f"127.0.0.1 localhost {socket.gethostname()}\n"
    hosts += "".join(f"{addr} {name}\n" for addr, name in names.items())
    try:
        for ns in (wan.origin, wan.site, *wan.nodes):
            # `ip netns exec` mounts /etc/netns/<name>/* over /etc: no name server there (the host's is out of
            # reach, and every lookup would wait for its timeout), names of the emulated machines in hosts.
            etc = Path("/etc/netns") / ns.name
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "resolv.conf").write_text("options timeout:1 attempts:1\n")
            (etc / "hosts").write_text(hosts)
            _run(["ip", "netns", "add", ns.name])
            wan._made.append(ns)
            ns.ip("link", "set", "lo", "up")
        o, s = wan.origin, wan.site
        _run(["ip", "link", "add", "wan0", "netns", o.name, "type", "veth", "peer", "name", "wan0", "netns", s.name])
        o.ip("addr", "add", f"{ORIGIN_ADDR}/30", "dev", "wan0")
        s.ip("addr", "add", f"{SITE_WAN_ADDR}/30", "dev", "wan0")
        s.ip("addr", "add", f"{SITE_ADDR}/32", "dev", "lo")
        for ns in (o, s):
            ns.ip("link", "set", "wan0", "up")
            _tbf(ns, "wan0", rates.wan_bit)
        o.ip("route", "add", "10.66.0.0/16", "via", SITE_WAN_ADDR)
        _run(s.argv("sysctl", "-q", "-w", "net.ipv4.ip_forward=1"))
        for i, node in enumerate(wan.nodes, 1):
            dev = wan.node_dev(i)
            _run(
                ["ip", "link", "add", dev, "netns", s.name, "type", "veth", "peer", "name", "lan0", "netns", node.name]
            )
            s.ip("addr", "add", f"10.66.{i}.1/30", "dev", dev)
            node.ip("addr", "add", f"{node_addr(i)}/30", "dev", "lan0")
            s.ip("link", "set", dev, "up")
            node.ip("link", "set", "lan0", "up")
            node.ip("route", "add", "default", "via", f"10.66.{i}.1")
            _tbf(s, dev, rates.lan_bit)
            _tbf(node, "lan0", rates.lan_bit)
        yield wan
    finally:
        for ns in reversed(wan._made):
            subprocess.run(["ip", "netns", "del", ns.name], capture_output=True, check=False)
        for ns in (wan.origin, wan.site, *wan.nodes):
            shutil.rmtree(Path("/etc/netns") / ns.name, ignore_errors=True)


class Toxiproxy:
    """A Toxiproxy server in `ns` proxying `listen` to `upstream`, with a latency toxic of half the round trip on each
    direction; `stop` ends it."""

    def __init__(self, tools: Path, ns: Namespace, workdir: Path, listen: str, upstream: str, rtt_ms: float) -> None:
        self.ns, self.listen, self.upstream = ns, listen, upstream
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "toxiproxy.json"
        config.write_text(json.dumps([{"name": "origin", "listen": listen, "upstream": upstream, "enabled": True}]))
        self.api_port = 8474
        self.log = workdir / "toxiproxy.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                ns.argv(
                    str(tools / "server"), "-host", "127.0.0.1", "-port", str(self.api_port), "-config", str(config)
                ),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env={**os.environ, "LOG_LEVEL": "warn"},
                start_new_session=True,
            )
        host, port = listen.rsplit(":", 1)
        deadline = time.monotonic() + 15
        while not ns.accepts(host, int(port)):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"toxiproxy did not start:\n{self.log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.05)
        half = rtt_ms / 2
        for stream in ("upstream", "downstream"):
            self._api(
                "POST",
                "/proxies/origin/toxics",
                {
                    "name": f"latency-{stream}",
                    "type": "latency",
                    "stream": stream,
                    "attributes": {"latency": round(half), "jitter": 0},
                },
            )

    def toxics(self) -> list[dict[str, Any]]:
        return self._api("GET", "/proxies/origin/toxics")

    def _api(self, method: str, path: str, body: Any = None) -> Any:
        def call() -> Any:
            data = json.dumps(body).encode() if body is not None else None
            request = urllib.request.Request(f"http://127.0.0.1:{self.api_port}{path}", data=data, method=method)
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.load(response)

        return self.ns.call(call)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def run_toxiproxy(wan: Wan, tools: Path, workdir: Path, listen_port: int, origin_port: int) -> Iterator[Toxiproxy]:
    """Toxiproxy in the origin's namespace: `ORIGIN_ADDR:listen_port` -> `127.0.0.1:origin_port` with the WAN RTT."""
    with ExitStack() as stack:
        proxy = Toxiproxy(
            tools, wan.origin, workdir, f"{ORIGIN_ADDR}:{listen_port}", f"127.0.0.1:{origin_port}", wan.rates.rtt_ms
        )
        stack.callback(proxy.stop)
        wan.toxiproxy = proxy
        yield proxy


def measure_rate(sender: Namespace, receiver: Namespace, address: str, nbytes: int = 256 * 2**20) -> float:
    """Throughput in bit/s of one TCP stream from `sender` to `receiver` (listening on `address`, port 5201):
    what the link sustains on this machine, tbf and CPU included."""
    ready, got, errors = threading.Event(), [], []
    listener_box: list[socket.socket] = []

    def listen() -> None:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((address, 5201))
        s.listen(1)
        listener_box.append(s)

    receiver.call(listen)
    listener = listener_box[0]

    def receive() -> None:
        try:
            ready.set()
            conn, _ = listener.accept()
            with conn:
                buf, total = bytearray(1 << 20), 0
                start = time.perf_counter()
                while n := conn.recv_into(buf):
                    total += n
                got.append(total * 8 / (time.perf_counter() - start))
        except OSError as error:
            errors.append(error)

    thread = threading.Thread(target=receive)
    thread.start()
    ready.wait()

    def send() -> None:
        with socket.create_connection((address, 5201), timeout=30) as conn:
            chunk, sent = b"\0" * (1 << 20), 0
            while sent < nbytes:
                conn.sendall(chunk)
                sent += len(chunk)

    try:
        sender.call(send)
    finally:
        thread.join(60)
        listener.close()
    if errors or not got:
        raise RuntimeError(f"rate measurement failed: {errors}")
    return got[0]
