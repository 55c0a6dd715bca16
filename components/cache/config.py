"""Config of the cache layer (`af:cache`): an XCache in front of the experiment's federation."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, Field, PositiveInt, SecretStr, StrictBool, field_validator

from ..config.base import HTTPS_URL_PATTERN, PinnedImage, StrictModel
from ..config.identity import WLCG_ANY_AUDIENCE
from ..credential.config import IamClient

if TYPE_CHECKING:
    from ..infra.config import Cluster

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


def _ram(value: str) -> str:
    if size_bytes(value) < size_bytes("1g"):
        raise ValueError("at least 1g (XRootD 5.5 refuses a smaller pfc.ram)")
    return value


XROOTD_BUFFER = "2m"
"""XRootD's own `xrd.buffers maxbsz`: the directive takes only larger values."""
TLS_BUFFER = "16m"
"""`af:cache.maxBufferSize` when unset and clients come over TLS."""


def _buffer_size(value: str) -> str:
    if not size_bytes(XROOTD_BUFFER) <= size_bytes(value) <= size_bytes("1g"):
        raise ValueError("from 2m (XRootD's default) to 1g, such as 16m")
    return value


def _block_size(value: str) -> str:
    if size_bytes(value) % size_bytes("4k"):
        raise ValueError("a multiple of 4k, such as 64k or 1m")
    if not size_bytes("4k") <= size_bytes(value) <= size_bytes("16m"):
        raise ValueError("between 4k and 16m (XRootD 5.5's pfc.blocksize range)")
    return value


PfcRam = Annotated[str, AfterValidator(_ram)]
"""`pfc.ram`: a size of at least 1g."""
BlockSize = Annotated[str, AfterValidator(_block_size)]
"""`pfc.blocksize`: a multiple of 4k from 4k to 16m."""
BufferSize = Annotated[str, AfterValidator(_buffer_size)]
"""`xrd.buffers maxbsz`: from 2m to 1g."""


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


class NodeCacheClient(IamClient):
    """The node caches' own IAM client (client-credentials grant): XRootD 5.5's proxy cannot pass a user's token on,
    so every node cache reads the site cache as this client. Grant it read scopes for everything the site cache
    serves: the node caches check each user's token themselves, with the site cache's rules."""

    scopes: list[str] = Field(default_factory=lambda: ["storage.read:/"], min_length=1)
    """Scopes asked for: relative to each issuer's `basePath`, so `storage.read:/` reads every export."""
    audience: str | None = None
    """Audience asked for; when unset, the site cache's first accepted audience (`af:cache.audiences`), so the site
    cache accepts the token."""
    refresh_minutes: PositiveInt = 20
    """How often a new token is fetched; keep it well below the token lifetime."""


NODE_DISK_HEADROOM = 0.10
"""A node cache's disk (an emptyDir) is limited to `filesMax` plus this fraction: the purge keeps cached files under
`filesMax`, checking every minute, and the kubelet evicts a node cache whose disk grows past the limit."""


class NodeLocal(StrictModel):
    """A small cache on every node of the chosen groups (a DaemonSet), in front of the site cache: notebooks and local
    batch workers on those nodes read through their own node's cache with the same `root://` paths. It checks every
    user's token itself, with the site cache's rules, and reads the site cache with its own credential (`client`): a
    node cache is a trusted component of the facility."""

    enabled: StrictBool = False
    """Deploy node caches."""
    groups: list[str] | None = Field(default=None, min_length=1)
    """Node groups whose nodes each run one. Default: every group with role `interactive` or `batch`. Notebooks read
    through node caches only when every group with role `interactive` has them; a batch worker group when its node
    group has them."""
    files_max: str = "50g"
    """Cap on the bytes of cached files per node (`pfc.diskusage … files`; the purge brings them down to 80 % of it).
    The node cache's disk is node-local scratch (an emptyDir) limited to this plus 10 %: it never holds more."""
    ram: PfcRam = "1g"
    """Memory for blocks in flight (`pfc.ram`); XRootD 5.5 requires at least 1g. The pod requests it and 256 MiB."""
    block_size: BlockSize | None = None
    """Block size (`pfc.blocksize`), a multiple of 4k; the site cache's when unset, so a node's miss is whole blocks of
    the site cache."""
    prefetch: int = Field(default=0, ge=0, le=128)
    """Blocks prefetched per open file (`pfc.prefetch`); 0 (off): a node fetches only what its pods read."""
    client: NodeCacheClient | None = None
    """The node caches' own IAM client (its secret a Pulumi secret: `pulumi config set --secret --path
    'af:cache.nodeLocal.client.clientSecret' …`). Required with `af:cache.tokenAuth`: the site cache then admits
    only readers with a token."""

    @field_validator("files_max")
    @classmethod
    def _files_max(cls, value: str) -> str:
        if size_bytes(value) < size_bytes("1g"):
            raise ValueError("at least 1g, such as 50g")
        return value


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
    ram: PfcRam = "4g"
    """Memory for blocks in flight (`pfc.ram`); XRootD 5.5 requires at least 1g."""
    block_size: BlockSize = "64k"
    """Block size (`pfc.blocksize`); a multiple of 4k. The unit fetched from the origin: an
    analysis reading a quarter of a NanoAOD file's branches needs scattered baskets, and every block
    it touches is fetched whole. Measured (benchmarks/bench_cache_wan.py, 20 ms, 1 Gbit/s): bytes
    fetched from the origin per byte needed 1.23 with 64k, 1.40 with 128k, 1.69 with 256k, 2.66
    with 1m; cold read time hardly changes (each vector read waits one origin round trip)."""
    max_buffer_size: BufferSize | None = None
    """The most the server handles of one client request at a time (`xrd.buffers maxbsz`, from 2m,
    XRootD's own default, to 1g). Unset: 16m when clients come over TLS (`tokenAuth`), 2m otherwise.
    A vector read (readv) or read larger than this is served in pieces of this size, one after the
    other, and through the cache each piece that misses waits one origin round trip before the next
    is looked at: uproot sends ~10 MB vector reads, which at 2m cost 8 sequential round trips each (a
    cold 10 MB read took 0.31 s over a 20 ms WAN). With 16m each costs one (0.15 to 0.25 s), and cold
    reads of 2 files went from 2.1-2.4 to 1.3-1.5 times the direct read (benchmarks/bench_cache_wan.py).
    Every request in progress holds a buffer up to this size in memory. Above 2m needs `tokenAuth`:
    XRootD 5.5.3 overflows a stack array (and aborts) serving a kXR_pgread of more than 2 MiB with a
    larger buffer, and xrdcp sends such reads over plain root:// (over TLS it, XrdCl 6's copies and
    uproot send plain reads: tests/test_xcache_xrootd.py). A client built to send large pgreads over
    TLS can still stop the server (it restarts; its disk is kept): 2m rules that out, at the cold cost
    above. Also with more than 2m, when `ram` is full the cache forwards a client's vector-read pieces
    to the origin as they are, and an origin keeping XRootD's 2m refuses pieces above it (XRootD
    issue 2308; uproot's pieces were at most 1.3 MB here)."""
    network_checksums: StrictBool = True
    """The cache reads from the origin with page checksums (`pfc.cschk net`, XRootD's default: kXR_pgread,
    a CRC32C per 4 KiB page that the origin computes and the cache checks before the block is stored
    and served to everyone); false reads plainly (`pfc.cschk off`) and trusts TCP's own checksum.
    XRootD 5.5 runs a `cpuid` instruction per page to choose its CRC code, which on a virtual machine
    traps to the hypervisor (3.7 µs on the development VM): in a cold read the CRC code took a quarter
    of the cache's CPU and over half of the origin's (perf), and turning the checks off cut the
    servers' CPU for a cold read of 4 files over the emulated WAN from 2.2 to 1.3 s
    (benchmarks/bench_cache_wan.py; loopback variant `no network checksums`). On by default: a
    corrupted block would be stored and served to every later reader. Node caches check pages only
    without `tokenAuth`: with it their link to the site cache is TLS, which authenticates every record."""
    prefetch: int = Field(default=0, ge=0, le=128)
    """Blocks prefetched per open file (`pfc.prefetch`); 0 turns prefetching off. Off by default:
    prefetching reads a file from its start whatever the client needs, so an analysis taking a
    quarter of the branches made the cache fetch the whole file (3.4 times the bytes needed,
    benchmarks/bench_cache_wan.py); whole-file copies (xrdcp) gain from it."""
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
    node_local: NodeLocal = Field(default_factory=NodeLocal)
    """Node-level caches in front of this one, on the nodes where notebooks and workers run."""

    def buffer_size(self) -> str | None:
        """`xrd.buffers maxbsz` to render: the declared size, or 16m with TLS; None for XRootD's own 2m."""
        size = self.max_buffer_size or (TLS_BUFFER if self.token_auth else XROOTD_BUFFER)
        return None if size_bytes(size) <= size_bytes(XROOTD_BUFFER) else size

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


NODE_CACHE_ROLES = ("interactive", "batch")
"""Roles of the node groups that run node caches by default: where users' code reads data."""


def node_cache_groups(cache: Cache, cluster: Cluster) -> list[str]:
    """The node groups whose nodes run a node cache, in name order: none unless the cache and its node tier are on."""
    local = cache.node_local
    if not (cache.enabled and local.enabled):
        return []
    if local.groups is not None:
        return sorted(set(local.groups) & set(cluster.node_groups))
    return sorted(n for n, g in cluster.node_groups.items() if set(g.roles) & set(NODE_CACHE_ROLES))


def notebooks_read_node_caches(cache: Cache, cluster: Cluster) -> bool:
    """Notebooks read through node caches when every node that runs them has one: every group with role
    `interactive` runs node caches, and the control plane runs no notebooks (its nodes run none)."""
    groups = set(node_cache_groups(cache, cluster))
    interactive = {n for n, g in cluster.node_groups.items() if "interactive" in g.roles}
    return bool(interactive) and interactive <= groups and "interactive" not in cluster.control_plane.roles
