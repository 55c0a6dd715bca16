"""The Kubernetes adapter: worker pods, their deletion cost, and the groups' replicas, over
the API server's REST interface with the pod's service-account token (standard library only,
so the controller's image needs nothing but HTCondor's bindings)."""

from __future__ import annotations

import datetime
import json
import ssl
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
GROUP_LABEL = "af.infn.it/worker-group"
"""Label on worker pods naming their group; also selects them."""
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"


@dataclass(frozen=True)
class Pod:
    name: str
    group: str
    phase: str
    """Kubernetes pod phase: Pending, Running, Succeeded, Failed, Unknown."""
    created: float
    deleting: bool


def _epoch(stamp: str) -> float:
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def pod_from(item: dict[str, Any]) -> Pod | None:
    meta = item.get("metadata", {})
    group = meta.get("labels", {}).get(GROUP_LABEL)
    if group is None:
        return None
    return Pod(
        name=meta["name"],
        group=group,
        phase=item.get("status", {}).get("phase", "Unknown"),
        created=_epoch(meta["creationTimestamp"]),
        deleting="deletionTimestamp" in meta,
    )


class KubeApi:
    """Just what the controller may do (its RBAC grants no more): list pods, annotate pods,
    scale the worker Deployments of its namespace."""

    def __init__(self, base_url: str, token: str, namespace: str, context: ssl.SSLContext | None) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.namespace = namespace
        self.context = context

    @classmethod
    def in_cluster(cls, host: str, port: str) -> KubeApi:
        context = ssl.create_default_context(cafile=str(SERVICE_ACCOUNT / "ca.crt"))
        token = (SERVICE_ACCOUNT / "token").read_text().strip()
        namespace = (SERVICE_ACCOUNT / "namespace").read_text().strip()
        return cls(f"https://{host}:{port}", token, namespace, context)

    def _call(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        request = urllib.request.Request(
            self.base_url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": content_type,
                "Accept": "application/json",
            },
        )
        with urllib.request.urlopen(request, timeout=30, context=self.context) as response:
            return json.load(response)

    def worker_pods(self) -> list[Pod]:
        query = urllib.parse.urlencode({"labelSelector": GROUP_LABEL})
        items = self._call("GET", f"/api/v1/namespaces/{self.namespace}/pods?{query}")["items"]
        return [pod for pod in map(pod_from, items) if pod is not None and not pod.deleting]

    def set_deletion_cost(self, pod: str, cost: int) -> None:
        patch = {"metadata": {"annotations": {DELETION_COST: str(cost)}}}
        path = f"/api/v1/namespaces/{self.namespace}/pods/{urllib.parse.quote(pod)}"
        self._call("PATCH", path, patch, "application/merge-patch+json")

    def scale(self, deployment: str, replicas: int) -> None:
        path = f"/apis/apps/v1/namespaces/{self.namespace}/deployments/{urllib.parse.quote(deployment)}/scale"
        self._call("PATCH", path, {"spec": {"replicas": replicas}}, "application/merge-patch+json")
