"""`af:policy`: how the policy pack (`policy/`) judges this stack."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StrictBool

from ..names import (
    CACHE_NAMESPACE,
    CERT_MANAGER_NAMESPACE,
    CONDOR_NAMESPACE,
    CVMFS_NAMESPACE,
    DASK_NAMESPACE,
    GPU_NAMESPACE,
    HUB_NAMESPACE,
    MONITORING_NAMESPACE,
    NODE_LABELLER_NAMESPACE,
    OFFLOAD_NAMESPACE,
)
from .base import StrictModel

Level = Literal["advisory", "mandatory", "disabled"]
"""What a rule's violation does: print a warning, fail the preview (exit 1), or nothing."""
RuleName = Annotated[str, Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")]


PSS_LEVELS = ("privileged", "baseline", "restricted")
"""The Pod Security Standards, loosest first."""
Restricted = Literal["restricted", "baseline", "privileged"]
Baseline = Literal["baseline", "privileged"]
Privileged = Literal["privileged"]
PSS_VERSION_PATTERN = r"^(v1\.\d+|latest)$"
ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
ENFORCE_VERSION_LABEL = "pod-security.kubernetes.io/enforce-version"


class PodSecurity(StrictModel):
    """The Pod Security Standard each of the facility's namespaces enforces: its Namespace carries
    `pod-security.kubernetes.io/enforce: <level>` and `pod-security.kubernetes.io/enforce-version`,
    so the API server refuses any pod that does more than its level allows. Keys are the
    namespaces; each default is the strictest level the namespace's workloads allow, and its type
    only the levels they run under: a namespace may be loosened, never tightened beyond what its
    workloads need (the API server would refuse the facility's own pods). `privileged` is for the
    node agents' namespaces only."""

    version: str | None = Field(default=None, pattern=PSS_VERSION_PATTERN)
    """Version of the standards enforced (`v1.<minor>`, or `latest`); omit for the cluster's own
    minor: the k3s pin's in mode `openstack`, Magnum's `kubeTag` in mode `magnum`, `latest` in
    mode `existing` (set it there to the cluster's minor, so an upgrade does not change what is
    enforced)."""
    hub: Restricted = Field(default="restricted", alias=HUB_NAMESPACE)
    """The hub, its proxy and user scheduler, the image pullers and the notebooks run as
    non-root users without capabilities (the chart's privileged iptables init container is off:
    the facility's egress policy keeps notebooks from the metadata service)."""
    dask: Baseline = Field(default="baseline", alias=DASK_NAMESPACE)
    """The dask-gateway chart's API, controller and Traefik pods take no security context (its
    values schema has none), so they cannot meet `restricted`; they need nothing beyond
    `baseline`."""
    condor: Baseline = Field(default="baseline", alias=CONDOR_NAMESPACE)
    """HTCondor's daemons run as root: `condor_master` starts the other daemons and the starter
    runs each job as its own user, and the token minters read the pool's signing key, a
    root-owned private file."""
    cache: Baseline = Field(default="baseline", alias=CACHE_NAMESPACE)
    """XRootD starts as root to bind its ports and drops to the `xrootd` user (`-R`); an init
    container hands the cache's volumes to that user."""
    cvmfs: Privileged = Field(default="privileged", alias=CVMFS_NAMESPACE)
    """A node agents' namespace: the CVMFS CSI node plugin mounts /cvmfs on every node for the
    pods there (privileged containers, the host's PID namespace, bidirectional mounts)."""
    gpu: Privileged = Field(default="privileged", alias=GPU_NAMESPACE)
    """A node agents' namespace: the device plugin, GPU feature discovery and node feature
    discovery's worker read the host (the kubelet's device-plugin socket, /sys, /proc)."""
    monitoring: Privileged = Field(default="privileged", alias=MONITORING_NAMESPACE)
    """A node agents' namespace: the chart's node exporter reads the host (its network and PID
    namespaces and root filesystem) and the DCGM exporter the GPUs' kubelet socket; Prometheus,
    Grafana and the operator share the namespace with them."""
    cert_manager: Restricted = Field(default="restricted", alias=CERT_MANAGER_NAMESPACE)
    """cert-manager's controller, webhook, CA injector and API check run as non-root users
    without capabilities (the chart's defaults)."""
    offload: Restricted = Field(default="restricted", alias=OFFLOAD_NAMESPACE)
    """The offload gateways' virtual kubelets and their token sidecars run as an unprivileged
    user without capabilities."""
    node_labeller: Restricted = Field(default="restricted", alias=NODE_LABELLER_NAMESPACE)
    """Magnum's node labeller runs as an unprivileged user without capabilities."""

    def level(self, namespace: str) -> str:
        """The level of `namespace` (one of the keys above)."""
        for name, info in type(self).model_fields.items():
            if name != "version" and (info.alias or name) == namespace:
                return getattr(self, name)
        raise KeyError(f"no Pod Security level is declared for namespace {namespace}")

    def namespaces(self) -> dict[str, str]:
        """Every namespace with its level."""
        return {
            info.alias or name: getattr(self, name)
            for name, info in type(self).model_fields.items()
            if name != "version"
        }


class PolicySettings(StrictModel):
    """Stack-specific inputs of the policy pack: checked by `afctl policy` and handed to
    `pulumi preview --policy-pack policy` through the config file `afctl preview` writes."""

    production: StrictBool = False
    """A production facility: the control plane must be three nodes kept on different
    hypervisors (an anti-affinity server group; with Magnum, three masters behind a load
    balancer)."""
    enforcement: dict[RuleName, Level] = Field(default_factory=dict)
    """Enforcement level per rule, replacing the pack's default for this stack
    (`afctl policy --list` names the rules and their defaults)."""
    public_ports: list[Annotated[int, Field(ge=1, le=65535)]] = Field(default_factory=list)
    """TCP ports besides HTTPS (443) the site deliberately opens to the whole internet, for
    example 1094 for a cache serving other sites. Any other port open to 0.0.0.0/0 or ::/0 is a
    violation."""
    pod_security: PodSecurity = Field(default_factory=PodSecurity)
    """The Pod Security Standard each of the facility's namespaces enforces, by namespace (its
    Namespace's labels `pod-security.kubernetes.io/enforce` and `-version`): the API server then
    refuses any pod doing more than the level allows. Each default is the strictest level the
    namespace's workloads run under, and only looser ones are allowed; `privileged` is for the
    node agents' namespaces."""
