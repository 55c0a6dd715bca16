"""The plan a preview writes: deterministic, local to what changed, and free of secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SHIPPED_STACKS, preview_values, stack_values

from afctl import plan
from afctl.cli import main
from afctl.mocks import _computed
from afctl.stackfile import PLACEHOLDER


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _by_urn(document: dict) -> dict[str, dict]:
    return {r["urn"]: r for r in document["resources"]}


def test_preview_is_byte_identical_across_runs(tmp_path, capsys):
    assert main(["preview", "cms-bari", "--out", str(tmp_path / "a")]) == 0
    assert main(["preview", "cms-bari", "--out", str(tmp_path / "b")]) == 0
    first, second = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert first == second
    assert "plan.json" in first and any(k.startswith("files/cluster/cloud-init/") for k in first)
    out = capsys.readouterr().out
    assert "af-cluster-control-plane-0  (openstack:compute/instance:Instance)" in out
    assert "vCPUs" in out and "floating IPs" in out


def test_plan_document_has_the_contract_shape(shipped):
    document = plan.plan_document(shipped("dev"))
    assert set(document) == {"project", "stack", "resources", "outputs"}
    assert document["project"] == "analysis-facility" and document["stack"] == "dev"
    keys = {"urn", "type", "name", "parent", "custom", "provider", "dependencies", "inputs"}
    assert all(set(r) == keys for r in document["resources"])
    urns = [r["urn"] for r in document["resources"]]
    assert urns == sorted(urns) and len(set(urns)) == len(urns)
    known = set(urns)
    for resource in document["resources"]:
        assert resource["parent"] in known | {""}
        assert set(resource["dependencies"]) <= known


@pytest.mark.parametrize(("group", "delta"), [("cpu", +1), ("cpu", -3), ("gpu-a100", +1)])
def test_changing_one_group_count_touches_only_that_group(group, delta):
    values, secret = stack_values("cms-bari")
    before = _by_urn(plan.plan_document(preview_values("cms-bari", values, secret)))
    old = values["cluster"]["nodeGroups"][group]["count"]
    values["cluster"]["nodeGroups"][group]["count"] = old + delta
    if group == "gpu-a100":
        values.setdefault("site", {})["quotas"] = {"gpus": 8}
    after = _by_urn(plan.plan_document(preview_values("cms-bari", values, secret)))

    added, removed = set(after) - set(before), set(before) - set(after)
    changed = {before[u]["name"] for u in set(before) & set(after) if before[u] != after[u]}
    # The autoscaler's bounds follow the group's nodes: its settings, and the controller they roll.
    assert changed == {"af-autoscaler-settings", "af-autoscaler-controller"}
    diff = added | removed
    assert diff, "the count change must show in the plan"
    affected = {after.get(u, before.get(u))["name"] for u in diff}
    indices = range(old, old + delta) if delta > 0 else range(old + delta, old)
    expected = set()
    for index in indices:
        vm = f"af-cluster-{group}-{index}"
        expected |= {vm, f"{vm}-port"}
    assert affected == expected


def _mock_secrets(result) -> set[str]:
    """Every secret value the mocks handed to the program (keys, passwords, random bytes)."""
    secrets = set()
    for r in result.registrations:
        computed = _computed(r.type, r.name, r.inputs)
        secrets |= {
            v for k, v in computed.items() if k in {"privateKeyPem", "privateKeyOpenssh", "result", "hex", "base64"}
        }
    assert secrets
    return secrets


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_no_secret_in_plan_or_files(shipped, stack):
    result = shipped(stack)
    texts = [plan.plan_json(result), *result.files.values()]
    for secret in _mock_secrets(result):
        assert not any(secret in text for text in texts)
    assert not any(PLACEHOLDER in text for text in texts)


def _existing_stack(directory: Path, kubeconfig: str) -> None:
    (directory / "Pulumi.ext.yaml").write_text(
        "config:\n"
        "  af:profiles: [sites/infn-cloud-bari, experiments/generic]\n"
        "  af:cluster:\n"
        "    mode: existing\n"
        "    controlPlane: {flavor: large}\n"
        "    nodeGroups: {cpu: {flavor: xlarge, count: 2}}\n"
        f"    existing: {{kubeconfig: {kubeconfig}}}\n"
    )


def test_secure_config_values_stay_secret(tmp_path):
    _existing_stack(tmp_path, "{secure: 'v1:AAAABBBBCCCC'}")
    out = tmp_path / "plan"
    assert main(["--project-dir", str(tmp_path), "preview", "ext", "--out", str(out)]) == 0
    text = (out / "plan.json").read_text()
    assert PLACEHOLDER not in text and "AAAABBBB" not in text
    assert json.loads(text)["outputs"]["kubeconfig"] == "[secret]"


def test_plaintext_secret_in_stack_file_is_refused(tmp_path, capsys):
    _existing_stack(tmp_path, "'apiVersion: v1'")
    assert main(["--project-dir", str(tmp_path), "validate", "ext"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "af:cluster.existing.kubeconfig: got plaintext; allowed: a Pulumi secret: "
        "pulumi config set --secret --path 'af:cluster.existing.kubeconfig' …"
    ]
