"""Typed stack configuration under the Pulumi namespace `af`."""

from .cluster import GPU_TAINT_KEY, Cluster, GpuSpec, Mig, NodeGroup, Taint, TimeSlicing
from .errors import ConfigError, Problem
from .facility import FacilityConfig, Usage, usage
from .gpu import Gpu
from .loader import build_config, deep_merge
from .site import Flavor, Quotas, Site

__all__ = [
    "GPU_TAINT_KEY",
    "Cluster",
    "ConfigError",
    "FacilityConfig",
    "Flavor",
    "Gpu",
    "GpuSpec",
    "Mig",
    "NodeGroup",
    "Problem",
    "Quotas",
    "Site",
    "Taint",
    "TimeSlicing",
    "Usage",
    "build_config",
    "deep_merge",
    "usage",
]
