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


EDGE = re.compile(r"^  (\w+) -> (\w+) \[(.*)\];$")


def _edges(text: str) -> list[tuple[str, str, str]]:
    return [m.groups() for m in map(EDGE.match, text.splitlines()) if m]


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_the_picture_stays_readable(shipped, stack):
    """One edge per pair of nodes (flows both ways share a two-headed one), no lines from
    workloads to node groups (where a workload runs is written under it), every repository."""
    document = plan.plan_document(shipped(stack))
    cfg = build_config(*stack_values(stack))
    text = graph.dot(graph.picture(document, cfg))
    edges = _edges(text)
    pairs = [frozenset((a, b)) for a, b, _ in edges]
    assert edges and len(pairs) == len(set(pairs)), f"{stack}: two edges between the same nodes"
    assert not any(b.startswith("ng_") for _, b, _ in edges), f"{stack}: a line to a node group"
    shown = labels(text)
    assert all(repo in shown for repo in cfg.cvmfs.repositories)
    for _, _, attrs in edges:
        if "dir=both" in attrs:
            assert "▸\\n◂" in attrs or 'label=""' in attrs, attrs
    if cfg.condor.enabled:
        for group in ("control-plane", *cfg.cluster.node_groups):
            if f"af-condor-worker-{group}" in shown:
                where = "control plane" if group == "control-plane" else group
                assert f"af-condor-worker-{group}\\nDeployment\\n(on {where})" in shown


def test_the_single_machine_shows_everything_on_the_control_plane(shipped):
    document = plan.plan_document(shipped("single"))
    cfg = build_config(*stack_values("single"))
    pic = graph.picture(document, cfg)
    assert list(pic.node_groups) == ["control-plane"]
    assert "roles: system, interactive, cache, batch, dask" in pic.node_groups["control-plane"]
    shown = labels(graph.dot(pic))
    assert "(notebooks on control plane)" in shown and "af-xcache\\nStatefulSet\\n(on control plane)" in shown
    assert f"dask-gateway {cfg.dask.chart_version}\\n(clusters on control plane)" in shown


def test_the_offload_gateway_and_its_token_minter_are_connected(shipped):
    document = plan.plan_document(shipped("cms-bari"))
    cfg = build_config(*stack_values("cms-bari"))
    edges = {(a, b): attrs for a, b, attrs in _edges(graph.dot(graph.picture(document, cfg)))}
    assert 'label="mints its pool token"' in edges[("w_af_condor_token_minter", "w_af_condor_worker_leonardo")]
    assert "interLink API" in edges[("w_af_vk_leonardo", "x_hpc_leonardo")]
    assert "offloaded workers advertise" in edges[("x_hpc_leonardo", "w_af_condor_cm")]
    assert "(on af-vk-leonardo's virtual node)" in labels(graph.dot(graph.picture(document, cfg)))
