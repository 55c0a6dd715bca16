"""The config error contract: one line per problem, key path, value given, what is allowed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

NAMESPACE = "af"
_MAX_VALUE_CHARS = 60


def key_path(loc: tuple[str | int, ...]) -> str:
    """`("cluster", "nodeGroups", "cpu", "count")` -> `af:cluster.nodeGroups.cpu.count`."""
    if not loc:
        return f"{NAMESPACE}:"
    head, *rest = loc
    path = f"{NAMESPACE}:{head}"
    for part in rest:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def show_value(value: Any) -> str:
    """A short, single-line rendering of the value the user gave; never a secret's content."""
    if isinstance(value, SecretStr):
        return "[secret]"
    try:
        text = json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    text = text.replace("\n", " ")
    if len(text) > _MAX_VALUE_CHARS:
        text = text[: _MAX_VALUE_CHARS - 1] + "…"
    return text


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a stack's config."""

    path: str
    value: str
    allowed: str

    def line(self) -> str:
        return f"{self.path}: got {self.value}; allowed: {self.allowed}"


class ConfigError(Exception):
    """Raised before any resource is registered; carries every problem found, not just the first."""

    exit_code = 2

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(set(problems))
        super().__init__("\n".join(p.line() for p in self.problems))

    def lines(self) -> list[str]:
        return [p.line() for p in self.problems]


def problem(loc: tuple[str | int, ...], value: Any, allowed: str) -> Problem:
    return Problem(key_path(loc), show_value(value), allowed)
