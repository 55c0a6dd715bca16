"""cert-manager (pinned chart) and the facility's internal CA, for every layer that needs a
certificate: the hub's ACME issuer builds on the release; in-cluster services (the cache's
HTTPS) get certificates from the internal CA."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from .config import FacilityConfig

CHART_REPO = "https://charts.jetstack.io"
NAMESPACE = "cert-manager"
INTERNAL_ISSUER = "af-internal-ca"
"""ClusterIssuer signing in-cluster service certificates."""
INTERNAL_CA_SECRET = "af-internal-ca"
"""Secret (in cert-manager's namespace) with the internal CA; clients trust its `ca.crt`."""


def needed(cfg: FacilityConfig) -> bool:
    return (cfg.hub.enabled and cfg.hub.tls.mode == "cert-manager") or cfg.cache.enabled


def _resources() -> dict[str, dict[str, str]]:
    return {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}


def _cluster_issuer(
    name: str, issuer: str, spec: dict, opts: pulumi.ResourceOptions
) -> k8s.apiextensions.CustomResource:
    return k8s.apiextensions.CustomResource(
        name, api_version="cert-manager.io/v1", kind="ClusterIssuer", metadata={"name": issuer}, spec=spec, opts=opts
    )


class CertManager(pulumi.ComponentResource):
    """The cert-manager release and the internal CA issuer. `ready` is what certificate users
    depend on: the CRDs exist once the release is up."""

    release: k8s.helm.v3.Release
    internal_issuer: k8s.apiextensions.CustomResource

    def __init__(
        self, name: str, cfg: FacilityConfig, provider: k8s.Provider, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("af:index:CertManager", name, None, opts)
        self.release = k8s.helm.v3.Release(
            f"{name}-chart",
            name="cert-manager",
            chart="cert-manager",
            version=cfg.cert_manager.version,
            repository_opts={"repo": CHART_REPO},
            namespace=NAMESPACE,
            create_namespace=True,
            values={
                "crds": {"enabled": True},
                "resources": _resources(),
                "webhook": {"resources": _resources()},
                "cainjector": {"resources": _resources()},
            },
            opts=pulumi.ResourceOptions(parent=self, provider=provider),
        )
        after_release = pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[self.release])
        bootstrap = _cluster_issuer(f"{name}-selfsigned", "af-selfsigned", {"selfSigned": {}}, after_release)
        ca = k8s.apiextensions.CustomResource(
            f"{name}-internal-ca",
            api_version="cert-manager.io/v1",
            kind="Certificate",
            metadata={"name": INTERNAL_CA_SECRET, "namespace": NAMESPACE},
            spec={
                "isCA": True,
                "commonName": "analysis-facility internal CA",
                "secretName": INTERNAL_CA_SECRET,
                "duration": "87600h",
                "privateKey": {"algorithm": "ECDSA", "size": 256},
                "issuerRef": {"name": bootstrap.metadata["name"], "kind": "ClusterIssuer", "group": "cert-manager.io"},
            },
            opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[bootstrap]),
        )
        self.internal_issuer = _cluster_issuer(
            f"{name}-internal-issuer",
            INTERNAL_ISSUER,
            {"ca": {"secretName": INTERNAL_CA_SECRET}},
            pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[ca]),
        )
        self.register_outputs({})
