"""XCache configuration files, rendered from the config: pure functions.

`xrootd.cfg` uses only directives XRootD 5.5 knows (DESIGN.md): a proxy (`libXrdPss`) with the
file cache (`libXrdPfc`) in front of the origin, and SciTokens authorization for clients. What
differs between a pod and a test is only in `CacheRuntime`: ports and local paths."""

from __future__ import annotations

from dataclasses import dataclass

from .config import FacilityConfig
from .config.data import CacheIssuer


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
    """PEM certificate of the HTTPS listener."""
    tls_key: str | None = None
    """PEM key of the HTTPS listener."""


def issuers(cfg: FacilityConfig) -> list[CacheIssuer]:
    """Issuers accepted from clients: the declared ones, or the facility's IAM for each export."""
    if cfg.cache.issuers:
        return list(cfg.cache.issuers)
    if cfg.identity is None:
        return []
    return [CacheIssuer.model_validate({"issuer": str(cfg.identity.issuer), "basePath": e}) for e in cfg.cache.exports]


def permitted_hosts(cfg: FacilityConfig) -> list[str]:
    """Hosts the cache forwards to: the origin's, then the declared ones."""
    origin = cfg.cache.origin.split(":")[0]
    return [origin, *(h for h in cfg.cache.forward_hosts if h != origin)]


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
        if not (runtime.tls_cert and runtime.tls_key):
            raise ValueError("an HTTPS listener needs tls_cert and tls_key")
        lines += [
            "",
            "# HTTPS (davs://) for clients that do not speak root://.",
            f"xrd.tls {runtime.tls_cert} {runtime.tls_key}",
            f"xrd.protocol XrdHttp:{runtime.https_port} libXrdHttp.so",
        ]
    return "\n".join(lines) + "\n"


def render_scitokens_cfg(cfg: FacilityConfig) -> str:
    """The SciTokens plugin's config: accepted audiences, and per issuer its base path."""
    lines = ["[Global]", f"audience = {', '.join(cfg.cache.audiences)}"]
    for index, issuer in enumerate(issuers(cfg)):
        lines += ["", f"[Issuer af-{index}]", f"issuer = {issuer.issuer}"]
        lines.append(f"base_path = {issuer.base_path}")
        if issuer.restricted_paths:
            lines.append(f"restricted_path = {', '.join(issuer.restricted_paths)}")
    return "\n".join(lines) + "\n"
