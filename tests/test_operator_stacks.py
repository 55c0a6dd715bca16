"""An operator follows the README: a site, an experiment and a stack of their own next to the
shipped ones. Their files must not break the suite or the reference, and their stack must work."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from components.config.loader import PROJECT_ROOT

SITE = """\
# INFN-Cloud, Padova: the operator's own site.
site:
  name: infn-pd
  region: RegionOne
  externalNetwork: public
  image: ubuntu-24.04-server-cloudimg-amd64
  adminCidrs: ["192.84.143.0/24"]
  dnsName: af.pd.infn.it
  nodeCidr: 10.30.0.0/24
  flavors:
    large: {vcpus: 4, ramGib: 8}
    xlarge: {vcpus: 8, ramGib: 16}
    2xlarge: {vcpus: 16, ramGib: 32}
  quotas: {vcpus: 200, ramGib: 400, instances: 20, volumes: 10, volumeGib: 5000, floatingIps: 1}
hub:
  tls:
    acmeEmail: af-admins@pd.infn.it
"""
EXPERIMENT = """\
# LHCb: the operator's own experiment.
identity:
  issuer: https://lhcb-auth.cern.ch/
  clientId: lhcb-analysis-facility
  roles: {login: ["/lhcb"], admin: ["/lhcb/af-admins"], gpu: ["/lhcb"], batch: ["/lhcb"], cache: ["/lhcb"]}
hub:
  notebookImage: quay.io/jupyter/scipy-notebook:2025-03-17
cvmfs:
  repositories: ["lhcb.cern.ch", "lhcbdev.cern.ch", "sft.cern.ch"]
cache:
  enabled: true
  origin: xrootd.echo.stfc.ac.uk:1094
  exports: ["/lhcb"]
  upstream: {kind: bearer-token, clientId: lhcb-af-xcache, scopes: ["storage.read:/lhcb"]}
condor:
  enabled: true
"""
STACK = """\
config:
  af:profiles: [sites/infn-cloud-padova, experiments/lhcb]
  af:cluster:
    controlPlane: {count: 1, flavor: large}
    nodeGroups:
      cpu: {flavor: 2xlarge, count: 4, roles: [system, interactive, batch]}
      cache: {flavor: xlarge, count: 1, roles: [cache], volumeGib: 1000}
"""
AFFECTED = [
    "tests/test_reference.py",
    "tests/test_config.py",
    "tests/test_config_messages.py",
    "tests/test_condor.py::test_stacks_enable_the_pool_through_their_experiment_profile",
    "tests/test_program.py::test_the_shipped_stacks_are_there",
]


def _copy_with_operator_files(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(
        PROJECT_ROOT,
        repo,
        ignore=shutil.ignore_patterns(".venv", "build", "node_modules", ".git", ".pytest_cache", ".hypothesis"),
    )
    (repo / "stacks" / "sites" / "infn-cloud-padova.yaml").write_text(SITE)
    (repo / "stacks" / "experiments" / "lhcb.yaml").write_text(EXPERIMENT)
    (repo / "Pulumi.lhcb-padova.yaml").write_text(STACK)
    (repo / "Pulumi.scratch.yaml").write_text("")  # a stack the operator has not written yet
    return repo


def _run(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(repo)}  # the copy's code, not the installed one
    return subprocess.run(
        [sys.executable, *args], cwd=repo, env=env, capture_output=True, text=True, timeout=900, check=False
    )


def test_an_operators_site_experiment_and_stack_break_nothing(tmp_path):
    repo = _copy_with_operator_files(tmp_path)
    reference = _run(repo, "-m", "afctl.cli", "reference", "--check")
    assert reference.returncode == 0, reference.stderr
    tests = _run(repo, "-m", "pytest", "-q", "-p", "no:cacheprovider", *AFFECTED)
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert " passed" in tests.stdout.splitlines()[-1] and "failed" not in tests.stdout.splitlines()[-1]
    # Their stack works as the README says.
    validate = _run(repo, "-m", "afctl.cli", "validate", "lhcb-padova")
    assert validate.returncode == 0, validate.stderr
    assert validate.stdout.startswith("lhcb-padova: valid (openstack cluster at infn-pd; control plane x1")
    preview = _run(repo, "-m", "afctl.cli", "preview", "lhcb-padova")
    assert preview.returncode == 0, preview.stderr
    assert (repo / "build" / "lhcb-padova" / "plan.json").is_file()
    assert "policy: no violation" in preview.stdout
