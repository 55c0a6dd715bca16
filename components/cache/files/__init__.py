"""Programs that turn what the facility's services report about themselves into Prometheus
metrics (the cache's exporter sidecar), shipped as text in ConfigMaps; real modules, so they
are linted and tested like the rest of the code."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent
