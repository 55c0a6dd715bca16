"""The README's config examples work: each YAML block of it that is config is validated by `afctl
validate`, a whole stack file as it is, a section (`af:…`) or a node group in the stack the README
shows it with, so an operator who copies one gets a stack the tool accepts."""

from __future__ import annotations

import re
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from afctl import cli
from components.config.loader import PROJECT_ROOT, deep_merge

BLOCK = re.compile(r"^( *)```yaml\n(.*?)^\1```", re.M | re.S)
HOST = "cms-bari"
"""The stack a section is tried in: the README's examples are CMS's (its groups, its gateway)."""


def _blocks() -> list[tuple[int, Any]]:
    text = (PROJECT_ROOT / "README.md").read_text()
    found = []
    for match in BLOCK.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        found.append((line, yaml.safe_load(textwrap.dedent(match.group(2)))))
    return found


def _stack_file(example: Any) -> dict[str, Any] | None:
    """The stack file an example makes, or None when it is not config (a fragment of another kind)."""
    if not isinstance(example, dict):
        return None
    if "config" in example:
        return example
    host = yaml.safe_load((PROJECT_ROOT / f"Pulumi.{HOST}.yaml").read_text())
    if all(str(key).startswith("af:") for key in example):
        # The single machine's control plane is its own stack: nodeGroups {} replaces, not merges.
        if example.get("af:cluster", {}).get("nodeGroups") == {}:
            host = yaml.safe_load((PROJECT_ROOT / "Pulumi.single.yaml").read_text())
        return {"config": deep_merge(host["config"], example)}
    if len(example) == 1 and isinstance(group := next(iter(example.values())), dict) and "flavor" in group:
        return {"config": deep_merge(host["config"], {"af:cluster": {"nodeGroups": example}})}
    return None


EXAMPLES = [(line, stack) for line, block in _blocks() if (stack := _stack_file(block)) is not None]


def test_the_readme_has_config_examples_to_check() -> None:
    assert len(EXAMPLES) >= 6, [line for line, _ in EXAMPLES]


@pytest.mark.parametrize(("line", "stack"), EXAMPLES, ids=[f"README.md:{line}" for line, _ in EXAMPLES])
def test_a_readme_example_is_a_valid_stack(line: int, stack: dict[str, Any], tmp_path: Path, capsys) -> None:
    shutil.copytree(PROJECT_ROOT / "stacks", tmp_path / "stacks")
    (tmp_path / "Pulumi.example.yaml").write_text(yaml.safe_dump(stack))
    code = cli.main(["--project-dir", str(tmp_path), "validate", "example"])
    out = capsys.readouterr()
    assert code == 0, f"README.md:{line}\n{out.err}"
