"""The device plugin chart's values: the plugin and GPU feature discovery on GPU nodes only,
configured per node group. Pure functions of the config."""

from __future__ import annotations

from typing import Any

from ..common import yamltext
from ..common.kube import image_parts, resources
from ..infra.config import Cluster, GpuSpec
from ..names import GPU_NODES, GPU_RESOURCE, GPU_TOLERATION, SYSTEM_NODES
from .config import Gpu

DEFAULT_CONFIG = "af.default"
"""Config of a GPU node without the group label (whole GPUs). The dot keeps it apart from
group names, which are DNS labels."""


def plugin_config(gpu: GpuSpec | None) -> dict[str, Any]:
    """The device plugin's config file (version v1) for one group: MIG strategy `single` keeps
    the resource name `nvidia.com/gpu` for MIG instances; time-slicing advertises each GPU
    `replicas` times under the same name."""
    config: dict[str, Any] = {"version": "v1", "flags": {"migStrategy": "single" if gpu and gpu.mig else "none"}}
    if gpu is not None and gpu.time_slicing is not None:
        config["sharing"] = {
            "timeSlicing": {"resources": [{"name": GPU_RESOURCE, "replicas": gpu.time_slicing.replicas}]}
        }
    return config


def _image(reference: str) -> dict[str, str]:
    """The chart's image: repository and tag, which it joins with `:`."""
    repository, tag = image_parts(reference)
    return {"repository": repository, "tag": tag}


def device_plugin_values(gpu: Gpu, cluster: Cluster) -> dict[str, Any]:
    """The chart's values: plugin and feature discovery on GPU nodes only, tolerating their
    taint; one config per GPU node group; node feature discovery's own controllers on system
    nodes (they need no GPU), its worker beside feature discovery on GPU nodes."""
    groups = {name: group.gpu for name, group in sorted(cluster.node_groups.items()) if group.gpu is not None}
    configs = {DEFAULT_CONFIG: plugin_config(None)} | {name: plugin_config(spec) for name, spec in groups.items()}
    return {
        "image": _image(gpu.image),
        "config": {
            "map": {name: yamltext.dump(config) for name, config in configs.items()},
            "default": DEFAULT_CONFIG,
        },
        "nodeSelector": dict(GPU_NODES),
        "tolerations": [dict(GPU_TOLERATION)],
        "resources": resources("20m", "64Mi", "200m", "256Mi"),
        "gfd": {"enabled": True},
        "nfd": {
            "enabled": True,
            "master": {
                "nodeSelector": dict(SYSTEM_NODES),
                "tolerations": [],
                "resources": resources("50m", "128Mi", "500m", "512Mi"),
            },
            "gc": {
                "nodeSelector": dict(SYSTEM_NODES),
                "tolerations": [],
                "resources": resources("10m", "64Mi", "200m", "256Mi"),
            },
            "worker": {
                "nodeSelector": dict(GPU_NODES),
                "tolerations": [dict(GPU_TOLERATION)],
                "resources": resources("5m", "64Mi", "200m", "256Mi"),
            },
        },
    }
