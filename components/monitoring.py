"""Monitoring: kube-prometheus-stack (Prometheus, Grafana, kube-state-metrics, node exporter) in
the namespace `monitoring`, scraping the facility's own exporters, with the dashboards of
`monitoring/dashboards/` as Grafana provisions them (ConfigMaps its sidecar loads), and NVIDIA's
DCGM exporter on GPU nodes when node groups have GPUs.

Scrape jobs are plain Prometheus config in the chart's values (`additionalScrapeConfigs`), so
nothing depends on the operator's CRDs existing before the chart that installs them. Grafana's
admin password is generated and kept in a Secret (the chart's default one is public)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from . import rendered, yamltext
from .autoscaler import NAME as AUTOSCALER
from .cluster import SYSTEM_NODES
from .condor import NAMESPACE as CONDOR_NAMESPACE
from .config import FacilityConfig
from .config.gpu import deploys_device_plugin
from .dask.monitoring import scrape_jobs as dask_scrape_jobs
from .gpu import GPU_NODES, GPU_TOLERATION
from .workloads import layer_namespace, resources
from .xcache import NAMESPACE as CACHE_NAMESPACE

NAMESPACE = "monitoring"
CHART_REPO = "https://prometheus-community.github.io/helm-charts"
DCGM_REPO = "https://nvidia.github.io/dcgm-exporter/helm-charts"
ROOT = Path(__file__).resolve().parents[1] / "monitoring"
DASHBOARDS = ROOT / "dashboards"
DCGM_COUNTERS = ROOT / "dcgm-counters.csv"
DATASOURCE_UID = "prometheus"
"""The uid kube-prometheus-stack gives its Prometheus datasource in Grafana; dashboards use it."""
DASHBOARD_LABEL = "grafana_dashboard"
"""The label Grafana's sidecar looks for on ConfigMaps (the chart's default)."""
GRAFANA_SECRET = "af-grafana-admin"
DCGM_PORT = 9400
HUB_METRICS = "hub.jupyterhub.svc.cluster.local:8081"
"""z2jh's hub Service; the hub serves /hub/metrics to Prometheus without a token (in-cluster)."""


def dashboards() -> dict[str, str]:
    """The dashboards kept in the repository, by file name."""
    return {path.name: path.read_text(encoding="utf-8") for path in sorted(DASHBOARDS.glob("*.json"))}


def _pods(job: str, namespace: str, name: str | None, port: str = "metrics") -> dict[str, Any]:
    """A scrape job over the pods of `namespace` (named `name`, if given) on their port `port`."""
    keep = [
        {
            "source_labels": ["__meta_kubernetes_pod_container_port_name"],
            "regex": port,
            "action": "keep",
        }
    ]
    if name:
        keep.append(
            {"source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"], "regex": name, "action": "keep"}
        )
    return {
        "job_name": job,
        "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [namespace]}}],
        "relabel_configs": [
            *keep,
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
            {"source_labels": ["__meta_kubernetes_pod_node_name"], "target_label": "node"},
        ],
    }


def gpu_metrics(cfg: FacilityConfig) -> bool:
    """The DCGM exporter comes with the GPU support the facility deploys (an existing cluster's
    GPU operator brings its own)."""
    return deploys_device_plugin(cfg.gpu, cfg.cluster)


def scrape_configs(cfg: FacilityConfig) -> list[dict[str, Any]]:
    """What Prometheus scrapes besides Kubernetes itself: each exporter the stack deploys."""
    jobs = []
    if cfg.condor.enabled and cfg.autoscaler.enabled:
        jobs.append(_pods("af-autoscaler", CONDOR_NAMESPACE, AUTOSCALER))
    if cfg.cache.enabled:
        jobs.append(_pods("af-xcache", CACHE_NAMESPACE, None))
    if cfg.hub.enabled:
        jobs.append(
            {"job_name": "jupyterhub", "metrics_path": "/hub/metrics", "static_configs": [{"targets": [HUB_METRICS]}]}
        )
    if gpu_metrics(cfg):
        jobs.append(_pods("dcgm-exporter", NAMESPACE, "dcgm-exporter"))
    jobs.extend(dask_scrape_jobs(cfg))
    interval = f"{cfg.monitoring.scrape_seconds}s"
    return [{**job, "scrape_interval": interval} for job in jobs]


def stack_values(cfg: FacilityConfig) -> dict[str, Any]:
    """kube-prometheus-stack's values: Prometheus with its volume and our scrape jobs, Grafana
    with the generated admin password and the dashboard sidecar, everything on system nodes."""
    monitoring = cfg.monitoring
    claim: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": f"{monitoring.storage_gib}Gi"}},
    }
    if monitoring.storage_class:
        claim["storageClassName"] = monitoring.storage_class
    return {
        "alertmanager": {"enabled": False},
        "prometheus": {
            "prometheusSpec": {
                "retention": f"{monitoring.retention_days}d",
                "nodeSelector": dict(SYSTEM_NODES),
                "resources": resources("500m", "2Gi", "2", "8Gi"),
                "storageSpec": {"volumeClaimTemplate": {"spec": claim}},
                "additionalScrapeConfigs": scrape_configs(cfg),
                # Any ServiceMonitor in the cluster counts, not only this release's.
                "serviceMonitorSelectorNilUsesHelmValues": False,
                "podMonitorSelectorNilUsesHelmValues": False,
            }
        },
        "grafana": {
            "admin": {"existingSecret": GRAFANA_SECRET, "userKey": "admin-user", "passwordKey": "admin-password"},
            "nodeSelector": dict(SYSTEM_NODES),
            "resources": resources("100m", "256Mi", "1", "1Gi"),
            "sidecar": {"dashboards": {"enabled": True, "label": DASHBOARD_LABEL, "labelValue": "1"}},
        },
        "prometheusOperator": {
            "nodeSelector": dict(SYSTEM_NODES),
            "resources": resources("100m", "128Mi", "500m", "512Mi"),
        },
        "kube-state-metrics": {
            "nodeSelector": dict(SYSTEM_NODES),
            "resources": resources("50m", "128Mi", "500m", "512Mi"),
        },
        # The node exporter keeps the chart's tolerations (every NoSchedule taint): a node agent.
        "prometheus-node-exporter": {"resources": resources("50m", "64Mi", "250m", "256Mi")},
    }


def dcgm_values(cfg: FacilityConfig) -> dict[str, Any]:
    """NVIDIA's DCGM exporter on GPU nodes only, exporting the counters in
    `monitoring/dcgm-counters.csv` (basic device fields: no profiling, so no SYS_ADMIN)."""
    repository, tag = cfg.monitoring.dcgm_image.rsplit(":", 1)
    return {
        "image": {"repository": repository, "tag": tag},
        "arguments": ["-f", "/etc/af-dcgm/counters.csv"],
        "extraConfigMapVolumes": [{"name": "af-dcgm-counters", "configMap": {"name": "af-dcgm-counters"}}],
        "extraVolumeMounts": [{"name": "af-dcgm-counters", "mountPath": "/etc/af-dcgm", "readOnly": True}],
        "securityContext": {"capabilities": {"drop": ["ALL"]}},
        "serviceMonitor": {"enabled": False},
        "nodeSelector": dict(GPU_NODES),
        "tolerations": [GPU_TOLERATION],
        "resources": resources("50m", "128Mi", "500m", "512Mi"),
    }


class Monitoring(pulumi.ComponentResource):
    """Prometheus and Grafana, the dashboards, and the GPU exporter where there are GPUs."""

    def __init__(
        self, name: str, cfg: FacilityConfig, provider: k8s.Provider, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("af:index:Monitoring", name, None, opts)
        monitoring = cfg.monitoring
        _, _, ns_opts = layer_namespace(self, name, NAMESPACE, provider)
        values = stack_values(cfg)
        rendered.publish("monitoring", "values.yaml", yamltext.dump(values, sort_keys=True))
        password = random.RandomPassword(
            f"{name}-grafana-password", length=32, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        admin = k8s.core.v1.Secret(
            f"{name}-grafana-admin",
            metadata={"name": GRAFANA_SECRET, "namespace": NAMESPACE},
            type="Opaque",
            string_data={"admin-user": "admin", "admin-password": password.result},
            opts=ns_opts,
        )
        boards = [
            k8s.core.v1.ConfigMap(
                f"{name}-dashboard-{file.removesuffix('.json')}",
                metadata={
                    "name": f"af-dashboard-{file.removesuffix('.json')}",
                    "namespace": NAMESPACE,
                    "labels": {DASHBOARD_LABEL: "1"},
                },
                data={file: text},
                opts=ns_opts,
            )
            for file, text in dashboards().items()
        ]
        stack = k8s.helm.v3.Release(
            f"{name}-chart",
            name="kube-prometheus-stack",
            chart="kube-prometheus-stack",
            version=monitoring.chart_version,
            namespace=NAMESPACE,
            repository_opts={"repo": CHART_REPO},
            values=values,
            opts=pulumi.ResourceOptions.merge(ns_opts, pulumi.ResourceOptions(depends_on=[admin, *boards])),
        )
        if gpu_metrics(cfg):
            counters = k8s.core.v1.ConfigMap(
                f"{name}-dcgm-counters",
                metadata={"name": "af-dcgm-counters", "namespace": NAMESPACE},
                data={"counters.csv": DCGM_COUNTERS.read_text(encoding="utf-8")},
                opts=ns_opts,
            )
            dcgm = dcgm_values(cfg)
            rendered.publish("monitoring", "dcgm-values.yaml", yamltext.dump(dcgm, sort_keys=True))
            k8s.helm.v3.Release(
                f"{name}-dcgm",
                name="dcgm-exporter",
                chart="dcgm-exporter",
                version=monitoring.dcgm_chart_version,
                namespace=NAMESPACE,
                repository_opts={"repo": DCGM_REPO},
                values=dcgm,
                opts=pulumi.ResourceOptions.merge(ns_opts, pulumi.ResourceOptions(depends_on=[counters, stack])),
            )
        self.register_outputs({"namespace": NAMESPACE, "dashboards": json.dumps(sorted(dashboards()))})
