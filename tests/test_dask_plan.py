"""The Dask layer in the plan and its rendered pieces: the chart pinned on the cluster's provider,
values without secrets, the service token through Secrets, pods placed on the groups meant for
them, limits per group from the config, the hub's part (loaded by a real JupyterHub config), the
notebooks' `dask-jobqueue` HTCondor submit description (parsed by htcondor2, matched by classad2
against the pool's worker slots), flows and the metrics Prometheus scrapes."""

from __future__ import annotations

import ast
import json
import secrets
from pathlib import Path
from typing import Any

import classad2
import dask
import distributed.http.scheduler.prometheus.core as scheduler_metrics
import distributed.http.worker.prometheus.core as worker_metrics
import htcondor2
import pytest
import yaml
from conftest import by_name, of_type, stack_values
from support.hub import hub_app
from test_condor_config import _slot, daemon_params

from components.config.loader import build_config
from components.dask.config import worker_groups
from components.dask.gateway import (
    CHART_REPO,
    NAMESPACE,
    SERVICE,
    TOKEN_KEY,
    TOKEN_SECRET,
    USER_LABEL,
    ClusterSite,
    gateway_settings,
)
from components.dask.hub import DASK_CONFIG, PRELOAD, SERVER_TOKEN_SCOPES, notebook_dask_config
from components.dask.monitoring import METRICS
from components.facility import hub_site
from components.flows.declaration import CACHE, DASK_PROXY, DASK_WORKERS, NOTEBOOKS, facility_flows, user_code
from components.hub.values import hub_values
from components.infra.nodes import node_labels
from components.monitoring.values import dashboards, scrape_configs
from components.names import GPU_TAINT_KEY

RELEASE = "kubernetes:helm.sh/v3:Release"
K8S_PROVIDER = "pulumi:providers:kubernetes"
STACKS = ("dev", "cms-bari")


def _cfg(stack: str):
    return build_config(*stack_values(stack))


def _settings(stack: str) -> dict[str, Any]:
    cfg = _cfg(stack)
    nb = hub_site(cfg)
    return gateway_settings(cfg, ClusterSite(nb.extra_env, nb.extra_files, nb.trust_internal_ca, nb.cvmfs, ("i:1",)))


@pytest.mark.parametrize("stack", STACKS)
def test_the_chart_is_pinned_on_the_clusters_provider_in_its_namespace(shipped, stack):
    result = shipped(stack)
    cfg = _cfg(stack)
    (provider,) = of_type(result, K8S_PROVIDER)
    release = by_name(result, "af-dask-chart")
    assert (release.inputs["chart"], release.inputs["version"]) == ("dask-gateway", cfg.dask.chart_version)
    assert release.inputs["version"] == "2026.3.0" and release.inputs["repositoryOpts"]["repo"] == CHART_REPO
    assert release.provider == provider.urn and release.inputs["namespace"] == NAMESPACE
    namespace = by_name(result, "af-dask-ns")
    assert namespace.inputs["metadata"]["name"] == NAMESPACE
    values = release.inputs["values"]
    assert values["gateway"]["image"] == {
        "name": "ghcr.io/dask/dask-gateway-server",
        "tag": "2026.3.0",
        "pullPolicy": "IfNotPresent",
    }
    assert values["controller"]["image"]["tag"] == "2026.3.0"
    # Every namespaced object of the layer waits for its namespace (directly or by its name).
    for r in result.registrations:
        namespaced = r.type.startswith("kubernetes:") and (r.inputs.get("metadata") or {}).get("namespace")
        ours = namespaced and r.parent == by_name(result, "af-dask").urn
        if ours or (r.type == RELEASE and r.name == "af-dask-chart"):
            assert namespace.urn in r.dependencies or namespace.urn in {
                u for deps in r.property_dependencies.values() for u in deps
            }, r.name


@pytest.mark.parametrize("stack", STACKS)
def test_values_hold_no_secret_and_the_token_comes_from_secrets(shipped, stack):
    result = shipped(stack)
    values = by_name(result, "af-dask-chart").inputs["values"]
    assert isinstance(values, dict) and "[secret]" not in json.dumps(values)
    auth = values["gateway"]["auth"]
    assert auth == {
        "type": "jupyterhub",
        "jupyterhub": {
            "apiUrl": "http://hub.jupyterhub.svc.cluster.local:8081/hub/api",
            "apiTokenFromSecretName": TOKEN_SECRET,
        },
    }
    assert {"name": "JUPYTERHUB_SERVICE_NAME", "value": SERVICE} in values["gateway"]["env"]
    token = by_name(result, "af-dask-gateway-token")
    assert token.type == "random:index/randomPassword:RandomPassword"
    for name, namespace in (("af-dask-token", NAMESPACE), ("af-hub-dask-token", "jupyterhub")):
        secret = [r for r in of_type(result, "kubernetes:core/v1:Secret") if r.name == name]
        assert len(secret) == 1, name
        assert secret[0].inputs["metadata"]["namespace"] == namespace
        assert secret[0].inputs["stringData"] == "[secret]"  # the token, under TOKEN_KEY
    hub = by_name(result, "af-hub-chart")
    assert by_name(result, "af-hub-dask-token").urn in hub.dependencies
    env = hub.inputs["values"]["hub"]["extraEnv"]["AF_DASK_GATEWAY_TOKEN"]
    assert env == {"valueFrom": {"secretKeyRef": {"name": TOKEN_SECRET, "key": TOKEN_KEY}}}


@pytest.mark.parametrize("stack", STACKS)
def test_schedulers_and_workers_select_labels_and_tolerate_taints_of_existing_groups(stack):
    cfg = _cfg(stack)
    pods = _settings(stack)["pods"]
    placement = cfg.dask.placement

    def lands(pod: dict[str, Any], groups: dict) -> set[str]:
        tolerated = {(t["key"], t.get("value", ""), t["effect"]) for t in pod.get("tolerations", [])}
        tolerated_keys = {(t["key"], t["effect"]) for t in pod.get("tolerations", []) if t["operator"] == "Exists"}
        return {
            name
            for name, group in cfg.cluster.node_groups.items()
            if pod["nodeSelector"].items() <= node_labels(name, group).items()
            and all(
                (t.key, t.value, t.effect) in tolerated or (t.key, t.effect) in tolerated_keys for t in group.taints
            )
        }

    cpu_workers = worker_groups(cfg, gpu=False)
    assert cpu_workers and lands(pods["worker"], cpu_workers) == set(cpu_workers)
    schedulers = {n for n, g in cfg.cluster.groups_with(placement.schedulers).items() if g.gpu is None}
    assert schedulers and lands(pods["scheduler"], {}) == schedulers
    assert not any(
        t["key"] == GPU_TAINT_KEY
        for t in pods["worker"].get("tolerations", []) + pods["scheduler"].get("tolerations", [])
    )
    gpu_workers = worker_groups(cfg, gpu=True)
    if gpu_workers:
        assert lands(pods["gpuWorker"], gpu_workers) == set(gpu_workers)
    else:
        assert pods["gpuWorker"] is None


def test_cms_bari_places_gpu_workers_on_the_a100s_for_the_gpu_groups_only():
    settings = _settings("cms-bari")
    assert settings["gpuGroups"] == ["/cms/ml"] and settings["worker"]["maxGpus"] == 1
    assert settings["pods"]["gpuWorker"]["nodeSelector"]["nvidia.com/gpu.present"] == "true"
    assert _settings("dev")["worker"]["maxGpus"] == 0  # no GPU group runs Dask workers


@pytest.mark.parametrize("stack", STACKS)
def test_limits_per_group_come_from_the_config(shipped, stack):
    cfg = _cfg(stack)
    settings = _settings(stack)
    assert settings["limits"] == {
        group: {
            "cores": limit.cores,
            "memoryGib": limit.memory_gib,
            "workersPerCluster": limit.workers_per_cluster,
            "clustersPerUser": limit.clusters_per_user,
        }
        for group, limit in cfg.dask.limits.items()
    }
    assert settings["limits"] and set(settings["limits"]) <= set(cfg.identity.roles.all_groups())
    assert settings["idleTimeoutSeconds"] == cfg.dask.idle_timeout_minutes * 60
    assert settings["maxLifetimeSeconds"] == cfg.dask.max_lifetime_hours * 3600
    # What the plan deploys is these settings, in the snippet the options handler reads.
    snippet = by_name(shipped(stack), "af-dask-chart").inputs["values"]["gateway"]["extraConfig"]["10-af-settings"]
    namespace: dict[str, Any] = {}
    exec(compile(snippet, "10-af-settings", "exec"), namespace)
    assert namespace["AF_DASK"]["limits"] == settings["limits"]
    assert namespace["AF_DASK"]["images"] == [cfg.hub.notebook_image]


def test_the_options_handler_is_valid_python_that_registers_the_options():
    text = (Path(__file__).parents[1] / "components/dask/files/gateway_options.py").read_text()
    tree = ast.parse(text)
    assigned = [ast.unparse(n.targets[0]) for n in tree.body if isinstance(n, ast.Assign)]
    assert "c.Backend.cluster_options" in assigned


# --- the hub's part ------------------------------------------------------------------------------


def test_the_hub_registers_the_gateway_and_stops_clusters_with_servers(tmp_path):
    cfg = _cfg("cms-bari")
    values = hub_values(cfg, hub_site(cfg))
    assert "[secret]" not in json.dumps(values)
    token = secrets.token_hex(32)
    env = {
        "OAUTH_CLIENT_SECRET": "x",
        "AF_COOKIE_SECRET": secrets.token_hex(32),
        "JUPYTERHUB_CRYPT_KEY": secrets.token_hex(32),
        "AF_DASK_GATEWAY_TOKEN": token,
    }
    with hub_app(values, env, tmp_path) as app:
        (service,) = [s for s in app.config.JupyterHub.services if s["name"] == SERVICE]
        assert service["api_token"] == token and service["url"].startswith("http://traefik-dask-gateway.dask.svc")
        user_role = next(r for r in app.config.JupyterHub.load_roles if r["name"] == "user")
        assert f"access:services!service={SERVICE}" in user_role["scopes"]
        assert set(SERVER_TOKEN_SCOPES) <= set(app.config.Spawner.server_token_scopes)
        assert app.config.Spawner.post_stop_hook.__name__ == "af_dask_stop_clusters"
    files = values["singleuser"]["extraFiles"]
    assert files["af-dask-config"]["mountPath"] == DASK_CONFIG and files["af-dask-token"]["mountPath"] == PRELOAD
    notebook = yaml.safe_load(files["af-dask-config"]["stringData"])
    assert notebook == notebook_dask_config(cfg, cfg.site.dns_name)
    assert notebook["gateway"]["cluster"]["options"] == {"image": "{JUPYTER_IMAGE_SPEC}"}
    assert notebook["gateway"]["public-address"] == f"https://{cfg.site.dns_name}/services/dask-gateway"


# --- dask-jobqueue's HTCondor submit description ---------------------------------------------------


def _dotted(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value and not key.startswith("job-extra"):
            flat |= _dotted(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def test_htcondor_cluster_submits_workers_the_pool_can_run(tmp_path):
    from dask_jobqueue import HTCondorCluster

    cfg = _cfg("cms-bari")
    jobqueue = notebook_dask_config(cfg, cfg.site.dns_name)["jobqueue"]
    with dask.config.set(_dotted({"jobqueue": jobqueue})), HTCondorCluster() as cluster:  # no arguments
        script = cluster.job_script()
        assert cluster.job_cls.submit_command.split()[0] == "condor_submit"
    description = "\n".join(line for line in script.splitlines() if line.strip().lower() != "queue")
    submit = htcondor2.Submit(description)
    assert submit["MY.WantOffload"] == "False" and submit["MY.AfDaskWorker"] == "True"
    job = classad2.ClassAd(
        {key.removeprefix("MY."): classad2.ExprTree(value) for key, value in submit.items() if key.startswith("MY.")}
    )
    for key in ("RequestCpus", "RequestMemory", "RequestDisk"):
        job[key] = classad2.ExprTree(submit[key])
    assert (job.eval("RequestCpus"), job.eval("RequestMemory")) == (1, 4096)
    job["Requirements"] = classad2.ExprTree("TARGET.Cpus >= MY.RequestCpus && TARGET.Memory >= MY.RequestMemory")
    cpu = _slot(daemon_params(tmp_path, "cms-bari", "execute-cpu.conf", POD_NAME="p"), 0)
    gpu = _slot(daemon_params(tmp_path, "cms-bari", "execute-gpu-a100.conf", POD_NAME="p"), 1)
    assert cpu.symmetricMatch(job), "a CPU worker slot runs Dask workers"
    assert not gpu.symmetricMatch(job), "GPU slots start only GPU jobs"


# --- flows and metrics ---------------------------------------------------------------------------


def test_flows_name_the_notebook_gateway_and_cache_paths():
    declared = [(f.source, f.target, f.ports) for f in facility_flows(_cfg("cms-bari"))]
    assert (NOTEBOOKS, DASK_PROXY, (8000,)) in declared and (DASK_WORKERS, CACHE, (1094, 8443)) in declared
    assert DASK_WORKERS in user_code(_cfg("cms-bari"))  # users' code: no metadata service
    assert not [f for f in facility_flows(build_config(*_disabled())) if "dask" in f.source.name + f.target.name]


def _disabled():
    values, secret = stack_values("dev")
    values["dask"] = {"enabled": False}
    return values, secret


@pytest.mark.parametrize("stack", STACKS)
def test_prometheus_scrapes_schedulers_and_workers_by_user(stack):
    (job,) = [j for j in scrape_configs(_cfg(stack)) if j["job_name"] == "dask"]
    assert job["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"names": [NAMESPACE]}}]
    label = "__meta_kubernetes_pod_label_" + USER_LABEL.replace(".", "_").replace("/", "_").replace("-", "_")
    assert {"source_labels": [label], "target_label": "dask_user"} in job["relabel_configs"]


def dask_exported_metrics() -> set[str]:
    """Series names Dask's schedulers and workers export, from distributed's collectors."""
    exported = set()
    for module, prefix in ((scheduler_metrics, "dask_scheduler_"), (worker_metrics, "dask_worker_")):
        source = Path(module.__file__).read_text()
        exported |= {prefix + name for name in _built_names(source)}
    return exported


def test_the_dashboard_uses_only_metrics_dask_exports():
    exported = dask_exported_metrics()
    assert "dask_worker_threads" in exported and "dask_scheduler_workers" in exported
    assert set(METRICS) <= exported, set(METRICS) - exported
    board = dashboards()["dask.json"]
    used = {m for m in METRICS if m in board}
    assert used == set(METRICS)
    for expr in (t["expr"] for p in json.loads(board)["panels"] for t in p.get("targets", [])):
        assert "dask_user" in expr, expr


def _built_names(source: str) -> set[str]:
    """Names passed to `self.build_name("…")` in distributed's collectors."""
    tree = ast.parse(source)
    return {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "attr", "") == "build_name"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }
