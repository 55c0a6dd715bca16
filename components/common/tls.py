"""A service's certificate from the facility's internal CA, as the layers that serve TLS in the
cluster (the cache, the pool) request it."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from ..names import INTERNAL_ISSUER


def service_dns_names(service: str, namespace: str) -> list[str]:
    """The names clients in the cluster reach a Service by."""
    return [service, f"{service}.{namespace}", f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local"]


def service_certificate(
    name: str, service: str, namespace: str, dns_names: list[str], opts: pulumi.ResourceOptions
) -> k8s.apiextensions.CustomResource:
    """A cert-manager Certificate for `service` from the internal CA, into the Secret
    `<service>-tls` (`tls.crt`, `tls.key`)."""
    return k8s.apiextensions.CustomResource(
        name,
        api_version="cert-manager.io/v1",
        kind="Certificate",
        metadata={"name": f"{service}-tls", "namespace": namespace},
        spec={
            "secretName": f"{service}-tls",
            "dnsNames": dns_names,
            "privateKey": {"algorithm": "ECDSA", "size": 256},
            "issuerRef": {"name": INTERNAL_ISSUER, "kind": "ClusterIssuer", "group": "cert-manager.io"},
        },
        opts=opts,
    )
