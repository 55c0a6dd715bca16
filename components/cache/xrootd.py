"""XCache configuration files, rendered from the config: pure functions.

`xrootd.cfg` uses only directives XRootD 5.5 knows (DESIGN.md): a proxy (`libXrdPss`) with the
file cache (`libXrdPfc`) in front of the origin, and SciTokens authorization for clients. What
differs between a pod and a test is only in `CacheRuntime`: ports and local paths."""

from __future__ import annotations

from dataclasses import dataclass

from ..config.facility import FacilityConfig
from .config import CacheIssuer, size_bytes


@dataclass(frozen=True)
class CacheRuntime:
    """Host-specific parts of the cache's config: ports and local paths (a pod's, or a test's)."""

    data_dir: str
    """`oss.localroot`: cached files and their `.cinfo` records."""
    run_dir: str
    """`all.adminpath` and `all.pidpath`."""
    scitokens_cfg: str
    """Where the rendered `scitokens.cfg` is placed."""
    port: int = 1094
    """`xrd.port` for root://."""
    https_port: int | None = None
    """An XrdHttp listener with TLS on this port, when set."""
    tls_cert: str | None = None
    """PEM certificate of the server: root:// needs TLS for tokens (ztn), and HTTPS does."""
    tls_key: str | None = None
    """Its PEM key."""
    report_port: int | None = None
    """Loopback UDP port of the metrics exporter, which gets the summary report and the file
    cache's g-stream; no monitoring directives when unset."""
    report_seconds: int = 10
    """How often the summary report is sent and the g-stream flushed."""


def issuers(cfg: FacilityConfig) -> list[CacheIssuer]:
    """Issuers accepted from clients: the declared ones, or the facility's IAM for each export."""
    if cfg.cache.issuers:
        return list(cfg.cache.issuers)
    if cfg.identity is None:
        return []
    issuer = str(cfg.identity.issuer)
    return [CacheIssuer.model_validate({"issuer": issuer, "basePath": e}) for e in cfg.cache.exports]


DEFAULT_PORT = 1094


def _with_port(host: str) -> str:
    return host if ":" in host else f"{host}:{DEFAULT_PORT}"


def forwarded(cfg: FacilityConfig) -> list[str]:
    """`host:port` the cache forwards to: the origin, then the declared hosts, each once."""
    hosts = [_with_port(cfg.cache.origin), *(_with_port(h) for h in cfg.cache.forward_hosts)]
    return list(dict.fromkeys(hosts))


def permitted_hosts(cfg: FacilityConfig) -> list[str]:
    """Host names for `pss.permit`."""
    return list(dict.fromkeys(h.split(":")[0] for h in forwarded(cfg)))


def token_base_paths(cfg: FacilityConfig, base_path: str) -> list[str]:
    """Where a token with this base path may read: the plain path, and the same path in the
    forwarded form the proxy plugin sends (`/root:/host:port/store/…`; it always adds the port)."""
    return [base_path, *(f"/{scheme}:/{host}{base_path}" for host in forwarded(cfg) for scheme in ("root", "xroot"))]


def render_xrootd_cfg(cfg: FacilityConfig, runtime: CacheRuntime) -> str:
    """The cache server's `xrootd.cfg`."""
    cache = cfg.cache
    lines = [
        "# XCache rendered by the analysis-facility program; XRootD 5.5 directives only.",
        f"xrd.port {runtime.port}",
        f"all.adminpath {runtime.run_dir}",
        f"all.pidpath {runtime.run_dir}",
        *(f"all.export {path}" for path in cache.exports),
        "",
        "# Proxy to the federation, with the file cache in front of it. Forwarding mode (`=`):",
        "# a client's root://host//path URL, prefixed by XrdCl's proxy plugin, is read through the",
        "# cache from that host if permitted; a plain path is read from the origin.",
        "ofs.osslib libXrdPss.so",
        "pss.cachelib libXrdPfc.so",
        f"pss.origin = {cache.origin}",
        *(f"pss.permit {host}" for host in permitted_hosts(cfg)),
        "all.export /root:/",
        "all.export /xroot:/",
        f"oss.localroot {runtime.data_dir}",
        f"pfc.ram {cache.ram}",
        f"pfc.blocksize {cache.block_size}",
        f"pfc.prefetch {cache.prefetch}",
        f"pfc.diskusage {cache.low_watermark:.2f} {cache.high_watermark:.2f}",
        "pfc.trace info",
    ]
    lines += _served_lines(cfg, runtime)
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class NodeCache:
    """What a node-level cache needs besides the site cache's config (`af:cache`): where the site cache is and how
    much of the node it may hold. Its clients are the pods of its node; it reads only from the site cache."""

    site_cache: str
    """`host:port` of the site cache (its Service); every read the node cache misses goes there."""
    files_max: str = "50g"
    """Cap on the bytes of cached files (`pfc.diskusage … files baseline nominal max` with baseline 80 % and
    nominal 90 % of it): the purge keeps the node cache under it whatever else shares the node's disk."""
    ram: str = "1g"
    """`pfc.ram`; XRootD 5.5's minimum, a node cache keeps few blocks in flight."""
    block_size: str | None = None
    """`pfc.blocksize`; the site cache's when unset, so a node's miss is whole blocks of the site cache."""
    prefetch: int = 0
    """`pfc.prefetch`; off: the node fetches only what its pods read (the site cache holds the rest)."""
    purge_seconds: int = 60
    """How often the purge checks the disk (`purgeinterval`; XRootD's default is 300 s). Between two checks the
    cache grows by what the node fetched meanwhile: a short interval keeps it near its cap."""


def render_node_xrootd_cfg(cfg: FacilityConfig, runtime: CacheRuntime, node: NodeCache) -> str:
    """A node-level cache's `xrootd.cfg`: a proxy file cache whose only origin is the site cache, checking clients'
    tokens itself with the site cache's rules (`render_scitokens_cfg`): XRootD 5.5's proxy cannot forward a client's
    credential, so it reads upstream with its own (`BEARER_TOKEN_FILE` in its environment) and must refuse, before
    reading anything, a client whose token does not cover the path."""
    # In KiB: XRootD 5.5 reads these as sizes with a unit (a bare number does not parse as bytes).
    files_max = size_bytes(node.files_max) >> 10
    nominal, baseline = files_max * 9 // 10, files_max * 8 // 10
    lines = [
        "# Node-level XCache rendered by the analysis-facility program; XRootD 5.5 directives only.",
        f"xrd.port {runtime.port}",
        f"all.adminpath {runtime.run_dir}",
        f"all.pidpath {runtime.run_dir}",
        *(f"all.export {path}" for path in cfg.cache.exports),
        "",
        "# Proxy to the site cache only (no forwarding: every path is read from it), with a file cache in front.",
        "# A grid URL prefixed by XrdCl's proxy plugin (/root:/host:port/store/...) is passed on as it is: the",
        "# site cache forwards it, under the same token rules.",
        "ofs.osslib libXrdPss.so",
        "pss.cachelib libXrdPfc.so",
        f"pss.origin {node.site_cache}",
        "all.export /root:/",
        "all.export /xroot:/",
        f"oss.localroot {runtime.data_dir}",
        f"pfc.ram {node.ram}",
        f"pfc.blocksize {node.block_size or cfg.cache.block_size}",
        f"pfc.prefetch {node.prefetch}",
        "# Its own disk limit: cached files' bytes (files baseline nominal max), besides the disk's watermarks.",
        f"pfc.diskusage {cfg.cache.low_watermark:.2f} {cfg.cache.high_watermark:.2f} "
        f"files {baseline}k {nominal}k {files_max}k purgeinterval {node.purge_seconds}",
        "pfc.trace info",
    ]
    lines += _served_lines(cfg, runtime)
    return "\n".join(lines) + "\n"


def _served_lines(cfg: FacilityConfig, runtime: CacheRuntime) -> list[str]:
    """How clients reach a cache and what they must present: monitoring, TLS, token auth, HTTPS; the same for the
    site cache and a node cache."""
    cache = cfg.cache
    lines: list[str] = [
        "",
        "# Reads are served synchronously. XRootD 5.5's async path cuts a read into small segments, each",
        "# its own cache lookup: cold xrdcp through the cache took 4.2x the direct read without TLS, 1.75x",
        "# with this (benchmarks/bench_cache_wan.py); links with TLS are synchronous anyway.",
        "xrootd.async off",
    ]
    if runtime.report_port is not None:
        lines += ["", *monitoring_lines(runtime.report_port, runtime.report_seconds)]
    if cache.token_auth or runtime.https_port is not None:
        if not (runtime.tls_cert and runtime.tls_key):
            raise ValueError("token auth and HTTPS need tls_cert and tls_key (ztn requires TLS)")
        lines += [
            "",
            "# TLS: ztn sends tokens only over TLS. Clients authenticate with tokens, not certificates.",
            f"xrd.tls {runtime.tls_cert} {runtime.tls_key}",
            "xrd.tlsca noverify",
        ]
    if cache.token_auth:
        lines += [
            "",
            "# Clients present WLCG/SciTokens (ztn over root://); the token's scopes decide the path.",
            "xrootd.seclib libXrdSec.so",
            "sec.protocol ztn",
            "ofs.authorize 1",
            f"ofs.authlib libXrdAccSciTokens.so config={runtime.scitokens_cfg}",
        ]
    if runtime.https_port is not None:
        lines += [
            "",
            "# HTTPS (davs://) for clients that do not speak root://; tokens in the Authorization header.",
            f"xrd.protocol XrdHttp:{runtime.https_port} libXrdHttp.so",
            "http.header2cgi Authorization authz",
        ]
    return lines


REPORT_OPTIONS = "link prot"
"""What the summary report carries: `link` (client connections and bytes) and `prot` (the
protocol's opens and errors, then the proxy's opens at the origin and the file cache's section)."""


def monitoring_lines(port: int, seconds: int) -> list[str]:
    """The directives that send the exporter sidecar what the server reports about itself."""
    destination = f"127.0.0.1:{port}"
    return [
        "# Metrics, to the exporter sidecar on loopback. XRootD 5.5's summary report leaves its",
        "# file-cache counters at zero, so bytes hit, missed and bypassed come from the cache's",
        "# g-stream instead: a JSON record per closed file.",
        f"xrd.report {destination} every {seconds}s {REPORT_OPTIONS}",
        f"xrootd.mongstream pfc use flush {seconds}s send nohdr {destination}",
    ]


def render_scitokens_cfg(cfg: FacilityConfig) -> str:
    """The SciTokens plugin's config: accepted audiences, and per issuer its base path."""
    lines = ["[Global]", f"audience = {', '.join(cfg.cache.audiences)}"]
    for index, issuer in enumerate(issuers(cfg)):
        lines += ["", f"[Issuer af-{index}]", f"issuer = {issuer.issuer}"]
        lines.append(f"base_path = {', '.join(token_base_paths(cfg, issuer.base_path))}")
        if issuer.restricted_paths:
            lines.append(f"restricted_path = {', '.join(issuer.restricted_paths)}")
    return "\n".join(lines) + "\n"
