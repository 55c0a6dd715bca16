"""Rendered user-data: checked by cloud-init itself, and by what a node needs to join."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import SHIPPED_STACKS

from components.infra import gpunode
from components.infra.cloudinit import (
    DATA_DEVICE_WAIT_SECONDS,
    DATA_MOUNT,
    REDACTED,
    CaPair,
    NodeBootstrap,
    join_token,
    render_user_data,
    wait_for_device,
)
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


# --- the data volume: attached after the instance is active, so the node waits for it ----------


def _cloud_init_python() -> str:
    """The interpreter of the installed cloud-init (its script's shebang): its package is the oracle."""
    assert CLOUD_INIT, "cloud-init is not installed: run `make test` (it installs the Debian package)"
    first = Path(CLOUD_INIT).read_text().splitlines()[0]
    assert first.startswith("#!"), first
    return first[2:].strip().split()[0]


_MODULE_FACTS = """
import importlib, json, sys
import yaml
cfg = yaml.safe_load(open("/etc/cloud/cloud.cfg"))
out = {}
for stage in ("init", "config", "final"):
    modules = []
    for entry in cfg[f"cloud_{stage}_modules"]:
        name = (entry if isinstance(entry, str) else entry[0]).replace("-", "_")
        meta = importlib.import_module(f"cloudinit.config.cc_{name}").meta
        modules.append({"name": name, "keys": meta["activate_by_schema_keys"], "frequency": meta["frequency"]})
    out[stage] = modules
json.dump(out, sys.stdout)
"""


def _unit_text(name: str) -> str:
    for directory in ("/lib/systemd/system", "/usr/lib/systemd/system"):
        path = Path(directory) / name
        if path.is_file():
            return path.read_text()
    raise AssertionError(f"{name} is not installed with cloud-init")


@pytest.mark.daemon
def test_the_device_wait_runs_before_cloud_init_formats_and_mounts_the_data_volume():
    """The order is cloud-init's, read from the installed package (Debian's cloud.cfg module lists,
    each module's own meta for the user-data keys it handles, and the stages' systemd units): the
    `bootcmd` that waits runs before the module that handles `fs_setup`, which runs before `mounts`,
    all in the init stage, which runs before the config stage's `runcmd` that starts k3s."""
    done = subprocess.run([_cloud_init_python(), "-c", _MODULE_FACTS], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    stages = json.loads(done.stdout)

    def where(predicate) -> tuple[str, int, dict]:
        (found,) = [
            (stage, index, module)
            for stage, modules in stages.items()
            for index, module in enumerate(modules)
            if predicate(module)
        ]
        return found

    doc = yaml.safe_load(render_user_data(_agent()))
    waits = where(lambda m: "bootcmd" in m["keys"])
    formats = where(lambda m: "fs_setup" in m["keys"])
    mounts = where(lambda m: m["name"] == "mounts")
    starts = where(lambda m: "runcmd" in m["keys"])
    assert waits[0] == formats[0] == mounts[0] == "init"
    assert waits[1] < formats[1] < mounts[1]
    assert waits[2]["frequency"] == "always", "the wait runs at every boot, before every mount"
    assert starts[0] == "config"
    # The init stage's unit is ordered before network-online.target, the config stage's after it.
    init, config = _unit_text("cloud-init.service"), _unit_text("cloud-config.service")
    assert "ExecStart=/usr/bin/cloud-init init" in init and "Before=network-online.target" in init
    assert "--mode=config" in config and re.search(r"^After=.*network-online\.target", config, re.M)
    # And the user-data uses those keys: the wait names the device the filesystem goes on.
    device = doc["fs_setup"][0]["device"]
    (wait,) = doc["bootcmd"]
    assert wait == ["sh", "-c", wait_for_device(device, DATA_DEVICE_WAIT_SECONDS)]
    assert doc["mounts"][0][1] == DATA_MOUNT


def _a_block_device() -> str:
    for entry in sorted(Path("/dev").iterdir()):
        if stat.S_ISBLK(entry.stat().st_mode):
            return str(entry)
    raise AssertionError("no block device in /dev to wait for")


def test_the_device_wait_returns_once_the_device_exists_and_fails_loudly_after_its_limit():
    present = subprocess.run(
        ["sh", "-c", wait_for_device(_a_block_device(), 2)], capture_output=True, text=True, timeout=10
    )
    assert present.returncode == 0 and present.stderr == ""
    absent = subprocess.run(
        ["sh", "-c", wait_for_device("/dev/af-no-such-disk", 2)], capture_output=True, text=True, timeout=20
    )
    assert absent.returncode != 0
    assert "af: data volume /dev/af-no-such-disk not attached after 2 s" in absent.stderr
    # A regular file is not the disk.
    assert subprocess.run(["sh", "-c", wait_for_device(__file__, 1)], capture_output=True, timeout=20).returncode


def test_nodes_without_a_data_volume_do_not_wait_or_require_it():
    text = render_user_data(_agent(data_volume=False))
    doc = yaml.safe_load(text)
    assert "bootcmd" not in doc and "fs_setup" not in doc and "mounts" not in doc
    assert "RequiresMountsFor" not in _files(text)["/etc/systemd/system/k3s-agent.service"]


@pytest.mark.daemon
def test_k3s_never_starts_without_the_data_volume_mounted(tmp_path):
    """Local volumes (the cache's disk) go to the data mount: without the volume they would fill
    the root disk. The agent's unit requires the mount and asserts it is a mount point."""
    unit = _files(render_user_data(_agent()))["/etc/systemd/system/k3s-agent.service"]
    unit_section = unit.split("[Service]")[0]
    assert f"RequiresMountsFor={DATA_MOUNT}\n" in unit_section
    (assertion,) = [line for line in unit_section.splitlines() if line.startswith("Assert")]
    done = _verify_unit(tmp_path, "k3s-agent.service", unit)
    assert done.returncode == 0 and not done.stderr.strip(), done.stdout + done.stderr
    # systemd itself evaluates the assertion: a plain directory fails it, a mount point passes.
    plain = tmp_path / "not-mounted"
    plain.mkdir()
    for path, holds in ((str(plain), False), ("/proc", True)):
        done = subprocess.run(
            [SYSTEMD_ANALYZE, "condition", assertion.replace(DATA_MOUNT, path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert (done.returncode == 0) is holds, done.stdout + done.stderr
