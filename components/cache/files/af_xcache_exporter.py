"""Prometheus metrics of an XCache server, from what XRootD reports about itself: the sidecar of
every cache server pod.

The server sends two UDP streams to this program on loopback (components/cache/xrootd.py renders
the directives):
- the summary report (`xrd.report … link prot`): an XML `<statistics>` document every interval,
  cumulative since the server started: client connections and bytes (`link`), file opens and
  request errors (`xrootd`), opens at the origin (`pss`). Its `<stats id="cache">` section is not
  used: XRootD 5.5's file cache leaves the read and disk counters there at zero.
- the file cache's g-stream (`xrootd.mongstream pfc … send nohdr`): one JSON record per closed
  file, newline-separated, the datagram NUL-terminated, with the bytes that access read from the
  cache (`b_hit`), fetched from the origin for it (`b_miss`) and read past the cache
  (`b_bypass`), and from XRootD 5.6 on the bytes it wrote to the cache's disk (`b_todisk`).
  This program adds them up. The cache counts per read request: a block an earlier request or a
  prefetch already asked the origin for is a hit, so a file's first read is rarely all misses;
  bytes fetched from the origin are exactly `b_todisk` + `b_bypass`, where `b_todisk` exists.
Disk usage comes from the cache's volume itself (statvfs) at each scrape.

It serves the Prometheus text format on `/metrics`. A datagram it cannot read is counted and
dropped. Standard library only, and Python 3.9: it runs on the cache image's python3 (EL9).

Usage: af_xcache_exporter.py --udp 127.0.0.1:9930 --http 0.0.0.0:9102 [--disk /xcache/data]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.etree import ElementTree

COUNTER, GAUGE = "counter", "gauge"

METRICS: dict[str, tuple[str, str]] = {
    "af_xcache_hit_bytes_total": (
        COUNTER,
        "Bytes clients read that the cache held or was already fetching (prefetched blocks count here)",
    ),
    "af_xcache_miss_bytes_total": (COUNTER, "Bytes clients read that the cache fetched from the origin for that read"),
    "af_xcache_bypass_bytes_total": (COUNTER, "Bytes clients read from the origin past the cache"),
    "af_xcache_written_bytes_total": (
        COUNTER,
        "Bytes the cache fetched from the origin onto its disk (reported by XRootD 5.6 and later)",
    ),
    "af_xcache_file_closes_total": (COUNTER, "File accesses the cache reported when they were closed"),
    "af_xcache_client_connections": (GAUGE, "Client connections open now"),
    "af_xcache_client_connections_accepted_total": (COUNTER, "Client connections accepted since the server started"),
    "af_xcache_client_received_bytes_total": (COUNTER, "Bytes received from clients since the server started"),
    "af_xcache_client_sent_bytes_total": (COUNTER, "Bytes sent to clients since the server started"),
    "af_xcache_file_opens_total": (COUNTER, "Files opened by clients since the server started"),
    "af_xcache_errors_total": (COUNTER, "Client requests that ended in an error since the server started"),
    "af_xcache_origin_opens_total": (COUNTER, "Files the cache opened at the origin since the server started"),
    "af_xcache_origin_open_errors_total": (COUNTER, "Opens at the origin that failed since the server started"),
    "af_xcache_server_start_timestamp_seconds": (GAUGE, "When the xrootd server started (Unix time)"),
    "af_xcache_disk_total_bytes": (GAUGE, "Size of the cache's disk"),
    "af_xcache_disk_used_bytes": (GAUGE, "Bytes used on the cache's disk"),
    "af_xcache_exporter_last_report_timestamp_seconds": (
        GAUGE,
        "When the server made its last summary report (Unix time); 0 before the first",
    ),
    "af_xcache_exporter_malformed_datagrams_total": (COUNTER, "Datagrams dropped because they could not be read"),
}
"""Every metric this program can emit: name -> (type, help)."""

SUMMARY_FIELDS: dict[str, tuple[str, str]] = {
    "af_xcache_client_connections": ("link", "num"),
    "af_xcache_client_connections_accepted_total": ("link", "tot"),
    "af_xcache_client_received_bytes_total": ("link", "in"),
    "af_xcache_client_sent_bytes_total": ("link", "out"),
    "af_xcache_file_opens_total": ("xrootd", "ops/open"),
    "af_xcache_errors_total": ("xrootd", "err"),
    "af_xcache_origin_opens_total": ("pss", "open"),
    "af_xcache_origin_open_errors_total": ("pss", "open/errs"),
}
"""Metrics read from the summary report: name -> (`<stats id>`, element path in it)."""

MAX_DATAGRAM = 65535


@dataclass(frozen=True)
class Summary:
    """One summary report: when it was made, when the server started, and the values it gave."""

    made: int
    started: int
    values: dict[str, int]


@dataclass(frozen=True)
class FileClose:
    """One g-stream `file_close` record: the bytes of that access, by where they came from."""

    hit: int
    miss: int
    bypass: int
    to_disk: int | None = None
    """Only in XRootD 5.6 and later."""


@dataclass(frozen=True)
class Disk:
    total: int
    used: int


def _count(text: str | None, what: str) -> int:
    """A non-negative integer, or ValueError naming `what`."""
    digits = (text or "").strip()
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError(f"{what}: not a count: {text!r}")
    return int(digits)


def parse_summary(data: bytes) -> Summary:
    """A summary report (`<statistics tod=… tos=…><stats id=…>…`). Sections the report was not
    asked for are left out; a section present without a field this program reads is an error."""
    try:
        root = ElementTree.fromstring(data.rstrip(b"\0"))
    except ElementTree.ParseError as error:
        raise ValueError(f"not XML: {error}") from None
    if root.tag != "statistics":
        raise ValueError(f"not a summary report: <{root.tag}>")
    sections = {stats.get("id"): stats for stats in root.findall("stats")}
    values = {}
    for name, (section, path) in SUMMARY_FIELDS.items():
        stats = sections.get(section)
        if stats is None:
            continue
        element = stats.find(path)
        if element is None:
            raise ValueError(f'<stats id="{section}"> has no {path}')
        values[name] = _count(element.text, f"{section}/{path}")
    return Summary(made=_count(root.get("tod"), "tod"), started=_count(root.get("tos"), "tos"), values=values)


def parse_file_closes(data: bytes) -> list[FileClose]:
    """The `file_close` records of a g-stream datagram; records of other events are skipped."""
    try:
        text = data.rstrip(b"\0").decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"not UTF-8: {error}") from None
    closes = []
    for line in text.splitlines():
        if not line.strip():
            continue
        record = json.loads(line)  # json.JSONDecodeError is a ValueError
        if not isinstance(record, dict):
            raise ValueError(f"not a JSON object: {line[:80]!r}")
        if record.get("event") != "file_close":
            continue
        hit, miss, bypass = (_record_count(record, key) for key in ("b_hit", "b_miss", "b_bypass"))
        to_disk = _record_count(record, "b_todisk") if "b_todisk" in record else None
        closes.append(FileClose(hit, miss, bypass, to_disk))
    return closes


def _record_count(record: dict[str, object], key: str) -> int:
    """The count `record[key]`, or ValueError."""
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"file_close: {key} is not a count: {value!r}")
    return value


def parse_datagram(data: bytes) -> Summary | list[FileClose]:
    """A summary report or g-stream records, told apart by their first character."""
    head = data.lstrip()[:1]
    if head == b"<":
        return parse_summary(data)
    if head == b"{":
        return parse_file_closes(data)
    raise ValueError(f"neither a summary report nor g-stream records: {data[:40]!r}")


@dataclass
class Totals:
    """What the server has reported so far: the last summary, and the g-stream's sums."""

    summary: Summary | None = None
    sums: dict[str, int] = field(
        default_factory=lambda: {
            "af_xcache_hit_bytes_total": 0,
            "af_xcache_miss_bytes_total": 0,
            "af_xcache_bypass_bytes_total": 0,
            "af_xcache_file_closes_total": 0,
        }
    )
    malformed: int = 0

    def add(self, data: bytes) -> None:
        """Take in one datagram; one that cannot be read changes nothing but the error count."""
        try:
            parsed = parse_datagram(data)
        except ValueError:
            self.malformed += 1
            return
        if isinstance(parsed, Summary):
            self.summary = parsed
            return
        for close in parsed:
            self.sums["af_xcache_hit_bytes_total"] += close.hit
            self.sums["af_xcache_miss_bytes_total"] += close.miss
            self.sums["af_xcache_bypass_bytes_total"] += close.bypass
            self.sums["af_xcache_file_closes_total"] += 1
            if close.to_disk is not None:  # absent, not zero, from servers that do not report it
                written = self.sums.get("af_xcache_written_bytes_total", 0)
                self.sums["af_xcache_written_bytes_total"] = written + close.to_disk


def render(totals: Totals, disk: Disk | None) -> str:
    """The Prometheus text exposition of `totals` and `disk`. Values from the summary appear once
    a report arrived (no made-up zeros for a server that never reported)."""
    values: dict[str, int] = dict(totals.sums)
    values["af_xcache_exporter_malformed_datagrams_total"] = totals.malformed
    values["af_xcache_exporter_last_report_timestamp_seconds"] = totals.summary.made if totals.summary else 0
    if totals.summary is not None:
        values.update(totals.summary.values)
        values["af_xcache_server_start_timestamp_seconds"] = totals.summary.started
    if disk is not None:
        values["af_xcache_disk_total_bytes"] = disk.total
        values["af_xcache_disk_used_bytes"] = disk.used
    unknown = sorted(set(values) - set(METRICS))
    if unknown:
        raise KeyError(f"not declared in METRICS: {unknown}")
    lines = []
    for name, (kind, text) in METRICS.items():
        if name in values:
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", f"{name} {values[name]}"]
    return "\n".join(lines) + "\n"


def disk_usage(path: str) -> Disk | None:
    """Size and use of the filesystem holding `path` (what the cache's purge measures too)."""
    try:
        stat = os.statvfs(path)
    except OSError:
        return None
    return Disk(total=stat.f_blocks * stat.f_frsize, used=(stat.f_blocks - stat.f_bfree) * stat.f_frsize)


class Exporter:
    """The UDP listener and the HTTP server, each on a thread. Port 0 binds a free port; the
    bound addresses are `udp_address` and `http_address`."""

    def __init__(self, udp: tuple[str, int], http: tuple[str, int], disk: str | None = None) -> None:
        self.totals = Totals()
        self.disk = disk
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._udp.bind(udp)
        self._udp.settimeout(5)  # a lost wake-up datagram (see `close`) delays closing this long at most
        self._http = _MetricsServer(http, self)
        self.udp_address: tuple[str, int] = self._udp.getsockname()
        self.http_address: tuple[str, int] = self._http.server_address[:2]
        self._threads = [
            threading.Thread(target=self._receive, name="udp", daemon=True),
            threading.Thread(target=self._http.serve_forever, name="http", daemon=True),
        ]

    def start(self) -> Exporter:
        for thread in self._threads:
            thread.start()
        return self

    def close(self) -> None:
        self._stopping.set()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as waker:  # ends the receiver's wait now
            waker.sendto(b"", ("127.0.0.1", self.udp_address[1]))
        if self._threads[1].is_alive():
            self._http.shutdown()  # waits for serve_forever: only when it runs
        self._http.server_close()
        for thread in self._threads:
            if thread.is_alive():
                thread.join()
        self._udp.close()

    def __enter__(self) -> Exporter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def metrics(self) -> str:
        disk = disk_usage(self.disk) if self.disk else None
        with self._lock:
            return render(self.totals, disk)

    def _receive(self) -> None:
        while not self._stopping.is_set():
            try:
                data = self._udp.recv(MAX_DATAGRAM)
            except socket.timeout:  # noqa: UP041 (an OSError, not yet TimeoutError, in Python 3.9)
                continue
            if self._stopping.is_set():
                return
            with self._lock:
                self.totals.add(data)


class _MetricsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], exporter: Exporter) -> None:
        super().__init__(address, _MetricsHandler)
        self.exporter = exporter


class _MetricsHandler(BaseHTTPRequestHandler):
    server: _MetricsServer

    def do_GET(self) -> None:
        if self.path.partition("?")[0] != "/metrics":
            self.send_error(404)
            return
        body = self.server.exporter.metrics().encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Silent: a log line per scrape says nothing."""


def address(text: str) -> tuple[str, int]:
    """`host:port` for argparse."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"host:port, not {text!r}")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--udp", type=address, required=True, help="where XRootD sends its reports")
    parser.add_argument("--http", type=address, required=True, help="where /metrics is served")
    parser.add_argument("--disk", help="a path on the cache's disk, for its size and use")
    args = parser.parse_args(argv)
    exporter = Exporter(args.udp, args.http, args.disk).start()
    # As PID 1 of its container SIGTERM has no default action: exit on it, or the pod waits.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            signal.pause()
    finally:
        exporter.close()


if __name__ == "__main__":
    sys.exit(main())
