"""Dask Gateway: the official `dask-gateway` chart (pinned) in the namespace `dask`, a
JupyterHub service whose token the program generates."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from ..common import rendered, yamltext
from ..common.kube import PART_OF, layer_namespace
from ..common.layers import Certificates, SoftwareVolumes
from ..config.facility import FacilityConfig
from .gateway import (
    CHART_REPO,
    CLIENT_FILES,
    NAMESPACE,
    RELEASE,
    TOKEN_KEY,
    TOKEN_SECRET,
    ClusterSite,
    client_file_data,
    extra_config,
    gateway_settings,
    gateway_values,
)


class Dask(pulumi.ComponentResource):
    """The gateway, its API token (generated, in a Secret here and, through `hub_token_secret`,
    in the hub's namespace), and what clusters mount: the notebooks' files, the internal CA and
    /cvmfs. `url` is the gateway's in-cluster API."""

    token: pulumi.Output[str]
    release: k8s.helm.v3.Release
    namespace: k8s.core.v1.Namespace

    def __init__(
        self,
        name: str,
        cfg: FacilityConfig,
        provider: k8s.Provider,
        site: ClusterSite,
        certs: Certificates | None,
        cvmfs: SoftwareVolumes | None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("af:index:Dask", name, None, opts)
        self._provider = provider
        self.namespace, _, ns_opts = layer_namespace(self, name, NAMESPACE, provider)
        # The gateway's identity towards the hub: generated, kept in the stack's state (a new one
        # on every deploy would log the gateway out of the hub until both restart).
        token = random.RandomPassword(
            f"{name}-gateway-token", length=64, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        self.token = pulumi.Output.secret(token.result)
        waits: list[pulumi.Resource] = [
            k8s.core.v1.Secret(
                f"{name}-token",
                metadata={"name": TOKEN_SECRET, "namespace": NAMESPACE, "labels": dict(PART_OF)},
                type="Opaque",
                string_data={TOKEN_KEY: self.token},
                opts=ns_opts,
            )
        ]
        if site.files:
            waits.append(
                k8s.core.v1.ConfigMap(
                    f"{name}-client-files",
                    metadata={"name": CLIENT_FILES, "namespace": NAMESPACE, "labels": dict(PART_OF)},
                    data=client_file_data(site),
                    opts=ns_opts,
                )
            )
        if site.trust_internal_ca:
            assert certs is not None, "the cache's TLS comes from the internal CA"
            waits.append(certs.trust(f"{name}-ca-certs", self.namespace, parent=self))
        if site.cvmfs:
            assert cvmfs is not None
            waits.append(cvmfs.claim(f"{name}-cvmfs", self.namespace, parent=self))
        values = gateway_values(cfg, site)
        rendered.publish("dask", "values.yaml", yamltext.dump(values))
        for key, text in extra_config(gateway_settings(cfg, site)).items():
            rendered.publish("dask", f"extraConfig/{key}.py", text)
        self.release = k8s.helm.v3.Release(
            f"{name}-chart",
            name=RELEASE,
            chart="dask-gateway",
            version=cfg.dask.chart_version,
            repository_opts={"repo": CHART_REPO},
            namespace=NAMESPACE,
            values=values,
            opts=pulumi.ResourceOptions.merge(ns_opts, pulumi.ResourceOptions(depends_on=waits)),
        )
        self.register_outputs({"namespace": NAMESPACE, "release": self.release.name})

    def hub_token_secret(self, name: str, namespace: str, opts: pulumi.ResourceOptions) -> k8s.core.v1.Secret:
        """The gateway's token in the hub's namespace (`opts`: the hub's, waiting for it), where
        `hub.extraEnv` reads it; the hub registers the service with it."""
        return k8s.core.v1.Secret(
            name,
            metadata={"name": TOKEN_SECRET, "namespace": namespace, "labels": dict(PART_OF)},
            type="Opaque",
            string_data={TOKEN_KEY: self.token},
            opts=opts,
        )
