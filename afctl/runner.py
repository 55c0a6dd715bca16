"""Run the real Pulumi program in-process under the recording mocks."""

from __future__ import annotations

import json
import logging
import runpy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import empty_pb2
from pulumi.runtime import config as runtime_config
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.mocks import MockEngine, MockSettings
from pulumi.runtime.stack import run_in_stack
from pulumi.runtime.sync_await import _sync_await

from components.common import rendered
from components.config.errors import NAMESPACE
from components.config.loader import PROFILES_DIR, PROJECT_ROOT
from components.config.pulumi_source import profiles_from

from .mocks import RecordingMonitor, Registration

PROJECT = "analysis-facility"


@dataclass
class RunResult:
    stack: str
    registrations: list[Registration]
    outputs: dict[str, Any]
    files: dict[str, str]


def config_strings(values: dict[str, Any]) -> dict[str, str]:
    """Config as the engine passes it: namespaced keys, structured values as JSON text."""
    return {
        f"{NAMESPACE}:{key}": value if isinstance(value, str) else json.dumps(value) for key, value in values.items()
    }


def _configure(monitor: RecordingMonitor, stack: str) -> None:
    runtime_settings.ROOT.set(None)
    runtime_settings.configure(
        MockSettings(
            monitor=monitor,
            monitor_features=set(monitor.GetDeploymentInfo(empty_pb2.Empty()).supportedFeatures),
            engine=MockEngine(logging.getLogger("afctl.engine")),
            project=PROJECT,
            stack=stack,
            dry_run=False,
            organization="organization",
            callbacks=None,
        )
    )


def run_mocked(
    stack: str, body: Callable[[], object], on_register: Callable[[Registration], None] | None = None
) -> RecordingMonitor:
    """Run `body` as the program of `stack` inside a stack resource under fresh recording mocks.
    Shared by `run_program` and the benchmarks' bare-SDK baseline, so both pay the same setup."""
    monitor = RecordingMonitor()  # no arguments: tests swap in subclasses of their own
    monitor.on_register = on_register
    _configure(monitor, stack)
    _sync_await(run_in_stack(body))
    return monitor


def run_program(
    stack: str,
    values: dict[str, Any],
    secret_keys: set[str],
    program: Path = PROJECT_ROOT / "__main__.py",
    on_register: Callable[[Registration], None] | None = None,
    profiles_dir: Path = PROFILES_DIR,
) -> RunResult:
    """Register every resource the program declares for `stack`; return what was recorded.
    `on_register` sees each registration as it happens (progress output); the program merges
    profiles from `profiles_dir`. Raises whatever the program raises (a `StackConfigError` for
    bad config)."""
    runtime_config.set_all_config(config_strings(values), [f"{NAMESPACE}:{k}" for k in sorted(secret_keys)])
    rendered.reset()
    with profiles_from(profiles_dir):
        monitor = run_mocked(stack, lambda: runpy.run_path(str(program), run_name="__main__"), on_register)

    async def resolve() -> dict[str, str]:
        texts = {}
        for key, output in sorted(rendered.published().items()):
            if await output.is_secret():
                raise RuntimeError(f"rendered file {key} holds a secret; publish a redacted copy")
            texts[key] = await output.future()
        return texts

    files = _sync_await(resolve())
    return RunResult(stack, list(monitor.registrations), monitor.stack_outputs, files)
