"""The node caches as resources: their ConfigMap (the rendered config, published for the preview, and the sidecars'
programs), their client secret, their certificate from the internal CA, the internal CA itself (to verify the site
cache), the DaemonSet and the node-local Service."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from ..common import rendered
from ..common.layers import Certificates
from ..common.shipped import shipped
from ..common.tls import service_certificate
from ..config.facility import FacilityConfig
from ..credential import sidecar
from ..names import CACHE_NAMESPACE, NODE_CACHE_SERVICE
from .client import node_cache_url
from .node import CLIENT_SECRET, CONFIG_MAP, LABELS, config_files, daemon_set_spec, dns_names, service_spec
from .pod import EXPORTER


class NodeCaches(pulumi.ComponentResource):
    """A node cache on every node of the chosen groups, in the site cache's namespace."""

    daemon_set: k8s.apps.v1.DaemonSet
    url: str

    def __init__(
        self,
        name: str,
        cfg: FacilityConfig,
        provider: k8s.Provider,
        certs: Certificates,
        namespace: k8s.core.v1.Namespace,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """`namespace` is the site cache's; `certs` issues the node caches' certificate and gives them the internal
        CA the site cache's certificate is signed by."""
        super().__init__("af:index:NodeCaches", name, None, opts)
        ns_opts = pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[namespace])
        files = config_files(cfg)
        for key, text in files.items():
            rendered.publish("cache", f"node/{key}", text)
        config = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata={"name": CONFIG_MAP, "namespace": CACHE_NAMESPACE, "labels": LABELS},
            data={**files, sidecar.SCRIPT: sidecar.script(), EXPORTER: shipped("cache", EXPORTER)},
            opts=ns_opts,
        )
        certificate = service_certificate(
            f"{name}-tls",
            NODE_CACHE_SERVICE,
            CACHE_NAMESPACE,
            dns_names(),
            pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[namespace, certs.internal_issuer]),
        )
        waits: list[pulumi.Resource] = [config, certificate, certs.trust(f"{name}-ca-certs", namespace, parent=self)]
        client = cfg.cache.node_local.client
        if client is not None:
            assert client.client_secret is not None, "checked by the cache's checks"
            waits.append(
                k8s.core.v1.Secret(
                    f"{name}-client",
                    metadata={"name": CLIENT_SECRET, "namespace": CACHE_NAMESPACE, "labels": LABELS},
                    type="Opaque",
                    string_data={"client-secret": pulumi.Output.secret(client.client_secret.get_secret_value())},
                    opts=ns_opts,
                )
            )
        token_url = cfg.identity.endpoint("token") if cfg.identity else ""
        self.daemon_set = k8s.apps.v1.DaemonSet(
            f"{name}-daemonset",
            metadata={"name": NODE_CACHE_SERVICE, "namespace": CACHE_NAMESPACE, "labels": LABELS},
            spec=daemon_set_spec(cfg, token_url, files),
            opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[namespace, *waits]),
        )
        k8s.core.v1.Service(
            f"{name}-svc",
            metadata={"name": NODE_CACHE_SERVICE, "namespace": CACHE_NAMESPACE, "labels": LABELS},
            spec=service_spec(),
            opts=ns_opts,
        )
        self.url = node_cache_url()
        self.register_outputs({"url": self.url})
