"""Typed stack configuration under the Pulumi namespace `af`."""

from .cluster import GPU_TAINT_KEY, Cluster, GpuSpec, NodeGroup, Taint
from .errors import ConfigError, Problem
from .facility import FacilityConfig, Usage, usage
from .loader import build_config, deep_merge
from .site import Flavor, Quotas, Site

__all__ = [
    "GPU_TAINT_KEY",
    "Cluster",
    "ConfigError",
    "FacilityConfig",
    "Flavor",
    "GpuSpec",
    "NodeGroup",
    "Problem",
    "Quotas",
    "Site",
    "Taint",
    "Usage",
    "build_config",
    "deep_merge",
    "usage",
]
