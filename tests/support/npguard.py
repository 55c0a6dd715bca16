"""What a set of NetworkPolicies allows, computed by np-guard's analyzer (`netpolicy list`, the pinned Go tool of
`tools/netpol`) from the policies and the workloads they select, written as YAML files to a temporary folder.

The result is data: one `Connection` per (source, destination) pair the analyzer reports, with the protocols and
ports allowed between them. Peers are workloads (`namespace/name[Kind]`) or IP ranges (`a.b.c.d-e.f.g.h`).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .kube import ToolsMissing, _built

ALL = "All Connections"
PROTOCOLS = ("TCP", "UDP", "SCTP")


@dataclass(frozen=True, order=True)
class Peer:
    namespace: str
    name: str
    kind: str
    """`Deployment`, `StatefulSet`, … for a workload; `IP` for an address range (then `name` holds it)."""

    def __str__(self) -> str:
        return self.name if self.kind == "IP" else f"{self.namespace}/{self.name}[{self.kind}]"


@dataclass(frozen=True, order=True)
class Connection:
    src: Peer
    dst: Peer
    ports: frozenset[tuple[str, int, int]] | None
    """(protocol, first port, last port) ranges allowed; None: every protocol and port."""

    def allows(self, protocol: str, port: int) -> bool:
        return self.ports is None or any(p == protocol and lo <= port <= hi for p, lo, hi in self.ports)


def peer(text: str) -> Peer:
    if text.endswith("]") and "[" in text:
        workload, kind = text[:-1].split("[", 1)
        namespace, _, name = workload.rpartition("/")
        return Peer(namespace, name, kind)
    return Peer("", text, "IP")


def ports(text: str) -> frozenset[tuple[str, int, int]] | None:
    """`All Connections` -> None; `TCP 80,443,9000-9010,UDP 53` -> the ranges per protocol."""
    if text.strip() == ALL:
        return None
    found: set[tuple[str, int, int]] = set()
    protocol = ""
    for item in text.replace(";", ",").split(","):
        item = item.strip()
        head, _, rest = item.partition(" ")
        if head in PROTOCOLS:
            protocol, item = head, rest.strip()
        if not protocol or not item:
            raise ValueError(f"cannot read the analyzer's connection {text!r}")
        lo, _, hi = item.partition("-")
        found.add((protocol, int(lo), int(hi or lo)))
    return frozenset(found)


def netpolicy() -> Path:
    return _built("netpol") / "netpolicy"


def allowed_connections(objects: Iterable[Mapping[str, Any]], analyzer: Path | None = None) -> set[Connection]:
    """Every connection the NetworkPolicies among `objects` allow between the workloads among them (and IP
    ranges), as np-guard computes it. `objects` are Kubernetes manifests: Namespaces (their labels matter to
    namespace selectors), workloads or Pods, NetworkPolicies."""
    binary = analyzer or netpolicy()
    with tempfile.TemporaryDirectory(prefix="af-netpol-") as folder:
        for index, obj in enumerate(objects):
            meta = obj["metadata"]
            name = f"{index:04d}-{obj['kind']}-{meta.get('namespace', '')}-{meta['name']}.yaml".lower()
            (Path(folder) / name).write_text(yaml.safe_dump(dict(obj), sort_keys=False))
        run = subprocess.run(
            [str(binary), "list", "--dirpath", folder, "--output", "json", "--quiet"],
            capture_output=True,
            text=True,
            check=False,
        )
    # --quiet leaves only severe errors on stderr; some leave the exit code 0 (and --fail turns a mere warning
    # into an empty answer with exit code 0), so any of them is a failure here.
    if run.returncode != 0 or run.stderr.strip():
        raise RuntimeError(f"netpolicy failed ({run.returncode}): {run.stderr.strip() or run.stdout.strip()}")
    return {Connection(peer(c["src"]), peer(c["dst"]), ports(c["conn"])) for c in json.loads(run.stdout or "[]")}


__all__ = ["ALL", "Connection", "Peer", "ToolsMissing", "allowed_connections", "netpolicy", "peer", "ports"]
