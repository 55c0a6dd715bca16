"""A valid offload gateway declaration (CINECA Leonardo's booster partition, GPU workers), shared
by the config, program and planner tests."""

from __future__ import annotations

import copy
from typing import Any

_LEONARDO: dict[str, Any] = {
    "kind": "interlink-slurm",
    "endpoint": "https://interlink.leonardo.example.org:8443/",
    "auth": {
        "kind": "iam-client",
        "clientId": "af-interlink-leonardo",
        "clientSecret": "leonardo-client-secret-value",
        "audience": "interlink",
    },
    "resources": {"cpus": 256, "memoryGib": 1024, "gpus": 24, "gpuModel": "a100", "pods": 50},
    "worker": {"cpus": 32, "memoryGib": 120, "gpus": 4},
    "slurm": {"partition": "boost_usr_prod", "account": "INF24_cms", "qos": "normal", "flags": ["--exclusive"]},
    "limits": {"maxJobs": 4, "wallTimeMinutes": 1440},
    "groups": ["/cms"],
    "sourceCidrs": ["131.175.0.0/16"],
}
_CPU_ONLY: dict[str, Any] = {
    **_LEONARDO,
    "endpoint": "https://interlink.galileo.example.org/",
    "auth": {"kind": "token", "token": "galileo-static-token-value"},
    "resources": {"cpus": 512, "memoryGib": 2048, "pods": 100},
    "worker": {"cpus": 16, "memoryGib": 60},
    "slurm": {"partition": "g100_usr_prod", "account": "INF24_cms"},
    "limits": {"maxJobs": 40, "wallTimeMinutes": 720},
}


def leonardo(**changes: Any) -> dict[str, Any]:
    """The GPU gateway, with top-level keys replaced."""
    return {**copy.deepcopy(_LEONARDO), **changes}


def galileo(**changes: Any) -> dict[str, Any]:
    """A CPU-only gateway with a static token."""
    return {**copy.deepcopy(_CPU_ONLY), **changes}
