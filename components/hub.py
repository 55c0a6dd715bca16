"""JupyterHub: the zero-to-jupyterhub chart (pinned) with IAM login, its secrets and its
certificate."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from . import rendered, yamltext
from .certs import CertManager
from .condor import client_env as condor_client_env
from .condor import client_files as condor_client_files
from .config import FacilityConfig
from .cvmfs import Cvmfs
from .dask.component import Dask
from .hubvalues import CLUSTER_ISSUER, HUB_SECRET, TLS_SECRET, HubSite, hub_values
from .workloads import layer_namespace
from .xcache import client_env as xcache_client_env
from .xcache import client_files as xcache_client_files

CHART_REPO = "https://hub.jupyter.org/helm-chart/"
NAMESPACE = "jupyterhub"


def hub_host(cfg: FacilityConfig) -> str:
    return cfg.hub.host or cfg.site.dns_name


def hub_site(cfg: FacilityConfig) -> HubSite:
    """What the hub's values need from the other layers: where the cache is, and the pool's
    client config; both speak TLS with certificates of the internal CA."""
    env: dict[str, str] = {}
    files: dict[str, str] = {}
    if cfg.cache.enabled:
        env |= xcache_client_env()
        files |= xcache_client_files()
    if cfg.condor.enabled:
        env |= condor_client_env()
        files |= condor_client_files(cfg)
    return HubSite(
        host=hub_host(cfg),
        cvmfs=cfg.cvmfs.enabled,
        extra_env=tuple(sorted(env.items())),
        extra_files=tuple(sorted(files.items())),
        trust_internal_ca=cfg.cache.enabled or cfg.condor.enabled,
    )


class Hub(pulumi.ComponentResource):
    """The hub in its namespace. Secrets are generated (cookie secret, crypt key) or come from
    Pulumi secrets (IAM client secret, provided TLS key) and reach the hub through a Secret."""

    url: str
    release: k8s.helm.v3.Release

    def __init__(
        self,
        name: str,
        cfg: FacilityConfig,
        provider: k8s.Provider,
        cvmfs: Cvmfs | None,
        certs: CertManager | None,
        opts: pulumi.ResourceOptions | None = None,
        dask: Dask | None = None,
    ) -> None:
        super().__init__("af:index:Hub", name, None, opts)
        assert cfg.identity is not None and cfg.identity.client_secret is not None, "checked by cross_checks"
        host = hub_host(cfg)
        _, _, ns_opts = layer_namespace(self, name, NAMESPACE, provider)
        # 32 random bytes each; RandomBytes keeps them secret and stable across updates, so
        # sessions and encrypted auth state survive a redeploy.
        cookie = random.RandomBytes(f"{name}-cookie-secret", length=32, opts=pulumi.ResourceOptions(parent=self))
        crypt = random.RandomBytes(f"{name}-crypt-key", length=32, opts=pulumi.ResourceOptions(parent=self))
        client_secret = pulumi.Output.secret(cfg.identity.client_secret.get_secret_value())
        secret = k8s.core.v1.Secret(
            f"{name}-secrets",
            metadata={"name": HUB_SECRET, "namespace": NAMESPACE},
            type="Opaque",
            string_data={"client-secret": client_secret, "cookie-secret": cookie.hex, "crypt-key": crypt.hex},
            opts=ns_opts,
        )
        waits: list[pulumi.Resource] = [secret, *self._certificate(name, cfg, provider, certs, ns_opts)]
        if cvmfs is not None:
            waits.append(cvmfs.claim(f"{name}-cvmfs", NAMESPACE, parent=self))
        if dask is not None:  # the gateway's service token, for hub.extraEnv
            waits.append(dask.hub_token_secret(f"{name}-dask-token", NAMESPACE, ns_opts))
        site = hub_site(cfg)
        if site.trust_internal_ca:
            assert certs is not None, "the cache's and the pool's TLS come from the internal CA"
            waits.append(certs.trust(f"{name}-ca-certs", NAMESPACE, parent=self))
        values = hub_values(cfg, site)
        rendered.publish("hub", "values.yaml", yamltext.dump(values))
        self.release = k8s.helm.v3.Release(
            f"{name}-chart",
            name="jupyterhub",
            chart="jupyterhub",
            version=cfg.hub.chart_version,
            repository_opts={"repo": CHART_REPO},
            namespace=NAMESPACE,
            values=values,
            timeout=900,  # first install pulls the notebook image on every node
            opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=waits),
        )
        self.url = f"https://{host}/"
        self.register_outputs({"url": self.url})

    def _certificate(
        self,
        name: str,
        cfg: FacilityConfig,
        provider: k8s.Provider,
        certs: CertManager | None,
        ns_opts: pulumi.ResourceOptions,
    ) -> list[pulumi.Resource]:
        """The TLS secret's source: the operator's certificate, or cert-manager with ACME."""
        tls = cfg.hub.tls
        if tls.mode == "provided":
            assert tls.certificate is not None and tls.private_key is not None, "checked by cross_checks"
            return [
                k8s.core.v1.Secret(
                    f"{name}-tls",
                    metadata={"name": TLS_SECRET, "namespace": NAMESPACE},
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
