"""`af:gpu`: the cluster-wide half of GPU support, the NVIDIA device plugin. What each node
group has (GPUs, driver, time-slicing or MIG) is declared on the group (`GpuSpec`)."""

from __future__ import annotations

from pydantic import Field, StrictBool

from ..config.base import PinnedImage, StrictModel
from ..infra.config import Cluster


class Gpu(StrictModel):
    """The NVIDIA device plugin with GPU feature discovery: it advertises GPU nodes' GPUs as
    `nvidia.com/gpu`, with each group's time-slicing or MIG configuration."""

    device_plugin: StrictBool | None = None
    """Deploy the device plugin. By default it is deployed when a node group has GPUs, except in
    cluster mode `existing`, where the cluster usually runs its own (the NVIDIA GPU operator);
    set `true` there after labelling GPU nodes `nvidia.com/gpu.present=true` and
    `nvidia.com/device-plugin.config=<node group>`."""
    chart_version: str = Field(default="0.17.1", pattern=r"^\d+\.\d+\.\d+$")
    """Pinned `nvidia-device-plugin` chart version (https://nvidia.github.io/k8s-device-plugin)."""
    image: PinnedImage = "nvcr.io/nvidia/k8s-device-plugin:v0.17.1"
    """Device plugin and feature discovery image, pinned here rather than left to the chart. The
    chart's values set it only where it differs from the chart's own image for `chartVersion`
    (`nvcr.io/nvidia/k8s-device-plugin:v<chartVersion>`)."""


def gpu_groups(cluster: Cluster) -> list[str]:
    """Names of the node groups with GPUs, sorted."""
    return sorted(name for name, group in cluster.node_groups.items() if group.gpu is not None)


def deploys_device_plugin(gpu: Gpu, cluster: Cluster) -> bool:
    """Whether the facility deploys the device plugin (see `Gpu.device_plugin`)."""
    if gpu.device_plugin is not None:
        return gpu.device_plugin and bool(gpu_groups(cluster))
    return cluster.mode != "existing" and bool(gpu_groups(cluster))
