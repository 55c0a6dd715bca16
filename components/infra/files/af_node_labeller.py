"""Give Magnum's nodes the labels and taints the facility's node groups declare.

Magnum's node group `labels` configure its driver; they never reach the nodes, and Magnum cannot
taint them. What every Magnum node does carry is `magnum.openstack.org/nodegroup=<group>`. This
program, in the cluster, reads that label on every node and sets the labels and taints the
facility's config declares for that group (`af-node-labeller.json`: `selector` and `groups`),
then does it again every `intervalSeconds`, so nodes a scale-out adds are labelled too. It only
adds or overwrites what the config names; other labels and taints stay as they are.

Usage: af_node_labeller.py CONFIG [--once]. Standard library only; it talks to the API server
with the pod's service-account token."""

from __future__ import annotations

import json
import os
import ssl
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def _taint(taint: dict[str, Any]) -> dict[str, str]:
    return {"key": taint["key"], "value": taint.get("value", ""), "effect": taint["effect"]}


def desired(node: dict[str, Any], config: dict[str, Any]) -> dict[str, Any] | None:
    """The strategic merge patch that gives `node` its group's labels and taints, or None if it
    has them (or belongs to no group the config names). Taints merge by key: a node's other
    taints (`not-ready` and the like) are never touched."""
    labels = node.get("metadata", {}).get("labels", {})
    group = config["groups"].get(labels.get(config["selector"], ""))
    if group is None:
        return None
    patch: dict[str, Any] = {}
    missing = {k: v for k, v in group["labels"].items() if labels.get(k) != v}
    if missing:
        patch["metadata"] = {"labels": missing}
    current = [_taint(t) for t in node.get("spec", {}).get("taints") or []]
    wanted = [_taint(t) for t in group["taints"]]
    if any(t not in current for t in wanted):
        patch["spec"] = {"taints": wanted}
    return patch or None


class Api:
    def __init__(self, base_url: str, token: str, context: ssl.SSLContext | None) -> None:
        self.base_url, self.token, self.context = base_url.rstrip("/"), token, context

    def call(self, method: str, path: str, body: Any = None) -> Any:
        request = urllib.request.Request(
            self.base_url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/strategic-merge-patch+json",
                "Accept": "application/json",
            },
        )
        with urllib.request.urlopen(request, timeout=30, context=self.context) as response:
            return json.load(response)


def reconcile(api: Api, config: dict[str, Any]) -> list[str]:
    """Patch every node of a configured group that lacks its labels or taints; the nodes patched."""
    query = urllib.parse.urlencode({"labelSelector": config["selector"]})
    patched = []
    for node in api.call("GET", f"/api/v1/nodes?{query}")["items"]:
        patch = desired(node, config)
        if patch is not None:
            name = node["metadata"]["name"]
            api.call("PATCH", f"/api/v1/nodes/{urllib.parse.quote(name)}", patch)
            patched.append(name)
    return patched


def in_cluster() -> Api:
    host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
    context = ssl.create_default_context(cafile=str(SERVICE_ACCOUNT / "ca.crt"))
    return Api(f"https://{host}:{port}", (SERVICE_ACCOUNT / "token").read_text().strip(), context)


def main(argv: list[str]) -> int:
    config = json.loads(Path(argv[0]).read_text())
    api = in_cluster()
    while True:
        try:
            for name in reconcile(api, config):
                print(f"labelled {name}", flush=True)
        except OSError as error:  # the API server restarting: try again next round
            print(f"reconcile failed: {error}", file=sys.stderr, flush=True)
        if "--once" in argv:
            return 0
        time.sleep(config["intervalSeconds"])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
