"""The node-level caches (`af:cache.nodeLocal`) in the plan: a DaemonSet on exactly the chosen node groups, with a
bounded disk, no secret outside its Secret, a certificate for the name clients use, its own credential; the clients
that read through it; the flows, scrape job and policies around it; and its config's errors."""

from __future__ import annotations

import copy
import json
import math
import re
from typing import Any

import kubernetes_validate
import pytest
from conftest import preview_values, stack_values
from support import netpol, placement
from test_config import DELETE, edit, only_problem, problems_of
from test_config_data import cache_base
from test_flows import endpoints, policies
from test_wiring import plan_of, variant

from components.cache.client import cache_url, node_cache_url
from components.cache.node import XROOTD_USER
from components.config.loader import build_config, stand_in_secrets
from components.names import CACHE_NAMESPACE, NODE_CACHE_SERVICE, NODE_GROUP_LABEL
from policy.offline import evaluate
from policy.packconfig import pack_config

FULL = "cms-bari-full"
DAEMON_SET = "kubernetes:apps/v1:DaemonSet"
FILES_MAX_GIB = 20  # what the variant declares (test_wiring.variant)
CLIENT_SECRET = "node-cache-secret-7f3a"  # the variant's node-cache client secret, as the stack would hold it


def _resources(plan: dict[str, Any], type_: str) -> list[dict[str, Any]]:
    return [r for r in plan["resources"] if r["type"] == type_]


def _named(plan: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [r for r in plan["resources"] if r["name"] == name]
    return found["inputs"]


def _daemon_set(plan: dict[str, Any]) -> dict[str, Any]:
    (ds,) = [r["inputs"] for r in _resources(plan, DAEMON_SET) if r["inputs"]["metadata"]["name"] == NODE_CACHE_SERVICE]
    return ds


def _pod(plan: dict[str, Any]) -> dict[str, Any]:
    return _daemon_set(plan)["spec"]["template"]["spec"]


def _container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in [*pod["initContainers"], *pod["containers"]] if c["name"] == name)


def _plan(cache: dict[str, Any], stack: str = "cms-bari") -> dict[str, Any]:
    """`stack` with the site cache's upstream set and `cache` merged into af:cache."""
    from afctl.plan import plan_document

    values, secret = stack_values(stack)
    values = copy.deepcopy(values)
    values["identity"] = {"clientSecret": "identity-secret"}
    values["cache"] = {"upstream": {"kind": "bearer-token", "clientId": "cache", "clientSecret": "x"}, **cache}
    return plan_document(preview_values(stack, values, secret | {"identity", "cache"}))


def _node_local(**settings: Any) -> dict[str, Any]:
    return {"enabled": True, "client": {"clientId": "node-cache", "clientSecret": CLIENT_SECRET}, **settings}


# --- placement --------------------------------------------------------------------------------------------------


def test_node_caches_run_on_every_node_where_users_code_runs_and_nowhere_else():
    """By default the groups with role interactive or batch: in cms-bari `system` (system, interactive), `cpu`
    (batch) and `gpu-a100` (interactive, batch), not the `cache` group. Judged on the plan's own nodes."""
    plan = plan_of(FULL)
    pod = _pod(plan)
    (term,) = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert term["matchExpressions"] == [
        {"key": NODE_GROUP_LABEL, "operator": "In", "values": ["cpu", "gpu-a100", "system"]}
    ]
    nodes = placement.nodes(plan)
    admitted = {n.group for n in nodes if not placement.admits(n, pod)}
    assert admitted == {"cpu", "gpu-a100", "system"}
    assert "cache" in {n.group for n in nodes}
    # The GPU nodes' taint is tolerated (a node agent, which requests no GPU); the cache nodes' is not.
    keys = {t["key"] for t in pod["tolerations"]}
    assert "nvidia.com/gpu" in keys and "af.infn.it/cache" not in keys
    assert not any("nvidia.com/gpu" in (c["resources"].get("limits") or {}) for c in pod["containers"])


def test_declared_groups_are_the_only_ones():
    plan = _plan({"nodeLocal": _node_local(groups=["cpu"])})
    pod = _pod(plan)
    admitted = {n.group for n in placement.nodes(plan) if not placement.admits(n, pod)}
    assert admitted == {"cpu"}
    assert "tolerations" not in pod  # cpu nodes carry no taint


def test_node_caches_run_unprivileged():
    pod = _pod(plan_of(FULL))
    context = pod["securityContext"]
    assert context["runAsUser"] == context["runAsGroup"] == context["fsGroup"] == XROOTD_USER
    assert context["runAsNonRoot"] is True and XROOTD_USER != 0
    assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))
    assert not any("hostPath" in v for v in pod["volumes"])
    for container in [*pod["initContainers"], *pod["containers"]]:
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False and security["capabilities"] == {"drop": ["ALL"]}
        assert not security.get("privileged") and security.get("runAsUser", XROOTD_USER) != 0
    server = _container(pod, "xrootd")
    assert "-R" not in server["command"]  # nothing to drop from: it starts as the xrootd user
    assert pod["automountServiceAccountToken"] is False


# --- disk -------------------------------------------------------------------------------------------------------


def test_the_disk_is_bounded_by_what_is_declared():
    """The cached files are capped at filesMax (rendered for xrootd in KiB) and the pod's disk, an emptyDir, at a
    tenth above it; no other volume of the pod is on the node's disk without a limit."""
    plan = plan_of(FULL)
    pod = _pod(plan)
    volumes = {v["name"]: v for v in pod["volumes"]}
    files_max = FILES_MAX_GIB * 2**30
    limit = volumes["data"]["emptyDir"]["sizeLimit"]
    assert limit == f"{math.ceil(files_max * 1.1 / 2**20)}Mi"
    for volume in pod["volumes"]:
        if "emptyDir" in volume:
            assert re.fullmatch(r"\d+Mi", volume["emptyDir"].get("sizeLimit", "")), volume
    data = _container(pod, "xrootd")["volumeMounts"]
    (mount,) = [m for m in data if m["name"] == "data"]
    cfg_text = _named(plan, "af-cache-node-config")["data"]["xrootd.cfg"]
    assert f"oss.localroot {mount['mountPath']}" in cfg_text.splitlines()
    (usage,) = [line for line in cfg_text.splitlines() if line.startswith("pfc.diskusage")]
    assert f" files {files_max // 1024 * 8 // 10}k {files_max // 1024 * 9 // 10}k {files_max // 1024}k " in usage


# --- secrets, certificates, the Service ---------------------------------------------------------------------


def test_no_secret_outside_the_secret():
    """The client secret reaches the pod only through its Secret (a Pulumi secret, shown as such in the plan);
    no ConfigMap, container environment or rendered file holds it."""
    plan = plan_of(FULL)
    secret = _named(plan, "af-cache-node-client")
    assert secret["stringData"] == "[secret]"
    assert CLIENT_SECRET not in json.dumps(plan)
    result = preview_values(*variant(FULL))
    assert not [key for key, text in result.files.items() if CLIENT_SECRET in text]
    pod = _pod(plan)
    (volume,) = [v for v in pod["volumes"] if v["name"] == "credential-secret"]
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    sidecar = _container(pod, "credential")
    (mount,) = [m for m in sidecar["volumeMounts"] if m["name"] == "credential-secret"]
    env = {e["name"]: e["value"] for e in sidecar["env"]}
    assert env["AF_CLIENT_SECRET_FILE"].startswith(mount["mountPath"] + "/")


def test_its_own_token_is_fetched_before_the_server_starts_and_read_by_the_server():
    plan = plan_of(FULL)
    cfg = build_config(*variant(FULL)[1:])
    pod = _pod(plan)
    init, sidecar, server = (_container(pod, n) for n in ("credential-init", "credential", "xrootd"))
    assert init["command"][-1] == "--once" and "--once" not in sidecar["command"]
    env = {e["name"]: e["value"] for e in sidecar["env"]}
    assert env["AF_CLIENT_ID"] == "node-cache" and env["AF_SCOPES"] == "storage.read:/"
    assert env["AF_TOKEN_URL"] == cfg.identity.endpoint("token")
    assert env["AF_AUDIENCE"] == cfg.cache.audiences[0]  # what the site cache accepts
    server_env = {e["name"]: e["value"] for e in server["env"]}
    assert server_env["BEARER_TOKEN_FILE"] == env["BEARER_TOKEN_FILE"]
    # The server verifies the site cache with the internal CA, mounted where X509_CERT_DIR points.
    (ca,) = [m for m in server["volumeMounts"] if m["name"] == "ca-certs"]
    assert ca["mountPath"] == server_env["X509_CERT_DIR"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "ca-certs"]
    assert volume["configMap"]["name"] == _named(plan, "af-cache-node-ca-certs")["metadata"]["name"]


def test_the_certificates_cover_the_names_each_side_dials():
    """Clients dial the node cache by the host of `node_cache_url`; the node cache dials the site cache by the host
    of its `pss.origin`. Each certificate names what is dialled."""
    plan = plan_of(FULL)
    node_cert = _named(plan, "af-cache-node-tls")
    site_cert = _named(plan, "af-cache-tls")
    client_host = node_cache_url().split("://", 1)[1].split(":", 1)[0]
    assert client_host in node_cert["spec"]["dnsNames"]
    assert client_host == f"{NODE_CACHE_SERVICE}.{CACHE_NAMESPACE}.svc.cluster.local"
    cfg_text = _named(plan, "af-cache-node-config")["data"]["xrootd.cfg"]
    (origin,) = [line.split()[1] for line in cfg_text.splitlines() if line.startswith("pss.origin")]
    assert origin.rsplit(":", 1)[0] in site_cert["spec"]["dnsNames"]
    pod = _pod(plan)
    (tls,) = [v for v in pod["volumes"] if v["name"] == "tls"]
    assert tls["secret"]["secretName"] == node_cert["spec"]["secretName"]


def test_the_service_keeps_traffic_on_the_node_and_selects_the_node_caches():
    plan = plan_of(FULL)
    service = _named(plan, "af-cache-node-svc")
    assert service["metadata"]["name"] == NODE_CACHE_SERVICE and service["spec"]["internalTrafficPolicy"] == "Local"
    template = _daemon_set(plan)["spec"]["template"]
    assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items()
    ports = {p["name"]: p["containerPort"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
    for port in service["spec"]["ports"]:
        assert ports[port["targetPort"]] == port["port"]
    # Only the node caches: the site cache's pods have another name.
    site = _named(plan, "af-cache-svc")["spec"]["selector"]
    assert site["app.kubernetes.io/name"] != service["spec"]["selector"]["app.kubernetes.io/name"]


def test_node_cache_manifests_pass_kubernetes_validate():
    kinds = set()
    for r in plan_of(FULL)["resources"]:
        inputs = r["inputs"]
        if r["name"].startswith("af-cache-node") and "cert-manager" not in inputs.get("apiVersion", "cert-manager"):
            body = {k: v for k, v in inputs.items() if k != "metadata"}
            for key in ("data", "stringData"):
                if body.get(key) == "[secret]":
                    body[key] = {}
            kubernetes_validate.validate({"metadata": inputs["metadata"], **body}, "1.36.2", strict=True)
            kinds.add(inputs["kind"])
    assert kinds == {"ConfigMap", "Secret", "Service", "DaemonSet"}


def test_the_stack_with_node_caches_passes_every_policy():
    """The node caches' xrootd.cfg is held to the cache-token rule like the site cache's; the DaemonSet to the
    workload rules (unprivileged, pinned, sized, GPU toleration only as a node agent)."""
    _, values, secret = variant(FULL)
    assert evaluate(plan_of(FULL), pack_config(build_config(values, secret))) == []


# --- clients ------------------------------------------------------------------------------------------------------


def _execute_env(plan: dict[str, Any], group: str) -> dict[str, str]:
    text = _named(plan, "af-condor-config")["data"][f"execute-{group}.conf"]
    (line,) = [x for x in text.splitlines() if x.startswith("STARTER_JOB_ENVIRONMENT")]
    return dict(pair.split("=", 1) for pair in line.split("=", 1)[1].strip().strip('"').split())


def _notebook_env(plan: dict[str, Any]) -> dict[str, str]:
    return _named(plan, "af-hub-chart")["values"]["singleuser"]["extraEnv"]


def test_jobs_and_notebooks_on_nodes_with_node_caches_read_through_them():
    plan = plan_of(FULL)
    node = node_cache_url()
    for group in ("cpu", "gpu-a100"):
        env = _execute_env(plan, group)
        assert env["XROOT_PROXY"] == node + "/" and env["AF_XCACHE_URL"] == node
    # Every group with role interactive (system, gpu-a100) has node caches: notebooks use theirs.
    assert _notebook_env(plan)["XROOT_PROXY"] == node + "/"


def test_clients_on_nodes_without_a_node_cache_read_the_site_cache():
    """gpu-a100 runs notebooks and workers but no node cache: its workers, and notebooks (which may land there),
    read the site cache; cpu's workers read their node's."""
    site = cache_url() + "/"
    plan = _plan({"nodeLocal": _node_local(groups=["cpu", "system"])})
    assert _execute_env(plan, "cpu")["XROOT_PROXY"] == node_cache_url() + "/"
    assert _execute_env(plan, "gpu-a100")["XROOT_PROXY"] == site != node_cache_url() + "/"
    assert _notebook_env(plan)["XROOT_PROXY"] == site


# --- flows and monitoring -------------------------------------------------------------------------------------


def test_the_policies_let_clients_reach_their_node_cache_and_it_the_site_cache():
    plan = plan_of(FULL)
    cfg = build_config(*variant(FULL)[1:])
    rendered, points = policies(plan), endpoints(plan, cfg)

    def one(prefix: str) -> netpol.Endpoint:
        return next(e for e in points if e.name.startswith(prefix))

    node, site = one(f"DaemonSet {CACHE_NAMESPACE}/{NODE_CACHE_SERVICE}"), one("StatefulSet xcache/af-xcache")
    for client in (one("Pod jupyterhub/jupyter-small"), one("Deployment condor/af-condor-worker-cpu")):
        assert netpol.allowed(rendered, client, node, 1094) and netpol.allowed(rendered, client, node, 8443)
    assert netpol.allowed(rendered, node, site, 1094)
    assert netpol.allowed(rendered, one("StatefulSet monitoring/prometheus"), node, 9102)
    assert not netpol.allowed(rendered, one("StatefulSet condor/af-condor-schedd"), node, 1094)
    assert not netpol.allowed(rendered, one("Pod jupyterhub/jupyter-small"), node, 9102)


def _relabel(labels: dict[str, str], rules: list[dict[str, Any]]) -> dict[str, str] | None:
    """Prometheus' relabelling, `keep` and `replace` (anchored regex, `;`-joined sources), as documented."""
    labels = dict(labels)
    for rule in rules:
        value = ";".join(labels.get(s, "") for s in rule["source_labels"])
        match = re.fullmatch(rule.get("regex", "(.*)"), value)
        action = rule.get("action", "replace")
        if action == "keep":
            if not match:
                return None
        elif action == "replace" and match:
            labels[rule["target_label"]] = match.expand(rule.get("replacement", "$1").replace("$1", r"\1"))
    return labels


def test_prometheus_labels_each_cache_series_with_its_tier():
    plan = plan_of(FULL)
    values = _named(plan, "af-monitoring-chart")["values"]
    (job,) = [
        j for j in values["prometheus"]["prometheusSpec"]["additionalScrapeConfigs"] if j["job_name"] == "af-xcache"
    ]
    rules = job["relabel_configs"]
    meta = "__meta_kubernetes_pod_label_app_kubernetes_io_name"
    port = "__meta_kubernetes_pod_container_port_name"
    for template, tier in (
        (_named(plan, "af-cache-servers")["spec"]["template"], "site"),
        (_daemon_set(plan)["spec"]["template"], "node"),
    ):
        name = template["metadata"]["labels"]["app.kubernetes.io/name"]
        labels = _relabel({meta: name, port: "metrics"}, rules)
        assert labels is not None and labels["cache"] == tier, name
    assert _relabel({meta: NODE_CACHE_SERVICE, port: "https"}, rules) is None


def test_the_cache_dashboard_shows_node_caches_next_to_the_site_cache():
    from components.monitoring.values import CACHE_TIERS, dashboards

    board = dashboards()["cache.json"]
    for tier in CACHE_TIERS.values():
        assert f'cache=\\"{tier}\\"' in board
    assert "sum by (cache) (rate(af_xcache_hit_bytes_total" in board


# --- config -------------------------------------------------------------------------------------------------------


def node_base(**settings: Any) -> dict[str, Any]:
    """`cache_base()` with node caches on `gpu` (its secret a Pulumi secret: pass {"cache"})."""
    return edit(cache_base(), "cache.nodeLocal", _node_local(**settings))


def test_node_caches_are_off_by_default_and_their_defaults_follow_the_site_cache():
    cfg = build_config(cache_base())
    assert not cfg.cache.node_local.enabled
    local = build_config(node_base(), {"cache"}).cache.node_local
    assert (local.groups, local.files_max, local.ram, local.block_size, local.prefetch) == (None, "50g", "1g", None, 0)
    assert local.client.scopes == ["storage.read:/"]


@pytest.mark.parametrize(
    ("path", "value", "reported", "allowed"),
    [
        ("cache.nodeLocal.groups", ["gpu", "nope"], "af:cache.nodeLocal.groups[1]", "one of the node groups: cpu, gpu"),
        ("cache.nodeLocal.groups", [], "af:cache.nodeLocal.groups", "at least 1 item"),
        ("cache.nodeLocal.filesMax", "512m", "af:cache.nodeLocal.filesMax", "at least 1g"),
        ("cache.nodeLocal.ram", "512m", "af:cache.nodeLocal.ram", "at least 1g"),
        ("cache.nodeLocal.blockSize", "6k", "af:cache.nodeLocal.blockSize", "a multiple of 4k"),
        ("cache.nodeLocal.prefetch", -1, "af:cache.nodeLocal.prefetch", "at least 0"),
        ("cache.nodeLocal.client", DELETE, "af:cache.nodeLocal.client", "the node caches' IAM client"),
        ("cache.nodeLocal.client.clientSecret", DELETE, "af:cache.nodeLocal.client.clientSecret", "pulumi config set"),
        ("cache.nodeLocal.client.tokenUrl", "http://iam/token", "af:cache.nodeLocal.client.tokenUrl", "https://"),
        ("cache.nodeLocal.size", "1g", "af:cache.nodeLocal.size", "one of the keys blockSize, client, enabled"),
        ("cache.enabled", False, "af:cache.nodeLocal.enabled", "node caches read through the site cache"),
    ],
)
def test_bad_node_cache_config(path: str, value: Any, reported: str, allowed: str) -> None:
    only_problem(edit(node_base(), path, value), reported, allowed, {"cache"})


def test_without_identity_the_client_needs_its_token_endpoint():
    issuers = [{"issuer": "https://iam.example.org/", "basePath": "/store"}]
    cfg = edit(edit(node_base(), "identity", DELETE), "cache.issuers", issuers)
    only_problem(cfg, "af:cache.nodeLocal.client.tokenUrl", "the IAM token endpoint, or af:identity", {"cache"})
    url = "https://iam.example.org/token"
    assert build_config(edit(cfg, "cache.nodeLocal.client.tokenUrl", url), {"cache"}).cache.node_local.enabled


def test_default_groups_need_a_group_where_users_code_runs():
    cfg = edit(node_base(), "cluster.nodeGroups.cpu.roles", ["system", "cache"])
    cfg = edit(cfg, "cluster.nodeGroups.gpu.roles", ["system"])
    only_problem(cfg, "af:cache.nodeLocal.groups", "no node group has role interactive or batch", {"cache"})


def test_without_token_auth_a_node_cache_needs_no_credential():
    cfg = edit(edit(node_base(), "cache.tokenAuth", False), "cache.nodeLocal.client", DELETE)
    assert build_config(cfg).cache.node_local.client is None


def test_a_node_cache_must_fit_beside_its_nodes_batch_worker():
    """cpu nodes (8 vCPUs, 32 GiB, roles system, batch and cache) give a worker 7.5 cores and 90 % of their RAM less
    the room the services keep beside it (system 2.5 cores and 8 GiB, cache 1 core and 6 GiB): 3276 MiB are left, less
    than an 8g node cache asks (8 GiB of blocks and what its server and sidecars need besides)."""
    cfg = edit(node_base(groups=["cpu"]), "condor", {"enabled": True})
    cfg = edit(cfg, "identity.roles", {"batch": ["/users"]})
    assert build_config(cfg, {"cache"}).cache.node_local.ram == "1g"
    found = only_problem(
        edit(cfg, "cache.nodeLocal.ram", "8g"), "af:cache.nodeLocal.ram", "beside the batch worker of cpu", {"cache"}
    )
    assert "leave 3277 MiB" in found.allowed or "leave 3276 MiB" in found.allowed, found.line()
    smaller = edit(edit(cfg, "cache.nodeLocal.ram", "8g"), "condor.groups", {"cpu": {"memoryGib": 8}})
    assert build_config(smaller, {"cache"}).cache.node_local.ram == "8g"


def test_the_client_secret_must_be_a_pulumi_secret_and_the_preview_stands_in_for_it():
    found = problems_of(node_base())
    assert [p.line() for p in found] == [
        "af:cache.nodeLocal.client.clientSecret: got plaintext; allowed: a Pulumi secret: "
        "pulumi config set --secret --path 'af:cache.nodeLocal.client.clientSecret' …"
    ]
    assert CLIENT_SECRET not in str(found)
    values = edit(node_base(), "cache.nodeLocal.client.clientSecret", DELETE)
    filled, secret, paths = stand_in_secrets(values, set())
    assert paths == ["af:cache.nodeLocal.client.clientSecret"] and secret == {"cache"}
    assert build_config(filled, secret).cache.node_local.client.client_id == "node-cache"
    assert stand_in_secrets(edit(values, "cache.nodeLocal.enabled", False), set())[2] == []
