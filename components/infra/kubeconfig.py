"""How the program reaches a cluster it made: the endpoints, the admin kubeconfig (rendered from
the generated credentials, a pure function) and what to wait for before using it."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import pulumi

from ..common import yamltext


@dataclass(frozen=True)
class ClusterAccess:
    """What the rest of the facility needs from a cluster the program made."""

    api_endpoint: pulumi.Output[str]
    ingress_address: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    ready: list[pulumi.Resource]
    """What the Kubernetes provider waits for before it is used."""


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def render_kubeconfig(name: str, server: str, ca_pem: str, cert_pem: str, key_pem: str) -> str:
    user = f"{name}-admin"
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)}}],
        "users": [
            {"name": user, "user": {"client-certificate-data": _b64(cert_pem), "client-key-data": _b64(key_pem)}}
        ],
        "contexts": [{"name": name, "context": {"cluster": name, "user": user}}],
        "current-context": name,
    }
    return yamltext.dump(doc)
