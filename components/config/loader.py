"""From a stack's `af:*` values and its profiles to a validated `FacilityConfig`.

Pure apart from reading profile files; the Pulumi runtime is read in `pulumi_source`."""

from __future__ import annotations

import copy
import dataclasses
import re
import types
import typing
from collections.abc import Callable, Mapping, Set
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, SecretStr, ValidationError

from ..offload.config import GATEWAY_SECRETS
from .base import PATTERN_HELP
from .checks import cross_checks
from .errors import ConfigError, Problem, key_path, problem, show_value
from .facility import FacilityConfig

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROFILES_DIR = PROJECT_ROOT / "stacks"
STAND_IN = "offline-preview-secret"
_PROFILE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*(/[a-z0-9][a-z0-9-]*)*$")


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of silently keeping the last one."""


def _mapping_no_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_no_duplicates)


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_StrictLoader)


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; anything else (lists included) is replaced by the override."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def available_profiles(profiles_dir: Path = PROFILES_DIR) -> list[str]:
    return sorted(str(p.relative_to(profiles_dir).with_suffix("")) for p in profiles_dir.rglob("*.yaml"))


def _sources(value: Any, loc: tuple[str | int, ...], source: str, into: dict[str, str]) -> None:
    """Record `source` for every value below `loc` that is not a mapping (lists are replaced whole
    by a merge, so a list's items come from where the list does)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            _sources(item, (*loc, str(key)), source, into)
    else:
        into[key_path(loc)] = source


def _with_sources(found: list[Problem], sources: Mapping[str, str]) -> list[Problem]:
    """Each problem whose value (or the list holding it) a profile set, with that profile's file."""
    out = []
    for p in found:
        owners = [k for k in sources if p.path == k or p.path.startswith((f"{k}.", f"{k}["))]
        out.append(dataclasses.replace(p, source=sources[max(owners, key=len)]) if owners else p)
    return out


def _load_profiles(
    names: Any, profiles_dir: Path, sources: dict[str, str] | None = None
) -> tuple[dict[str, Any], list[Problem]]:
    """The profiles merged in order; `sources` gets, per key path, the file of the last profile
    that set it."""
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return {}, [problem(("profiles",), names, "a list of profile names from stacks/")]
    merged: dict[str, Any] = {}
    found: list[Problem] = []
    known = available_profiles(profiles_dir)
    for index, name in enumerate(names):
        path = profiles_dir / f"{name}.yaml"
        if not _PROFILE_NAME.match(name) or not path.is_file():
            found.append(problem(("profiles", index), name, f"one of {', '.join(known)}"))
            continue
        try:
            data = load_yaml(path)
        except yaml.YAMLError as exc:
            found.append(problem(("profiles", index), name, f"a readable YAML profile ({exc})".replace("\n", " ")))
            continue
        if not isinstance(data, dict):
            found.append(problem(("profiles", index), name, "a profile that is a mapping of af sections"))
            continue
        if sources is not None:
            _sources(data, (), f"{profiles_dir.name}/{name}.yaml", sources)
        merged = deep_merge(merged, data)
    return merged, found


def _unwrap(annotation: Any) -> Any:
    """The model class inside `X | None`, `list[X]`, `dict[str, X]`, `Annotated[X, ...]`."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = args[0] if len(args) == 1 else annotation
            if len(args) != 1:
                return annotation
        else:
            return annotation


def _tags(annotation: Any) -> dict[str, type[BaseModel]]:
    """The members of a union of models tagged by `kind`, by tag ({} for anything else)."""
    members: dict[str, type[BaseModel]] = {}
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for member in typing.get_args(annotation):
            kind = getattr(member, "model_fields", {}).get("kind")
            members.update({tag: member for tag in typing.get_args(kind.annotation)} if kind else {})
    return members


def _model_at(loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The model class that validates the mapping at `loc`, to name the keys it knows."""
    current: Any = FacilityConfig
    index = 0
    while index < len(loc):
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        by_alias = {(f.alias or n): f for n, f in current.model_fields.items()}
        field = by_alias.get(str(loc[index]))
        if field is None:
            return None
        annotation = _unwrap(field.annotation)
        origin = typing.get_origin(annotation)
        if origin in (list, dict):
            annotation = _unwrap(typing.get_args(annotation)[-1])
            index += 1  # skip the list index or the mapping key
        tagged = _tags(annotation)
        if tagged and index + 1 < len(loc) and str(loc[index + 1]) in tagged:
            annotation = tagged[str(loc[index + 1])]
            index += 1  # pydantic puts the member's tag in the location
        current = annotation
        index += 1
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _without_tags(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """`loc` without the union tags pydantic inserts: the user's key path."""
    kept: list[str | int] = []
    for part in loc:
        parent = _model_at(tuple(kept[:-1])) if kept else None
        field = {(f.alias or n): f for n, f in parent.model_fields.items()}.get(str(kept[-1])) if parent else None
        if field is not None and str(part) in _tags(_unwrap(field.annotation)):
            continue
        kept.append(part)
    return tuple(kept)


def _mapping_text(loc: tuple[str | int, ...]) -> str:
    """What a mapping at `loc` holds: its model's keys, or names each mapped to such a model."""
    model = _model_at(loc)
    keys = ", ".join(sorted(f.alias or n for n, f in model.model_fields.items())) if model else ""
    parent = _model_at(loc[:-1]) if loc else None
    field = {(f.alias or n): f for n, f in parent.model_fields.items()}.get(str(loc[-1])) if parent else None
    if field is not None and typing.get_origin(_unwrap(field.annotation)) is dict:
        return f"a mapping of names, each to a mapping with the keys {keys}" if keys else "a mapping of names"
    return f"a mapping with the keys {keys}" if keys else "a mapping (see afctl schema)"


def _size(ctx: Mapping[str, Any], key: str) -> str:
    value = ctx.get(key)
    return f"{value:g}" if isinstance(value, float) else str(value)


# pydantic's error types in plain words; `ctx` fills the bounds.
_PLAIN: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "int_parsing": lambda ctx: "a whole number",
    "int_type": lambda ctx: "a whole number",
    "int_from_float": lambda ctx: "a whole number",
    "float_parsing": lambda ctx: "a number",
    "float_type": lambda ctx: "a number",
    "bool_type": lambda ctx: "true or false (a YAML boolean, not text or a number)",
    "bool_parsing": lambda ctx: "true or false (a YAML boolean, not text or a number)",
    "string_type": lambda ctx: "text (quote it if YAML reads it as a number or a boolean)",
    "list_type": lambda ctx: "a list, such as [a, b]",
    "greater_than_equal": lambda ctx: f"a number of at least {_size(ctx, 'ge')}",
    "greater_than": lambda ctx: f"a number above {_size(ctx, 'gt')}",
    "less_than_equal": lambda ctx: f"a number of at most {_size(ctx, 'le')}",
    "less_than": lambda ctx: f"a number below {_size(ctx, 'lt')}",
    "too_short": lambda ctx: f"at least {_size(ctx, 'min_length')} item(s)",
    "too_long": lambda ctx: f"at most {_size(ctx, 'max_length')} item(s)",
    "string_too_short": lambda ctx: f"text of at least {_size(ctx, 'min_length')} character(s)",
    "string_too_long": lambda ctx: f"text of at most {_size(ctx, 'max_length')} characters",
    "literal_error": lambda ctx: f"one of {ctx.get('expected')}",
    "url_parsing": lambda ctx: "an https:// URL such as https://iam.example.org/",
    "url_type": lambda ctx: "an https:// URL such as https://iam.example.org/",
    "url_scheme": lambda ctx: "an https:// URL such as https://iam.example.org/ (no other scheme)",
}


def _allowed_text(error: Mapping[str, Any]) -> str:
    kind, msg, ctx = error["type"], error["msg"], error.get("ctx") or {}
    if kind == "missing":
        return "a value: this key is required"
    if kind == "extra_forbidden":
        parent = _model_at(tuple(error["loc"][:-1]))
        if parent is not None:
            keys = sorted(f.alias or n for n, f in parent.model_fields.items())
            return f"one of the keys {', '.join(keys)}"
        return "no such key (see `afctl schema`)"
    if kind == "string_pattern_mismatch":
        return PATTERN_HELP.get(ctx.get("pattern", ""), "text of the form afctl schema describes for this key")
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return _mapping_text(_without_tags(tuple(error["loc"])))
    if kind in _PLAIN:
        return _PLAIN[kind](ctx)
    for prefix in ("Value error, ", "Input should be ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    return msg


def _secret_names(model: type[BaseModel] = FacilityConfig, seen: set[type] | None = None) -> set[str]:
    """The keys of every secret field of the config models (`clientSecret`, `kubeconfig`, …)."""
    seen = set() if seen is None else seen
    if model in seen:
        return set()
    seen.add(model)
    names: set[str] = set()
    for name, field in model.model_fields.items():
        for inner in _leaf_types(field.annotation):
            if inner is SecretStr:
                names.add(field.alias or name)
            elif isinstance(inner, type) and issubclass(inner, BaseModel):
                names |= _secret_names(inner, seen)
    return names


def _leaf_types(annotation: Any) -> list[Any]:
    """The types inside unions, lists, mappings and `Annotated`."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _leaf_types(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list, dict):
        return [t for arg in typing.get_args(annotation) for t in _leaf_types(arg)]
    return [annotation]


SECRET_NAMES = frozenset(_secret_names())
"""Keys whose values are never echoed in an error, whatever section they are in."""


def _masked(value: Any) -> Any:
    """`value` with what sits under a secret key replaced by `[secret]`."""
    if isinstance(value, Mapping):
        return {k: "[secret]" if str(k) in SECRET_NAMES else _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def _shown(error: Mapping[str, Any], loc: tuple[str | int, ...], secret_keys: Set[str]) -> str:
    """The value of an error as the contract shows it: never the content of a secret key, nor an
    unknown key's value in a section that holds secrets (it may be a misspelt secret)."""
    if loc and (str(loc[-1]) in SECRET_NAMES or (error["type"] == "extra_forbidden" and loc[0] in secret_keys)):
        return "[secret]"
    return show_value(_masked(error["input"]))


def translate(exc: ValidationError, secret_keys: Set[str] = frozenset()) -> list[Problem]:
    """pydantic's errors in the contract's words. A secret's value is never echoed (a kubeconfig
    set without `--path` must not end up in a CI log); the rest of a secret section is."""
    found = []
    for error in exc.errors(include_url=False):
        loc = _without_tags(tuple(error["loc"]))
        if loc and loc[-1] == "[key]":
            # A mapping key failed (for example a node group name): report the key itself.
            found.append(Problem(key_path(loc[:-1]), show_value(error["input"]), _allowed_text(error)))
            continue
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            # A tagged choice (`kind`): report the tag, never the whole block (it may hold a secret).
            ctx, tag_key = error.get("ctx", {}), error.get("ctx", {}).get("discriminator", "'kind'").strip("'")
            tag = ctx.get("tag")
            expected = ctx.get("expected_tags") or _expected_tags(loc)
            found.append(
                Problem(key_path((*loc, tag_key)), "nothing" if tag is None else show_value(tag), f"one of {expected}")
            )
            continue
        value = "nothing" if error["type"] == "missing" else _shown(error, loc, secret_keys)
        found.append(Problem(key_path(loc), value, _allowed_text(error)))
    return found


def _expected_tags(loc: tuple[str | int, ...]) -> str:
    """The tags a tagged choice at `loc` accepts (pydantic names them only for a wrong tag)."""
    model = _model_at(loc[:-1])
    field = {(f.alias or n): f for n, f in model.model_fields.items()}.get(str(loc[-1])) if model else None
    tags = [repr(t) for t in _tags(_unwrap(field.annotation))] if field else []
    return ", ".join(tags) or "the documented kinds"


def _secret_fields(model: BaseModel, loc: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Locations of every secret value present in the validated config."""
    found = []
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        here = (*loc, field.alias or name)
        if isinstance(value, SecretStr):
            found.append(here)
        elif isinstance(value, BaseModel):
            found.extend(_secret_fields(value, here))
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, BaseModel):
                    found.extend(_secret_fields(item, (*here, key)))
    return found


def _hub_on(merged: Mapping[str, Any]) -> bool:
    hub = merged.get("hub")
    return not (isinstance(hub, Mapping) and hub.get("enabled") is False)


def _provided_tls(merged: Mapping[str, Any]) -> bool:
    tls = (merged.get("hub") or {}).get("tls") if isinstance(merged.get("hub"), Mapping) else None
    return _hub_on(merged) and isinstance(tls, Mapping) and tls.get("mode") == "provided"


def _cache_token(merged: Mapping[str, Any]) -> bool:
    cache = merged.get("cache")
    if not isinstance(cache, Mapping) or cache.get("enabled") is not True:
        return False
    upstream = cache.get("upstream")
    return isinstance(upstream, Mapping) and upstream.get("kind") == "bearer-token"


def _node_cache_client(merged: Mapping[str, Any]) -> bool:
    cache = merged.get("cache")
    if not isinstance(cache, Mapping) or cache.get("enabled") is not True:
        return False
    local = cache.get("nodeLocal")
    return isinstance(local, Mapping) and local.get("enabled") is True and isinstance(local.get("client"), Mapping)


# Secrets only the operator can supply (IAM issues the client secret), with when the merged
# config needs them: the offline preview stands in for these.
DEPLOY_SECRETS: tuple[tuple[tuple[str, ...], Callable[[Mapping[str, Any]], bool]], ...] = (
    (("identity", "clientSecret"), _hub_on),
    (("hub", "tls", "privateKey"), _provided_tls),
    (("cache", "upstream", "clientSecret"), _cache_token),
    (("cache", "nodeLocal", "client", "clientSecret"), _node_cache_client),
)


def _deploy_secret_paths(merged: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """The deploy secrets this merged config needs: the fixed ones, and one per gateway."""
    paths = [path for path, needed in DEPLOY_SECRETS if needed(merged)]
    offload = merged.get("offload")
    gateways = offload.get("gateways") if isinstance(offload, Mapping) else None
    for name, gateway in sorted(gateways.items()) if isinstance(gateways, Mapping) else ():
        auth = gateway.get("auth") if isinstance(gateway, Mapping) else None
        kind = auth.get("kind") if isinstance(auth, Mapping) else None
        if kind in GATEWAY_SECRETS:
            paths.append(("offload", "gateways", str(name), "auth", GATEWAY_SECRETS[kind]))
    return paths


def stand_in_secrets(
    stack_values: Mapping[str, Any], secret_keys: Set[str], profiles_dir: Path = PROFILES_DIR
) -> tuple[dict[str, Any], set[str], list[str]]:
    """For the offline preview: the stack's values with a placeholder for each deploy secret
    the merged config needs but nobody set, the secret keys, and the key paths filled."""
    base, _ = _load_profiles(stack_values.get("profiles", []), profiles_dir)
    merged = deep_merge(base, stack_values)
    values, secrets, filled = copy.deepcopy(dict(stack_values)), set(secret_keys), []
    for path in _deploy_secret_paths(merged):
        section: Any = merged
        for key in path[:-1]:
            section = section.get(key) if isinstance(section, Mapping) else None
        if not isinstance(section, Mapping) or path[-1] in section:
            continue
        target = values
        for key in path[:-1]:
            target = target.setdefault(key, {})
            if not isinstance(target, dict):
                break
        else:
            target[path[-1]] = STAND_IN
            secrets.add(path[0])
            filled.append(key_path(path))
    return values, secrets, filled


def build_config(
    stack_values: Mapping[str, Any],
    secret_keys: Set[str] = frozenset(),
    profiles_dir: Path = PROFILES_DIR,
) -> FacilityConfig:
    """Merge profiles below the stack's values, validate, run the cross checks.

    `stack_values` are the stack's `af:*` keys without the namespace; `secret_keys` the
    top-level ones Pulumi holds as secrets. Raises `ConfigError` listing every problem."""
    sources: dict[str, str] = {}
    base, found = _load_profiles(stack_values.get("profiles", []), profiles_dir, sources)
    if found:
        # Without a profile, most of the config is missing: every other problem would be a
        # knock-on of this one (`af:identity: got nothing`), so the profiles are fixed first.
        raise ConfigError(found)
    for key in stack_values:
        _sources(stack_values[key], (key,), "", sources)  # the stack's own values: no note
    sources = {k: v for k, v in sources.items() if v}
    merged = deep_merge(base, stack_values)
    try:
        cfg = FacilityConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_with_sources(translate(exc, secret_keys), sources)) from None
    found += cross_checks(cfg)
    for loc in _secret_fields(cfg):
        if loc[0] not in secret_keys:
            path = key_path(loc)
            found.append(Problem(path, "plaintext", f"a Pulumi secret: pulumi config set --secret --path '{path}' …"))
    if found:
        raise ConfigError(_with_sources(found, sources))
    return cfg
