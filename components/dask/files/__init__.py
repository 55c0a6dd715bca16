"""Python the Dask layer ships as text: `gateway_*.py` are dask-gateway `extraConfig` snippets,
`hub_*.py` z2jh `hub.extraConfig` snippets, `af_dask_*.py` run in notebooks and on workers. Real
modules, so they are linted and tested like the rest of the code."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent
