"""The autoscaler in the cluster: its settings (rendered from the stack config), a least-
privilege service account, and the controller's Deployment with a limited IDTOKEN."""

from __future__ import annotations

from importlib import resources
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from autoscaler.kube import DELETION_COST
from autoscaler.model import Resources
from autoscaler.settings import ControllerSettings, GroupSettings, TriggerSettings

from ..common import rendered
from ..common.kube import NO_PRIVILEGES, PART_OF, RUNTIME_DEFAULT_SECCOMP, SMALL
from ..config.facility import FacilityConfig
from ..names import AUTOSCALER, COLLECTOR_PORT, CONDOR_NAMESPACE, CONFIG_HASH_ANNOTATION, SYSTEM_NODES
from .config import worker_groups
from .htcondor import autoscaler_identity, private_network
from .pods import RUNTIME, daemon_volumes, digest, token_init_container, worker_name

SETTINGS_DIR = "/etc/af-autoscaler"
TOKEN_DIR = "/etc/af-autoscaler/token"
CODE_ROOT = "/opt/af"
"""Where the controller's package is mounted (as `autoscaler/`) when it runs from the pool's image."""
USER = 65534
"""The controller runs unprivileged; only the init container reads the pool key."""


def controller_settings(cfg: FacilityConfig) -> ControllerSettings:
    """What the controller reads: the pool's services, each worker group's Deployment, slot
    shape, START, bounds and preference (the same declaration the workers are built from)."""
    groups = worker_groups(cfg.condor, cfg.cluster, cfg.site.flavors, cfg.offload).values()
    settings = [
        GroupSettings(
            name=g.name,
            deployment=worker_name(g.name),
            cpus=float(g.slot_cpus or 0),
            memory_mb=float(g.slot_memory_mib or 0),
            gpus=float(g.gpus),
            start=g.start,
            min_workers=g.min_workers,
            max_workers=g.max_workers,
            preference=g.preference,
            local=g.local,
        )
        for g in groups
    ]
    # The site's budget bounds local groups; offload groups are bounded by their gateway.
    budget = sum(
        (Resources(s.cpus, s.memory_mb, s.gpus).times(s.max_workers) for s in settings if s.local), Resources()
    )
    autoscaler = cfg.autoscaler
    return ControllerSettings(
        namespace=CONDOR_NAMESPACE,
        collector=f"{RUNTIME.central_manager}:{COLLECTOR_PORT}",
        schedds=[RUNTIME.schedd],
        groups=settings,
        triggers=[TriggerSettings(t.constraint, t.group) for t in autoscaler.triggers],
        interval_seconds=float(autoscaler.interval_seconds),
        scale_down_delay_seconds=float(autoscaler.scale_down_delay_seconds),
        budget=budget,
        metrics_port=autoscaler.metrics_port,
    )


def render_client_config(cfg: FacilityConfig, token_dir: str) -> str:
    """The controller's HTCondor client config: the pool, and its IDTOKEN as the only credential."""
    return "\n".join(
        [
            "# HTCondor client config of the autoscaler, rendered by the analysis-facility program.",
            f"CONDOR_HOST = {RUNTIME.central_manager}",
            f"COLLECTOR_HOST = $(CONDOR_HOST):{COLLECTOR_PORT}",
            "SEC_CLIENT_AUTHENTICATION = REQUIRED",
            "SEC_CLIENT_AUTHENTICATION_METHODS = IDTOKENS",
            "SEC_CLIENT_ENCRYPTION = REQUIRED",
            "SEC_CLIENT_INTEGRITY = REQUIRED",
            f"SEC_TOKEN_DIRECTORY = {token_dir}",
            *private_network(cfg),
            "",
        ]
    )


def rbac_rules(settings: ControllerSettings) -> list[dict[str, Any]]:
    """Only what the controller does: list worker pods and annotate them; read and scale the
    worker Deployments, by name. Namespaced, no wildcards."""
    return [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "patch"]},
        {
            "apiGroups": ["apps"],
            "resources": ["deployments/scale"],
            "resourceNames": [g.deployment for g in settings.groups],
            "verbs": ["get", "patch"],
        },
    ]


POD_PATCHES = f"{AUTOSCALER}-pod-patches"
"""The admission policy (and its binding) that limits the controller's pod patches to the deletion cost."""


def pod_patch_policy() -> tuple[dict[str, Any], dict[str, Any]]:
    """A ValidatingAdmissionPolicy and its binding: an update of a pod in the pool's namespace by the controller's
    account may change the pod's deletion-cost annotation and nothing else. Its Role must let it `patch pods` to set
    that annotation, and RBAC cannot limit a patch to one field: without this, its token could change a worker's
    image (which then runs with the pool's signing key), its labels (taking it out of, or into, a ReplicaSet), its
    owner references, finalizers or other annotations."""
    cost = f"'{DELETION_COST}'"
    account = f"system:serviceaccount:{CONDOR_NAMESPACE}:{AUTOSCALER}"
    others = "k == {cost} || (k in {other} && {other}[k] == {this}[k])"
    policy = {
        "failurePolicy": "Fail",
        "matchConstraints": {
            "resourceRules": [
                {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["pods"]}
            ]
        },
        "matchConditions": [{"name": "by-the-autoscaler", "expression": f"request.userInfo.username == '{account}'"}],
        "variables": [
            {"name": "before", "expression": "oldObject.metadata.?annotations.orValue({})"},
            {"name": "after", "expression": "object.metadata.?annotations.orValue({})"},
        ],
        "validations": [
            {
                "expression": "object.spec == oldObject.spec",
                "message": "the autoscaler may not change a pod's spec",
                "reason": "Forbidden",
            },
            {
                "expression": "object.metadata.?labels.orValue({}) == oldObject.metadata.?labels.orValue({})",
                "message": "the autoscaler may not change a pod's labels",
                "reason": "Forbidden",
            },
            {
                "expression": "object.metadata.?ownerReferences.orValue([]) == "
                "oldObject.metadata.?ownerReferences.orValue([]) && "
                "object.metadata.?finalizers.orValue([]) == oldObject.metadata.?finalizers.orValue([])",
                "message": "the autoscaler may not change a pod's owners or finalizers",
                "reason": "Forbidden",
            },
            {
                "expression": "variables.after.all(k, "
                + others.format(cost=cost, other="variables.before", this="variables.after")
                + ") && variables.before.all(k, "
                + others.format(cost=cost, other="variables.after", this="variables.before")
                + ")",
                "message": f"the autoscaler may change no annotation of a pod but {DELETION_COST}",
                "reason": "Forbidden",
            },
        ],
    }
    binding = {
        "policyName": POD_PATCHES,
        "validationActions": ["Deny"],
        "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": CONDOR_NAMESPACE}}},
    }
    return policy, binding


def controller_code() -> dict[str, str]:
    """The controller's package, module by module: standard library and HTCondor's bindings only,
    written for the Python 3.9 of the pool's EL9 images."""
    package = resources.files("autoscaler")
    return {
        f.name: f.read_text(encoding="utf-8")
        for f in sorted(package.iterdir(), key=lambda f: f.name)
        if f.name.endswith(".py")
    }


def _controller(cfg: FacilityConfig) -> dict[str, Any]:
    """What runs the controller: an operator's image as it is, or the pool's central-manager
    image (its /usr/bin/python3 has htcondor2 and classad2) with the package from a ConfigMap."""
    if cfg.autoscaler.image is not None:
        return {"image": cfg.autoscaler.image, "env": [], "volumeMounts": []}
    return {
        "image": cfg.condor.image("cm"),
        "command": ["python3", "-m", "autoscaler.controller"],
        "env": [
            {"name": "PYTHONPATH", "value": CODE_ROOT},
            # Read-only root filesystem: no bytecode cache to write.
            {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
        ],
        "volumeMounts": [{"name": "code", "mountPath": f"{CODE_ROOT}/autoscaler", "readOnly": True}],
    }


def pod_spec(cfg: FacilityConfig, settings: ControllerSettings) -> dict[str, Any]:
    port = settings.metrics_port
    runs = _controller(cfg)
    mint = token_init_container(cfg, autoscaler_identity(cfg), ["READ", "ADMINISTRATOR"], TOKEN_DIR, owner=USER)
    return {
        "serviceAccountName": AUTOSCALER,
        "nodeSelector": dict(SYSTEM_NODES),
        "securityContext": dict(RUNTIME_DEFAULT_SECCOMP),
        "initContainers": [mint],
        "containers": [
            {
                "name": "controller",
                "image": runs["image"],
                **({"command": runs["command"]} if "command" in runs else {}),
                "env": [
                    {"name": "AF_AUTOSCALER_CONFIG", "value": f"{SETTINGS_DIR}/settings.json"},
                    {"name": "CONDOR_CONFIG", "value": f"{SETTINGS_DIR}/condor_config"},
                    *runs["env"],
                ],
                "ports": [{"name": "metrics", "containerPort": port}],
                "resources": SMALL,
                "securityContext": {
                    "runAsUser": USER,
                    "runAsGroup": USER,
                    "runAsNonRoot": True,
                    "readOnlyRootFilesystem": True,
                    **NO_PRIVILEGES,
                },
                "readinessProbe": {"httpGet": {"path": "/metrics", "port": port}, "periodSeconds": 15},
                "livenessProbe": {"httpGet": {"path": "/metrics", "port": port}, "periodSeconds": 30},
                "volumeMounts": [
                    {"name": "settings", "mountPath": f"{SETTINGS_DIR}/settings.json", "subPath": "settings.json"},
                    {"name": "settings", "mountPath": f"{SETTINGS_DIR}/condor_config", "subPath": "condor_config"},
                    {"name": "token", "mountPath": TOKEN_DIR, "readOnly": True},
                    *runs["volumeMounts"],
                ],
            }
        ],
        "volumes": [
            {"name": "settings", "configMap": {"name": f"{AUTOSCALER}-settings"}},
            *([{"name": "code", "configMap": {"name": f"{AUTOSCALER}-code"}}] if runs["volumeMounts"] else []),
            {"name": "token", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
            *(v for v in daemon_volumes() if v["name"] in ("config", "pool-key")),
        ],
    }


class Autoscaler(pulumi.ComponentResource):
    """The controller scaling the pool's worker groups, in the pool's namespace."""

    def __init__(
        self,
        name: str,
        cfg: FacilityConfig,
        provider: k8s.Provider,
        pool: pulumi.Resource,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("af:index:Autoscaler", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[pool])
        settings = controller_settings(cfg)
        document, client = settings.to_json(), render_client_config(cfg, TOKEN_DIR)
        rendered.publish("autoscaler", "settings.json", document)
        rendered.publish("autoscaler", "condor_config", client)
        labels = {"app.kubernetes.io/name": AUTOSCALER, **PART_OF}
        meta = {"name": AUTOSCALER, "namespace": CONDOR_NAMESPACE, "labels": labels}
        account = k8s.core.v1.ServiceAccount(f"{name}-account", metadata=meta, opts=child)
        role = k8s.rbac.v1.Role(f"{name}-role", metadata=meta, rules=rbac_rules(settings), opts=child)
        policy_spec, binding_spec = pod_patch_policy()
        cluster = pulumi.ResourceOptions(parent=self, provider=provider)
        patches = k8s.admissionregistration.v1.ValidatingAdmissionPolicy(
            f"{name}-pod-patches", metadata={"name": POD_PATCHES, "labels": labels}, spec=policy_spec, opts=cluster
        )
        patches_binding = k8s.admissionregistration.v1.ValidatingAdmissionPolicyBinding(
            f"{name}-pod-patches-binding",
            metadata={"name": POD_PATCHES, "labels": labels},
            spec=binding_spec,
            opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[patches]),
        )
        binding = k8s.rbac.v1.RoleBinding(
            f"{name}-binding",
            metadata=meta,
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": AUTOSCALER},
            subjects=[{"kind": "ServiceAccount", "name": AUTOSCALER, "namespace": CONDOR_NAMESPACE}],
            opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[account, role]),
        )
        config = k8s.core.v1.ConfigMap(
            f"{name}-settings",
            metadata={**meta, "name": f"{AUTOSCALER}-settings"},
            data={"settings.json": document, "condor_config": client},
            opts=child,
        )
        # The controller starts once its pod patches are limited.
        waits: list[pulumi.Resource] = [binding, patches_binding, config, pool]
        code = controller_code()
        if cfg.autoscaler.image is None:
            waits.append(
                k8s.core.v1.ConfigMap(
                    f"{name}-code", metadata={**meta, "name": f"{AUTOSCALER}-code"}, data=code, opts=child
                )
            )
        # A new settings file or new code rolls the controller.
        annotations = {CONFIG_HASH_ANNOTATION: digest(document, client, *code.values())}
        k8s.apps.v1.Deployment(
            f"{name}-controller",
            metadata=meta,
            spec={
                "replicas": 1,
                # One controller at a time: two would fight over the same replicas.
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels, "annotations": annotations},
                    "spec": pod_spec(cfg, settings),
                },
            },
            opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=waits),
        )
        k8s.core.v1.Service(
            f"{name}-metrics",
            metadata={**meta, "name": f"{AUTOSCALER}-metrics"},
            spec={"selector": labels, "ports": [{"name": "metrics", "port": settings.metrics_port}]},
            opts=child,
        )
        self.register_outputs({})
