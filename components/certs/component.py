"""cert-manager (pinned chart) and the facility's internal CA, for every layer that needs a
certificate: the hub's ACME issuer builds on the release; in-cluster services (the cache's
TLS) get certificates from the internal CA, which the program generates so that clients can
be given it to trust (`trust`)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_tls as tls

from ..common.kube import SMALL, layer_namespace
from ..names import CERT_MANAGER_NAMESPACE, INTERNAL_ISSUER, SYSTEM_NODES, TRUST_CONFIGMAP
from .config import CertManager as CertManagerConfig

CHART_REPO = "https://charts.jetstack.io"
INTERNAL_CA_SECRET = "af-internal-ca"
"""Secret (in cert-manager's namespace) with the internal CA's certificate and key."""
INTERNAL_CA_NAME = "analysis-facility internal CA"


def _der(tag: int, body: bytes) -> bytes:
    size = len(body)
    length = (
        bytes([size])
        if size < 0x80
        else bytes([0x80 | ((size.bit_length() + 7) // 8)]) + size.to_bytes((size.bit_length() + 7) // 8, "big")
    )
    return bytes([tag]) + length + body


def _oid(dotted: str) -> bytes:
    first, second, *rest = (int(p) for p in dotted.split("."))
    body = bytearray()
    for arc in (40 * first + second, *rest):
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body += bytes(reversed(chunk))
    return _der(0x06, bytes(body))


def cert_manager_values() -> dict[str, Any]:
    """The chart's values: its CRDs, and every workload sized and on system nodes."""
    placed = {"nodeSelector": dict(SYSTEM_NODES), "resources": SMALL}
    return {
        "crds": {"enabled": True},
        **placed,
        "webhook": dict(placed),
        "cainjector": dict(placed),
        "startupapicheck": {"nodeSelector": dict(SYSTEM_NODES)},
    }


def subject_hash(common_name: str) -> str:
    """OpenSSL's `x509 -subject_hash` of a subject that is just `CN=common_name`: SHA-1 of the
    canonical RDN encoding (UTF8String, lower case, whitespace collapsed), first 4 bytes read
    little-endian. It names the CA's file in a hashed directory, known before the CA exists."""
    value = " ".join(common_name.split()).lower().encode()
    rdn = _der(0x31, _der(0x30, _oid("2.5.4.3") + _der(0x0C, value)))
    return f"{int.from_bytes(hashlib.sha1(rdn).digest()[:4], 'little'):08x}"


class CertManager(pulumi.ComponentResource):
    """The cert-manager release and the internal CA issuer. Certificate users depend on
    `internal_issuer`; `ca_pem` is the CA certificate clients trust."""

    release: k8s.helm.v3.Release
    internal_issuer: k8s.apiextensions.CustomResource
    ca_pem: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        config: CertManagerConfig,
        provider: k8s.Provider,
        opts: pulumi.ResourceOptions | None = None,
        namespace_labels: Mapping[str, str] | None = None,
    ) -> None:
        """`namespace_labels`: those of cert-manager's namespace, which the facility creates (not
        the release) so that it carries them."""
        super().__init__("af:index:CertManager", name, None, opts)
        self._provider = provider
        namespace, _, ns_opts = layer_namespace(self, name, CERT_MANAGER_NAMESPACE, provider, namespace_labels)
        self.release = k8s.helm.v3.Release(
            f"{name}-chart",
            name="cert-manager",
            chart="cert-manager",
            version=config.version,
            repository_opts={"repo": CHART_REPO},
            namespace=CERT_MANAGER_NAMESPACE,
            values=cert_manager_values(),
            opts=ns_opts,
        )
        key = tls.PrivateKey(
            f"{name}-ca-key", algorithm="ECDSA", ecdsa_curve="P256", opts=pulumi.ResourceOptions(parent=self)
        )
        cert = tls.SelfSignedCert(
            f"{name}-ca",
            private_key_pem=key.private_key_pem,
            is_ca_certificate=True,
            subject={"common_name": INTERNAL_CA_NAME},
            validity_period_hours=10 * 8766,
            allowed_uses=["cert_signing", "crl_signing", "digital_signature"],
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.ca_pem = cert.cert_pem
        ca_secret = k8s.core.v1.Secret(
            f"{name}-internal-ca",
            metadata={"name": INTERNAL_CA_SECRET, "namespace": CERT_MANAGER_NAMESPACE},
            type="kubernetes.io/tls",
            string_data={"tls.crt": cert.cert_pem, "tls.key": pulumi.Output.secret(key.private_key_pem)},
            opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[namespace, self.release]),
        )
        self.internal_issuer = k8s.apiextensions.CustomResource(
            f"{name}-internal-issuer",
            api_version="cert-manager.io/v1",
            kind="ClusterIssuer",
            metadata={"name": INTERNAL_ISSUER},
            spec={"ca": {"secretName": INTERNAL_CA_SECRET}},
            opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[self.release, ca_secret]),
        )
        self.register_outputs({"caPem": self.ca_pem})

    def trust(self, name: str, namespace: k8s.core.v1.Namespace, parent: pulumi.Resource) -> k8s.core.v1.ConfigMap:
        """The internal CA in `namespace` (created after it), as a hashed directory to mount at
        `CA_CERT_DIR`."""
        return k8s.core.v1.ConfigMap(
            name,
            metadata={"name": TRUST_CONFIGMAP, "namespace": namespace.metadata["name"]},
            data={f"{subject_hash(INTERNAL_CA_NAME)}.0": self.ca_pem},
            opts=pulumi.ResourceOptions(parent=parent, provider=self._provider, depends_on=[namespace]),
        )
