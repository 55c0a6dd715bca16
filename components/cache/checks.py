"""Checks of the cache's config against the rest of the stack: watermarks in order, issuers'
paths inside the exports, the upstream credential complete, and the cache fitting its nodes."""

from __future__ import annotations

from ..config.errors import Problem, problem
from ..config.facility import FacilityConfig
from .config import BearerToken, under


def _upstream_problems(cfg: FacilityConfig) -> list[Problem]:
    upstream = cfg.cache.upstream
    if not isinstance(upstream, BearerToken):
        return []
    loc = ("cache", "upstream")
    found: list[Problem] = []
    if upstream.token_url is None and cfg.identity is None:
        found.append(problem((*loc, "tokenUrl"), None, "the IAM token endpoint, or af:identity"))
    if upstream.client_secret is None:
        how = "a Pulumi secret: pulumi config set --secret --path 'af:cache.upstream.clientSecret' …"
        found.append(problem((*loc, "clientSecret"), None, how))
    return found


def _node_problems(cfg: FacilityConfig) -> list[Problem]:
    """At most one server per cache node, and a disk no larger than the nodes' data volume."""
    cache = cfg.cache
    groups = {n: g for n, g in cfg.cluster.node_groups.items() if "cache" in g.roles}
    if not groups:
        return []
    found: list[Problem] = []
    nodes = sum(g.count for g in groups.values())
    if cache.servers > nodes:
        found.append(
            problem(("cache", "servers"), cache.servers, f"at most {nodes}, one per node of the cache node groups")
        )
    volumes = [g.volume_gib for g in groups.values() if g.volume_gib]
    if volumes and cache.disk_gib > min(volumes):
        found.append(
            problem(("cache", "diskGib"), cache.disk_gib, f"at most {min(volumes)}, the cache nodes' data volume")
        )
    return found


def problems(cfg: FacilityConfig) -> list[Problem]:
    cache = cfg.cache
    if not cache.enabled:
        return []
    found: list[Problem] = []
    if cache.high_watermark <= cache.low_watermark:
        found.append(
            problem(("cache", "highWatermark"), cache.high_watermark, f"above lowWatermark ({cache.low_watermark})")
        )
    exports = ", ".join(cache.exports)
    for index, issuer in enumerate(cache.issuers):
        if not any(under(issuer.base_path, export) for export in cache.exports):
            found.append(
                problem(("cache", "issuers", index, "basePath"), issuer.base_path, f"a path under an export: {exports}")
            )
    if cache.token_auth and not cache.issuers and cfg.identity is None:
        found.append(problem(("cache", "issuers"), [], "a token issuer, or af:identity, when tokenAuth is on"))
    return [*found, *_upstream_problems(cfg), *_node_problems(cfg)]
