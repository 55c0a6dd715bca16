"""What a person reads after a preview: the resource tree and the quota table."""

from __future__ import annotations

from collections import defaultdict

from components.config import FacilityConfig, usage

from .mocks import Registration

_QUOTA_ROWS = (
    ("vcpus", "vCPUs"),
    ("ram_gib", "RAM (GiB)"),
    ("instances", "instances"),
    ("volumes", "volumes"),
    ("volume_gib", "volume storage (GiB)"),
    ("floating_ips", "floating IPs"),
    ("gpus", "GPUs"),
)


def tree(registrations: list[Registration]) -> str:
    children: dict[str, list[Registration]] = defaultdict(list)
    for r in registrations:
        children[r.parent].append(r)
    lines: list[str] = []

    def walk(parent: str, depth: int) -> None:
        for r in sorted(children.get(parent, []), key=lambda r: (r.custom, r.type, r.name)):
            lines.append(f"{'  ' * depth}{r.name}  ({r.type})")
            walk(r.urn, depth + 1)

    walk("", 0)
    return "\n".join(lines)


def quota_table(cfg: FacilityConfig) -> str:
    used = usage(cfg)
    rows = [("quota", "planned", "allowed", "free")]
    for field, label in _QUOTA_ROWS:
        need, limit = getattr(used, field), getattr(cfg.site.quotas, field)
        rows.append((label, str(need), str(limit), str(limit - need)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    out = []
    for index, row in enumerate(rows):
        out.append(
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if index == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)
