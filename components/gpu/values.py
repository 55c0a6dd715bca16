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


CHART_IMAGE_REPOSITORY = "nvcr.io/nvidia/k8s-device-plugin"
"""The chart's default `image.repository`."""


def chart_image(chart_version: str) -> str:
    """The image the chart runs when `image` is not set: its repository with the tag
    `v<appVersion>` (the chart's `nvidia-device-plugin.fullimage` helper: `.Values.image.tag |
    default (printf "v%s" .Chart.AppVersion)`), appVersion being the chart's version."""
    return f"{CHART_IMAGE_REPOSITORY}:v{chart_version}"


def image_values(reference: str, chart_version: str) -> dict[str, str]:
    """The chart's `image` for `reference`: only the parts that differ from what the chart
    runs by itself, so the pinned default restates nothing and any other image still wins."""
    repository, tag = image_parts(reference)
    default_repository, default_tag = image_parts(chart_image(chart_version))
    image = {}
    if repository != default_repository:
        image["repository"] = repository
    if tag != default_tag:
        image["tag"] = tag
    return image


def device_plugin_values(gpu: Gpu, cluster: Cluster) -> dict[str, Any]:
    """The chart's values: plugin and feature discovery on GPU nodes only, tolerating their
    taint; one config per GPU node group; node feature discovery's master on system nodes (it
    needs no GPU), its worker beside feature discovery on GPU nodes. Node feature discovery
    comes with `gfd.enabled` (the dependency's condition is `nfd.enabled,gfd.enabled`); its
    garbage collector renders only with `nfd.enableNodeFeatureApi`, which the chart leaves off."""
    groups = {name: group.gpu for name, group in sorted(cluster.node_groups.items()) if group.gpu is not None}
    configs = {DEFAULT_CONFIG: plugin_config(None)} | {name: plugin_config(spec) for name, spec in groups.items()}
    image = image_values(gpu.image, gpu.chart_version)
    return {
        **({"image": image} if image else {}),
        "config": {
            "map": {name: yamltext.dump(config) for name, config in configs.items()},
            "default": DEFAULT_CONFIG,
        },
        "nodeSelector": dict(GPU_NODES),
        "tolerations": [dict(GPU_TOLERATION)],
        "resources": resources("20m", "64Mi", "200m", "256Mi"),
        "gfd": {"enabled": True},
        "nfd": {
            "master": {
                "nodeSelector": dict(SYSTEM_NODES),
                "tolerations": [],
                "resources": resources("50m", "128Mi", "500m", "512Mi"),
            },
            "worker": {
                "nodeSelector": dict(GPU_NODES),
                "tolerations": [dict(GPU_TOLERATION)],
                "resources": resources("5m", "64Mi", "200m", "256Mi"),
            },
        },
    }
