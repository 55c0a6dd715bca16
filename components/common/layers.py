"""What a layer uses of another layer's component, as protocols: `Facility` passes the other
layer's component, and no layer imports another's component module to know its type."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import pulumi
import pulumi_kubernetes as k8s


class Certificates(Protocol):
    """What a layer uses of the certificates layer (cert-manager and the internal CA)."""

    release: pulumi.Resource
    """The cert-manager release: its CRDs and webhook exist once it does."""
    internal_issuer: pulumi.Resource
    """The ClusterIssuer of the internal CA (`INTERNAL_ISSUER`)."""

    def trust(self, name: str, namespace: k8s.core.v1.Namespace, parent: pulumi.Resource) -> k8s.core.v1.ConfigMap:
        """The internal CA in `namespace` (created after it), as a hashed directory to mount at
        `CA_CERT_DIR`."""
        ...


class SoftwareVolumes(Protocol):
    """What a layer uses of the CVMFS layer."""

    def claim(
        self, name: str, namespace: k8s.core.v1.Namespace, parent: pulumi.Resource
    ) -> k8s.core.v1.PersistentVolumeClaim:
        """The read-only /cvmfs claim in `namespace` (created after it), mounted at `CVMFS_MOUNT`."""
        ...


class HubService(Protocol):
    """What the hub uses of a layer that runs a JupyterHub service (the Dask gateway)."""

    def hub_token_secret(self, name: str, namespace: str, opts: pulumi.ResourceOptions) -> k8s.core.v1.Secret:
        """The service's API token as a Secret in the hub's namespace (`opts`: the hub's)."""
        ...


@dataclass(frozen=True)
class ServiceClient:
    """What a client of a layer's service needs in its pod: environment and files (by path)."""

    env: Mapping[str, str] = field(default_factory=dict)
    files: Mapping[str, str] = field(default_factory=dict)
    group_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """By node group: what a client on that group's nodes uses instead of `env` (a node-local service's address)."""
