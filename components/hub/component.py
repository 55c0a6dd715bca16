"""JupyterHub: the zero-to-jupyterhub chart (pinned) with IAM login, its secrets and its
certificate."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from ..common import rendered, yamltext
from ..common.kube import layer_namespace
from ..common.layers import Certificates, HubService, SoftwareVolumes
from ..config.facility import FacilityConfig
from ..names import HUB_NAMESPACE
from .values import (
    CLUSTER_ISSUER,
    HTTPS_REDIRECT,
    HUB_SECRET,
    TLS_SECRET,
    TRAEFIK_MIDDLEWARE_API,
    HubSite,
    hub_values,
    redirect_middleware_spec,
)

CHART_REPO = "https://hub.jupyter.org/helm-chart/"


class Hub(pulumi.ComponentResource):
    """The hub in its namespace. Secrets are generated (cookie secret, crypt key) or come from
    Pulumi secrets (IAM client secret, provided TLS key) and reach the hub through a Secret."""

    namespace: k8s.core.v1.Namespace
    url: str
    release: k8s.helm.v3.Release

    def __init__(
        self,
        name: str,
        cfg: FacilityConfig,
        site: HubSite,
        provider: k8s.Provider,
        cvmfs: SoftwareVolumes | None,
        certs: Certificates | None,
        opts: pulumi.ResourceOptions | None = None,
        dask: HubService | None = None,
    ) -> None:
        """`site`: what the values need from the other layers (the hub's host, the clients of
        the cache and the pool); `cvmfs` mounts /cvmfs in notebooks; `certs` issues the hub's
        certificate (ACME) and gives notebooks the internal CA."""
        super().__init__("af:index:Hub", name, None, opts)
        assert cfg.identity is not None and cfg.identity.client_secret is not None, "checked by cross_checks"
        namespace, _, ns_opts = layer_namespace(self, name, HUB_NAMESPACE, provider)
        self.namespace = namespace
        # 32 random bytes each; RandomBytes keeps them secret and stable across updates, so
        # sessions and encrypted auth state survive a redeploy.
        cookie = random.RandomBytes(f"{name}-cookie-secret", length=32, opts=pulumi.ResourceOptions(parent=self))
        crypt = random.RandomBytes(f"{name}-crypt-key", length=32, opts=pulumi.ResourceOptions(parent=self))
        client_secret = pulumi.Output.secret(cfg.identity.client_secret.get_secret_value())
        secret = k8s.core.v1.Secret(
            f"{name}-secrets",
            metadata={"name": HUB_SECRET, "namespace": HUB_NAMESPACE},
            type="Opaque",
            string_data={"client-secret": client_secret, "cookie-secret": cookie.hex, "crypt-key": crypt.hex},
            opts=ns_opts,
        )
        waits: list[pulumi.Resource] = [secret, *self._certificate(name, cfg, provider, certs, ns_opts)]
        if cfg.hub.ingress_class == "traefik":
            # The hub's Ingress references it (values.http_redirect_annotations).
            waits.append(
                k8s.apiextensions.CustomResource(
                    f"{name}-https-redirect",
                    api_version=TRAEFIK_MIDDLEWARE_API,
                    kind="Middleware",
                    metadata={"name": HTTPS_REDIRECT, "namespace": HUB_NAMESPACE},
                    spec=redirect_middleware_spec(),
                    opts=ns_opts,
                )
            )
        if cvmfs is not None:
            waits.append(cvmfs.claim(f"{name}-cvmfs", namespace, parent=self))
        if dask is not None:  # the Dask gateway's service token, for hub.extraEnv
            waits.append(dask.hub_token_secret(f"{name}-dask-token", HUB_NAMESPACE, ns_opts))
        if site.trust_internal_ca:
            assert certs is not None, "the cache's and the pool's TLS come from the internal CA"
            waits.append(certs.trust(f"{name}-ca-certs", namespace, parent=self))
        values = hub_values(cfg, site)
        rendered.publish("hub", "values.yaml", yamltext.dump(values))
        self.release = k8s.helm.v3.Release(
            f"{name}-chart",
            name="jupyterhub",
            chart="jupyterhub",
            version=cfg.hub.chart_version,
            repository_opts={"repo": CHART_REPO},
            namespace=HUB_NAMESPACE,
            values=values,
            timeout=900,  # first install pulls the notebook image on every node
            opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=waits),
        )
        self.url = f"https://{site.host}/"
        self.register_outputs({"url": self.url})

    def _certificate(
        self,
        name: str,
        cfg: FacilityConfig,
        provider: k8s.Provider,
        certs: Certificates | None,
        ns_opts: pulumi.ResourceOptions,
    ) -> list[pulumi.Resource]:
        """The TLS secret's source: the operator's certificate, or cert-manager with ACME."""
        tls = cfg.hub.tls
        if tls.mode == "provided":
            assert tls.certificate is not None and tls.private_key is not None, "checked by cross_checks"
            return [
                k8s.core.v1.Secret(
                    f"{name}-tls",
                    metadata={"name": TLS_SECRET, "namespace": HUB_NAMESPACE},
                    type="kubernetes.io/tls",
                    string_data={
                        "tls.crt": tls.certificate,
                        "tls.key": pulumi.Output.secret(tls.private_key.get_secret_value()),
                    },
                    opts=ns_opts,
                )
            ]
        assert certs is not None, "the facility deploys cert-manager for the hub's ACME certificate"
        issuer = k8s.apiextensions.CustomResource(
            f"{name}-acme-issuer",
            api_version="cert-manager.io/v1",
            kind="ClusterIssuer",
            metadata={"name": CLUSTER_ISSUER},
            spec={
                "acme": {
                    "server": str(tls.acme_server),
                    "email": tls.acme_email,
                    "privateKeySecretRef": {"name": f"{CLUSTER_ISSUER}-account"},
                    "solvers": [{"http01": {"ingress": {"ingressClassName": cfg.hub.ingress_class}}}],
                }
            },
            opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[certs.release]),
        )
        return [issuer]
