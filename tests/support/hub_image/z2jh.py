"""The hub image's `z2jh` helper module, same API, reading the files run_hub renders instead of the mounted Secret.

hub.extraConfig snippets may `from z2jh import get_config`, so this module keeps the image's module name.
"""

import os
from functools import cache
from pathlib import Path
from typing import Any

import yaml

# The chart mounts its hub Secret at /usr/local/etc/jupyterhub/secret; run_hub renders one into its workdir.
ROOT = Path(os.environ.get("Z2JH_ROOT", "/usr/local/etc/jupyterhub"))
_UNSET = object()


@cache
def _values() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "secret" / "values.yaml").read_text())


def get_config(key: str, default: Any = None) -> Any:
    """The Helm value at dotted `key` ("singleuser.image.name"), or `default` when a level is missing."""
    value: Any = _values()
    for level in key.split("."):
        if not isinstance(value, dict) or level not in value:
            return default
        value = value[level]
    return value


def set_config_if_not_none(cparent: Any, name: str, key: str) -> None:
    value = get_config(key)
    if value is not None:
        setattr(cparent, name, value)


def get_secret_value(key: str, default: Any = _UNSET) -> Any:
    """A key of the hub Secret (e.g. "hub.config.CryptKeeper.keys")."""
    path = ROOT / "secret" / key
    if path.exists():
        return path.read_text()
    if default is not _UNSET:
        return default
    raise KeyError(f"{key} not found in the hub Secret")


def get_name(name: str) -> str:
    """Full name of a chart resource; the chart's default `fullnameOverride: ""` leaves short names unprefixed."""
    return name


def get_name_env(name: str, suffix: str = "") -> str:
    """A Kubernetes service-link variable, e.g. get_name_env("hub", "_SERVICE_PORT") -> $HUB_SERVICE_PORT."""
    return os.environ[(get_name(name) + suffix).upper().replace("-", "_")]
