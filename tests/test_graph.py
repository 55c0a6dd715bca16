"""`afctl graph`: every node group, workload and gateway of a plan is in its picture, and
Graphviz renders it (a real `dot`, from Debian)."""

from __future__ import annotations

import html
import re

import pytest
from conftest import SHIPPED_STACKS, preview_values, stack_values
from support.gateways import galileo, leonardo

from afctl import cli, graph, plan
from components.config.loader import build_config


def expected(document) -> tuple[set[str], set[str]]:
    """Node groups (from the NodePool components) and workloads (names as deployed) of a plan."""
    groups = {r["name"].removeprefix("af-cluster-") for r in document["resources"] if r["type"] == graph.NODE_POOL}
    loads = {w.name for w in graph.workloads(document["resources"])}
    return groups, loads


def labels(text: str) -> str:
    return " ".join(re.findall(r'label="([^"]*)"', text))


@pytest.mark.daemon
@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_the_picture_has_every_node_group_workload_and_renders(shipped, stack):
    document = plan.plan_document(shipped(stack))
    cfg = build_config(*stack_values(stack))
    text = graph.dot(graph.picture(document, cfg))
    groups, loads = expected(document)
    assert loads, f"{stack}: a plan without workloads would make this vacuous"
    if cfg.cluster.mode == "openstack":
        assert groups == {*cfg.cluster.node_groups, "control-plane"}
    shown = labels(text)
    for group in cfg.cluster.node_groups:
        assert re.search(rf"(^| ){re.escape(group)}\\n", shown), f"{stack}: node group {group} missing"
    for name in loads:
        assert f"{name}\\n" in shown, f"{stack}: workload {name} missing"
    svg = html.unescape(graph.render(text, "svg").decode())
    assert svg.lstrip().startswith("<?xml") and all(name in svg for name in loads)
    assert graph.render(text, "png")[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.daemon
def test_gateways_appear_with_their_virtual_node_and_centre(tmp_path, monkeypatch):
    values, secret = stack_values("cms-bari")
    values["offload"] = {"gateways": {"leonardo": leonardo(), "galileo": galileo()}}
    document = plan.plan_document(preview_values("cms-bari", values, secret | {"offload"}))
    text = graph.dot(graph.picture(document, build_config(values, secret | {"offload"})))
    shown = labels(text)
    for gateway in ("leonardo", "galileo"):
        assert f"HPC centre {gateway}" in shown and f"af-vk-{gateway}\\n" in shown
        assert f"af-condor-worker-{gateway}\\n" in shown
        assert f"w_af_vk_{gateway} -> x_hpc_{gateway}" in text
    graph.render(text, "svg")


@pytest.mark.daemon
def test_afctl_graph_writes_dot_svg_and_png(tmp_path, capsys):
    assert cli.main(["graph", "dev", "--out", str(tmp_path)]) == 0
    assert {p.name for p in tmp_path.iterdir()} == {"graph.dot", "graph.svg", "graph.png"}
    assert (tmp_path / "graph.dot").read_text().startswith('digraph "af-dev"')


def test_a_broken_graph_is_reported_not_drawn():
    with pytest.raises(RuntimeError, match="dot failed"):
        graph.render("digraph { a -> }", "svg")
