"""Config of the cache layer (`af:cache`): an XCache in front of the experiment's federation."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, PositiveInt, SecretStr, StrictBool, field_validator

from ..config.base import HTTPS_URL_PATTERN, PinnedImage, StrictModel
from ..config.identity import WLCG_ANY_AUDIENCE
from ..credential.config import IamClient

_SIZE = re.compile(r"^(\d+)([kmgt])$")
_SIZE_FACTORS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
PATH_PATTERN = r"^/([A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*)?$"


def size_bytes(text: str) -> int:
    """XRootD-style size (`512m`, `4g`) in bytes."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError("a size such as 64k, 512m or 4g")
    return int(match.group(1)) * _SIZE_FACTORS[match.group(2)]


def under(path: str, prefix: str) -> bool:
    """`path` is `prefix` or below it, component by component (`/store2` is not under `/store`)."""
    return prefix == "/" or path == prefix or path.startswith(prefix.rstrip("/") + "/")


class CacheIssuer(StrictModel):
    """A token issuer whose tokens clients may read through the cache with."""

    issuer: str = Field(pattern=HTTPS_URL_PATTERN)
    """HTTPS issuer URL exactly as in the tokens' `iss` claim (a trailing `/` matters); the
    cache fetches its keys from it."""
    base_path: str = Field(pattern=PATH_PATTERN)
    """Path the token's `storage.read:` scopes are relative to (with `/store`, `storage.read:/mc`
    reads `/store/mc/…`); an exported path or below."""
    restricted_paths: list[str] = Field(default_factory=list)
    """If set, tokens of this issuer may read only below these paths (relative to `basePath`)."""

    @field_validator("restricted_paths")
    @classmethod
    def _paths(cls, value: list[str]) -> list[str]:
        for path in value:
            if not re.fullmatch(PATH_PATTERN, path):
                raise ValueError(f"absolute paths such as /store/user (not {path!r})")
        return value


class X509Proxy(StrictModel):
    """The cache's service (robot) certificate; a proxy is made from it and renewed."""

    kind: Literal["x509-proxy"] = "x509-proxy"
    """An X.509 proxy in `X509_USER_PROXY`."""
    certificate: str = Field(min_length=1)
    """PEM service certificate."""
    private_key: SecretStr
    """PEM key of the service certificate; a Pulumi secret."""
    voms: str | None = Field(default=None, pattern=r"^[a-z0-9.-]+(:/[A-Za-z0-9/._=-]+)?$")
    """VOMS attribute to request, e.g. `cms` or `cms:/cms/Role=production`; none for a plain proxy."""
    valid_hours: PositiveInt = 96
    """Lifetime of each proxy; it is renewed at a quarter of it."""

    @field_validator("certificate")
    @classmethod
    def _pem(cls, value: str) -> str:
        if "-----BEGIN CERTIFICATE-----" not in value:
            raise ValueError("a PEM certificate (-----BEGIN CERTIFICATE-----)")
        return value


class BearerToken(IamClient):
    """A token for the cache itself from IAM's client-credentials grant, renewed before expiry."""

    kind: Literal["bearer-token"] = "bearer-token"
    """A token in `BEARER_TOKEN_FILE`."""
    scopes: list[str] = Field(default_factory=lambda: ["storage.read:/"], min_length=1)
    """Scopes requested for reading from the federation."""
    refresh_minutes: PositiveInt = 20
    """How often a new token is fetched; keep it well below the token lifetime."""


class Cache(StrictModel):
    """XCache in front of the experiment's data federation. Clients read through it with the
    same `root://` paths as on the grid; the cache reads upstream with its own credential."""

    enabled: StrictBool = False
    """Deploy the cache."""
    image: PinnedImage = "hub.opensciencegrid.org/opensciencegrid/xcache:23-release"
    """XCache container image (XRootD 5.5 or later), pinned by tag."""
    origin: str = Field(default="cms-xrd-global.cern.ch:1094", pattern=r"^[a-z0-9.-]+(:\d{1,5})?$")
    """Redirector or origin the cache reads from (host[:port])."""
    exports: list[str] = Field(default_factory=lambda: ["/store"], min_length=1)
    """Paths the cache serves (`all.export`)."""
    forward_hosts: list[str] = Field(default_factory=list)
    """Hosts (`host[:port]`) besides the origin that clients may reach through the cache with
    their usual `root://host//path` URLs (`pss.permit`)."""
    servers: PositiveInt = 1
    """Number of cache servers (a StatefulSet's replicas)."""
    disk_gib: PositiveInt = 500
    """Cache disk per server, in GiB."""
    storage_class: str | None = Field(default=None, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    """Storage class of the cache disks; the cluster default when unset (on k3s, the node's data
    volume)."""
    ram: str = "4g"
    """Memory for blocks in flight (`pfc.ram`); XRootD 5.5 requires at least 1g."""
    block_size: str = "1m"
    """Block size (`pfc.blocksize`); a multiple of 4k."""
    prefetch: int = Field(default=10, ge=0, le=128)
    """Blocks prefetched per open file (`pfc.prefetch`); 0 turns prefetching off."""
    low_watermark: float = Field(default=0.90, gt=0, lt=1)
    """Disk fraction purging brings usage down to (`pfc.diskusage` low)."""
    high_watermark: float = Field(default=0.95, gt=0, lt=1)
    """Disk fraction at which purging starts (`pfc.diskusage` high)."""
    token_auth: StrictBool = True
    """Clients must present a token (SciTokens/WLCG) whose scopes cover the path."""
    issuers: list[CacheIssuer] = Field(default_factory=list)
    """Token issuers accepted from clients. Empty: `af:identity`'s issuer, for each export."""
    audiences: list[str] = Field(default_factory=lambda: [WLCG_ANY_AUDIENCE], min_length=1)
    """Token audiences accepted."""
    upstream: X509Proxy | BearerToken | None = Field(default=None, discriminator="kind")
    """The cache's own credential towards the federation; none for an open origin."""

    @field_validator("ram")
    @classmethod
    def _ram(cls, value: str) -> str:
        if size_bytes(value) < size_bytes("1g"):
            raise ValueError("at least 1g (XRootD 5.5 refuses a smaller pfc.ram)")
        return value

    @field_validator("block_size")
    @classmethod
    def _block(cls, value: str) -> str:
        if size_bytes(value) % size_bytes("4k"):
            raise ValueError("a multiple of 4k, such as 64k or 1m")
        if not size_bytes("4k") <= size_bytes(value) <= size_bytes("16m"):
            raise ValueError("between 4k and 16m (XRootD 5.5's pfc.blocksize range)")
        return value

    @field_validator("forward_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        for host in value:
            if not re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:\d{1,5})?", host):
                raise ValueError(f"host[:port] such as xrootd.example.org:1094 (not {host!r})")
        return value

    @field_validator("exports")
    @classmethod
    def _exports(cls, value: list[str]) -> list[str]:
        for path in value:
            if not re.fullmatch(PATH_PATTERN, path):
                raise ValueError(f"absolute paths such as /store (not {path!r})")
        if len(set(value)) != len(value):
            raise ValueError("each path once")
        return value
