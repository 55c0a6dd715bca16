"""The files of an interLink gateway, as models of what their programs read, and their renderers.

Three files per gateway: the virtual kubelet's config (in the cluster) and, for the HPC centre's
edge, the interLink API's and the Slurm plugin's. The models mirror the Go structs the programs
unmarshal (`yaml` tags of interLink's `InterLinkConfig`/`VirtualKubeletConfig` and of the Slurm
plugin's `SlurmConfig`): a key they do not know is an error here, where the Go side would
silently ignore it. Rendering goes through the models, so a rendered file always validates."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from ..common import yamltext
from ..names import GATEWAY_LABEL, GATEWAY_TAINT_KEY, GPU_RESOURCE, VIRTUAL_NODE_TAINT, virtual_node
from .config import Gateway

TOKEN_FILE = "/opt/interlink/token"
"""Where the virtual kubelet reads the bearer token it presents to the interLink API."""
API_PORT, PLUGIN_PORT = 3000, 4000
"""Loopback ports of the interLink API and of the Slurm plugin on the edge (TLS and token checks
are the edge's reverse proxy's job, in front of the API)."""
RUNTIME_PATHS = {"apptainer": "/usr/bin/apptainer", "singularity": "/usr/bin/singularity"}


class GoYaml(BaseModel):
    """A Go struct's YAML: keys exactly as its tags, nothing else."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def render(self) -> str:
        return yamltext.dump(self.model_dump(mode="json", exclude_none=True))


class Accelerator(GoYaml):
    ResourceType: str
    Model: str
    Available: int = Field(ge=0)


class NodeResources(GoYaml):
    CPU: str = Field(pattern=r"^\d+$")
    Memory: str = Field(pattern=r"^\d+Gi$")
    Pods: str = Field(pattern=r"^\d+$")
    Accelerators: list[Accelerator] = Field(default_factory=list)


class NodeTaint(GoYaml):
    Key: str
    Value: str
    Effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]


class VkHttp(GoYaml):
    Insecure: bool
    CaCert: str = ""


class VkKubeletHttp(GoYaml):
    Insecure: bool


class VirtualKubeletConfig(GoYaml):
    """interLink's virtual kubelet (`InterLinkConfig.yaml` in its pod)."""

    InterlinkURL: str = Field(pattern=r"^https://[^/\s:]+$")
    InterlinkPort: str = Field(pattern=r"^\d{1,5}$")
    VKTokenFile: str
    ServiceAccount: str
    Namespace: str
    ExportPodData: bool
    VerboseLogging: bool
    ErrorsOnlyLogging: bool
    Resources: NodeResources
    HTTP: VkHttp
    KubeletHTTP: VkKubeletHttp
    NodeLabels: list[str]
    NodeTaints: list[NodeTaint]


class InterLinkApiConfig(GoYaml):
    """The interLink API server on the edge (`InterLinkConfig.yaml`, `INTERLINKCONFIGPATH`)."""

    InterlinkAddress: str = Field(pattern=r"^http://127\.0\.0\.1$")
    InterlinkPort: str = Field(pattern=r"^\d{1,5}$")
    SidecarURL: str = Field(pattern=r"^http://127\.0\.0\.1$")
    SidecarPort: str = Field(pattern=r"^\d{1,5}$")
    VerboseLogging: bool
    ErrorsOnlyLogging: bool
    ExportPodData: bool
    DataRootFolder: str


class SlurmPluginConfig(GoYaml):
    """The Slurm plugin on the edge (`SlurmConfig.yaml`, `SLURMCONFIGPATH`)."""

    SidecarPort: str = Field(pattern=r"^\d{1,5}$")
    SbatchPath: str
    ScancelPath: str
    SqueuePath: str
    SinfoPath: str
    CommandPrefix: str
    ImagePrefix: Literal["docker://"]
    ExportPodData: bool
    DataRootFolder: str
    Namespace: str
    Tsocks: bool
    BashPath: str
    VerboseLogging: bool
    ErrorsOnlyLogging: bool
    ContainerRuntime: Literal["singularity"]
    SingularityPath: str
    SingularityPrefix: str
    SingularityDefaultOptions: list[str]
    EnableProbes: bool


def node_taints(gateway: str) -> list[NodeTaint]:
    """interLink's own taint, and ours naming the gateway."""
    return [
        NodeTaint(Key=VIRTUAL_NODE_TAINT, Value="true", Effect="NoSchedule"),
        NodeTaint(Key=GATEWAY_TAINT_KEY, Value=gateway, Effect="NoSchedule"),
    ]


def _endpoint(gateway: Gateway) -> tuple[str, str]:
    url = urlsplit(gateway.endpoint)
    return f"https://{url.hostname}", str(url.port or 443)


def virtual_kubelet_config(name: str, gateway: Gateway, namespace: str) -> VirtualKubeletConfig:
    url, port = _endpoint(gateway)
    r = gateway.resources
    accelerators = [Accelerator(ResourceType=GPU_RESOURCE, Model=r.gpu_model or "", Available=r.gpus)] if r.gpus else []
    return VirtualKubeletConfig(
        InterlinkURL=url,
        InterlinkPort=port,
        VKTokenFile=TOKEN_FILE,
        ServiceAccount=virtual_node(name),
        Namespace=namespace,
        ExportPodData=True,
        VerboseLogging=False,
        ErrorsOnlyLogging=False,
        Resources=NodeResources(
            CPU=str(r.cpus), Memory=f"{r.memory_gib}Gi", Pods=str(r.pods), Accelerators=accelerators
        ),
        # The edge's certificate is checked against the system's trust store.
        HTTP=VkHttp(Insecure=False),
        KubeletHTTP=VkKubeletHttp(Insecure=False),
        NodeLabels=[f"{GATEWAY_LABEL}={name}"],
        NodeTaints=node_taints(name),
    )


def interlink_api_config() -> InterLinkApiConfig:
    return InterLinkApiConfig(
        InterlinkAddress="http://127.0.0.1",
        InterlinkPort=str(API_PORT),
        SidecarURL="http://127.0.0.1",
        SidecarPort=str(PLUGIN_PORT),
        VerboseLogging=False,
        ErrorsOnlyLogging=False,
        ExportPodData=True,
        DataRootFolder=".local/interlink/jobs/",
    )


def slurm_plugin_config(gateway: Gateway, namespace: str) -> SlurmPluginConfig:
    options = ["--cleanenv", "--containall", "--no-home"]
    if gateway.worker.gpus:
        options.append("--nv")
    return SlurmPluginConfig(
        SidecarPort=str(PLUGIN_PORT),
        SbatchPath="/usr/bin/sbatch",
        ScancelPath="/usr/bin/scancel",
        SqueuePath="/usr/bin/squeue",
        SinfoPath="/usr/bin/sinfo",
        CommandPrefix="",
        ImagePrefix="docker://",
        ExportPodData=True,
        DataRootFolder=".local/interlink/jobs/",
        Namespace=namespace,
        Tsocks=False,
        BashPath="/bin/bash",
        VerboseLogging=False,
        ErrorsOnlyLogging=False,
        # apptainer answers to the singularity runtime's commands.
        ContainerRuntime="singularity",
        SingularityPath=RUNTIME_PATHS[gateway.runtime],
        SingularityPrefix="",
        SingularityDefaultOptions=options,
        EnableProbes=False,
    )


def edge_files(gateway: Gateway, namespace: str) -> dict[str, str]:
    """What the HPC centre installs on its edge, by file name."""
    return {
        "InterLinkConfig.yaml": interlink_api_config().render(),
        "SlurmConfig.yaml": slurm_plugin_config(gateway, namespace).render(),
    }
