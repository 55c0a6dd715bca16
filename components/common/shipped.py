"""Files a layer ships into its pods or its chart as text (its `files/` folder): real modules and
documents in the repository, so the Python among them is linted and tested like the rest."""

from __future__ import annotations

from importlib import resources


def shipped(layer: str, name: str) -> str:
    """The text of file `name` in `components/<layer>/files/`."""
    return (resources.files(f"components.{layer}.files") / name).read_text(encoding="utf-8")
