"""Monitoring: kube-prometheus-stack (Prometheus, Grafana, kube-state-metrics, node exporter) in
the namespace `monitoring`, scraping the facility's own exporters, with the dashboards of
`files/dashboards/` as Grafana provisions them (ConfigMaps its sidecar loads), and NVIDIA's
DCGM exporter on GPU nodes when node groups have GPUs.

Scrape jobs are plain Prometheus config in the chart's values (`additionalScrapeConfigs`), so
nothing depends on the operator's CRDs existing before the chart that installs them. Grafana's
admin password is generated and kept in a Secret (the chart's default one is public)."""

from __future__ import annotations

import json

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from ..common import rendered, yamltext
from ..common.kube import layer_namespace
from ..config.facility import FacilityConfig
from ..names import MONITORING_NAMESPACE
from .values import (
    DASHBOARD_LABEL,
    DCGM_COUNTERS,
    DCGM_DELETED_DEFAULTS,
    GRAFANA_SECRET,
    dashboards,
    dcgm_values,
    gpu_metrics,
    stack_values,
)

CHART_REPO = "https://prometheus-community.github.io/helm-charts"
DCGM_REPO = "https://nvidia.github.io/dcgm-exporter/helm-charts"


class Monitoring(pulumi.ComponentResource):
    """Prometheus and Grafana, the dashboards, and the GPU exporter where there are GPUs."""

    namespace: k8s.core.v1.Namespace

    def __init__(
        self, name: str, cfg: FacilityConfig, provider: k8s.Provider, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("af:index:Monitoring", name, None, opts)
        monitoring = cfg.monitoring
        namespace, _, ns_opts = layer_namespace(
            self, name, MONITORING_NAMESPACE, provider, cfg.namespace_labels(MONITORING_NAMESPACE)
        )
        self.namespace = namespace
        values = stack_values(cfg)
        rendered.publish("monitoring", "values.yaml", yamltext.dump(values, sort_keys=True))
        password = random.RandomPassword(
            f"{name}-grafana-password", length=32, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        admin = k8s.core.v1.Secret(
            f"{name}-grafana-admin",
            metadata={"name": GRAFANA_SECRET, "namespace": MONITORING_NAMESPACE},
            type="Opaque",
            string_data={"admin-user": "admin", "admin-password": password.result},
            opts=ns_opts,
        )
        boards = [
            k8s.core.v1.ConfigMap(
                f"{name}-dashboard-{file.removesuffix('.json')}",
                metadata={
                    "name": f"af-dashboard-{file.removesuffix('.json')}",
                    "namespace": MONITORING_NAMESPACE,
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
            namespace=MONITORING_NAMESPACE,
            repository_opts={"repo": CHART_REPO},
            values=values,
            opts=pulumi.ResourceOptions.merge(ns_opts, pulumi.ResourceOptions(depends_on=[admin, *boards])),
        )
        if gpu_metrics(cfg):
            counters = k8s.core.v1.ConfigMap(
                f"{name}-dcgm-counters",
                metadata={"name": "af-dcgm-counters", "namespace": MONITORING_NAMESPACE},
                data={"counters.csv": DCGM_COUNTERS.read_text(encoding="utf-8")},
                opts=ns_opts,
            )
            dcgm = dcgm_values(cfg)
            deleted = yamltext.dump(DCGM_DELETED_DEFAULTS, sort_keys=True)
            rendered.publish("monitoring", "dcgm-values.yaml", yamltext.dump(dcgm, sort_keys=True))
            rendered.publish("monitoring", "dcgm-deleted-defaults.yaml", deleted)
            k8s.helm.v3.Release(
                f"{name}-dcgm",
                name="dcgm-exporter",
                chart="dcgm-exporter",
                version=monitoring.dcgm_chart_version,
                namespace=MONITORING_NAMESPACE,
                repository_opts={"repo": DCGM_REPO},
                value_yaml_files=[pulumi.StringAsset(deleted)],
                values=dcgm,
                opts=pulumi.ResourceOptions.merge(ns_opts, pulumi.ResourceOptions(depends_on=[counters, stack])),
            )
        self.register_outputs({"namespace": MONITORING_NAMESPACE, "dashboards": json.dumps(sorted(dashboards()))})
