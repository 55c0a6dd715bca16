"""Pure renderers of the cloud-init user-data that turns a VM into a k3s server or agent."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields, replace

from ..common import yamltext
from . import gpunode
from .config import GpuSpec, K3s

REDACTED = "[secret]"
DATA_MOUNT = "/var/lib/af-data"
DATA_DEVICE = "/dev/vdb"
"""The first extra disk Nova attaches, on KVM."""
DATA_DEVICE_WAIT_SECONDS = 600
"""How long a node waits at boot for its data volume: Nova attaches it only once the instance
is active, while cloud-init may already be running."""
K3S_TLS_DIR = "/var/lib/rancher/k3s/server/tls"
# The CA files k3s takes from disk on first start instead of generating its own.
K3S_CA_FILES = ("server-ca", "client-ca", "request-header-ca", "etcd/server-ca", "etcd/peer-ca")

_SERVER_UNIT = """\
[Unit]
Description=Lightweight Kubernetes (server)
Wants=network-online.target
After=network-online.target

[Service]
Type=notify
ExecStart=/usr/local/bin/k3s server
KillMode=process
Delegate=yes
LimitNOFILE=1048576
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
TimeoutStartSec=0
Restart=always
RestartSec=5s

[Install]
WantedBy=multi-user.target
"""

_AGENT_UNIT = _SERVER_UNIT.replace("(server)", "(agent)").replace("k3s server", "k3s agent")


def secret(**kwargs):
    """A dataclass field holding a secret: redacted in files the preview writes."""
    return field(metadata={"secret": True}, **kwargs)


@dataclass(frozen=True)
class CaPair:
    cert_pem: str
    key_pem: str = secret()


@dataclass(frozen=True)
class NodeBootstrap:
    """Everything one VM needs to become a Kubernetes node; secrets marked so they can be
    redacted from the rendered copy the preview writes."""

    node_name: str
    k3s: K3s
    server_url: str
    """API URL of the first control-plane node (agents and joining servers use it)."""
    token: str = secret()
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[str] = field(default_factory=list)
    data_volume: bool = False
    ssh_public_keys: list[str] = field(default_factory=list)
    gpu: GpuSpec | None = None
    """The node's GPUs (agents only): driver, container runtime and MIG set up before k3s."""
    # Servers only:
    server: bool = False
    cluster_init: bool = False
    node_ip: str | None = None
    tls_sans: list[str] = field(default_factory=list)
    pod_cidr: str = "10.42.0.0/16"
    service_cidr: str = "10.43.0.0/16"
    cas: dict[str, CaPair] = field(default_factory=dict)
    service_account_key: str = secret(default="")

    def redacted(self) -> NodeBootstrap:
        changes = {f.name: REDACTED for f in fields(self) if f.metadata.get("secret") and getattr(self, f.name)}
        cas = {name: replace(pair, key_pem=REDACTED) for name, pair in self.cas.items()}
        return replace(self, **changes, cas=cas)


def join_token(server_ca_pem: str, password: str) -> str:
    """k3s secure token: agents check the server's CA against the hash before joining."""
    digest = hashlib.sha256(server_ca_pem.encode()).hexdigest()
    return f"K10{digest}::server:{password}"


def _k3s_config(node: NodeBootstrap) -> dict:
    config: dict = {"token": node.token}
    if not node.cluster_init:
        config["server"] = node.server_url
    if node.labels:
        config["node-label"] = [f"{k}={v}" for k, v in sorted(node.labels.items())]
    if node.taints:
        config["node-taint"] = list(node.taints)
    if node.gpu is not None:
        # Every container of a GPU node runs through the NVIDIA runtime (the device plugin
        # needs it); only containers given GPUs by the device plugin see any.
        config["default-runtime"] = "nvidia"
    if node.server:
        if node.cluster_init:
            config["cluster-init"] = True
        config.update(
            {
                "node-ip": node.node_ip,
                "tls-san": list(node.tls_sans),
                "cluster-cidr": node.pod_cidr,
                "service-cidr": node.service_cidr,
                "secrets-encryption": True,
                "write-kubeconfig-mode": "0600",
                # Local volumes (caches, homes) land on the node's data volume where it has one.
                "default-local-storage-path": DATA_MOUNT,
            }
        )
    return config


def _file(path: str, content: str, mode: str = "0600") -> dict:
    return {"path": path, "content": content, "owner": "root:root", "permissions": mode}


def _install_k3s(k3s: K3s) -> str:
    url = f"https://github.com/k3s-io/k3s/releases/download/{k3s.version.replace('+', '%2B')}/k3s"
    return (
        f"curl -fsSL --retry 10 --retry-delay 5 -o /usr/local/bin/k3s '{url}' && "
        f"echo '{k3s.sha256}  /usr/local/bin/k3s' | sha256sum -c - && "
        "chmod 0755 /usr/local/bin/k3s && "
        "for cmd in kubectl crictl ctr; do ln -sf /usr/local/bin/k3s /usr/local/bin/$cmd; done"
    )


def wait_for_device(device: str, seconds: int) -> str:
    """Shell that returns once `device` is a block device, or fails with a message on the
    console after `seconds`. Run as `bootcmd`, before cloud-init formats and mounts the disk."""
    return (
        f"n=0; until [ -b {device} ]; do if [ $n -ge {seconds} ]; then "
        f"echo 'af: data volume {device} not attached after {seconds} s' >&2; exit 1; fi; "
        "sleep 1; n=$((n+1)); done"
    )


def _k3s_unit(node: NodeBootstrap) -> str:
    text = _SERVER_UNIT if node.server else _AGENT_UNIT
    if node.data_volume:
        # Local volumes land on the data mount: without it they would fill the root disk, so k3s
        # waits for the mount, and refuses to start (the unit fails, loudly) when it is not one.
        text = text.replace(
            "After=network-online.target\n",
            f"After=network-online.target\nRequiresMountsFor={DATA_MOUNT}\nAssertPathIsMountPoint={DATA_MOUNT}\n",
        )
    if node.gpu is None:
        return text
    checks = "".join(f"{line}\n" for line in gpunode.kubelet_checks())
    return text.replace("[Service]\n", "[Service]\n" + checks)


def render_user_data(node: NodeBootstrap) -> str:
    """`#cloud-config` for one node; deterministic for equal input."""
    unit = "k3s.service" if node.server else "k3s-agent.service"
    files = [_file("/etc/rancher/k3s/config.yaml", yamltext.dump(_k3s_config(node), sort_keys=True))]
    if node.cluster_init:
        for name, pair in sorted(node.cas.items()):
            files.append(_file(f"{K3S_TLS_DIR}/{name}.crt", pair.cert_pem, "0644"))
            files.append(_file(f"{K3S_TLS_DIR}/{name}.key", pair.key_pem))
        files.append(_file(f"{K3S_TLS_DIR}/service.key", node.service_account_key))
    gpu_setup: list[list[str]] = []
    if node.gpu is not None:
        files.append(_file(gpunode.SETUP_PATH, gpunode.render_setup(node.gpu), "0755"))
        gpu_setup.append([gpunode.SETUP_PATH])
        if node.gpu.mig is not None:
            mig_unit = f"/etc/systemd/system/{gpunode.MIG_UNIT}"
            files.append(_file(mig_unit, gpunode.render_mig_unit(node.gpu, before=unit), "0644"))
            gpu_setup += [["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", gpunode.MIG_UNIT]]
    files.append(_file(f"/etc/systemd/system/{unit}", _k3s_unit(node), "0644"))

    packages = ["curl", "ca-certificates", "nfs-common"]
    if node.gpu is not None and node.gpu.driver == "install":
        packages.append("gnupg")  # checks the container toolkit's signing key
    doc: dict = {
        "hostname": node.node_name,
        "package_update": True,
        "packages": packages,
        "write_files": files,
    }
    if node.ssh_public_keys:
        doc["ssh_authorized_keys"] = list(node.ssh_public_keys)
    if node.data_volume:
        # Nova attaches the volume after the instance is active: wait for it before cloud-init's
        # disk_setup and mounts look for it (bootcmd runs before both, at every boot).
        doc["bootcmd"] = [["sh", "-c", wait_for_device(DATA_DEVICE, DATA_DEVICE_WAIT_SECONDS)]]
        # Labelled so a rebuild finds it.
        doc["fs_setup"] = [{"label": "af-data", "filesystem": "ext4", "device": DATA_DEVICE, "partition": "auto"}]
        doc["mounts"] = [["LABEL=af-data", DATA_MOUNT, "ext4", "defaults,nofail", "0", "2"]]
    doc["runcmd"] = [
        *gpu_setup,
        ["sh", "-c", _install_k3s(node.k3s)],
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", "--now", unit],
    ]
    return "#cloud-config\n" + yamltext.dump(doc)
