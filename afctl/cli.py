"""`afctl`: offline preview, validation, policy check and schema of the facility's stacks."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from components.config import ConfigError, FacilityConfig, build_config
from components.config.loader import PROJECT_ROOT
from components.program import StackConfigError
from policy.offline import evaluate, mandatory, report_text
from policy.packconfig import pack_config, pack_config_json
from policy.rules import RULES

from . import graph, plan, reference, report
from .runner import run_program
from .stackfile import read_stack

EXIT_OK, EXIT_POLICY, EXIT_CONFIG = 0, 1, 2
POLICY_CONFIG = "policy-config.json"


def _fail_config(error: ConfigError) -> int:
    for line in error.lines():
        print(line, file=sys.stderr)
    return EXIT_CONFIG


def _load(args: argparse.Namespace) -> tuple[dict, set[str], FacilityConfig]:
    """The stack's values, offline: secrets only an operator can set are stood in for, with a note."""
    filled: list[str] = []
    values, secret = read_stack(args.stack, Path(args.project_dir), filled)
    cfg = build_config(values, secret)
    for path in filled:
        print(
            f"note: {path} is not set; the offline preview uses a placeholder (set it before pulumi up)",
            file=sys.stderr,
        )
    return values, secret, cfg


def cmd_validate(args: argparse.Namespace) -> int:
    _, _, cfg = _load(args)
    pack_config(cfg)  # rule names in af:policy.enforcement
    groups = ", ".join(f"{n} x{g.count}" for n, g in sorted(cfg.cluster.node_groups.items()))
    print(f"{args.stack}: valid ({cfg.cluster.mode} cluster at {cfg.site.name}; node groups {groups})")
    return EXIT_OK


def _policy(document: dict, config: dict) -> int:
    """Print the pack's verdict on a plan; exit 1 on a mandatory violation."""
    violations = evaluate(document, config)
    print(report_text(violations, len(RULES)))
    return EXIT_POLICY if mandatory(violations) else EXIT_OK


def cmd_preview(args: argparse.Namespace) -> int:
    values, secret, cfg = _load(args)
    config = pack_config(cfg)
    result = run_program(args.stack, values, secret)
    out = Path(args.out) if args.out else Path("build") / args.stack
    plan.write_plan(result, out)
    # The same pack config serves `pulumi preview --policy-pack policy --policy-pack-config …`.
    (out / POLICY_CONFIG).write_text(pack_config_json(cfg), encoding="utf-8")
    custom = [r for r in result.registrations if r.custom]
    print(report.tree(result.registrations))
    print()
    print(report.quota_table(cfg))
    print()
    kinds = Counter(r.type for r in custom)
    print(f"{len(custom)} resources ({len(kinds)} types), {len(result.files)} rendered files -> {out}")
    print()
    return _policy(plan.plan_document(result), config)


def cmd_policy(args: argparse.Namespace) -> int:
    if args.list:
        for rule in RULES:
            print(f"{rule.name:34} {rule.level.value:9}  {rule.description}")
        return EXIT_OK
    if not args.stack:
        print("afctl policy: give a STACK (or --list)", file=sys.stderr)
        return EXIT_CONFIG
    _, _, cfg = _load(args)
    config = pack_config(cfg)
    path = Path(args.plan) if args.plan else Path("build") / args.stack / "plan.json"
    if not path.is_file():
        print(f"plan: got no file at {path}; allowed: a plan written by afctl preview {args.stack}", file=sys.stderr)
        return EXIT_CONFIG
    return _policy(json.loads(path.read_text(encoding="utf-8")), config)


def cmd_graph(args: argparse.Namespace) -> int:
    values, secret, cfg = _load(args)
    document = plan.plan_document(run_program(args.stack, values, secret))
    text = graph.dot(graph.picture(document, cfg))
    out = Path(args.out) if args.out else Path("build") / args.stack
    out.mkdir(parents=True, exist_ok=True)
    (out / "graph.dot").write_text(text, encoding="utf-8")
    for fmt in ("svg", "png"):
        (out / f"graph.{fmt}").write_bytes(graph.render(text, fmt))
    print(f"{args.stack}: graph.dot, graph.svg, graph.png -> {out}")
    return EXIT_OK


def cmd_schema(_: argparse.Namespace) -> int:
    schema = FacilityConfig.model_json_schema(by_alias=True)
    schema["title"] = "Analysis facility stack config (Pulumi namespace af)"
    print(json.dumps(schema, indent=2, sort_keys=True))
    return EXIT_OK


def cmd_reference(args: argparse.Namespace) -> int:
    text = reference.render()
    if args.check:
        current = reference.REFERENCE.read_text(encoding="utf-8") if reference.REFERENCE.exists() else ""
        if current != text:
            print(f"{reference.REFERENCE} is out of date: run afctl reference", file=sys.stderr)
            return EXIT_POLICY
        return EXIT_OK
    reference.REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    reference.REFERENCE.write_text(text, encoding="utf-8")
    print(f"wrote {reference.REFERENCE}")
    return EXIT_OK


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="afctl", description=__doc__)
    top.add_argument(
        "--project-dir",
        default=str(PROJECT_ROOT),
        help="where the Pulumi.<stack>.yaml files are (default: this project)",
    )
    sub = top.add_subparsers(dest="command", required=True)
    preview = sub.add_parser("preview", help="run the program offline under mocks and write the plan")
    preview.add_argument("stack")
    preview.add_argument("--out", help="output directory (default build/STACK)")
    preview.set_defaults(func=cmd_preview)
    validate = sub.add_parser("validate", help="check a stack's config only")
    validate.add_argument("stack")
    validate.set_defaults(func=cmd_validate)
    policy = sub.add_parser("policy", help="evaluate the policy pack on the plan afctl preview recorded")
    policy.add_argument("stack", nargs="?")
    policy.add_argument("--plan", help="plan.json to judge (default build/STACK/plan.json)")
    policy.add_argument("--list", action="store_true", help="list the rules and their default levels")
    policy.set_defaults(func=cmd_policy)
    schema = sub.add_parser("schema", help="print the JSON Schema of the config")
    schema.set_defaults(func=cmd_schema)
    picture = sub.add_parser("graph", help="draw what a stack builds (SVG and PNG, with Graphviz)")
    picture.add_argument("stack")
    picture.add_argument("--out", help="output directory (default build/STACK)")
    picture.set_defaults(func=cmd_graph)
    ref = sub.add_parser("reference", help="write docs/config-reference.md from the config models")
    ref.add_argument("--check", action="store_true", help="exit 1 if the committed reference is out of date")
    ref.set_defaults(func=cmd_reference)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        return _fail_config(exc)
    except StackConfigError as exc:
        return _fail_config(exc.config_error)


if __name__ == "__main__":
    sys.exit(main())
