"""Read `Pulumi.<stack>.yaml` the way the Pulumi CLI hands it to the program, offline:
secure values cannot be decrypted here, so each becomes a placeholder and its key is marked
secret, exactly as the engine marks it. Secrets only an operator can supply (the IAM client
secret) are not in the repository at all; where the config needs one, a placeholder stands
in for it too, and the caller is told which."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from components.config.errors import NAMESPACE, ConfigError, Problem, show_value
from components.config.loader import PROJECT_ROOT, STAND_IN, load_yaml, stand_in_secrets

PLACEHOLDER = STAND_IN


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


def read_stack(
    stack: str, project_dir: Path = PROJECT_ROOT, stood_in: list[str] | None = None
) -> tuple[dict[str, Any], set[str]]:
    """The stack's `af:*` values (namespace stripped) and the keys that hold secrets. The key
    paths of unset deploy secrets given a placeholder are appended to `stood_in`."""
    path = stack_file(stack, project_dir)
    if not path.is_file():
        known = ", ".join(available_stacks(project_dir)) or "none"
        raise ConfigError([Problem("stack", show_value(stack), f"a stack with a Pulumi.<stack>.yaml file ({known})")])
    try:
        data = load_yaml(path) or {}
    except yaml.YAMLError as exc:
        reason = " ".join(str(exc).split())
        raise ConfigError([Problem(path.name, "unreadable YAML", f"a readable YAML stack file ({reason})")]) from None
    if not isinstance(data, dict):
        raise ConfigError([Problem(path.name, show_value(data), "a mapping with a config: section")])
    config = data.get("config") or {}
    if not isinstance(config, dict):
        raise ConfigError([Problem(f"{path.name}:config", show_value(config), "a mapping of af:* keys")])
    values: dict[str, Any] = {}
    secret: set[str] = set()
    for full_key, raw in config.items():
        namespace, _, name = str(full_key).partition(":")
        if namespace != NAMESPACE:
            continue
        values[name], is_secret = _replace_secure(raw)
        if is_secret:
            secret.add(name)
    values, secret, filled = stand_in_secrets(values, secret)
    if stood_in is not None:
        stood_in.extend(filled)
    return values, secret
