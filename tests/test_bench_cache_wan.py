"""Smoke test of benchmarks/bench_cache_wan.py: its tiny run (a few MiB, the same code path: namespaces, tc tbf,
Toxiproxy, origin, site cache with token auth, node caches, uproot readers) completes and prints every figure, and
the emulation and caches did what the figures rely on, by the kernel's counters: Toxiproxy added the round trip, tbf
held the WAN to its rate, warm reads left the origin alone, a node cache's second pass left the site cache alone.
Timing ratios are printed, never asserted. Needs root and Go (for Toxiproxy): missing, the test fails."""

from __future__ import annotations

import re

import pytest
from support.benchruns import run_quick

FIGURES = [
    "warm/direct, 1 reader, wall",
    "cold/direct, 1 reader, wall",
    "origin bytes (cold, 1 reader) / needed",
    "warm 4 readers / 1 reader, aggregate throughput",
    "site bytes with/without node caches, 2 passes",
]


@pytest.fixture(scope="module")
def output() -> str:
    return run_quick("bench_cache_wan.py", "--skip-loopback")


def _run_mib(output: str, run: str, column: str) -> float:
    match = re.search(rf"^  {re.escape(run)}\s.*{column}\s+([\d.]+) MiB", output, re.MULTILINE)
    assert match, f"no {run!r} line:\n{output}"
    return float(match.group(1))


@pytest.mark.daemon
def test_every_figure_is_printed_as_a_positive_ratio(output: str) -> None:
    for name in FIGURES:
        match = re.search(rf"{re.escape(name)}\s+ratio\s+([\d.]+)", output)
        assert match, f"{name!r} missing:\n{output}"
        assert float(match.group(1)) > 0, output


@pytest.mark.daemon
def test_the_wan_has_the_round_trip_and_the_rate_it_claims(output: str) -> None:
    rtt = float(re.search(r"xrootd ping ([\d.]+) ms", output).group(1))
    wan = float(re.search(r"one TCP stream ([\d.]+) Gbit/s", output).group(1))
    assert 18 <= rtt <= 40, output  # 20 ms from Toxiproxy, plus the servers' own time
    assert wan <= 1.05, output  # tbf at 1 Gbit/s


@pytest.mark.daemon
def test_warm_reads_and_a_node_caches_second_pass_fetch_nothing_upstream(output: str) -> None:
    assert _run_mib(output, "cold 1 reader", "origin sent") > 0, output
    assert _run_mib(output, "warm 1 reader", "origin sent") < 0.1, output
    assert _run_mib(output, "warm 4 readers", "origin sent") < 0.1, output
    assert _run_mib(output, "node caches, pass 1", "site sent to nodes") > 0, output
    assert _run_mib(output, "node caches, pass 2", "site sent to nodes") < 0.1, output


@pytest.fixture(scope="module")
def traced() -> str:
    return run_quick("bench_cache_wan.py", "--trace")


def _traced(output: str, mode: str) -> list[str]:
    """The per-vector-read lines `--trace` printed for `mode`."""
    section = re.search(rf"^  {mode}: (\d+) vector reads.*\n((?:    vector read .*\n)+)", output, re.MULTILINE)
    assert section, f"no {mode} trace:\n{output}"
    lines = section.group(2).splitlines()
    assert len(lines) == int(section.group(1)) > 0, output
    return lines


@pytest.mark.daemon
def test_the_trace_finds_the_vector_reads_and_the_origin_round_trips(traced: str) -> None:
    """From XrdCl's own logs: uproot's vector reads in every mode; through the cache cold, block reads from the origin
    in at least one round trip; warm, none (the origin's byte counter says the same)."""
    assert not any("origin:" in line for line in _traced(traced, "direct")), traced
    cold = [re.search(r"origin: (\d+) round trip\(s\), (\d+) block reads", line) for line in _traced(traced, "cold")]
    assert all(cold), traced
    assert sum(int(m.group(1)) for m in cold) >= 1 and sum(int(m.group(2)) for m in cold) >= 1, traced
    assert all("origin: 0 round trip(s), 0 block reads" in line for line in _traced(traced, "warm")), traced
    assert _run_mib(traced, "warm (traced)", "origin sent") < 0.1, traced
