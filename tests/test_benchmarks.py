"""Smoke test of the benchmarks: they run and print their figures. Timing is never asserted."""

from __future__ import annotations

import pytest
from support.benchruns import ratios, run_quick


def quick_ratios(script: str) -> list[float]:
    """Run a benchmark in its smoke mode; the ratios it printed."""
    output = run_quick(script)
    found = ratios(output)
    assert found, output
    return found


def test_bench_preview_quick_prints_a_positive_ratio():
    assert all(r > 0 for r in quick_ratios("bench_preview.py"))


@pytest.mark.daemon
def test_bench_xcache_quick_prints_positive_ratios():
    assert all(r > 0 for r in quick_ratios("bench_xcache.py"))


@pytest.mark.daemon
def test_bench_dask_quick_prints_positive_ratios():
    assert all(r > 0 for r in quick_ratios("bench_dask.py"))


def test_bench_planner_quick_prints_a_positive_ratio():
    assert all(r > 0 for r in quick_ratios("bench_planner.py"))


def test_sim_autoscaler_quick_prints_positive_ratios():
    assert all(r > 0 for r in quick_ratios("sim_autoscaler.py"))
