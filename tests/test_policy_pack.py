"""The policy pack as a whole: what the Pulumi CLI loads, the config it is given, the engine's
path through it, the offline runner, and `afctl policy`/`afctl preview` on every shipped stack."""

from __future__ import annotations

import ast
import copy
import json
import subprocess
import sys
from typing import Any

import grpc
import jsonschema
import pytest
import yaml
from conftest import SHIPPED_STACKS, stack_values
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime import proto
from pulumi.runtime.proto import analyzer_pb2_grpc
from pulumi_policy import EnforcementLevel
from pulumi_policy.policy import _PolicyAnalyzerServicer
from pulumi_policy.proxy import UNKNOWN_NUMBER_VALUE, UNKNOWN_STRING_VALUE, unknown_checking_proxy

from afctl import plan
from components.config.errors import ConfigError
from components.config.loader import PROJECT_ROOT, build_config
from policy.offline import evaluate, mandatory
from policy.packconfig import pack_config, pack_config_json
from policy.rules import PACK_NAME, POLICIES, RULE_NAMES, RULES, plain

PACK_DIR = PROJECT_ROOT / "policy"


def _config(stack: str, **policy: Any) -> dict[str, dict[str, Any]]:
    values, secret = stack_values(stack)
    if policy:
        values["policy"] = policy
    return pack_config(build_config(values, secret))


def test_importing_the_rules_starts_no_policy_server():
    """Constructing PolicyPack starts a gRPC server and blocks: importing the rules, the runner
    and the pack config must never do it."""
    code = (
        "import pulumi_policy\n"
        "def refuse(*args, **kwargs): raise SystemExit('PolicyPack constructed on import')\n"
        "pulumi_policy.PolicyPack.__init__ = refuse\n"
        "import policy.rules, policy.offline, policy.packconfig\n"
        "print(len(policy.rules.POLICIES))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd="/")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{len(RULES)}\n"


def test_the_cli_entry_point_only_serves_the_rules_module_policies():
    tree = ast.parse((PACK_DIR / "__main__.py").read_text())
    body = tree.body
    assert isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)  # docstring
    imports = {(node.module, alias.name) for node in body if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert imports == {
        ("pulumi_policy", "EnforcementLevel"),
        ("pulumi_policy", "PolicyPack"),
        ("policy.rules", "PACK_NAME"),
        ("policy.rules", "POLICIES"),
    }
    statements = [node for node in body[1:] if not isinstance(node, ast.ImportFrom)]
    assert len(statements) == 1 and isinstance(statements[0], ast.Expr)
    call = statements[0].value
    assert isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "PolicyPack"
    keywords = {k.arg: k.value for k in call.keywords}
    assert not call.args and set(keywords) == {"name", "policies", "enforcement_level"}
    assert isinstance(keywords["policies"], ast.Name) and keywords["policies"].id == "POLICIES"
    assert isinstance(keywords["name"], ast.Name) and keywords["name"].id == "PACK_NAME"
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert calls == [call], "nothing else runs when the CLI loads the pack"


def test_the_pack_runs_in_the_projects_virtualenv():
    project = yaml.safe_load((PACK_DIR / "PulumiPolicy.yaml").read_text())
    assert project["runtime"]["name"] == "python"
    assert (PACK_DIR / project["runtime"]["options"]["virtualenv"]).resolve() == PROJECT_ROOT / ".venv"
    assert "-e .." in (PACK_DIR / "requirements.txt").read_text().splitlines()
    # The CLI puts the pack's directory first on sys.path: no module there may shadow the stdlib.
    assert not {p.stem for p in PACK_DIR.glob("*.py")} & set(sys.stdlib_module_names)


def test_rules_are_named_uniquely_and_at_least_fifteen():
    assert len(RULE_NAMES) == len(set(RULE_NAMES)) >= 15
    assert [p.name for p in POLICIES] == list(RULE_NAMES)
    assert PACK_NAME == "analysis-facility"


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_shipped_stacks_pass_every_rule(shipped, stack):
    violations = evaluate(plan.plan_document(shipped(stack)), _config(stack))
    assert violations == []


def test_levels_come_from_the_stacks_config(shipped):
    document = copy.deepcopy(plan.plan_document(shipped("dev")))
    (chart,) = [r for r in document["resources"] if r["name"] == "af-hub-chart"]
    chart["inputs"].pop("version")
    default = evaluate(document, _config("dev"))
    assert [(v.rule, v.level) for v in default] == [("pinned-charts", "mandatory")]
    assert mandatory(default) == default
    relaxed = evaluate(document, _config("dev", enforcement={"pinned-charts": "advisory"}))
    assert [(v.rule, v.level) for v in relaxed] == [("pinned-charts", "advisory")] and not mandatory(relaxed)
    assert evaluate(document, _config("dev", enforcement={"pinned-charts": "disabled"})) == []


def test_an_unknown_rule_name_is_a_config_error():
    with pytest.raises(ConfigError) as error:
        _config("dev", enforcement={"pinned-chart": "advisory"})
    (line,) = error.value.lines()
    assert line.startswith(
        'af:policy.enforcement.pinned-chart: got "pinned-chart"; allowed: a rule: no-world-open-ports'
    )


def test_a_bad_level_is_a_config_error():
    values, secret = stack_values("dev")
    values["policy"] = {"enforcement": {"pinned-charts": "remediate"}}
    with pytest.raises(ConfigError) as error:
        build_config(values, secret)
    assert error.value.lines()[0].startswith('af:policy.enforcement.pinned-charts: got "remediate"')


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_the_cli_config_file_fits_each_policys_schema(stack):
    config = json.loads(pack_config_json(build_config(*stack_values(stack))))
    assert set(config) == set(RULE_NAMES)
    for policy in POLICIES:
        settings = config[policy.name]
        assert settings["enforcementLevel"] in {"advisory", "mandatory", "disabled"}
        properties = {k: v for k, v in settings.items() if k != "enforcementLevel"}
        schema = policy.config_schema.properties if policy.config_schema else {}
        jsonschema.validate(properties, {"type": "object", "properties": schema, "additionalProperties": False})
    assert "secretMarkers" not in config["no-secrets-in-user-data"], "the engine never marks secrets"


# The engine's path: the analyzer service pulumi_policy runs behind `pulumi preview --policy-pack`,
# fed protobuf requests as the engine sends them (numbers as floats, unknowns as sentinels).


def _struct(value: dict[str, Any]) -> struct_pb2.Struct:
    return json_format.ParseDict(value, struct_pb2.Struct())


def _analyzer(config: dict[str, dict[str, Any]]) -> _PolicyAnalyzerServicer:
    service = _PolicyAnalyzerServicer(PACK_NAME, "0.1.0", POLICIES, EnforcementLevel.ADVISORY)
    levels = {"advisory": proto.ADVISORY, "mandatory": proto.MANDATORY, "disabled": proto.DISABLED}
    request = proto.ConfigureAnalyzerRequest(
        policyConfig={
            name: proto.PolicyConfig(
                enforcementLevel=levels[settings["enforcementLevel"]],
                properties=_struct({k: v for k, v in settings.items() if k != "enforcementLevel"}),
            )
            for name, settings in config.items()
        }
    )
    service.Configure(request, None)
    return service


def _engine_violations(document: dict[str, Any], config: dict[str, dict[str, Any]]) -> set[tuple[str, str, str]]:
    service = _analyzer(config)
    names = {proto.ADVISORY: "advisory", proto.MANDATORY: "mandatory"}
    diagnostics = []
    for r in document["resources"]:
        if r["custom"]:
            request = proto.AnalyzeRequest(
                type=r["type"], urn=r["urn"], name=r["name"], properties=_struct(r["inputs"])
            )
            diagnostics += [(d, r["urn"]) for d in service.Analyze(request, None).diagnostics]
    stack = proto.AnalyzeStackRequest(
        resources=[
            proto.AnalyzerResource(
                type=r["type"],
                urn=r["urn"],
                name=r["name"],
                parent=r["parent"],
                dependencies=r["dependencies"],
                properties=_struct(r["inputs"]),
            )
            for r in document["resources"]
        ]
    )
    stack_urn = next(r["urn"] for r in document["resources"] if r["type"] == "pulumi:pulumi:Stack")
    diagnostics += [(d, stack_urn) for d in service.AnalyzeStack(stack, None).diagnostics]
    return {(d.policyName, names[d.enforcementLevel], d.urn or urn) for d, urn in diagnostics}


def test_the_engine_and_the_offline_runner_agree(shipped):
    document = copy.deepcopy(plan.plan_document(shipped("cms-bari")))
    by_name = {r["name"]: r for r in document["resources"]}
    by_name["af-network-admin-22-212-189-205-0-24"]["inputs"]["remoteIpPrefix"] = "0.0.0.0/0"
    by_name["af-cluster-cache-0-data"]["inputs"]["size"] = 30000
    by_name["af-hub-chart"]["inputs"]["values"]["proxy"]["chp"]["pdb"]["enabled"] = False
    config = _config("cms-bari")
    offline = {(v.rule, v.level, v.urn) for v in evaluate(document, config)}
    assert {rule for rule, _, _ in offline} == {
        "no-world-open-ports",
        "admin-ports-from-admin-cidrs",
        "site-quota",
        "disruption-budgets",
    }
    assert _engine_violations(document, config) == offline


def test_under_the_engine_the_shipped_plan_passes_and_user_data_is_not_applicable(shipped):
    document = plan.plan_document(shipped("cms-bari"))
    assert _engine_violations(document, _config("cms-bari")) == set()
    (instance,) = [r for r in document["resources"] if r["name"] == "af-cluster-control-plane-0"]
    request = proto.AnalyzeRequest(
        type=instance["type"], urn=instance["urn"], name=instance["name"], properties=_struct(instance["inputs"])
    )
    response = _analyzer(_config("cms-bari")).Analyze(request, None)
    assert [n.policy_name for n in response.not_applicable] == ["no-secrets-in-user-data"]


def test_values_unknown_at_preview_are_judged_as_unknown():
    inputs = {
        "direction": "ingress",
        "protocol": "tcp",
        "portRangeMin": UNKNOWN_NUMBER_VALUE,
        "remoteIpPrefix": UNKNOWN_STRING_VALUE,
        "tags": ["a", UNKNOWN_STRING_VALUE],
        "size": 22.0,
    }
    assert plain(unknown_checking_proxy(inputs)) == {
        "direction": "ingress",
        "protocol": "tcp",
        "portRangeMin": "[unknown]",
        "remoteIpPrefix": "[unknown]",
        "tags": ["a", "[unknown]"],
        "size": 22,
    }
    rule = {"type": "openstack:networking/secGroupRule:SecGroupRule", "urn": "urn:x", "name": "r", "custom": True}
    document = {"resources": [{**rule, "parent": "", "dependencies": [], "inputs": inputs}]}
    assert _engine_violations_without_stack(document) == []


def _engine_violations_without_stack(document: dict[str, Any]) -> list[str]:
    service = _analyzer(_config("dev"))
    (r,) = document["resources"]
    request = proto.AnalyzeRequest(type=r["type"], urn=r["urn"], name=r["name"], properties=_struct(r["inputs"]))
    return [d.policyName for d in service.Analyze(request, None).diagnostics]


def test_the_pack_serves_the_rules_when_pulumis_launcher_runs_it(shipped):
    """`python -m pulumi.policy ENGINE DIR` is how the CLI's analyzer plugin starts a Python pack:
    it runs `policy/__main__.py`, which prints its port and serves the analyzer over gRPC."""
    launcher = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:1", "."],
        cwd=PACK_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(launcher.stdout.readline())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            analyzer = analyzer_pb2_grpc.AnalyzerStub(channel)
            info = analyzer.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
            assert info.name == PACK_NAME and info.supportsConfig
            assert sorted(p.name for p in info.policies) == sorted(RULE_NAMES)
            levels = {p.name: p.enforcementLevel for p in info.policies}
            assert levels["disruption-budgets"] == proto.ADVISORY and levels["site-quota"] == proto.MANDATORY
            (rule,) = [
                r
                for r in plan.plan_document(shipped("dev"))["resources"]
                if r["name"] == "af-network-public-443-0-0-0-0-0"
            ]
            inputs = {**rule["inputs"], "portRangeMin": 1, "portRangeMax": 65535}
            request = proto.AnalyzeRequest(
                type=rule["type"], urn=rule["urn"], name=rule["name"], properties=_struct(inputs)
            )
            diagnostics = analyzer.Analyze(request, timeout=30).diagnostics
            # Every port to the world: SSH and the API among them.
            assert sorted(d.policyName for d in diagnostics) == ["admin-ports-from-admin-cidrs", "no-world-open-ports"]
            assert all("tcp, every port" in d.message and "to 0.0.0.0/0" in d.message for d in diagnostics)
    finally:
        launcher.terminate()
        launcher.wait(timeout=30)
        launcher.stdout.close()
        launcher.stderr.close()
