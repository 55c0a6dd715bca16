"""Names the layers share: namespaces, Services and ports, node labels and taints, paths inside
pods and ClassAd attributes. A layer learns another layer's name here, never from that layer's
modules, so the layers stay apart and a name is spelled once.

Names only: no logic beyond spelling a name from its parts, and no import of any layer."""

from __future__ import annotations

from typing import Literal

from autoscaler.condor import GROUP_ATTRIBUTE, IN_CLUSTER_ATTRIBUTE, POD_ATTRIBUTE
from autoscaler.kube import GROUP_LABEL

NodeRole = Literal["system", "interactive", "batch", "cache", "dask"]
"""What a node group hosts: system services, notebooks, batch workers, caches, Dask workers."""

# --- Namespaces ---------------------------------------------------------------------------------
HUB_NAMESPACE = "jupyterhub"
CVMFS_NAMESPACE = "cvmfs"
CACHE_NAMESPACE = "xcache"
CONDOR_NAMESPACE = "condor"
MONITORING_NAMESPACE = "monitoring"
CERT_MANAGER_NAMESPACE = "cert-manager"
GPU_NAMESPACE = "nvidia-device-plugin"
OFFLOAD_NAMESPACE = "interlink"
DASK_NAMESPACE = "dask"
NODE_LABELLER_NAMESPACE = "af-node-labeller"
"""Mode `magnum`: where the node labeller runs."""

# --- Node labels and taints ---------------------------------------------------------------------
LABEL_PREFIX = "af.infn.it"
NODE_GROUP_LABEL = f"{LABEL_PREFIX}/node-group"
"""Every node's group name."""
GPU_MODEL_LABEL = f"{LABEL_PREFIX}/gpu-model"
GPU_COUNT_LABEL = f"{LABEL_PREFIX}/gpu-count"
WORKER_GROUP_LABEL = GROUP_LABEL
"""Pod label naming a worker's group (the autoscaler selects a group's pods by it)."""
DASK_USER_LABEL = f"{LABEL_PREFIX}/dask-user"
"""Label of a Dask cluster's pods naming its owner (the monitoring counts per user)."""
CONFIG_HASH_ANNOTATION = f"{LABEL_PREFIX}/config-sha256"
"""Pod template annotation: a digest of the config a pod runs with, so a change rolls it."""


def role_label(role: NodeRole) -> str:
    """The label a node carries (value `true`) when its group has `role`."""
    return f"{LABEL_PREFIX}/role-{role}"


def role_nodes(role: NodeRole) -> dict[str, str]:
    """The node selector of the nodes whose groups have `role`."""
    return {role_label(role): "true"}


def group_nodes(group: str) -> dict[str, str]:
    """The node selector of one node group's nodes."""
    return {NODE_GROUP_LABEL: group}


SYSTEM_NODES = role_nodes("system")
"""Where the facility's own services run."""
INTERACTIVE_NODES = role_nodes("interactive")
"""Where notebooks run."""
CONTROL_PLANE_TAINT = "node-role.kubernetes.io/control-plane:NoSchedule"
CONTROL_PLANE_GROUP = "control-plane"
"""The control plane's group name: its VMs', its nodes' `af.infn.it/node-group` label when it hosts
workloads, and its worker group's when it has role `batch`. No node group may take it."""

GPU_TAINT_KEY = "nvidia.com/gpu"
"""GPU nodes are tainted `nvidia.com/gpu=present:NoSchedule`: only pods asking for GPUs go there."""
GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
GPU_NODES = {GPU_PRESENT_LABEL: "true"}
GPU_TOLERATION = {"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}
DEVICE_PLUGIN_CONFIG_LABEL = "nvidia.com/device-plugin.config"
"""The device plugin's config manager picks a node's entry (time-slicing, MIG) by this label."""

VIRTUAL_NODE_TAINT = "virtual-node.interlink/no-schedule"
"""The taint interLink's virtual kubelet puts on its node: only pods that tolerate it go there."""
GATEWAY_TAINT_KEY = f"{LABEL_PREFIX}/offload"
"""Our taint on a gateway's node (value: the gateway): only that gateway's workers go there."""
GATEWAY_LABEL = f"{LABEL_PREFIX}/offload-gateway"


def virtual_node(gateway: str) -> str:
    """A gateway's virtual node; also its kubelet's Deployment, ServiceAccount and ClusterRole."""
    return f"af-vk-{gateway}"


SLURM_FLAGS_ANNOTATION = "slurm-job.vk.io/flags"
"""Pod annotation the Slurm plugin adds to the `sbatch` command line."""

# --- Services and ports -------------------------------------------------------------------------
HUB_METRICS = f"hub.{HUB_NAMESPACE}.svc.cluster.local:8081"
"""z2jh's hub Service; the hub serves /hub/metrics to Prometheus without a token (in-cluster)."""

CACHE_SERVICE = "af-xcache"
CACHE_PORT = 1094
CACHE_HTTPS_PORT = 8443
CACHE_METRICS_PORT = 9102
"""The cache exporter sidecar's /metrics (container port `metrics`)."""
NODE_CACHE_SERVICE = "af-xcache-node"
"""The node-level caches (a DaemonSet in the cache's namespace) and their Service, whose traffic stays on the node
(`internalTrafficPolicy: Local`): a pod reaches its own node's cache by this one name, on the cache's ports."""

CONDOR_CM = "af-condor-cm"
CONDOR_SCHEDD = "af-condor-schedd"
COLLECTOR_PORT, SCHEDD_PORT = 9618, 9619
"""Shared ports of the central manager and of the schedd (each published, with offloading)."""
AUTOSCALER = "af-autoscaler"
"""The autoscaler's Deployment, ServiceAccount and metrics Service, in the pool's namespace."""

NODE_LABELLER = "af-node-labeller"
"""Mode `magnum`: the node labeller's Deployment, ServiceAccount and ClusterRole."""
SQUID_SERVICE = "af-squid"
SQUID_PORT = 3128


# --- Pods, as label selectors (what network policies and monitoring select) ---------------------
def app(name: str) -> dict[str, str]:
    """The label selecting a workload's pods: every workload of ours carries its name in it."""
    return {"app.kubernetes.io/name": name}


HUB_PODS = {"app": "jupyterhub", "component": "hub"}
"""z2jh's hub pod (the chart's `jupyterhub.matchLabels`)."""
PROXY_PODS = {"app": "jupyterhub", "component": "proxy"}
"""z2jh's configurable-http-proxy pod."""
NOTEBOOK_PODS = {"app": "jupyterhub", "component": "singleuser-server"}
"""Every user's notebook server (KubeSpawner's labels under z2jh)."""
HUB_PORT, PROXY_HTTP_PORT, PROXY_API_PORT, NOTEBOOK_PORT = 8081, 8000, 8001, 8888
ACME_SOLVER_PODS = {"acme.cert-manager.io/http01-solver": "true"}
"""cert-manager's HTTP-01 solver pods, in the namespace of the certificate they solve for."""
ACME_SOLVER_PORT = 8089
PROMETHEUS_PODS = {"app.kubernetes.io/name": "prometheus"}
"""kube-prometheus-stack's Prometheus (the operator's StatefulSet)."""
CONDOR_WORKER = "af-condor-worker"
"""Every worker pod's `app.kubernetes.io/name`; each group's Deployment is `<this>-<group>`."""
DASK_COMPONENT = "app.kubernetes.io/component"
"""How the dask-gateway chart and its Kubernetes backend tell their pods apart."""
DASK_GATEWAY_PODS = {DASK_COMPONENT: "gateway"}
"""The gateway's API server (chart `templates/gateway/deployment.yaml`), port 8000."""
DASK_TRAEFIK_PODS = {DASK_COMPONENT: "traefik"}
"""The gateway's proxy: HTTP and Dask's TLS on its `web` port 8000 (the Service's port 80)."""
DASK_CONTROLLER_PODS = {DASK_COMPONENT: "controller"}
DASK_SCHEDULER_PODS = {DASK_COMPONENT: "dask-scheduler"}
"""Clusters' schedulers (the backend's `make_pod`): 8786 Dask, 8787 dashboard, 8788 the gateway's API."""
DASK_WORKER_PODS = {DASK_COMPONENT: "dask-worker"}
"""Clusters' workers: 8787 dashboard; Dask's own port is ephemeral."""
DASK_API_PORT, DASK_PROXY_PORT = 8000, 8000
DASK_SCHEDULER_PORT, DASK_DASHBOARD_PORT, DASK_SCHEDULER_API_PORT = 8786, 8787, 8788
METADATA_CIDR = "169.254.169.254/32"
"""OpenStack's metadata service: it serves every VM's user-data (with the cluster's join token)
to anything on the VM, so no pod that runs users' code may reach it."""

# --- TLS and files inside pods ------------------------------------------------------------------
INTERNAL_ISSUER = "af-internal-ca"
"""ClusterIssuer signing in-cluster service certificates."""
TRUST_CONFIGMAP = "af-ca-certs"
"""ConfigMap, in each consumer namespace, with the internal CA as an OpenSSL hashed directory."""
CA_CERT_DIR = "/etc/af/ca-certs"
"""Where consumers mount it; `X509_CERT_DIR` for XrdCl."""
BEARER_TOKEN_FILE = "/tmp/af-bearer-token"
"""The user's IAM access token in notebooks (WLCG bearer-token discovery), kept fresh by the hub."""
CVMFS_CLAIM = "cvmfs"
"""Name of the /cvmfs claim in each consumer namespace."""
CVMFS_MOUNT = "/cvmfs"

# --- ClassAd attributes (the autoscaler's runtime package defines those it reads) -------------
WORKER_GROUP_ATTRIBUTE = GROUP_ATTRIBUTE
"""Machine attribute naming a slot's worker group (the autoscaler groups slots by it)."""
WORKER_POD_ATTRIBUTE = POD_ATTRIBUTE
"""Machine attribute with the worker's pod name (from the `POD_NAME` environment variable)."""
WORKER_IN_CLUSTER_ATTRIBUTE = IN_CLUSTER_ATTRIBUTE
"""Machine attribute: the slot runs in the cluster (False on offload gateways)."""
PREFERENCE_ATTRIBUTE = "AfWorkerGroupPreference"
"""Machine attribute with the group's preference: lower is tried first."""
GATEWAY_ATTRIBUTE = "AfOffloadGateway"
"""Machine attribute of offloaded slots: the gateway they run behind."""
WANT_OFFLOAD = "WantOffload"
"""The job attribute a job opts in to offloading with (`+WantOffload = True` at submit)."""
