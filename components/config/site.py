"""`af:site`: where the facility runs — the OpenStack project, its network and its limits."""

from __future__ import annotations

from pydantic import Field, NonNegativeInt, PositiveInt

from .base import DnsLabel, Fqdn, NodeCidr, RestrictedCidr, StrictModel


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
    ssh_public_keys: list[str] = Field(default_factory=list)
    """Operators' OpenSSH public keys installed on every VM in addition to the generated one."""
    flavors: dict[str, Flavor] = Field(min_length=1)
    """Flavors this site offers, by name; node groups must use one of them."""
    quotas: Quotas
    """The project's quota."""
