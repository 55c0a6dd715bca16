"""The metrics of the Dask layer the dashboard may use.

dask-gateway-server itself exports no metrics (its source has no Prometheus endpoint in
2026.3.0); Dask does: every scheduler and worker serves `/metrics` on its dashboard port
(`distributed.http.scheduler.prometheus`, `distributed.http.worker.prometheus`). The monitoring
layer scrapes them (`monitoring.values.dask_job`), keeping the pod label naming the cluster's
owner (`names.DASK_USER_LABEL`) as `dask_user`."""

from __future__ import annotations

METRICS = (
    "dask_scheduler_workers",
    "dask_scheduler_clients",
    "dask_scheduler_tasks",
    "dask_worker_threads",
    "dask_worker_memory_bytes",
)
"""Metrics the dashboard uses, as distributed names them (the tests read them from its code)."""
