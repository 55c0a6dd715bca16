"""What Prometheus scrapes of the Dask layer, and the metrics the dashboard may use.

dask-gateway-server itself exports no metrics (its source has no Prometheus endpoint in
2026.3.0); Dask does: every scheduler and worker serves `/metrics` on its dashboard port
(`distributed.http.scheduler.prometheus`, `distributed.http.worker.prometheus`). The scrape
keeps the pod label naming the cluster's owner, so the dashboard can count per user."""

from __future__ import annotations

from typing import Any

from ..config import FacilityConfig
from .gateway import NAMESPACE, USER_LABEL

JOB = "dask"
USER = "dask_user"
CLUSTER = "dask_cluster"
METRICS = (
    "dask_scheduler_workers",
    "dask_scheduler_clients",
    "dask_scheduler_tasks",
    "dask_worker_threads",
    "dask_worker_memory_bytes",
)
"""Metrics the dashboard uses, as distributed names them (the tests read them from its code)."""


def _meta_label(label: str) -> str:
    """Prometheus's name of a pod label in Kubernetes service discovery."""
    return "__meta_kubernetes_pod_label_" + "".join(ch if ch.isalnum() else "_" for ch in label)


def scrape_jobs(cfg: FacilityConfig) -> list[dict[str, Any]]:
    """Schedulers and workers of the gateway's clusters, on their `dashboard` port."""
    if not cfg.dask.enabled:
        return []
    return [
        {
            "job_name": JOB,
            "metrics_path": "/metrics",
            "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [NAMESPACE]}}],
            "relabel_configs": [
                {
                    "source_labels": ["__meta_kubernetes_pod_container_port_name"],
                    "regex": "dashboard",
                    "action": "keep",
                },
                {"source_labels": [_meta_label(USER_LABEL)], "regex": ".+", "action": "keep"},
                {"source_labels": [_meta_label(USER_LABEL)], "target_label": USER},
                {"source_labels": [_meta_label("gateway.dask.org/cluster")], "target_label": CLUSTER},
                {"source_labels": [_meta_label("app.kubernetes.io/component")], "target_label": "component"},
                {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                {"source_labels": ["__meta_kubernetes_pod_node_name"], "target_label": "node"},
            ],
        }
    ]
