"""Checks of `af:gpu` against the node groups."""

from __future__ import annotations

from ..config.errors import Problem, problem
from ..config.facility import FacilityConfig
from .config import gpu_groups


def problems(cfg: FacilityConfig) -> list[Problem]:
    if cfg.gpu.device_plugin and not gpu_groups(cfg.cluster):
        return [problem(("gpu", "devicePlugin"), True, "true only when a node group has a gpu spec")]
    return []
