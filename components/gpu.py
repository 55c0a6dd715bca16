"""GPU support in the cluster: NVIDIA's device plugin (pinned chart and image) with GPU feature
discovery, on GPU nodes only, configured per node group. Each GPU node carries the label
`nvidia.com/device-plugin.config=<group>`, so the plugin advertises that group's GPUs whole,
time-sliced or as MIG instances, as the stack declares."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from . import rendered, yamltext
from .cluster import SYSTEM_NODES
from .config import GPU_TAINT_KEY, FacilityConfig, GpuSpec
from .config.cluster import Cluster
from .config.gpu import Gpu
from .workloads import layer_namespace, resources

CHART = "nvidia-device-plugin"
CHART_REPO = "https://nvidia.github.io/k8s-device-plugin"
NAMESPACE = "nvidia-device-plugin"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_NODES = {"nvidia.com/gpu.present": "true"}
DEFAULT_CONFIG = "af.default"
"""Config of a GPU node without the group label (whole GPUs). The dot keeps it apart from
group names, which are DNS labels."""
GPU_TOLERATION = {"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}


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
    """`name:tag[@sha256:…]` as the chart's repository and tag (it joins them with `:`)."""
    repository, tag = reference.split(":", 1)
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


class DevicePlugin(pulumi.ComponentResource):
    """The NVIDIA device plugin release in its own namespace."""

    release: k8s.helm.v3.Release

    def __init__(
        self, name: str, cfg: FacilityConfig, provider: k8s.Provider, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("af:index:DevicePlugin", name, None, opts)
        namespace, _, ns_opts = layer_namespace(self, name, NAMESPACE, provider)
        values = device_plugin_values(cfg.gpu, cfg.cluster)
        rendered.publish("gpu", "values.yaml", yamltext.dump(values))
        self.release = k8s.helm.v3.Release(
            f"{name}-chart",
            name=CHART,
            chart=CHART,
            version=cfg.gpu.chart_version,
            repository_opts={"repo": CHART_REPO},
            namespace=NAMESPACE,
            values=values,
            opts=ns_opts,
        )
        self.register_outputs({"namespace": namespace.metadata["name"]})
