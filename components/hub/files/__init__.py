"""Python the hub and the notebooks run, shipped as text in the hub's Helm values:
`extra_*.py` are z2jh `hub.extraConfig` snippets, `af_token.py` runs in every notebook.
Kept as real modules so they are linted and tested like the rest of the code."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent
