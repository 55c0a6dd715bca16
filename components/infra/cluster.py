"""The Kubernetes cluster, in one of three modes, and the provider every later layer uses."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
import pulumi_openstack as openstack
import pulumi_tls as tls

from .config import Cluster as ClusterConfig
from .config import Site
from .k3s import k3s_cluster
from .magnum import magnum_cluster
from .network import Network


class Cluster(pulumi.ComponentResource):
    """Kubernetes for the facility: k3s on VMs (`openstack`), Magnum (`magnum`), or a given
    kubeconfig (`existing`). `provider` is the kubernetes provider for every later layer."""

    kubeconfig: pulumi.Output[str]
    api_endpoint: pulumi.Output[str]
    ingress_address: pulumi.Output[str]
    ssh_private_key: pulumi.Output[str] | None
    provider: k8s.Provider

    def __init__(
        self,
        name: str,
        site: Site,
        cluster: ClusterConfig,
        prefix: str,
        openstack_provider: openstack.Provider | None,
        network: Network | None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("af:cluster:Cluster", name, None, opts)
        self.ssh_private_key = None
        depends: list[pulumi.Resource] = []
        if cluster.mode == "existing":
            assert cluster.existing is not None  # enforced by the config checks
            self.kubeconfig = pulumi.Output.secret(cluster.existing.kubeconfig.get_secret_value())
            self.api_endpoint = pulumi.Output.from_input("(existing cluster)")
            self.ingress_address = pulumi.Output.from_input("(existing cluster)")
        else:
            assert openstack_provider is not None
            ssh_key = tls.PrivateKey(f"{name}-ssh", algorithm="ED25519", opts=pulumi.ResourceOptions(parent=self))
            key_pair = openstack.compute.Keypair(
                f"{name}-keypair",
                name=f"{prefix}-admin",
                public_key=ssh_key.public_key_openssh,
                opts=pulumi.ResourceOptions(parent=self, provider=openstack_provider),
            )
            self.ssh_private_key = pulumi.Output.secret(ssh_key.private_key_openssh)
            if cluster.mode == "openstack":
                assert network is not None
                made = k3s_cluster(self, name, site, cluster, prefix, openstack_provider, network, key_pair)
            else:
                made = magnum_cluster(self, name, site, cluster, prefix, openstack_provider, network, key_pair)
            self.api_endpoint, self.ingress_address, self.kubeconfig = (
                made.api_endpoint,
                made.ingress_address,
                made.kubeconfig,
            )
            depends = made.ready

        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends),
        )
        self.register_outputs(
            {"kubeconfig": self.kubeconfig, "apiEndpoint": self.api_endpoint, "ingressAddress": self.ingress_address}
        )
