"""Property paths as Pulumi writes them (`spec.selector`, `metadata.labels["app.kubernetes.io/name"]`,
`networks[0].port`, `spec.containers[*].image`): what `ignoreChanges` and `replaceOnChanges` take
and what `pulumi preview --diff` prints, so `afctl diff` speaks the same language."""

from __future__ import annotations

import json
import re

Part = str | int
Path = tuple[Part, ...]
WILDCARD = "*"

_IDENT = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$-]*$")
_TOKEN = re.compile(r'\.?([A-Za-z_$][A-Za-z0-9_$-]*)|\[(\d+|\*|"(?:[^"\\]|\\.)*")\]')


def format_path(path: Path) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENT.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out


def parse_path(text: str) -> Path:
    """`a.b["c.d"][0][*]` -> `("a", "b", "c.d", 0, "*")`; raises ValueError on anything else."""
    parts: list[Part] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or (match.group(0).startswith(".") and not parts):
            raise ValueError(f"not a property path: {text!r}")
        name, bracket = match.groups()
        if name is not None:
            parts.append(name)
        elif bracket == WILDCARD:
            parts.append(WILDCARD)
        elif bracket.startswith('"'):
            parts.append(json.loads(bracket))
        else:
            parts.append(int(bracket))
        position = match.end()
    if not parts:
        raise ValueError("empty property path")
    return tuple(parts)


def contains(pattern: Path, path: Path) -> bool:
    """True when `path` is `pattern` or lies under it (Pulumi's `PropertyPath.Contains`): a change
    at `spec.selector.matchLabels.app` is a change to `spec.selector`."""
    if len(path) < len(pattern):
        return False
    return all(p in (WILDCARD, q) for p, q in zip(pattern, path, strict=False))
