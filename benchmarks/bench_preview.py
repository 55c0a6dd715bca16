"""Offline preview of a large stack, as a ratio to the bare Pulumi SDK cost of the same registrations.

The preview is `afctl.runner.run_program`: config validation, the real program, the rendered files,
under the recording mocks. The baseline runs under the same mocks, set up by the same code
(`afctl.runner.run_mocked`), and registers as many plain `pulumi.CustomResource` and
`pulumi.ComponentResource` objects as the preview did, with the same parent tree and a few string
properties each. The ratio is what the facility's own code costs on top of the SDK: a ratio that
grows with the stack's size points at work that is not linear in the number of VMs.

Prints figures only; nothing is asserted about time.

    python benchmarks/bench_preview.py [--vms N] [--repeat K] [--quick]
"""

from __future__ import annotations

import argparse
import copy
import gc
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pulumi

from afctl.mocks import Registration
from afctl.runner import run_mocked, run_program
from afctl.stackfile import read_stack
from components.config.loader import build_config
from components.infra.quota import usage

REFERENCE_STACK = "cms-bari"
INSTANCE = "openstack:compute/instance:Instance"
STACK_TYPE = "pulumi:pulumi:Stack"
QUOTA_HEADROOM = 1.1
_UNBOUNDED = 10**9


@dataclass(frozen=True)
class Shape:
    """What the preview registered, as the baseline must reproduce it: for each resource (the
    stack resource aside, which `run_in_stack` registers in both), whether it is custom and the
    index of its parent (None: the stack)."""

    nodes: list[tuple[bool, int | None]]
    vms: int
    total: int
    custom: int

    @classmethod
    def of(cls, registrations: list[Registration]) -> Shape:
        index: dict[str, int] = {}
        nodes: list[tuple[bool, int | None]] = []
        for reg in registrations:
            if reg.type == STACK_TYPE:
                continue
            index[reg.urn] = len(nodes)
            nodes.append((reg.custom, index.get(reg.parent)))
        return cls(
            nodes=nodes,
            vms=sum(r.type == INSTANCE for r in registrations),
            total=len(registrations),
            custom=sum(r.custom for r in registrations),
        )


def _apportion(counts: dict[str, int], total: int) -> dict[str, int]:
    """Scale group sizes to sum to `total`, keeping their proportions (largest remainder)."""
    base = sum(counts.values())
    shares = {name: count * total / base for name, count in counts.items()}
    scaled = {name: math.floor(share) for name, share in shares.items()}
    by_remainder = sorted(shares, key=lambda n: (scaled[n] - shares[n], n))
    for name in by_remainder[: total - sum(scaled.values())]:
        scaled[name] += 1
    return scaled


def scaled_values(values: dict[str, Any], secret: set[str], vms: int) -> dict[str, Any]:
    """`values` with its node groups grown to `vms` VMs in all, a subnet wide enough for them,
    and quotas raised to what they use plus headroom, so the config still validates."""
    out = copy.deepcopy(values)
    cluster = out["cluster"]
    groups = cluster["nodeGroups"]
    workers = vms - cluster["controlPlane"]["count"]
    if workers < len(groups):
        raise SystemExit(f"--vms {vms}: too few for the control plane and {len(groups)} node groups")
    for name, count in _apportion({n: g["count"] for n, g in groups.items()}, workers).items():
        groups[name]["count"] = count
    # Fixed control-plane addresses and the DHCP pool both live in the node subnet.
    prefix = min(26, 32 - math.ceil(math.log2(vms + 32)))
    site = out.setdefault("site", {})
    site["nodeCidr"] = f"10.10.0.0/{prefix}"
    site["quotas"] = {
        key: _UNBOUNDED for key in ("vcpus", "ramGib", "instances", "volumes", "volumeGib", "floatingIps", "gpus")
    }
    cfg = build_config(out, secret)
    need = usage(cfg.site, cfg.cluster)
    site["quotas"] = {
        "vcpus": math.ceil(need.vcpus * QUOTA_HEADROOM),
        "ramGib": math.ceil(need.ram_gib * QUOTA_HEADROOM),
        "instances": math.ceil(need.instances * QUOTA_HEADROOM),
        "volumes": math.ceil(need.volumes * QUOTA_HEADROOM),
        "volumeGib": math.ceil(need.volume_gib * QUOTA_HEADROOM),
        "floatingIps": max(2, need.floating_ips),
        "gpus": math.ceil(need.gpus * QUOTA_HEADROOM),
    }
    build_config(out, secret)  # raises ConfigError if the scaled stack would not validate
    return out


def bare_program(shape: Shape) -> Callable[[], None]:
    """A program that registers `shape` with nothing but the SDK."""

    def body() -> None:
        made: list[pulumi.Resource] = []
        components: list[pulumi.ComponentResource] = []
        for i, (custom, parent) in enumerate(shape.nodes):
            opts = pulumi.ResourceOptions(parent=made[parent]) if parent is not None else None
            if custom:
                props = {"name": f"af-bench-thing-{i}", "role": "worker", "index": str(i), "flavor": "xlarge"}
                made.append(pulumi.CustomResource("bench:index:Thing", f"thing-{i}", props, opts))
            else:
                component = pulumi.ComponentResource("bench:index:Group", f"group-{i}", None, opts)
                components.append(component)
                made.append(component)
        for component in components:  # the real components all register their outputs
            component.register_outputs({})

    return body


def _timed(run: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


@dataclass
class Figures:
    label: str
    shape: Shape
    preview: list[float]
    bare: list[float]


def measure(label: str, stack: str, values: dict[str, Any], secret: set[str], repeat: int, warmup: int) -> Figures:
    """Warm up, then alternate preview and baseline runs so drift hits both alike."""
    shape = Shape.of(run_program(stack, values, secret).registrations)
    body = bare_program(shape)
    for _ in range(warmup - 1):
        run_program(stack, values, secret)
    for _ in range(warmup):
        run_mocked(stack, body)
    preview: list[float] = []
    bare: list[float] = []
    for _ in range(repeat):
        seconds, result = _timed(lambda: run_program(stack, values, secret))
        preview.append(seconds)
        if len(result.registrations) != shape.total:
            raise SystemExit(f"{label}: preview registered {len(result.registrations)}, first run {shape.total}")
        seconds, monitor = _timed(lambda: run_mocked(stack, body))
        bare.append(seconds)
        regs = monitor.registrations
        if (len(regs), sum(r.custom for r in regs)) != (shape.total, shape.custom):
            raise SystemExit(f"{label}: baseline registered {len(regs)} resources, the preview {shape.total}")
    return Figures(label, shape, preview, bare)


def report(fig: Figures) -> None:
    shape = fig.shape
    print(
        f"[{fig.label}] {shape.vms} VMs, {shape.total} resources registered "
        f"({shape.custom} custom, {shape.total - shape.custom} component incl. the stack)"
    )
    for name, times in (("preview", fig.preview), ("bare SDK", fig.bare)):
        best, median = min(times), statistics.median(times)
        print(
            f"  {name:<8}  best {best:7.3f} s  median {median:7.3f} s  "
            f"per resource: best {best / shape.total * 1000:6.2f} ms  median {median / shape.total * 1000:6.2f} ms"
        )
    by_median = statistics.median(fig.preview) / statistics.median(fig.bare)
    by_best = min(fig.preview) / min(fig.bare)
    print(f"  ratio preview/bare: {by_median:.2f} (median)  {by_best:.2f} (best)")


def main(argv: list[str] | None = None) -> int:
    top = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    top.add_argument("--vms", type=int, default=400, help="VMs in the large stack (default 400)")
    top.add_argument("--repeat", type=int, default=3, help="timed runs of each kind (default 3)")
    top.add_argument("--quick", action="store_true", help="a tiny run for the smoke test: 24 VMs, 1 repeat")
    args = top.parse_args(argv)
    vms, repeat, warmup = (24, 1, 1) if args.quick else (args.vms, max(1, args.repeat), 1)

    print(
        f"bench_preview: afctl.runner.run_program vs bare SDK registrations, same recording mocks; "
        f"best and median of {repeat} after {warmup} warm-up "
        f"(python {platform.python_version()}, pulumi {metadata.version('pulumi')})"
    )
    values, secret = read_stack(REFERENCE_STACK)
    large = scaled_values(values, secret, vms)
    cluster = large["cluster"]
    groups = ", ".join(f"{n} x{g['count']}" for n, g in sorted(cluster["nodeGroups"].items()))
    print(
        f"large stack: {REFERENCE_STACK} scaled to {vms} VMs (control plane x{cluster['controlPlane']['count']}, "
        f"{groups}; nodeCidr {large['site']['nodeCidr']})"
    )
    report(measure(f"{REFERENCE_STACK} x{vms} VMs", f"{REFERENCE_STACK}-large", large, secret, repeat, warmup))
    report(measure(f"{REFERENCE_STACK} as shipped", REFERENCE_STACK, values, secret, repeat, warmup))
    return 0


if __name__ == "__main__":
    sys.exit(main())
