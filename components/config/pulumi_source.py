"""Read the stack's `af:*` config from the Pulumi runtime (the program's I/O edge)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config

from .errors import NAMESPACE, ConfigError
from .facility import FacilityConfig
from .loader import PROFILES_DIR, build_config

_profiles_dir = [PROFILES_DIR]


def _decode(raw: Any) -> Any:
    # Pulumi hands structured values to the program as JSON text.
    if isinstance(raw, str) and raw[:1] in ("{", "["):
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw


def stack_values() -> tuple[dict[str, Any], set[str]]:
    """The `af:*` values of the running stack (namespace stripped) and which are secret."""
    prefix = f"{NAMESPACE}:"
    keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    values: dict[str, Any] = {}
    secret: set[str] = set()
    for full_key in sorted(k for k in keys if k.startswith(prefix)):
        name = full_key[len(prefix) :]
        values[name] = _decode(runtime_config.get_config(full_key))
        if runtime_config.is_config_secret(full_key) or full_key in runtime_config.get_config_secret_keys_env():
            secret.add(name)
    return values, secret


@contextmanager
def profiles_from(profiles_dir: Path) -> Iterator[None]:
    """Run the program with the profiles of another project (`afctl --project-dir`): the Pulumi
    CLI runs it in its own project, whose `stacks/` is the default."""
    _profiles_dir.append(profiles_dir)
    try:
        yield
    finally:
        _profiles_dir.pop()


def load_stack_config() -> FacilityConfig:
    """Validated config of the running stack; raises `ConfigError` before any resource exists."""
    values, secret = stack_values()
    return build_config(values, secret, _profiles_dir[-1])


class StackConfigError(pulumi.RunError):
    """A RunError, so the Pulumi CLI prints the problems without a traceback."""

    def __init__(self, error: ConfigError) -> None:
        self.config_error = error
        super().__init__("invalid stack config:\n" + "\n".join(error.lines()))


@contextmanager
def fail_on_config_error() -> Iterator[None]:
    try:
        yield
    except ConfigError as exc:
        raise StackConfigError(exc) from None
