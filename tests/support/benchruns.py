"""The benchmarks as their smoke tests run them: in-tree, in `--quick` mode."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RATIO = re.compile(r"ratio\D*?(\d+(?:\.\d+)?)")


def run_quick(script: str, *args: str, timeout: float = 300) -> str:
    """What `benchmarks/<script> --quick ARGS` printed; it must succeed."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def ratios(output: str) -> list[float]:
    """The ratios a benchmark printed (`… ratio 0.87`)."""
    return [float(m.group(1)) for m in RATIO.finditer(output)]
