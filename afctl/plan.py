"""The plan a preview writes: `plan.json` and the rendered files, deterministic byte for byte."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from .runner import PROJECT, RunResult


def plan_document(result: RunResult) -> dict[str, Any]:
    resources = sorted(
        (
            {
                "urn": r.urn,
                "type": r.type,
                "name": r.name,
                "parent": r.parent,
                "custom": r.custom,
                "provider": r.provider,
                "dependencies": r.dependencies,
                "inputs": r.inputs,
            }
            for r in result.registrations
        ),
        key=lambda r: r["urn"],
    )
    return {"project": PROJECT, "stack": result.stack, "resources": resources, "outputs": result.outputs}


def plan_json(result: RunResult) -> str:
    return json.dumps(plan_document(result), indent=2, sort_keys=True) + "\n"


def write_plan(result: RunResult, out: Path) -> None:
    """Replace `out` with this run's plan; stale files from an earlier run never linger."""
    if out.exists():
        shutil.rmtree(out)
    (out / "files").mkdir(parents=True)
    (out / "plan.json").write_text(plan_json(result), encoding="utf-8")
    for relpath, text in sorted(result.files.items()):
        target = out / "files" / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
