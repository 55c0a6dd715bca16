"""YAML text for files people read: multi-line strings as literal blocks, stable key order."""

from __future__ import annotations

from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str)


def dump(doc: Any, sort_keys: bool = False) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=sort_keys, width=1000, default_flow_style=False)
