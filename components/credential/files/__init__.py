"""Programs that keep the facility's own service credentials fresh (the cache's upstream
credential, the offload gateways' IAM tokens), shipped as text in ConfigMaps; real modules, so
they are linted and tested like the rest of the code."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent
