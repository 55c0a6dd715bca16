"""The autoscaler deployed: settings rendered from the same declaration as the workers,
least-privilege RBAC, a limited IDTOKEN, and config errors for what cannot work."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import kubernetes_validate
import pytest
from conftest import SHIPPED_STACKS, by_name, local_values, of_type, preview_values, stack_values
from test_config import HUB_SECRET, edit, hub_base, only_problem
from test_hub import manifest

from autoscaler.kube import GROUP_LABEL
from autoscaler.settings import ControllerSettings
from components.batch.config import worker_groups
from components.config.loader import PROJECT_ROOT, build_config

IMAGE = "registry.example.org/af/af-autoscaler:0.1.0"


def with_autoscaler(**extra: Any) -> tuple[dict[str, Any], set[str]]:
    values, secret = local_values("cms-bari")  # its own groups; the gateway's in tests/test_offload.py
    values["autoscaler"] = {"enabled": True, "image": IMAGE, **extra}
    return values, secret


@pytest.fixture(scope="module")
def result():
    trigger = {"constraint": 'RequestGpus > 0 && AcctGroup == "cms.ml"', "group": "gpu-a100"}
    return preview_values("cms-bari", *with_autoscaler(triggers=[trigger]))


def test_settings_describe_the_worker_groups_the_pool_deploys(result):
    settings = ControllerSettings.from_json(by_name(result, "af-autoscaler-settings").inputs["data"]["settings.json"])
    assert settings.to_json() == result.files["autoscaler/settings.json"]
    cfg = build_config(*with_autoscaler())
    groups = worker_groups(cfg.condor, cfg.cluster, cfg.site.flavors)
    assert [g.name for g in settings.groups] == sorted(groups) == ["cpu", "gpu-a100"]
    deployments = {r.inputs["metadata"]["name"]: r for r in of_type(result, "kubernetes:apps/v1:Deployment")}
    for g in settings.groups:
        pool = groups[g.name]
        assert (g.cpus, g.memory_mb, g.gpus) == (pool.slot_cpus, pool.slot_memory_mib, pool.gpus)
        assert (g.start, g.min_workers, g.max_workers, g.preference) == (
            pool.start,
            pool.min_workers,
            pool.max_workers,
            pool.preference,
        )
        workers = deployments[g.deployment].inputs["spec"]
        assert workers["template"]["metadata"]["labels"][GROUP_LABEL] == g.name
    gpu = next(g for g in settings.groups if g.name == "gpu-a100")
    assert gpu.gpus == 1 and settings.triggers[0].group == "gpu-a100"
    assert settings.schedds and settings.collector.endswith(":9618")
    # The runtime has no defaults of its own: what the stack's config says (here, the model's defaults).
    assert settings.scale_down_delay_seconds == cfg.autoscaler.scale_down_delay_seconds == 300
    assert (settings.interval_seconds, settings.metrics_port) == (cfg.autoscaler.interval_seconds, 9100)


def test_rbac_lets_it_scale_only_the_worker_groups_and_touch_only_pods(result):
    role = by_name(result, "af-autoscaler-role").inputs
    assert role["kind"] == "Role" and role["metadata"]["namespace"] == "condor"
    assert not of_type(result, "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole")
    rules = role["rules"]
    for rule in rules:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
        assert not {"delete", "create", "update", "deletecollection"} & set(rule["verbs"])
    pods, scale = rules
    assert (pods["resources"], pods["verbs"]) == (["pods"], ["get", "list", "patch"])
    assert scale["resources"] == ["deployments/scale"]
    assert sorted(scale["resourceNames"]) == ["af-condor-worker-cpu", "af-condor-worker-gpu-a100"]
    binding = by_name(result, "af-autoscaler-binding").inputs
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "af-autoscaler", "namespace": "condor"}]


def test_the_controller_gets_a_limited_token_and_never_the_pool_key(result):
    pod = by_name(result, "af-autoscaler-controller").inputs["spec"]["template"]["spec"]
    (mint,) = pod["initContainers"]
    command = mint["command"][-1]
    assert "-identity autoscaler@af.ba.infn.it -authz READ -authz ADMINISTRATOR" in command
    assert "chown 65534:65534" in command
    (controller,) = pod["containers"]
    assert controller["image"] == IMAGE
    assert controller["securityContext"]["runAsUser"] == 65534 and controller["securityContext"]["runAsNonRoot"]
    mounted = {m["name"] for m in controller["volumeMounts"]}
    assert "pool-key" not in mounted and "token" in mounted
    assert pod["serviceAccountName"] == "af-autoscaler"
    for container in [mint, controller]:
        assert set(container["resources"]["requests"]) == set(container["resources"]["limits"]) == {"cpu", "memory"}


def test_its_condor_client_config_parses_in_htcondor(result, tmp_path):
    path = tmp_path / "condor_config"
    path.write_text(result.files["autoscaler/condor_config"])
    code = "import htcondor2; p = htcondor2.param; print(p['SEC_CLIENT_AUTHENTICATION_METHODS'], p['COLLECTOR_HOST'])"
    env = {**os.environ, "CONDOR_CONFIG": str(path)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    methods, collector = done.stdout.split()
    assert methods == "IDTOKENS" and collector.endswith(":9618")


def test_autoscaler_manifests_pass_kubernetes_validate(result):
    kinds = set()
    for r in result.registrations:
        if r.custom and r.name.startswith("af-autoscaler"):
            kubernetes_validate.validate(manifest(r), "1.36.2", strict=True)
            kinds.add(r.inputs["kind"])
    assert kinds == {
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "Deployment",
        "Service",
        "ValidatingAdmissionPolicy",  # its pod patches limited to the deletion cost (tests/test_kube_stacks.py)
        "ValidatingAdmissionPolicyBinding",
    }


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_every_stack_with_a_pool_runs_the_autoscaler_from_the_pools_own_image(shipped, stack):
    """On by default, nothing to build: the pool's central-manager image runs the package as the
    repository has it, from a ConfigMap."""
    cfg = build_config(*stack_values(stack))
    names = {r.name for r in shipped(stack).registrations}
    if not cfg.condor.enabled:
        assert not {n for n in names if n.startswith("af-autoscaler")}
        return
    pod = by_name(shipped(stack), "af-autoscaler-controller").inputs["spec"]["template"]["spec"]
    (controller,) = pod["containers"]
    assert controller["image"] == cfg.condor.image("cm") == f"docker.io/htcondor/cm:{cfg.condor.image_tag}"
    assert controller["command"] == ["python3", "-m", "autoscaler.controller"]
    env = {e["name"]: e.get("value") for e in controller["env"]}
    mount = next(m for m in controller["volumeMounts"] if m["name"] == "code")
    assert mount["mountPath"] == f"{env['PYTHONPATH']}/autoscaler" and mount["readOnly"]
    code = by_name(shipped(stack), "af-autoscaler-code").inputs["data"]
    on_disk = {p.name: p.read_text() for p in (PROJECT_ROOT / "autoscaler").glob("*.py")}
    assert code == on_disk


def test_the_shipped_code_imports_from_where_the_pod_mounts_it(shipped, tmp_path):
    """Laid out as the ConfigMap mount lays it out, with only PYTHONPATH set, the controller's
    modules import (the pool's image brings the same htcondor2 and classad2)."""
    code = by_name(shipped("cms-bari"), "af-autoscaler-code").inputs["data"]
    package = tmp_path / "opt" / "af" / "autoscaler"
    package.mkdir(parents=True)
    for name, text in code.items():
        (package / name).write_text(text)
    probe = "import autoscaler.controller as c, autoscaler.planner; print(c.__file__)"
    env = {"PYTHONPATH": str(tmp_path / "opt" / "af"), "PYTHONDONTWRITEBYTECODE": "1", "PATH": os.environ["PATH"]}
    # PYTHONPATH comes before site-packages: the copy, not the repository's package, is imported.
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == str(package / "controller.py")


def _base_with_pool() -> dict[str, Any]:
    cfg = edit(hub_base(), "condor", {"enabled": True})
    return edit(cfg, "identity.roles.batch", ["/users"])


@pytest.mark.parametrize(
    ("autoscaler", "path", "allowed"),
    [
        (
            {"enabled": True, "image": IMAGE, "triggers": [{"constraint": "x >", "group": "cpu"}]},
            "af:autoscaler.triggers[0].constraint",
            "ClassAd",
        ),
        (
            {"enabled": True, "image": IMAGE, "triggers": [{"constraint": "true", "group": "gpu-h100"}]},
            "af:autoscaler.triggers[0].group",
            "a worker group: cpu, gpu",
        ),
        ({"enabled": True, "image": "af-autoscaler:latest"}, "af:autoscaler.image", "never `latest`"),
    ],
)
def test_bad_autoscaler_config(autoscaler, path, allowed):
    only_problem(edit(_base_with_pool(), "autoscaler", autoscaler), path, allowed, HUB_SECRET)


def test_without_a_pool_the_autoscaler_is_simply_not_deployed():
    cfg = edit(hub_base(), "autoscaler", {"enabled": True})
    assert build_config(cfg, HUB_SECRET).autoscaler.enabled and not build_config(cfg, HUB_SECRET).condor.enabled
