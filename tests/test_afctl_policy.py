"""`afctl policy` and `afctl preview` run the policy pack: output, exit codes, config errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from afctl import plan
from afctl.cli import main
from policy.rules import RULE_NAMES, RULES


def _write_plan(shipped, path: Path, stack: str, change=None) -> Path:
    document = copy.deepcopy(plan.plan_document(shipped(stack)))
    if change is not None:
        change({r["name"]: r for r in document["resources"]})
    path.write_text(json.dumps(document))
    return path


def test_afctl_policy_exit_codes(shipped, tmp_path, capsys):
    clean = _write_plan(shipped, tmp_path / "clean.json", "dev")
    assert main(["policy", "dev", "--plan", str(clean)]) == 0
    assert capsys.readouterr().out.strip() == f"policy: no violation ({len(RULES)} rules)"

    def open_ssh(resources: dict[str, Any]) -> None:
        resources["af-network-admin-22-212-189-205-0-24"]["inputs"]["remoteIpPrefix"] = "0.0.0.0/0"

    dirty = _write_plan(shipped, tmp_path / "dirty.json", "dev", open_ssh)
    assert main(["policy", "dev", "--plan", str(dirty)]) == 1
    out = capsys.readouterr().out
    urn = "urn:pulumi:dev::analysis-facility::af:infra:Network$openstack:networking/secGroupRule:SecGroupRule"
    assert f"MANDATORY  admin-ports-from-admin-cidrs  {urn}::af-network-admin-22-212-189-205-0-24" in out
    assert f"MANDATORY  no-world-open-ports  {urn}::af-network-admin-22-212-189-205-0-24" in out
    assert out.strip().endswith(f"policy: 2 violation(s), 2 mandatory ({len(RULES)} rules)")

    assert main(["policy", "dev", "--plan", str(tmp_path / "missing.json")]) == 2
    assert "allowed: a plan written by afctl preview dev" in capsys.readouterr().err


def test_afctl_policy_lists_the_rules(capsys):
    assert main(["policy", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(RULE_NAMES)
    assert "disruption-budgets                 advisory" in "\n".join(lines)


def _stack_file(directory: Path, name: str, policy: str) -> None:
    (directory / f"Pulumi.{name}.yaml").write_text(
        "config:\n"
        "  af:profiles: [sites/infn-cloud-bari, experiments/generic]\n"
        "  af:cluster:\n"
        "    controlPlane: {count: 1, flavor: large}\n"
        "    nodeGroups: {cpu: {flavor: xlarge, count: 2, roles: [system, interactive, batch]}}\n"
        f"  af:policy: {policy}\n"
    )


def test_afctl_preview_writes_the_plan_then_fails_on_a_mandatory_violation(tmp_path, capsys):
    _stack_file(tmp_path, "prod", "{production: true}")
    out = tmp_path / "plan"
    assert main(["--project-dir", str(tmp_path), "preview", "prod", "--out", str(out)]) == 1
    assert (out / "plan.json").is_file()
    text = capsys.readouterr().out
    assert "MANDATORY  production-control-plane  urn:pulumi:prod::analysis-facility::pulumi:pulumi:Stack" in text
    assert "a production stack has 1 control-plane instance(s)" in text
    config = json.loads((out / "policy-config.json").read_text())
    assert config["production-control-plane"] == {"enforcementLevel": "mandatory", "production": True}


def test_afctl_preview_passes_when_the_stack_downgrades_the_rule(tmp_path, capsys):
    _stack_file(tmp_path, "prod", "{production: true, enforcement: {production-control-plane: advisory}}")
    assert main(["--project-dir", str(tmp_path), "preview", "prod", "--out", str(tmp_path / "plan")]) == 0
    assert "ADVISORY   production-control-plane" in capsys.readouterr().out


def test_afctl_validate_refuses_an_unknown_rule(tmp_path, capsys):
    _stack_file(tmp_path, "typo", "{enforcement: {pinned-chart: advisory}}")
    assert main(["--project-dir", str(tmp_path), "validate", "typo"]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith('af:policy.enforcement.pinned-chart: got "pinned-chart"')
