"""What a person reads: the resource tree and the quota table after a preview, a plan diff."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from components.config.facility import FacilityConfig
from components.infra.quota import QUOTAS, usage

from .diff import Change, Kind, PlanDiff
from .mocks import Registration

COUNTED = "cloud and Kubernetes objects and providers, as pulumi up creates them"
"""What afctl counts as a resource everywhere (preview, progress, diff): custom resources; the
program's components, which only group them, and the stack are not counted."""


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
    used = usage(cfg.site, cfg.cluster)
    rows = [("quota", "planned", "allowed", "free")]
    for q in QUOTAS:
        need, limit = getattr(used, q.field), getattr(cfg.site.quotas, q.field)
        rows.append((q.column, str(need), str(limit), str(limit - need)))
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


_SYMBOL = {Kind.CREATE: "+", Kind.REPLACE: "+-", Kind.UPDATE: "~", Kind.DELETE: "-"}
_OP = {"add": "+", "delete": "-", "update": "~"}
_SHOWN = 60


def show(value: Any) -> str:
    """One short line for a value: JSON, long or multi-line text cut with a count of what is left out."""
    if isinstance(value, str) and "\n" in value:
        lines = value.count("\n") + (not value.endswith("\n"))
        return f"<text, {lines} lines, {len(value)} chars>"
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def _change_line(change: Change) -> str:
    if change.op == "add":
        values = show(change.after)
    elif change.op == "delete":
        values = show(change.before)
    else:
        values = f"{show(change.before)} => {show(change.after)}"
    # The URN is in --json; a name is enough to find the replaced or new resource in the list above.
    cause = [f"unknown until {change.cause.rsplit('::', 1)[-1]} is created"] if change.cause else []
    notes = (["replaces"] if change.replaces else []) + cause
    return f"      {_OP[change.op]} {change.path}: {values}" + (f"  ({'; '.join(notes)})" if notes else "")


def diff_text(result: PlanDiff) -> str:
    """Counts per kind of change, then each resource by URN with its changed input paths."""
    counts = result.counts()
    match = "by URN" if result.match == "urn" else "by type and name: the stacks differ"
    lines = [f"diff {result.before} -> {result.after} (resources matched {match}; components not counted)"]
    lines += [f"  {_SYMBOL[kind]:2} {counts[kind.value]} to {kind.value}" for kind in Kind]
    lines += [f"     {counts['unchanged']} unchanged"]
    kind = None
    for r in result.resources:
        if r.kind != kind:
            kind = r.kind
            lines.append("")
        lines.append(f"{_SYMBOL[r.kind]:2} {r.kind.value:7}  {r.urn}")
        if r.provider_changed:
            lines.append("      ~ provider  (replaces)")
        lines += [_change_line(c) for c in r.changes]
    if result.ignored:
        lines += ["", "changed but ignored (ignoreChanges):"]
        lines += [f"   {urn}: {', '.join(paths)}" for urn, paths in result.ignored.items()]
    if result.outputs:
        lines += ["", "stack outputs:"] + [_change_line(c) for c in result.outputs]
    if result.uncompared_secrets:
        lines += [
            "",
            f"note: {result.uncompared_secrets} secret value(s) could not be compared (a plan file keeps no "
            "digest of its secrets); changes to them are not shown. Give stack names to compare them.",
        ]
    return "\n".join(lines)
