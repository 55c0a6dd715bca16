"""The XCache: a StatefulSet of cache servers with a disk each, the rendered config, a Service
for root://, HTTPS and metrics, a PodDisruptionBudget, a sidecar keeping the upstream credential
fresh and one exporting the server's metrics to Prometheus. Clients in the facility find it
through `client_env`."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from . import rendered
from .certs import CA_CERT_DIR, INTERNAL_ISSUER, CertManager
from .cluster import role_nodes
from .config import GPU_TAINT_KEY, FacilityConfig
from .config.data import BearerToken, X509Proxy, size_bytes
from .shipped import shipped
from .workloads import PART_OF, layer_namespace, resources
from .xcacheconf import CacheRuntime, render_scitokens_cfg, render_xrootd_cfg

NAMESPACE = "xcache"
SERVICE = "af-xcache"
PORT = 1094
HTTPS_PORT = 8443
METRICS_PORT = 9102
"""The exporter sidecar's /metrics (container port `metrics`)."""
REPORT_PORT = 9930
"""Loopback UDP port where the server sends the exporter its reports."""
EXPORTER_USER = 65534
"""The exporter runs as nobody: it only reads the config and the disk's usage."""
CONFIG_DIR = "/etc/xrootd/af"
TLS_DIR = "/etc/xrootd/af-tls"
CRED_DIR = "/run/af-cred"
SECRET_DIR = "/etc/af-cred-secret"
RUNTIME = CacheRuntime(
    data_dir="/xcache/data",
    run_dir="/xcache/run",
    scitokens_cfg=f"{CONFIG_DIR}/scitokens.cfg",
    port=PORT,
    https_port=HTTPS_PORT,
    tls_cert=f"{TLS_DIR}/tls.crt",
    tls_key=f"{TLS_DIR}/tls.key",
    report_port=REPORT_PORT,
    report_seconds=10,
)
LABELS = {"app.kubernetes.io/name": SERVICE, **PART_OF}


PLUGIN_CONF_DIR = "/etc/af/xrdcl-plugins"
"""Where clients find the XrdCl plugin config that sends root:// reads through the cache."""


def cache_url() -> str:
    return f"root://{SERVICE}.{NAMESPACE}.svc.cluster.local:{PORT}/"


def client_plugin_conf() -> str:
    """XrdCl's proxy-prefix plugin for root:// URLs only (local files stay local)."""
    return "url = root://*;xroot://*\nlib = libXrdClProxyPlugin-5.so\nenable = true\n"


def client_env() -> dict[str, str]:
    """Environment of notebooks and batch jobs: their usual root://host//path reads go through
    the cache (XrdCl's proxy plugin prefixes them with the cache's URL). Page reads are off
    because the plugin does not implement them; in-cluster services are reached directly."""
    return {
        "AF_XCACHE_URL": cache_url(),
        "XRD_PLUGINCONFDIR": PLUGIN_CONF_DIR,
        "XROOT_PROXY": cache_url() + "/",
        "XROOT_PROXY_EXCL_DOMAINS": "svc.cluster.local",
        "XRD_CPUSEPGWRTRD": "0",
        # The cache speaks TLS (tokens travel only over TLS); XrdCl trusts what is in here.
        "X509_CERT_DIR": CA_CERT_DIR,
    }


def client_files() -> dict[str, str]:
    """Files clients need, by absolute path."""
    return {f"{PLUGIN_CONF_DIR}/af-xcache.conf": client_plugin_conf()}


def _gib(n_bytes: int) -> int:
    return -(-n_bytes // (1 << 30))


def _credential_container(upstream: X509Proxy | BearerToken, token_url: str, image: str) -> dict[str, Any]:
    """The sidecar (and, with `--once`, the init container) that renews the upstream credential."""
    if isinstance(upstream, BearerToken):
        mode = "bearer"
        env = {
            "BEARER_TOKEN_FILE": f"{CRED_DIR}/token",
            "AF_TOKEN_URL": str(upstream.token_url or token_url),
            "AF_CLIENT_ID": upstream.client_id,
            "AF_CLIENT_SECRET_FILE": f"{SECRET_DIR}/client-secret",
            "AF_SCOPES": " ".join(upstream.scopes),
            "AF_AUDIENCE": upstream.audience or "",
            "AF_REFRESH_SECONDS": str(upstream.refresh_minutes * 60),
        }
    else:
        mode = "x509"
        env = {
            "X509_USER_PROXY": f"{CRED_DIR}/x509up",
            "AF_CERT_FILE": f"{SECRET_DIR}/usercert.pem",
            "AF_KEY_FILE": f"{SECRET_DIR}/userkey.pem",
            "AF_VOMS": upstream.voms or "",
            "AF_VALID_HOURS": str(upstream.valid_hours),
            "AF_REFRESH_SECONDS": str(upstream.valid_hours * 900),
        }
    return {
        "name": "credential",
        "image": image,
        "command": ["python3", f"{CONFIG_DIR}/af_credential.py", mode],
        "env": [{"name": k, "value": v} for k, v in env.items()],
        "resources": resources("10m", "32Mi", "200m", "128Mi"),
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "credential-secret", "mountPath": SECRET_DIR, "readOnly": True},
            {"name": "credential", "mountPath": CRED_DIR},
        ],
    }


def _exporter_container(image: str) -> dict[str, Any]:
    """The sidecar turning the server's reports into Prometheus metrics. The cache image runs it:
    its python3 (EL9's) already runs the credential sidecar, and no second image is pulled."""
    return {
        "name": "exporter",
        "image": image,
        "command": [
            "python3",
            f"{CONFIG_DIR}/af_xcache_exporter.py",
            *("--udp", f"127.0.0.1:{REPORT_PORT}", "--http", f"0.0.0.0:{METRICS_PORT}", "--disk", RUNTIME.data_dir),
        ],
        "ports": [{"name": "metrics", "containerPort": METRICS_PORT}],
        "resources": resources("10m", "32Mi", "200m", "64Mi"),
        "securityContext": {
            "runAsUser": EXPORTER_USER,
            "runAsGroup": EXPORTER_USER,
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        # No readiness probe: a metrics hiccup must not take the cache out of its Service.
        "livenessProbe": {"httpGet": {"path": "/metrics", "port": "metrics"}, "periodSeconds": 30},
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            # For the disk's size and use (statvfs); XRootD 5.5 does not report them.
            {"name": "data", "mountPath": RUNTIME.data_dir, "readOnly": True},
        ],
    }


def upstream_env(upstream: X509Proxy | BearerToken | None) -> list[dict[str, str]]:
    """What the cache server's XrdCl reads to authenticate upstream."""
    if upstream is None:
        return []
    if isinstance(upstream, BearerToken):
        return [{"name": "BEARER_TOKEN_FILE", "value": f"{CRED_DIR}/token"}]
    return [{"name": "X509_USER_PROXY", "value": f"{CRED_DIR}/x509up"}]


def pod_spec(cfg: FacilityConfig, token_url: str) -> dict[str, Any]:
    """The cache server pod: on cache nodes when there are any, one per node."""
    cache = cfg.cache
    ram = _gib(size_bytes(cache.ram))
    server = {
        "name": "xrootd",
        "image": cache.image,
        # Started as root only to drop to the image's xrootd user (-R) after binding.
        "command": ["xrootd", "-c", f"{CONFIG_DIR}/xrootd.cfg", "-n", SERVICE, "-R", "xrootd"],
        "ports": [{"name": "root", "containerPort": PORT}, {"name": "https", "containerPort": HTTPS_PORT}],
        # scitokens-cpp caches the issuers' keys under XDG_CACHE_HOME: somewhere the server may write.
        "env": [{"name": "XDG_CACHE_HOME", "value": f"{RUNTIME.run_dir}/cache"}, *upstream_env(cache.upstream)],
        "resources": resources("500m", f"{ram + 1}Gi", "4", f"{2 * ram + 2}Gi"),
        "readinessProbe": {"tcpSocket": {"port": PORT}, "periodSeconds": 10},
        "livenessProbe": {"tcpSocket": {"port": PORT}, "initialDelaySeconds": 30, "periodSeconds": 20},
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "tls", "mountPath": TLS_DIR, "readOnly": True},
            {"name": "data", "mountPath": RUNTIME.data_dir},
            {"name": "run", "mountPath": RUNTIME.run_dir},
            {"name": "credential", "mountPath": CRED_DIR, "readOnly": True},
        ],
    }
    prepare = {
        "name": "prepare",
        "image": cache.image,
        "command": ["chown", "-R", "xrootd:xrootd", RUNTIME.data_dir, RUNTIME.run_dir, CRED_DIR],
        "resources": resources("10m", "16Mi", "100m", "64Mi"),
        "volumeMounts": [
            {"name": "data", "mountPath": RUNTIME.data_dir},
            {"name": "run", "mountPath": RUNTIME.run_dir},
            {"name": "credential", "mountPath": CRED_DIR},
        ],
    }
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": f"{SERVICE}-config"}},
        {"name": "tls", "secret": {"secretName": f"{SERVICE}-tls"}},
        {"name": "run", "emptyDir": {}},
        {"name": "credential", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
    ]
    spec: dict[str, Any] = {
        "terminationGracePeriodSeconds": 60,
        "initContainers": [prepare],
        "containers": [server, _exporter_container(cache.image)],
        "volumes": volumes,
        "affinity": {
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": dict(LABELS)}, "topologyKey": "kubernetes.io/hostname"}
                ]
            }
        },
    }
    if cache.upstream is not None:
        sidecar = _credential_container(cache.upstream, token_url, cache.image)
        first = {**sidecar, "name": "credential-init", "command": [*sidecar["command"], "--once"]}
        spec["initContainers"].append(first)
        spec["containers"].append(sidecar)
        volumes.append({"name": "credential-secret", "secret": {"secretName": f"{SERVICE}-upstream"}})
    cache_groups = [g for g in cfg.cluster.node_groups.values() if "cache" in g.roles]
    if cache_groups:
        spec["nodeSelector"] = role_nodes("cache")
        taints = {(t.key, t.effect) for g in cache_groups for t in g.taints if t.key != GPU_TAINT_KEY}
        spec["tolerations"] = [{"key": k, "operator": "Exists", "effect": e} for k, e in sorted(taints)]
    return spec


class XCache(pulumi.ComponentResource):
    """The cache servers and everything they need, in their own namespace."""

    url: str
    stateful_set: k8s.apps.v1.StatefulSet

    def __init__(
        self,
        name: str,
        cfg: FacilityConfig,
        provider: k8s.Provider,
        certs: CertManager,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("af:index:XCache", name, None, opts)
        cache = cfg.cache
        namespace, _, ns_opts = layer_namespace(self, name, NAMESPACE, provider)
        xrootd_cfg, scitokens_cfg = render_xrootd_cfg(cfg, RUNTIME), render_scitokens_cfg(cfg)
        rendered.publish("cache", "xrootd.cfg", xrootd_cfg)
        rendered.publish("cache", "scitokens.cfg", scitokens_cfg)
        config = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata={"name": f"{SERVICE}-config", "namespace": NAMESPACE, "labels": LABELS},
            data={
                "xrootd.cfg": xrootd_cfg,
                "scitokens.cfg": scitokens_cfg,
                "af_credential.py": shipped("credfiles", "af_credential.py"),
                "af_xcache_exporter.py": shipped("exporterfiles", "af_xcache_exporter.py"),
            },
            opts=ns_opts,
        )
        certificate = k8s.apiextensions.CustomResource(
            f"{name}-tls",
            api_version="cert-manager.io/v1",
            kind="Certificate",
            metadata={"name": f"{SERVICE}-tls", "namespace": NAMESPACE},
            spec={
                "secretName": f"{SERVICE}-tls",
                "dnsNames": [SERVICE, f"{SERVICE}.{NAMESPACE}.svc", f"{SERVICE}.{NAMESPACE}.svc.cluster.local"],
                "privateKey": {"algorithm": "ECDSA", "size": 256},
                "issuerRef": {"name": INTERNAL_ISSUER, "kind": "ClusterIssuer", "group": "cert-manager.io"},
            },
            opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[namespace, certs.internal_issuer]),
        )
        waits: list[pulumi.Resource] = [config, certificate]
        if cache.upstream is not None:
            waits.append(self._upstream_secret(name, cache.upstream, ns_opts))
        headless = k8s.core.v1.Service(
            f"{name}-headless",
            metadata={"name": f"{SERVICE}-headless", "namespace": NAMESPACE, "labels": LABELS},
            spec={"clusterIP": "None", "selector": LABELS, "ports": [{"name": "root", "port": PORT}]},
            opts=ns_opts,
        )
        token_url = cfg.identity.endpoint("token") if cfg.identity else ""
        volume_claim: dict[str, Any] = {
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": f"{cache.disk_gib}Gi"}}},
        }
        if cache.storage_class:
            volume_claim["spec"]["storageClassName"] = cache.storage_class
        self.stateful_set = k8s.apps.v1.StatefulSet(
            f"{name}-servers",
            metadata={"name": SERVICE, "namespace": NAMESPACE, "labels": LABELS},
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
        k8s.core.v1.Service(
            f"{name}-svc",
            metadata={"name": SERVICE, "namespace": NAMESPACE, "labels": LABELS},
            spec={
                "selector": LABELS,
                "ports": [
                    {"name": "root", "port": PORT, "targetPort": "root"},
                    {"name": "https", "port": HTTPS_PORT, "targetPort": "https"},
                    {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics"},
                ],
            },
            opts=ns_opts,
        )
        # Voluntary evictions (node drains) take at most one server away at a time.
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata={"name": SERVICE, "namespace": NAMESPACE},
            spec={"maxUnavailable": 1, "selector": {"matchLabels": LABELS}},
            opts=ns_opts,
        )
        self.url = cache_url()
        self.register_outputs({"url": self.url})

    def _upstream_secret(
        self, name: str, upstream: X509Proxy | BearerToken, opts: pulumi.ResourceOptions
    ) -> k8s.core.v1.Secret:
        if isinstance(upstream, BearerToken):
            data = {"client-secret": pulumi.Output.secret(upstream.client_secret.get_secret_value())}
        else:
            data = {
                "usercert.pem": upstream.certificate,
                "userkey.pem": pulumi.Output.secret(upstream.private_key.get_secret_value()),
            }
        return k8s.core.v1.Secret(
            f"{name}-upstream",
            metadata={"name": f"{SERVICE}-upstream", "namespace": NAMESPACE},
            type="Opaque",
            string_data=data,
            opts=opts,
        )
