"""HTCondor configuration of the pool, rendered from the config: pure functions.

Each daemon reads the pool fragment (`render_pool`) and its role's (`render_central_manager`,
`render_submit`, `render_execute`), placed after the image's own `config.d` files so that every
security knob here wins over the image's defaults. Notebooks read `render_client`.

Who is who:
- daemons authenticate with IDTOKENS as `condor@<pool domain>`, minted at pod start from the
  pool signing key (a Kubernetes Secret; never in these files);
- users authenticate with SCITOKENS: their IAM token is verified against the issuer's keys
  and audience, mapped by `render_mapfile` to the group plugin (`files/af_batch_users.py`),
  which admits only members of `af:identity.roles.batch` as `<sub>@users.<pool domain>`;
  anyone else stays unmapped and is denied;
- local admin tools in a pod (preStop's `condor_off`) authenticate with FS as root.
There is no CLAIMTOBE and no anonymous access: authentication is required at every level."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..config.facility import FacilityConfig
from ..names import (
    BEARER_TOKEN_FILE,
    CA_CERT_DIR,
    COLLECTOR_PORT,
    GATEWAY_ATTRIBUTE,
    PREFERENCE_ATTRIBUTE,
    SCHEDD_PORT,
    WORKER_GROUP_ATTRIBUTE,
    WORKER_IN_CLUSTER_ATTRIBUTE,
    WORKER_POD_ATTRIBUTE,
)
from .config import WorkerGroup

PLUGIN = "AFBATCH"
"""Name of the SciTokens mapping plugin that checks batch-role membership."""
PLUGIN_SCRIPT = "af_batch_users.py"
PLUGIN_CONFIG = "batch-users.json"
MAPFILE = "mapfile"


@dataclass(frozen=True)
class PoolRuntime:
    """In-cluster names and local paths the fragments refer to (a pod's, or a test's)."""

    central_manager: str
    """DNS name of the central manager's Service (also the name in its certificate)."""
    schedd: str
    """DNS name of the schedd's Service (also the name in its certificate)."""
    key_dir: str
    """`SEC_PASSWORD_DIRECTORY`: holds the pool signing key `POOL`."""
    token_dir: str
    """`SEC_TOKEN_SYSTEM_DIRECTORY`: the daemon's token, minted at pod start."""
    files_dir: str
    """The map file, the group plugin and its config."""
    tls_dir: str
    """`tls.crt` and `tls.key` of the central manager's or the schedd's certificate."""
    spool_dir: str
    """The schedd's spool (its persistent volume)."""
    port: int = COLLECTOR_PORT
    """The shared port the central manager (and every worker) listens on."""
    schedd_port: int = SCHEDD_PORT
    """The schedd's shared port: its own, so both can be published on the facility's address."""
    python: str = "/usr/bin/python3"
    """Interpreter of the group plugin in the official images."""
    ca_dir: str = CA_CERT_DIR
    """Where notebooks find the internal CA that signed the daemons' certificates."""


def pool_domain(cfg: FacilityConfig) -> str:
    """`UID_DOMAIN` and `TRUST_DOMAIN`: the facility's DNS name."""
    return cfg.site.dns_name


def daemon_identity(cfg: FacilityConfig) -> str:
    return f"condor@{pool_domain(cfg)}"


def users_domain(cfg: FacilityConfig) -> str:
    """Domain of users mapped from IAM tokens: apart from the daemons', so no token subject
    can ever be mistaken for a daemon."""
    return f"users.{pool_domain(cfg)}"


def autoscaler_identity(cfg: FacilityConfig) -> str:
    """IDTOKENS identity the autoscaler uses: reads the queue and the pool, drains workers."""
    return f"autoscaler@{pool_domain(cfg)}"


def _issuer(cfg: FacilityConfig) -> str:
    assert cfg.identity is not None, "cross checks require an identity when condor is enabled"
    return str(cfg.identity.issuer)


def _header(what: str) -> list[str]:
    return [f"# {what}, rendered by the analysis-facility program.", ""]


def render_pool(cfg: FacilityConfig, runtime: PoolRuntime) -> str:
    """What every daemon of the pool shares: where the collector is, how daemons prove who they
    are, and who may do what."""
    domain = pool_domain(cfg)
    lines = [
        *_header("HTCondor pool config for every daemon"),
        f"CONDOR_HOST = {runtime.central_manager}",
        f"COLLECTOR_HOST = $(CONDOR_HOST):{runtime.port}",
        f"UID_DOMAIN = {domain}",
        f"TRUST_DOMAIN = {domain}",
        "USE_SHARED_PORT = True",
        "ENABLE_KERNEL_TUNING = False",
        *private_network(cfg),
        "",
        "# Authentication is required for every command: IDTOKENS between daemons, SCITOKENS for",
        "# users (central manager and schedd only), FS for admin tools run inside a pod.",
        "SEC_DEFAULT_AUTHENTICATION = REQUIRED",
        "SEC_READ_AUTHENTICATION = REQUIRED",
        "SEC_CLIENT_AUTHENTICATION = REQUIRED",
        "SEC_DEFAULT_AUTHENTICATION_METHODS = FS, IDTOKENS, SCITOKENS",
        "SEC_CLIENT_AUTHENTICATION_METHODS = FS, IDTOKENS",
        "SEC_DEFAULT_ENCRYPTION = REQUIRED",
        "SEC_DEFAULT_INTEGRITY = REQUIRED",
        "",
        "# The pool signing key comes from a Kubernetes Secret; each daemon's token is minted from",
        "# it when the pod starts. Nobody may ask a daemon for a token.",
        f"SEC_PASSWORD_DIRECTORY = {runtime.key_dir}",
        "SEC_TOKEN_POOL_SIGNING_KEY_FILE = $(SEC_PASSWORD_DIRECTORY)/POOL",
        f"SEC_TOKEN_SYSTEM_DIRECTORY = {runtime.token_dir}",
        "SEC_ENABLE_TOKEN_REQUEST = False",
        "SEC_ENABLE_TOKEN_FETCH = False",
        "SEC_SCITOKENS_ALLOW_FOREIGN_TOKEN_TYPES = False",
        "",
        "# Authorization: daemons, local root (FS), the autoscaler; users are added by role.",
        f"AF_DAEMONS = {daemon_identity(cfg)}",
        f"AF_ADMINS = root@{domain}",
        f"AF_AUTOSCALER = {autoscaler_identity(cfg)}",
        f"AF_USERS = *@{users_domain(cfg)}",
        "ALLOW_READ = $(AF_DAEMONS) $(AF_ADMINS) $(AF_AUTOSCALER)",
        "ALLOW_WRITE = $(AF_DAEMONS) $(AF_ADMINS)",
        "ALLOW_DAEMON = $(AF_DAEMONS)",
        "ALLOW_NEGOTIATOR = $(AF_DAEMONS)",
        "ALLOW_ADVERTISE_MASTER = $(AF_DAEMONS)",
        "ALLOW_ADVERTISE_STARTD = $(AF_DAEMONS)",
        "ALLOW_ADVERTISE_SCHEDD = $(AF_DAEMONS)",
        "ALLOW_ADMINISTRATOR = $(AF_DAEMONS) $(AF_ADMINS)",
        "ALLOW_OWNER = $(ALLOW_ADMINISTRATOR)",
        "ALLOW_CONFIG = $(AF_ADMINS)",
        "DENY_READ = *@unmapped",
        "DENY_WRITE = *@unmapped",
    ]
    return "\n".join(lines) + "\n"


def offloading(cfg: FacilityConfig) -> bool:
    """Workers at HPC centres join the pool: its central manager and schedd are published."""
    return bool(cfg.offload.gateways)


def private_network(cfg: FacilityConfig) -> list[str]:
    """In-cluster daemons and clients share a private network name, so they reach each other by
    their in-cluster addresses; offloaded workers use the published ones."""
    if not offloading(cfg):
        return []
    return [f"PRIVATE_NETWORK_NAME = {pool_domain(cfg)}"]


def _user_auth(cfg: FacilityConfig, runtime: PoolRuntime, host: str) -> list[str]:
    """Users' SciTokens: verified with the daemon's certificate (the TLS side of SCITOKENS),
    mapped through the map file to the group plugin."""
    files = runtime.files_dir
    return [
        "",
        "# Users present their IAM token (SCITOKENS, over TLS with this certificate). The map file",
        "# sends tokens of the facility's issuer to the plugin, which admits batch-role members only.",
        f"NETWORK_HOSTNAME = {host}",
        f"TCP_FORWARDING_HOST = {host}",
        f"AUTH_SSL_SERVER_CERTFILE = {runtime.tls_dir}/tls.crt",
        f"AUTH_SSL_SERVER_KEYFILE = {runtime.tls_dir}/tls.key",
        f"SCITOKENS_SERVER_AUDIENCE = {', '.join(cfg.condor.audiences)}",
        f"CERTIFICATE_MAPFILE = {files}/{MAPFILE}",
        f"SEC_SCITOKENS_PLUGIN_{PLUGIN}_COMMAND = {runtime.python} {files}/{PLUGIN_SCRIPT} {files}/{PLUGIN_CONFIG}",
    ]


def render_central_manager(cfg: FacilityConfig, runtime: PoolRuntime) -> str:
    """Collector and negotiator. Users may read the pool (condor_status, locating the schedd)."""
    lines = [
        *_header("HTCondor central manager (collector, negotiator)"),
        "use ROLE : CentralManager",
        *_user_auth(cfg, runtime, runtime.central_manager),
        "ALLOW_READ = $(ALLOW_READ) $(AF_USERS)",
        "",
        "# Matchmaking: a short cycle.",
        f"NEGOTIATOR_INTERVAL = {cfg.condor.negotiator_interval_seconds}",
        *negotiator_packing(),
    ]
    return "\n".join(lines) + "\n"


PACKING_RANK = (
    f"-1000000000000 * ({PREFERENCE_ATTRIBUTE} ?: 0) + 100000000 * (NumDynamicSlots ?: 0) - (DaemonStartTime ?: 0)"
)
"""`NEGOTIATOR_PRE_JOB_RANK` (MY: a slot, TARGET: the job): the group with the lowest preference
first (one step outweighs the rest), then the partitionable slot running the most jobs (its
dynamic slots: it stays busy longest anyway), then the oldest worker (a fixed order, so the
newest workers, added for a peak, are the ones left to drain). HTCondor's own default, best
fit on free cores and memory, puts each job in whichever worker has the smallest hole, so new
jobs keep landing on every worker and few drain: in the simulator it idles more cores."""


def negotiator_packing() -> list[str]:
    """How the negotiator places jobs on the workers' partitionable slots: the central manager's
    matchmaking policy, which the autoscaler's simulator reads back and follows
    (`benchmarks/sim_autoscaler.py`). HTCondor manual, negotiator configuration options:
    `NEGOTIATOR_PRE_JOB_RANK` sorts the slots a request matches before the job's own Rank;
    `NEGOTIATOR_DEPTH_FIRST` (default false) packs as many jobs as possible on each machine
    before moving on to the next, with the schedd's `CLAIM_PARTITIONABLE_LEFTOVERS` (default
    true) starting them in the slot's leftovers."""
    return [
        "# Packing: among the slots a job matches, the group with the lowest preference first (CPU",
        "# jobs go to CPU groups before GPU groups), then the worker running the most jobs, then the",
        "# oldest, filled depth first: busy workers fill up and the others drain, so the autoscaler",
        "# can remove them.",
        f"NEGOTIATOR_PRE_JOB_RANK = {PACKING_RANK}",
        "NEGOTIATOR_DEPTH_FIRST = True",
    ]


def render_submit(cfg: FacilityConfig, runtime: PoolRuntime) -> str:
    """The schedd: batch-role users may read and write the queue; the spool is persistent."""
    lines = [
        *_header("HTCondor access point (schedd)"),
        "use ROLE : Submit",
        f"SPOOL = {runtime.spool_dir}",
        f"SHARED_PORT_PORT = {runtime.schedd_port}",
        *_user_auth(cfg, runtime, runtime.schedd),
        "ALLOW_READ = $(ALLOW_READ) $(AF_USERS)",
        "ALLOW_WRITE = $(ALLOW_WRITE) $(AF_USERS)",
    ]
    if offloading(cfg):
        lines += [
            "",
            "# Offloaded workers reach the schedd (shadows, through CCB) at the facility's address.",
            f"TCP_FORWARDING_HOST = {cfg.site.dns_name}",
        ]
    return "\n".join(lines) + "\n"


def render_offload(cfg: FacilityConfig, runtime: PoolRuntime) -> str:
    """What an offloaded worker adds to its group's: the pool at the facility's published
    address, CCB through the collector (nothing connects into an HPC compute node), and its
    token from a Secret (no signing key leaves the cluster)."""
    lines = [
        *_header("HTCondor worker at an HPC centre (startd behind the centre's NAT)"),
        f"COLLECTOR_HOST = {cfg.site.dns_name}:{runtime.port}",
        "CCB_ADDRESS = $(COLLECTOR_HOST)",
        "PRIVATE_NETWORK_NAME =",
    ]
    return "\n".join(lines) + "\n"


def _job_environment(env: Mapping[str, str]) -> str:
    """`STARTER_JOB_ENVIRONMENT` in the new (quoted) syntax."""
    for name, value in env.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or re.search(r"[\s\"']", value):
            raise ValueError(f"job environment {name}={value!r} needs quoting this renderer does not do")
    return '"' + " ".join(f"{name}={value}" for name, value in sorted(env.items())) + '"'


def render_execute(
    cfg: FacilityConfig, runtime: PoolRuntime, group: WorkerGroup, job_env: Mapping[str, str] | None = None
) -> str:
    """A worker of `group`: one partitionable slot sized to the pod, GPUs on GPU groups, the
    group's START, and the attributes that name the group. Idle workers exit; a worker being
    removed lets its jobs retire."""
    assert group.slot_cpus is not None and group.slot_memory_mib is not None, "sizes are checked by cross_checks"
    condor = cfg.condor
    lines = [
        *_header(f"HTCondor worker of group {group.name} (startd)"),
        "use ROLE : Execute",
        "use FEATURE : PartitionableSlot(1, 100%)",
        f"NUM_CPUS = {group.slot_cpus}",
        f"MEMORY = {group.slot_memory_mib}",
    ]
    if group.gpus:
        lines += ["use FEATURE : GPUs"]
        gpu = group.node_group.gpu if group.node_group else None
        sharing = gpu.time_slicing if gpu else None
        if sharing is not None:
            # The pod sees each time-sliced GPU once; advertise it as the replicas the device
            # plugin counts, each with its share of the memory.
            lines += [f"GPU_DISCOVERY_EXTRA = $(GPU_DISCOVERY_EXTRA) -divide {sharing.replicas}"]
    lines += [
        "",
        f'{WORKER_GROUP_ATTRIBUTE} = "{group.name}"',
        f"{PREFERENCE_ATTRIBUTE} = {group.preference}",
        f'{WORKER_POD_ATTRIBUTE} = "$ENV(POD_NAME)"',
        f"{WORKER_IN_CLUSTER_ATTRIBUTE} = {group.local}",
        *([f'{GATEWAY_ATTRIBUTE} = "{group.name}"'] if group.gateway else []),
        "STARTD_ATTRS = $(STARTD_ATTRS) "
        + " ".join(
            [WORKER_GROUP_ATTRIBUTE, PREFERENCE_ATTRIBUTE, WORKER_POD_ATTRIBUTE, WORKER_IN_CLUSTER_ATTRIBUTE]
            + ([GATEWAY_ATTRIBUTE] if group.gateway else [])
        ),
        f"START = {group.start}",
        "STARTER_ALLOW_RUNAS_OWNER = False",
        "",
        "# An unclaimed worker's startd exits after a while, and its master with it; a worker",
        "# being removed (preStop: condor_off -graceful) lets running jobs retire first.",
        f"STARTD_NOCLAIM_SHUTDOWN = {condor.idle_shutdown_minutes * 60}",
        "MASTER.DAEMON_SHUTDOWN = STARTD_StartTime =?= 0",
        f"MAXJOBRETIREMENTTIME = {condor.retire_grace_minutes * 60}",
        "",
        "# The autoscaler may drain this worker.",
        "ALLOW_ADMINISTRATOR = $(ALLOW_ADMINISTRATOR) $(AF_AUTOSCALER)",
    ]
    if job_env and group.local:  # the cache's address means nothing at an HPC centre
        env = _job_environment(job_env)
        lines += ["", "# What jobs find in their environment (the data cache).", f"STARTER_JOB_ENVIRONMENT = {env}"]
    return "\n".join(lines) + "\n"


def regex_literal(text: str) -> str:
    """`text` as a literal inside a map file's `/…/` regular expression (PCRE)."""
    return re.sub(r"([\\^$.|?*+()\[\]{}/])", r"\\\1", text)


def render_mapfile(cfg: FacilityConfig) -> str:
    """`CERTIFICATE_MAPFILE`: local FS users as themselves; tokens of the facility's issuer (the
    SciTokens name is `<iss>,<sub>`) to the group plugin. Tokens of other issuers map to nothing
    and fail authentication."""
    return "\n".join(
        [
            "FS (.*) \\1",
            f"SCITOKENS /^{regex_literal(_issuer(cfg))},/ PLUGIN:{PLUGIN}",
            "",
        ]
    )


def render_plugin_config(cfg: FacilityConfig) -> str:
    """What the group plugin checks: the issuer, the groups claim, the batch-role groups."""
    assert cfg.identity is not None
    config = {
        "issuer": _issuer(cfg),
        "groupsClaim": cfg.identity.groups_claim,
        "groups": sorted(cfg.identity.roles.batch),
        "domain": users_domain(cfg),
    }
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def render_client(cfg: FacilityConfig, runtime: PoolRuntime) -> str:
    """The notebooks' client config: the pool's services, and the user's IAM token (the file
    the hub keeps fresh) as the only credential, over TLS checked against the internal CA."""
    lines = [
        *_header("HTCondor client config of the notebooks"),
        f"CONDOR_HOST = {runtime.central_manager}",
        f"COLLECTOR_HOST = $(CONDOR_HOST):{runtime.port}",
        f"SCHEDD_HOST = {runtime.schedd}",
        "SEC_CLIENT_AUTHENTICATION = REQUIRED",
        "SEC_CLIENT_AUTHENTICATION_METHODS = SCITOKENS",
        "SEC_DEFAULT_AUTHENTICATION_METHODS = SCITOKENS",
        "SEC_CLIENT_ENCRYPTION = REQUIRED",
        "SEC_CLIENT_INTEGRITY = REQUIRED",
        f"SCITOKENS_FILE = {BEARER_TOKEN_FILE}",
        f"AUTH_SSL_CLIENT_CADIR = {runtime.ca_dir}",
        *private_network(cfg),
    ]
    return "\n".join(lines) + "\n"
