"""`afctl graph STACK`: a picture of what a stack builds, from its plan (what exists) and its
config (sizes, roles and where things connect): the site's VMs by node group, the platform's
workloads by namespace placed on the node groups they run on, the services outside (IAM, the
data federation, CVMFS, HPC centres) and the flows between them. DOT text is built by pure
functions; Graphviz's `dot` (Debian `graphviz`) turns it into SVG and PNG."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from components.config.facility import FacilityConfig
from components.flows.declaration import Peer, facility_flows
from components.names import CONDOR_WORKER, CONTROL_PLANE_GROUP, DASK_NAMESPACE, WORKER_GROUP_LABEL, NodeRole

MINTER = "af-condor-token-minter"
"""The Job that mints the offloaded workers' IDTOKEN (components/batch/pods.py)."""

WORKLOAD_TYPES = {
    "kubernetes:apps/v1:Deployment": "Deployment",
    "kubernetes:apps/v1:StatefulSet": "StatefulSet",
    "kubernetes:apps/v1:DaemonSet": "DaemonSet",
    "kubernetes:batch/v1:Job": "Job",
    "kubernetes:helm.sh/v3:Release": "Helm chart",
}
NODE_POOL = "af:infra:NodePool"
MAIN_CHARTS = ("jupyterhub", "kube-prometheus-stack", "cvmfs-csi")
"""Releases whose pods the declared flows select by the charts' own labels."""
LAYER_COLOURS = {
    "jupyterhub": "#fde2b8",
    "condor": "#d7ecd9",
    "xcache": "#d6e6f5",
    "cvmfs": "#eadcf2",
    "interlink": "#f6d5d5",
}


@dataclass(frozen=True)
class Workload:
    name: str
    kind: str
    namespace: str
    label: str


@dataclass
class Picture:
    """What the picture shows, gathered from the plan; `dot()` draws it."""

    stack: str
    site: str
    node_groups: dict[str, str] = field(default_factory=dict)
    """Node group -> its label (count x flavor, roles, GPUs)."""
    workloads: list[Workload] = field(default_factory=list)
    external: dict[str, str] = field(default_factory=dict)
    """Id -> label of things outside the facility."""
    edges: list[tuple[str, str, str, str]] = field(default_factory=list)
    """(from, to, label, style)."""


def _id(*parts: str) -> str:
    return "_".join(p.replace("-", "_").replace(".", "_").replace(":", "_").replace("/", "_") for p in parts)


def workloads(resources: Iterable[Mapping[str, Any]]) -> list[Workload]:
    """Every Deployment, StatefulSet, DaemonSet, Job and Helm release of the plan."""
    found = []
    for r in resources:
        kind = WORKLOAD_TYPES.get(r["type"])
        if kind is None:
            continue
        inputs = r["inputs"]
        if kind == "Helm chart":
            name = str(inputs.get("name") or r["name"])
            namespace = str(inputs.get("namespace", "default"))
            label = f"{name}\\n{str(inputs.get('chart', '')).rsplit('/', 1)[-1]} {inputs.get('version', '')}"
        else:
            meta = inputs.get("metadata") or {}
            name, namespace = str(meta.get("name", r["name"])), str(meta.get("namespace", "default"))
            label = f"{name}\\n{kind}"
        found.append(Workload(name, kind, namespace, label))
    return sorted(found, key=lambda w: (w.namespace, w.name))


def node_group_label(name: str, cfg: FacilityConfig) -> str:
    group = cfg.cluster.node_groups[name]
    lines = [name, f"{group.count} x {group.flavor}", "roles: " + ", ".join(group.roles)]
    if group.gpu:
        lines.append(f"{group.gpu.count} GPU {group.gpu.model} per node")
    return "\\n".join(lines)


def control_plane_label(cfg: FacilityConfig) -> str:
    cp = cfg.cluster.control_plane
    lines = ["control plane", f"{cp.count} x {cp.flavor}"]
    if cp.roles:
        lines.append("roles: " + ", ".join(cp.roles))
    return "\\n".join(lines)


def picture(plan: Mapping[str, Any], cfg: FacilityConfig) -> Picture:
    """The stack's picture: nodes from the plan, sizes and connections from the config."""
    resources = plan["resources"]
    pic = Picture(plan["stack"], cfg.site.name)
    for r in resources:
        if r["type"] == NODE_POOL:
            group = r["name"].removeprefix("af-cluster-")
            pic.node_groups[group] = (
                control_plane_label(cfg) if group == CONTROL_PLANE_GROUP else node_group_label(group, cfg)
            )
    if cfg.cluster.mode != "openstack":
        for group in cfg.cluster.node_groups:
            pic.node_groups.setdefault(group, node_group_label(group, cfg) + f"\\n({cfg.cluster.mode})")
    pic.workloads = [_placed(w, cfg) for w in workloads(resources)]
    names = {w.name for w in pic.workloads}
    _connect(pic, cfg, names)
    return pic


def _runs_on(cfg: FacilityConfig, role: NodeRole, gpu: bool | None = None) -> list[str]:
    """The node groups (and the control plane) with `role`; only GPU groups, or none, if `gpu` says so."""
    return [
        "control plane" if name == CONTROL_PLANE_GROUP else name
        for name, group in cfg.cluster.groups_with(role).items()
        if gpu is None or gpu == (group.gpu is not None)
    ]


def _placed(w: Workload, cfg: FacilityConfig) -> Workload:
    """Where a workload runs, written under it instead of drawn: lines from every workload to its
    nodes crossed the whole picture."""
    where: list[str] = []
    if w.name.startswith(f"{CONDOR_WORKER}-"):
        group = w.name.removeprefix(f"{CONDOR_WORKER}-")
        if group in cfg.offload.gateways:
            where = [f"af-vk-{group}'s virtual node"]
        else:
            where = ["control plane" if group == CONTROL_PLANE_GROUP else group]
    elif w.namespace == "jupyterhub" and w.kind == "Helm chart":
        where = [f"notebooks on {', '.join(_runs_on(cfg, 'interactive'))}"]
    elif w.namespace == DASK_NAMESPACE and w.kind == "Helm chart":
        where = [f"clusters on {', '.join(_runs_on(cfg, cfg.dask.placement.workers))}"]
    elif w.namespace == "xcache":
        where = _runs_on(cfg, "cache") or _runs_on(cfg, "system")
    elif w.namespace == "nvidia-device-plugin" or w.name == "dcgm-exporter":
        where = [g for g in _runs_on(cfg, "batch", gpu=True) + _runs_on(cfg, "interactive", gpu=True)]
    if not where:
        return w
    shown = where[0] if where[0].startswith(("notebooks", "clusters")) else "on " + ", ".join(dict.fromkeys(where))
    return Workload(w.name, w.kind, w.namespace, f"{w.label}\\n({shown})")


def _node_of(peer: Peer, pic: Picture, names: set[str]) -> str | None:
    """The picture's node for a flow's end: the workload whose pods the peer selects (by name),
    the namespace's chart when it selects a chart's pods, or a service outside."""
    if peer.outside:
        outside = {"IAM": "iam", "data federation": "federation", "CVMFS Stratum-1": "stratum1"}
        key = outside.get(peer.name) or (
            f"hpc_{peer.name.removeprefix('HPC centre ')}" if peer.name.startswith("HPC centre ") else None
        )
        return _id("x", key) if key in pic.external else None
    if peer.name == "ingress controller":
        return "x_users"  # what the ingress controller forwards: the physicists' browsers
    name = peer.pods.get("app.kubernetes.io/name")
    if name == CONDOR_WORKER:
        name = f"{CONDOR_WORKER}-{peer.pods[WORKER_GROUP_LABEL]}"
    if name in names:
        return _id("w", name)
    charts = [w.name for w in pic.workloads if w.namespace == peer.namespace and w.kind == "Helm chart"]
    # A namespace's main chart owns the pods a peer selects by the chart's labels.
    chart = next((c for c in charts if c in MAIN_CHARTS), charts[0] if charts else None)
    return _id("w", chart) if chart else None


def _connect(pic: Picture, cfg: FacilityConfig, names: set[str]) -> None:
    """Services outside, and the declared flows (components/flows: the same the network policies
    allow), one edge per pair of nodes: flows both ways between two nodes share one two-headed
    edge, its label saying which way each goes."""
    pic.external["users"] = "physicists\\n(browser)"
    if cfg.identity:
        pic.external["iam"] = f"INDIGO-IAM\\n{cfg.identity.issuer}"
    if cfg.cvmfs.enabled:
        pic.external["stratum1"] = "CVMFS Stratum-1\\n" + "\\n".join(cfg.cvmfs.repositories)
    if cfg.cache.enabled and cfg.cache.origin:
        pic.external["federation"] = f"data federation\\n{cfg.cache.origin}"
    for gw, gateway in sorted(cfg.offload.gateways.items()):
        pic.external[f"hpc_{gw}"] = f"HPC centre {gw}\\n{gateway.endpoint}\\nSlurm {gateway.slurm.partition}"

    drawn: dict[tuple[str, str], list[str]] = {}
    for flow in facility_flows(cfg):
        # Offloaded workers come from their centres (through the published load balancer, which
        # the picture leaves out with the nodes it runs on).
        sources = (
            [_id("x", f"hpc_{gw}") for gw in sorted(cfg.offload.gateways)]
            if flow.source.name == "HPC centres"
            else [_node_of(flow.source, pic, names)]
        )
        target = _node_of(flow.target, pic, names)
        for source in sources:
            if source and target and source != target:
                whats = drawn.setdefault((source, target), [])
                if flow.what not in whats:
                    whats.append(flow.what)
    done: set[tuple[str, str]] = set()
    said: set[tuple[str, str]] = set()
    for (source, target), whats in drawn.items():
        if (source, target) in done:
            continue
        done |= {(source, target), (target, source)}
        style = "dashed" if source.startswith("x_") or target.startswith("x_") else "solid"
        back = drawn.get((target, source))
        # One reason a line, so a pair with many flows makes a tall label rather than a wide picture.
        label = "\\n".join([*(f"{w} ▸" for w in whats), *(f"◂ {w}" for w in back)]) if back else "\\n".join(whats)
        # The same flow from several worker groups: said once per source and per target.
        repeated = (source, label) in said or (target, label) in said
        said |= {(source, label), (target, label)}
        pic.edges.append((source, target, "" if repeated else label, f"{style}+both" if back else style))
    # Not a network flow: the minter Job writes the offloaded workers' IDTOKEN into their Secret.
    minter = _id("w", MINTER)
    if MINTER in names:
        for gw in sorted(cfg.offload.gateways):
            if f"{CONDOR_WORKER}-{gw}" in names:
                pic.edges.append((minter, _id("w", f"{CONDOR_WORKER}-{gw}"), "mints its pool token", "token"))


def _quote(text: str) -> str:
    return '"' + text.replace('"', '\\"') + '"'


def dot(pic: Picture) -> str:
    """The DOT text: infrastructure at the bottom, namespaces above, the outside world around."""
    out = [
        f"digraph {_quote('af-' + pic.stack)} {{",
        "  graph [rankdir=LR, fontname=Helvetica, fontsize=12, newrank=true, compound=true, ranksep=1.4,"
        " nodesep=0.9, forcelabels=true,"
        f" label={_quote(f'Analysis facility {pic.stack} at {pic.site}')}, labelloc=t];",
        '  node [fontname=Helvetica, fontsize=10, shape=box, style="rounded,filled", fillcolor=white];',
        # decorate: each label underlined and tied to its own edge, so two labels side by side are not confused.
        "  edge [fontname=Helvetica, fontsize=9, decorate=true];",
        '  subgraph cluster_outside { label="outside the facility"; style=dashed;',
    ]
    for key, label in pic.external.items():
        out.append(f'    {_id("x", key)} [label={_quote(label)}, shape=ellipse, fillcolor="#f2f2f2"];')
    out.append("  }")
    out.append(f"  subgraph cluster_site {{ label={_quote(f'OpenStack project at {pic.site}')}; style=rounded;")
    for group, label in pic.node_groups.items():
        out.append(f'    {_id("ng", group)} [label={_quote(label)}, shape=box3d, fillcolor="#eeeeee"];')
    out.append("  }")
    out.append('  subgraph cluster_k8s { label="Kubernetes"; style=rounded;')
    for namespace in sorted({w.namespace for w in pic.workloads}):
        colour = LAYER_COLOURS.get(namespace, "#ffffff")
        out.append(f"    subgraph {_quote('cluster_ns_' + namespace)} {{ label={_quote('namespace ' + namespace)};")
        out.append(f"      style=filled; fillcolor={_quote(colour)};")
        for w in (w for w in pic.workloads if w.namespace == namespace):
            out.append(f"      {_id('w', w.name)} [label={_quote(w.label)}];")
        out.append("    }")
    out.append("  }")
    for source, target, label, style in pic.edges:
        if style == "token":
            grey = '"#777777"'
            out.append(f"  {source} -> {target} [label={_quote(label)}, style=dotted, color={grey}, fontcolor={grey}];")
            continue
        line, _, both = style.partition("+")
        extra = ", dir=both" if both else ""
        out.append(f"  {source} -> {target} [label={_quote(label)}, style={line}{extra}];")
    out.append("}")
    return "\n".join(out) + "\n"


class GraphvizMissing(RuntimeError):
    """No `dot` on the PATH."""


INSTALL_GRAPHVIZ = "sudo apt-get install graphviz (Debian, Ubuntu), dnf install graphviz, or brew install graphviz"


def render(text: str, fmt: str) -> bytes:
    """`dot -T<fmt>` of the DOT text."""
    binary = shutil.which("dot")
    if binary is None:
        raise GraphvizMissing(
            f"Graphviz's dot is not installed; install it ({INSTALL_GRAPHVIZ}; `make test` installs it) "
            "and run afctl graph again"
        )
    done = subprocess.run([binary, f"-T{fmt}"], input=text.encode(), capture_output=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"dot failed: {done.stderr.decode(errors='replace')}")
    return done.stdout
