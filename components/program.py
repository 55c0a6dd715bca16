"""Glue between the Pulumi runtime and the config contract."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pulumi

from .config.errors import ConfigError


class StackConfigError(pulumi.RunError):
    """A RunError, so the Pulumi CLI prints the problems without a traceback."""

    def __init__(self, error: ConfigError) -> None:
        self.config_error = error
        super().__init__("invalid stack config:\n" + "\n".join(error.lines()))


@contextmanager
def fail_on_config_error() -> Iterator[None]:
    try:
        yield
    except ConfigError as exc:
        raise StackConfigError(exc) from None
