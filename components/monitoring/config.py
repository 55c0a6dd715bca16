"""`af:monitoring`: Prometheus and Grafana for the facility, on by default."""

from __future__ import annotations

from pydantic import Field, PositiveInt, StrictBool

from ..config.base import PinnedImage, StrictModel


class Monitoring(StrictModel):
    """kube-prometheus-stack (Prometheus, Grafana, kube-state-metrics, node exporter) scraping
    the facility's own exporters (autoscaler, cache, hub, GPUs), with the dashboards kept in
    `components/monitoring/files/dashboards/`."""

    enabled: StrictBool = True
    """Deploy the monitoring stack."""
    chart_version: str = Field(default="72.6.2", pattern=r"^\d+\.\d+\.\d+$")
    """Pinned `kube-prometheus-stack` chart version (https://prometheus-community.github.io/helm-charts)."""
    retention_days: PositiveInt = 15
    """How long Prometheus keeps samples."""
    storage_gib: PositiveInt = 50
    """Prometheus's persistent volume, in GiB."""
    storage_class: str | None = Field(default=None, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    """Storage class of that volume; the cluster default when unset."""
    scrape_seconds: int = Field(default=30, ge=5, le=300)
    """Scrape interval of the facility's exporters."""
    dcgm_chart_version: str = Field(default="3.6.1", pattern=r"^\d+\.\d+\.\d+$")
    """Pinned `dcgm-exporter` chart version (https://nvidia.github.io/dcgm-exporter/helm-charts),
    deployed on GPU nodes when node groups have GPUs."""
    dcgm_image: PinnedImage = "nvcr.io/nvidia/k8s/dcgm-exporter:3.3.9-3.6.1-ubuntu22.04"
    """DCGM exporter image, pinned here rather than left to the chart."""
