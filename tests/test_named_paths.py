"""Files of the program that name another file of the project (docstrings, comments, the runtime
files shipped into ConfigMaps) name one that exists: the layout moved modules, and a reader of a
deployed file follows the path it gives."""

from __future__ import annotations

import re

from components.config.loader import PROJECT_ROOT

NAMED = re.compile(r"\b((?:components|policy|afctl|autoscaler)/[A-Za-z0-9_./-]+\.py)\b")


def named_paths(text: str) -> list[str]:
    return NAMED.findall(text)


def test_the_pattern_finds_a_path_in_prose():
    assert named_paths("(components/cache/xrootd.py renders the directives)") == ["components/cache/xrootd.py"]


def test_every_project_path_named_in_the_program_exists():
    missing = [
        f"{path.relative_to(PROJECT_ROOT)}: {named}"
        for root in ("components", "policy", "afctl", "autoscaler")
        for path in sorted((PROJECT_ROOT / root).rglob("*"))
        if path.suffix in (".py", ".md", ".yaml", ".cfg", ".txt") and path.is_file()
        for named in named_paths(path.read_text(encoding="utf-8"))
        if not (PROJECT_ROOT / named).is_file()
    ]
    assert missing == []
