"""Workloads: sized, pinned, unprivileged pods; GPUs kept for GPU work; disruption budgets
for the services users depend on; least-privilege RBAC."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from components.infra.nodes import TAINTS_METADATA
from components.names import GPU_TAINT_KEY

from .facts import Facts
from .walk import (
    GPU_RESOURCE,
    HELM_RELEASE,
    INSTANCE,
    MAGNUM_CLUSTER,
    MAGNUM_NODE_GROUP,
    Finding,
    Resource,
    chart_name,
    cloud_config,
    containers,
    dig,
    helm_values,
    k8s_name,
    kind,
    label,
    mappings,
    opaque,
    pod_labels,
    pod_spec,
    written_file,
    yaml_mapping,
)

DAEMON_SET = "kubernetes:apps/v1:DaemonSet"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
RBAC = "kubernetes:rbac.authorization.k8s.io/v1"
ROLES = {f"{RBAC}:Role", f"{RBAC}:ClusterRole"}
CLUSTER_WIDE = {f"{RBAC}:ClusterRole", f"{RBAC}:ClusterRoleBinding"}
K3S_CONFIG = "/etc/rancher/k3s/config.yaml"
_EXACT_VERSION = re.compile(r"^v?\d+(\.\d+){0,2}([-+][0-9A-Za-z.-]+)?$")


def container_resources(resource: Resource, facts: Facts) -> list[str]:
    """Every container, init containers too, requests and limits CPU and memory: the
    scheduler places it by its requests and the node survives its limits."""
    pod = pod_spec(resource)
    if pod is None:
        return []
    found = []
    for what, container in containers(pod):
        wanted = container.get("resources")
        if opaque(wanted):
            continue
        missing = [
            f"{part}.{r}" for part in ("requests", "limits") for r in ("cpu", "memory") if not dig(wanted, part, r)
        ]
        if missing:
            found.append(
                f"{label(resource)}: {what} has no {', '.join(missing)}: set resources.requests and "
                "resources.limits for cpu and memory (components/common/kube.py resources())"
            )
    return found


def image_problem(reference: Any) -> str | None:
    """Why an image reference is not pinned, or None when it is (a tag other than `latest`,
    or a digest)."""
    if not isinstance(reference, str) or opaque(reference):
        return None
    name, _, digest = reference.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.partition(":")[2]
    if tag == "latest":
        return "is tagged latest"
    if not tag and not digest:
        return "has no tag"
    return None


def pinned_images(resource: Resource, facts: Facts) -> list[str]:
    """Every image is pinned by a version tag or digest, in manifests and in Helm values."""
    found = []
    pod = pod_spec(resource)
    for what, container in containers(pod) if pod is not None else ():
        problem = image_problem(container.get("image"))
        if problem:
            found.append(f"{label(resource)}: {what}: image {container.get('image')} {problem}: pin a version tag")
    values = helm_values(resource)
    for path, mapping in mappings(values) if values is not None else ():
        image = mapping.get("image")
        if isinstance(image, str):
            problem = image_problem(image)
        elif isinstance(image, Mapping) and "tag" in image and (image.get("name") or image.get("repository")):
            tag = image.get("tag")
            problem = "is tagged latest" if tag == "latest" else None if tag and not opaque(tag) else "has no tag"
        else:
            continue
        if problem:
            where = ".".join((*path, "image"))
            found.append(f"{label(resource)}: values {where} {problem}: pin a version tag")
    return found


def pinned_charts(resource: Resource, facts: Facts) -> list[str]:
    """Every Helm release names an exact chart version: an unpinned chart changes under a
    rebuilt facility."""
    if resource.type != HELM_RELEASE:
        return []
    version = resource.props.get("version")
    if isinstance(version, str) and (opaque(version) or _EXACT_VERSION.match(version)):
        return []
    return [
        f"{label(resource)} (chart {resource.props.get('chart')}) has chart version {version!r}: "
        "set version to one exact release (for example 4.2.0)"
    ]


BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
        "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
    }
)  # fmt: skip
"""The capabilities Pod Security `baseline` lets a container add (Kubernetes' Pod Security Standards)."""
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)  # fmt: skip
"""The sysctls `baseline` allows (the standards' safe set up to v1.29; a later one only widens it)."""
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
NAMESPACE = "kubernetes:core/v1:Namespace"
ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"


def _profile(context: Any, key: str) -> Any:
    return dig(context, key, "type") if isinstance(context, Mapping) else None


def needs_privileged(pod: Mapping[str, Any]) -> list[str]:
    """What of `pod` only Pod Security `privileged` admits: the `baseline` level's checks (host namespaces,
    privileged containers, capabilities beyond its set, hostPath volumes, host ports, unconfined seccomp or
    AppArmor, custom SELinux users, roles and types, unmasked /proc outside a user namespace, unsafe sysctls,
    Windows host processes)."""
    found = [f"{key} is true" for key in ("hostNetwork", "hostPID", "hostIPC") if pod.get(key) is True]
    found += [
        f"volume {v.get('name')} is a hostPath ({dig(v, 'hostPath', 'path')})"
        for v in pod.get("volumes") or []
        if isinstance(v, Mapping) and "hostPath" in v
    ]
    pod_context = pod.get("securityContext") or {}
    contexts = [("the pod", pod_context)]
    for sysctl in dig(pod_context, "sysctls") or []:
        name = dig(sysctl, "name")
        if name not in SAFE_SYSCTLS:
            found.append(f"the pod sets sysctl {name}")
    for what, container in containers(pod):
        context = container.get("securityContext") or {}
        contexts.append((what, context))
        if dig(context, "privileged") is True:
            found.append(f"{what} is privileged")
        added = dig(context, "capabilities", "add") or []
        for capability in sorted({str(c).upper().removeprefix("CAP_") for c in added} - BASELINE_CAPABILITIES):
            found.append(f"{what} adds capability {capability}")
        if dig(context, "procMount") not in (None, "Default") and pod.get("hostUsers") is not False:
            # An unmasked /proc is `baseline` in a user namespace of its own (Kubernetes 1.33 on).
            found.append(f"{what} has procMount {dig(context, 'procMount')}")
        for port in container.get("ports") or []:
            if isinstance(port, Mapping) and port.get("hostPort"):
                found.append(f"{what} uses host port {port['hostPort']}")
    for what, context in contexts:
        if _profile(context, "seccompProfile") == "Unconfined":
            found.append(f"{what} has an Unconfined seccomp profile")
        if _profile(context, "appArmorProfile") == "Unconfined":
            found.append(f"{what} has an Unconfined AppArmor profile")
        selinux = dig(context, "seLinuxOptions") or {}
        if selinux.get("user") or selinux.get("role") or selinux.get("type", "") not in SELINUX_TYPES:
            found.append(f"{what} sets SELinux options {dict(selinux)}")
        if dig(context, "windowsOptions", "hostProcess") is True:
            found.append(f"{what} is a Windows host process")
    return found


def privileged_workloads(resource: Resource, facts: Facts) -> list[str]:
    """No pod needs Pod Security `privileged` (`needs_privileged`) outside the allow-list (`privilegedAllowList`:
    node agents such as the CVMFS CSI node plugin), and an allow-listed one only in a namespace that enforces
    `privileged` (`podSecurity`); the facility's Namespaces carry the levels `podSecurity` declares, `privileged`
    only where an allow-listed node agent runs."""
    if resource.type == NAMESPACE:
        return _namespace_level(resource, facts)
    pod = pod_spec(resource)
    if pod is None:
        return []
    where, name = label(resource), k8s_name(resource)
    found = needs_privileged(pod)
    if not found:
        return []
    namespace = name.split("/", 1)[0]
    level = facts.pod_security.get(namespace)
    if name in facts.privileged_allow:
        if level in (None, "privileged"):
            return []
        return [
            f"{where}: {message}: its namespace enforces Pod Security {level}, whose admission refuses it: run it "
            f"in a namespace that enforces privileged (af:policy.podSecurity)"
            for message in found
        ]
    return [
        f"{where}: {message}: drop it, or list {name} in the pack's privilegedAllowList if it is a node agent"
        for message in found
    ]


def _namespace_level(resource: Resource, facts: Facts) -> list[str]:
    name = dig(resource.props, "metadata", "name")
    labels = dig(resource.props, "metadata", "labels") or {}
    if not isinstance(name, str) or opaque(name) or opaque(labels):
        return []
    declared, enforced = facts.pod_security.get(name), labels.get(ENFORCE_LABEL)
    found = []
    if declared is not None and enforced != declared:
        found.append(
            f"{label(resource)} enforces Pod Security {enforced or 'nothing'} ({ENFORCE_LABEL}), the stack declares "
            f"{declared} (af:policy.podSecurity): label it {declared}"
        )
    agents = {entry.split("/", 1)[0] for entry in facts.privileged_allow}
    if enforced == "privileged" and name not in agents:
        found.append(
            f"{label(resource)} enforces Pod Security privileged but runs no node agent of the pack's "
            "privilegedAllowList: enforce baseline or restricted"
        )
    return found


def _tolerates_gpu(tolerations: Any) -> bool:
    """A toleration that lets a pod onto a node tainted nvidia.com/gpu:NoSchedule."""
    for toleration in tolerations if isinstance(tolerations, Sequence) and not isinstance(tolerations, str) else ():
        if not isinstance(toleration, Mapping) or toleration.get("effect") not in (None, "", "NoSchedule"):
            continue
        key, operator = toleration.get("key"), toleration.get("operator", "Equal")
        if key == GPU_TAINT_KEY or (not key and operator == "Exists"):
            return True
    return False


def _positive(quantity: Any) -> bool:
    try:
        return float(str(quantity)) > 0
    except ValueError:
        return False


def gpu_toleration_needs_gpu_request(resource: Resource, facts: Facts) -> list[str]:
    """Only pods that request GPUs tolerate the GPU taint: a container that requests none sees
    every GPU of the node. DaemonSets (node agents: CSI node plugins, the device plugin) are
    exempt; KubeSpawner profiles in the hub's values are checked like pods."""
    found = []
    pod = pod_spec(resource)
    if pod is not None and resource.type != DAEMON_SET and _tolerates_gpu(pod.get("tolerations")):
        requested = any(
            _positive(dig(c, "resources", part, GPU_RESOURCE))
            for _, c in containers(pod)
            for part in ("limits", "requests")
        )
        if not requested:
            found.append(
                f"{label(resource)} tolerates the {GPU_TAINT_KEY} taint but requests no {GPU_RESOURCE}: "
                "drop the toleration, or request the GPUs it uses in resources.limits"
            )
    values = helm_values(resource)
    if values is not None and chart_name(resource) == "jupyterhub":
        if _tolerates_gpu(dig(values, "singleuser", "extraTolerations")):
            found.append(
                f"{label(resource)}: values singleuser.extraTolerations lets every notebook onto GPU nodes: "
                "give the toleration to the GPU profiles only"
            )
        for path, override in mappings(values):
            if path[-1:] != ("kubespawner_override",) or not _tolerates_gpu(override.get("tolerations")):
                continue
            if not _positive(dig(override, "extra_resource_limits", GPU_RESOURCE)):
                found.append(
                    f"{label(resource)}: values {'.'.join(path)} tolerates the {GPU_TAINT_KEY} taint without "
                    f"extra_resource_limits {GPU_RESOURCE}: only GPU profiles may tolerate it"
                )
    return found


def _gpu_taint(taints: Any) -> bool:
    """`key=value:Effect` strings (k3s `node-taint`, the instance metadata) with the GPU taint."""
    items = taints.split(",") if isinstance(taints, str) else taints if isinstance(taints, list) else []
    return any(
        isinstance(t, str) and t.split("=", 1)[0].split(":", 1)[0] == GPU_TAINT_KEY and t.endswith(":NoSchedule")
        for t in items
    )


def gpu_nodes_tainted(resource: Resource, facts: Facts) -> list[str]:
    """Nodes with GPUs register with the nvidia.com/gpu:NoSchedule taint, so only pods that
    ask for GPUs land there. Read from the instance's declared taints (metadata) and, where
    the user-data is readable, from the k3s config it installs."""
    props = resource.props
    flavor_key = {INSTANCE: "flavorName", MAGNUM_NODE_GROUP: "flavorId", MAGNUM_CLUSTER: "flavor"}.get(resource.type)
    flavor_name = props.get(flavor_key) if flavor_key else None
    if not isinstance(flavor_name, str) or opaque(flavor_name):
        return []
    flavor = facts.flavors.get(flavor_name)
    if flavor is None:
        return [
            f"{kind(resource)} {resource.name}: flavor {flavor_name} is not in the pack's flavors: pass the pack "
            "config afctl preview writes (--policy-pack-config build/<stack>/policy-config.json)"
        ]
    if not flavor.gpus:
        return []
    if resource.type != INSTANCE:
        return [
            f"{kind(resource)} {resource.name} has {flavor.gpus} GPUs per node ({flavor_name}) and Magnum cannot "
            f"taint its nodes {GPU_TAINT_KEY}: run GPU node groups in cluster mode openstack"
        ]
    found = []
    if not _gpu_taint(dig(props, "metadata", TAINTS_METADATA)):
        found.append(
            f"instance {resource.name} has {flavor.gpus} GPUs ({flavor_name}) but does not register with the "
            f"{GPU_TAINT_KEY}=present:NoSchedule taint (metadata {TAINTS_METADATA}): add it to the node group's taints"
        )
    user_data = props.get("userData")
    doc = cloud_config(user_data) if isinstance(user_data, str) else None
    k3s = written_file(doc, K3S_CONFIG) if doc is not None else None
    if k3s is not None and not _gpu_taint(dig(yaml_mapping(k3s), "node-taint")):
        found.append(
            f"instance {resource.name}: the k3s config its user-data installs has no {GPU_TAINT_KEY}:NoSchedule "
            "node-taint: add it to the node group's taints"
        )
    return found


def rbac_namespaced(resource: Resource, facts: Facts) -> list[str]:
    """RBAC stays in a namespace: Roles and RoleBindings, never ClusterRoles or bindings to one,
    unless the ClusterRole is allow-listed (`clusterRbacAllowList`: a node agent's, which must
    see nodes)."""
    if resource.type in CLUSTER_WIDE:
        role = dig(resource.props, "roleRef", "name") if resource.type.endswith("Binding") else None
        if (role or dig(resource.props, "metadata", "name")) in facts.cluster_rbac_allow:
            return []
        return [f"{label(resource)} grants rights in every namespace: use a Role and a RoleBinding in the namespace"]
    role_ref = dig(resource.props, "roleRef") or {}
    if (
        resource.type == f"{RBAC}:RoleBinding"
        and role_ref.get("kind") == "ClusterRole"
        and role_ref.get("name") not in facts.cluster_rbac_allow
    ):
        return [
            f"{label(resource)} binds ClusterRole {dig(resource.props, 'roleRef', 'name')}: bind a Role of the "
            "namespace that grants only what the workload does"
        ]
    return []


def rbac_no_wildcards(resource: Resource, facts: Facts) -> list[str]:
    """No RBAC rule grants `*` verbs, resources or API groups."""
    if resource.type not in ROLES:
        return []
    found = []
    for index, rule in enumerate(resource.props.get("rules") or []):
        for field in ("verbs", "resources", "apiGroups"):
            if "*" in (dig(rule, field) or []):
                found.append(f"{label(resource)}: rules[{index}].{field} has '*': list the exact {field} it needs")
    return found


def _covered(labels: Mapping[str, Any], namespace: str, budgets: list[tuple[str, Mapping[str, Any]]]) -> bool:
    return any(
        ns == namespace and selector and all(labels.get(k) == v for k, v in selector.items())
        for ns, selector in budgets
    )


def disruption_budgets(resources: Sequence[Resource], facts: Facts) -> list[Finding]:
    """The hub, the cache and the HTCondor central manager (and schedd) have a
    PodDisruptionBudget: a node drain then waits instead of taking them down."""
    budgets = [
        (str(dig(r.props, "metadata", "namespace") or "default"), dig(r.props, "spec", "selector", "matchLabels") or {})
        for r in resources
        if r.type == PDB
    ]
    found = []
    for resource in resources:
        if pod_spec(resource) is not None and k8s_name(resource) in facts.critical_workloads:
            namespace = k8s_name(resource).split("/", 1)[0]
            if not _covered(pod_labels(resource), namespace, budgets):
                found.append(
                    Finding(
                        f"{label(resource)} has no PodDisruptionBudget selecting its pods: add one "
                        "(minAvailable 1 for a single replica, maxUnavailable 1 for a set)",
                        resource.urn,
                    )
                )
        values = helm_values(resource)
        if values is not None and chart_name(resource) == "jupyterhub":
            for path in (("hub", "pdb"), ("proxy", "chp", "pdb")):
                if dig(values, *path, "enabled") is not True:
                    found.append(
                        Finding(
                            f"{label(resource)}: values {'.'.join(path)}.enabled is not true, so a node drain can "
                            "evict the hub's only pod unannounced: enable the chart's PodDisruptionBudget",
                            resource.urn,
                        )
                    )
    return found
