"""GPU support in the cluster: NVIDIA's device plugin (pinned chart and image) with GPU feature
discovery, on GPU nodes only, configured per node group. Each GPU node carries the label
`nvidia.com/device-plugin.config=<group>`, so the plugin advertises that group's GPUs whole,
time-sliced or as MIG instances, as the stack declares."""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_kubernetes as k8s

from ..common import rendered, yamltext
from ..common.kube import layer_namespace
from ..infra.config import Cluster
from ..names import GPU_NAMESPACE
from .config import Gpu
from .values import device_plugin_values

CHART = "nvidia-device-plugin"
CHART_REPO = "https://nvidia.github.io/k8s-device-plugin"


class DevicePlugin(pulumi.ComponentResource):
    """The NVIDIA device plugin release in its own namespace."""

    release: k8s.helm.v3.Release

    def __init__(
        self,
        name: str,
        gpu: Gpu,
        cluster: Cluster,
        provider: k8s.Provider,
        opts: pulumi.ResourceOptions | None = None,
        namespace_labels: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__("af:index:DevicePlugin", name, None, opts)
        namespace, _, ns_opts = layer_namespace(self, name, GPU_NAMESPACE, provider, namespace_labels)
        values = device_plugin_values(gpu, cluster)
        rendered.publish("gpu", "values.yaml", yamltext.dump(values))
        self.release = k8s.helm.v3.Release(
            f"{name}-chart",
            name=CHART,
            chart=CHART,
            version=gpu.chart_version,
            repository_opts={"repo": CHART_REPO},
            namespace=GPU_NAMESPACE,
            values=values,
            opts=ns_opts,
        )
        self.register_outputs({"namespace": namespace.metadata["name"]})
