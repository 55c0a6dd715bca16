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
from components.config.loader import PROFILES_DIR, PROJECT_ROOT, STAND_IN, load_yaml, stand_in_secrets

PLACEHOLDER = STAND_IN

SHIPPED_STACKS = ("atlas-cnaf", "cms-bari", "dev", "single")
"""The stacks this repository ships. Tests about the shipped stacks and the reference's examples
name these, so an operator's own `Pulumi.<stack>.yaml` files and profiles never change them."""


def shipped_profiles(project_dir: Path = PROJECT_ROOT) -> list[str]:
    """The profiles the shipped stacks name, in the order they first appear."""
    found: dict[str, None] = {}
    for stack in SHIPPED_STACKS:
        data = load_yaml(stack_file(stack, project_dir)) or {}
        found.update(dict.fromkeys((data.get("config") or {}).get(f"{NAMESPACE}:profiles") or []))
    return list(found)


def profiles_dir(project_dir: Path = PROJECT_ROOT) -> Path:
    """Where a project's profiles are: its `stacks/`, or this program's for a directory that has
    only stack files."""
    own = project_dir / "stacks"
    return own if own.is_dir() else PROFILES_DIR


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
        data = load_yaml(path)
    except yaml.YAMLError as exc:
        reason = " ".join(str(exc).split())
        raise ConfigError([Problem(path.name, "unreadable YAML", f"a readable YAML stack file ({reason})")]) from None
    shape = "a stack file with a config: mapping of af:* keys, as the README's Stacks and profiles section shows"
    if data is None:
        raise ConfigError([Problem(path.name, "an empty file", shape)])
    if not isinstance(data, dict):
        raise ConfigError([Problem(path.name, show_value(data), shape)])
    if "config" not in data:
        raise ConfigError([Problem(path.name, f"top-level keys {show_value(sorted(map(str, data)))}", shape)])
    config = data["config"]
    if not isinstance(config, dict):
        given = "nothing" if config is None else show_value(config)
        raise ConfigError([Problem(f"{path.name}:config", given, "a mapping of af:* keys")])
    values: dict[str, Any] = {}
    secret: set[str] = set()
    unprefixed = []
    for full_key, raw in config.items():
        namespace, colon, name = str(full_key).partition(":")
        if not colon:
            unprefixed.append(str(full_key))
        if namespace != NAMESPACE:
            continue  # another package's config (a provider's, say): not this program's
        values[name], is_secret = _replace_secure(raw)
        if is_secret:
            secret.add(name)
    problems = [
        Problem(
            f"{path.name}:config.{key}",
            show_value(key),
            f"{NAMESPACE}:{key}: this program's keys are in the {NAMESPACE} namespace (af:site, af:cluster, …)",
        )
        for key in unprefixed
    ]
    if not values and not problems:
        problems.append(Problem(f"{path.name}:config", "no af:* key", shape))
    if problems:
        raise ConfigError(problems)
    values, secret, filled = stand_in_secrets(values, secret, profiles_dir(project_dir))
    if stood_in is not None:
        stood_in.extend(filled)
    return values, secret
