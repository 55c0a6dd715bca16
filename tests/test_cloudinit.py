"""Rendered user-data: checked by cloud-init itself, and by what a node needs to join."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import SHIPPED_STACKS

from components.cloudinit import REDACTED, CaPair, NodeBootstrap, join_token, render_user_data
from components.config.cluster import K3s

CLOUD_INIT = shutil.which("cloud-init")


def _schema_check(path: Path) -> subprocess.CompletedProcess:
    # Never skipped: `make test` installs cloud-init; a machine without it fails here.
    assert CLOUD_INIT, "cloud-init is not installed: run `make test` (it installs the Debian package)"
    return subprocess.run(
        [CLOUD_INIT, "schema", "--config-file", str(path)], capture_output=True, text=True, check=False
    )


def _server(**overrides) -> NodeBootstrap:
    fields = dict(
        node_name="af-t-control-plane-0",
        k3s=K3s(),
        server_url="https://10.10.0.11:6443",
        token="K10abc::server:pw-very-secret",
        taints=["node-role.kubernetes.io/control-plane:NoSchedule"],
        server=True,
        cluster_init=True,
        node_ip="10.10.0.11",
        tls_sans=["192.0.2.7", "af.example.org"],
        cas={"server-ca": CaPair("CERT-server", "KEY-server-very-secret")},
        service_account_key="SA-KEY-very-secret",
    )
    fields.update(overrides)
    return NodeBootstrap(**fields)


def _agent(**overrides) -> NodeBootstrap:
    fields = dict(
        node_name="af-t-cpu-0",
        k3s=K3s(),
        server_url="https://10.10.0.11:6443",
        token="K10abc::server:pw-very-secret",
        labels={"af.infn.it/node-group": "cpu"},
        data_volume=True,
    )
    fields.update(overrides)
    return NodeBootstrap(**fields)


def _k3s_config(text: str) -> dict:
    doc = yaml.safe_load(text)
    (entry,) = [f for f in doc["write_files"] if f["path"] == "/etc/rancher/k3s/config.yaml"]
    return yaml.safe_load(entry["content"])


@pytest.mark.daemon
@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_rendered_user_data_passes_cloud_init_schema(shipped, stack, tmp_path):
    files = {k: v for k, v in shipped(stack).files.items() if "/cloud-init/" in k}
    if stack == "atlas-cnaf":
        assert files == {}, "Magnum bootstraps its own nodes"
        return
    assert files
    for key, text in files.items():
        path = tmp_path / key.replace("/", "_")
        path.write_text(text)
        done = _schema_check(path)
        assert done.returncode == 0 and "Valid" in done.stdout, f"{key}: {done.stdout}{done.stderr}"


@pytest.mark.daemon
def test_unredacted_user_data_passes_cloud_init_schema(tmp_path):
    for name, node in (("server", _server()), ("agent", _agent())):
        path = tmp_path / f"{name}.yaml"
        path.write_text(render_user_data(node))
        done = _schema_check(path)
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.daemon
def test_cloud_init_schema_check_can_fail(tmp_path):
    # Proves the check above is not vacuous: a wrongly typed module config is refused.
    path = tmp_path / "bad.yaml"
    path.write_text("#cloud-config\nruncmd: 42\nwrite_files: {path: /x}\n")
    assert _schema_check(path).returncode != 0


def test_first_server_carries_cas_and_initialises_the_cluster():
    text = render_user_data(_server())
    config = _k3s_config(text)
    assert config["cluster-init"] is True and "server" not in config
    assert config["tls-san"] == ["192.0.2.7", "af.example.org"]
    paths = {f["path"]: f for f in yaml.safe_load(text)["write_files"]}
    key = paths["/var/lib/rancher/k3s/server/tls/server-ca.key"]
    assert key["content"] == "KEY-server-very-secret" and key["permissions"] == "0600"
    assert paths["/var/lib/rancher/k3s/server/tls/service.key"]["content"] == "SA-KEY-very-secret"


def test_joining_server_gets_no_ca_keys_and_points_at_the_first():
    text = render_user_data(_server(cluster_init=False, cas={}, service_account_key=""))
    assert _k3s_config(text)["server"] == "https://10.10.0.11:6443"
    assert "/server/tls/" not in text


def test_agent_joins_with_labels_taints_and_its_volume():
    text = render_user_data(_agent(taints=["nvidia.com/gpu=present:NoSchedule"]))
    config = _k3s_config(text)
    assert config["server"] == "https://10.10.0.11:6443"
    assert config["node-label"] == ["af.infn.it/node-group=cpu"]
    assert config["node-taint"] == ["nvidia.com/gpu=present:NoSchedule"]
    doc = yaml.safe_load(text)
    assert doc["mounts"][0][:2] == ["LABEL=af-data", "/var/lib/af-data"]
    assert "cluster-init" not in config and "/server/tls/" not in text


def test_k3s_binary_is_verified_before_it_runs():
    k3s = K3s()
    text = render_user_data(_agent())
    install = yaml.safe_load(text)["runcmd"][0][2]
    assert f"echo '{k3s.sha256}  /usr/local/bin/k3s' | sha256sum -c -" in install
    assert install.index("sha256sum -c") < install.index("chmod 0755")
    assert "v1.36.2%2Bk3s1" in install


def test_redacted_copy_hides_every_secret_and_nothing_else():
    node = _server()
    redacted = render_user_data(node.redacted())
    for secret in ("pw-very-secret", "KEY-server-very-secret", "SA-KEY-very-secret"):
        assert secret in render_user_data(node)
        assert secret not in redacted
    assert redacted.count(REDACTED) == 3
    assert "CERT-server" in redacted


def test_join_token_pins_the_server_ca():
    token = join_token("PEM", "pw")
    assert token.startswith("K10") and token.endswith("::server:pw")
    assert token != join_token("OTHER", "pw")
