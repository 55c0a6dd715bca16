"""Smoke test of the benchmarks: they run and print their figures. Timing is never asserted."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_preview_quick_prints_a_positive_ratio():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_preview.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ratios = [float(m.group(1)) for m in re.finditer(r"ratio\D*?(\d+(?:\.\d+)?)", proc.stdout)]
    assert ratios, proc.stdout
    assert all(r > 0 for r in ratios), proc.stdout
