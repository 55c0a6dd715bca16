"""Offload gateways in the plan: per gateway a virtual node (interLink's virtual kubelet with the
declared resources, labels and taints), an HTCondor worker group bound to it, the edge's files,
and the pool published to the centre's networks only; a stack without gateways has none of it."""

from __future__ import annotations

import base64
import http.server
import json
import re
import ssl
import threading
from typing import Any

import kubernetes_validate
import pytest
import yaml
from conftest import by_name, of_type, preview_values, stack_values
from support.gateways import galileo, leonardo
from test_condor_config import condor_params
from test_hub import manifest

from afctl import plan
from components.batch.files.af_store_token import store
from components.config.loader import build_config
from components.names import (
    COLLECTOR_PORT,
    GATEWAY_LABEL,
    GATEWAY_TAINT_KEY,
    SCHEDD_PORT,
    SLURM_FLAGS_ANNOTATION,
    VIRTUAL_NODE_TAINT,
)
from components.offload.interlink import InterLinkApiConfig, SlurmPluginConfig, VirtualKubeletConfig
from policy.offline import evaluate
from policy.packconfig import pack_config

SECRETS = ("leonardo-client-secret-value", "galileo-static-token-value")
RULE = "openstack:networking/secGroupRule:SecGroupRule"


def with_gateways() -> tuple[dict[str, Any], set[str]]:
    values, secret = stack_values("cms-bari")
    values["offload"] = {"gateways": {"leonardo": leonardo(), "galileo": galileo()}}
    return values, secret | {"offload"}


@pytest.fixture(scope="module")
def result():
    return preview_values("cms-bari", *with_gateways())


def vk_config(result, gateway: str) -> VirtualKubeletConfig:
    data = by_name(result, f"af-offload-{gateway}-config").inputs["data"]
    return VirtualKubeletConfig.model_validate(yaml.safe_load(data["InterLinkConfig.yaml"]))


def pod_of(registration) -> dict[str, Any]:
    return registration.inputs["spec"]["template"]["spec"]


def tolerated(pod: dict[str, Any], key: str, value: str) -> bool:
    return any(
        t["key"] == key and (t["operator"] == "Exists" or t.get("value") == value) for t in pod.get("tolerations", [])
    )


def test_each_gateway_is_a_virtual_node_with_the_declared_resources_and_taints(result):
    leo, gal = vk_config(result, "leonardo"), vk_config(result, "galileo")
    assert (leo.Resources.CPU, leo.Resources.Memory, leo.Resources.Pods) == ("256", "1024Gi", "50")
    assert [(a.ResourceType, a.Model, a.Available) for a in leo.Resources.Accelerators] == [
        ("nvidia.com/gpu", "a100", 24)
    ]
    assert gal.Resources.Accelerators == [] and gal.Resources.CPU == "512"
    assert (leo.InterlinkURL, leo.InterlinkPort) == ("https://interlink.leonardo.example.org", "8443")
    assert (gal.InterlinkURL, gal.InterlinkPort) == ("https://interlink.galileo.example.org", "443")
    assert leo.NodeLabels == [f"{GATEWAY_LABEL}=leonardo"]
    assert {(t.Key, t.Value, t.Effect) for t in leo.NodeTaints} == {
        (VIRTUAL_NODE_TAINT, "true", "NoSchedule"),
        (GATEWAY_TAINT_KEY, "leonardo", "NoSchedule"),
    }
    assert not leo.HTTP.Insecure and leo.VKTokenFile == "/opt/interlink/token"
    vk = by_name(result, "af-offload-leonardo-vk")
    pod = pod_of(vk)
    assert pod["nodeSelector"] == {"af.infn.it/role-system": "true"} and pod["securityContext"]["runAsNonRoot"]
    (kubelet,) = [c for c in pod["containers"] if c["name"] == "vk"]
    assert kubelet["image"] == "ghcr.io/interlink-hq/interlink/virtual-kubelet-inttw:0.6.0"
    assert {e["name"]: e.get("value") for e in kubelet["env"]}["NODENAME"] == "af-vk-leonardo"


def test_the_kubelet_may_do_what_a_kubelet_does_and_no_more(result):
    for gateway in ("leonardo", "galileo"):
        rules = by_name(result, f"af-offload-{gateway}-role").inputs["rules"]
        assert all("*" not in r["verbs"] and "*" not in r["resources"] for r in rules)
        granted = {(res, verb) for r in rules for res in r["resources"] for verb in r["verbs"]}
        assert ("nodes", "create") in granted and ("pods/status", "patch") in granted
        assert not {v for res, v in granted if res == "secrets"} - {"get", "list", "watch"}
        binding = by_name(result, f"af-offload-{gateway}-binding").inputs
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": f"af-vk-{gateway}", "namespace": "interlink"}]


def test_the_centres_credentials_reach_the_kubelet_only_through_secrets(result):
    iam, token = pod_of(by_name(result, "af-offload-leonardo-vk")), pod_of(by_name(result, "af-offload-galileo-vk"))
    # IAM client: a first token before the kubelet starts, a sidecar renewing it, the secret as a file.
    assert [c["name"] for c in iam["initContainers"]] == ["first-token"]
    sidecar = next(c for c in iam["containers"] if c["name"] == "token")
    env = {e["name"]: e["value"] for e in sidecar["env"]}
    assert env["AF_TOKEN_URL"] == "https://cms-auth.cern.ch/token" and env["AF_AUDIENCE"] == "interlink"
    assert env["AF_CLIENT_SECRET_FILE"].endswith("/client-secret")
    # A centre's token: the Secret is the token file.
    volumes = {v["name"]: v for v in token["volumes"]}
    assert volumes["token"]["secret"] == {"secretName": "af-vk-galileo", "items": [{"key": "token", "path": "token"}]}
    for gateway in ("leonardo", "galileo"):
        assert by_name(result, f"af-offload-{gateway}-secret").inputs["stringData"] == "[secret]"
    plan = json.dumps([r.inputs for r in result.registrations]) + json.dumps(result.files)
    assert not any(secret in plan for secret in SECRETS)


def test_each_gateway_has_a_worker_group_bound_to_its_node(result):
    for gateway, worker in (("leonardo", leonardo()["worker"]), ("galileo", galileo()["worker"])):
        deployment = by_name(result, f"af-condor-worker-{gateway}")
        pod = pod_of(deployment)
        assert pod["nodeSelector"] == {GATEWAY_LABEL: gateway}
        assert tolerated(pod, VIRTUAL_NODE_TAINT, "true") and tolerated(pod, GATEWAY_TAINT_KEY, gateway)
        assert not tolerated(pod, GATEWAY_TAINT_KEY, "someone-else")
        (container,) = pod["containers"]
        limits = container["resources"]["limits"]
        assert limits["cpu"] == str(worker["cpus"]) and limits["memory"] == f"{worker['memoryGib'] * 1024}Mi"
        assert limits.get("nvidia.com/gpu") == (str(worker["gpus"]) if worker.get("gpus") else None)
        # The signing key stays in the cluster; the worker has a minted token only.
        assert "af-condor-pool-key" not in json.dumps(pod)
        assert {v["name"]: v for v in pod["volumes"]}["tokens"]["secret"]["secretName"] == "af-condor-offload-token"
        assert deployment.inputs["spec"]["replicas"] == 0
    flags = by_name(result, "af-condor-worker-leonardo").inputs["spec"]["template"]["metadata"]["annotations"]
    assert flags[SLURM_FLAGS_ANNOTATION] == (
        "--partition=boost_usr_prod --account=INF24_cms --qos=normal --time=24:00:00 --exclusive"
    )
    # Local workers never go to a virtual node.
    local = pod_of(by_name(result, "af-condor-worker-cpu"))
    assert not tolerated(local, VIRTUAL_NODE_TAINT, "true") and GATEWAY_LABEL not in local["nodeSelector"]


def test_the_offloaded_workers_token_is_minted_in_the_cluster_with_a_startds_rights(result):
    job = by_name(result, "af-condor-minter")
    pod = pod_of(job)
    (mint,) = pod["initContainers"]
    command = mint["command"][-1]
    assert "condor_token_create" in command
    # A startd's rights: no WRITE, no ADMINISTRATOR, nothing a user or an operator does.
    assert sorted(re.findall(r"-authz (\S+)", command)) == ["ADVERTISE_MASTER", "ADVERTISE_STARTD", "DAEMON", "READ"]
    role = by_name(result, "af-condor-minter-role").inputs["rules"]
    assert role == [
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["af-condor-offload-token"], "verbs": ["patch"]}
    ]


def test_the_pool_is_published_to_the_centres_networks_only(result, tmp_path):
    rules = [r.inputs for r in of_type(result, RULE)]
    pool = [r for r in rules if r.get("portRangeMin") in (COLLECTOR_PORT, SCHEDD_PORT)]
    assert {(r["portRangeMin"], r["remoteIpPrefix"]) for r in pool} == {
        (COLLECTOR_PORT, "131.175.0.0/16"),
        (SCHEDD_PORT, "131.175.0.0/16"),
    }
    for name, port in (("af-condor-cm-public", COLLECTOR_PORT), ("af-condor-schedd-public", SCHEDD_PORT)):
        spec = by_name(result, name).inputs["spec"]
        assert spec["type"] == "LoadBalancer" and spec["loadBalancerSourceRanges"] == ["131.175.0.0/16"]
        assert spec["ports"][0]["port"] == port
    # What the offloaded startd reads: the published collector, CCB through it.
    params = condor_params(tmp_path, result.files["condor/pool.conf"], result.files["condor/offload.conf"])
    dns_name = build_config(*with_gateways()).site.dns_name
    assert params["COLLECTOR_HOST"] == f"{dns_name}:{COLLECTOR_PORT}"
    assert params["CCB_ADDRESS"] == params["COLLECTOR_HOST"] and not params.get("PRIVATE_NETWORK_NAME")
    submit = condor_params(tmp_path, result.files["condor/pool.conf"], result.files["condor/submit.conf"])
    assert int(submit["SHARED_PORT_PORT"]) == SCHEDD_PORT and submit["PRIVATE_NETWORK_NAME"]


def test_the_edge_gets_its_interlink_and_slurm_configuration(result):
    for gateway, runtime in (("leonardo", "/usr/bin/apptainer"), ("galileo", "/usr/bin/apptainer")):
        api = InterLinkApiConfig.model_validate(yaml.safe_load(result.files[f"offload/{gateway}/InterLinkConfig.yaml"]))
        plugin = SlurmPluginConfig.model_validate(yaml.safe_load(result.files[f"offload/{gateway}/SlurmConfig.yaml"]))
        assert api.SidecarPort == plugin.SidecarPort and api.InterlinkAddress == "http://127.0.0.1"
        assert plugin.SingularityPath == runtime and plugin.ImagePrefix == "docker://"
        assert ("--nv" in plugin.SingularityDefaultOptions) == (gateway == "leonardo")


def test_the_edge_models_refuse_what_the_programs_would_ignore(result):
    text = yaml.safe_load(result.files["offload/leonardo/SlurmConfig.yaml"])
    with pytest.raises(ValueError, match="SbatchFlags"):
        SlurmPluginConfig.model_validate({**text, "SbatchFlags": "--partition=x"})
    with pytest.raises(ValueError, match="InterlinkURL"):
        VirtualKubeletConfig.model_validate({**vk_config(result, "leonardo").model_dump(), "InterlinkURL": "http://x"})


def test_generated_manifests_pass_kubernetes_validate(result):
    kinds = set()
    for r in result.registrations:
        if (
            r.custom
            and r.type.startswith("kubernetes:")
            and (
                r.name.startswith("af-offload-")
                or r.name.startswith("af-condor-minter")
                or "public" in r.name
                or r.name in ("af-condor-worker-leonardo", "af-condor-worker-galileo", "af-condor-offload-token")
            )
        ):
            kubernetes_validate.validate(manifest(r), "1.36.2", strict=True)
            kinds.add(r.inputs["kind"])
    assert kinds >= {
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Secret",
        "ConfigMap",
        "Deployment",
        "Job",
        "Role",
        "RoleBinding",
        "Service",
    }


def test_a_stack_without_gateways_has_none_of_it(shipped, local):
    assert [r for r in shipped("cms-bari").registrations if r.name.startswith("af-offload")]  # it ships one
    for stack in ("cms-bari", "atlas-cnaf", "dev", "single"):
        result = local(stack)
        assert not [r for r in result.registrations if r.name.startswith("af-offload") or "minter" in r.name]
        assert not [f for f in result.files if f.startswith("offload/") or f == "condor/offload.conf"]
        assert not [r for r in of_type(result, RULE) if r.inputs.get("portRangeMin") in (COLLECTOR_PORT, SCHEDD_PORT)]
        assert not [r for r in result.registrations if r.name.endswith("-public") and r.type.endswith("Service")]
        assert all("PRIVATE_NETWORK_NAME" not in text for f, text in result.files.items() if f.startswith("condor/"))


class _Api(http.server.BaseHTTPRequestHandler):
    seen: list[tuple[str, str, dict[str, str], bytes]] = []

    def do_PATCH(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Api.seen.append((self.command, self.path, dict(self.headers), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_the_minted_token_is_patched_into_its_secret(tmp_path):
    server = http.server.HTTPServer(("127.0.0.1", 0), _Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        token = tmp_path / "token"
        token.write_text("eyJhbGciOiJIUzI1NiJ9.e30.sig\n")
        api = f"http://127.0.0.1:{server.server_port}"
        status = store(
            str(token), "condor", "af-condor-offload-token", "token", api, "sa-token", ssl.create_default_context()
        )
        assert status == 200
        ((method, path, headers, body),) = _Api.seen
        assert (method, path) == ("PATCH", "/api/v1/namespaces/condor/secrets/af-condor-offload-token")
        assert headers["Authorization"] == "Bearer sa-token"
        assert headers["Content-Type"] == "application/merge-patch+json"
        assert base64.b64decode(json.loads(body)["data"]["token"]) == b"eyJhbGciOiJIUzI1NiJ9.e30.sig"
        token.write_text("")
        with pytest.raises(RuntimeError, match="not minted"):
            store(str(token), "condor", "x", "token", api, "sa-token", ssl.create_default_context())
    finally:
        server.shutdown()
        server.server_close()


def test_a_stack_with_gateways_passes_every_policy_rule(result):
    """The virtual kubelets' ClusterRoles are the node-level RBAC the declared gateways need."""
    violations = evaluate(plan.plan_document(result), pack_config(build_config(*with_gateways())))
    assert violations == []
    # Only those: another ClusterRole is still refused.
    other = plan.plan_document(result)
    role = next(r for r in other["resources"] if r["name"] == "af-offload-leonardo-role")
    role["inputs"]["metadata"]["name"] = "someone-elses-role"
    assert [v.rule for v in evaluate(other, pack_config(build_config(*with_gateways())))] == ["rbac-namespaced"]
