"""The whole stack config and the checks that span sections."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field

from .base import StrictModel
from .batch import FIT_RULE, Autoscaler, Condor, WorkerGroup, WorkerGroupConfig, fits, worker_groups
from .cluster import GPU_TAINT_KEY, Cluster
from .data import Cache, under
from .errors import Problem, problem
from .gpu import Gpu, gpu_groups
from .identity import WLCG_GROUPS_CLAIM, Identity
from .interactive import CertManager, Cvmfs, Hub
from .monitoring import Monitoring
from .offload import Offload
from .policy import PolicySettings
from .site import Site

# Last: the Dask layer's models import the sections above.
from ..dask.config import Dask, dask_problems  # isort: skip


class FacilityConfig(StrictModel):
    """Everything a facility is: the `af:*` keys of a stack, after profiles are merged."""

    profiles: list[str] = Field(default_factory=list)
    """Profiles from `stacks/` merged in order below the stack's own values."""
    site: Site
    """The OpenStack site."""
    cluster: Cluster
    """The Kubernetes cluster."""
    gpu: Gpu = Field(default_factory=Gpu)
    """The NVIDIA device plugin for the node groups with GPUs."""
    identity: Identity | None = None
    """The OIDC provider; required by the hub, HTCondor user auth and cache token auth."""
    hub: Hub = Field(default_factory=Hub)
    """JupyterHub."""
    cert_manager: CertManager = Field(default_factory=CertManager)
    """cert-manager, for the hub's and in-cluster services' certificates."""
    cvmfs: Cvmfs = Field(default_factory=Cvmfs)
    """CVMFS."""
    cache: Cache = Field(default_factory=Cache)
    """XCache."""
    condor: Condor = Field(default_factory=Condor)
    """HTCondor pool."""
    autoscaler: Autoscaler = Field(default_factory=Autoscaler)
    """Worker autoscaler."""
    offload: Offload = Field(default_factory=Offload)
    """HPC offload gateways."""
    policy: PolicySettings = Field(default_factory=PolicySettings)
    """Inputs of the policy pack: production or not, enforcement levels, public ports."""
    monitoring: Monitoring = Field(default_factory=Monitoring)
    """Prometheus, Grafana and the facility's dashboards."""
    dask: Dask = Field(default_factory=Dask)
    """Dask Gateway: Dask clusters from the notebook, limited by IAM group."""


@dataclass(frozen=True)
class Usage:
    """What a plan takes from the site's quota."""

    vcpus: int = 0
    ram_gib: int = 0
    instances: int = 0
    volumes: int = 0
    volume_gib: int = 0
    floating_ips: int = 0
    gpus: int = 0


def usage(cfg: FacilityConfig) -> Usage:
    """Quota the stack's VMs and volumes use; nothing for clusters that already exist."""
    if cfg.cluster.mode == "existing":
        return Usage()
    flavors = cfg.site.flavors
    cp = cfg.cluster.control_plane
    groups = [(cp.flavor, cp.count, 0)] + [(g.flavor, g.count, g.volume_gib) for g in cfg.cluster.node_groups.values()]
    vcpus = ram = instances = volumes = volume_gib = gpus = 0
    for flavor_name, count, vol in groups:
        flavor = flavors[flavor_name]
        vcpus += flavor.vcpus * count
        ram += flavor.ram_gib * count
        gpus += flavor.gpus * count
        instances += count
        if vol:
            volumes += count
            volume_gib += vol * count
    return Usage(vcpus, ram, instances, volumes, volume_gib, floating_ips=1, gpus=gpus)


def _flavor_problems(cfg: FacilityConfig) -> list[Problem]:
    known = sorted(cfg.site.flavors)
    allowed = f"a flavor of af:site.flavors ({', '.join(known)})"
    found: list[Problem] = []
    if cfg.cluster.mode != "existing" and cfg.cluster.control_plane.flavor not in cfg.site.flavors:
        found.append(problem(("cluster", "controlPlane", "flavor"), cfg.cluster.control_plane.flavor, allowed))
    for name, group in cfg.cluster.node_groups.items():
        if cfg.cluster.mode != "existing" and group.flavor not in cfg.site.flavors:
            found.append(problem(("cluster", "nodeGroups", name, "flavor"), group.flavor, allowed))
    for name, flavor in cfg.site.flavors.items():
        if flavor.gpus and not flavor.gpu_model:
            found.append(problem(("site", "flavors", name, "gpuModel"), None, "the GPU model when gpus > 0"))
    return found


def _gpu_problems(cfg: FacilityConfig) -> list[Problem]:
    found: list[Problem] = []
    for name, group in cfg.cluster.node_groups.items():
        loc = ("cluster", "nodeGroups", name)
        flavor = cfg.site.flavors.get(group.flavor)
        flavor_gpus = flavor.gpus if flavor else 0
        if group.gpu is None and flavor_gpus and cfg.cluster.mode != "existing":
            found.append(problem((*loc, "gpu"), None, f"a gpu spec: flavor {group.flavor} has {flavor_gpus} GPUs"))
        if group.gpu is None:
            continue
        if cfg.cluster.mode != "existing" and flavor is not None and flavor.gpus != group.gpu.count:
            found.append(
                problem((*loc, "gpu", "count"), group.gpu.count, f"{flavor.gpus}, the GPUs of flavor {group.flavor}")
            )
        if not any(t.key == GPU_TAINT_KEY and t.effect == "NoSchedule" for t in group.taints):
            found.append(
                problem(
                    (*loc, "taints"),
                    [t.render() for t in group.taints],
                    f"GPU groups tainted {GPU_TAINT_KEY}=present:NoSchedule, so CPU-only pods stay off",
                )
            )
        if cfg.cluster.mode == "magnum" and group.gpu.driver == "install":
            found.append(
                problem(
                    (*loc, "gpu", "driver"),
                    group.gpu.driver,
                    "preinstalled in cluster mode magnum: its nodes boot the template's image without the "
                    "facility's cloud-init, so the image must have the driver and container toolkit",
                )
            )
    # Per-group images exist for GPU-ready images; Magnum has one image for the whole cluster.
    for name, group in cfg.cluster.node_groups.items():
        if cfg.cluster.mode == "magnum" and group.image is not None:
            found.append(
                problem(
                    ("cluster", "nodeGroups", name, "image"),
                    group.image,
                    "no per-group image in cluster mode magnum: nodes boot af:cluster.magnum.image",
                )
            )
    if cfg.gpu.device_plugin and not gpu_groups(cfg.cluster):
        found.append(problem(("gpu", "devicePlugin"), True, "true only when a node group has a gpu spec"))
    return found + _hub_gpu_problems(cfg)


def _hub_gpu_problems(cfg: FacilityConfig) -> list[Problem]:
    """GPU profiles are generated per GPU group with role interactive: a declared shape needs
    such a group, and must fit each one's schedulable GPUs (time-slicing and MIG multiply them)
    and, where flavors are known, its nodes."""
    hub = cfg.hub
    if not hub.enabled:
        return []
    shape = hub.gpu_profile
    groups = {
        name: group
        for name, group in sorted(cfg.cluster.node_groups.items())
        if group.gpu is not None and "interactive" in group.roles
    }
    loc = ("hub", "gpuProfile")
    shown = f"{shape.gpus} GPUs, {shape.cpu:g} cores, {shape.memory_gib:g} GiB"
    if not groups:
        if "gpu_profile" in hub.model_fields_set:
            return [problem(loc, shown, "no GPU profile: no node group has a gpu spec and role interactive")]
        return []
    found: list[Problem] = []
    for name, group in groups.items():
        assert group.gpu is not None
        flavor = cfg.site.flavors.get(group.flavor) if cfg.cluster.mode != "existing" else None
        too_many = shape.gpus > group.gpu.schedulable
        if too_many or (flavor is not None and not fits(shape.cpu, shape.memory_gib, flavor)):
            found.append(
                problem(
                    loc,
                    shown,
                    f"a size that fits a node of GPU group {name} "
                    f"({group.gpu.schedulable} schedulable GPUs; {FIT_RULE})",
                )
            )
    return found


def _quota_problems(cfg: FacilityConfig) -> list[Problem]:
    used = usage(cfg)
    found: list[Problem] = []
    for field, key, label in (
        ("vcpus", "vcpus", "vCPUs"),
        ("ram_gib", "ramGib", "GiB of RAM"),
        ("instances", "instances", "instances"),
        ("volumes", "volumes", "volumes"),
        ("volume_gib", "volumeGib", "GiB of volumes"),
        ("floating_ips", "floatingIps", "floating IPs"),
        ("gpus", "gpus", "GPUs"),
    ):
        need, limit = getattr(used, field), getattr(cfg.site.quotas, field)
        if need > limit:
            found.append(
                problem(
                    ("cluster", "nodeGroups"),
                    f"{need} {label} in total",
                    f"at most {limit} {label} (af:site.quotas.{key})",
                )
            )
    return found


def _mode_problems(cfg: FacilityConfig) -> list[Problem]:
    if cfg.cluster.mode == "existing" and cfg.cluster.existing is None:
        return [problem(("cluster", "existing"), None, "a kubeconfig secret when mode is existing")]
    return []


def _identity_problems(cfg: FacilityConfig) -> list[Problem]:
    needs = [name for name, on in (("hub", cfg.hub.enabled), ("condor", cfg.condor.enabled)) if on]
    identity = cfg.identity
    if identity is None:
        if needs:
            return [problem(("identity",), None, f"an identity provider: {', '.join(needs)} needs OIDC login")]
        return []
    found: list[Problem] = []
    loc = ("identity",)
    if "openid" not in identity.scopes:
        found.append(problem((*loc, "scopes"), identity.scopes, "scopes that include openid (the login is OIDC)"))
    if identity.groups_claim == WLCG_GROUPS_CLAIM:
        if WLCG_GROUPS_CLAIM not in identity.scopes:
            found.append(
                problem((*loc, "scopes"), identity.scopes, "scopes that include wlcg.groups, the groups claim")
            )
        for role, groups in identity.roles:
            for index, group in enumerate(groups):
                if not group.startswith("/"):
                    found.append(
                        problem(
                            (*loc, "roles", role, index),
                            group,
                            f"a WLCG group path such as /{group} (the wlcg.groups claim starts each with /)",
                        )
                    )
    if cfg.hub.enabled:
        if identity.client_secret is None:
            found.append(
                problem(
                    (*loc, "clientSecret"),
                    None,
                    "the IAM client secret: pulumi config set --secret --path 'af:identity.clientSecret' …",
                )
            )
        if not identity.roles.login:
            found.append(
                problem((*loc, "roles", "login"), [], "at least one group: the hub admits members of these only")
            )
    if cfg.condor.enabled and not identity.roles.batch:
        found.append(
            problem((*loc, "roles", "batch"), [], "at least one group: only its members may submit to HTCondor")
        )
    return found


def _hub_problems(cfg: FacilityConfig) -> list[Problem]:
    """The certificate source is complete, and every CPU profile fits an interactive CPU node
    (GPU profiles: `_hub_gpu_problems`)."""
    hub = cfg.hub
    if not hub.enabled:
        return []
    found: list[Problem] = []
    tls = hub.tls
    if tls.mode == "cert-manager" and tls.acme_email is None:
        found.append(problem(("hub", "tls", "acmeEmail"), None, "a contact address for the ACME account"))
    if tls.mode == "provided":
        for key, value in (("certificate", tls.certificate), ("privateKey", tls.private_key)):
            if value is None:
                found.append(problem(("hub", "tls", key), None, "the PEM certificate and key when mode is provided"))
    if cfg.cluster.mode == "existing":
        return found  # node sizes are unknown
    interactive = {
        name: (group, cfg.site.flavors.get(group.flavor))
        for name, group in cfg.cluster.node_groups.items()
        if "interactive" in group.roles
    }
    cpu_flavors = [f for g, f in interactive.values() if g.gpu is None and f is not None]
    if not cpu_flavors:
        found.append(
            problem(("cluster", "nodeGroups"), sorted(cfg.cluster.node_groups), "a CPU node group for notebooks")
        )
    for index, profile in enumerate(hub.profiles):
        if cpu_flavors and not any(fits(profile.cpu, profile.memory_gib, f) for f in cpu_flavors):
            found.append(
                problem(
                    ("hub", "profiles", index),
                    f"{profile.name}: {profile.cpu} cores, {profile.memory_gib} GiB",
                    f"a size that fits an interactive CPU node with room for system pods ({FIT_RULE})",
                )
            )
    return found


def _cache_problems(cfg: FacilityConfig) -> list[Problem]:
    """Watermarks in order, issuers' paths inside the exports, and the cache fitting its nodes."""
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
    upstream = cache.upstream
    if upstream is not None and upstream.kind == "bearer-token" and upstream.token_url is None and cfg.identity is None:
        found.append(problem(("cache", "upstream", "tokenUrl"), None, "the IAM token endpoint, or af:identity"))
    groups = {n: g for n, g in cfg.cluster.node_groups.items() if "cache" in g.roles}
    if groups:
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


def _condor_problems(cfg: FacilityConfig) -> list[Problem]:
    """Worker groups are node groups with role batch, their bounds are in order and within the
    group's nodes, and each worker fits a node (or, in mode existing, has a declared size)."""
    condor = cfg.condor
    if not condor.enabled:
        return []
    groups = worker_groups(condor, cfg.cluster, cfg.site.flavors, cfg.offload)
    if not any(g.local for g in groups.values()):
        return [
            problem(
                ("cluster", "nodeGroups"),
                sorted(cfg.cluster.node_groups),
                "at least one node group with role batch: HTCondor's workers run there",
            )
        ]
    found: list[Problem] = []
    batch = ", ".join(groups)
    for name in sorted(set(condor.groups) - set(groups)):
        found.append(
            problem(("condor", "groups", name), name, f"the name of a batch node group or offload gateway ({batch})")
        )
    existing = cfg.cluster.mode == "existing"
    for name, group in groups.items():
        loc = ("condor", "groups", name)
        settings = condor.groups.get(name)
        if group.min_workers > group.max_workers:
            found.append(problem((*loc, "minWorkers"), group.min_workers, f"at most maxWorkers ({group.max_workers})"))
        if group.gateway is not None:
            found += _offload_group_problems(name, group, settings)
            continue
        assert group.node_group is not None
        if group.max_workers > group.node_group.count:
            found.append(
                problem(
                    (*loc, "maxWorkers"),
                    group.max_workers,
                    f"at most {group.node_group.count}, one worker per node of node group {name}",
                )
            )
        if existing:
            for key, value in (("cpus", group.pod_cpus), ("memoryGib", group.pod_memory_mib)):
                if value is None:
                    found.append(
                        problem((*loc, key), None, "the worker's size: node sizes are unknown in cluster mode existing")
                    )
            continue
        flavor = cfg.site.flavors.get(group.node_group.flavor)
        if flavor is None:
            continue  # reported by _flavor_problems
        assert group.pod_cpus is not None and group.pod_memory_mib is not None
        if group.pod_cpus < 1 or group.pod_memory_mib < 2048:
            found.append(
                problem(
                    ("cluster", "nodeGroups", name, "flavor"),
                    group.node_group.flavor,
                    "a flavor with room for a worker of at least 1 core and 2 GiB next to the system pods",
                )
            )
        if settings is None or (settings.cpus is None and settings.memory_gib is None):
            continue  # default sizes fit by construction
        if not fits(group.pod_cpus, group.pod_memory_mib / 1024, flavor):
            found.append(
                problem(
                    loc,
                    f"{group.pod_cpus:g} cores, {group.pod_memory_mib / 1024:g} GiB",
                    f"a worker that fits a node of flavor {flavor.vcpus} vCPUs, {flavor.ram_gib} GiB ({FIT_RULE})",
                )
            )
    return found


def _offload_group_problems(name: str, group: WorkerGroup, settings: WorkerGroupConfig | None) -> list[Problem]:
    """An offload group's workers are sized by its gateway, and bounded by what it allows."""
    assert group.gateway is not None
    loc = ("condor", "groups", name)
    found = [
        problem((*loc, key), value, f"unset: offloaded workers take af:offload.gateways.{name}.worker")
        for key, value in (("cpus", settings and settings.cpus), ("memoryGib", settings and settings.memory_gib))
        if value is not None
    ]
    if settings is not None and settings.max_workers is not None and settings.max_workers > group.gateway.max_workers:
        found.append(
            problem(
                (*loc, "maxWorkers"),
                settings.max_workers,
                f"at most {group.gateway.max_workers}, what gateway {name}'s limits and resources allow",
            )
        )
    return found


def _offload_problems(cfg: FacilityConfig) -> list[Problem]:
    """Gateways feed the pool, admit groups the identity declares, and have room for a worker."""
    gateways = cfg.offload.gateways
    if not gateways:
        return []
    found: list[Problem] = []
    loc = ("offload", "gateways")
    if not cfg.condor.enabled:
        found.append(problem(loc, sorted(gateways), "no gateways without af:condor.enabled (they run its workers)"))
    declared = set(cfg.identity.roles.all_groups()) if cfg.identity else set()
    for name, gateway in sorted(gateways.items()):
        if name in cfg.cluster.node_groups:
            found.append(problem((*loc, name), name, "a name no node group has (it names a worker group too)"))
        for index, group in enumerate(gateway.groups):
            if group not in declared:
                found.append(
                    problem(
                        (*loc, name, "groups", index),
                        group,
                        "a group declared in af:identity.roles: "
                        + (", ".join(sorted(declared)) or "none declared (set af:identity)"),
                    )
                )
        r, w = gateway.resources, gateway.worker
        if r.gpus and r.gpu_model is None:
            found.append(problem((*loc, name, "resources", "gpuModel"), None, "the GPU model when gpus > 0"))
        if w.cpus > r.cpus or w.memory_gib > r.memory_gib or w.gpus > r.gpus:
            found.append(
                problem(
                    (*loc, name, "worker"),
                    f"{w.cpus} cores, {w.memory_gib} GiB, {w.gpus} GPUs",
                    f"a worker within the virtual node's resources ({r.cpus} cores, {r.memory_gib} GiB, {r.gpus} GPUs)",
                )
            )
        auth = gateway.auth
        if auth.kind == "iam-client" and auth.token_url is None and cfg.identity is None:
            found.append(problem((*loc, name, "auth", "tokenUrl"), None, "the IAM token endpoint, or af:identity"))
        key, secret = ("clientSecret", auth.client_secret) if auth.kind == "iam-client" else ("token", auth.token)
        if secret is None:
            how = f"a Pulumi secret: pulumi config set --secret --path 'af:offload.gateways.{name}.auth.{key}' …"
            found.append(problem((*loc, name, "auth", key), None, how))
    return found


def _autoscaler_problems(cfg: FacilityConfig) -> list[Problem]:
    """The autoscaler scales the pool's worker groups: it needs the pool, its image, and
    triggers naming those groups."""
    autoscaler = cfg.autoscaler
    if not autoscaler.enabled:
        return []
    found: list[Problem] = []
    if not cfg.condor.enabled:
        found.append(problem(("autoscaler", "enabled"), True, "true only with af:condor.enabled (it scales the pool)"))
    if autoscaler.image is None:
        found.append(
            problem(("autoscaler", "image"), None, "the controller's image: make autoscaler-image IMAGE=<registry>/…")
        )
    groups = sorted(worker_groups(cfg.condor, cfg.cluster, cfg.site.flavors, cfg.offload))
    for index, trigger in enumerate(autoscaler.triggers):
        if trigger.group not in groups:
            found.append(
                problem(
                    ("autoscaler", "triggers", index, "group"),
                    trigger.group,
                    f"a worker group: {', '.join(groups) or 'none (no node group has role batch)'}",
                )
            )
    return found


def cross_checks(cfg: FacilityConfig) -> list[Problem]:
    """Checks between sections that single-field validation cannot see."""
    flavors = _flavor_problems(cfg)
    # Quota arithmetic needs every flavor to be known.
    quota = [] if flavors else _quota_problems(cfg)
    return [
        *_mode_problems(cfg),
        *flavors,
        *_gpu_problems(cfg),
        *quota,
        *_identity_problems(cfg),
        *_hub_problems(cfg),
        *_cache_problems(cfg),
        *_condor_problems(cfg),
        *_autoscaler_problems(cfg),
        *_offload_problems(cfg),
        *dask_problems(cfg),
    ]
