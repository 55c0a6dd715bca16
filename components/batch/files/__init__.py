"""Programs the pool's daemons run, shipped as text in a ConfigMap; real modules, so they are
linted and tested like the rest of the code."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent
