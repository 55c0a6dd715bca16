"""What the monitoring layer renders: kube-prometheus-stack's values with the facility's scrape
jobs, the DCGM exporter's values, and the dashboards it ships. Pure functions of the config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..common.kube import image_parts, resources
from ..config.facility import FacilityConfig
from ..gpu.config import deploys_device_plugin
from ..names import (
    AUTOSCALER,
    CACHE_NAMESPACE,
    CACHE_SERVICE,
    CONDOR_NAMESPACE,
    DASK_NAMESPACE,
    DASK_USER_LABEL,
    GPU_NODES,
    GPU_TOLERATION,
    HUB_METRICS,
    MONITORING_NAMESPACE,
    NODE_CACHE_SERVICE,
    SYSTEM_NODES,
)

FILES = Path(__file__).resolve().parent / "files"
DASHBOARDS = FILES / "dashboards"
DCGM_COUNTERS = FILES / "dcgm-counters.csv"
DATASOURCE_UID = "prometheus"
"""The uid kube-prometheus-stack gives its Prometheus datasource in Grafana; dashboards use it."""
DASHBOARD_LABEL = "grafana_dashboard"
"""The label Grafana's sidecar looks for on ConfigMaps (the chart's default)."""
GRAFANA_SECRET = "af-grafana-admin"
DCGM_PORT = 9400
ALERTMANAGER = False
"""The stack runs no Alertmanager (alerts are read in Grafana and Prometheus)."""
DCGM_DELETED_DEFAULTS: dict[str, Any] = {"securityContext": {"capabilities": {"add": None}}}
"""Defaults of the dcgm-exporter chart the exporter must not keep, as the nulls with which Helm
deletes a default key: the chart's `securityContext.capabilities.add: [SYS_ADMIN]` (Helm merges
our `securityContext` into the chart's, so leaving `add` out would keep it). They travel in a
values YAML file, not in `values`: the Pulumi Python SDK strips null map values before they reach
the provider, and `valueYamlFiles` carry them since pulumi-kubernetes 4.30.0 (PR #4293; Pulumi's
how-to "Deleting Helm Chart Default Values")."""


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


def _meta_label(label: str) -> str:
    """Prometheus's name of a pod label in Kubernetes service discovery."""
    return "__meta_kubernetes_pod_label_" + "".join(ch if ch.isalnum() else "_" for ch in label)


def dask_job() -> dict[str, Any]:
    """Dask clusters' schedulers and workers on their `dashboard` port (Dask serves /metrics
    there; dask-gateway-server itself exports none), labelled with the cluster's owner."""
    owner = _meta_label(DASK_USER_LABEL)
    return {
        "job_name": "dask",
        "metrics_path": "/metrics",
        "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [DASK_NAMESPACE]}}],
        "relabel_configs": [
            {"source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": "dashboard", "action": "keep"},
            {"source_labels": [owner], "regex": ".+", "action": "keep"},
            {"source_labels": [owner], "target_label": "dask_user"},
            {"source_labels": [_meta_label("gateway.dask.org/cluster")], "target_label": "dask_cluster"},
            {"source_labels": [_meta_label("app.kubernetes.io/component")], "target_label": "component"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
            {"source_labels": ["__meta_kubernetes_pod_node_name"], "target_label": "node"},
        ],
    }


CACHE_TIERS = {CACHE_SERVICE: "site", NODE_CACHE_SERVICE: "node"}
"""The `cache` label of the cache exporters' series, from the pod's name label: the site cache or a node cache
(both export the same metrics), so dashboards show the tiers side by side."""


def _cache_tiers() -> list[dict[str, Any]]:
    """Relabelling that names each cache pod's tier (Prometheus anchors the regex: exact names)."""
    return [
        {
            "source_labels": [_meta_label("app.kubernetes.io/name")],
            "regex": name,
            "target_label": "cache",
            "replacement": tier,
            "action": "replace",
        }
        for name, tier in CACHE_TIERS.items()
    ]


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
        cache = _pods("af-xcache", CACHE_NAMESPACE, None)
        cache["relabel_configs"] += _cache_tiers()
        jobs.append(cache)
    if cfg.hub.enabled:
        jobs.append(
            {"job_name": "jupyterhub", "metrics_path": "/hub/metrics", "static_configs": [{"targets": [HUB_METRICS]}]}
        )
    if gpu_metrics(cfg):
        jobs.append(_pods("dcgm-exporter", MONITORING_NAMESPACE, "dcgm-exporter"))
    if cfg.dask.enabled:
        jobs.append(dask_job())
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
        "alertmanager": {"enabled": ALERTMANAGER},
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
            "sidecar": {
                "dashboards": {"enabled": True, "label": DASHBOARD_LABEL, "labelValue": "1"},
                # The chart provisions an Alertmanager data source whenever this key is true (its
                # default), whether or not Alertmanager runs: it would point at a missing Service.
                "datasources": {"alertmanager": {"enabled": ALERTMANAGER}},
            },
        },
        "prometheusOperator": {
            # The admission webhook is called by the API server, which the namespace's default-deny
            # ingress would keep out (its address depends on the CNI); rules are checked in CI.
            "admissionWebhooks": {"enabled": False},
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
    `files/dcgm-counters.csv` (basic device fields: no profiling, so no SYS_ADMIN). The chart's
    `capabilities.add` is deleted by `DCGM_DELETED_DEFAULTS`, given with these values."""
    repository, tag = image_parts(cfg.monitoring.dcgm_image)
    return {
        "image": {"repository": repository, "tag": tag},
        "arguments": ["-f", "/etc/af-dcgm/counters.csv"],
        "extraConfigMapVolumes": [{"name": "af-dcgm-counters", "configMap": {"name": "af-dcgm-counters"}}],
        "extraVolumeMounts": [{"name": "af-dcgm-counters", "mountPath": "/etc/af-dcgm", "readOnly": True}],
        # Root, without capabilities. DCGM's user guide (Getting Started, quoted in NVIDIA/DCGM#196):
        # "In both modes the DCGM library should be run as root", and dcgm-exporter embeds it; its
        # 3.x image has no USER (docker/Dockerfile.ubuntu22.04), its entrypoint runs setcap, which
        # fails for a non-root user (NVIDIA/gpu-monitoring-tools#171: "unable to set CAP_SETFCAP"),
        # and the kubelet's pod-resources socket it reads is root's. Only profiling fields need
        # SYS_ADMIN (NGC's DCGM page, quoted in aws/amazon-ecs-ami#725: "to gather profiling
        # metrics, SYS_ADMIN capabilities need to be provided"): 3.3.9-3.6.1 run as root without it
        # warns, initializes DCGM and collects the basic fields (NVIDIA/dcgm-exporter#427's log).
        "securityContext": {
            "runAsNonRoot": False,
            "runAsUser": 0,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        # The image's entrypoint (docker/dcgm-exporter-entrypoint.sh) tries `setcap
        # cap_sys_admin=+ep` on the exporter unless NO_SETCAP is set (the Dockerfile sets it empty);
        # with every capability dropped setcap fails, and some versions of the script exit on it.
        # Without profiling there is nothing to set.
        "extraEnv": [{"name": "NO_SETCAP", "value": "1"}],
        "serviceMonitor": {"enabled": False},
        "nodeSelector": dict(GPU_NODES),
        "tolerations": [dict(GPU_TOLERATION)],
        "resources": resources("50m", "128Mi", "500m", "512Mi"),
    }
