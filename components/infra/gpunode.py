"""What a GPU node needs before k3s starts on it: the NVIDIA driver and container toolkit
(installed at first boot, or checked when the image has them) and, for MIG groups, a unit that
creates the GPU instances at every boot. Pure renderers; `cloudinit` puts them in user-data."""

from __future__ import annotations

from .config import GpuSpec

SETUP_PATH = "/usr/local/sbin/af-gpu-setup"
MIG_UNIT = "af-gpu-mig.service"
NVIDIA_SMI = "/usr/bin/nvidia-smi"
TOOLKIT_KEY_URL = "https://nvidia.github.io/libnvidia-container/gpgkey"
TOOLKIT_KEY_FINGERPRINT = "C95B321B61E88C1809C4F759DDCAE044F796ECB0"
"""NVIDIA's container toolkit signing key: the downloaded key must be this one."""
TOOLKIT_KEYRING = "/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg"
TOOLKIT_LIST = "/etc/apt/sources.list.d/nvidia-container-toolkit.list"
TOOLKIT_REPO = "https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH) /"
TOOLKIT_PACKAGES = (
    "nvidia-container-toolkit",
    "nvidia-container-toolkit-base",
    "libnvidia-container-tools",
    "libnvidia-container1",
)
PRIMARY_FINGERPRINTS = (
    'gpg --show-keys --with-colons "$key" | '
    'awk -F: \'$1 == "pub" { primary = 1; next } primary && $1 == "fpr" { print $10; primary = 0 }\''
)
"""Shell: the fingerprint of every primary key in the file `$key`, one a line (a file with
another key besides NVIDIA's gives two lines, and fails the comparison)."""

# k3s registers the `nvidia` containerd runtime only if it finds this binary when it starts.
RUNTIME_BINARY = "nvidia-container-runtime"


def driver_packages(gpu: GpuSpec) -> list[str]:
    """Ubuntu's driver of the pinned branch, without X: the kernel module (DKMS) and
    `nvidia-smi`."""
    return [f"nvidia-headless-{gpu.driver_branch}", f"nvidia-utils-{gpu.driver_branch}"]


def toolkit_packages(gpu: GpuSpec) -> list[str]:
    """The container toolkit, every package at the pinned version (apt would mix versions)."""
    return [f"{name}={gpu.container_toolkit_version}" for name in TOOLKIT_PACKAGES]


def _install(gpu: GpuSpec) -> list[str]:
    packages = [*driver_packages(gpu), *toolkit_packages(gpu)]
    held = [p.split("=")[0] for p in packages]
    return [
        "export DEBIAN_FRONTEND=noninteractive",
        "key=$(mktemp)",
        f"curl -fsSL --retry 10 --retry-delay 5 -o \"$key\" '{TOOLKIT_KEY_URL}'",
        f"fingerprint=$({PRIMARY_FINGERPRINTS})",
        f'if [ "$fingerprint" != {TOOLKIT_KEY_FINGERPRINT} ]; then',
        '  echo "af-gpu-setup: unexpected container toolkit signing key: $fingerprint" >&2',
        "  exit 1",
        "fi",
        f'gpg --batch --yes --dearmor -o {TOOLKIT_KEYRING} "$key"',
        'rm -f "$key"',
        f"echo 'deb [signed-by={TOOLKIT_KEYRING}] {TOOLKIT_REPO}' > {TOOLKIT_LIST}",
        "apt-get update",
        "# The running kernel's headers: DKMS builds the module now, so no reboot is needed.",
        f'apt-get install -y "linux-headers-$(uname -r)" {" ".join(packages)}',
        "# The loaded kernel module must keep matching the user-space libraries: no unattended upgrades.",
        f"apt-mark hold {' '.join(held)}",
    ]


def render_setup(gpu: GpuSpec) -> str:
    """The first-boot script: install (or, for a GPU-ready image, only check) the driver and
    the container toolkit, load the module, and fail loudly if a GPU is not usable."""
    lines = ["#!/bin/sh", "# NVIDIA driver and container toolkit of a GPU node, before k3s starts.", "set -eu"]
    if gpu.driver == "install":
        lines += _install(gpu)
    lines += [
        "modprobe nvidia",
        f"command -v {RUNTIME_BINARY} >/dev/null",
        f"{NVIDIA_SMI} -L",
    ]
    return "\n".join(lines) + "\n"


def mig_instances(gpu: GpuSpec) -> str:
    """The `-cgi` argument: the group's profile once per instance."""
    assert gpu.mig is not None
    return ",".join([gpu.mig.profile] * gpu.mig.instances)


def render_mig_unit(gpu: GpuSpec, before: str) -> str:
    """A oneshot unit, ordered before (and required by) the kubelet's unit `before`: MIG mode
    persists across reboots, GPU instances do not, so they are created at every boot, before
    the device plugin counts them."""
    return "\n".join(
        [
            "[Unit]",
            "Description=MIG instances of the node's GPUs",
            f"Before={before}",
            "",
            "[Service]",
            "Type=oneshot",
            "RemainAfterExit=yes",
            f"ExecStart={NVIDIA_SMI} -mig 1",
            # Leftovers of an earlier start: none on a fresh boot, hence the '-' (failure ignored).
            f"ExecStart=-{NVIDIA_SMI} mig -dci",
            f"ExecStart=-{NVIDIA_SMI} mig -dgi",
            f"ExecStart={NVIDIA_SMI} mig -cgi {mig_instances(gpu)} -C",
            "",
            "[Install]",
            "WantedBy=multi-user.target",
            f"RequiredBy={before}",
            "",
        ]
    )


def kubelet_checks() -> list[str]:
    """`ExecStartPre=` lines of a GPU node's k3s unit: it joins only with a working driver and
    the nvidia runtime in place, never as a GPU node that cannot run GPU pods."""
    return [f"ExecStartPre={NVIDIA_SMI} -L", f"ExecStartPre=/bin/sh -c 'command -v {RUNTIME_BINARY}'"]
