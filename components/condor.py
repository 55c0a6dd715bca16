"""The HTCondor pool: a central manager (Deployment), the schedd (StatefulSet with its spool on
a persistent volume) and one worker Deployment per worker group, in their own namespace, with
the rendered config in a ConfigMap and the pool signing key in a Secret.

Every pod mints its daemon's IDTOKEN from the signing key when it starts (`condor_token_create`),
then runs `condor_master` in the foreground. Workers' replicas belong to the autoscaler once
created (`ignore_changes`); a worker being removed lets its jobs retire (preStop and the
termination grace). Notebooks find the pool through `client_env`/`client_files`."""

from __future__ import annotations

import hashlib
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from autoscaler.kube import GROUP_LABEL as AUTOSCALER_GROUP_LABEL

from . import rendered
from .certs import CA_CERT_DIR, INTERNAL_ISSUER, TRUST_CONFIGMAP, CertManager
from .cluster import LABEL_PREFIX, SYSTEM_NODES
from .condorconf import (
    MAPFILE,
    PLUGIN_CONFIG,
    PLUGIN_SCRIPT,
    PoolRuntime,
    daemon_identity,
    offloading,
    render_central_manager,
    render_client,
    render_execute,
    render_mapfile,
    render_offload,
    render_plugin_config,
    render_pool,
    render_submit,
)
from .config import FacilityConfig
from .config.batch import COLLECTOR_PORT, WorkerGroup, worker_groups
from .cvmfs import CLAIM, MOUNT, Cvmfs
from .offloadconf import GATEWAY_LABEL, GATEWAY_TAINT_KEY, SLURM_FLAGS_ANNOTATION, VIRTUAL_NODE_TAINT, slurm_flags
from .shipped import shipped
from .workloads import PART_OF, layer_namespace, resources
from .xcache import client_env as xcache_client_env
from .xcache import client_files as xcache_client_files

NAMESPACE = "condor"
PORT = COLLECTOR_PORT
CM = "af-condor-cm"
SCHEDD = "af-condor-schedd"
WORKER = "af-condor-worker"
KEY_SECRET = "af-condor-pool-key"
CONFIG_MAP = "af-condor-config"
JOB_FILES = "af-condor-job-files"
OFFLOAD_TOKEN = "af-condor-offload-token"
"""The Secret holding offloaded workers' IDTOKEN (minted in the cluster by a Job)."""
MINTER = "af-condor-token-minter"
STORE_SCRIPT = "af_store_token.py"
OFFLOAD_AUTHZ = ["READ", "ADVERTISE_MASTER", "ADVERTISE_STARTD", "DAEMON"]
"""What an offloaded worker's token allows: advertising itself and what a startd does, nothing
more (claims are activated with the negotiator's match session, not with this token)."""
CONFIG_DIR = "/etc/condor/config.d"
RUNTIME = PoolRuntime(
    central_manager=f"{CM}.{NAMESPACE}.svc.cluster.local",
    schedd=f"{SCHEDD}.{NAMESPACE}.svc.cluster.local",
    key_dir="/etc/condor/af-keys",
    token_dir="/etc/condor/af-tokens",
    files_dir="/etc/condor/af",
    tls_dir="/etc/condor/af-tls",
    spool_dir="/var/lib/condor/spool",
)
GROUP_LABEL = AUTOSCALER_GROUP_LABEL
"""Label naming a worker pod's group: the autoscaler selects pods by it."""
"""Pod label naming a worker's group (the autoscaler selects a group's pods by it)."""
CONFIG_HASH = f"{LABEL_PREFIX}/config-sha256"
CLIENT_CONFIG = "/etc/af/condor/condor_config"
"""Where notebooks find the client config (`CONDOR_CONFIG`)."""
POOL_FILE, ROLE_FILE, REMOTE_FILE = "90-af-pool.conf", "91-af-role.conf", "92-af-offload.conf"
"""Names in `config.d`: after the images' own `01-*.conf`, so these settings win."""
PRESTOP = (
    "condor_off -graceful -daemon startd || true; "
    "while grep -qx condor_startd /proc/[0-9]*/comm 2>/dev/null; do sleep 10; done"
)
"""A worker being removed: retire its jobs (MaxJobRetirementTime), wait until the startd is gone."""
RETIRE_MARGIN_SECONDS = 120
"""Termination grace beyond the retirement time: vacating and transferring outputs."""


def worker_name(group: str) -> str:
    """Name of a worker group's Deployment."""
    return f"{WORKER}-{group}"


def worker_labels(group: str) -> dict[str, str]:
    """Labels of a worker group's pods (and its Deployment's selector)."""
    return {"app.kubernetes.io/name": WORKER, "app.kubernetes.io/component": "worker", GROUP_LABEL: group, **PART_OF}


def client_env() -> dict[str, str]:
    """Environment of notebooks: HTCondor's tools and bindings read the pool's client config."""
    return {"CONDOR_CONFIG": CLIENT_CONFIG}


def client_files(cfg: FacilityConfig) -> dict[str, str]:
    """Files notebooks need, by absolute path."""
    return {CLIENT_CONFIG: render_client(cfg, RUNTIME)}


def _labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, **PART_OF}


def _digest(*texts: str) -> str:
    return hashlib.sha256("\x00".join(texts).encode()).hexdigest()


def token_init_container(
    cfg: FacilityConfig, identity: str, authz: list[str], token_mount: str, owner: int | None = None
) -> dict[str, Any]:
    """An init container that mints an IDTOKEN for `identity`, limited to `authz` (for example
    READ and ADMINISTRATOR for the autoscaler), into `token_mount`/token. It needs the pod to
    have the `config` and `pool-key` volumes of `daemon_volumes()`; the key stays in the init
    container, the main container mounts only the token's volume (owned by `owner` if the main
    container runs as that user)."""
    limits = " ".join(f"-authz {a}" for a in authz)
    return {
        "name": "mint-token",
        "image": cfg.condor.image("cm"),
        "command": [
            "/bin/sh",
            "-c",
            f"umask 077 && condor_token_create -identity {identity} {limits} > {token_mount}/token"
            + (f" && chown {owner}:{owner} {token_mount}/token" if owner is not None else ""),
        ],
        "resources": resources("10m", "32Mi", "200m", "128Mi"),
        "volumeMounts": [
            {"name": "config", "mountPath": f"{CONFIG_DIR}/{POOL_FILE}", "subPath": "pool.conf", "readOnly": True},
            {"name": "pool-key", "mountPath": RUNTIME.key_dir, "readOnly": True},
            {"name": "token", "mountPath": token_mount},
        ],
    }


def _daemon_container(cfg: FacilityConfig, image: str, role_file: str, resources: dict[str, Any]) -> dict[str, Any]:
    """The daemon's container: its token minted from the signing key, then condor_master in
    the foreground (the pod shares its process namespace, so the master is not PID 1)."""
    token = f"{RUNTIME.token_dir}/pool"
    start = (
        f"umask 077 && condor_token_create -identity {daemon_identity(cfg)} > {token}.new "
        f"&& mv {token}.new {token} && exec /usr/sbin/condor_master -f"
    )
    return {
        "name": "condor",
        "image": image,
        "command": ["/bin/sh", "-c", start],
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "resources": resources,
        "volumeMounts": [
            {"name": "config", "mountPath": f"{CONFIG_DIR}/{POOL_FILE}", "subPath": "pool.conf", "readOnly": True},
            {"name": "config", "mountPath": f"{CONFIG_DIR}/{ROLE_FILE}", "subPath": role_file, "readOnly": True},
            {"name": "files", "mountPath": RUNTIME.files_dir, "readOnly": True},
            {"name": "pool-key", "mountPath": RUNTIME.key_dir, "readOnly": True},
            {"name": "tokens", "mountPath": RUNTIME.token_dir},
        ],
    }


def daemon_volumes() -> list[dict[str, Any]]:
    """The config, the plugin files, the signing key and the daemon's token directory."""
    files = [MAPFILE, PLUGIN_CONFIG, PLUGIN_SCRIPT]
    return [
        {"name": "config", "configMap": {"name": CONFIG_MAP}},
        {"name": "files", "configMap": {"name": CONFIG_MAP, "items": [{"key": f, "path": f} for f in files]}},
        {"name": "pool-key", "secret": {"secretName": KEY_SECRET, "defaultMode": 0o400}},
        {"name": "tokens", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
    ]


def _service_pod(
    cfg: FacilityConfig, service: str, image: str, role_file: str, resources: dict[str, Any], port: int
) -> dict[str, Any]:
    """The central manager's or the schedd's pod: on system nodes, reachable on its shared
    port, with its certificate for users' TLS and its spool."""
    container = _daemon_container(cfg, image, role_file, resources)
    container["ports"] = [{"name": "condor", "containerPort": port}]
    container["readinessProbe"] = {"tcpSocket": {"port": port}, "periodSeconds": 10}
    container["livenessProbe"] = {"tcpSocket": {"port": port}, "initialDelaySeconds": 60, "periodSeconds": 30}
    container["volumeMounts"] += [
        {"name": "tls", "mountPath": RUNTIME.tls_dir, "readOnly": True},
        {"name": "spool", "mountPath": RUNTIME.spool_dir},
    ]
    return {
        "shareProcessNamespace": True,
        "terminationGracePeriodSeconds": 120,
        "nodeSelector": dict(SYSTEM_NODES),
        "containers": [container],
        "volumes": [*daemon_volumes(), {"name": "tls", "secret": {"secretName": f"{service}-tls"}}],
    }


def worker_pod(cfg: FacilityConfig, group: WorkerGroup) -> dict[str, Any]:
    """A worker of `group`: on the group's nodes, tolerating their taints, sized to the node
    (requests = limits: a guaranteed pod), with its GPUs, /cvmfs and the cache's client files."""
    assert group.pod_cpus is not None and group.pod_memory_mib is not None, "sizes are checked by cross_checks"
    size = {"cpu": f"{round(group.pod_cpus * 1000)}m", "memory": f"{group.pod_memory_mib}Mi"}
    if group.gpus:
        size["nvidia.com/gpu"] = str(group.gpus)
    container = _daemon_container(
        cfg, cfg.condor.image("execute"), f"execute-{group.name}.conf", {"requests": dict(size), "limits": size}
    )
    container["lifecycle"] = {"preStop": {"exec": {"command": ["/bin/sh", "-c", PRESTOP]}}}
    volumes = daemon_volumes()
    container["volumeMounts"].append({"name": "execute", "mountPath": "/var/lib/condor/execute"})
    volumes.append({"name": "execute", "emptyDir": {}})
    if cfg.cvmfs.enabled:
        container["volumeMounts"].append(
            {"name": "cvmfs", "mountPath": MOUNT, "readOnly": True, "mountPropagation": "HostToContainer"}
        )
        volumes.append({"name": "cvmfs", "persistentVolumeClaim": {"claimName": CLAIM, "readOnly": True}})
    if cfg.cache.enabled:
        for index, path in enumerate(sorted(xcache_client_files())):
            container["volumeMounts"].append(
                {"name": "job-files", "mountPath": path, "subPath": f"file-{index}", "readOnly": True}
            )
        container["volumeMounts"].append({"name": "ca-certs", "mountPath": CA_CERT_DIR, "readOnly": True})
        volumes += [
            {"name": "job-files", "configMap": {"name": JOB_FILES}},
            {"name": "ca-certs", "configMap": {"name": TRUST_CONFIGMAP}},
        ]
    taints = sorted({(t.key, t.effect) for t in group.node_group.taints})
    spec: dict[str, Any] = {
        "shareProcessNamespace": True,
        "terminationGracePeriodSeconds": cfg.condor.retire_grace_minutes * 60 + RETIRE_MARGIN_SECONDS,
        "nodeSelector": {f"{LABEL_PREFIX}/node-group": group.name},
        "containers": [container],
        "volumes": volumes,
    }
    if taints:
        spec["tolerations"] = [{"key": key, "operator": "Exists", "effect": effect} for key, effect in taints]
    return spec


def offload_worker_pod(cfg: FacilityConfig, group: WorkerGroup) -> dict[str, Any]:
    """A worker of an offload group: on its gateway's virtual node (a Slurm job at the centre,
    its flags in the annotation the plugin reads), sized by the gateway, with a minted token
    instead of the signing key, and no /cvmfs or cache files (the cluster's, not the centre's)."""
    assert group.gateway is not None and group.pod_cpus is not None and group.pod_memory_mib is not None
    size = {"cpu": str(int(group.pod_cpus)), "memory": f"{group.pod_memory_mib}Mi"}
    if group.gpus:
        size["nvidia.com/gpu"] = str(group.gpus)
    config = {"name": "config", "readOnly": True}
    container = {
        "name": "condor",
        "image": cfg.condor.image("execute"),
        "command": ["/usr/sbin/condor_master", "-f"],
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "resources": {"requests": dict(size), "limits": size},
        "lifecycle": {"preStop": {"exec": {"command": ["/bin/sh", "-c", PRESTOP]}}},
        "volumeMounts": [
            {**config, "mountPath": f"{CONFIG_DIR}/{POOL_FILE}", "subPath": "pool.conf"},
            {**config, "mountPath": f"{CONFIG_DIR}/{ROLE_FILE}", "subPath": f"execute-{group.name}.conf"},
            {**config, "mountPath": f"{CONFIG_DIR}/{REMOTE_FILE}", "subPath": "offload.conf"},
            {"name": "tokens", "mountPath": RUNTIME.token_dir, "readOnly": True},
            {"name": "execute", "mountPath": "/var/lib/condor/execute"},
        ],
    }
    return {
        "terminationGracePeriodSeconds": cfg.condor.retire_grace_minutes * 60 + RETIRE_MARGIN_SECONDS,
        "nodeSelector": {GATEWAY_LABEL: group.name},
        "tolerations": [
            {"key": VIRTUAL_NODE_TAINT, "operator": "Exists", "effect": "NoSchedule"},
            {"key": GATEWAY_TAINT_KEY, "operator": "Equal", "value": group.name, "effect": "NoSchedule"},
        ],
        "containers": [container],
        "volumes": [
            {"name": "config", "configMap": {"name": CONFIG_MAP}},
            {
                "name": "tokens",
                "secret": {
                    "secretName": OFFLOAD_TOKEN,
                    "items": [{"key": "token", "path": "pool"}],
                    "defaultMode": 0o400,
                },
            },
            {"name": "execute", "emptyDir": {}},
        ],
    }


def rendered_files(cfg: FacilityConfig) -> dict[str, str]:
    """Every file of the pool's ConfigMap, by key (the role fragments, the map file, the plugin)."""
    groups = worker_groups(cfg.condor, cfg.cluster, cfg.site.flavors, cfg.offload)
    job_env = xcache_client_env() if cfg.cache.enabled else {}
    return {
        "pool.conf": render_pool(cfg, RUNTIME),
        "central-manager.conf": render_central_manager(cfg, RUNTIME),
        "submit.conf": render_submit(cfg, RUNTIME),
        **{f"execute-{g.name}.conf": render_execute(cfg, RUNTIME, g, job_env) for g in groups.values()},
        MAPFILE: render_mapfile(cfg),
        PLUGIN_CONFIG: render_plugin_config(cfg),
        **({"offload.conf": render_offload(cfg, RUNTIME)} if offloading(cfg) else {}),
    }


class Condor(pulumi.ComponentResource):
    """The pool in its namespace. `workers` are the worker Deployments by group name."""

    collector: str
    schedd: str
    workers: dict[str, k8s.apps.v1.Deployment]

    def __init__(
        self,
        name: str,
        cfg: FacilityConfig,
        provider: k8s.Provider,
        certs: CertManager,
        cvmfs: Cvmfs | None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("af:index:Condor", name, None, opts)
        condor = cfg.condor
        namespace, _, ns_opts = layer_namespace(self, name, NAMESPACE, provider)
        files = rendered_files(cfg)
        plugin = shipped("condorfiles", PLUGIN_SCRIPT)
        store = shipped("condorfiles", STORE_SCRIPT)
        for key, content in {**files, "client.conf": render_client(cfg, RUNTIME)}.items():
            rendered.publish("condor", key, content)
        config = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata={"name": CONFIG_MAP, "namespace": NAMESPACE, "labels": PART_OF},
            data={**files, PLUGIN_SCRIPT: plugin, **({STORE_SCRIPT: store} if offloading(cfg) else {})},
            opts=ns_opts,
        )
        # The pool signing key: alphanumeric, so HTCondor's (un)scrambling of key files can never
        # produce a NUL that would shorten it. Kept in the stack's state; replace it to revoke
        # every token.
        key = random.RandomPassword(
            f"{name}-signing-key", length=64, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        secret = k8s.core.v1.Secret(
            f"{name}-pool-key",
            metadata={"name": KEY_SECRET, "namespace": NAMESPACE, "labels": PART_OF},
            type="Opaque",
            string_data={"POOL": key.result},
            opts=ns_opts,
        )
        waits: list[pulumi.Resource] = [config, secret]
        tls = [self._certificate(name, service, provider, certs, namespace) for service in (CM, SCHEDD)]
        pool_hash = _digest(files["pool.conf"], files[MAPFILE], files[PLUGIN_CONFIG], plugin)
        self._central_manager(name, cfg, _digest(pool_hash, files["central-manager.conf"]), ns_opts, waits + tls[:1])
        self._schedd(name, cfg, _digest(pool_hash, files["submit.conf"]), ns_opts, waits + tls[1:])
        if cvmfs is not None:
            waits.append(cvmfs.claim(f"{name}-cvmfs", NAMESPACE, parent=self))
        if cfg.cache.enabled:
            waits.append(certs.trust(f"{name}-ca-certs", NAMESPACE, parent=self))
            job_files = sorted(xcache_client_files().items())
            waits.append(
                k8s.core.v1.ConfigMap(
                    f"{name}-job-files",
                    metadata={"name": JOB_FILES, "namespace": NAMESPACE, "labels": PART_OF},
                    data={f"file-{index}": content for index, (_, content) in enumerate(job_files)},
                    opts=ns_opts,
                )
            )
        remote_waits: list[pulumi.Resource] = [config]
        if offloading(cfg):
            self._publish(name, cfg, ns_opts)
            remote_waits.append(self._offload_token(name, cfg, ns_opts, [config, secret]))
        self.workers = {}
        for group in worker_groups(condor, cfg.cluster, cfg.site.flavors, cfg.offload).values():
            labels = worker_labels(group.name)
            config_hash = _digest(pool_hash, files[f"execute-{group.name}.conf"])
            annotations: dict[str, str] = {CONFIG_HASH: config_hash}
            if group.gateway is None:
                pod, deps = worker_pod(cfg, group), waits
            else:
                config_hash = _digest(config_hash, files["offload.conf"])
                annotations = {CONFIG_HASH: config_hash, SLURM_FLAGS_ANNOTATION: slurm_flags(group.gateway)}
                pod, deps = offload_worker_pod(cfg, group), remote_waits
            self.workers[group.name] = k8s.apps.v1.Deployment(
                f"{name}-worker-{group.name}",
                metadata={"name": worker_name(group.name), "namespace": NAMESPACE, "labels": labels},
                spec={
                    "replicas": group.min_workers,
                    "selector": {"matchLabels": labels},
                    # One worker per node: no surge, replace one at a time, each retiring its jobs.
                    "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
                    "template": {"metadata": {"labels": labels, "annotations": annotations}, "spec": pod},
                },
                # The autoscaler owns replicas once the group exists: `pulumi up` must not reset them.
                opts=pulumi.ResourceOptions(
                    parent=self, provider=provider, depends_on=[namespace, *deps], ignore_changes=["spec.replicas"]
                ),
            )
        self.collector = f"{RUNTIME.central_manager}:{PORT}"
        self.schedd = RUNTIME.schedd
        self.register_outputs({"collector": self.collector, "schedd": self.schedd})

    def _publish(self, name: str, cfg: FacilityConfig, opts: pulumi.ResourceOptions) -> None:
        """The central manager and the schedd at the facility's address, for offloaded workers
        only: the load balancers admit the gateways' source networks and nothing else."""
        sources = sorted({cidr for g in cfg.offload.gateways.values() for cidr in g.source_cidrs})
        for service, port in ((CM, RUNTIME.port), (SCHEDD, RUNTIME.schedd_port)):
            k8s.core.v1.Service(
                f"{name}-{service.removeprefix('af-condor-')}-public",
                metadata={"name": f"{service}-public", "namespace": NAMESPACE, "labels": _labels(service)},
                spec={
                    "type": "LoadBalancer",
                    "selector": _labels(service),
                    "ports": [{"name": "condor", "port": port, "targetPort": "condor"}],
                    "loadBalancerSourceRanges": sources,
                },
                opts=opts,
            )

    def _offload_token(
        self, name: str, cfg: FacilityConfig, opts: pulumi.ResourceOptions, waits: list[pulumi.Resource]
    ) -> pulumi.Resource:
        """The offloaded workers' IDTOKEN, minted in the cluster by a Job (from the signing key,
        limited to a startd's rights) into a Secret the Job may patch and nothing else."""
        labels = _labels(MINTER)
        secret = k8s.core.v1.Secret(
            f"{name}-offload-token",
            metadata={"name": OFFLOAD_TOKEN, "namespace": NAMESPACE, "labels": PART_OF},
            type="Opaque",
            # The Job writes the token; `pulumi up` must not empty it again.
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(ignore_changes=["data", "stringData"])),
        )
        account = k8s.core.v1.ServiceAccount(
            f"{name}-minter-sa", metadata={"name": MINTER, "namespace": NAMESPACE, "labels": labels}, opts=opts
        )
        role = k8s.rbac.v1.Role(
            f"{name}-minter-role",
            metadata={"name": MINTER, "namespace": NAMESPACE, "labels": labels},
            rules=[{"apiGroups": [""], "resources": ["secrets"], "resourceNames": [OFFLOAD_TOKEN], "verbs": ["patch"]}],
            opts=opts,
        )
        binding = k8s.rbac.v1.RoleBinding(
            f"{name}-minter-binding",
            metadata={"name": MINTER, "namespace": NAMESPACE, "labels": labels},
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": MINTER},
            subjects=[{"kind": "ServiceAccount", "name": MINTER, "namespace": NAMESPACE}],
            opts=opts,
        )
        mint = token_init_container(cfg, daemon_identity(cfg), OFFLOAD_AUTHZ, "/var/run/af-token")
        store_command = [
            "python3",
            f"/etc/af/{STORE_SCRIPT}",
            "/var/run/af-token/token",
            NAMESPACE,
            OFFLOAD_TOKEN,
            "token",
        ]
        job = k8s.batch.v1.Job(
            f"{name}-minter",
            metadata={"name": MINTER, "namespace": NAMESPACE, "labels": labels},
            spec={
                "backoffLimit": 3,
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": MINTER,
                        "restartPolicy": "OnFailure",
                        "nodeSelector": dict(SYSTEM_NODES),
                        "initContainers": [mint],
                        "containers": [
                            {
                                "name": "store",
                                "image": cfg.condor.image("cm"),
                                "command": store_command,
                                "resources": resources("10m", "32Mi", "200m", "128Mi"),
                                "volumeMounts": [
                                    {
                                        "name": "config",
                                        "mountPath": f"/etc/af/{STORE_SCRIPT}",
                                        "subPath": STORE_SCRIPT,
                                        "readOnly": True,
                                    },
                                    {"name": "token", "mountPath": "/var/run/af-token", "readOnly": True},
                                ],
                            }
                        ],
                        "volumes": [
                            *[v for v in daemon_volumes() if v["name"] in ("config", "pool-key")],
                            {"name": "token", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
                        ],
                    },
                },
            },
            opts=pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(depends_on=[*waits, secret, binding, role, account])
            ),
        )
        return job

    def _certificate(
        self, name: str, service: str, provider: k8s.Provider, certs: CertManager, namespace: k8s.core.v1.Namespace
    ) -> pulumi.Resource:
        """The service's TLS certificate from the internal CA: users' SciTokens travel over it."""
        return k8s.apiextensions.CustomResource(
            f"{name}-{service.removeprefix('af-condor-')}-tls",
            api_version="cert-manager.io/v1",
            kind="Certificate",
            metadata={"name": f"{service}-tls", "namespace": NAMESPACE},
            spec={
                "secretName": f"{service}-tls",
                "dnsNames": [
                    service,
                    f"{service}.{NAMESPACE}",
                    f"{service}.{NAMESPACE}.svc",
                    f"{service}.{NAMESPACE}.svc.cluster.local",
                ],
                "privateKey": {"algorithm": "ECDSA", "size": 256},
                "issuerRef": {"name": INTERNAL_ISSUER, "kind": "ClusterIssuer", "group": "cert-manager.io"},
            },
            opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[namespace, certs.internal_issuer]),
        )

    def _service(self, name: str, service: str, port: int, opts: pulumi.ResourceOptions) -> None:
        """The daemon's Service on its shared port, and the budget that keeps it up in drains."""
        labels = _labels(service)
        k8s.core.v1.Service(
            f"{name}-svc",
            metadata={"name": service, "namespace": NAMESPACE, "labels": labels},
            spec={"selector": labels, "ports": [{"name": "condor", "port": port, "targetPort": "condor"}]},
            opts=opts,
        )
        # The pool's single central manager and schedd: a node drain must move them deliberately.
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata={"name": service, "namespace": NAMESPACE, "labels": labels},
            spec={"minAvailable": 1, "selector": {"matchLabels": labels}},
            opts=opts,
        )

    def _central_manager(
        self, name: str, cfg: FacilityConfig, config_hash: str, opts: pulumi.ResourceOptions, waits: list[Any]
    ) -> None:
        labels = _labels(CM)
        claim = k8s.core.v1.PersistentVolumeClaim(
            f"{name}-cm-spool",
            metadata={"name": f"{CM}-spool", "namespace": NAMESPACE, "labels": labels},
            spec=_claim_spec(cfg, 1),
            opts=opts,
        )
        pod = _service_pod(
            cfg, CM, cfg.condor.image("cm"), "central-manager.conf", resources("250m", "512Mi", "2", "2Gi"), PORT
        )
        pod["volumes"].append({"name": "spool", "persistentVolumeClaim": {"claimName": f"{CM}-spool"}})
        k8s.apps.v1.Deployment(
            f"{name}-cm",
            metadata={"name": CM, "namespace": NAMESPACE, "labels": labels},
            spec={
                "replicas": 1,
                "strategy": {"type": "Recreate"},  # its spool volume attaches to one node at a time
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels, "annotations": {CONFIG_HASH: config_hash}}, "spec": pod},
            },
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[*waits, claim])),
        )
        self._service(f"{name}-cm", CM, PORT, opts)

    def _schedd(
        self, name: str, cfg: FacilityConfig, config_hash: str, opts: pulumi.ResourceOptions, waits: list[Any]
    ) -> None:
        labels = _labels(SCHEDD)
        pod = _service_pod(
            cfg,
            SCHEDD,
            cfg.condor.image("submit"),
            "submit.conf",
            resources("500m", "1Gi", "4", "8Gi"),
            RUNTIME.schedd_port,
        )
        k8s.apps.v1.StatefulSet(
            f"{name}-schedd",
            metadata={"name": SCHEDD, "namespace": NAMESPACE, "labels": labels},
            spec={
                "serviceName": SCHEDD,
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels, "annotations": {CONFIG_HASH: config_hash}}, "spec": pod},
                "volumeClaimTemplates": [
                    {"metadata": {"name": "spool"}, "spec": _claim_spec(cfg, cfg.condor.spool_gib)}
                ],
            },
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=waits)),
        )
        self._service(f"{name}-schedd", SCHEDD, RUNTIME.schedd_port, opts)


def _claim_spec(cfg: FacilityConfig, gib: int) -> dict[str, Any]:
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": f"{gib}Gi"}}}
    if cfg.condor.storage_class:
        spec["storageClassName"] = cfg.condor.storage_class
    return spec
