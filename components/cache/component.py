"""The XCache: a StatefulSet of cache servers with a disk each, the rendered config, a Service
for root://, HTTPS and metrics, a PodDisruptionBudget, a sidecar keeping the upstream credential
fresh and one exporting the server's metrics to Prometheus. Clients in the facility find it
through `client.client_env`."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ..common import rendered
from ..common.kube import layer_namespace
from ..common.layers import Certificates
from ..common.shipped import shipped
from ..common.tls import service_certificate
from ..config.facility import FacilityConfig
from ..credential import sidecar
from ..names import CACHE_HTTPS_PORT, CACHE_METRICS_PORT, CACHE_NAMESPACE, CACHE_PORT, CACHE_SERVICE
from .client import cache_url
from .config import BearerToken, X509Proxy
from .node_component import NodeCaches
from .pod import EXPORTER, LABELS, RUNTIME, pod_spec
from .xrootd import render_scitokens_cfg, render_xrootd_cfg


class XCache(pulumi.ComponentResource):
    """The cache servers and everything they need, in their own namespace."""

    namespace: k8s.core.v1.Namespace
    url: str
    stateful_set: k8s.apps.v1.StatefulSet
    node_caches: NodeCaches | None
    """The node-level caches (`af:cache.nodeLocal`), when on."""

    def __init__(
        self,
        name: str,
        cfg: FacilityConfig,
        provider: k8s.Provider,
        certs: Certificates,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """`certs` issues the servers' certificate from the internal CA (clients' tokens travel
        only over TLS)."""
        super().__init__("af:index:XCache", name, None, opts)
        namespace, _, ns_opts = layer_namespace(self, name, CACHE_NAMESPACE, provider)
        self.namespace = namespace
        certificate = service_certificate(
            f"{name}-tls",
            CACHE_SERVICE,
            CACHE_NAMESPACE,
            # No short `service.namespace` name: clients reach the cache by its FQDN or in-namespace.
            [
                CACHE_SERVICE,
                f"{CACHE_SERVICE}.{CACHE_NAMESPACE}.svc",
                f"{CACHE_SERVICE}.{CACHE_NAMESPACE}.svc.cluster.local",
            ],
            pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[namespace, certs.internal_issuer]),
        )
        waits: list[pulumi.Resource] = [self._config(name, cfg, ns_opts), certificate]
        if cfg.cache.upstream is not None:
            waits.append(self._upstream_secret(name, cfg.cache.upstream, ns_opts))
        self.stateful_set = self._servers(name, cfg, provider, namespace, waits, ns_opts)
        self._services(name, ns_opts)
        self.node_caches = None
        if cfg.cache.node_local.enabled:
            node_opts = pulumi.ResourceOptions(parent=self)
            self.node_caches = NodeCaches(f"{name}-node", cfg, provider, certs, namespace, node_opts)
        self.url = cache_url()
        self.register_outputs({"url": self.url})

    def _config(self, name: str, cfg: FacilityConfig, opts: pulumi.ResourceOptions) -> k8s.core.v1.ConfigMap:
        """The rendered config (published for the preview) and the sidecars' programs."""
        xrootd_cfg, scitokens_cfg = render_xrootd_cfg(cfg, RUNTIME), render_scitokens_cfg(cfg)
        rendered.publish("cache", "xrootd.cfg", xrootd_cfg)
        rendered.publish("cache", "scitokens.cfg", scitokens_cfg)
        return k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata={"name": f"{CACHE_SERVICE}-config", "namespace": CACHE_NAMESPACE, "labels": LABELS},
            data={
                "xrootd.cfg": xrootd_cfg,
                "scitokens.cfg": scitokens_cfg,
                sidecar.SCRIPT: sidecar.script(),
                EXPORTER: shipped("cache", EXPORTER),
            },
            opts=opts,
        )

    def _servers(
        self,
        name: str,
        cfg: FacilityConfig,
        provider: k8s.Provider,
        namespace: k8s.core.v1.Namespace,
        waits: list[pulumi.Resource],
        ns_opts: pulumi.ResourceOptions,
    ) -> k8s.apps.v1.StatefulSet:
        """The servers, each with its disk, behind a headless Service for their stable names."""
        cache = cfg.cache
        headless = k8s.core.v1.Service(
            f"{name}-headless",
            metadata={"name": f"{CACHE_SERVICE}-headless", "namespace": CACHE_NAMESPACE, "labels": LABELS},
            spec={"clusterIP": "None", "selector": LABELS, "ports": [{"name": "root", "port": CACHE_PORT}]},
            opts=ns_opts,
        )
        token_url = cfg.identity.endpoint("token") if cfg.identity else ""
        volume_claim: dict[str, Any] = {
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": f"{cache.disk_gib}Gi"}}},
        }
        if cache.storage_class:
            volume_claim["spec"]["storageClassName"] = cache.storage_class
        return k8s.apps.v1.StatefulSet(
            f"{name}-servers",
            metadata={"name": CACHE_SERVICE, "namespace": CACHE_NAMESPACE, "labels": LABELS},
            spec={
                "serviceName": headless.metadata["name"],
                "replicas": cache.servers,
                "podManagementPolicy": "Parallel",
                "selector": {"matchLabels": LABELS},
                "template": {"metadata": {"labels": LABELS}, "spec": pod_spec(cfg, token_url)},
                "volumeClaimTemplates": [volume_claim],
            },
            opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[namespace, *waits]),
        )

    def _services(self, name: str, opts: pulumi.ResourceOptions) -> None:
        """The Service clients and Prometheus use, and the budget that keeps servers up in drains."""
        k8s.core.v1.Service(
            f"{name}-svc",
            metadata={"name": CACHE_SERVICE, "namespace": CACHE_NAMESPACE, "labels": LABELS},
            spec={
                "selector": LABELS,
                "ports": [
                    {"name": "root", "port": CACHE_PORT, "targetPort": "root"},
                    {"name": "https", "port": CACHE_HTTPS_PORT, "targetPort": "https"},
                    {"name": "metrics", "port": CACHE_METRICS_PORT, "targetPort": "metrics"},
                ],
            },
            opts=opts,
        )
        # Voluntary evictions (node drains) take at most one server away at a time.
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata={"name": CACHE_SERVICE, "namespace": CACHE_NAMESPACE},
            spec={"maxUnavailable": 1, "selector": {"matchLabels": LABELS}},
            opts=opts,
        )

    def _upstream_secret(
        self, name: str, upstream: X509Proxy | BearerToken, opts: pulumi.ResourceOptions
    ) -> k8s.core.v1.Secret:
        if isinstance(upstream, BearerToken):
            assert upstream.client_secret is not None, "checked by the cache's checks"
            data = {"client-secret": pulumi.Output.secret(upstream.client_secret.get_secret_value())}
        else:
            data = {
                "usercert.pem": upstream.certificate,
                "userkey.pem": pulumi.Output.secret(upstream.private_key.get_secret_value()),
            }
        return k8s.core.v1.Secret(
            f"{name}-upstream",
            metadata={"name": f"{CACHE_SERVICE}-upstream", "namespace": CACHE_NAMESPACE},
            type="Opaque",
            string_data=data,
            opts=opts,
        )
