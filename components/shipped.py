"""Python the facility ships into its pods and its hub as text (`hubfiles`, `credfiles`,
`condorfiles`): real modules in the repository, so they are linted and tested like the rest."""

from __future__ import annotations

from importlib import resources


def shipped(package: str, name: str) -> str:
    """The text of file `name` in the subpackage `components.<package>`."""
    return (resources.files(f"components.{package}") / name).read_text(encoding="utf-8")
