"""Monitoring: kube-prometheus-stack and the DCGM exporter in the plan, the scrape jobs for the
facility's exporters, and dashboards that are valid Grafana JSON and use only metrics the
facility's components actually export (names read from the exporters' own code)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

import jupyterhub.metrics
import kubernetes_validate
import prometheus_client
import pytest
import yaml
from conftest import by_name, of_type, preview_values, stack_values
from test_dask_plan import dask_exported_metrics
from test_hub import hub_values, manifest

from autoscaler.metrics import HELP as AUTOSCALER_METRICS
from components.cache.files.af_xcache_exporter import METRICS as XCACHE_METRICS
from components.monitoring.values import (
    DASHBOARD_LABEL,
    DATASOURCE_UID,
    DCGM_COUNTERS,
    DCGM_DELETED_DEFAULTS,
    GRAFANA_SECRET,
    dashboards,
)

PANEL_TYPES = {"timeseries", "stat", "gauge", "bargauge", "table", "text"}
PROMQL_WORDS = frozenset(
    (
        # aggregations, functions and keywords: identifiers that are not metric names
        "sum",
        "avg",
        "min",
        "max",
        "count",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
        "group",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "rate",
        "irate",
        "increase",
        "delta",
        "idelta",
        "deriv",
        "predict_linear",
        "histogram_quantile",
        "abs",
        "ceil",
        "floor",
        "round",
        "clamp",
        "clamp_min",
        "clamp_max",
        "label_replace",
        "label_join",
        "vector",
        "scalar",
        "time",
        "timestamp",
        "sort",
        "sort_desc",
        "avg_over_time",
        "max_over_time",
        "min_over_time",
        "sum_over_time",
        "count_over_time",
        "last_over_time",
        "absent",
    )
)


def exported_metrics() -> set[str]:
    """Every series name the facility's exporters can produce, from their own code."""
    names = set(AUTOSCALER_METRICS) | set(XCACHE_METRICS)
    for collector in vars(jupyterhub.metrics).values():
        if isinstance(collector, prometheus_client.metrics.MetricWrapperBase):
            base = collector._name
            if isinstance(collector, prometheus_client.Histogram):
                names |= {f"{base}_bucket", f"{base}_sum", f"{base}_count"}
            elif isinstance(collector, prometheus_client.Counter):
                names.add(f"{base}_total")
            else:
                names.add(base)
    names |= dask_exported_metrics()
    for line in DCGM_COUNTERS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            names.add(line.split(",")[0].strip())
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads."""
    text = re.sub(r'"[^"]*"', "", expr)  # strings (label values)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)  # label lists
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        after = text[match.end() :].lstrip()
        if match.group() not in PROMQL_WORDS and not after.startswith("("):
            names.add(match.group())
    return names


def exprs(board: dict) -> Iterable[str]:
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            yield target["expr"]


@pytest.mark.parametrize("file", sorted(dashboards()))
def test_dashboards_are_valid_grafana_json(file):
    board = json.loads(dashboards()[file])
    assert board["uid"].startswith("af-") and board["title"] and isinstance(board["schemaVersion"], int)
    assert board["time"]["from"] and board["panels"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in board["panels"]:
        assert panel["type"] in PANEL_TYPES and panel["title"]
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"} and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)) and all(t["expr"].strip() for t in panel["targets"])
    uids = [json.loads(text)["uid"] for text in dashboards().values()]
    assert len(uids) == len(set(uids))


@pytest.mark.parametrize("file", sorted(dashboards()))
def test_dashboards_use_only_metrics_the_facility_exports(file):
    known = exported_metrics()
    used = {name for expr in exprs(json.loads(dashboards()[file])) for name in metric_names(expr)}
    assert used, f"{file}: no metric found (the extraction would be vacuous)"
    assert used <= known, f"{file}: metrics no component exports: {sorted(used - known)}"


def test_the_cross_check_sees_what_a_dashboard_reads():
    expr = 'histogram_quantile(0.9, sum by (le) (rate(jupyterhub_server_spawn_duration_seconds_bucket{x="a b"}[1h])))'
    assert metric_names(expr) == {"jupyterhub_server_spawn_duration_seconds_bucket"}
    assert metric_names("sum by (group) (af_autoscaler_busy_cores) / sum by (group) (af_autoscaler_cores)") == {
        "af_autoscaler_busy_cores",
        "af_autoscaler_cores",
    }
    assert not metric_names("af_autoscaler_workers_wanted") <= exported_metrics()  # a typo is caught
    assert "jupyterhub_active_users" in exported_metrics() and "DCGM_FI_DEV_GPU_UTIL" in exported_metrics()


def test_the_dashboards_cover_what_operators_asked_for():
    used = {name for text in dashboards().values() for name in metric_names(" ".join(exprs(json.loads(text))))}
    for needed in (
        "af_autoscaler_idle_jobs",
        "af_autoscaler_running_jobs",
        "af_autoscaler_workers_desired",
        "af_autoscaler_workers_actual",
        "DCGM_FI_DEV_GPU_UTIL",
        "jupyterhub_active_users",
        "af_xcache_hit_bytes_total",
        "af_xcache_miss_bytes_total",
    ):
        assert needed in used, needed


def test_the_plan_deploys_a_pinned_stack_with_our_dashboards_and_scrape_jobs(shipped):
    result = shipped("cms-bari")
    release = by_name(result, "af-monitoring-chart").inputs
    assert release["chart"] == "kube-prometheus-stack" and re.fullmatch(r"\d+\.\d+\.\d+", release["version"])
    values = release["values"]
    assert values["grafana"]["admin"]["existingSecret"] == GRAFANA_SECRET
    assert "prom-operator" not in json.dumps(values), "the chart's public default password"
    assert by_name(result, "af-monitoring-grafana-admin").inputs["stringData"] == "[secret]"
    jobs = {j["job_name"]: j for j in values["prometheus"]["prometheusSpec"]["additionalScrapeConfigs"]}
    assert {"af-xcache", "jupyterhub", "dcgm-exporter"} <= set(jobs)
    assert jobs["jupyterhub"]["metrics_path"] == "/hub/metrics"
    assert hub_values(result)["hub"]["config"]["JupyterHub"]["authenticate_prometheus"] is False
    boards = [
        r for r in of_type(result, "kubernetes:core/v1:ConfigMap") if r.name.startswith("af-monitoring-dashboard-")
    ]
    assert {next(iter(r.inputs["data"])) for r in boards} == set(dashboards())
    assert all(r.inputs["metadata"]["labels"] == {DASHBOARD_LABEL: "1"} for r in boards)
    for r in result.registrations:
        if r.custom and r.name.startswith("af-monitoring") and r.type.startswith("kubernetes:core/v1"):
            kubernetes_validate.validate(manifest(r), "1.36.2", strict=True)


def test_the_gpu_exporter_runs_only_on_gpu_nodes_and_only_with_gpus(shipped):
    result = shipped("cms-bari")
    dcgm = by_name(result, "af-monitoring-dcgm").inputs
    values = dcgm["values"]
    assert values["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert values["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert "SYS_ADMIN" not in json.dumps(values) and values["image"]["tag"] != "latest"
    assert values["arguments"] == ["-f", "/etc/af-dcgm/counters.csv"]
    # The chart's SYS_ADMIN is deleted by a values file (test_chart_standins checks the merge).
    assert [yaml.safe_load(f["text"]) for f in dcgm["valueYamlFiles"]] == [DCGM_DELETED_DEFAULTS]
    assert yaml.safe_load(result.files["monitoring/dcgm-deleted-defaults.yaml"]) == DCGM_DELETED_DEFAULTS
    for stack in ("dev", "atlas-cnaf"):
        assert not [r for r in shipped(stack).registrations if "dcgm" in r.name]
        jobs = by_name(shipped(stack), "af-monitoring-chart").inputs["values"]["prometheus"]["prometheusSpec"]
        assert "dcgm-exporter" not in {j["job_name"] for j in jobs["additionalScrapeConfigs"]}


def test_the_autoscaler_is_scraped_when_it_runs():
    values, secret = stack_values("cms-bari")
    values["autoscaler"] = {"enabled": True, "image": "registry.example.org/af/af-autoscaler:0.1.0"}
    result = preview_values("cms-bari", values, secret)
    spec = by_name(result, "af-monitoring-chart").inputs["values"]["prometheus"]["prometheusSpec"]
    job = next(j for j in spec["additionalScrapeConfigs"] if j["job_name"] == "af-autoscaler")
    assert job["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"names": ["condor"]}}]
    pod = by_name(result, "af-autoscaler-controller").inputs["spec"]["template"]
    assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == "af-autoscaler"
    assert any(p["name"] == "metrics" for c in pod["spec"]["containers"] for p in c.get("ports", []))


def test_monitoring_can_be_turned_off():
    values, secret = stack_values("dev")
    values["monitoring"] = {"enabled": False}
    result = preview_values("dev", values, secret)
    assert not [r for r in result.registrations if r.name.startswith("af-monitoring")]
    assert hub_values(result)["hub"]["config"]["JupyterHub"]["authenticate_prometheus"] is True


def test_each_scrape_job_keeps_a_port_its_pods_declare(shipped):
    result = shipped("cms-bari")
    spec = by_name(result, "af-monitoring-chart").inputs["values"]["prometheus"]["prometheusSpec"]
    job = next(j for j in spec["additionalScrapeConfigs"] if j["job_name"] == "af-xcache")
    port = next(r["regex"] for r in job["relabel_configs"] if r.get("action") == "keep")
    pod = by_name(result, "af-cache-servers").inputs["spec"]["template"]["spec"]
    assert port in {p["name"] for c in pod["containers"] for p in c.get("ports", [])}
    assert job["kubernetes_sd_configs"][0]["namespaces"]["names"] == [
        by_name(result, "af-cache-servers").inputs["metadata"]["namespace"]
    ]
