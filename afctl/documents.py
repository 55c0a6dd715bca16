"""The `--json` documents CI reads: one per command, the same facts the human output shows, as
plain JSON (secrets stay "[secret]"). Built here from the commands' results; printed by the CLI."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from components.config.errors import ConfigError
from components.config.facility import FacilityConfig
from components.infra.quota import QUOTAS, usage
from policy.offline import Violation, mandatory

from .diff import Change, PlanDiff
from .mocks import Registration


def dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True)


def config_error(command: str, error: ConfigError) -> dict[str, Any]:
    return {
        "command": command,
        "ok": False,
        "error": "config",
        "problems": [
            {"path": p.path, "value": p.value, "allowed": p.allowed, **({"source": p.source} if p.source else {})}
            for p in error.problems
        ],
    }


def quota(cfg: FacilityConfig) -> list[dict[str, Any]]:
    used = usage(cfg.site, cfg.cluster)
    rows = []
    for q in QUOTAS:
        need, limit = getattr(used, q.field), getattr(cfg.site.quotas, q.field)
        rows.append({"quota": q.key, "label": q.column, "planned": need, "allowed": limit, "free": limit - need})
    return rows


def policy(violations: Sequence[Violation], rules: int) -> dict[str, Any]:
    return {
        "rules": rules,
        "mandatory": len(mandatory(violations)),
        "violations": [
            {"urn": v.urn, "rule": v.rule, "level": v.level, "message": v.message}
            for v in sorted(violations, key=lambda v: (v.level != "mandatory", v.rule, v.urn))
        ],
    }


def preview(
    stack: str,
    registrations: Sequence[Registration],
    cfg: FacilityConfig,
    files: dict[str, str],
    violations: Sequence[Violation],
    rules: int,
    placeholders: Sequence[str],
) -> dict[str, Any]:
    custom = [r for r in registrations if r.custom]
    return {
        "command": "preview",
        "stack": stack,
        "ok": not mandatory(violations),
        "resources": {
            "custom": len(custom),
            "components": len(registrations) - len(custom),
            "byType": dict(sorted(Counter(r.type for r in custom).items())),
        },
        "files": files,
        "quota": quota(cfg),
        "policy": policy(violations, rules),
        "placeholders": list(placeholders),
    }


def validate(stack: str, cfg: FacilityConfig, placeholders: Sequence[str]) -> dict[str, Any]:
    return {
        "command": "validate",
        "stack": stack,
        "ok": True,
        "cluster": {
            "mode": cfg.cluster.mode,
            "site": cfg.site.name,
            "nodeGroups": {name: g.count for name, g in sorted(cfg.cluster.node_groups.items())},
        },
        "quota": quota(cfg),
        "placeholders": list(placeholders),
    }


def _change(change: Change) -> dict[str, Any]:
    out = {k: v for k, v in asdict(change).items() if k not in ("before", "after", "cause")}
    if change.op != "add":
        out["before"] = change.before
    if change.op != "delete":
        out["after"] = change.after
    if change.cause:
        out["cause"] = change.cause
    return out


def diff(result: PlanDiff, before: dict[str, str], after: dict[str, str]) -> dict[str, Any]:
    return {
        "command": "diff",
        "ok": True,
        "before": before,
        "after": after,
        "match": result.match,
        "summary": result.counts(),
        "resources": [
            {
                "kind": r.kind.value,
                "urn": r.urn,
                "type": r.type,
                "name": r.name,
                "replaceReasons": r.reasons,
                "changes": [_change(c) for c in r.changes],
            }
            for r in result.resources
        ],
        "ignored": [{"urn": urn, "paths": list(paths)} for urn, paths in result.ignored.items()],
        "outputs": [_change(c) for c in result.outputs],
        "uncomparedSecrets": result.uncompared_secrets,
    }
