"""CVMFS for experiment software: the CERN cvmfs-csi driver (pinned chart), its client
config, an optional in-cluster squid, and the read-only claim consumers mount at /cvmfs."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from . import rendered, yamltext
from .config import GPU_TAINT_KEY, FacilityConfig
from .config.gpu import gpu_groups
from .config.interactive import Cvmfs as CvmfsConfig
from .workloads import layer_namespace, resources

CHART_REPO = "oci://registry.cern.ch/kubernetes/charts/cvmfs-csi"
DRIVER = "cvmfs.csi.cern.ch"
STORAGE_CLASS = "cvmfs"
NAMESPACE = "cvmfs"
CLAIM = "cvmfs"
"""Name of the /cvmfs claim in each consumer namespace."""
MOUNT = "/cvmfs"
SQUID_SERVICE = "af-squid"
SQUID_PORT = 3128
SQUID_IMAGE = "docker.io/ubuntu/squid:6.6-24.04_beta"


def squid_url() -> str:
    return f"http://{SQUID_SERVICE}.{NAMESPACE}.svc.cluster.local:{SQUID_PORT}"


def http_proxy_chain(cvmfs: CvmfsConfig) -> str:
    """`CVMFS_HTTP_PROXY`: the local squid, then the site's proxies, then (only without a site
    proxy) direct connections to the Stratum-1s. `;` separates failover groups."""
    chain = [squid_url()] if cvmfs.squid_proxy else []
    chain.append(cvmfs.http_proxy or "DIRECT")
    return ";".join(chain)


def render_default_local(cvmfs: CvmfsConfig) -> str:
    """The client's `/etc/cvmfs/default.local`."""
    lines = [
        f"CVMFS_REPOSITORIES={','.join(cvmfs.repositories)}",
        f'CVMFS_HTTP_PROXY="{http_proxy_chain(cvmfs)}"',
        "CVMFS_USE_GEOAPI=yes",
        f"CVMFS_QUOTA_LIMIT={cvmfs.cache_gib * 1024}",
        "CVMFS_CACHE_BASE=/cvmfs-localcache",
    ]
    return "\n".join(lines) + "\n"


def cvmfs_values(cvmfs: CvmfsConfig, gpu_nodes: bool) -> dict[str, Any]:
    """The chart's values. With `gpu_nodes`, the node plugin also runs on GPU nodes, so GPU
    notebooks get /cvmfs too; the storage class is ours, not the chart's, so consumers can
    depend on it."""
    small = resources("10m", "32Mi", "200m", "128Mi")
    client = resources("100m", "256Mi", "2", "2Gi")
    nodeplugin: dict[str, Any] = {
        "plugin": {"resources": small},
        "automount": {"resources": client},
        "automountReconciler": {"resources": small},
        "singlemount": {"resources": client},
        "registrar": {"resources": small},
    }
    if gpu_nodes:
        nodeplugin["tolerations"] = [{"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}]
    return {
        "extraConfigMaps": {"cvmfs-csi-default-local": {"default.local": render_default_local(cvmfs)}},
        "cache": {"local": {"cvmfsQuotaLimit": cvmfs.cache_gib * 1024}},
        "nodeplugin": nodeplugin,
        "controllerplugin": {"plugin": {"resources": small}, "provisioner": {"resources": small}},
        "automountStorageClass": {"create": False},
    }


def render_squid_conf(allowed_cidrs: list[str]) -> str:
    acl = " ".join(allowed_cidrs)
    return "\n".join(
        [
            f"http_port {SQUID_PORT}",
            f"acl facility src {acl}",
            "http_access allow facility",
            "http_access deny all",
            "cache_mem 256 MB",
            "maximum_object_size 1024 MB",
            "cache_dir ufs /var/spool/squid 8000 16 256",
            "",
        ]
    )


class Cvmfs(pulumi.ComponentResource):
    """The CVMFS CSI driver and storage class; `claim` gives a namespace its /cvmfs volume."""

    release: k8s.helm.v3.Release
    storage_class: k8s.storage.v1.StorageClass

    def __init__(
        self, name: str, cfg: FacilityConfig, provider: k8s.Provider, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("af:index:Cvmfs", name, None, opts)
        self._provider = provider
        cvmfs = cfg.cvmfs
        namespace, k8s_opts, _ = layer_namespace(self, name, NAMESPACE, provider)
        waits: list[pulumi.Resource] = [namespace]
        if cvmfs.squid_proxy:
            waits.append(self._squid(name, [cfg.cluster.pod_cidr, cfg.site.node_cidr], k8s_opts))
        values = cvmfs_values(cvmfs, gpu_nodes=bool(gpu_groups(cfg.cluster)))
        rendered.publish("cvmfs", "values.yaml", yamltext.dump(values))
        rendered.publish("cvmfs", "default.local", render_default_local(cvmfs))
        self.release = k8s.helm.v3.Release(
            f"{name}-chart",
            name="cvmfs-csi",
            chart=CHART_REPO,
            version=cvmfs.chart_version,
            namespace=NAMESPACE,
            values=values,
            opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=waits),
        )
        self.storage_class = k8s.storage.v1.StorageClass(
            f"{name}-class",
            metadata={"name": STORAGE_CLASS},
            provisioner=DRIVER,
            opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[self.release]),
        )
        self.register_outputs({"storageClass": self.storage_class.metadata["name"]})

    def _squid(self, name: str, cidrs: list[str], opts: pulumi.ResourceOptions) -> k8s.core.v1.Service:
        conf = render_squid_conf(cidrs)
        rendered.publish("cvmfs", "squid.conf", conf)
        labels = {"app.kubernetes.io/name": SQUID_SERVICE}
        config = k8s.core.v1.ConfigMap(
            f"{name}-squid-conf",
            metadata={"name": f"{SQUID_SERVICE}-conf", "namespace": NAMESPACE},
            data={"squid.conf": conf},
            opts=opts,
        )
        k8s.apps.v1.Deployment(
            f"{name}-squid",
            metadata={"name": SQUID_SERVICE, "namespace": NAMESPACE, "labels": labels},
            spec={
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [
                            {
                                "name": "squid",
                                "image": SQUID_IMAGE,
                                "ports": [{"containerPort": SQUID_PORT, "name": "http"}],
                                "resources": resources("100m", "512Mi", "1", "1Gi"),
                                "volumeMounts": [
                                    {"name": "conf", "mountPath": "/etc/squid/squid.conf", "subPath": "squid.conf"},
                                    {"name": "cache", "mountPath": "/var/spool/squid"},
                                ],
                                "readinessProbe": {"tcpSocket": {"port": SQUID_PORT}, "periodSeconds": 10},
                            }
                        ],
                        "volumes": [
                            {"name": "conf", "configMap": {"name": config.metadata["name"]}},
                            {"name": "cache", "emptyDir": {"sizeLimit": "10Gi"}},
                        ],
                    },
                },
            },
            opts=opts,
        )
        return k8s.core.v1.Service(
            f"{name}-squid-svc",
            metadata={"name": SQUID_SERVICE, "namespace": NAMESPACE},
            spec={"selector": labels, "ports": [{"name": "http", "port": SQUID_PORT, "targetPort": SQUID_PORT}]},
            opts=opts,
        )

    def claim(
        self, name: str, namespace: pulumi.Input[str], parent: pulumi.Resource
    ) -> k8s.core.v1.PersistentVolumeClaim:
        """The read-only /cvmfs claim in `namespace` (automounts every configured repository)."""
        return k8s.core.v1.PersistentVolumeClaim(
            name,
            metadata={"name": CLAIM, "namespace": namespace},
            spec={
                "accessModes": ["ReadOnlyMany"],
                "resources": {"requests": {"storage": "1"}},
                "storageClassName": STORAGE_CLASS,
            },
            opts=pulumi.ResourceOptions(parent=parent, provider=self._provider, depends_on=[self.storage_class]),
        )
