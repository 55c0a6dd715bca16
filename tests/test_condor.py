"""The HTCondor pool in the plan of every local stack: what runs where, with which secret,
config and volumes; the worker groups the autoscaler will scale; the notebooks' client config."""

from __future__ import annotations

import typing
from typing import Any
from unittest import mock

import classad2
import kubernetes_validate
import pytest
from conftest import SHIPPED_STACKS, by_name, local_values, of_type, preview_values
from test_hub import hub_values, manifest

import afctl.runner
from afctl.mocks import _computed
from components.batch.config import worker_groups
from components.batch.htcondor import autoscaler_identity, daemon_identity
from components.batch.pods import (
    CLIENT_CONFIG,
    CONFIG_DIR,
    KEY_SECRET,
    PRESTOP,
    RETIRE_MARGIN_SECONDS,
    RUNTIME,
    daemon_volumes,
    token_init_container,
    worker_labels,
    worker_name,
)
from components.config.loader import build_config
from components.names import CA_CERT_DIR, COLLECTOR_PORT, CONDOR_NAMESPACE, CVMFS_MOUNT, SCHEDD_PORT, WORKER_GROUP_LABEL

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
CONDOR_TYPE = "af:index:Condor"
POOL = ["atlas-cnaf", "cms-bari", "dev", "single"]


def _cfg(stack: str):
    return build_config(*local_values(stack))


def _groups(stack: str):
    cfg = _cfg(stack)
    return worker_groups(cfg.condor, cfg.cluster, cfg.site.flavors)


def _condor(result) -> list[Any]:
    return [r for r in result.registrations if r.name.startswith("af-condor")]


def _pod(result, name: str) -> dict[str, Any]:
    return by_name(result, name).inputs["spec"]["template"]["spec"]


def _container(pod: dict[str, Any]) -> dict[str, Any]:
    (container,) = pod["containers"]
    return container


def test_stacks_enable_the_pool_through_their_experiment_profile(local):
    """CMS's and ATLAS's profiles turn the pool on; dev and single, of the generic community whose
    profile leaves it off, turn it on themselves. Off, nothing of it is deployed."""
    assert [s for s in SHIPPED_STACKS if _cfg(s).condor.enabled] == sorted(POOL)
    for stack in ("cms-bari", "atlas-cnaf"):
        assert "condor" not in local_values(stack)[0]
    values, secret = local_values("dev")
    assert values["condor"] == {"enabled": True}
    values["condor"] = {"enabled": False}
    off = preview_values("dev", values, secret)
    assert _condor(off) == [] and not any(f.startswith("condor/") for f in off.files)
    assert "CONDOR_CONFIG" not in hub_values(off)["singleuser"]["extraEnv"]


@pytest.mark.parametrize("stack", POOL)
def test_the_component_and_its_children_use_the_cluster_provider(local, stack):
    result = local(stack)
    (component,) = [r for r in result.registrations if r.type == CONDOR_TYPE]
    assert component.parent.endswith("af:index:Facility::af")
    (provider,) = of_type(result, "pulumi:providers:kubernetes")
    children = [r for r in _condor(result) if r.type.startswith("kubernetes:")]
    assert children and all(r.provider == provider.urn for r in children)
    assert all(r.parent == component.urn for r in _condor(result) if r is not component)
    assert {r.inputs["metadata"]["namespace"] for r in children if r.inputs["kind"] != "Namespace"} == {
        CONDOR_NAMESPACE
    }


@pytest.mark.parametrize("stack", POOL)
def test_one_worker_deployment_per_batch_node_group(local, stack):
    result = local(stack)
    groups = _groups(stack)
    cluster = _cfg(stack).cluster
    control_plane = ["control-plane"] if "batch" in cluster.control_plane.roles else []
    assert list(groups) == control_plane + sorted(n for n, g in cluster.node_groups.items() if "batch" in g.roles)
    workers = [r for r in of_type(result, DEPLOYMENT) if r.name.startswith("af-condor-worker-")]
    assert sorted(r.inputs["metadata"]["name"] for r in workers) == sorted(worker_name(g) for g in groups)
    for name, group in groups.items():
        worker = by_name(result, f"af-condor-worker-{name}")
        spec = worker.inputs["spec"]
        assert spec["replicas"] == group.min_workers
        assert spec["selector"]["matchLabels"] == worker_labels(name) == spec["template"]["metadata"]["labels"]
        assert spec["selector"]["matchLabels"][WORKER_GROUP_LABEL] == name
        pod = spec["template"]["spec"]
        assert pod["nodeSelector"] == {"af.infn.it/node-group": name}
        container = _container(pod)
        resources = container["resources"]
        assert resources["requests"] == resources["limits"]  # a guaranteed pod, sized to the node
        assert resources["limits"]["cpu"] == f"{round(group.pod_cpus * 1000)}m"
        assert resources["limits"]["memory"] == f"{group.pod_memory_mib}Mi"
        assert resources["limits"].get("nvidia.com/gpu") == (str(group.gpus) if group.gpus else None)
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert mounts[f"{CONFIG_DIR}/91-af-role.conf"]["subPath"] == f"execute-{name}.conf"
        assert mounts[CVMFS_MOUNT]["readOnly"] and mounts[CVMFS_MOUNT]["mountPropagation"] == "HostToContainer"
        assert {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in container["env"]


class OptionsMonitor(afctl.runner.RecordingMonitor):
    """The runner's monitor, also keeping each resource's `ignoreChanges` (not in the plan)."""

    ignored: typing.ClassVar[dict[str, list[str]]] = {}

    def RegisterResource(self, request):
        OptionsMonitor.ignored[request.name] = list(request.ignoreChanges)
        return super().RegisterResource(request)


def test_the_autoscaler_owns_the_workers_replicas():
    OptionsMonitor.ignored.clear()
    with mock.patch.object(afctl.runner, "RecordingMonitor", OptionsMonitor):
        preview_values("cms-bari", *local_values("cms-bari"))
    ignored = OptionsMonitor.ignored
    for name in _groups("cms-bari"):
        assert ignored[f"af-condor-worker-{name}"] == ["spec.replicas"], name
    # Nothing else is exempt: `pulumi up` keeps the rest of the pool as declared.
    exempt = {n for n, i in ignored.items() if i and n.startswith("af-condor")}
    assert exempt == {f"af-condor-worker-{n}" for n in _groups("cms-bari")}


def test_gpu_workers_ask_for_their_gpus_and_tolerate_the_taint_cpu_workers_do_not(local):
    result = local("cms-bari")
    gpu = _pod(result, "af-condor-worker-gpu-a100")
    assert _container(gpu)["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in gpu["tolerations"]
    cpu = _pod(result, "af-condor-worker-cpu")
    assert "tolerations" not in cpu and "nvidia.com/gpu" not in _container(cpu)["resources"]["limits"]
    # The GPU group's config advertises GPUs; its START keeps the worker's share (15 cores, 57,958 MiB for its
    # one GPU) while the GPU is free, and lends what a GPU job leaves to other jobs.
    conf = result.files["condor/execute-gpu-a100.conf"]
    assert "use FEATURE : GPUs" in conf
    (start,) = [line.split("=", 1)[1] for line in conf.splitlines() if line.startswith("START =")]

    def starts(free: tuple[int, int, int], job: dict[str, int]) -> bool:
        slot = classad2.ClassAd({"Cpus": free[0], "Memory": free[1], "GPUs": free[2]})
        return classad2.ExprTree(start).eval(slot, classad2.ClassAd(job)) is True

    cpu_job, gpu_job = (
        {"RequestCpus": 1, "RequestMemory": 2000},
        {"RequestCpus": 4, "RequestMemory": 16000, "RequestGpus": 1},
    )
    assert starts((15, 57958, 1), gpu_job) and not starts((15, 57958, 1), cpu_job)
    assert starts((11, 41958, 0), cpu_job) and not starts((11, 41958, 1), cpu_job)
    assert "GPUs" not in result.files["condor/execute-cpu.conf"]


@pytest.mark.parametrize("stack", POOL)
def test_workers_retire_their_jobs_before_they_go(local, stack):
    cfg = _cfg(stack)
    for name in _groups(stack):
        pod = _pod(local(stack), f"af-condor-worker-{name}")
        grace = cfg.condor.retire_grace_minutes * 60
        assert pod["terminationGracePeriodSeconds"] == grace + RETIRE_MARGIN_SECONDS
        assert _container(pod)["lifecycle"]["preStop"]["exec"]["command"] == ["/bin/sh", "-c", PRESTOP]
        assert "condor_off -graceful -daemon startd" in PRESTOP
        assert pod["shareProcessNamespace"] is True  # condor_master is not PID 1; preStop sees the startd
        assert f"MAXJOBRETIREMENTTIME = {grace}" in local(stack).files[f"condor/execute-{name}.conf"]


@pytest.mark.parametrize("stack", POOL)
def test_daemons_mint_their_token_from_the_signing_key_secret(local, stack):
    result = local(stack)
    key = by_name(result, "af-condor-pool-key")
    assert key.type == "kubernetes:core/v1:Secret" and key.inputs["stringData"] == "[secret]"
    assert key.inputs["metadata"]["name"] == KEY_SECRET
    password = by_name(result, "af-condor-signing-key")
    assert password.type == "random:index/randomPassword:RandomPassword" and password.inputs["length"] >= 32
    assert password.inputs["special"] is False  # no byte HTCondor's key-file scrambling could turn into NUL
    assert password.urn in key.dependencies
    identity = daemon_identity(_cfg(stack))
    for name in ["af-condor-cm", "af-condor-schedd", *(f"af-condor-worker-{g}" for g in _groups(stack))]:
        pod = _pod(result, name)
        container = _container(pod)
        script = container["command"][-1]
        assert f"condor_token_create -identity {identity} > {RUNTIME.token_dir}/pool" in script
        assert script.endswith("exec /usr/sbin/condor_master -f")
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["pool-key"]["secret"] == {"secretName": KEY_SECRET, "defaultMode": 0o400}
        assert volumes["tokens"]["emptyDir"]["medium"] == "Memory"
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        assert mounts["pool-key"]["mountPath"] == RUNTIME.key_dir and mounts["pool-key"]["readOnly"]


@pytest.mark.parametrize("stack", POOL)
def test_no_secret_in_config_maps_or_rendered_files(local, stack):
    result = local(stack)
    password = next(r for r in result.registrations if r.type == "random:index/randomPassword:RandomPassword")
    key = _computed(password.type, password.name, password.inputs)["result"]
    maps = [r for r in _condor(result) if r.type == "kubernetes:core/v1:ConfigMap"]
    assert maps
    texts = [str(r.inputs["data"]) for r in maps] + [t for f, t in result.files.items() if f.startswith("condor/")]
    assert not any(key in text for text in texts)
    assert not any("BEGIN" in text and "PRIVATE KEY" in text for text in texts)


@pytest.mark.parametrize("stack", POOL)
def test_central_manager_and_schedd_services_certificates_and_budgets(local, stack):
    result = local(stack)
    cfg = _cfg(stack)
    for short, role_file, port in (
        ("cm", "central-manager.conf", COLLECTOR_PORT),
        ("schedd", "submit.conf", SCHEDD_PORT),
    ):
        service = by_name(result, f"af-condor-{short}-svc").inputs
        workload = by_name(result, f"af-condor-{short}")
        labels = workload.inputs["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"] == labels
        assert service["spec"]["ports"] == [{"name": "condor", "port": port, "targetPort": "condor"}]
        pdb = by_name(result, f"af-condor-{short}-pdb").inputs["spec"]
        assert pdb == {"minAvailable": 1, "selector": {"matchLabels": labels}}
        pod = workload.inputs["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == {"af.infn.it/role-system": "true"}
        container = _container(pod)
        assert container["ports"] == [{"name": "condor", "containerPort": port}]
        for kind in ("requests", "limits"):
            assert set(container["resources"][kind]) == {"cpu", "memory"}
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert mounts[f"{CONFIG_DIR}/91-af-role.conf"]["subPath"] == role_file
        assert mounts[f"{CONFIG_DIR}/90-af-pool.conf"]["subPath"] == "pool.conf"
        assert mounts[RUNTIME.spool_dir]["name"] == "spool"
        certificate = by_name(result, f"af-condor-{short}-tls").inputs["spec"]
        host = RUNTIME.central_manager if short == "cm" else RUNTIME.schedd
        assert host in certificate["dnsNames"] and certificate["issuerRef"]["name"] == "af-internal-ca"
        tls = next(v for v in pod["volumes"] if v["name"] == "tls")
        assert tls["secret"]["secretName"] == certificate["secretName"]
    schedd = by_name(result, "af-condor-schedd").inputs["spec"]
    (claim,) = schedd["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == f"{cfg.condor.spool_gib}Gi"
    assert by_name(result, "af-condor-cm").inputs["spec"]["strategy"] == {"type": "Recreate"}


@pytest.mark.parametrize("stack", POOL)
def test_the_config_map_holds_every_rendered_fragment(local, stack):
    result = local(stack)
    data = by_name(result, "af-condor-config").inputs["data"]
    for key, text in data.items():
        if f"condor/{key}" in result.files:
            assert result.files[f"condor/{key}"] == text
    expected = {"pool.conf", "central-manager.conf", "submit.conf", "mapfile", "batch-users.json"}
    expected |= {f"execute-{g}.conf" for g in _groups(stack)}
    assert expected | {"af_batch_users.py"} == set(data)
    assert {f"condor/{k}" for k in expected} | {"condor/client.conf"} == {f for f in result.files if "condor/" in f}


@pytest.mark.parametrize("stack", POOL)
def test_config_changes_roll_the_pods(local, stack):
    values, secret = local_values(stack)
    values.setdefault("condor", {})["idleShutdownMinutes"] = 45
    after = preview_values(stack, values, secret)
    before = local(stack)
    for name in ["af-condor-cm", "af-condor-schedd", *(f"af-condor-worker-{g}" for g in _groups(stack))]:
        old = by_name(before, name).inputs["spec"]["template"]["metadata"]["annotations"]
        new = by_name(after, name).inputs["spec"]["template"]["metadata"]["annotations"]
        changed = name.startswith("af-condor-worker-")  # only the execute fragments changed
        assert (old != new) == changed, name


@pytest.mark.parametrize("stack", POOL)
def test_notebooks_get_the_client_config_and_trust_the_internal_ca(local, stack):
    single = hub_values(local(stack))["singleuser"]
    assert single["extraEnv"]["CONDOR_CONFIG"] == CLIENT_CONFIG
    (client,) = [f for f in single["extraFiles"].values() if f["mountPath"] == CLIENT_CONFIG]
    assert client["stringData"] == local(stack).files["condor/client.conf"]
    assert "SEC_CLIENT_AUTHENTICATION_METHODS = SCITOKENS" in client["stringData"]
    mounts = {m["mountPath"] for m in single["storage"]["extraVolumeMounts"]}
    assert CA_CERT_DIR in mounts


def test_without_the_cache_the_pool_still_gets_tls_and_notebooks_the_ca(local):
    values, secret = local_values("cms-bari")
    values["cache"]["enabled"] = False
    result = preview_values("cms-bari", values, secret)
    assert by_name(result, "af-condor-cm-tls").inputs["spec"]["issuerRef"]["name"] == "af-internal-ca"
    assert by_name(result, "af-hub-ca-certs").inputs["metadata"]["namespace"] == "jupyterhub"
    pod = _pod(result, "af-condor-worker-cpu")
    assert "STARTER_JOB_ENVIRONMENT" not in result.files["condor/execute-cpu.conf"]
    assert {v["name"] for v in pod["volumes"]} == {"config", "files", "pool-key", "tokens", "execute", "cvmfs"}


@pytest.mark.parametrize("stack", POOL)
def test_condor_manifests_pass_kubernetes_validate(local, stack):
    kinds = set()
    for r in _condor(local(stack)):
        if not r.custom or not r.type.startswith("kubernetes:") or r.inputs["apiVersion"].startswith("cert-manager"):
            continue
        kubernetes_validate.validate(manifest(r), "1.36.2", strict=True)
        kinds.add(r.inputs["kind"])
    assert kinds == {
        "Namespace",
        "ConfigMap",
        "Secret",
        "Service",
        "Deployment",
        "StatefulSet",
        "PersistentVolumeClaim",
        "PodDisruptionBudget",
    }


@pytest.mark.parametrize("stack", POOL)
def test_every_mount_has_its_volume(local, stack):
    result = local(stack)
    for name in ["af-condor-cm", "af-condor-schedd", *(f"af-condor-worker-{g}" for g in _groups(stack))]:
        spec = by_name(result, name).inputs["spec"]
        pod = spec["template"]["spec"]
        claims = {c["metadata"]["name"] for c in spec.get("volumeClaimTemplates", [])}
        volumes = {v["name"] for v in pod["volumes"]} | claims
        mounts = {m["name"] for c in pod["containers"] for m in c["volumeMounts"]}
        assert mounts == volumes, name


def test_the_autoscaler_can_get_a_limited_token_without_holding_the_key():
    cfg = _cfg("cms-bari")
    init = token_init_container(cfg, autoscaler_identity(cfg), ["READ", "ADMINISTRATOR"], "/run/af-token")
    command = init["command"][-1]
    assert "condor_token_create -identity autoscaler@af.ba.infn.it -authz READ -authz ADMINISTRATOR" in command
    assert command.endswith("> /run/af-token/token")
    volumes = [v for v in daemon_volumes() if v["name"] in ("config", "pool-key")]
    volumes.append({"name": "token", "emptyDir": {"medium": "Memory"}})
    main = {
        "name": "autoscaler",
        "image": "registry.example.org/af-autoscaler:1.0",
        "volumeMounts": [{"name": "token", "mountPath": "/run/af-token", "readOnly": True}],
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "autoscaler", "namespace": CONDOR_NAMESPACE},
        "spec": {"initContainers": [init], "containers": [main], "volumes": volumes},
    }
    kubernetes_validate.validate(pod, "1.36.2", strict=True)
    assert {m["name"] for m in init["volumeMounts"]} == {v["name"] for v in volumes}
