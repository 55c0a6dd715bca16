"""`afctl`: offline preview, validation, policy check, plan diff and schema of the facility's stacks."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from importlib import metadata
from pathlib import Path
from typing import Any

from components.config.errors import ConfigError, Problem, show_value
from components.config.facility import FacilityConfig
from components.config.loader import PROJECT_ROOT, build_config
from components.config.pulumi_source import StackConfigError
from policy.offline import Violation, evaluate, mandatory, report_text
from policy.packconfig import pack_config, pack_config_json
from policy.rules import RULES

from . import diff, documents, graph, plan, progress, reference, report
from .runner import RunResult, run_program
from .stackfile import SHIPPED_STACKS, available_stacks, profiles_dir, read_stack, stack_file

EXIT_OK, EXIT_POLICY, EXIT_CONFIG, EXIT_TOOL = 0, 1, 2, 3
POLICY_CONFIG = "policy-config.json"
EXIT_CODES = """exit codes:
  0  ok
  1  a mandatory policy violation (preview, policy); the reference is out of date (reference --check)
  2  a config error, or no such stack or plan: one line per problem on stderr
  3  a tool afctl needs is missing (graph: Graphviz)"""


def _fail_config(error: ConfigError, args: argparse.Namespace) -> int:
    """Human lines on stderr always; with `--json`, the same problems as a document on stdout."""
    for line in error.lines():
        print(line, file=sys.stderr)
    if getattr(args, "json", False):
        print(documents.dumps(documents.config_error(args.command, error)))
    return EXIT_CONFIG


def _project(args: argparse.Namespace) -> Path:
    return Path(args.project_dir) if args.project_dir else PROJECT_ROOT


def _build(args: argparse.Namespace, stack: str) -> Path:
    """Where a stack's preview goes: `build/STACK` under `--project-dir`, or in the current
    directory (the project itself, following the README)."""
    return (Path(args.project_dir) if args.project_dir else Path()) / "build" / stack


def _out(args: argparse.Namespace, stack: str) -> Path:
    """The output directory (`--out`, or `build/STACK`), made and checked before anything runs."""
    out = Path(args.out) if getattr(args, "out", None) else _build(args, stack)
    try:
        out.mkdir(parents=True, exist_ok=True)
        writable = os.access(out, os.W_OK)
    except OSError as exc:
        reason = exc.strerror or str(exc)
    else:
        reason = "" if writable else "not writable"
    if reason:
        raise ConfigError([Problem("out", show_value(str(out)), f"a directory afctl can create and write ({reason})")])
    return out


def _load(
    args: argparse.Namespace, stack: str | None = None, previews: bool = True
) -> tuple[dict, set[str], FacilityConfig, list[str]]:
    """The stack's values, offline: secrets only an operator can set are stood in for; a command
    that runs the program (`previews`) says so."""
    filled: list[str] = []
    values, secret = read_stack(stack or args.stack, _project(args), filled)
    cfg = build_config(values, secret, profiles_dir(_project(args)))
    for path in filled if previews else ():
        print(
            f"note: {path} is not set; the offline preview uses a placeholder (set it before pulumi up)",
            file=sys.stderr,
        )
    return values, secret, cfg, filled


def _run(args: argparse.Namespace, stack: str, values: dict[str, Any], secret: set[str]) -> RunResult:
    """The program under mocks, with progress on stderr for a terminal or `--progress`."""
    profiles = profiles_dir(_project(args))
    if not progress.wanted(args.progress, sys.stderr):
        return run_program(stack, values, secret, profiles_dir=profiles)
    meter = progress.Progress(stack, sys.stderr)
    result = run_program(stack, values, secret, on_register=meter, profiles_dir=profiles)
    meter.done()
    return result


def _emit(args: argparse.Namespace, document: dict[str, Any], human: str) -> None:
    print(documents.dumps(document) if args.json else human)


def cmd_validate(args: argparse.Namespace) -> int:
    _, _, cfg, filled = _load(args, previews=False)
    pack_config(cfg)  # rule names in af:policy.enforcement
    cp = cfg.cluster.control_plane
    nodes = [f"control plane x{cp.count}" + (f" ({', '.join(cp.roles)})" if cp.roles else "")]
    nodes += [f"{n} x{g.count}" for n, g in sorted(cfg.cluster.node_groups.items())]
    human = f"{args.stack}: valid ({cfg.cluster.mode} cluster at {cfg.site.name}; {', '.join(nodes)})"
    _emit(args, documents.validate(args.stack, cfg, filled), f"{human}\n\n{report.quota_table(cfg)}")
    return EXIT_OK


def _verdict(violations: list[Violation]) -> int:
    return EXIT_POLICY if mandatory(violations) else EXIT_OK


def cmd_preview(args: argparse.Namespace) -> int:
    values, secret, cfg, filled = _load(args)
    config = pack_config(cfg)
    out = _out(args, args.stack)
    result = _run(args, args.stack, values, secret)
    plan.write_plan(result, out)
    # The same pack config serves `pulumi preview --policy-pack policy --policy-pack-config …`.
    (out / POLICY_CONFIG).write_text(pack_config_json(cfg), encoding="utf-8")
    violations = evaluate(plan.plan_document(result), config)
    if args.json:
        files = {
            "out": str(out),
            "plan": str(out / "plan.json"),
            "policyConfig": str(out / POLICY_CONFIG),
            "rendered": [f"files/{p}" for p in sorted(result.files)],
        }
        document = documents.preview(args.stack, result.registrations, cfg, files, violations, len(RULES), filled)
        print(documents.dumps(document))
        return _verdict(violations)
    custom = [r for r in result.registrations if r.custom]
    print(report.tree(result.registrations))
    print()
    print(report.quota_table(cfg))
    print()
    kinds = Counter(r.type for r in custom)
    components = len(result.registrations) - len(custom)
    print(
        f"{len(custom)} resources ({len(kinds)} types; {report.COUNTED}) in {components} components, "
        f"{len(result.files)} rendered files -> {out}"
    )
    print()
    print(report_text(violations, len(RULES)))
    return _verdict(violations)


def cmd_policy(args: argparse.Namespace) -> int:
    if args.list:
        rules = [{"name": r.name, "level": r.level.value, "description": r.description} for r in RULES]
        human = "\n".join(f"{r.name:34} {r.level.value:9}  {r.description}" for r in RULES)
        _emit(args, {"command": "policy", "ok": True, "rules": rules}, human)
        return EXIT_OK
    if not args.stack:
        raise ConfigError([Problem("stack", "nothing", "a STACK to judge, or --list")])
    _, _, cfg, _ = _load(args, previews=False)
    config = pack_config(cfg)
    path = Path(args.plan) if args.plan else _build(args, args.stack) / "plan.json"
    if not path.is_file():
        raise ConfigError([Problem("plan", f"no file at {path}", f"a plan written by afctl preview {args.stack}")])
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        document = None
    if not isinstance(document, dict) or not set(document) >= _PLAN_KEYS:
        raise ConfigError([Problem("plan", show_value(str(path)), f"a plan written by afctl preview {args.stack}")])
    violations = evaluate(document, config)
    document = {"command": "policy", "stack": args.stack, "plan": str(path), "ok": not mandatory(violations)}
    _emit(args, document | documents.policy(violations, len(RULES)), report_text(violations, len(RULES)))
    return _verdict(violations)


_PLAN_KEYS = {"project", "stack", "resources", "outputs"}


def _locate(args: argparse.Namespace, which: str, plans: dict[str, dict[str, Any]]) -> Problem | None:
    """Check a diff end before anything runs: a readable plan.json (kept in `plans`) or a stack."""
    given = getattr(args, which)
    project = _project(args)
    if Path(given).is_file():
        try:
            document = json.loads(Path(given).read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            document = None
        if not isinstance(document, dict) or not set(document) >= _PLAN_KEYS:
            return Problem(which, show_value(given), "a plan.json written by afctl preview")
        plans[given] = document
        return None
    if not given.endswith(".json") and stack_file(given, project).is_file():
        return None
    known = ", ".join(available_stacks(project)) or "none"
    return Problem(which, show_value(given), f"a plan.json file or a stack ({known})")


def _side(
    args: argparse.Namespace, which: str, plans: dict[str, dict[str, Any]], previews: dict[str, diff.Side]
) -> tuple[diff.Side, dict[str, str]]:
    """A diff end: a plan.json as it is, or a stack previewed here (its plan kept only with --save)."""
    given = getattr(args, which)
    if given in plans:
        return diff.Side(given, plans[given]), {"label": given, "plan": given, "stack": plans[given]["stack"]}
    if given not in previews:  # `afctl diff S S`: one preview serves both ends
        values, secret, _, _ = _load(args, given)
        result = _run(args, given, values, secret)
        if args.save:
            plan.write_plan(result, _out(argparse.Namespace(**{**vars(args), "out": None}), given))
        previews[given] = diff.Side.of_run(given, result)
    return previews[given], {"label": given, "stack": given}


def cmd_diff(args: argparse.Namespace) -> int:
    plans: dict[str, dict[str, Any]] = {}
    problems = [p for p in (_locate(args, "before", plans), _locate(args, "after", plans)) if p is not None]
    if problems:  # both ends checked before either is previewed
        raise ConfigError(problems)
    previews: dict[str, diff.Side] = {}
    before, before_info = _side(args, "before", plans, previews)
    after, after_info = _side(args, "after", plans, previews)
    result = diff.diff(before, after)
    _emit(args, documents.diff(result, before_info, after_info), report.diff_text(result))
    return EXIT_OK


def cmd_graph(args: argparse.Namespace) -> int:
    values, secret, cfg, _ = _load(args)
    out = _out(args, args.stack)
    document = plan.plan_document(_run(args, args.stack, values, secret))
    text = graph.dot(graph.picture(document, cfg))
    (out / "graph.dot").write_text(text, encoding="utf-8")
    try:
        for fmt in ("svg", "png"):
            (out / f"graph.{fmt}").write_bytes(graph.render(text, fmt))
    except graph.GraphvizMissing as exc:
        print(f"{args.stack}: graph.dot -> {out}", file=sys.stderr)
        print(f"afctl graph: {exc}", file=sys.stderr)
        return EXIT_TOOL
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


def _version() -> str:
    try:
        return metadata.version("analysis-facility")
    except metadata.PackageNotFoundError:
        return "unknown (not installed: pip install -e .)"


STACK_HELP = (
    "a stack: the name in its Pulumi.<STACK>.yaml (shipped: " + ", ".join(SHIPPED_STACKS) + "; your own next to them)"
)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="afctl", description=__doc__, epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    top.add_argument("--version", action="version", version=f"afctl {_version()}")
    top.add_argument(
        "--project-dir",
        default=None,
        help="a project directory: its Pulumi.<stack>.yaml files, its profiles in stacks/ (this program's "
        "when it has none) and build/ under it (default: this project's stacks and profiles, build/ in the "
        "current directory)",
    )
    sub = top.add_subparsers(dest="command", metavar="COMMAND")
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print one JSON document on stdout (for CI)")
    runs = argparse.ArgumentParser(add_help=False)
    runs.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="count registrations on stderr while the program runs (default: when stderr is a terminal)",
    )

    def command(name: str, **kw: Any) -> argparse.ArgumentParser:
        return sub.add_parser(name, epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter, **kw)

    preview = command("preview", parents=[as_json, runs], help="run the program offline under mocks and write the plan")
    preview.add_argument("stack", metavar="STACK", help=STACK_HELP)
    preview.add_argument("--out", help="output directory (default build/STACK)")
    preview.set_defaults(func=cmd_preview)
    validate = command("validate", parents=[as_json], help="check a stack's config and show its quota table")
    validate.add_argument("stack", metavar="STACK", help=STACK_HELP)
    validate.set_defaults(func=cmd_validate)
    policy = command("policy", parents=[as_json], help="evaluate the policy pack on the plan afctl preview recorded")
    policy.add_argument("stack", nargs="?", metavar="STACK", help=STACK_HELP)
    policy.add_argument("--plan", help="plan.json to judge (default build/STACK/plan.json)")
    policy.add_argument("--list", action="store_true", help="list the rules and their default levels")
    policy.set_defaults(func=cmd_policy)
    changes = command(
        "diff",
        parents=[as_json, runs],
        help="what changing from plan BEFORE to plan AFTER creates, updates, replaces and deletes",
    )
    changes.add_argument("before", help="a stack (previewed here) or a plan.json")
    changes.add_argument("after", help="a stack (previewed here) or a plan.json")
    changes.add_argument("--save", action="store_true", help="also write each previewed stack's plan to build/STACK")
    changes.set_defaults(func=cmd_diff)
    schema = command("schema", help="print the JSON Schema of the config")
    schema.set_defaults(func=cmd_schema)
    picture = command("graph", parents=[runs], help="draw what a stack builds (SVG and PNG, with Graphviz)")
    picture.add_argument("stack", metavar="STACK", help=STACK_HELP)
    picture.add_argument("--out", help="output directory (default build/STACK)")
    picture.set_defaults(func=cmd_graph)
    ref = command("reference", help="write docs/config-reference.md from the config models")
    ref.add_argument("--check", action="store_true", help="exit 1 if the committed reference is out of date")
    ref.set_defaults(func=cmd_reference)
    return top


def _closed_stdout() -> int:
    """The reader went away (`afctl schema | head -1`): what it wanted it has; stop quietly,
    with nothing left for Python to flush into the closed pipe at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    top = parser()
    args = top.parse_args(argv)
    try:
        if args.command is None:  # bare `afctl`: what it can do
            top.print_help()
            return EXIT_OK
        return args.func(args)
    except ConfigError as exc:
        return _fail_config(exc, args)
    except StackConfigError as exc:
        return _fail_config(exc.config_error, args)
    except BrokenPipeError:
        return _closed_stdout()


if __name__ == "__main__":
    sys.exit(main())
