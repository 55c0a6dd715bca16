"""Progress of a long preview on stderr: a person at a terminal sees the program is alive; stdout
(the tree, the tables, a `--json` document) stays exactly what it would be without it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from .mocks import Registration

EVERY = 100
"""Registrations between two lines, unless `INTERVAL` seconds pass first."""
INTERVAL = 1.0


def wanted(flag: bool | None, stream: TextIO) -> bool:
    """`--progress` / `--no-progress` decide; without either, only a terminal gets progress."""
    if flag is not None:
        return flag
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Progress:
    """Counts registrations; prints `stack: registered N resources…` every `every` of them or
    every `interval` seconds, whichever comes first, and a closing line from `done()`. Resources
    are counted as the preview's summary counts them: custom resources, components apart."""

    def __init__(
        self,
        label: str,
        stream: TextIO,
        every: int = EVERY,
        interval: float = INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label, self.stream, self.every, self.interval, self.clock = label, stream, every, interval, clock
        self.count = self.components = 0
        self.started = self.last = clock()

    def __call__(self, registration: Registration) -> None:
        if not registration.custom:
            self.components += 1
            return
        self.count += 1
        now = self.clock()
        if self.count % self.every == 0 or now - self.last >= self.interval:
            self.last = now
            print(f"{self.label}: registered {self.count} resources…", file=self.stream, flush=True)

    def done(self) -> None:
        seconds = self.clock() - self.started
        print(
            f"{self.label}: registered {self.count} resources (and {self.components} components) in {seconds:.1f}s",
            file=self.stream,
            flush=True,
        )
