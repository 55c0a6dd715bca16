"""Rendered user-data: checked by cloud-init itself, and by what a node needs to join."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import SHIPPED_STACKS

from components.infra import gpunode
from components.infra.cloudinit import REDACTED, CaPair, NodeBootstrap, join_token, render_user_data
from components.infra.config import GpuSpec, K3s

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


# --- GPU nodes --------------------------------------------------------------------------------

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
GPU_TAINT = "nvidia.com/gpu=present:NoSchedule"


def _gpu_agent(**gpu: object) -> NodeBootstrap:
    spec = GpuSpec.model_validate({"count": 2, "model": "a100", **gpu})
    return _agent(node_name="af-t-gpu-0", taints=[GPU_TAINT], gpu=spec)


GPU_AGENTS = {
    "install": _gpu_agent(),
    "preinstalled": _gpu_agent(driver="preinstalled"),
    "time-slicing": _gpu_agent(timeSlicing={"replicas": 4}),
    "mig": _gpu_agent(driver="preinstalled", mig={"profile": "3g.40gb", "instances": 2}),
}


def _files(text: str) -> dict[str, str]:
    return {f["path"]: f["content"] for f in yaml.safe_load(text)["write_files"]}


@pytest.mark.daemon
@pytest.mark.parametrize("kind", sorted(GPU_AGENTS))
def test_gpu_user_data_passes_cloud_init_schema(kind, tmp_path):
    path = tmp_path / f"{kind}.yaml"
    path.write_text(render_user_data(GPU_AGENTS[kind]))
    done = _schema_check(path)
    assert done.returncode == 0 and "Valid" in done.stdout, done.stdout + done.stderr


def test_gpu_nodes_run_containers_through_the_nvidia_runtime():
    assert _k3s_config(render_user_data(GPU_AGENTS["install"]))["default-runtime"] == "nvidia"
    assert "default-runtime" not in _k3s_config(render_user_data(_agent()))
    assert "nvidia" not in render_user_data(_agent()) and "nvidia" not in render_user_data(_server())


def test_driver_and_toolkit_are_installed_pinned_before_k3s():
    text = render_user_data(GPU_AGENTS["install"])
    doc = yaml.safe_load(text)
    setup = _files(text)[gpunode.SETUP_PATH]
    assert next(f for f in doc["write_files"] if f["path"] == gpunode.SETUP_PATH)["permissions"] == "0755"
    # First boot: the script, then k3s is installed and started.
    assert doc["runcmd"][0] == [gpunode.SETUP_PATH] and "k3s" in doc["runcmd"][1][2]
    assert setup.startswith("#!/bin/sh\n") and "\nset -eu\n" in setup
    install = next(line for line in setup.splitlines() if line.startswith("apt-get install"))
    assert shlex.split(install)[3:] == [
        "linux-headers-$(uname -r)",
        "nvidia-headless-580-server",
        "nvidia-utils-580-server",
        "nvidia-container-toolkit=1.17.8-1",
        "nvidia-container-toolkit-base=1.17.8-1",
        "libnvidia-container-tools=1.17.8-1",
        "libnvidia-container1=1.17.8-1",
    ]
    # The repository's key is checked before apt trusts it, and only that key is trusted.
    check = setup.index(f'if [ "$fingerprint" != {gpunode.TOOLKIT_KEY_FINGERPRINT} ]')
    assert check < setup.index(f"--dearmor -o {gpunode.TOOLKIT_KEYRING}") < setup.index("apt-get update")
    assert f"deb [signed-by={gpunode.TOOLKIT_KEYRING}] https://nvidia.github.io/" in setup
    assert setup.index("apt-get install") < setup.index("modprobe nvidia") < setup.index("nvidia-smi -L")
    assert "gnupg" in doc["packages"]


def test_a_gpu_ready_image_is_checked_not_installed():
    setup = _files(render_user_data(GPU_AGENTS["preinstalled"]))[gpunode.SETUP_PATH]
    assert "apt-get" not in setup and "curl" not in setup
    assert setup.splitlines()[-3:] == [
        "modprobe nvidia",
        "command -v nvidia-container-runtime >/dev/null",
        "/usr/bin/nvidia-smi -L",
    ]


def test_agent_joins_only_with_a_working_driver_and_runtime():
    unit = _files(render_user_data(GPU_AGENTS["preinstalled"]))["/etc/systemd/system/k3s-agent.service"]
    assert "ExecStartPre=/usr/bin/nvidia-smi -L\n" in unit
    assert "ExecStartPre=/bin/sh -c 'command -v nvidia-container-runtime'\n" in unit
    assert "ExecStartPre" not in _files(render_user_data(_agent()))["/etc/systemd/system/k3s-agent.service"]


def test_mig_instances_are_created_at_every_boot_before_the_agent():
    text = render_user_data(GPU_AGENTS["mig"])
    unit = _files(text)[f"/etc/systemd/system/{gpunode.MIG_UNIT}"]
    assert "ExecStart=/usr/bin/nvidia-smi -mig 1\n" in unit
    assert "ExecStart=/usr/bin/nvidia-smi mig -cgi 3g.40gb,3g.40gb -C\n" in unit
    assert "Before=k3s-agent.service\n" in unit and "RequiredBy=k3s-agent.service\n" in unit
    assert "Type=oneshot\n" in unit and "RemainAfterExit=yes\n" in unit
    runcmd = yaml.safe_load(text)["runcmd"]
    enable_mig = runcmd.index(["systemctl", "enable", "--now", gpunode.MIG_UNIT])
    assert (
        runcmd.index([gpunode.SETUP_PATH])
        < enable_mig
        < runcmd.index(["systemctl", "enable", "--now", "k3s-agent.service"])
    )
    for kind in ("install", "time-slicing"):
        assert gpunode.MIG_UNIT not in render_user_data(GPU_AGENTS[kind])


@pytest.mark.daemon
@pytest.mark.parametrize("kind", sorted(GPU_AGENTS))
def test_gpu_setup_script_is_valid_shell(kind, tmp_path):
    path = tmp_path / "af-gpu-setup"
    path.write_text(_files(render_user_data(GPU_AGENTS[kind]))[gpunode.SETUP_PATH])
    done = subprocess.run(["dash", "-n", str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def _gpg(home: Path, *args: str) -> str:
    done = subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback", "--passphrase", "", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


@pytest.mark.daemon
def test_key_check_reads_the_primary_fingerprint_of_each_key(tmp_path):
    """The setup script's key check, run with gpg on generated keys: it yields the primary
    key's fingerprint (not a subkey's), and one line per key when a file holds two."""
    assert shutil.which("gpg"), "gpg is not installed (Debian gnupg)"
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    fingerprints = []
    try:
        for uid in ("one@example.org", "two@example.org"):
            _gpg(home, "--quick-gen-key", uid, "ed25519", "sign", "never")
            listing = _gpg(home, "--with-colons", "--list-keys", uid).splitlines()
            fingerprints.append(next(line.split(":")[9] for line in listing if line.startswith("fpr:")))
            _gpg(home, "--quick-add-key", fingerprints[-1], "cv25519", "encr", "never")
            listing = _gpg(home, "--with-colons", "--list-keys", uid).splitlines()
            assert sum(line.startswith("fpr:") for line in listing) == 2, "a primary key and a subkey"
        (tmp_path / "one.asc").write_text(_gpg(home, "--armor", "--export", "one@example.org"))
        (tmp_path / "both.asc").write_text(_gpg(home, "--armor", "--export"))
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False, capture_output=True)

    def check(name: str) -> list[str]:
        script = f"key={tmp_path / name}; {gpunode.PRIMARY_FINGERPRINTS}"
        env = {"PATH": "/usr/bin:/bin", "GNUPGHOME": str(home)}
        return subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True, env=env).stdout.split()

    assert check("one.asc") == fingerprints[:1]
    assert sorted(check("both.asc")) == sorted(fingerprints)


def _verify_unit(tmp_path: Path, name: str, text: str) -> subprocess.CompletedProcess:
    # Never skipped: systemd-analyze comes with Debian's systemd, which `make test` installs.
    assert SYSTEMD_ANALYZE, "systemd-analyze is not installed: run `make test`"
    # The node's binaries do not exist here; systemd-analyze would refuse the unit for that alone.
    for binary in (gpunode.NVIDIA_SMI, "/usr/local/bin/k3s"):
        text = text.replace(binary, "/bin/true")
    path = tmp_path / name
    path.write_text(text)
    return subprocess.run([SYSTEMD_ANALYZE, "verify", str(path)], capture_output=True, text=True, check=False)


@pytest.mark.daemon
def test_gpu_units_pass_systemd_analyze_verify(tmp_path):
    files = _files(render_user_data(GPU_AGENTS["mig"]))
    for name in (gpunode.MIG_UNIT, "k3s-agent.service"):
        done = _verify_unit(tmp_path, name, files[f"/etc/systemd/system/{name}"])
        assert done.returncode == 0 and not done.stderr.strip(), f"{name}: {done.stdout}{done.stderr}"
    # The check is not vacuous: a misspelt key is reported.
    done = _verify_unit(
        tmp_path, "bad.service", files[f"/etc/systemd/system/{gpunode.MIG_UNIT}"].replace("Type=", "Typ=")
    )
    assert "Unknown key" in done.stderr
