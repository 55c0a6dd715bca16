"""Where a read's time goes, from XrdCl's own `Dump` log (`XRD_LOGLEVEL=Dump`, `XRD_LOGFILE`): the vector reads a
client sent and when each was answered, and the block reads a cache's upstream client sent to the origin, grouped
into bursts (reads sent together: one origin round trip each). Used by `bench_cache_wan.py --trace`.

A cache serves one connection's requests one at a time, so the client's vector reads are answered in turn, each only
once the blocks it needs came: a burst belongs to the first vector read answered after the burst's own answers (the
cache may start the next one's burst while the client still receives the previous answer)."""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

_STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)")
_READV = re.compile(r"kXR_readv \(handle: (\S+), chunks: \[\(offset: (\d+), size: \d+\).*?total size: (\d+)\)")
_BLOCK = re.compile(r"kXR_(pg)?read \(handle: (\S+), offset: (\d+), size: (\d+)\)")
BURST_GAP = 0.005
"""Seconds between two block reads' sending that start a new burst (a burst is sent at once, in well under 1 ms)."""


def _seconds(line: str) -> float | None:
    match = _STAMP.match(line)
    if not match:
        return None
    stamp = datetime.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S.%f")
    return stamp.replace(tzinfo=datetime.UTC).timestamp()


@dataclass
class VectorRead:
    """One kXR_readv a client sent: when, how many bytes, when its last answer came, in how many answers."""

    sent: float
    size: int
    done: float | None = None
    answers: int = 0


@dataclass
class Burst:
    """Block reads a cache sent to its origin together, and when their answers came."""

    sent: float
    reads: int = 0
    bytes: int = 0
    answered: float | None = None


def vector_reads(lines: Iterable[str]) -> list[VectorRead]:
    """The client's vector reads, in the order sent (a request is known by its handle, first chunk and size)."""
    found: dict[tuple[str, int, int], VectorRead] = {}
    for line in lines:
        if "kXR_readv" not in line or (when := _seconds(line)) is None or not (match := _READV.search(line)):
            continue
        key = (match.group(1), int(match.group(2)), int(match.group(3)))
        if "[PostMaster" in line and "Sending message kXR_readv" in line:
            found[key] = VectorRead(when, key[2])
        elif key in found and ("Got a kXR_oksofar response" in line or "Got a kXR_ok response" in line):
            read = found[key]
            read.answers += 1
            if "Got a kXR_ok response" in line:
                read.done = when
    return [r for r in found.values() if r.done is not None]


def bursts(lines: Iterable[str]) -> list[Burst]:
    """A cache's block reads from its origin (kXR_read or kXR_pgread, as sent by its XrdCl), grouped into bursts."""
    sent: dict[tuple[str, int, int], float] = {}
    answered: dict[tuple[str, int, int], float] = {}
    for line in lines:
        if "kXR_" not in line or (when := _seconds(line)) is None or not (match := _BLOCK.search(line)):
            continue
        key = (match.group(2), int(match.group(3)), int(match.group(4)))
        if "[PostMaster" in line and "Sending message kXR_" in line:
            sent[key] = when
        elif "Got a kXR_" in line and "response to request kXR_" in line:
            answered[key] = when
    groups: list[Burst] = []
    last: float | None = None
    for when, key in sorted((t, k) for k, t in sent.items()):
        if last is None or when - last > BURST_GAP:
            groups.append(Burst(when))
        burst, last = groups[-1], when
        burst.reads, burst.bytes = burst.reads + 1, burst.bytes + key[2]
        if key in answered:
            burst.answered = max(burst.answered or 0.0, answered[key])
    return groups


def round_trips(groups: list[Burst]) -> int:
    """Origin round trips the bursts took one after the other: a burst sent only once every earlier one was answered
    waited a round trip of its own; one sent while others were in flight shared theirs."""
    trips, answered = 0, float("-inf")
    for burst in groups:
        if burst.sent >= answered:
            trips += 1
        answered = max(answered, burst.answered or burst.sent)
    return trips


@dataclass
class Summary:
    """A read's vector reads and, through a cache, the origin round trips made for each."""

    reads: list[VectorRead]
    per_read_bursts: list[list[Burst]] = field(default_factory=list)

    @property
    def in_flight(self) -> int:
        """The most vector reads sent and not yet answered at any moment."""
        events = sorted([(r.sent, 1) for r in self.reads] + [(r.done or r.sent, -1) for r in self.reads])
        now = most = 0
        for _, step in events:
            now += step
            most = max(most, now)
        return most

    @property
    def span(self) -> float:
        """Seconds from the first vector read sent to the last answered."""
        return max(r.done or r.sent for r in self.reads) - min(r.sent for r in self.reads) if self.reads else 0.0


def summarize(client: Iterable[str], cache: Iterable[str] | None = None) -> Summary:
    """The client's vector reads; with the cache's upstream log, the bursts fetched for each (`per_read_bursts`, in
    the order the vector reads were answered)."""
    reads = vector_reads(client)
    summary = Summary(reads)
    if cache is None:
        return summary
    ordered = sorted(reads, key=lambda r: r.done or 0.0)
    summary.per_read_bursts = [[] for _ in ordered]
    start = min((r.sent for r in reads), default=0.0)
    for burst in bursts(cache):
        if burst.sent < start or burst.answered is None:
            continue  # before the first vector read (the file's open and its metadata), or never answered
        for index, read in enumerate(ordered):
            if read.done is not None and burst.answered <= read.done:
                summary.per_read_bursts[index].append(burst)
                break
    return summary
