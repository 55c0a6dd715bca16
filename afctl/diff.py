"""`afctl diff`: what going from plan A to plan B would do, resource by resource, the way
`pulumi preview` would report it (create, delete, update in place, replace) and which inputs
changed, by property path.

Pure functions over plan documents. An in-process preview adds what the engine knows and
plan.json does not carry (see `Engine`); a plan file read from disk has none of it, and the
diff says what it could not judge rather than guess."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .mocks import SECRET, UNKNOWN, Registration, mock_outputs
from .plan import plan_document
from .propertypath import Path, contains, format_path, parse_path
from .replacements import ALL, replace_paths
from .runner import RunResult


class Kind(StrEnum):
    CREATE = "create"
    REPLACE = "replace"
    UPDATE = "update"
    DELETE = "delete"


ORDER = (Kind.CREATE, Kind.REPLACE, Kind.UPDATE, Kind.DELETE)
STACK_TYPE = "pulumi:pulumi:Stack"
PROVIDER = "provider"
"""The replacement reason when a resource moves to a different provider."""


@dataclass(frozen=True)
class Engine:
    """What the engine knows about one resource beyond its plan.json entry."""

    ignore_changes: tuple[str, ...] = ()
    replace_on_changes: tuple[str, ...] = ()
    property_dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)
    """Salted digests of secret inputs by property path: two previews in one process compare them."""

    @classmethod
    def of(cls, r: Registration) -> Engine:
        return cls(r.ignore_changes, r.replace_on_changes, r.property_dependencies, r.secrets)


@dataclass(frozen=True)
class Side:
    """One end of a diff: a plan document, and the engine's view when it was previewed here."""

    label: str
    document: Mapping[str, Any]
    engine: Mapping[str, Engine] | None = None
    """By URN; None for a plan file."""

    @classmethod
    def of_run(cls, label: str, result: RunResult) -> Side:
        return cls(label, plan_document(result), {r.urn: Engine.of(r) for r in result.registrations})


@dataclass(frozen=True)
class Change:
    path: str
    op: str
    """`add`, `delete` or `update`."""
    before: Any = None
    after: Any = None
    replaces: bool = False
    cause: str = ""
    """Empty for a changed input; the URN of a replaced or new resource this input's value comes from."""


@dataclass(frozen=True)
class ResourceDiff:
    kind: Kind
    urn: str
    type: str
    name: str
    changes: tuple[Change, ...] = ()
    provider_changed: bool = False

    @property
    def reasons(self) -> list[str]:
        """What forces a replacement: property paths, or `provider`."""
        return [c.path for c in self.changes if c.replaces] + ([PROVIDER] if self.provider_changed else [])


@dataclass(frozen=True)
class PlanDiff:
    before: str
    after: str
    match: str
    """`urn` (same stack) or `type+name` (two stacks: URNs differ by the stack name)."""
    resources: tuple[ResourceDiff, ...]
    unchanged: int
    ignored: Mapping[str, tuple[str, ...]]
    """URN -> changed paths that `ignoreChanges` keeps Pulumi from acting on."""
    outputs: tuple[Change, ...]
    uncompared_secrets: int
    """Secret values present on both sides that could not be compared (a plan file keeps no digest)."""

    def counts(self) -> dict[str, int]:
        found = Counter(r.kind for r in self.resources)
        return {kind.value: found[kind] for kind in ORDER} | {"unchanged": self.unchanged}


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


ABSENT: Any = _Absent()


def _get(mapping: Mapping[str, Any], key: str) -> Any:
    value = mapping.get(key, ABSENT)
    return ABSENT if value is None else value  # the engine skips nulls: null and absent are alike


def _at(items: Sequence[Any], index: int) -> Any:
    return items[index] if index < len(items) else ABSENT


def leaf_changes(
    before: Any, after: Any, secret_differs: Callable[[Path], bool | None], path: Path = ()
) -> Iterator[tuple[Path, Any, Any]]:
    """(path, before, after) for each value that differs, maps and lists compared element by element,
    as the Kubernetes provider's detailed diff does. Two `[secret]`s differ when `secret_differs`
    says so (None: cannot tell, counted by the caller)."""
    if before == SECRET and after == SECRET:
        if secret_differs(path):
            yield path, before, after
    # No shortcut on equal maps or lists: two equal `[secret]`s inside may still differ.
    elif isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after)):
            yield from leaf_changes(_get(before, key), _get(after, key), secret_differs, (*path, key))
    elif isinstance(before, list) and isinstance(after, list):
        for index in range(max(len(before), len(after))):
            yield from leaf_changes(_at(before, index), _at(after, index), secret_differs, (*path, index))
    elif before != after:
        yield path, before, after


def _has(value: Any, rest: Path) -> bool:
    if not rest:
        return value is not ABSENT
    head, tail = rest[0], rest[1:]
    if isinstance(value, dict):
        items = list(value.values()) if head == "*" else [value.get(head, ABSENT)]
    elif isinstance(value, list):
        items = value if head == "*" else ([_at(value, head)] if isinstance(head, int) else [])
    else:
        return False
    return any(_has(item, tail) for item in items)


def triggers(patterns: Sequence[Path], path: Path, before: Any, after: Any) -> bool:
    """A change at `path` hits a pattern when the pattern contains it, or when the change adds or
    removes a whole subtree that holds the pattern's path."""
    for pattern in patterns:
        if pattern == (ALL,) or contains(pattern, path):
            return True
        if len(path) < len(pattern) and contains(pattern[: len(path)], path):
            rest = pattern[len(path) :]
            if _has(before, rest) or _has(after, rest):
                return True
    return False


def _show_secret(value: Any) -> Any:
    return ABSENT if value is ABSENT else SECRET


def _change(path: Path, before: Any, after: Any, replaces: bool, cause: str = "") -> Change:
    if SECRET in (before, after):  # a value going to or from a secret is shown as a secret on both sides
        before, after = _show_secret(before), _show_secret(after)
    op = "add" if before is ABSENT else "delete" if after is ABSENT else "update"
    return Change(
        format_path(path),
        op,
        None if before is ABSENT else before,
        None if after is ABSENT else after,
        replaces,
        cause,
    )


def _restack(value: Any, old: str, new: str) -> Any:
    """Rewrite URNs of stack `old` into stack `new`, so two stacks' plans compare as one would evolve."""
    if isinstance(value, str):
        return value.replace(f"urn:pulumi:{old}::", f"urn:pulumi:{new}::")
    if isinstance(value, dict):
        return {k: _restack(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_restack(v, old, new) for v in value]
    return value


def _keys(resources: Sequence[Mapping[str, Any]], by_urn: bool) -> dict[Any, Mapping[str, Any]]:
    if by_urn:
        return {r["urn"]: r for r in resources}
    seen = Counter((r["type"], r["name"]) for r in resources)

    def key(r: Mapping[str, Any]) -> Any:
        if r["type"] == STACK_TYPE:  # named after the stack: there is one per plan
            return STACK_TYPE
        # (type, name) is unique in practice; a pair seen twice falls back to the URN minus its stack.
        return (r["type"], r["name"]) if seen[(r["type"], r["name"])] == 1 else r["urn"].split("::", 1)[1]

    return {key(r): r for r in resources}


def _patterns(texts: Sequence[str]) -> list[Path]:
    return [(ALL,) if text == ALL else parse_path(text) for text in texts]


@dataclass
class _Pair:
    """A resource on both sides, while its changes are worked out."""

    b: Mapping[str, Any]
    before: Mapping[str, Any]
    """A's inputs, URNs rewritten to B's stack."""
    engine: Engine
    replace: list[Path]
    ignore: list[Path]
    provider_changed: bool
    changes: list[Change] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    seen: list[Path] = field(default_factory=list)

    def kind(self) -> Kind | None:
        if self.provider_changed or any(c.replaces for c in self.changes):
            return Kind.REPLACE
        return Kind.UPDATE if self.changes else None

    def add(self, path: Path, before: Any, after: Any, replaces: bool, cause: str = "") -> None:
        self.seen.append(path)
        if any(contains(p, path) for p in self.ignore):
            self.ignored.append(format_path(path))
        else:
            self.changes.append(_change(path, before, after, replaces, cause))

    def touched(self, path: Path) -> bool:
        """Whether a change already recorded lies at, under or above `path`."""
        return any(contains(path, k) or contains(k, path) for k in self.seen)


def _tokens(resources: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Values the mocks hand out for these resources (IDs, addresses, certificates) -> URN: where a
    plan file shows one inside another resource's inputs, that input comes from the resource."""
    found: dict[str, str] = {}
    for r in resources:
        if r["custom"]:
            for value in mock_outputs(r["type"], r["name"], r["inputs"]).values():
                if isinstance(value, str) and len(value) >= 8:
                    found[value] = r["urn"]
    return found


def _mentions(value: Any, tokens: Mapping[str, str], path: Path = ()) -> Iterator[tuple[Path, str]]:
    if isinstance(value, str) and value != SECRET:
        for token, urn in tokens.items():
            if value == token or (len(token) >= 12 and token in value):
                yield path, urn
                return
    elif isinstance(value, dict):
        for key, item in sorted(value.items()):
            yield from _mentions(item, tokens, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _mentions(item, tokens, (*path, index))


def _value(inputs: Any, path: Path) -> Any:
    for part in path:
        if isinstance(inputs, dict):
            inputs = _get(inputs, part) if isinstance(part, str) else ABSENT
        elif isinstance(inputs, list) and isinstance(part, int):
            inputs = _at(inputs, part)
        else:
            return ABSENT
    return inputs


def _cascade(pairs: Sequence[_Pair], created: Sequence[Mapping[str, Any]], engine_known: bool) -> None:
    """A replaced or new resource's outputs are unknown until `pulumi up` makes it: every input
    built from them changes too, and may replace its resource in turn. In-process previews know
    each input's property dependencies; for a plan file, the mocks' IDs and addresses found in
    other inputs stand in for them."""
    sources: dict[str, Mapping[str, Any]] = {r["urn"]: r for r in created}
    while True:
        sources |= {p.b["urn"]: p.b for p in pairs if p.kind() == Kind.REPLACE}
        tokens = {} if engine_known else _tokens(list(sources.values()))
        grew = False
        for pair in pairs:
            replaced = pair.kind() == Kind.REPLACE
            if engine_known:
                hits = [
                    ((prop,), next(u for u in deps if u in sources))
                    for prop, deps in sorted(pair.engine.property_dependencies.items())
                    if any(u in sources for u in deps)
                ]
            else:
                hits = list(_mentions(pair.b["inputs"], tokens))
            for path, urn in hits:
                if urn == pair.b["urn"] or pair.touched(path):
                    continue
                replaces = any(p == (ALL,) or contains(p, path) for p in pair.replace)
                pair.add(path, _value(pair.before, path), UNKNOWN, replaces, urn)
                grew |= replaces and not replaced
        if not grew:
            return


def diff(a: Side, b: Side) -> PlanDiff:
    stack_a, stack_b = a.document["stack"], b.document["stack"]
    same_stack = stack_a == stack_b
    doc_a = a.document if same_stack else _restack(a.document, stack_a, stack_b)
    original = {moved["urn"]: r["urn"] for moved, r in zip(doc_a["resources"], a.document["resources"], strict=True)}
    # Resources as afctl counts them everywhere: custom ones; components only group them.
    olds = _keys([r for r in doc_a["resources"] if r["custom"]], same_stack)
    news = _keys([r for r in b.document["resources"] if r["custom"]], same_stack)
    by_urn_b = {r["urn"]: r for r in b.document["resources"]}
    uncompared = 0

    def secrets_of(urn_a: str, urn_b: str) -> Callable[[Path], bool | None]:
        def differs(path: Path) -> bool | None:
            nonlocal uncompared
            key = format_path(path)
            old = a.engine.get(urn_a, Engine()).secrets.get(key) if a.engine is not None else None
            new = b.engine.get(urn_b, Engine()).secrets.get(key) if b.engine is not None else None
            if old is None or new is None:
                uncompared += 1
                return None
            return old != new

        return differs

    pairs: list[_Pair] = []
    for key in sorted(set(olds) & set(news), key=str):
        old, new = olds[key], news[key]
        engine = (b.engine or {}).get(new["urn"], Engine())
        provider_inputs = by_urn_b.get(new["provider"], {}).get("inputs", {})
        table = (replace_paths(new["type"], new["inputs"], provider_inputs) or ()) if new["custom"] else ()
        pair = _Pair(
            new,
            old["inputs"],
            engine,
            _patterns([*table, *engine.replace_on_changes]),
            _patterns(engine.ignore_changes),
            bool(new["custom"]) and old["provider"] != new["provider"],
        )
        changed = leaf_changes(old["inputs"], new["inputs"], secrets_of(original[old["urn"]], new["urn"]))
        for path, before, after in changed:
            pair.add(path, before, after, triggers(pair.replace, path, before, after))
        pairs.append(pair)

    created = [news[k] for k in sorted(set(news) - set(olds), key=str)]
    _cascade(pairs, created, b.engine is not None)

    resources = [ResourceDiff(Kind.CREATE, r["urn"], r["type"], r["name"]) for r in created]
    for key in sorted(set(olds) - set(news), key=str):
        gone = olds[key]
        resources.append(ResourceDiff(Kind.DELETE, original[gone["urn"]], gone["type"], gone["name"]))
    unchanged = 0
    for pair in pairs:
        kind = pair.kind()
        if kind is None:
            unchanged += 1
        else:
            r = pair.b
            changes = tuple(sorted(pair.changes, key=lambda c: c.path))
            resources.append(ResourceDiff(kind, r["urn"], r["type"], r["name"], changes, pair.provider_changed))
    resources.sort(key=lambda r: (ORDER.index(r.kind), r.urn))
    outputs = tuple(
        _change(path, before, after, False)
        for path, before, after in leaf_changes(doc_a["outputs"], b.document["outputs"], lambda _: False)
    )
    return PlanDiff(
        a.label,
        b.label,
        "urn" if same_stack else "type+name",
        tuple(resources),
        unchanged,
        {p.b["urn"]: tuple(p.ignored) for p in sorted(pairs, key=lambda p: p.b["urn"]) if p.ignored},
        outputs,
        uncompared,
    )
