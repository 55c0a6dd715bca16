"""GPU node groups end to end in the plan: one declaration on the node group gives tainted,
labelled GPU nodes, the device plugin's config for the group, hub GPU profiles and HTCondor GPU
workers that agree on the schedulable GPUs; and CPU-only pods never tolerate the GPU taint."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import kubernetes_validate
import pytest
import yaml
from conftest import SHIPPED_STACKS, by_name, of_type, preview_values, stack_values
from test_condor_config import condor_params
from test_hub import hub_values, manifest

from afctl import plan
from afctl.runner import RunResult
from components.batch.pods import rendered_files
from components.config.loader import build_config
from components.facility import cache_client
from components.gpu import values as device_plugin
from components.names import GPU_TAINT_KEY

RELEASE = "kubernetes:helm.sh/v3:Release"
K8S_PROVIDER = "pulumi:providers:kubernetes"
NAMESPACE = "kubernetes:core/v1:Namespace"
INSTANCE = "openstack:compute/instance:Instance"
PLUGIN = "af:index:DevicePlugin"
POD_TEMPLATES = {
    "kubernetes:apps/v1:Deployment",
    "kubernetes:apps/v1:StatefulSet",
    "kubernetes:apps/v1:DaemonSet",
    "kubernetes:batch/v1:Job",
    "kubernetes:core/v1:Pod",
}
GPU_STACK, GROUP = "cms-bari", "gpu-a100"
NO_GPU_STACKS = ["dev", "atlas-cnaf"]
AUTOSCALER_IMAGE = "registry.example.org/af/af-autoscaler:0.1.0"
NODE_AGENTS = {
    ("af-cvmfs-chart", "nodeplugin.tolerations"),  # the CSI node plugin: GPU notebooks mount /cvmfs too
    ("af-monitoring-dcgm", "tolerations"),  # the DCGM exporter: GPU metrics, on GPU nodes only
    ("af-gpu-chart", "tolerations"),  # the device plugin and GPU feature discovery
    ("af-gpu-chart", "nfd.worker.tolerations"),  # node feature discovery's worker, beside them
}
"""Chart values that become DaemonSets of node agents: the only tolerations of the GPU taint
that come without a GPU request."""


def gpu_variant(gpu: dict[str, Any], **sections: Any) -> tuple[dict[str, Any], set[str]]:
    """cms-bari with its A100 group's GPU spec replaced, and other sections set."""
    values, secret = stack_values(GPU_STACK)
    values["cluster"]["nodeGroups"][GROUP]["gpu"] = {"count": 1, "model": "a100", **gpu}
    values.update(sections)
    return values, secret


VARIANTS = {
    "time-sliced": gpu_variant(
        {"timeSlicing": {"replicas": 4}},
        hub={"gpuProfile": {"gpus": 4}},
        autoscaler={"enabled": True, "image": AUTOSCALER_IMAGE},
    ),
    "mig": gpu_variant({"driver": "preinstalled", "mig": {"profile": "1g.10gb", "instances": 7}}),
}


@pytest.fixture(scope="module")
def variant():
    cache: dict[str, RunResult] = {}

    def get(name: str) -> RunResult:
        if name not in cache:
            cache[name] = preview_values(GPU_STACK, *VARIANTS[name])
        return cache[name]

    return get


def k3s_config(result: RunResult, group: str) -> dict[str, Any]:
    doc = yaml.safe_load(result.files[f"cluster/cloud-init/{group}.yaml"])
    (entry,) = [f for f in doc["write_files"] if f["path"] == "/etc/rancher/k3s/config.yaml"]
    return yaml.safe_load(entry["content"])


def node_labels(result: RunResult, group: str) -> dict[str, str]:
    return dict(label.split("=", 1) for label in k3s_config(result, group).get("node-label", []))


def plugin_values(result: RunResult) -> dict[str, Any]:
    values = by_name(result, "af-gpu-chart").inputs["values"]
    assert yaml.safe_load(result.files["gpu/values.yaml"]) == values
    return values


def plugin_configs(result: RunResult) -> dict[str, dict[str, Any]]:
    return {name: yaml.safe_load(text) for name, text in plugin_values(result)["config"]["map"].items()}


# --- nodes ----------------------------------------------------------------------------------------


def test_gpu_nodes_are_tainted_and_labelled_cpu_nodes_are_not(shipped):
    result = shipped(GPU_STACK)
    config = k3s_config(result, GROUP)
    assert config["node-taint"] == ["nvidia.com/gpu=present:NoSchedule"]
    assert config["default-runtime"] == "nvidia"
    labels = node_labels(result, GROUP)
    assert {k: v for k, v in labels.items() if "gpu" in k or "nvidia" in k} == {
        "nvidia.com/gpu.present": "true",
        "nvidia.com/device-plugin.config": GROUP,
        "af.infn.it/gpu-model": "a100",
        "af.infn.it/gpu-count": "1",
    }
    others = [k.removeprefix("cluster/cloud-init/").removesuffix(".yaml") for k in result.files if "/cloud-init/" in k]
    assert {"cpu", "cache", "system", "control-plane-0"} <= set(others)
    for group in set(others) - {GROUP}:
        text = result.files[f"cluster/cloud-init/{group}.yaml"]
        assert "nvidia" not in text and "gpu" not in text, group


# --- the device plugin ----------------------------------------------------------------------------


def test_device_plugin_release_is_pinned_and_runs_on_gpu_nodes_only(shipped):
    result = shipped(GPU_STACK)
    cfg = build_config(*stack_values(GPU_STACK))
    (provider,) = of_type(result, K8S_PROVIDER)
    release = by_name(result, "af-gpu-chart")
    assert release.type == RELEASE and release.provider == provider.urn
    assert release.parent.endswith(f"{PLUGIN}::af-gpu")
    inputs = release.inputs
    assert (inputs["chart"], inputs["name"], inputs["version"]) == ("nvidia-device-plugin",) * 2 + ("0.17.1",)
    assert inputs["version"] == cfg.gpu.chart_version
    assert inputs["repositoryOpts"] == {"repo": "https://nvidia.github.io/k8s-device-plugin"}
    namespace = by_name(result, "af-gpu-ns")
    assert namespace.inputs["metadata"] == {
        "name": inputs["namespace"],
        "labels": cfg.namespace_labels("nvidia-device-plugin"),
    }
    assert inputs["namespace"] == "nvidia-device-plugin"
    assert namespace.urn in release.dependencies
    values = plugin_values(result)
    # The pinned image is the chart's own for its version: nothing to set (test_chart_standins
    # checks which image the chart then runs); feature discovery brings node feature discovery.
    assert cfg.gpu.image == f"nvcr.io/nvidia/k8s-device-plugin:v{cfg.gpu.chart_version}"
    assert "image" not in values
    assert values["gfd"] == {"enabled": True} and "enabled" not in values["nfd"]
    # Plugin, feature discovery and its worker select nodes every GPU node has and no other node has.
    gpu_labels = node_labels(result, GROUP)
    for selector in (values["nodeSelector"], values["nfd"]["worker"]["nodeSelector"]):
        assert selector.items() <= gpu_labels.items()
        for group in ("cpu", "cache", "system"):
            assert not selector.items() <= node_labels(result, group).items(), group
    # Discovery's master needs no GPU: system nodes, no GPU toleration.
    assert values["nfd"]["master"]["nodeSelector"].items() <= node_labels(result, "system").items()
    assert values["nfd"]["master"]["tolerations"] == []
    for part in (values, values["nfd"]["master"], values["nfd"]["worker"]):
        assert set(part["resources"]) == {"requests", "limits"}


def test_a_device_plugin_image_other_than_the_charts_is_set():
    values, secret = stack_values(GPU_STACK)
    values.setdefault("gpu", {})["image"] = "registry.example.org/mirror/k8s-device-plugin:v0.17.1-af1"
    image = plugin_values(preview_values(GPU_STACK, values, secret))["image"]
    assert image == {"repository": "registry.example.org/mirror/k8s-device-plugin", "tag": "v0.17.1-af1"}


def test_each_gpu_group_gets_its_device_plugin_config(shipped, variant):
    whole = plugin_configs(shipped(GPU_STACK))
    assert whole[GROUP] == {"version": "v1", "flags": {"migStrategy": "none"}}
    # Nodes without the group label (never ours) get whole GPUs.
    default = plugin_values(shipped(GPU_STACK))["config"]["default"]
    assert whole[default] == {"version": "v1", "flags": {"migStrategy": "none"}}
    # The label every GPU node carries names its group's entry.
    assert node_labels(shipped(GPU_STACK), GROUP)["nvidia.com/device-plugin.config"] in whole
    assert set(whole) == {default, GROUP}
    sliced = plugin_configs(variant("time-sliced"))[GROUP]
    assert sliced == {
        "version": "v1",
        "flags": {"migStrategy": "none"},
        "sharing": {"timeSlicing": {"resources": [{"name": "nvidia.com/gpu", "replicas": 4}]}},
    }
    # MIG strategy single: each instance is one nvidia.com/gpu, as hub and HTCondor count them.
    assert plugin_configs(variant("mig"))[GROUP] == {"version": "v1", "flags": {"migStrategy": "single"}}


def test_device_plugin_values_are_valid_pod_fragments(shipped):
    """The chart copies these values into its pods' specs: as a pod, Kubernetes' schema accepts them."""
    values = plugin_values(shipped(GPU_STACK))
    nfd = values["nfd"]
    for part in (values, nfd["master"], nfd["worker"]):
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "fragment"},
            "spec": {
                "nodeSelector": part["nodeSelector"],
                "tolerations": part["tolerations"],
                "containers": [{"name": "c", "image": "registry.invalid/c:0", "resources": part["resources"]}],
            },
        }
        kubernetes_validate.validate(pod, "1.36.2", strict=True)
    validated = [r for r in shipped(GPU_STACK).registrations if r.name == "af-gpu-ns"]
    for r in validated:
        kubernetes_validate.validate(manifest(r), "1.36.2", strict=True)
    assert [r.type for r in validated] == [NAMESPACE]


# --- tolerations ----------------------------------------------------------------------------------


def tolerates_gpu_taint(tolerations: list[dict[str, Any]] | None) -> bool:
    """Whether a pod with these tolerations may land on a node tainted nvidia.com/gpu:NoSchedule."""
    for t in tolerations or []:
        key_matches = t.get("key") == GPU_TAINT_KEY or (not t.get("key") and t.get("operator") == "Exists")
        if key_matches and t.get("effect") in (None, "", "NoSchedule"):
            return True
    return False


def requests_gpus(pod: dict[str, Any]) -> bool:
    containers = pod.get("containers", []) + pod.get("initContainers", [])
    return any(GPU_TAINT_KEY in c.get("resources", {}).get("limits", {}) for c in containers)


def walk_tolerations(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "tolerations":
                yield ".".join((*path, key)), item
            else:
                yield from walk_tolerations(item, (*path, str(key)))
    elif isinstance(value, list):
        for item in value:
            yield from walk_tolerations(item, path)


def assert_only_gpu_pods_tolerate_the_taint(result: RunResult) -> int:
    """Every pod template in the plan, every hub profile, every chart's values. Returns how many
    pod specs tolerate the taint (each with a GPU request)."""
    tolerating = 0
    for r in result.registrations:
        if r.type not in POD_TEMPLATES:
            continue
        pod = r.inputs["spec"] if r.type.endswith(":Pod") else r.inputs["spec"]["template"]["spec"]
        if tolerates_gpu_taint(pod.get("tolerations")):
            assert requests_gpus(pod), f"{r.name} tolerates the GPU taint without requesting a GPU"
            tolerating += 1
    hub = hub_values(result)
    assert "tolerations" not in hub["singleuser"], "every notebook would tolerate the GPU taint"
    for entry in hub["custom"]["af"]["profiles"]:
        override = entry["profile"]["kubespawner_override"]
        tolerates = tolerates_gpu_taint(override.get("tolerations"))
        asks = GPU_TAINT_KEY in override.get("extra_resource_limits", {})
        assert tolerates == asks, entry["profile"]["slug"]
        tolerating += tolerates
    for release in of_type(result, RELEASE):
        for path, tolerations in walk_tolerations(release.inputs["values"]):
            if release.name == "af-hub-chart" and path.startswith("custom.af.profiles."):
                continue  # the profiles, checked above
            if tolerates_gpu_taint(tolerations):
                assert (release.name, path) in NODE_AGENTS, f"{release.name}: {path} tolerates the GPU taint"
    return tolerating


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_only_pods_that_request_gpus_tolerate_the_gpu_taint(shipped, stack):
    tolerating = assert_only_gpu_pods_tolerate_the_taint(shipped(stack))
    has_gpus = any(g.gpu for g in build_config(*stack_values(stack)).cluster.node_groups.values())
    # cms-bari: the GPU workers and the GPU notebook profile.
    assert (tolerating == 2) if has_gpus else (tolerating == 0)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_only_pods_that_request_gpus_tolerate_the_gpu_taint_when_shared(variant, name):
    assert assert_only_gpu_pods_tolerate_the_taint(variant(name)) == 2


def test_the_toleration_scan_catches_a_cpu_pod_that_tolerates_gpus(shipped):
    result = shipped(GPU_STACK)
    worker = by_name(result, "af-condor-worker-cpu")
    pod = worker.inputs["spec"]["template"]["spec"]
    pod["tolerations"] = [{"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}]
    try:
        with pytest.raises(AssertionError, match="af-condor-worker-cpu tolerates the GPU taint"):
            assert_only_gpu_pods_tolerate_the_taint(result)
    finally:
        del pod["tolerations"]
    assert tolerates_gpu_taint([{"operator": "Exists"}]) and not tolerates_gpu_taint([{"key": "x"}])


@pytest.mark.parametrize("stack", NO_GPU_STACKS)
def test_stacks_without_gpus_have_no_device_plugin_and_nothing_nvidia(shipped, stack):
    result = shipped(stack)
    assert not any(g.gpu for g in build_config(*stack_values(stack)).cluster.node_groups.values())
    assert of_type(result, PLUGIN) == [] and not any(r.name.startswith("af-gpu") for r in result.registrations)
    # No GPU toleration, label, runtime or request anywhere in the plan or the files it deploys.
    for text in (plan.plan_json(result), *result.files.values()):
        assert "nvidia" not in text


# --- one declaration, the same GPUs for notebooks and batch ------------------------------------


def _gpu_worker(result: RunResult) -> dict[str, Any]:
    (container,) = by_name(result, f"af-condor-worker-{GROUP}").inputs["spec"]["template"]["spec"]["containers"]
    return container["resources"]


def _gpu_profile(result: RunResult) -> dict[str, Any]:
    (entry,) = [e for e in hub_values(result)["custom"]["af"]["profiles"] if e["profile"]["slug"] == f"gpu-{GROUP}"]
    return entry["profile"]


def test_time_slicing_multiplies_the_gpus_hub_and_htcondor_count(variant, tmp_path):
    result = variant("time-sliced")
    values, secret = VARIANTS["time-sliced"]
    cfg = build_config(values, secret)
    schedulable = cfg.cluster.node_groups[GROUP].gpu.schedulable
    assert schedulable == 4
    # The notebook profile may ask up to the schedulable GPUs.
    profile = _gpu_profile(result)
    assert profile["kubespawner_override"]["extra_resource_limits"] == {"nvidia.com/gpu": "4"}
    assert profile["display_name"] == f"GPU: 4x A100 time-sliced 4 ways ({GROUP})"
    # The worker takes the node's schedulable GPUs; its slot advertises as many.
    resources = _gpu_worker(result)
    assert resources["limits"]["nvidia.com/gpu"] == resources["requests"]["nvidia.com/gpu"] == str(schedulable)
    conf = result.files[f"condor/execute-{GROUP}.conf"]
    params = condor_params(tmp_path, rendered_files(cfg, cache_client(cfg))["pool.conf"], conf, env={"POD_NAME": "p"})
    assert params["GPU_DISCOVERY_EXTRA"].split()[-2:] == ["-divide", "4"]
    assert "MACHINE_RESOURCE_INVENTORY_GPUs" in params
    assert "-divide" not in result.files["condor/execute-cpu.conf"]
    # The autoscaler sizes the group by the same count.
    settings = json.loads(result.files["autoscaler/settings.json"])
    (group,) = [g for g in settings["groups"] if g["name"] == GROUP]
    assert group["gpus"] == schedulable


def test_mig_instances_are_the_gpus_of_a_gpu_ready_image(variant):
    result = variant("mig")
    assert _gpu_worker(result)["limits"]["nvidia.com/gpu"] == "7"
    assert _gpu_profile(result)["display_name"] == f"GPU: 1x A100 MIG 1g.10gb ({GROUP})"
    text = result.files[f"cluster/cloud-init/{GROUP}.yaml"]
    assert "nvidia-smi mig -cgi 1g.10gb,1g.10gb,1g.10gb,1g.10gb,1g.10gb,1g.10gb,1g.10gb -C" in text
    assert "apt-get" not in text, "preinstalled: nothing to install"
    assert "-divide" not in result.files[f"condor/execute-{GROUP}.conf"]


def test_existing_clusters_get_the_device_plugin_only_when_asked():
    values, secret = stack_values("dev")
    values["cluster"]["mode"] = "existing"
    values["cluster"]["existing"] = {"kubeconfig": "apiVersion: v1"}
    values["condor"] = {"enabled": True, "groups": {"cpu": {"cpus": 7, "memoryGib": 14}}}  # sizes unknown
    values["cluster"]["nodeGroups"]["gpu"] = {
        "flavor": "any",
        "count": 1,
        "roles": ["interactive"],
        "gpu": {"count": 1, "model": "t4", "timeSlicing": {"replicas": 2}},
        "taints": [{"key": GPU_TAINT_KEY, "value": "present", "effect": "NoSchedule"}],
    }
    secret = secret | {"cluster"}
    result = preview_values("existing", values, secret)
    assert of_type(result, PLUGIN) == [], "the cluster's own GPU operator by default"
    assert_only_gpu_pods_tolerate_the_taint(result)
    values["gpu"] = {"devicePlugin": True}
    result = preview_values("existing", values, secret)
    (_,) = of_type(result, PLUGIN)
    assert plugin_configs(result)["gpu"]["sharing"]["timeSlicing"]["resources"][0]["replicas"] == 2
    assert _gpu_profile_count(result) == 1


def _gpu_profile_count(result: RunResult) -> int:
    return sum(e["profile"]["slug"].startswith("gpu-") for e in hub_values(result)["custom"]["af"]["profiles"])


def test_plugin_config_and_values_are_pure_functions_of_the_declaration():
    cfg = build_config(*VARIANTS["mig"])
    first = device_plugin.device_plugin_values(cfg.gpu, cfg.cluster)
    assert first == device_plugin.device_plugin_values(cfg.gpu, cfg.cluster)
    assert device_plugin.plugin_config(None) == {"version": "v1", "flags": {"migStrategy": "none"}}
    assert set(first["config"]["map"]) == {device_plugin.DEFAULT_CONFIG, GROUP}
