"""The layout's one rule, checked on the import graph: layers meet only through the shared names,
the config and `Facility`. A module of one layer package never imports another layer's
component, renderer or files; it may read another layer's config models (`<layer>.config`)."""

from __future__ import annotations

import ast
from pathlib import Path

from components.config.loader import PROJECT_ROOT

COMPONENTS = PROJECT_ROOT / "components"
LAYERS = {"infra", "hub", "cvmfs", "cache", "batch", "gpu", "offload", "monitoring", "certs", "flows", "dask"}
"""One package per concern of the facility."""
SHARED = {"names", "common", "credential"}
"""What every layer may use: names, Kubernetes building blocks, the shared IAM credential."""


def module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    path = PROJECT_ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports(path: Path, source: str | None = None) -> list[str]:
    """Absolute names of every module `path` imports (relative imports resolved; in
    `from package import name`, the module `name` when it is one, else the package)."""
    tree = ast.parse(source if source is not None else path.read_text(encoding="utf-8"))
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            for alias in node.names:
                submodule = f"{module}.{alias.name}"
                found.append(submodule if _is_module(submodule) else module)
    return found


def sideways(path: Path, source: str | None = None) -> list[str]:
    """The imports of `path` that break the rule, as `module -> imported`."""
    me = module_name(path).split(".")
    home = me[1] if len(me) > 1 else None
    wrong = []
    for name in imports(path, source):
        parts = name.split(".")
        if parts[0] == "autoscaler" and home is None and me[0] == "autoscaler":
            continue
        if me[0] == "autoscaler" and parts[0] == "components":
            wrong.append(name)  # the controller's image holds only its own package
            continue
        if parts[0] != "components" or len(parts) < 2 or home is None:
            continue
        target = parts[1]
        if home == "facility" or target == home:
            continue  # Facility composes every layer; a layer uses itself
        if home in SHARED or home == "config":
            allowed = target in SHARED or target == "config"
            # Only the config assembles the layers' sections and runs their checks.
            if home == "config" and target in LAYERS:
                allowed = len(parts) >= 3 and parts[2] in ("config", "checks")
        elif home in LAYERS:
            allowed = target in SHARED or target == "config" or (target in LAYERS and parts[2:3] == ["config"])
        else:
            allowed = True  # the shim kept for pickled dynamic providers (components/readiness.py)
        if not allowed:
            wrong.append(name)
    return [f"{module_name(path)} -> {name}" for name in wrong]


def test_no_layer_imports_another_layers_modules_besides_its_config():
    found = [line for path in sorted(COMPONENTS.rglob("*.py")) for line in sideways(path)]
    assert found == []


def test_the_autoscaler_runtime_needs_nothing_of_the_program():
    found = [line for path in sorted((PROJECT_ROOT / "autoscaler").rglob("*.py")) for line in sideways(path)]
    assert found == []


def test_every_layer_is_a_package_of_its_own():
    packages = {p.parent.name for p in COMPONENTS.glob("*/__init__.py")}
    assert packages >= LAYERS | {"config", "common", "credential"}


def test_the_check_catches_a_sideways_import():
    """The rule can fail: a batch module reading the hub's renderer, or the cache's component,
    or the shared names reaching into a layer, is reported."""
    batch = COMPONENTS / "batch" / "example.py"
    assert sideways(batch, "from ..hub.values import BEARER_TOKEN_FILE\n") == [
        "components.batch.example -> components.hub.values"
    ]
    assert sideways(batch, "from components.cache import component\n")
    assert sideways(COMPONENTS / "names.py", "from .hub.values import TLS_SECRET\n")
    assert sideways(batch, "from ..hub.config import Hub\nfrom ..names import CACHE_PORT\n") == []
