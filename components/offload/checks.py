"""Checks of the offload gateways against the rest of the stack: they feed the pool, admit
groups the identity declares, have room for a worker, and have their credential."""

from __future__ import annotations

from ..config.errors import Problem, problem
from ..config.facility import FacilityConfig
from .config import GATEWAY_SECRETS, Gateway


def _gateway_problems(cfg: FacilityConfig, name: str, gateway: Gateway, declared: set[str]) -> list[Problem]:
    loc = ("offload", "gateways", name)
    found: list[Problem] = []
    if name in cfg.cluster.node_groups:
        found.append(problem(loc, name, "a name no node group has (it names a worker group too)"))
    for index, group in enumerate(gateway.groups):
        if group not in declared:
            found.append(
                problem(
                    (*loc, "groups", index),
                    group,
                    "a group declared in af:identity.roles: "
                    + (", ".join(sorted(declared)) or "none declared (set af:identity)"),
                )
            )
    r, w = gateway.resources, gateway.worker
    if r.gpus and r.gpu_model is None:
        found.append(problem((*loc, "resources", "gpuModel"), None, "the GPU model when gpus > 0"))
    if w.cpus > r.cpus or w.memory_gib > r.memory_gib or w.gpus > r.gpus:
        found.append(
            problem(
                (*loc, "worker"),
                f"{w.cpus} cores, {w.memory_gib} GiB, {w.gpus} GPUs",
                f"a worker within the virtual node's resources ({r.cpus} cores, {r.memory_gib} GiB, {r.gpus} GPUs)",
            )
        )
    auth = gateway.auth
    if auth.kind == "iam-client" and auth.token_url is None and cfg.identity is None:
        found.append(problem((*loc, "auth", "tokenUrl"), None, "the IAM token endpoint, or af:identity"))
    key = GATEWAY_SECRETS[auth.kind]
    secret = auth.client_secret if auth.kind == "iam-client" else auth.token
    if secret is None:
        how = f"a Pulumi secret: pulumi config set --secret --path 'af:offload.gateways.{name}.auth.{key}' …"
        found.append(problem((*loc, "auth", key), None, how))
    return found


def problems(cfg: FacilityConfig) -> list[Problem]:
    gateways = cfg.offload.gateways
    if not gateways:
        return []
    found: list[Problem] = []
    if not cfg.condor.enabled:
        found.append(
            problem(
                ("offload", "gateways"),
                sorted(gateways),
                "no gateways without af:condor.enabled (they run its workers)",
            )
        )
    declared = set(cfg.identity.roles.all_groups()) if cfg.identity else set()
    for name, gateway in sorted(gateways.items()):
        found += _gateway_problems(cfg, name, gateway, declared)
    return found
