"""CVMFS for experiment software: the CERN cvmfs-csi driver (pinned chart), its client
config, an optional in-cluster squid, and the read-only claim consumers mount at /cvmfs."""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_kubernetes as k8s

from ..common import rendered, yamltext
from ..common.kube import layer_namespace, resources
from ..names import CVMFS_CLAIM, CVMFS_NAMESPACE, SQUID_PORT, SQUID_SERVICE, SYSTEM_NODES
from .config import Cvmfs as CvmfsConfig
from .render import cvmfs_values, render_default_local, render_squid_conf

CHART_REPO = "oci://registry.cern.ch/kubernetes/charts/cvmfs-csi"
DRIVER = "cvmfs.csi.cern.ch"
STORAGE_CLASS = "cvmfs"
SQUID_IMAGE = "docker.io/ubuntu/squid:6.6-24.04_beta"


class Cvmfs(pulumi.ComponentResource):
    """The CVMFS CSI driver and storage class; `claim` gives a namespace its /cvmfs volume."""

    namespace: k8s.core.v1.Namespace
    release: k8s.helm.v3.Release
    storage_class: k8s.storage.v1.StorageClass

    def __init__(
        self,
        name: str,
        cvmfs: CvmfsConfig,
        client_cidrs: list[str],
        gpu_nodes: bool,
        provider: k8s.Provider,
        opts: pulumi.ResourceOptions | None = None,
        namespace_labels: Mapping[str, str] | None = None,
    ) -> None:
        """`client_cidrs`: the networks the squid serves (pods' and nodes'); `gpu_nodes`: the
        node plugin must also run on tainted GPU nodes; `namespace_labels`: its namespace's."""
        super().__init__("af:index:Cvmfs", name, None, opts)
        self._provider = provider
        namespace, _, ns_opts = layer_namespace(self, name, CVMFS_NAMESPACE, provider, namespace_labels)
        self.namespace = namespace
        waits: list[pulumi.Resource] = [namespace]
        if cvmfs.squid_proxy:
            waits.append(self._squid(name, client_cidrs, ns_opts))
        values = cvmfs_values(cvmfs, gpu_nodes=gpu_nodes)
        rendered.publish("cvmfs", "values.yaml", yamltext.dump(values))
        rendered.publish("cvmfs", "default.local", render_default_local(cvmfs))
        self.release = k8s.helm.v3.Release(
            f"{name}-chart",
            name="cvmfs-csi",
            chart=CHART_REPO,
            version=cvmfs.chart_version,
            namespace=CVMFS_NAMESPACE,
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
            metadata={"name": f"{SQUID_SERVICE}-conf", "namespace": CVMFS_NAMESPACE},
            data={"squid.conf": conf},
            opts=opts,
        )
        k8s.apps.v1.Deployment(
            f"{name}-squid",
            metadata={"name": SQUID_SERVICE, "namespace": CVMFS_NAMESPACE, "labels": labels},
            spec={
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "nodeSelector": dict(SYSTEM_NODES),
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
            metadata={"name": SQUID_SERVICE, "namespace": CVMFS_NAMESPACE},
            spec={"selector": labels, "ports": [{"name": "http", "port": SQUID_PORT, "targetPort": SQUID_PORT}]},
            opts=opts,
        )

    def claim(
        self, name: str, namespace: k8s.core.v1.Namespace, parent: pulumi.Resource
    ) -> k8s.core.v1.PersistentVolumeClaim:
        """The read-only /cvmfs claim in `namespace` (created after it; it automounts every
        configured repository)."""
        return k8s.core.v1.PersistentVolumeClaim(
            name,
            metadata={"name": CVMFS_CLAIM, "namespace": namespace.metadata["name"]},
            spec={
                "accessModes": ["ReadOnlyMany"],
                "resources": {"requests": {"storage": "1"}},
                "storageClassName": STORAGE_CLASS,
            },
            opts=pulumi.ResourceOptions(
                parent=parent, provider=self._provider, depends_on=[namespace, self.storage_class]
            ),
        )
