"""Smoke test of the benchmarks: they run and print their figures. Timing is never asserted."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def quick_ratios(script: str) -> list[float]:
    """Run a benchmark in its smoke mode; the ratios it printed."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ratios = [float(m.group(1)) for m in re.finditer(r"ratio\D*?(\d+(?:\.\d+)?)", proc.stdout)]
    assert ratios, proc.stdout
    return ratios


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
