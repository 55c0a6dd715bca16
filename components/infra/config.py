"""Config of the infrastructure layer: `af:site`, the OpenStack project the facility runs in, and
`af:cluster`, how Kubernetes comes to exist and the node groups it is made of."""

from __future__ import annotations

import base64
import binascii
import struct
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, NonNegativeInt, PositiveInt, SecretStr, model_validator

from ..config.base import Cidr, DnsLabel, Fqdn, NodeCidr, PinnedImage, RestrictedCidr, Sha256, StrictModel
from ..names import CONTROL_PLANE_GROUP, NodeRole

SYSTEM_RESERVE_CORES = 0.5
"""Cores of every node left to its system pods (kubelet, CNI, CSI node plugins)."""
NODE_MEMORY_FRACTION = 0.9
"""Fraction of a node's RAM pods may take; the rest stays with the system."""
FIT_RULE = "at most the flavor's vCPUs less half a core and 90% of its RAM"


class Flavor(StrictModel):
    """A Nova flavor the site offers, with the sizes quota arithmetic needs."""

    vcpus: PositiveInt
    """Virtual CPUs of one instance of this flavor."""
    ram_gib: PositiveInt
    """Memory of one instance, in GiB."""
    gpus: NonNegativeInt = 0
    """GPUs passed through to one instance (0 for CPU flavors)."""
    gpu_model: str | None = None
    """GPU model of the flavor (for example `a100`, `t4`); required when `gpus` > 0."""


def fits(cpu: float, memory_gib: float, flavor: Flavor) -> bool:
    """A pod of this size fits a node of the flavor next to the node's own system pods."""
    return cpu <= flavor.vcpus - SYSTEM_RESERVE_CORES and memory_gib <= flavor.ram_gib * NODE_MEMORY_FRACTION


class Quotas(StrictModel):
    """The OpenStack project's quota: the plan must fit inside it."""

    vcpus: NonNegativeInt
    """Virtual CPUs the project may use."""
    ram_gib: NonNegativeInt
    """Memory the project may use, in GiB."""
    instances: NonNegativeInt
    """Number of servers the project may run."""
    volumes: NonNegativeInt
    """Number of Cinder volumes the project may hold."""
    volume_gib: NonNegativeInt
    """Total size of Cinder volumes, in GiB."""
    floating_ips: NonNegativeInt
    """Floating IPs the project may allocate."""
    gpus: NonNegativeInt = 0
    """GPUs the project may use (sum over GPU flavors)."""


SSH_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)
"""Key types OpenSSH's sshd accepts in `authorized_keys` by default."""


def _ssh_public_key(value: str) -> str:
    """One `authorized_keys` line: a key type, the key in base64 (whose blob names the same
    type), an optional comment. Anything else would lock the operator out at first boot."""
    allowed = "an OpenSSH public key line such as 'ssh-ed25519 AAAAC3Nz… you@host' (the content of ~/.ssh/id_*.pub)"
    parts = value.split()
    if len(parts) < 2 or parts[0] not in SSH_KEY_TYPES:
        raise ValueError(allowed)
    try:
        blob = base64.b64decode(parts[1], validate=True)
        (length,) = struct.unpack(">I", blob[:4])
        named = blob[4 : 4 + length].decode("ascii")
    except (binascii.Error, struct.error, UnicodeDecodeError):
        raise ValueError(allowed + ": its key is not valid base64") from None
    if named != parts[0]:
        raise ValueError(allowed + f": its key is of type {named or 'unknown'}, not {parts[0]}")
    return value


SshPublicKey = Annotated[str, AfterValidator(_ssh_public_key)]


class Site(StrictModel):
    """An OpenStack project on a cloud site (INFN-Cloud first)."""

    name: DnsLabel
    """Short name of the site, used in resource names (for example `infn-pg`)."""
    region: str = "RegionOne"
    """OpenStack region the resources are created in."""
    external_network: str
    """Name of the provider network floating IPs and the router gateway come from."""
    image: str
    """Glance image name for every VM (an Ubuntu 24.04 LTS cloud image or equivalent)."""
    availability_zone: str | None = None
    """Nova availability zone; omit to let the scheduler choose."""
    admin_cidrs: list[RestrictedCidr] = Field(min_length=1)
    """Networks allowed to reach SSH (22) and the Kubernetes API (6443); never 0.0.0.0/0."""
    dns_name: Fqdn
    """DNS name of the facility's entry point; the hub and the API certificate use it."""
    node_cidr: NodeCidr = "10.10.0.0/24"
    """Private subnet the VMs live on."""
    dns_nameservers: list[str] = Field(default_factory=lambda: ["131.154.1.1"])
    """Resolvers handed to VMs by DHCP."""
    ssh_public_keys: list[SshPublicKey] = Field(default_factory=list)
    """Operators' OpenSSH public keys installed on every VM in addition to the generated one."""
    flavors: dict[str, Flavor] = Field(min_length=1)
    """Flavors this site offers, by name; node groups must use one of them."""
    quotas: Quotas
    """The project's quota."""


MIG_COMPUTE_SLICES = 7
"""Compute slices of the largest MIG-capable GPUs (A100, H100, H200): no GPU fits more instances.
Smaller ones (A30: 4) are held to their own limit by `nvidia-smi` at boot."""


class Taint(StrictModel):
    """A Kubernetes node taint."""

    key: str = Field(pattern=r"^([a-z0-9.-]+/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
    """Taint key, for example `nvidia.com/gpu`."""
    value: str = ""
    """Taint value, for example `present`."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = "NoSchedule"
    """What the taint does to pods that do not tolerate it."""

    def render(self) -> str:
        """The `key=value:Effect` form kubelet and k3s take."""
        return f"{self.key}={self.value}:{self.effect}" if self.value else f"{self.key}:{self.effect}"


class TimeSlicing(StrictModel):
    """GPU time-slicing by the device plugin: each GPU is advertised `replicas` times and the
    pods given those replicas take turns on it, with no memory or fault isolation."""

    replicas: int = Field(ge=2, le=64)
    """`nvidia.com/gpu` resources each physical GPU becomes."""


class Mig(StrictModel):
    """Multi-Instance GPU (A100, A30, H100, H200): every GPU of the node is split into
    `instances` isolated GPU instances of one profile at boot. The device plugin runs MIG
    strategy `single`, so each instance is one `nvidia.com/gpu`."""

    profile: str = Field(pattern=r"^[1-7]g\.\d{1,3}gb(\+me)?$")
    """GPU instance profile, for example `1g.10gb` or `3g.40gb` (`nvidia-smi mig -lgip` lists
    what a GPU offers)."""
    instances: int = Field(ge=1, le=MIG_COMPUTE_SLICES)
    """GPU instances per GPU."""

    @model_validator(mode="after")
    def _fits_the_gpu(self) -> Mig:
        slices = int(self.profile[0]) * self.instances
        if slices > MIG_COMPUTE_SLICES:
            raise ValueError(
                f"instances that fit the GPU's {MIG_COMPUTE_SLICES} compute slices "
                f"({self.instances} x {self.profile} takes {slices})"
            )
        return self


class GpuSpec(StrictModel):
    """GPUs on each node of a group, how the node gets its driver, and how the GPUs are shared.
    Hub GPU profiles and HTCondor GPU workers count the schedulable GPUs (`count` times the
    time-slicing replicas or MIG instances)."""

    count: PositiveInt
    """GPUs per node."""
    model: DnsLabel
    """GPU model, for example `a100`; becomes the `af.infn.it/gpu-model` node label."""
    driver: Literal["install", "preinstalled"] = "install"
    """`install`: cloud-init installs the NVIDIA driver and container toolkit at first boot,
    before Kubernetes starts; `preinstalled`: the group's image already has both (faster boots,
    required with Secure Boot). Mode `openstack` only: other modes do not run the facility's
    cloud-init."""
    driver_branch: str = Field(default="580-server", pattern=r"^\d{3}(-server)?$")
    """Ubuntu NVIDIA driver branch installed (`nvidia-headless-<branch>`); `580-server` is the
    long-term support branch."""
    container_toolkit_version: str = Field(default="1.17.8-1", pattern=r"^\d+\.\d+\.\d+-\d+$")
    """Pinned NVIDIA container toolkit package version, from NVIDIA's apt repository."""
    time_slicing: TimeSlicing | None = None
    """Share each GPU among several pods in turns; omit for whole GPUs."""
    mig: Mig | None = None
    """Split each GPU into MIG instances; omit for whole GPUs. Not with `timeSlicing`."""

    @model_validator(mode="after")
    def _one_way_to_share(self) -> GpuSpec:
        if self.time_slicing is not None and self.mig is not None:
            raise ValueError("timeSlicing or mig, not both (time-slicing MIG instances is not supported here)")
        return self

    @property
    def per_gpu(self) -> int:
        """`nvidia.com/gpu` resources one physical GPU becomes."""
        if self.time_slicing is not None:
            return self.time_slicing.replicas
        if self.mig is not None:
            return self.mig.instances
        return 1

    @property
    def schedulable(self) -> int:
        """`nvidia.com/gpu` resources a node of the group advertises."""
        return self.count * self.per_gpu


class NodeGroup(StrictModel):
    """A set of identical worker nodes."""

    flavor: str
    """Flavor name from `af:site.flavors`."""
    count: NonNegativeInt
    """Number of nodes."""
    image: str | None = None
    """Glance image of the group's VMs, for example a GPU-ready image with the NVIDIA driver;
    omit to use `af:site.image` (mode `openstack`)."""
    roles: list[NodeRole] = Field(default_factory=lambda: ["system"], min_length=1)
    """Workloads the group hosts: system services, notebooks, batch workers, caches, Dask workers."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Extra Kubernetes node labels."""
    taints: list[Taint] = Field(default_factory=list)
    """Kubernetes node taints; GPU groups must carry `nvidia.com/gpu`."""
    volume_gib: NonNegativeInt = 0
    """Size of an extra Cinder volume per node (0: none), mounted at `/var/lib/af-data`."""
    volume_type: str | None = None
    """Cinder volume type of that volume; omit for the site default."""
    gpu: GpuSpec | None = None
    """GPUs per node, when the flavor has them."""


class ControlPlane(StrictModel):
    """The Kubernetes control plane."""

    count: Literal[1, 3] = 1
    """Control-plane nodes: 1, or 3 for an HA etcd quorum."""
    flavor: str
    """Flavor name from `af:site.flavors`."""
    roles: list[NodeRole] = Field(default_factory=list)
    """Workloads the control-plane nodes host besides Kubernetes itself (mode `openstack`): with
    roles they are not tainted, and a small facility, or a single machine, needs no node group.
    Empty: the control plane is tainted `node-role.kubernetes.io/control-plane:NoSchedule` and
    runs nothing of the facility."""


class K3s(StrictModel):
    """The Kubernetes distribution installed by cloud-init (mode `openstack`)."""

    distribution: Literal["k3s"] = "k3s"
    """Distribution; k3s is the one supported."""
    version: str = Field(default="v1.36.2+k3s1", pattern=r"^v1\.\d+\.\d+\+k3s\d+$")
    """Pinned release tag; another release needs its own `sha256` given with it."""
    sha256: Sha256 = "65a55ec56c24eab44383086166ec620a491952b7e23941a49ddca6e8a4c4b4de"
    """SHA-256 of that release's amd64 `k3s` binary (its `sha256sum-amd64.txt`); set together
    with `version`, since nodes refuse a binary whose checksum differs."""


class Magnum(StrictModel):
    """A cluster made by OpenStack Magnum (mode `magnum`)."""

    image: str | None = None
    """Glance image of the template (Fedora CoreOS for Magnum); omit to use `af:site.image`."""
    kube_tag: str = Field(default="v1.30.4", pattern=r"^v1\.\d+\.\d+$")
    """Kubernetes version label of the cluster template."""
    network_driver: Literal["calico", "flannel"] = "calico"
    """CNI the template installs."""
    docker_volume_gib: PositiveInt = 50
    """Container storage volume per node, in GiB."""
    labeller_image: PinnedImage = "docker.io/library/python:3.12.8-alpine3.21"
    """Image of the node labeller, which gives Magnum's nodes the node groups' labels and taints
    (it runs a standard-library Python program)."""


class Existing(StrictModel):
    """A cluster that already exists (mode `existing`)."""

    kubeconfig: SecretStr
    """Kubeconfig of the cluster; a Pulumi secret (`pulumi config set --secret --path`)."""


class Cluster(StrictModel):
    """The Kubernetes cluster every platform layer is deployed on."""

    mode: Literal["openstack", "magnum", "existing"] = "openstack"
    """`openstack`: VMs bootstrapped by cloud-init; `magnum`: a Magnum cluster;
    `existing`: a cluster given by kubeconfig."""
    control_plane: ControlPlane
    """Control-plane size and flavor (ignored in mode `existing`)."""
    node_groups: dict[DnsLabel, NodeGroup] = Field(default_factory=dict)
    """Worker node groups by name; none when the control plane carries every role."""
    k3s: K3s = Field(default_factory=K3s, alias="k3s")
    """Distribution pin for mode `openstack`."""
    magnum: Magnum = Field(default_factory=Magnum)
    """Template settings for mode `magnum`."""
    existing: Existing | None = None
    """The kubeconfig for mode `existing`."""
    pod_cidr: Cidr = "10.42.0.0/16"
    """Pod network."""
    service_cidr: Cidr = "10.43.0.0/16"
    """Service network."""

    def control_plane_group(self) -> NodeGroup | None:
        """The control plane as a node group, when it hosts workloads of the facility (roles, mode
        `openstack` only: elsewhere it hosts nothing of ours). It is untainted, so its pods
        tolerate nothing."""
        cp = self.control_plane
        if self.mode != "openstack" or not cp.roles:
            return None
        return NodeGroup.model_validate({"flavor": cp.flavor, "count": cp.count, "roles": list(cp.roles)})

    def groups_with(self, role: NodeRole) -> dict[str, NodeGroup]:
        """The node groups with `role` by name, sorted, and the control plane (as `control-plane`)
        first when it has the role."""
        found = {name: group for name, group in sorted(self.node_groups.items()) if role in group.roles}
        cp = self.control_plane_group()
        return {CONTROL_PLANE_GROUP: cp, **found} if cp is not None and role in cp.roles else found
