"""Recording mocks: run the real program in-process, keep every registration as the engine
would see it, and answer with deterministic fake IDs, addresses and credentials."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from secrets import token_bytes
from typing import Any

from google.protobuf import json_format
from pulumi.runtime import mocks

from .propertypath import Path, format_path

SECRET = "[secret]"
UNKNOWN = "[unknown]"
_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
_RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
_UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
_TEST_NET = ipaddress.ip_network("192.0.2.0/24")  # RFC 5737: never routed


def digest(*parts: str, length: int = 12) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:length]


def fake_address(*parts: str) -> str:
    offset = int(digest(*parts, length=8), 16) % (_TEST_NET.num_addresses - 2) + 1
    return str(_TEST_NET.network_address + offset)


def _pem(kind: str, seed: str) -> str:
    return f"-----BEGIN {kind}-----\nMOCK{digest(kind, seed, length=48)}\n-----END {kind}-----\n"


def sanitize(value: Any) -> Any:
    """Wire values to plain JSON: secrets hidden, references as URNs, integral floats as ints."""
    if isinstance(value, dict):
        sig = value.get(_SIG_KEY)
        if sig == _SECRET_SIG:
            return SECRET
        if sig == _RESOURCE_SIG:
            return value.get("urn")
        return {k: sanitize(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [sanitize(v) for v in value]
    if value == _UNKNOWN:
        return UNKNOWN
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# Secrets are compared by salted digest, never stored: the salt lives only as long as this process.
_SECRET_SALT = token_bytes(16)


def secret_digests(value: Any, path: Path = ()) -> dict[str, str]:
    """Each secret inside a wire value, by property path, as a salted digest: enough for `afctl diff`
    to tell that a secret changed between two in-process previews without ever holding it."""
    found: dict[str, str] = {}
    if isinstance(value, dict):
        if value.get(_SIG_KEY) == _SECRET_SIG:
            text = json.dumps(value.get("value"), sort_keys=True, default=str).encode()
            return {format_path(path): hashlib.sha256(_SECRET_SALT + text).hexdigest()}
        if value.get(_SIG_KEY) is None:
            for key, item in value.items():
                found |= secret_digests(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found |= secret_digests(item, (*path, index))
    return found


def mock_id(typ: str, name: str) -> str:
    return f"{name}-{digest(typ, name, length=8)}"


def mock_outputs(typ: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """What the mocks answer for a custom resource beyond its inputs, `id` included."""
    return {"id": mock_id(typ, name)} | _computed(typ, name, inputs)


def _computed(typ: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Outputs a real provider would compute, faked deterministically per type and name."""
    seed = f"{typ}:{name}"
    if typ == "tls:index/privateKey:PrivateKey":
        return {
            "privateKeyPem": _pem("PRIVATE KEY", seed),
            "privateKeyOpenssh": _pem("OPENSSH PRIVATE KEY", seed),
            "publicKeyPem": _pem("PUBLIC KEY", seed),
            "publicKeyOpenssh": f"ssh-ed25519 MOCK{digest(seed, length=43)} {name}",
        }
    if typ in ("tls:index/selfSignedCert:SelfSignedCert", "tls:index/locallySignedCert:LocallySignedCert"):
        return {"certPem": _pem("CERTIFICATE", seed)}
    if typ == "tls:index/certRequest:CertRequest":
        return {"certRequestPem": _pem("CERTIFICATE REQUEST", seed)}
    if typ in ("random:index/randomPassword:RandomPassword", "random:index/randomString:RandomString"):
        return {"result": digest("password", seed, length=int(inputs.get("length", 32)))}
    if typ == "random:index/randomBytes:RandomBytes":
        raw = bytes.fromhex(digest("bytes", seed, length=2 * int(inputs.get("length", 32))))
        return {"hex": raw.hex(), "base64": base64.b64encode(raw).decode()}
    if typ == "openstack:networking/floatingIp:FloatingIp":
        return {"address": fake_address(seed)}
    if typ == "openstack:containerinfra/cluster:Cluster":
        api = f"https://{fake_address(seed)}:6443"
        return {"apiAddress": api, "kubeconfig": {"raw_config": f"# mock kubeconfig for {api}\n"}}
    return {}


class RecordingMocks(mocks.Mocks):
    def new_resource(self, args: mocks.MockResourceArgs) -> tuple[str | None, dict]:
        if not args.custom:
            return None, {}
        state = dict(args.inputs) | _computed(args.typ, args.name, args.inputs)
        return mock_id(args.typ, args.name), state

    def call(self, args: mocks.MockCallArgs) -> dict:
        if args.token == "openstack:networking/getNetwork:getNetwork":
            name = args.args.get("name", "")
            return {"id": f"net-{digest('network', name, length=8)}", "name": name}
        return {}


@dataclass
class Registration:
    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    provider: str
    dependencies: list[str]
    inputs: dict[str, Any]
    # Known to the engine, not written to plan.json (its shape is a contract); `afctl diff` reads them.
    ignore_changes: tuple[str, ...] = ()
    replace_on_changes: tuple[str, ...] = ()
    property_dependencies: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Top-level input property -> URNs of the resources its value came from."""
    secrets: dict[str, str] = field(default_factory=dict)
    """Salted digests of the secret inputs by property path (see `secret_digests`)."""


class RecordingMonitor(mocks.MockMonitor):
    """MockMonitor that keeps each registration request (parent, provider, dependencies,
    inputs with secrets marked) and the stack's outputs."""

    def __init__(self, on_register: Callable[[Registration], None] | None = None) -> None:
        super().__init__(RecordingMocks())
        self.on_register = on_register
        self.registrations: list[Registration] = []
        self.stack_outputs: dict[str, Any] = {}
        self.stack_urn = ""

    def RegisterResource(self, request):
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == "pulumi:pulumi:Stack":
            self.stack_urn = urn
        provider = request.provider.split("::")
        wire = json_format.MessageToDict(request.object)
        registration = Registration(
            urn=urn,
            type=request.type,
            name=request.name,
            parent=request.parent,
            custom=bool(request.custom),
            provider="::".join(provider[:-1]) if len(provider) > 1 else request.provider,
            dependencies=sorted(set(request.dependencies)),
            inputs=sanitize(wire),
            ignore_changes=tuple(request.ignoreChanges),
            replace_on_changes=tuple(request.replaceOnChanges),
            property_dependencies={
                key: tuple(sorted(set(deps.urns))) for key, deps in request.propertyDependencies.items() if deps.urns
            },
            secrets=secret_digests(wire),
        )
        self.registrations.append(registration)
        if self.on_register is not None:
            self.on_register(registration)
        return super().RegisterResource(request)

    def RegisterResourceOutputs(self, request):
        if request.urn == self.stack_urn:
            self.stack_outputs = sanitize(json_format.MessageToDict(request.outputs))
        return super().RegisterResourceOutputs(request)
