"""Read `Pulumi.<stack>.yaml` the way the Pulumi CLI hands it to the program, offline:
secure values cannot be decrypted here, so each becomes a placeholder and its key is marked
secret, exactly as the engine marks it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from components.config.errors import NAMESPACE, ConfigError, Problem
from components.config.loader import PROJECT_ROOT, load_yaml

PLACEHOLDER = "offline-preview-secret"


def stack_file(stack: str, project_dir: Path = PROJECT_ROOT) -> Path:
    return project_dir / f"Pulumi.{stack}.yaml"


def available_stacks(project_dir: Path = PROJECT_ROOT) -> list[str]:
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in project_dir.glob("Pulumi.*.yaml"))


def _replace_secure(value: Any) -> tuple[Any, bool]:
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return PLACEHOLDER, True
        out, secret = {}, False
        for key, item in value.items():
            out[key], inner = _replace_secure(item)
            secret |= inner
        return out, secret
    if isinstance(value, list):
        items = [_replace_secure(v) for v in value]
        return [v for v, _ in items], any(s for _, s in items)
    return value, False


def read_stack(stack: str, project_dir: Path = PROJECT_ROOT) -> tuple[dict[str, Any], set[str]]:
    """The stack's `af:*` values (namespace stripped) and the keys that hold secrets."""
    path = stack_file(stack, project_dir)
    if not path.is_file():
        known = ", ".join(available_stacks(project_dir)) or "none"
        raise ConfigError([Problem("stack", repr(stack), f"a stack with a Pulumi.<stack>.yaml file ({known})")])
    data = load_yaml(path) or {}
    config = data.get("config") or {}
    values: dict[str, Any] = {}
    secret: set[str] = set()
    for full_key, raw in config.items():
        namespace, _, name = str(full_key).partition(":")
        if namespace != NAMESPACE:
            continue
        values[name], is_secret = _replace_secure(raw)
        if is_secret:
            secret.add(name)
    return values, secret
