"""The config reference (`docs/config-reference.md`), generated from the JSON Schema of the
models: every key with its type, default, description and an example taken from the shipped
stacks and profiles (or the default). `afctl reference` writes it; a test fails when the
committed file differs from what the models generate."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.config.errors import NAMESPACE
from components.config.facility import FacilityConfig
from components.config.loader import PROJECT_ROOT, load_yaml

from .stackfile import SHIPPED_STACKS, shipped_profiles, stack_file

REFERENCE = PROJECT_ROOT / "docs" / "config-reference.md"
Schema = Mapping[str, Any]


@dataclass(frozen=True)
class Key:
    path: str
    """`af:hub.profiles.<name>.cpu`: `<name>` for a mapping's keys, `[]` for a list's items."""
    type: str
    default: str
    description: str
    example: str
    required: bool


def _resolve(node: Schema, defs: Schema) -> Schema:
    ref = node.get("$ref")
    return defs[ref.rsplit("/", 1)[-1]] if ref else node


def _options(node: Schema, defs: Schema) -> list[Schema]:
    """The alternatives of a node (`anyOf`/`oneOf`), null excluded, each resolved."""
    choices = node.get("anyOf") or node.get("oneOf")
    if not choices:
        return [_resolve(node, defs)]
    return [option for c in choices if c.get("type") != "null" for option in _options(c, defs)]


def _map_values(option: Schema) -> Schema | None:
    """The schema of a map's values (`additionalProperties`, or the one `patternProperties`)."""
    if isinstance(option.get("additionalProperties"), dict):
        return option["additionalProperties"]
    patterns = option.get("patternProperties") or {}
    return next(iter(patterns.values())) if len(patterns) == 1 else None


def _type(node: Schema, defs: Schema) -> str:
    names = []
    for option in _options(node, defs):
        if "const" in option:
            names.append(json.dumps(option["const"]))
        elif "enum" in option:
            names.append(" | ".join(json.dumps(v) for v in option["enum"]))
        elif option.get("type") == "array":
            names.append(f"list of {_type(option.get('items', {}), defs)}")
        elif option.get("type") == "object" and "properties" not in option and (values := _map_values(option)):
            names.append(f"map of {_type(values, defs)}")
        elif option.get("type") == "object" or "properties" in option:
            names.append("object")
        else:
            names.append(str(option.get("type", "any")))
    nullable = any(c.get("type") == "null" for c in node.get("anyOf", []))
    return " or ".join(dict.fromkeys(names)) + (" (optional)" if nullable else "")


def _text(value: Any) -> str:
    return "" if value is None else f"`{json.dumps(value, sort_keys=True)}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _children(node: Schema, defs: Schema) -> Iterator[tuple[str, Schema, bool]]:
    """The keys below a node: (suffix, schema, required), for objects, maps and lists of objects.
    A tagged choice (`kind`) merges its members' keys, noting those only some members have."""
    options = _options(node, defs)
    members = [o for o in options if "properties" in o]
    if members:
        keys: dict[str, list[tuple[Schema, Schema]]] = {}
        for member in members:
            for key, sub in member["properties"].items():
                keys.setdefault(key, []).append((member, sub))
        for key, found in sorted(keys.items()):
            subs = [sub for _, sub in found]
            merged: Schema = subs[0] if len(subs) == 1 else {"anyOf": subs, **_common(subs)}
            if len(subs) > 1 and "description" not in merged:
                merged["description"] = " ".join(
                    f"`{m['properties']['kind'].get('const')}`: {sub.get('description', '')}" for m, sub in found
                )
            required = all(key in m.get("required", []) for m in members) and len(found) == len(members)
            if len(found) < len(members):
                tags = ", ".join(
                    f"`{m['properties']['kind'].get('const')}`" for m, _ in found if "kind" in m["properties"]
                )
                merged = {**merged, "description": f"With kind {tags}: {merged.get('description', '')}"}
                required = False
            yield f".{key}", merged, required
        return
    for option in options:
        if option.get("type") == "object" and (values := _map_values(option)) is not None:
            yield ".<name>", values, False
        elif option.get("type") == "array" and isinstance(option.get("items"), dict):
            yield "[]", option["items"], False


def _common(subs: list[Schema]) -> dict[str, Any]:
    """What every alternative says alike (its description, its default)."""
    shared = {k: subs[0][k] for k in ("description", "default") if k in subs[0]}
    return {k: v for k, v in shared.items() if all(s.get(k) == v for s in subs)}


def walk(schema: Schema, examples: Mapping[str, Any]) -> list[Key]:
    """Every key of the schema, depth first in name order."""
    defs = schema.get("$defs", {})
    found: list[Key] = []

    def visit(path: str, node: Schema, required: bool, seen: frozenset[str]) -> None:
        ref = node.get("$ref", "")
        if ref and ref in seen:
            return
        resolved = _resolve(node, defs)
        description = node.get("description") or resolved.get("description", "")
        example = examples.get(path)
        if isinstance(example, dict):
            example = None  # a whole section is no example: its keys have their own
        default = node.get("default")
        member = path.endswith("[]") or path.endswith(".<name>")
        if member and not any("properties" in o for o in _options(node, defs)):
            return  # the list's or map's own row says what its members are
        found.append(
            Key(
                path=path,
                type=_type(node, defs),
                default="" if required or "default" not in node else _text(default),
                description=description,
                example=_text(example) if example is not None else "",
                required=required,
            )
        )
        for suffix, child, child_required in _children(node, defs):
            visit(f"{path}{suffix}", child, child_required, seen | {ref})

    required = set(schema.get("required", []))
    for key, node in sorted(schema["properties"].items()):
        visit(f"{NAMESPACE}:{key}", node, key in required, frozenset())
    return found


def _flatten(value: Any, path: str, into: dict[str, Any], maps: Mapping[str, bool]) -> None:
    """Record `value` at `path` and below (mapping keys as `<name>` where the schema has a map)."""
    into.setdefault(path, value)
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.<name>" if maps.get(path) else f"{path}.{key}"
            _flatten(item, child, into, maps)
    elif isinstance(value, list):
        for item in value:
            _flatten(item, f"{path}[]", into, maps)


def examples(keys: list[Key], project: Path = PROJECT_ROOT) -> dict[str, Any]:
    """Values the shipped stacks and the profiles they name give each key (first in file order),
    secrets left out. An operator's own stacks and profiles never change the reference."""
    maps = {k.path.removesuffix(".<name>"): True for k in keys if k.path.endswith(".<name>")}
    found: dict[str, Any] = {}
    sources = [stack_file(s, project) for s in sorted(SHIPPED_STACKS)]
    sources += sorted(project / "stacks" / f"{name}.yaml" for name in shipped_profiles(project))
    for source in sources:
        doc = load_yaml(source) or {}
        values = (
            doc.get("config", {})
            if source.name.startswith("Pulumi.")
            else {f"{NAMESPACE}:{k}": v for k, v in doc.items()}
        )
        for key, value in values.items():
            if isinstance(value, dict) and "secure" in value:
                continue
            _flatten(value, key, found, maps)
    return found


def render(schema: Schema | None = None) -> str:
    schema = schema or FacilityConfig.model_json_schema(by_alias=True)
    skeleton = walk(schema, {})
    keys = walk(schema, examples(skeleton))
    lines = [
        "# Stack config reference",
        "",
        "Generated from the config models by `afctl reference` (the same JSON Schema `afctl schema`",
        "prints); do not edit by hand. Every key lives under the `af` namespace of a stack's",
        "`Pulumi.<stack>.yaml`, or without the `af:` prefix in a profile under `stacks/`.",
        "`<name>` stands for a key you choose (a node group, a gateway…), `[]` for a list item.",
        "Examples come from the shipped stacks and profiles.",
        "",
    ]
    top = ""
    for key in keys:
        section = key.path.split(".", 1)[0].split("[", 1)[0]
        if section != top:
            lines += [*([""] if top else []), f"## `{section}`", "", "| key | type | default | description | example |"]
            lines.append("|---|---|---|---|---|")
            top = section
        default = "required" if key.required else key.default
        lines.append(
            f"| `{key.path}` | {_cell(key.type)} | {_cell(default)} | {_cell(key.description)} | {_cell(key.example)} |"
        )
    return "\n".join(lines) + "\n"
