"""The monitoring layer: Prometheus and Grafana scraping the facility's exporters, the dashboards
kept as code in `files/dashboards/`, and NVIDIA's DCGM exporter on GPU nodes."""
