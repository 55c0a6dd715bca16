"""afctl as a new operator meets it: help without arguments, a version, every argument explained,
exit codes in the help, `--project-dir` meaning the whole project, the quota table on validate,
one way of counting resources, and no traceback: not for a closed pipe, a missing Graphviz or
a broken stack file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from afctl import cli, graph
from afctl.stackfile import SHIPPED_STACKS
from components.config.loader import PROJECT_ROOT
from components.infra.quota import QUOTAS

AFCTL = [sys.executable, "-m", "afctl.cli"]


def run(args: list[str], cwd: Path = PROJECT_ROOT, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AFCTL, *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False, **kw)


def test_bare_afctl_prints_its_help_with_the_exit_codes():
    done = run([])
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.startswith("usage: afctl") and "preview" in done.stdout and "graph" in done.stdout
    assert "exit codes:" in done.stdout and "2  a config error" in done.stdout


def test_version_and_the_stack_argument_are_explained(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0 and capsys.readouterr().out.startswith("afctl 0.")
    for command in ("preview", "validate", "policy", "graph"):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "STACK a stack: the name in its Pulumi.<STACK>.yaml" in text, command
        joined = "".join(text.split())  # argparse wraps lines at hyphens
        assert all(s in joined for s in SHIPPED_STACKS) and "exit codes:" in text


@pytest.mark.parametrize(
    "args",
    [["schema"], ["policy", "--list"], ["policy", "--list", "--json"], ["validate", "dev"], ["--help"]],
    ids=lambda a: " ".join(a),
)
def test_a_reader_that_stops_early_gets_no_traceback(args):
    """`afctl schema | head -1`: the pipe closes while afctl still writes."""
    proc = subprocess.Popen(
        [*AFCTL, *args], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    code = proc.wait(timeout=120)
    assert first and "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err, err
    assert code == 0, err


def test_the_shell_pipe_of_the_issue_is_quiet():
    done = subprocess.run(
        f"set -o pipefail; {' '.join(AFCTL)} schema | head -1",
        shell=True,
        executable="/bin/bash",
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "{", "")


def test_graph_without_graphviz_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(graph.shutil, "which", lambda name: None)
    code = cli.main(["graph", "dev", "--out", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == cli.EXIT_TOOL == 3
    (line,) = [x for x in captured.err.splitlines() if x.startswith("afctl graph:")]
    assert "apt-get install graphviz" in line and "Traceback" not in captured.err
    assert (tmp_path / "graph.dot").read_text().startswith('digraph "af-dev"')  # what needs no Graphviz
    assert not (tmp_path / "graph.png").exists()


def test_validate_shows_the_quota_table_and_json_keys_are_the_configs(capsys):
    assert cli.main(["validate", "cms-bari"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("cms-bari: valid (openstack cluster at infn-ba; control plane x3, cache x1, cpu x10")
    assert "quota" in out and all(q.column in out for q in QUOTAS)
    assert cli.main(["validate", "cms-bari", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["quota"]
    assert [r["quota"] for r in rows] == [q.key for q in QUOTAS] and "ramGib" in [r["quota"] for r in rows]


def test_only_commands_that_run_the_program_mention_the_placeholder(tmp_path, capsys):
    for args, noted in (
        (["validate", "dev"], False),
        (["preview", "dev", "--out", str(tmp_path / "dev")], True),
        (["policy", "dev", "--plan", str(tmp_path / "dev" / "plan.json")], False),
    ):
        assert cli.main(args) == 0, args
        err = capsys.readouterr().err
        assert ("note: af:identity.clientSecret is not set" in err) == noted, (args, err)


def _project(tmp_path: Path) -> Path:
    """A project directory of an operator's own: stacks and profiles, none of them shipped."""
    project = tmp_path / "project"
    (project / "stacks" / "sites").mkdir(parents=True)
    (project / "stacks" / "experiments").mkdir()
    site = (PROJECT_ROOT / "stacks" / "sites" / "infn-cloud-bari.yaml").read_text()
    (project / "stacks" / "sites" / "my-site.yaml").write_text(site.replace("af.ba.infn.it", "af.my-site.example.org"))
    generic = (PROJECT_ROOT / "stacks" / "experiments" / "generic.yaml").read_text()
    (project / "stacks" / "experiments" / "mine.yaml").write_text(generic)
    (project / "Pulumi.mine.yaml").write_text(
        "config:\n"
        "  af:profiles: [sites/my-site, experiments/mine]\n"
        "  af:cluster:\n"
        "    controlPlane: {count: 1, flavor: large}\n"
        "    nodeGroups: {cpu: {flavor: xlarge, count: 2, roles: [system, interactive, batch]}}\n"
    )
    return project


def test_project_dir_reads_its_own_profiles_and_writes_build_under_it(tmp_path):
    project = _project(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = run(["--project-dir", str(project), "preview", "mine"], cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    plan = json.loads((project / "build" / "mine" / "plan.json").read_text())
    assert not (elsewhere / "build").exists()
    outputs = plan["outputs"]
    assert outputs["dnsName"] == "af.my-site.example.org"  # the project's own site profile
    assert run(["--project-dir", str(project), "policy", "mine"], cwd=elsewhere).returncode == 0
    # A profile only the project has is unknown to this program's own stacks/.
    unknown = run(["validate", "mine"], cwd=project)
    assert unknown.returncode == 2 and "stack" in unknown.stderr


def test_every_control_plane_node_has_its_own_user_data_file(shipped):
    files = [f for f in shipped("cms-bari").files if f.startswith("cluster/cloud-init/control-plane-")]
    assert sorted(files) == [f"cluster/cloud-init/control-plane-{i}.yaml" for i in range(3)]
    texts = [shipped("cms-bari").files[f] for f in sorted(files)]
    assert "control-plane-2" in texts[2] and "control-plane-2" not in texts[1]


@pytest.mark.parametrize(
    "text",
    ["", "config:\n", "config: []\n", "foo: 1\n", "config:\n  cluster: {}\n", "config:\n  af:site: [\n", "- a\n"],
    ids=["empty", "config-null", "config-list", "no-config", "no-prefix", "bad-yaml", "list"],
)
@pytest.mark.parametrize("command", ["validate", "preview", "policy", "graph", "diff"])
def test_no_command_tracebacks_on_a_broken_stack_file(tmp_path, capsys, text, command):
    """In-process: an exception escaping `main` would be the traceback; the subprocess tests above
    show the same for the installed entry point."""
    (tmp_path / "Pulumi.s.yaml").write_text(text)
    args = [command, "s", *(["s"] if command == "diff" else [])]
    assert cli.main(["--project-dir", str(tmp_path), *args]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and ": got " in lines[0] and "; allowed: " in lines[0], lines
    if text in ("", "foo: 1\n", "config:\n  cluster: {}\n"):
        assert "af:cluster: got nothing" not in lines[0]


def test_reference_ignores_an_operators_empty_stack_file(tmp_path):
    shutil.copytree(
        PROJECT_ROOT, tmp_path / "repo", ignore=shutil.ignore_patterns(".venv", "build", "node_modules", ".git*")
    )
    (tmp_path / "repo" / "Pulumi.empty.yaml").write_text("")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "repo")}
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from afctl.cli import main; sys.exit(main(['reference', '--check']))"],
        cwd=tmp_path / "repo",
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["preview", "no-such-stack"], 2, 'stack: got "no-such-stack"'),
        (["policy"], 2, "a STACK to judge, or --list"),
        (["policy", "dev", "--plan", "{tmp}/not-a-plan"], 2, "plan: got"),
        (["preview", "dev", "--out", "{tmp}/not-a-plan/x"], 2, "a directory afctl can create and write"),
        (["graph", "dev", "--out", "{tmp}/not-a-plan"], 2, "a directory afctl can create and write"),
        (["diff", "dev"], 2, "the following arguments are required"),
        (["diff", "no-such-stack", "dev"], 2, 'before: got "no-such-stack"'),
        (["--project-dir", "{tmp}/nowhere", "validate", "dev"], 2, "(none)"),
        (["schema", "--json"], 2, "unrecognized arguments"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_odd_arguments_get_one_line_not_a_traceback(tmp_path, args, code, says):
    (tmp_path / "not-a-plan").write_text("plan? no")
    done = run([a.replace("{tmp}", str(tmp_path)) for a in args])
    assert done.returncode == code and "Traceback" not in done.stderr, done.stderr
    assert says in done.stderr and done.stdout == ""
