"""Config files the facility deploys, collected as the program renders them so the offline
preview can write them under `files/<component>/` for review and for their real consumers."""

from __future__ import annotations

import pulumi

_FILES: dict[str, pulumi.Output[str]] = {}


def publish(component: str, relpath: str, content: pulumi.Input[str]) -> None:
    """Record a rendered file. Content must already be free of secrets (render a redacted copy)."""
    key = f"{component}/{relpath}"
    if key in _FILES:
        raise ValueError(f"rendered file {key} published twice")
    _FILES[key] = pulumi.Output.from_input(content)


def published() -> dict[str, pulumi.Output[str]]:
    return dict(_FILES)


def reset() -> None:
    _FILES.clear()
