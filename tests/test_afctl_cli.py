"""afctl's command line: `afctl diff`, `--json` for CI (one document on stdout, humans' lines on
stderr), progress on stderr."""

from __future__ import annotations

import copy
import io
import json
import re
from pathlib import Path
from types import SimpleNamespace

from conftest import secret_leaves

from afctl import plan, progress
from afctl.cli import main
from policy.rules import RULES

_PROGRESS = re.compile(r"^dev: registered (\d+) resources(…| \(and \d+ components\) in \d+\.\ds)$")


def _stack(directory: Path, name: str, extra: str = "") -> None:
    (directory / f"Pulumi.{name}.yaml").write_text(
        "config:\n"
        "  af:profiles: [sites/infn-cloud-bari, experiments/generic]\n"
        "  af:cluster:\n"
        "    controlPlane: {count: 1, flavor: large}\n"
        "    nodeGroups: {cpu: {flavor: xlarge, count: 2, roles: [system, interactive, batch]}}\n" + extra
    )


def test_preview_json_carries_the_plan_facts_and_progress_goes_to_stderr(tmp_path, capsys):
    out = tmp_path / "plan"
    assert main(["preview", "dev", "--out", str(out), "--json", "--progress"]) == 0
    captured = capsys.readouterr()
    document = json.loads(captured.out)  # nothing but the document on stdout
    plan = json.loads((out / "plan.json").read_text())
    custom = [r for r in plan["resources"] if r["custom"]]
    assert document["command"] == "preview" and document["stack"] == "dev" and document["ok"] is True
    assert document["resources"]["custom"] == len(custom)
    assert document["resources"]["components"] == len(plan["resources"]) - len(custom)
    assert document["resources"]["byType"]["openstack:compute/instance:Instance"] == 3
    assert sum(document["resources"]["byType"].values()) == len(custom)
    assert document["files"]["plan"] == str(out / "plan.json")
    assert all((out / f).is_file() for f in document["files"]["rendered"])
    assert document["files"]["rendered"] and (out / "policy-config.json").is_file()
    vcpus = next(row for row in document["quota"] if row["quota"] == "vcpus")
    assert vcpus["label"] == "vCPUs" and vcpus["planned"] + vcpus["free"] == vcpus["allowed"]
    # Quota keys as the config spells them (af:site.quotas.ramGib).
    assert [row["quota"] for row in document["quota"]] == [
        "vcpus",
        "ramGib",
        "instances",
        "volumes",
        "volumeGib",
        "floatingIps",
        "gpus",
    ]
    assert document["policy"] == {"rules": len(RULES), "mandatory": 0, "violations": []}
    assert document["placeholders"] == ["af:identity.clientSecret"]
    # Progress: counted lines on stderr, the last one with the total and the time taken.
    counted = [m for m in map(_PROGRESS.match, captured.err.splitlines()) if m]
    assert counted and counted[-1].group(2).startswith(" (and ")
    # Counted as the summary counts: resources, not the components that group them.
    assert int(counted[-1].group(1)) == len(custom) == document["resources"]["custom"]
    components = len(plan["resources"]) - len(custom)
    assert f"(and {components} components)" in captured.err
    assert "registered" not in captured.out

    assert main(["preview", "dev", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "registered" not in captured.err + captured.out  # not a terminal, no --progress: quiet
    assert "af-cluster-control-plane-0  (openstack:compute/instance:Instance)" in captured.out


def test_preview_json_reports_a_mandatory_violation_and_exits_1(tmp_path, capsys):
    _stack(tmp_path, "prod", "  af:policy: {production: true}\n")
    assert main(["--project-dir", str(tmp_path), "preview", "prod", "--out", str(tmp_path / "p"), "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["ok"] is False and document["policy"]["mandatory"] == 1
    (violation,) = [v for v in document["policy"]["violations"] if v["rule"] == "production-control-plane"]
    assert violation["level"] == "mandatory"
    assert violation["urn"] == "urn:pulumi:prod::analysis-facility::pulumi:pulumi:Stack::analysis-facility-prod"
    assert "1 control-plane instance(s)" in violation["message"]


def test_config_errors_in_json_mode(tmp_path, capsys):
    _stack(tmp_path, "bad", "  af:cache: {ram: lots}\n  af:hub: {chartVersion: latest}\n")
    for command in ("validate", "preview", "diff"):
        args = [command, "bad", *(["bad"] if command == "diff" else []), "--json"]
        assert main(["--project-dir", str(tmp_path), *args]) == 2, command
        captured = capsys.readouterr()
        document = json.loads(captured.out)
        assert document["command"] == command and document["ok"] is False and document["error"] == "config"
        paths = [p["path"] for p in document["problems"]]
        assert "af:cache.ram" in paths and "af:hub.chartVersion" in paths
        lines = [line for line in captured.err.splitlines() if not line.startswith("note:")]
        assert lines == [f"{p['path']}: got {p['value']}; allowed: {p['allowed']}" for p in document["problems"]]
        ram = next(p for p in document["problems"] if p["path"] == "af:cache.ram")
        assert ram["value"] == '"lots"' and ram["allowed"]


def test_validate_and_policy_json(tmp_path, capsys):
    assert main(["validate", "cms-bari", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["cluster"]["nodeGroups"] == {"cache": 1, "cpu": 10, "gpu-a100": 2, "system": 2}
    assert document["cluster"]["mode"] == "openstack" and document["stack"] == "cms-bari"

    assert main(["policy", "--list", "--json"]) == 0
    rules = json.loads(capsys.readouterr().out)["rules"]
    assert [r["name"] for r in rules] == [r.name for r in RULES]

    assert main(["policy", "dev", "--plan", str(tmp_path / "none.json"), "--json"]) == 2
    (problem,) = json.loads(capsys.readouterr().out)["problems"]
    assert problem == {
        "path": "plan",
        "value": f"no file at {tmp_path / 'none.json'}",
        "allowed": "a plan written by afctl preview dev",
    }


def test_progress_counts_every_n_or_every_interval():
    stream, now = io.StringIO(), [0.0]
    meter = progress.Progress("s", stream, every=3, interval=10.0, clock=lambda: now[0])
    resource, component = SimpleNamespace(custom=True), SimpleNamespace(custom=False)
    for _ in range(7):
        meter(resource)
        meter(component)  # components group resources: not counted as resources
    now[0] = 11.0
    meter(resource)  # the interval passed: a line although 8 is no multiple of 3
    meter.done()
    assert stream.getvalue().splitlines() == [
        "s: registered 3 resources…",
        "s: registered 6 resources…",
        "s: registered 8 resources…",
        "s: registered 8 resources (and 7 components) in 11.0s",
    ]
    assert progress.wanted(None, io.StringIO()) is False
    assert progress.wanted(True, io.StringIO()) is True

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert progress.wanted(None, Terminal()) is True and progress.wanted(False, Terminal()) is False


def _plans(shipped, tmp_path: Path) -> tuple[Path, Path, str]:
    """cms-bari's plan, and the same with a newer hub chart, as files."""
    document = plan.plan_document(shipped("cms-bari"))
    newer = copy.deepcopy(document)
    (chart,) = [r for r in newer["resources"] if r["name"] == "af-hub-chart"]
    chart["inputs"]["version"] = "4.3.0"
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps(document))
    new.write_text(json.dumps(newer))
    return old, new, chart["urn"]


def test_diff_of_two_plan_files_human_and_json(shipped, tmp_path, capsys):
    old, new, urn = _plans(shipped, tmp_path)
    resources = json.loads(old.read_text())["resources"]
    custom = [r for r in resources if r["custom"]]
    unchanged, secrets = len(custom) - 1, secret_leaves(custom)
    assert main(["diff", str(old), str(new)]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[:7] == [
        f"diff {old} -> {new} (resources matched by URN; components not counted)",
        "  +  0 to create",
        "  +- 0 to replace",
        "  ~  1 to update",
        "  -  0 to delete",
        f"     {unchanged} unchanged",
        "",
    ]
    assert f'~  update   {urn}\n      ~ version: "4.2.0" => "4.3.0"\n' in text
    # A plan file keeps no digest of its secrets: the diff says how many it could not compare.
    assert f"note: {secrets} secret value(s) could not be compared" in text

    assert main(["diff", str(old), str(new), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["summary"] == {"create": 0, "replace": 0, "update": 1, "delete": 0, "unchanged": unchanged}
    assert document["before"] == {"label": str(old), "plan": str(old), "stack": "cms-bari"}
    assert document["match"] == "urn" and document["uncomparedSecrets"] == secrets
    assert document["resources"] == [
        {
            "kind": "update",
            "urn": urn,
            "type": "kubernetes:helm.sh/v3:Release",
            "name": "af-hub-chart",
            "replaceReasons": [],
            "changes": [{"path": "version", "op": "update", "before": "4.2.0", "after": "4.3.0", "replaces": False}],
        }
    ]


def test_diff_reads_stacks_and_plan_files_and_refuses_anything_else(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["diff", "dev", "dev", "--save"]) == 0  # one preview serves both ends
    saved = tmp_path / "build" / "dev" / "plan.json"
    assert saved.is_file()
    every = len([r for r in json.loads(saved.read_text())["resources"] if r["custom"]])
    out = capsys.readouterr().out
    assert f"     {every} unchanged" in out and "components not counted" in out
    assert main(["diff", "build/dev/plan.json", "dev", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["summary"]["unchanged"] == every and document["resources"] == []
    assert document["after"] == {"label": "dev", "stack": "dev"}

    assert main(["diff", "dev", str(tmp_path / "missing.json"), "--json"]) == 2
    captured = capsys.readouterr()
    problem = json.loads(captured.out)["problems"][0]
    assert problem["path"] == "after" and problem["allowed"].startswith("a plan.json file or a stack (")
    assert captured.err.startswith('after: got "/') and "; allowed: a plan.json file or a stack (" in captured.err
    assert "note:" not in captured.err  # refused before any stack is previewed
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "other.json").write_text('{"resources": []}')
    assert main(["diff", "broken.json", "other.json"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        'after: got "other.json"; allowed: a plan.json written by afctl preview',
        'before: got "broken.json"; allowed: a plan.json written by afctl preview',
    ]
    assert main(["diff", "nope", "nada"]) == 2
    assert [line.split(":")[0] for line in capsys.readouterr().err.splitlines()] == ["after", "before"]


def test_an_http_issuer_stops_preview_with_one_config_line_not_a_traceback(tmp_path, capsys):
    """With a cache the issuer becomes the cache's token issuer too: an http:// one used to crash
    the preview inside the cache's renderer (exit 1, the policy's code, and a traceback)."""
    (tmp_path / "Pulumi.plain.yaml").write_text(
        "config:\n"
        "  af:profiles: [sites/infn-cloud-bari, experiments/cms]\n"
        "  af:identity:\n"
        "    issuer: http://cms-auth.cern.ch/\n"
        "    clientId: cms-analysis-facility\n"
        "    roles: {login: [/cms], admin: [/cms/af-admins], batch: [/cms], cache: [/cms]}\n"
        "  af:cluster:\n"
        "    controlPlane: {count: 1, flavor: large}\n"
        "    nodeGroups:\n"
        "      cpu: {flavor: xlarge, count: 2, roles: [system, interactive, batch]}\n"
        "      cache: {flavor: xlarge, count: 1, roles: [cache], volumeGib: 2000}\n"
    )
    for args in (["validate", "plain"], ["preview", "plain", "--out", str(tmp_path / "p")]):
        assert main(["--project-dir", str(tmp_path), *args]) == 2, args
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if not line.startswith("note:")]
        # The section holds the IAM client secret, but the issuer is no secret: it is shown.
        assert len(lines) == 1 and "Traceback" not in err, err
        assert lines[0] == (
            'af:identity.issuer: got "http://cms-auth.cern.ch/"; '
            "allowed: an https:// URL such as https://iam.example.org/ (no other scheme)"
        )
