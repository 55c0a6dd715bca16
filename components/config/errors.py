"""The config error contract: one line per problem, key path, value given, what is allowed."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

NAMESPACE = "af"
_MAX_VALUE_CHARS = 60


_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_./-]+$")


def _segment(part: str | int, first: bool) -> str:
    if isinstance(part, int):
        return f"[{part}]"
    if _PLAIN_KEY.match(part):
        return part if first else f".{part}"
    # Keep one problem on one line whatever the user typed as a key.
    return "[" + json.dumps(part).replace(" ", "\\u0020") + "]"


def key_path(loc: tuple[str | int, ...]) -> str:
    """`("cluster", "nodeGroups", "cpu", "count")` -> `af:cluster.nodeGroups.cpu.count`."""
    return f"{NAMESPACE}:" + "".join(_segment(part, index == 0) for index, part in enumerate(loc))


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
    source: str = ""
    """The profile file the value comes from (`stacks/experiments/cms.yaml`), when not the stack."""

    def line(self) -> str:
        where = f" (set in {self.source})" if self.source else ""
        return f"{self.path}: got {self.value}{where}; allowed: {self.allowed}"


class ConfigError(Exception):
    """Raised before any resource is registered; carries every problem found, not just the first."""

    exit_code = 2

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(set(problems))
        super().__init__("\n".join(p.line() for p in self.problems))

    def lines(self) -> list[str]:
        return [p.line() for p in self.problems]


def problem(loc: tuple[str | int, ...], value: Any, allowed: str) -> Problem:
    """A problem at `loc`; `None` means the key is absent."""
    return Problem(key_path(loc), "nothing" if value is None else show_value(value), allowed)
