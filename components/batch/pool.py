"""The HTCondor pool: a central manager (Deployment), the schedd (StatefulSet with its spool on
a persistent volume) and one worker Deployment per worker group, in their own namespace, with
the rendered config in a ConfigMap and the pool signing key in a Secret.

Every pod mints its daemon's IDTOKEN from the signing key when it starts (`condor_token_create`),
then runs `condor_master` in the foreground. Workers' replicas belong to the autoscaler once
created (`ignore_changes`); a worker being removed lets its jobs retire (preStop and the
termination grace). Notebooks find the pool through `pods.pool_client`."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from ..common import rendered
from ..common.kube import PART_OF, layer_namespace, resources
from ..common.layers import Certificates, ServiceClient, SoftwareVolumes
from ..common.shipped import shipped
from ..common.tls import service_certificate, service_dns_names
from ..config.facility import FacilityConfig
from ..names import (
    COLLECTOR_PORT,
    CONDOR_CM,
    CONDOR_NAMESPACE,
    CONDOR_SCHEDD,
    CONFIG_HASH_ANNOTATION,
    SLURM_FLAGS_ANNOTATION,
    SYSTEM_NODES,
)
from .config import WorkerGroup, worker_groups
from .htcondor import MAPFILE, PLUGIN_CONFIG, PLUGIN_SCRIPT, daemon_identity, offloading, render_client
from .pods import (
    CONFIG_MAP,
    JOB_FILES,
    KEY_SECRET,
    MINTER,
    OFFLOAD_AUTHZ,
    OFFLOAD_TOKEN,
    RUNTIME,
    STORE_SCRIPT,
    daemon_volumes,
    digest,
    offload_worker_pod,
    rendered_files,
    service_labels,
    service_pod,
    token_init_container,
    worker_labels,
    worker_name,
    worker_pod,
)


class Condor(pulumi.ComponentResource):
    """The pool in its namespace. `workers` are the worker Deployments by group name."""

    namespace: k8s.core.v1.Namespace
    collector: str
    schedd: str
    workers: dict[str, k8s.apps.v1.Deployment]

    def __init__(
        self,
        name: str,
        cfg: FacilityConfig,
        provider: k8s.Provider,
        certs: Certificates,
        cvmfs: SoftwareVolumes | None,
        cache: ServiceClient | None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """`certs` issues the daemons' certificates (users' tokens travel over TLS); `cvmfs`
        mounts /cvmfs in local workers; `cache` is what jobs need to read through the cache."""
        super().__init__("af:index:Condor", name, None, opts)
        namespace, _, ns_opts = layer_namespace(
            self, name, CONDOR_NAMESPACE, provider, cfg.namespace_labels(CONDOR_NAMESPACE)
        )
        self.namespace = namespace
        files = rendered_files(cfg, cache)
        plugin = shipped("batch", PLUGIN_SCRIPT)
        config, secret = self._config(name, cfg, files, plugin, ns_opts)
        waits: list[pulumi.Resource] = [config, secret]
        tls = [self._certificate(name, service, provider, certs, namespace) for service in (CONDOR_CM, CONDOR_SCHEDD)]
        pool_hash = digest(files["pool.conf"], files[MAPFILE], files[PLUGIN_CONFIG], plugin)
        self._central_manager(name, cfg, digest(pool_hash, files["central-manager.conf"]), ns_opts, waits + tls[:1])
        self._schedd(name, cfg, digest(pool_hash, files["submit.conf"]), ns_opts, waits + tls[1:])
        if cvmfs is not None:
            waits.append(cvmfs.claim(f"{name}-cvmfs", namespace, parent=self))
        if cache is not None:
            waits.append(certs.trust(f"{name}-ca-certs", namespace, parent=self))
            waits.append(self._job_files(name, cache, ns_opts))
        remote_waits: list[pulumi.Resource] = [config]
        if offloading(cfg):
            self._publish(name, cfg, ns_opts)
            remote_waits.append(self._offload_token(name, cfg, ns_opts, [config, secret]))
        self.workers = {
            group.name: self._workers(
                name, cfg, group, files, pool_hash, cache, provider, namespace, waits, remote_waits
            )
            for group in worker_groups(cfg.condor, cfg.cluster, cfg.site.flavors, cfg.offload).values()
        }
        self.collector = f"{RUNTIME.central_manager}:{COLLECTOR_PORT}"
        self.schedd = RUNTIME.schedd
        self.register_outputs({"collector": self.collector, "schedd": self.schedd})

    def _config(
        self, name: str, cfg: FacilityConfig, files: dict[str, str], plugin: str, opts: pulumi.ResourceOptions
    ) -> tuple[k8s.core.v1.ConfigMap, k8s.core.v1.Secret]:
        """The pool's ConfigMap (published for the preview) and its signing key's Secret."""
        for key, content in {**files, "client.conf": render_client(cfg, RUNTIME)}.items():
            rendered.publish("condor", key, content)
        store = {STORE_SCRIPT: shipped("batch", STORE_SCRIPT)} if offloading(cfg) else {}
        config = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata={"name": CONFIG_MAP, "namespace": CONDOR_NAMESPACE, "labels": PART_OF},
            data={**files, PLUGIN_SCRIPT: plugin, **store},
            opts=opts,
        )
        # The pool signing key: alphanumeric, so HTCondor's (un)scrambling of key files can never
        # produce a NUL that would shorten it. Kept in the stack's state; replace it to revoke
        # every token.
        key = random.RandomPassword(
            f"{name}-signing-key", length=64, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        secret = k8s.core.v1.Secret(
            f"{name}-pool-key",
            metadata={"name": KEY_SECRET, "namespace": CONDOR_NAMESPACE, "labels": PART_OF},
            type="Opaque",
            string_data={"POOL": key.result},
            opts=opts,
        )
        return config, secret

    def _job_files(self, name: str, cache: ServiceClient, opts: pulumi.ResourceOptions) -> k8s.core.v1.ConfigMap:
        """The cache's client files for jobs, mounted by path in local workers (`worker_pod`)."""
        job_files = sorted(cache.files.items())
        return k8s.core.v1.ConfigMap(
            f"{name}-job-files",
            metadata={"name": JOB_FILES, "namespace": CONDOR_NAMESPACE, "labels": PART_OF},
            data={f"file-{index}": content for index, (_, content) in enumerate(job_files)},
            opts=opts,
        )

    def _workers(
        self,
        name: str,
        cfg: FacilityConfig,
        group: WorkerGroup,
        files: dict[str, str],
        pool_hash: str,
        cache: ServiceClient | None,
        provider: k8s.Provider,
        namespace: k8s.core.v1.Namespace,
        waits: list[pulumi.Resource],
        remote_waits: list[pulumi.Resource],
    ) -> k8s.apps.v1.Deployment:
        """One worker group's Deployment: on its nodes, or on its gateway's virtual node."""
        labels = worker_labels(group.name)
        config_hash = digest(pool_hash, files[f"execute-{group.name}.conf"])
        annotations: dict[str, str] = {CONFIG_HASH_ANNOTATION: config_hash}
        if group.gateway is None:
            pod, deps = worker_pod(cfg, group, cache), waits
        else:
            config_hash = digest(config_hash, files["offload.conf"])
            annotations = {CONFIG_HASH_ANNOTATION: config_hash, SLURM_FLAGS_ANNOTATION: group.gateway.slurm_flags()}
            pod, deps = offload_worker_pod(cfg, group), remote_waits
        return k8s.apps.v1.Deployment(
            f"{name}-worker-{group.name}",
            metadata={"name": worker_name(group.name), "namespace": CONDOR_NAMESPACE, "labels": labels},
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

    def _publish(self, name: str, cfg: FacilityConfig, opts: pulumi.ResourceOptions) -> None:
        """The central manager and the schedd at the facility's address, for offloaded workers
        only: the load balancers admit the gateways' source networks and nothing else."""
        sources = sorted({cidr for g in cfg.offload.gateways.values() for cidr in g.source_cidrs})
        for service, port in ((CONDOR_CM, RUNTIME.port), (CONDOR_SCHEDD, RUNTIME.schedd_port)):
            k8s.core.v1.Service(
                f"{name}-{service.removeprefix('af-condor-')}-public",
                metadata={
                    "name": f"{service}-public",
                    "namespace": CONDOR_NAMESPACE,
                    "labels": service_labels(service),
                },
                spec={
                    "type": "LoadBalancer",
                    "selector": service_labels(service),
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
        secret = k8s.core.v1.Secret(
            f"{name}-offload-token",
            metadata={"name": OFFLOAD_TOKEN, "namespace": CONDOR_NAMESPACE, "labels": PART_OF},
            type="Opaque",
            # The Job writes the token; `pulumi up` must not empty it again.
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(ignore_changes=["data", "stringData"])),
        )
        rbac = self._minter_rbac(name, opts)
        return k8s.batch.v1.Job(
            f"{name}-minter",
            metadata={"name": MINTER, "namespace": CONDOR_NAMESPACE, "labels": service_labels(MINTER)},
            spec={"backoffLimit": 3, "template": _minter_pod(cfg)},
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[*waits, secret, *rbac])),
        )

    def _minter_rbac(self, name: str, opts: pulumi.ResourceOptions) -> list[pulumi.Resource]:
        """The minter's account, allowed to patch the offload token's Secret and nothing else."""
        meta = {"name": MINTER, "namespace": CONDOR_NAMESPACE, "labels": service_labels(MINTER)}
        account = k8s.core.v1.ServiceAccount(f"{name}-minter-sa", metadata=meta, opts=opts)
        role = k8s.rbac.v1.Role(
            f"{name}-minter-role",
            metadata=meta,
            rules=[{"apiGroups": [""], "resources": ["secrets"], "resourceNames": [OFFLOAD_TOKEN], "verbs": ["patch"]}],
            opts=opts,
        )
        binding = k8s.rbac.v1.RoleBinding(
            f"{name}-minter-binding",
            metadata=meta,
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": MINTER},
            subjects=[{"kind": "ServiceAccount", "name": MINTER, "namespace": CONDOR_NAMESPACE}],
            opts=opts,
        )
        return [binding, role, account]

    def _certificate(
        self,
        name: str,
        service: str,
        provider: k8s.Provider,
        certs: Certificates,
        namespace: k8s.core.v1.Namespace,
    ) -> pulumi.Resource:
        """The service's TLS certificate from the internal CA: users' SciTokens travel over it."""
        return service_certificate(
            f"{name}-{service.removeprefix('af-condor-')}-tls",
            service,
            CONDOR_NAMESPACE,
            service_dns_names(service, CONDOR_NAMESPACE),
            pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[namespace, certs.internal_issuer]),
        )

    def _service(self, name: str, service: str, port: int, opts: pulumi.ResourceOptions) -> None:
        """The daemon's Service on its shared port, and the budget that keeps it up in drains."""
        labels = service_labels(service)
        k8s.core.v1.Service(
            f"{name}-svc",
            metadata={"name": service, "namespace": CONDOR_NAMESPACE, "labels": labels},
            spec={"selector": labels, "ports": [{"name": "condor", "port": port, "targetPort": "condor"}]},
            opts=opts,
        )
        # The pool's single central manager and schedd: a node drain must move them deliberately.
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata={"name": service, "namespace": CONDOR_NAMESPACE, "labels": labels},
            spec={"minAvailable": 1, "selector": {"matchLabels": labels}},
            opts=opts,
        )

    def _central_manager(
        self, name: str, cfg: FacilityConfig, config_hash: str, opts: pulumi.ResourceOptions, waits: list[Any]
    ) -> None:
        labels = service_labels(CONDOR_CM)
        claim = k8s.core.v1.PersistentVolumeClaim(
            f"{name}-cm-spool",
            metadata={"name": f"{CONDOR_CM}-spool", "namespace": CONDOR_NAMESPACE, "labels": labels},
            spec=_claim_spec(cfg, 1),
            opts=opts,
        )
        pod = service_pod(
            cfg,
            CONDOR_CM,
            cfg.condor.image("cm"),
            "central-manager.conf",
            resources("250m", "512Mi", "2", "2Gi"),
            COLLECTOR_PORT,
        )
        pod["volumes"].append({"name": "spool", "persistentVolumeClaim": {"claimName": f"{CONDOR_CM}-spool"}})
        k8s.apps.v1.Deployment(
            f"{name}-cm",
            metadata={"name": CONDOR_CM, "namespace": CONDOR_NAMESPACE, "labels": labels},
            spec={
                "replicas": 1,
                "strategy": {"type": "Recreate"},  # its spool volume attaches to one node at a time
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels, "annotations": {CONFIG_HASH_ANNOTATION: config_hash}},
                    "spec": pod,
                },
            },
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[*waits, claim])),
        )
        self._service(f"{name}-cm", CONDOR_CM, COLLECTOR_PORT, opts)

    def _schedd(
        self, name: str, cfg: FacilityConfig, config_hash: str, opts: pulumi.ResourceOptions, waits: list[Any]
    ) -> None:
        labels = service_labels(CONDOR_SCHEDD)
        pod = service_pod(
            cfg,
            CONDOR_SCHEDD,
            cfg.condor.image("submit"),
            "submit.conf",
            resources("500m", "1Gi", "4", "8Gi"),
            RUNTIME.schedd_port,
        )
        k8s.apps.v1.StatefulSet(
            f"{name}-schedd",
            metadata={"name": CONDOR_SCHEDD, "namespace": CONDOR_NAMESPACE, "labels": labels},
            spec={
                "serviceName": CONDOR_SCHEDD,
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels, "annotations": {CONFIG_HASH_ANNOTATION: config_hash}},
                    "spec": pod,
                },
                "volumeClaimTemplates": [
                    {"metadata": {"name": "spool"}, "spec": _claim_spec(cfg, cfg.condor.spool_gib)}
                ],
            },
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=waits)),
        )
        self._service(f"{name}-schedd", CONDOR_SCHEDD, RUNTIME.schedd_port, opts)


def _minter_pod(cfg: FacilityConfig) -> dict[str, Any]:
    """The minter Job's pod: an init container mints the token with the signing key, the main
    container (without the key) stores it in the Secret."""
    labels = service_labels(MINTER)
    token_dir = "/var/run/af-token"
    store_command = [
        "python3",
        f"/etc/af/{STORE_SCRIPT}",
        f"{token_dir}/token",
        CONDOR_NAMESPACE,
        OFFLOAD_TOKEN,
        "token",
    ]
    return {
        "metadata": {"labels": labels},
        "spec": {
            "serviceAccountName": MINTER,
            "restartPolicy": "OnFailure",
            "nodeSelector": dict(SYSTEM_NODES),
            "initContainers": [token_init_container(cfg, daemon_identity(cfg), OFFLOAD_AUTHZ, token_dir)],
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
                        {"name": "token", "mountPath": token_dir, "readOnly": True},
                    ],
                }
            ],
            "volumes": [
                *[v for v in daemon_volumes() if v["name"] in ("config", "pool-key")],
                {"name": "token", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
            ],
        },
    }


def _claim_spec(cfg: FacilityConfig, gib: int) -> dict[str, Any]:
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": f"{gib}Gi"}}}
    if cfg.condor.storage_class:
        spec["storageClassName"] = cfg.condor.storage_class
    return spec
