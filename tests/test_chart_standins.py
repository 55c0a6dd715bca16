"""The chart oracle (tests/support/charts): what the pinned charts render with the program's own
values, as stand-in pods and NetworkPolicies the API server would admit, plus the template rules
it encodes, each test naming the chart text it mirrors.

The `..._today` tests state defects of issue 14 as facts about today's merged values: they pass
now and must be flipped when the program's values change; the flipped ones are named after what
they protect."""

from __future__ import annotations

import ipaddress
from types import SimpleNamespace
from typing import Any

import kubernetes_validate
import pytest
from kubespawner.spawner import KubeSpawner

from components.config.loader import build_config
from components.gpu.config import Gpu
from components.gpu.values import image_values
from components.infra.config import Cluster
from tests.conftest import SHIPPED_STACKS, stack_values
from tests.support import charts
from tests.support.charts import (
    cvmfs_csi,
    dcgm_exporter,
    jupyterhub,
    kube_prometheus_stack,
    nvidia_device_plugin,
)
from tests.support.charts.helm import coalesce, unread

K8S = "1.36.2"
OWNER_KINDS = {"Deployment", "DaemonSet", "StatefulSet", "Job", "Pod"}
POD_CIDR = Cluster.model_fields["pod_cidr"].default
"""The cluster's default pod network (k3s's): where the cache and pool pods get addresses."""


def releases(shipped, stack: str) -> list[charts.Release]:
    found = charts.releases(shipped(stack))
    assert found, f"{stack}: no Helm release in the plan"
    return found


def release(shipped, stack: str, chart: str) -> charts.Release:
    matches = [r for r in releases(shipped, stack) if r.chart == chart]
    assert len(matches) == 1, f"{stack}: expected one {chart} release, found {len(matches)}"
    return matches[0]


# --- Helm's merge ------------------------------------------------------------------------------


def test_coalesce_merges_maps_key_by_key():
    # helm/helm pkg/chartutil/coalesce.go: nested maps merge, user keys win.
    assert coalesce({"a": {"x": 1, "y": 2}}, {"a": {"y": 3, "z": 4}}) == {"a": {"x": 1, "y": 3, "z": 4}}


def test_coalesce_null_deletes_the_default_key():
    assert coalesce(
        {"sc": {"capabilities": {"add": ["SYS_ADMIN"], "drop": []}}}, {"sc": {"capabilities": {"add": None}}}
    ) == {"sc": {"capabilities": {"drop": []}}}


def test_coalesce_lists_replace():
    assert coalesce({"t": [{"key": "a"}, {"key": "b"}]}, {"t": [{"key": "c"}]}) == {"t": [{"key": "c"}]}


def test_coalesce_does_not_modify_its_inputs():
    defaults, values = {"a": {"b": [1]}}, {"a": {"c": 2}}
    coalesce(defaults, values)
    assert defaults == {"a": {"b": [1]}} and values == {"a": {"c": 2}}


def test_unread_covers_subtrees_read_whole():
    assert unread({"a": {"b": 1, "c": {"d": 2}}, "e": 3}, {"a.c", "e"}) == ["a.b"]


# --- every shipped stack -------------------------------------------------------------------------


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_every_release_has_an_oracle_at_its_pinned_version(shipped, stack):
    for r in releases(shipped, stack):
        assert r.chart in charts.CHARTS, f"{stack}: no chart oracle for {r.chart}"
        assert r.version == r.module.VERSION, f"{stack}: {r.chart} {r.version} pinned, oracle is {r.module.VERSION}"


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_standins_are_valid_pods(shipped, stack):
    seen = 0
    for r in releases(shipped, stack):
        standins = charts.workloads(r.chart, r.values, r.name, r.namespace)
        assert standins, f"{stack}: {r.chart} renders no workload"
        for s in standins:
            assert s.kind in OWNER_KINDS
            assert s.namespace == r.namespace
            pod = s.pod()
            kubernetes_validate.validate(pod, K8S, strict=True)
            assert pod["spec"]["containers"], s.name
            seen += 1
    assert seen >= 10


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_chart_network_policies_are_valid(shipped, stack):
    for r in releases(shipped, stack):
        for policy in charts.network_policies(r.chart, r.values, r.name, r.namespace):
            kubernetes_validate.validate(policy, K8S, strict=True)
            assert policy["metadata"]["namespace"] == r.namespace


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_standins_carry_the_placement_our_values_set(shipped, stack):
    """Where the program sets a nodeSelector, the stand-in pod carries exactly it."""
    hub = release(shipped, stack, "jupyterhub")
    by_name = {s.name: s for s in charts.workloads("jupyterhub", hub.values, hub.name, hub.namespace)}
    assert by_name["hub"].node_selector == hub.values["hub"]["nodeSelector"]
    assert by_name["proxy"].node_selector == hub.values["proxy"]["chp"]["nodeSelector"]
    mon = release(shipped, stack, "kube-prometheus-stack")
    prom = next(s for s in charts.workloads(mon.chart, mon.values, mon.name, mon.namespace) if s.kind == "StatefulSet")
    assert prom.node_selector == mon.values["prometheus"]["prometheusSpec"]["nodeSelector"]
    assert prom.containers[0].resources == mon.values["prometheus"]["prometheusSpec"]["resources"]


# --- zero-to-jupyterhub ------------------------------------------------------------------------------


def _rule_allows_ip(rule: dict[str, Any], ip: str, port: int) -> bool:
    """Does one egress rule allow TCP to `ip:port` by its ipBlocks (selectors match pods, not
    addresses given here)? Rules without `to` allow every destination."""
    ports = rule.get("ports")
    if ports and not any(p.get("port") == port and p.get("protocol", "TCP") == "TCP" for p in ports):
        return False
    peers = rule.get("to")
    if not peers:
        return True
    address = ipaddress.ip_address(ip)
    for peer in peers:
        block = peer.get("ipBlock")
        if (
            block
            and address in ipaddress.ip_network(block["cidr"])
            and not any(address in ipaddress.ip_network(e) for e in block.get("except", []))
        ):
            return True
    return False


def _pod_address(cidr: str) -> str:
    return str(next(ipaddress.ip_network(cidr).hosts()) + 10)


def test_z2jh_singleuser_egress_allows_private_ips_only_when_asked():
    # _helpers-netpol.tpl: `privateIPs` adds 10/8, 172.16/12, 192.168/16; nonPrivateIPs excepts them.
    pod_ip = _pod_address(POD_CIDR)
    closed = jupyterhub.network_policies({})[2]
    assert closed["metadata"]["name"] == "singleuser"
    assert not any(_rule_allows_ip(r, pod_ip, 1094) for r in closed["spec"]["egress"])
    assert any(_rule_allows_ip(r, "8.8.8.8", 443) for r in closed["spec"]["egress"])
    opened = jupyterhub.network_policies({"singleuser": {"networkPolicy": {"egressAllowRules": {"privateIPs": True}}}})
    assert any(_rule_allows_ip(r, pod_ip, 1094) for r in opened[2]["spec"]["egress"])


def test_z2jh_dns_rule_follows_egress_allow_rules():
    # _helpers-netpol.tpl: one DNS rule whose peers are the metadata IP, kube-system and private IPs.
    off = {"dnsPortsCloudMetadataServer": False, "dnsPortsKubeSystemNamespace": False, "dnsPortsPrivateIPs": False}
    policy = jupyterhub.network_policies({"singleuser": {"networkPolicy": {"egressAllowRules": off}}})[2]
    assert not any(any(p.get("port") == 53 for p in r.get("ports", [])) for r in policy["spec"]["egress"])
    dns = next(
        r for r in jupyterhub.network_policies({})[2]["spec"]["egress"] if r.get("ports", [{}])[0].get("port") == 53
    )
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}} in dns["to"]
    assert {"ipBlock": {"cidr": "169.254.169.254/32"}} in dns["to"]


def test_z2jh_inter_namespace_access_labels_accept_adds_namespace_selectors():
    # security.md: interNamespaceAccessLabels lets labelled pods of other namespaces in.
    hub = jupyterhub.network_policies({"hub": {"networkPolicy": {"interNamespaceAccessLabels": "accept"}}})[0]
    sources = hub["spec"]["ingress"][0]["from"]
    assert {"namespaceSelector": {"matchLabels": {"hub.jupyter.org/network-access-hub": "true"}}} in sources


def test_z2jh_network_policy_enabled_false_removes_the_policy():
    names = [p["metadata"]["name"] for p in jupyterhub.network_policies({"hub": {"networkPolicy": {"enabled": False}}})]
    assert names == ["proxy", "singleuser"]


def test_z2jh_user_pod_settings_merge_dict_overrides_like_kubespawner():
    """Our model of a profile override against KubeSpawner 7's own `_apply_overrides`."""
    base = {"node_selector": {"role": "interactive"}, "tolerations": [{"key": "a"}], "cpu_limit": 1}
    override = {"node_selector": {"group": "gpu"}, "tolerations": [{"key": "b"}], "cpu_limit": 8}
    spawner = SimpleNamespace(log=SimpleNamespace(debug=lambda *a, **k: None), **{k: _copy(v) for k, v in base.items()})
    KubeSpawner._apply_overrides(spawner, override)
    assert jupyterhub._profile_settings(base, override) == {k: getattr(spawner, k) for k in base}


def _copy(value: Any) -> Any:
    import copy

    return copy.deepcopy(value)


def test_z2jh_user_pod_gets_the_privileged_iptables_init_container_by_default():
    # security.md: blockWithIptables (default true) adds a privileged initContainer.
    pod = next(s for s in jupyterhub.workloads({}) if s.created_by == "hub").pod()
    assert pod["spec"]["initContainers"][0]["securityContext"]["privileged"] is True
    off = {"singleuser": {"cloudMetadata": {"blockWithIptables": False}}}
    assert "initContainers" not in next(s for s in jupyterhub.workloads(off) if s.created_by == "hub").pod()["spec"]


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_z2jh_user_pods_follow_every_profile(shipped, stack):
    hub = release(shipped, stack, "jupyterhub")
    pods = {
        s.name: s for s in charts.workloads("jupyterhub", hub.values, hub.name, hub.namespace) if s.created_by == "hub"
    }
    for entry in hub.values["custom"]["af"]["profiles"]:
        override = entry["profile"]["kubespawner_override"]
        pod = pods[f"jupyter-{entry['profile']['slug']}"]
        notebook = pod.pod()["spec"]["containers"][0]
        assert notebook["resources"]["limits"]["memory"] == override["mem_limit"]
        # kubespawner `_apply_overrides`: dicts merge, so the profile adds to singleuser.nodeSelector.
        assert pod.node_selector == {**hub.values["singleuser"]["nodeSelector"], **override["node_selector"]}
        assert pod.labels["hub.jupyter.org/network-access-hub"] == "true"


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_z2jh_leaves_the_hubs_flows_to_the_facilitys_policies(shipped, stack):
    """Issue 14 items 1 and 2: the chart's own policies kept notebooks from the cache and the pool
    and Prometheus from the hub; with them off, the facility's declared flows decide
    (tests/test_flows.py)."""
    hub = release(shipped, stack, "jupyterhub")
    assert charts.network_policies("jupyterhub", hub.values, hub.name, hub.namespace) == []


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_notebooks_run_unprivileged_the_metadata_service_is_kept_out_by_policy(shipped, stack):
    """Without the chart's iptables init container no notebook pod is privileged; the facility's
    egress policy keeps notebooks from the metadata service instead."""
    hub = release(shipped, stack, "jupyterhub")
    users = [s for s in charts.workloads("jupyterhub", hub.values, hub.name, hub.namespace) if s.created_by == "hub"]
    assert users and not any(s.privileged for s in users)


# --- dcgm-exporter ---------------------------------------------------------------------------------


def test_dcgm_renders_the_merged_security_context():
    # daemonset.yaml: `securityContext: toYaml .Values.securityContext` of the merged values.
    pod = dcgm_exporter.workloads({"securityContext": {"capabilities": {"add": None}, "runAsUser": 1000}})[0].pod()
    assert pod["spec"]["containers"][0]["securityContext"] == {
        "runAsNonRoot": False,
        "runAsUser": 1000,
        "capabilities": {},
    }


def test_dcgm_omits_empty_pod_fields():
    # daemonset.yaml: podSecurityContext/affinity/nodeSelector only `if` set; resources only if set.
    spec = dcgm_exporter.workloads({})[0].pod()["spec"]
    assert not {"securityContext", "affinity", "nodeSelector", "tolerations"} & spec.keys()
    assert "resources" not in spec["containers"][0]
    assert spec["priorityClassName"] == "system-node-critical"


def test_dcgm_exporter_runs_as_root_without_any_capability(shipped):
    """Issue 14 item 8: our `securityContext` over the chart's, as Helm merges them, leaves no
    SYS_ADMIN: the chart's `capabilities.add` is deleted by a null, which reaches Helm only
    through a values file (inline, the Python SDK strips it and SYS_ADMIN stays)."""
    dcgm = release(shipped, "cms-bari", "dcgm-exporter")
    context = charts.merged("dcgm-exporter", dcgm.values)["securityContext"]
    assert context == {
        "runAsNonRoot": False,
        "runAsUser": 0,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    exporter = charts.workloads("dcgm-exporter", dcgm.values, dcgm.name, dcgm.namespace)[0]
    pod = exporter.pod()
    kubernetes_validate.validate(pod, K8S, strict=True)
    assert pod["spec"]["containers"][0]["securityContext"] == context
    assert not exporter.privileged and "securityContext" not in pod["spec"]
    # The values alone would keep the chart's SYS_ADMIN: the deletion is the values file's.
    inline = charts.merged("dcgm-exporter", dcgm.inline)["securityContext"]["capabilities"]
    assert inline == {"add": ["SYS_ADMIN"], "drop": ["ALL"]}
    # Without capabilities the image's entrypoint must not try setcap (NO_SETCAP set).
    assert {"name": "NO_SETCAP", "value": "1"} in charts.merged("dcgm-exporter", dcgm.values)["extraEnv"]


def _nulls(value: Any, path: str = "") -> list[str]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _nulls(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _nulls(v, f"{path}[{i}]")]
    return [path] if value is None else []


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_no_chart_default_is_deleted_by_an_inline_null(shipped, stack):
    """A null in a Release's `values` does not reach Helm from Python (pulumi-kubernetes PR #4293:
    the SDK strips it, pulumi/pulumi#12178); deleting a chart default takes a `valueYamlFiles`
    entry. (z2jh's `custom` holds nulls of the hub's own, `custom.af.profiles[].groups`: no
    chart default, and out of this check.)"""
    for r in releases(shipped, stack):
        if r.chart != "jupyterhub":
            assert _nulls(r.inline) == [], f"{stack}: {r.chart}"


def test_release_values_are_the_value_files_then_the_values():
    # helm/helm pkg/cli/values mergeMaps, as pulumi-kubernetes merges valueYamlFiles and values.
    plan = {
        "resources": [
            {
                "type": charts.RELEASE_TYPE,
                "inputs": {
                    "chart": "dcgm-exporter",
                    "version": "3.6.1",
                    "name": "d",
                    "namespace": "n",
                    "valueYamlFiles": [{"text": "a: {x: null, y: 1}\nb: 1\n"}, {"text": "b: 2\n"}],
                    "values": {"a": {"y": 3}},
                },
            }
        ]
    }
    (r,) = charts.releases(plan)
    assert r.values == {"a": {"x": None, "y": 3}, "b": 2} and r.inline == {"a": {"y": 3}}
    with pytest.raises(ValueError):
        charts.value_file({"path": "values.yaml"})


# --- cvmfs-csi --------------------------------------------------------------------------------------


def test_cvmfs_automount_renders_plugin_resources():
    # PR #143 (fixed in 2.4.0): 2.3.2's automount container reads nodeplugin.plugin.resources.
    plugin = {"requests": {"cpu": "1m"}}
    nodeplugin = cvmfs_csi.workloads(
        {"nodeplugin": {"plugin": {"resources": plugin}, "automount": {"resources": {"requests": {"cpu": "9"}}}}}
    )[0]
    by_name = {c.name: c for c in nodeplugin.containers}
    assert by_name["automount"].resources == plugin == by_name["nodeplugin"].resources
    assert nodeplugin.host_pid and nodeplugin.privileged


def test_cvmfs_quota_is_read_only_through_the_default_local_that_mentions_it():
    # values.yaml (2.x): the default default.local interpolates {{ .Values.cache.local.cvmfsQuotaLimit }}.
    assert cvmfs_csi.unread_keys({"cache": {"local": {"cvmfsQuotaLimit": 5}}}) == []
    replaced = {
        "cache": {"local": {"cvmfsQuotaLimit": 5}},
        "extraConfigMaps": {"cvmfs-csi-default-local": {"default.local": "CVMFS_QUOTA_LIMIT=5\n"}},
    }
    assert cvmfs_csi.unread_keys(replaced) == ["cache.local.cvmfsQuotaLimit"]


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_cvmfs_client_gets_its_resources_and_its_quota(shipped, stack):
    """Issue 14 item 9: the CVMFS client (2.3.2's automount container) runs with the client's
    resources, and its cache quota is in the default.local it reads."""
    cvmfs = release(shipped, stack, "cvmfs-csi")
    nodeplugin = charts.workloads("cvmfs-csi", cvmfs.values, cvmfs.name, cvmfs.namespace)[0]
    client = next(c for c in nodeplugin.containers if c.name == "automount")
    assert client.resources == {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"cpu": "2", "memory": "2Gi"},
    }
    default_local = charts.merged("cvmfs-csi", cvmfs.values)["extraConfigMaps"]["cvmfs-csi-default-local"]
    lines = default_local["default.local"].splitlines()
    cfg = build_config(*stack_values(stack)).cvmfs
    assert f"CVMFS_QUOTA_LIMIT={cfg.cache_gib * 1024}" in lines
    assert "CVMFS_CACHE_BASE=/cvmfs-localcache" in lines
    assert cvmfs_csi.QUOTA_REFERENCE not in default_local["default.local"]


# --- NVIDIA device plugin -------------------------------------------------------------------------------


def test_device_plugin_nfd_condition_takes_the_first_set_path():
    # Chart.yaml: condition `nfd.enabled,gfd.enabled`.
    assert nvidia_device_plugin.nfd_deployed(nvidia_device_plugin.merged({"gfd": {"enabled": True}}))
    assert not nvidia_device_plugin.nfd_deployed(
        nvidia_device_plugin.merged({"nfd": {"enabled": False}, "gfd": {"enabled": True}})
    )
    assert not nvidia_device_plugin.nfd_deployed(nvidia_device_plugin.merged({}))


def test_device_plugin_gc_renders_only_with_node_feature_api():
    # Issue 14 item 10 (0.17.1 rendered): nfd-gc only with nfd.enableNodeFeatureApi.
    values = {"gfd": {"enabled": True}, "nfd": {"gc": {"nodeSelector": {"a": "b"}}}}
    names = [s.name for s in nvidia_device_plugin.workloads(values)]
    assert not any(n.endswith("-gc") for n in names)
    assert nvidia_device_plugin.unread_keys(values) == ["nfd.gc.nodeSelector.a"]
    on = {"gfd": {"enabled": True}, "nfd": {"enableNodeFeatureApi": True, "gc": {"nodeSelector": {"a": "b"}}}}
    assert any(s.name.endswith("-gc") for s in nvidia_device_plugin.workloads(on))
    assert nvidia_device_plugin.unread_keys(on) == []


def test_device_plugin_values_restate_nothing_the_chart_derives(shipped):
    """Issue 14 item 10: no `nfd.gc.*` (no collector renders), no `image` or `nfd.enabled` that
    only restate the chart; node feature discovery still comes, with feature discovery."""
    gpu = release(shipped, "cms-bari", "nvidia-device-plugin")
    assert nvidia_device_plugin.restated(gpu.values) == []
    assert "gc" not in gpu.values["nfd"]
    names = {s.name for s in charts.workloads(gpu.chart, gpu.values, gpu.name, gpu.namespace)}
    base = "nvidia-device-plugin"
    assert names == {
        base,
        f"{base}-gpu-feature-discovery",
        f"{base}-node-feature-discovery-master",
        f"{base}-node-feature-discovery-worker",
    }
    assert nvidia_device_plugin.image(gpu.values) == Gpu().image


@pytest.mark.parametrize(
    "reference",
    [
        "nvcr.io/nvidia/k8s-device-plugin:v0.17.1",
        "nvcr.io/nvidia/k8s-device-plugin:v0.17.2",
        "registry.example.org/mirror/k8s-device-plugin:v0.17.1",
        "registry.example.org/mirror/k8s-device-plugin:v0.17.1@sha256:" + "0" * 64,
    ],
)
def test_device_plugin_runs_the_configured_image(reference):
    """`af:gpu.image` wins whatever it differs in; the chart's own image restates nothing."""
    values = {"image": image_values(reference, nvidia_device_plugin.VERSION)}
    assert nvidia_device_plugin.image(values) == reference
    assert nvidia_device_plugin.restated(values) == []


# --- kube-prometheus-stack -------------------------------------------------------------------------------


def test_grafana_alertmanager_datasource_follows_the_sidecar_key_only():
    # datasources template: rendered `if .Values.grafana.sidecar.datasources.alertmanager.enabled`.
    assert (
        kube_prometheus_stack.alertmanager_datasource({"alertmanager": {"enabled": False}})
        == "http://kube-prometheus-stack-alertmanager.monitoring:9093/"
    )
    off = {"grafana": {"sidecar": {"datasources": {"alertmanager": {"enabled": False}}}}}
    assert kube_prometheus_stack.alertmanager_datasource(off) is None


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_grafana_has_no_alertmanager_datasource_without_alertmanager(shipped, stack):
    """Issue 14 item 11: Alertmanager is off, and Grafana gets no data source pointing at it."""
    mon = release(shipped, stack, "kube-prometheus-stack")
    assert charts.merged(mon.chart, mon.values)["alertmanager"]["enabled"] is False
    assert kube_prometheus_stack.alertmanager_datasource(mon.values, mon.name, mon.namespace) is None
    assert not any(
        s.name.endswith("alertmanager") for s in charts.workloads(mon.chart, mon.values, mon.name, mon.namespace)
    )


# --- every key we set is read ----------------------------------------------------------------------------


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_every_value_we_set_is_read_by_the_chart(shipped, stack):
    """Issue 14 items 9-10: a key no template reads does nothing, however valid it looks."""
    for r in releases(shipped, stack):
        assert charts.unread_keys(r.chart, r.values) == [], f"{stack}: {r.chart}"


# --- the oracle's own contract ----------------------------------------------------------------------------


def test_every_chart_names_its_sources():
    for module in charts.CHARTS.values():
        assert module.__doc__ and "Sources" in module.__doc__, module.__name__
        assert isinstance(module.DEFAULTS, dict) and module.DEFAULTS


def test_unknown_chart_is_refused():
    with pytest.raises(KeyError):
        charts.merged("no-such-chart", {})
