"""Shared fixtures: shipped stacks previewed once per session under the recording mocks."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support.kube import ControlPlane, Kube, ToolsMissing, control_plane, find_tools

from afctl.mocks import Registration
from afctl.runner import RunResult, run_program
from afctl.stackfile import SHIPPED_STACKS, read_stack

__all__ = ["SHIPPED_STACKS"]
IN_CI = os.environ.get("CI") == "true"


def preview_values(stack: str, values: dict[str, Any], secret: set[str]) -> RunResult:
    result = run_program(stack, values, secret)
    # A run that registered nothing would make every graph assertion vacuous.
    assert any(r.custom for r in result.registrations), f"{stack}: no resource registered"
    return result


@pytest.fixture(scope="session")
def shipped() -> Callable[[str], RunResult]:
    cache: dict[str, RunResult] = {}

    def get(stack: str) -> RunResult:
        if stack not in cache:
            values, secret = read_stack(stack)
            cache[stack] = preview_values(stack, values, secret)
        return cache[stack]

    return get


def stack_values(stack: str) -> tuple[dict[str, Any], set[str]]:
    values, secret = read_stack(stack)
    return copy.deepcopy(values), set(secret)


def local_values(stack: str) -> tuple[dict[str, Any], set[str]]:
    """A shipped stack without its HPC gateways: what runs in its own cluster. Tests of the pool's
    local groups use it; tests/test_offload.py covers the gateways."""
    values, secret = stack_values(stack)
    if values.pop("offload", None) is not None:
        secret.discard("offload")
    return values, secret


@pytest.fixture(scope="session")
def local(shipped: Callable[[str], RunResult]) -> Callable[[str], RunResult]:
    """`shipped`, for `local_values`: the same preview where a stack has no gateway."""
    cache: dict[str, RunResult] = {}

    def get(stack: str) -> RunResult:
        values, secret = local_values(stack)
        if values == stack_values(stack)[0]:
            return shipped(stack)
        if stack not in cache:
            cache[stack] = preview_values(stack, values, secret)
        return cache[stack]

    return get


def of_type(result: RunResult, type_: str) -> list[Registration]:
    return [r for r in result.registrations if r.type == type_]


def by_name(result: RunResult, name: str) -> Registration:
    matches = [r for r in result.registrations if r.name == name]
    assert len(matches) == 1, f"expected one resource named {name}, found {len(matches)}"
    return matches[0]


def secret_leaves(value: Any) -> int:
    """How many values of a plan document (or part of one) are Pulumi secrets, `"[secret]"`."""
    if isinstance(value, dict):
        return sum(secret_leaves(v) for v in value.values())
    if isinstance(value, list):
        return sum(secret_leaves(v) for v in value)
    return int(value == "[secret]")


@pytest.fixture(scope="session")
def kube_plane() -> Iterator[ControlPlane]:
    """One real control plane (etcd, API server, controller manager, scheduler, kwok) for the session. Its tools
    come from `make kube-tools`: missing, they fail the tests in CI and skip them elsewhere, naming the command."""
    try:
        tools = find_tools()
    except ToolsMissing as exc:
        if IN_CI:
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    with control_plane(tools) as plane:
        yield plane


@pytest.fixture(scope="session")
def kube(kube_plane: ControlPlane) -> Kube:
    """A cluster-admin client of the session's control plane."""
    return kube_plane.admin
