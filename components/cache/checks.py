"""Checks of the cache's config against the rest of the stack: watermarks in order, issuers'
paths inside the exports, the upstream credential complete, the cache fitting its nodes, and
the node caches (`nodeLocal`) on known groups with a complete credential, beside the workers."""

from __future__ import annotations

from ..batch.config import worker_groups
from ..config.errors import Problem, problem
from ..config.facility import FacilityConfig
from .config import NODE_CACHE_ROLES, BearerToken, node_cache_groups, under
from .node import pod_requests


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


def _node_client_problems(cfg: FacilityConfig) -> list[Problem]:
    """The node caches' own credential: needed when the site cache admits only readers with a token."""
    loc = ("cache", "nodeLocal", "client")
    client = cfg.cache.node_local.client
    if client is None:
        if not cfg.cache.token_auth:
            return []
        return [
            problem(
                loc,
                None,
                "the node caches' IAM client (clientId, client-credentials grant): with tokenAuth the site cache "
                "reads only for a token, and a node cache cannot pass its users' tokens on",
            )
        ]
    found: list[Problem] = []
    if client.token_url is None and cfg.identity is None:
        found.append(problem((*loc, "tokenUrl"), None, "the IAM token endpoint, or af:identity"))
    if client.client_secret is None:
        how = "a Pulumi secret: pulumi config set --secret --path 'af:cache.nodeLocal.client.clientSecret' …"
        found.append(problem((*loc, "clientSecret"), None, how))
    return found


def _node_fit_problems(cfg: FacilityConfig) -> list[Problem]:
    """A node cache fits beside its node's batch worker, which is sized to the node less a reserve: otherwise one of
    them never starts. Other node agents share the same reserve; this is the node cache's own share."""
    if not cfg.condor.enabled:
        return []
    groups = set(node_cache_groups(cfg.cache, cfg.cluster))
    cpu, memory = pod_requests(cfg)
    found: list[Problem] = []
    for group in worker_groups(cfg.condor, cfg.cluster, cfg.site.flavors).values():
        flavor = cfg.site.flavors.get(group.node_group.flavor) if group.node_group else None
        if group.name not in groups or flavor is None or group.pod_cpus is None or group.pod_memory_mib is None:
            continue
        # The services of the group's other roles keep their room beside the worker too.
        keep_cores, keep_gib = group.reserve
        room_cpu = flavor.vcpus * 1000 - round((group.pod_cpus + keep_cores) * 1000)
        room_memory = flavor.ram_gib * 1024 - group.pod_memory_mib - round(keep_gib * 1024)
        if cpu > room_cpu or memory > room_memory:
            found.append(
                problem(
                    ("cache", "nodeLocal", "ram"),
                    cfg.cache.node_local.ram,
                    f"a node cache that fits beside the batch worker of {group.name}: the worker and the "
                    f"group's services leave {room_memory} MiB and {room_cpu}m CPU of each node, a node cache "
                    f"asks {memory} MiB and {cpu}m (or a smaller worker: af:condor.groups.{group.name})",
                )
            )
    return found


def _node_local_problems(cfg: FacilityConfig) -> list[Problem]:
    """Node caches need the site cache, known node groups (or some group where users' code runs) and a credential."""
    local = cfg.cache.node_local
    if not local.enabled:
        return []
    loc = ("cache", "nodeLocal")
    if not cfg.cache.enabled:
        return [
            problem((*loc, "enabled"), True, "false unless af:cache.enabled: node caches read through the site cache")
        ]
    found: list[Problem] = []
    known = sorted(cfg.cluster.node_groups)
    for index, group in enumerate(local.groups or []):
        if group not in cfg.cluster.node_groups:
            found.append(
                problem((*loc, "groups", index), group, f"one of the node groups: {', '.join(known) or 'none'}")
            )
    if local.groups is None and not node_cache_groups(cfg.cache, cfg.cluster):
        roles = " or ".join(NODE_CACHE_ROLES)
        found.append(problem((*loc, "groups"), None, f"node groups to run them on: no node group has role {roles}"))
    found += _node_client_problems(cfg)
    return found if found else _node_fit_problems(cfg)


def problems(cfg: FacilityConfig) -> list[Problem]:
    cache = cfg.cache
    if not cache.enabled:
        return _node_local_problems(cfg)
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
    if not cache.token_auth and cache.buffer_size() is not None:
        why = "2m without tokenAuth: XRootD 5.5 aborts serving a plain-root:// pgread of more than 2 MiB with more"
        found.append(problem(("cache", "maxBufferSize"), cache.max_buffer_size, why))
    if cache.token_auth and not cache.issuers and cfg.identity is None:
        found.append(problem(("cache", "issuers"), [], "a token issuer, or af:identity, when tokenAuth is on"))
    return [*found, *_upstream_problems(cfg), *_node_problems(cfg), *_node_local_problems(cfg)]
