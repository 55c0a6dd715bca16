"""zero-to-jupyterhub (chart `jupyterhub`) 4.2.0: its defaults for the keys we set or that place
pods, the workloads it renders, the user pods the hub creates, and its NetworkPolicies.

Sources (repository jupyterhub/zero-to-jupyterhub-k8s unless said otherwise). The search index
holds this repository's files at assorted commits and cannot map a tag to a commit, so each rule
names the text it was read from:

- [values-3.0.2] `helm show values jupyterhub/jupyterhub` of chart 3.0.2, quoted whole in a public
  README (index id 33551393049). Defaults of `hub`, `proxy.chp`, `singleuser`, `scheduling`,
  `prePuller`, `cull`, `ingress`. The 4.x changelog (docs/source/changelog.md, index id
  637020316 for 4.0.0; commit 0202b918 for 4.1-4.4) lists no change to the keys used here
  except "Security context hardening #3464" (4.0.0), whose new securityContext defaults could
  not be read: security contexts below are 3.0.2's and marked so.
- [security-doc] docs/source/administrator/security.md at commit c2d0f35 (4.x text: it documents
  `subdomain_host`, a 4.0 feature): the four NetworkPolicies, their always-allowed flows, the
  access labels, the egressAllowRules defaults, and the privileged iptables initContainer added
  to user pods while `singleuser.cloudMetadata.blockWithIptables` is true (the default).
- [netpol-helper] jupyterhub/templates/_helpers-netpol.tpl, 3.x/4.x text (index id 1177136264):
  `jupyterhub.networkPolicy.renderEgressRules`.
- [labels-helper] jupyterhub/templates/_helpers.tpl 4.x text (index id 39265151728): legacy
  labels (component, app, release) select; pods carry legacy and modern
  (`app.kubernetes.io/{component,name,instance}`) labels (4.0.0 changelog #3404).
- [kubespawner] jupyterhub-kubespawner 7.0.0 (the version z2jh 4.0.0 ships, changelog), installed
  here from PyPI: `kubespawner.objects.make_pod` builds the user pod, `_apply_overrides` merges
  dict-valued profile overrides into the configured value (spawner.py, `_apply_overrides`).
- [config-4x] jupyterhub/files/hub/jupyterhub_config.py, 4.x text (it imports kubernetes_asyncio;
  index id 807635133): `singleuser.*` become KubeSpawner traits (none of them a security context
  besides `allowPrivilegeEscalation`), then `hub.config` is loaded last, `c[app].update(cfg)`: so
  `hub.config.KubeSpawner.container_security_context`/`pod_security_context` reach `make_pod`.
- [issue-14] project issue 14 items 1-2: the chart's rendered policies with our values (rendered
  with the pinned chart by the lead).
"""

from __future__ import annotations

import copy
from typing import Any

from .helm import Container, StandIn, Values, coalesce, get, resources_of, unread

CHART = "jupyterhub"
VERSION = "4.2.0"
METADATA_IP_DEFAULT = "169.254.169.254"
PRIVATE = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]

_HUB_EGRESS_ALLOW = {
    # [values-3.0.2] hub.networkPolicy.egressAllowRules; [security-doc] "all egress allow rules are
    # enabled for hub, proxy.chp, and proxy.traefik".
    "cloudMetadataServer": True,
    "dnsPortsCloudMetadataServer": True,
    "dnsPortsKubeSystemNamespace": True,
    "dnsPortsPrivateIPs": True,
    "nonPrivateIPs": True,
    "privateIPs": True,
}
_NOBODY = {"runAsUser": 65534, "runAsGroup": 65534, "allowPrivilegeEscalation": False}  # [values-3.0.2]


def _netpol(allowed_ingress_ports: list[str]) -> Values:
    return {
        "enabled": True,  # [values-3.0.2] and [security-doc] "NetworkPolicy resources are created by default"
        "ingress": [],
        "egress": [],
        "egressAllowRules": dict(_HUB_EGRESS_ALLOW),
        "interNamespaceAccessLabels": "ignore",
        "allowedIngressPorts": list(allowed_ingress_ports),
    }


DEFAULTS: Values = {
    "custom": {},
    "hub": {
        "config": {"JupyterHub": {"admin_access": True, "authenticator_class": "dummy"}},
        "nodeSelector": {},
        "tolerations": [],
        "db": {"type": "sqlite-pvc", "pvc": {"accessModes": ["ReadWriteOnce"], "storage": "1Gi"}},
        "labels": {},
        "extraConfig": {},
        "extraEnv": {},
        "resources": {},
        "podSecurityContext": {"fsGroup": 1000},  # [values-3.0.2]; hardened in 4.0.0 (#3464), unread
        "containerSecurityContext": {"runAsUser": 1000, "runAsGroup": 1000, "allowPrivilegeEscalation": False},
        "pdb": {"enabled": False, "maxUnavailable": None, "minAvailable": 1},
        "networkPolicy": _netpol([]),
    },
    "proxy": {
        "service": {"type": "LoadBalancer"},
        "https": {"enabled": False, "type": "letsencrypt"},
        "chp": {
            "containerSecurityContext": dict(_NOBODY),
            "resources": {},
            "nodeSelector": {},
            "tolerations": [],
            "networkPolicy": _netpol(["http", "https"]),
            "pdb": {"enabled": False, "maxUnavailable": None, "minAvailable": 1},
        },
        "traefik": {"networkPolicy": _netpol(["http", "https"])},
    },
    "singleuser": {
        "extraTolerations": [],
        "nodeSelector": {},
        "cloudMetadata": {"blockWithIptables": True, "ip": METADATA_IP_DEFAULT},
        "networkPolicy": {
            "enabled": True,
            "ingress": [],
            "egress": [],
            # [values-3.0.2]; [security-doc]: "singleuser...cloudMetadataServer and ...privateIPs
            # default to false".
            "egressAllowRules": {
                "cloudMetadataServer": False,
                "dnsPortsCloudMetadataServer": True,
                "dnsPortsKubeSystemNamespace": True,
                "dnsPortsPrivateIPs": True,
                "nonPrivateIPs": True,
                "privateIPs": False,
            },
            "interNamespaceAccessLabels": "ignore",
            "allowedIngressPorts": [],
        },
        "extraLabels": {"hub.jupyter.org/network-access-hub": "true"},
        "extraEnv": {},
        "extraFiles": {},
        "allowPrivilegeEscalation": False,
        "uid": 1000,
        "fsGid": 100,
        "storage": {
            "type": "dynamic",
            "extraVolumes": [],
            "extraVolumeMounts": [],
            "capacity": "10Gi",
            "homeMountPath": "/home/jovyan",
        },
        "image": {"name": "jupyterhub/k8s-singleuser-sample", "tag": VERSION},
        "cpu": {"limit": None, "guarantee": None},
        "memory": {"limit": None, "guarantee": "1G"},
        "extraResource": {"limits": {}, "guarantees": {}},
        "cmd": "jupyterhub-singleuser",
        "defaultUrl": None,
    },
    "scheduling": {
        "userScheduler": {
            "enabled": True,
            "replicas": 2,
            "containerSecurityContext": dict(_NOBODY),
            "nodeSelector": {},
            "tolerations": [],
            "pdb": {"enabled": True, "maxUnavailable": 1, "minAvailable": None},
            "resources": {},
        },
        "podPriority": {"enabled": False},
        "userPlaceholder": {"enabled": True, "replicas": 0, "containerSecurityContext": dict(_NOBODY), "resources": {}},
        "corePods": {
            "tolerations": [
                {"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "core", "effect": "NoSchedule"},
                {"key": "hub.jupyter.org_dedicated", "operator": "Equal", "value": "core", "effect": "NoSchedule"},
            ],
            "nodeAffinity": {"matchNodePurpose": "prefer"},
        },
        "userPods": {
            "tolerations": [
                {"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"},
                {"key": "hub.jupyter.org_dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"},
            ],
            "nodeAffinity": {"matchNodePurpose": "prefer"},
        },
    },
    "prePuller": {
        "resources": {},
        "containerSecurityContext": dict(_NOBODY),
        "extraTolerations": [],
        "hook": {
            "enabled": True,
            "containerSecurityContext": dict(_NOBODY),
            "nodeSelector": {},
            "tolerations": [],
            "resources": {},
        },
        "continuous": {"enabled": True},
        "pause": {"containerSecurityContext": dict(_NOBODY)},
    },
    "ingress": {"enabled": False, "annotations": {}, "ingressClassName": None, "hosts": [], "tls": []},
    "cull": {"enabled": True, "users": False, "timeout": 3600, "every": 600},
}

READS: set[str] = {
    # Keys the templates (or jupyterhub_config.py, which reads the whole values tree through
    # z2jh.get_config) read. `custom` and `hub.config`/`hub.extraConfig` are handed to the hub
    # whole ([values-3.0.2] comments: "custom can contain anything you want to pass to the hub").
    "custom",
    "hub.config",
    "hub.extraConfig",
    "hub.extraEnv",
    "hub.nodeSelector",
    "hub.tolerations",
    "hub.resources",
    "hub.db",
    "hub.pdb",
    "hub.labels",
    "hub.podSecurityContext",
    "hub.containerSecurityContext",
    "hub.networkPolicy",
    "proxy.service",
    "proxy.https",
    "proxy.chp",
    "proxy.traefik",
    "singleuser",
    "scheduling.userScheduler",
    "scheduling.userPlaceholder",
    "scheduling.corePods",
    "scheduling.userPods",
    "scheduling.podPriority",
    "prePuller.resources",
    "prePuller.hook",
    "prePuller.continuous",
    "prePuller.containerSecurityContext",
    "prePuller.extraTolerations",
    "prePuller.pause",
    "ingress",
    "cull",
}


def merged(values: Values) -> Values:
    return coalesce(DEFAULTS, values)


def unread_keys(values: Values) -> list[str]:
    return unread(values, READS)


def _match_labels(component: str, release: str) -> dict[str, str]:
    """[labels-helper] `jupyterhub.matchLabels`: what selectors (and NetworkPolicies) use."""
    return {"component": component, "app": CHART, "release": release}


def _pod_labels(component: str, release: str) -> dict[str, str]:
    """[labels-helper] `jupyterhub.matchLabelsLegacyAndModern`, the labels of the chart's pods."""
    return {
        **_match_labels(component, release),
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/name": CHART,
        "app.kubernetes.io/instance": release,
    }


def _node_purpose_affinity(match: str | None, purpose: str) -> dict[str, Any]:
    """`scheduling.{corePods,userPods}.nodeAffinity.matchNodePurpose`: `prefer` adds a preferred
    node affinity for `hub.jupyter.org/node-purpose=<purpose>` (weight 100), `require` a required
    one, `ignore` nothing ([values-3.0.2] keys; z2jh scheduling helpers)."""
    term = {"matchExpressions": [{"key": "hub.jupyter.org/node-purpose", "operator": "In", "values": [purpose]}]}
    if match == "prefer":
        return {
            "nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "preference": term}]}
        }
    if match == "require":
        return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}
    return {}


def _core(
    m: Values,
    name: str,
    component: str,
    release: str,
    namespace: str,
    kind: str,
    containers: list[Container],
    node_selector: dict[str, str],
    tolerations: list[dict[str, Any]],
    extra_labels: dict[str, str] | None = None,
    pod_security: dict[str, Any] | None = None,
) -> StandIn:
    return StandIn(
        chart=CHART,
        kind=kind,
        name=name,
        namespace=namespace,
        labels={**_pod_labels(component, release), **(extra_labels or {})},
        containers=containers,
        node_selector=dict(node_selector or {}),
        tolerations=[*get(m, "scheduling.corePods.tolerations", []), *(tolerations or [])],
        affinity=_node_purpose_affinity(get(m, "scheduling.corePods.nodeAffinity.matchNodePurpose"), "core"),
        pod_security_context=dict(pod_security or {}),
        source=f"jupyterhub/templates/{component}/deployment.yaml ({VERSION})",
    )


def _singleuser_base(m: Values) -> dict[str, Any]:
    """The KubeSpawner settings z2jh's jupyterhub_config.py derives from `singleuser.*`."""
    s = m["singleuser"]
    init = []
    if get(s, "cloudMetadata.blockWithIptables") is True:
        # [security-doc]: "an initContainer is added to the user pods. It will run with elevated
        # privileges and use the iptables command line tool to block ... the cloud metadata server".
        init.append(
            {
                "name": "block-cloud-metadata",
                "image": "registry.invalid/stand-in/network-tools:0",
                "securityContext": {"privileged": True, "runAsUser": 0, "capabilities": {"add": ["NET_ADMIN"]}},
            }
        )
    return {
        "node_selector": dict(s.get("nodeSelector") or {}),
        "tolerations": [*get(m, "scheduling.userPods.tolerations", []), *(s.get("extraTolerations") or [])],
        "cpu_limit": get(s, "cpu.limit"),
        "cpu_guarantee": get(s, "cpu.guarantee"),
        "mem_limit": get(s, "memory.limit"),
        "mem_guarantee": get(s, "memory.guarantee"),
        "extra_resource_limits": dict(get(s, "extraResource.limits") or {}),
        "extra_resource_guarantees": dict(get(s, "extraResource.guarantees") or {}),
        "extra_labels": dict(s.get("extraLabels") or {}),
        "uid": s.get("uid"),
        "fs_gid": s.get("fsGid"),
        "allow_privilege_escalation": s.get("allowPrivilegeEscalation"),
        "init_containers": init,
        # [config-4x]: hub.config.KubeSpawner is applied after every singleuser.* trait.
        "container_security_context": dict(get(m, "hub.config.KubeSpawner.container_security_context") or {}),
        "pod_security_context": dict(get(m, "hub.config.KubeSpawner.pod_security_context") or {}),
    }


def _profile_settings(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """[kubespawner] `_apply_overrides`: a dict-valued override is merged into the configured
    dict (recursive update), anything else replaces it."""
    settings = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(settings.get(key), dict):
            settings[key] = {**settings[key], **value}
        else:
            settings[key] = copy.deepcopy(value)
    return settings


def user_pod(m: Values, release: str, namespace: str, slug: str, override: dict[str, Any]) -> StandIn:
    """The user pod the hub creates for a profile: KubeSpawner 7's own `make_pod` with the
    settings z2jh configures and the profile's `kubespawner_override` applied."""
    from kubernetes_asyncio.client import ApiClient
    from kubespawner.objects import make_pod

    settings = _profile_settings(_singleuser_base(m), override)
    # KubeSpawner labels: common labels, extra labels, component (spawner.py `_build_pod_labels`);
    # z2jh's config adds release/chart to the common labels.
    labels = {
        "app": CHART,
        "heritage": "jupyterhub",
        "release": release,
        "app.kubernetes.io/name": CHART,
        "app.kubernetes.io/managed-by": "kubespawner",
        "app.kubernetes.io/instance": release,
        **settings["extra_labels"],
        "component": "singleuser-server",
        "app.kubernetes.io/component": "singleuser-server",
        "hub.jupyter.org/username": "stand-in",
    }
    user_scheduler = get(m, "scheduling.userScheduler.enabled")
    pod = make_pod(
        name=f"jupyter-stand-in-{slug}",
        cmd=["jupyterhub-singleuser"],
        port=8888,
        image="registry.invalid/stand-in/notebook:0",
        node_selector=settings["node_selector"],
        uid=settings["uid"],
        fs_gid=settings["fs_gid"],
        allow_privilege_escalation=settings["allow_privilege_escalation"],
        container_security_context=settings["container_security_context"] or None,
        pod_security_context=settings["pod_security_context"] or None,
        labels=labels,
        cpu_limit=settings["cpu_limit"],
        cpu_guarantee=settings["cpu_guarantee"],
        mem_limit=settings["mem_limit"],
        mem_guarantee=settings["mem_guarantee"],
        extra_resource_limits=settings["extra_resource_limits"],
        extra_resource_guarantees=settings["extra_resource_guarantees"],
        init_containers=settings["init_containers"],
        # z2jh points KubeSpawner at its own scheduler when it deploys one (named `user-scheduler`,
        # the chart's fullnameOverride being "").
        scheduler_name="user-scheduler" if user_scheduler else None,
        tolerations=settings["tolerations"],
        node_affinity_preferred=_node_purpose_affinity(
            get(m, "scheduling.userPods.nodeAffinity.matchNodePurpose"), "user"
        )
        .get("nodeAffinity", {})
        .get("preferredDuringSchedulingIgnoredDuringExecution"),
    )
    spec = ApiClient.sanitize_for_serialization(ApiClient.__new__(ApiClient), pod)["spec"]

    def container(c: dict[str, Any], init: bool) -> Container:
        return Container(c["name"], c.get("ports", []), c.get("resources", {}), c.get("securityContext", {}), init)

    return StandIn(
        chart=CHART,
        kind="Pod",
        name=f"jupyter-{slug}",
        namespace=namespace,
        labels=labels,
        containers=[
            *(container(c, True) for c in spec.get("initContainers", [])),
            *(container(c, False) for c in spec["containers"]),
        ],
        node_selector=spec.get("nodeSelector") or {},
        tolerations=spec.get("tolerations") or [],
        affinity=spec.get("affinity") or {},
        pod_security_context=spec.get("securityContext") or {},
        scheduler_name=spec.get("schedulerName"),
        created_by="hub",
        source="kubespawner 7.0.0 objects.make_pod, settings from z2jh jupyterhub_config.py",
    )


def profiles(values: Values) -> list[tuple[str, dict[str, Any]]]:
    """The facility's profiles (`custom.af.profiles`, read by our extraConfig) as (slug, override);
    one default entry when the values define none."""
    entries = get(values, "custom.af.profiles") or []
    found = [(e["profile"]["slug"], e["profile"].get("kubespawner_override", {})) for e in entries]
    return found or [("default", {})]


def workloads(values: Values, release: str = "jupyterhub", namespace: str = "jupyterhub") -> list[StandIn]:
    m = merged(values)
    hub, chp = m["hub"], m["proxy"]["chp"]
    out = [
        _core(
            m,
            "hub",
            "hub",
            release,
            namespace,
            "Deployment",
            [
                Container(
                    "hub",
                    [{"containerPort": 8081, "name": "http"}],
                    resources_of(hub.get("resources")),
                    dict(hub.get("containerSecurityContext") or {}),
                )
            ],
            hub.get("nodeSelector"),
            hub.get("tolerations"),
            # [security-doc] access labels the hub pod carries to reach proxy and user pods.
            extra_labels={
                "hub.jupyter.org/network-access-proxy-api": "true",
                "hub.jupyter.org/network-access-proxy-http": "true",
                "hub.jupyter.org/network-access-singleuser": "true",
                **(hub.get("labels") or {}),
            },
            pod_security=hub.get("podSecurityContext"),
        ),
        _core(
            m,
            "proxy",
            "proxy",
            release,
            namespace,
            "Deployment",
            [
                Container(
                    "chp",
                    [{"containerPort": 8000, "name": "http"}, {"containerPort": 8001, "name": "api"}],
                    resources_of(chp.get("resources")),
                    dict(chp.get("containerSecurityContext") or {}),
                )
            ],
            chp.get("nodeSelector"),
            chp.get("tolerations"),
            extra_labels={
                "hub.jupyter.org/network-access-hub": "true",
                "hub.jupyter.org/network-access-singleuser": "true",
            },
        ),
    ]
    us = m["scheduling"]["userScheduler"]
    if us.get("enabled"):
        out.append(
            _core(
                m,
                "user-scheduler",
                "user-scheduler",
                release,
                namespace,
                "Deployment",
                [
                    Container(
                        "kube-scheduler",
                        [],
                        resources_of(us.get("resources")),
                        dict(us.get("containerSecurityContext") or {}),
                    )
                ],
                us.get("nodeSelector"),
                us.get("tolerations"),
            )
        )
    pre = m["prePuller"]
    s = m["singleuser"]
    user_affinity = _node_purpose_affinity(get(m, "scheduling.userPods.nodeAffinity.matchNodePurpose"), "user")
    pullers = [("continuous-image-puller", get(pre, "continuous.enabled"))]
    pullers.append(("hook-image-puller", get(pre, "hook.enabled")))
    for component, enabled in pullers:
        if not enabled:
            continue
        # The image pullers run where user pods run: singleuser.nodeSelector, the user pods'
        # tolerations plus prePuller.extraTolerations and the user node-purpose affinity.
        out.append(
            StandIn(
                chart=CHART,
                kind="DaemonSet",
                name=component,
                namespace=namespace,
                labels=_pod_labels(component, release),
                containers=[
                    Container(
                        "image-pull-singleuser",
                        [],
                        resources_of(pre.get("resources")),
                        dict(pre.get("containerSecurityContext") or {}),
                        init=True,
                    ),
                    Container(
                        "pause",
                        [],
                        resources_of(pre.get("resources")),
                        dict(get(pre, "pause.containerSecurityContext") or {}),
                    ),
                ],
                node_selector=dict(s.get("nodeSelector") or {}),
                tolerations=[*get(m, "scheduling.userPods.tolerations", []), *(pre.get("extraTolerations") or [])],
                affinity=user_affinity,
                source=f"jupyterhub/templates/image-puller/_helpers-daemonset.tpl ({VERSION})",
            )
        )
    if get(pre, "hook.enabled"):
        hook = pre["hook"]
        out.append(
            _core(
                m,
                "hook-image-awaiter",
                "hook-image-awaiter",
                release,
                namespace,
                "Job",
                [
                    Container(
                        "hook-image-awaiter",
                        [],
                        resources_of(hook.get("resources")),
                        dict(hook.get("containerSecurityContext") or {}),
                    )
                ],
                hook.get("nodeSelector"),
                hook.get("tolerations"),
            )
        )
    if get(m, "scheduling.userPlaceholder.enabled") and get(m, "scheduling.userPlaceholder.replicas"):
        out.append(
            StandIn(
                chart=CHART,
                kind="StatefulSet",
                name="user-placeholder",
                namespace=namespace,
                labels=_pod_labels("user-placeholder", release),
                containers=[
                    Container(
                        "pause",
                        [],
                        resources_of(get(m, "scheduling.userPlaceholder.resources")),
                        dict(get(m, "scheduling.userPlaceholder.containerSecurityContext") or {}),
                    )
                ],
                node_selector=dict(s.get("nodeSelector") or {}),
                tolerations=[*get(m, "scheduling.userPods.tolerations", []), *(s.get("extraTolerations") or [])],
                affinity=user_affinity,
            )
        )
    for slug, override in profiles(m):
        out.append(user_pod(m, release, namespace, slug, override))
    return out


def _egress_rules(m: Values, netpol: Values) -> list[dict[str, Any]]:
    """[netpol-helper] `jupyterhub.networkPolicy.renderEgressRules`, rule for rule."""
    allow = netpol.get("egressAllowRules") or {}
    ip = get(m, "singleuser.cloudMetadata.ip", METADATA_IP_DEFAULT)
    rules: list[dict[str, Any]] = []
    if (
        allow.get("dnsPortsCloudMetadataServer")
        or allow.get("dnsPortsKubeSystemNamespace")
        or allow.get("dnsPortsPrivateIPs")
    ):
        to: list[dict[str, Any]] = []
        if allow.get("dnsPortsCloudMetadataServer"):
            to.append({"ipBlock": {"cidr": f"{ip}/32"}})
        if allow.get("dnsPortsKubeSystemNamespace"):
            to.append({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}})
        if allow.get("dnsPortsPrivateIPs"):
            to.extend({"ipBlock": {"cidr": cidr}} for cidr in PRIVATE)
        rules.append({"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}], "to": to})
    if allow.get("nonPrivateIPs"):
        rules.append({"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": [*PRIVATE, f"{ip}/32"]}}]})
    if allow.get("privateIPs"):
        rules.append({"to": [{"ipBlock": {"cidr": cidr}} for cidr in PRIVATE]})
    if allow.get("cloudMetadataServer"):
        rules.append({"to": [{"ipBlock": {"cidr": f"{ip}/32"}}]})
    rules.extend(copy.deepcopy(netpol.get("egress") or []))
    return rules


def _access_from(label: str, netpol: Values) -> list[dict[str, Any]]:
    """Sources allowed by an access label: pods with it in the namespace; with
    `interNamespaceAccessLabels: accept` also pods with it anywhere and pods of namespaces with it."""
    if netpol.get("interNamespaceAccessLabels") == "accept":
        return [
            {"podSelector": {"matchLabels": {label: "true"}}, "namespaceSelector": {"matchLabels": {}}},
            {"namespaceSelector": {"matchLabels": {label: "true"}}},
        ]
    return [{"podSelector": {"matchLabels": {label: "true"}}}]


def _policy(
    name: str, namespace: str, component: str, release: str, ingress: list[dict[str, Any]], egress: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": CHART, "release": release}},
        "spec": {
            "podSelector": {"matchLabels": _match_labels(component, release)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": egress,
        },
    }


def network_policies(values: Values, release: str = "jupyterhub", namespace: str = "jupyterhub") -> list[dict]:
    """The hub, proxy and singleuser NetworkPolicies ([security-doc] tables, [netpol-helper]);
    autohttps's only with `proxy.https` letsencrypt/manual, which our values never set."""
    m = merged(values)
    out = []
    sel = _match_labels

    def extra_ingress(netpol: Values) -> list[dict[str, Any]]:
        ports = netpol.get("allowedIngressPorts") or []
        rules = [{"ports": [{"port": p} for p in ports]}] if ports else []
        return rules + copy.deepcopy(netpol.get("ingress") or [])

    hub_np = m["hub"]["networkPolicy"]
    if hub_np.get("enabled"):
        # [security-doc] hub: ingress from network-access-hub pods; egress to proxy API 8001 and user pods 8888.
        out.append(
            _policy(
                "hub",
                namespace,
                "hub",
                release,
                [
                    {"ports": [{"port": "http"}], "from": _access_from("hub.jupyter.org/network-access-hub", hub_np)},
                    *extra_ingress(hub_np),
                ],
                [
                    {"to": [{"podSelector": {"matchLabels": sel("proxy", release)}}], "ports": [{"port": 8001}]},
                    {
                        "to": [{"podSelector": {"matchLabels": sel("singleuser-server", release)}}],
                        "ports": [{"port": 8888}],
                    },
                    *_egress_rules(m, hub_np),
                ],
            )
        )
    chp_np = m["proxy"]["chp"]["networkPolicy"]
    if chp_np.get("enabled"):
        # [security-doc] proxy: ingress from network-access-proxy-http (http) or -proxy-api (api)
        # pods, and allowedIngressPorts [http, https] from anywhere; egress to hub 8081, user pods 8888.
        out.append(
            _policy(
                "proxy",
                namespace,
                "proxy",
                release,
                [
                    {
                        "ports": [{"port": "http"}],
                        "from": _access_from("hub.jupyter.org/network-access-proxy-http", chp_np),
                    },
                    {
                        "ports": [{"port": "api"}],
                        "from": _access_from("hub.jupyter.org/network-access-proxy-api", chp_np),
                    },
                    *extra_ingress(chp_np),
                ],
                [
                    {"to": [{"podSelector": {"matchLabels": sel("hub", release)}}], "ports": [{"port": 8081}]},
                    {
                        "to": [{"podSelector": {"matchLabels": sel("singleuser-server", release)}}],
                        "ports": [{"port": 8888}],
                    },
                    *_egress_rules(m, chp_np),
                ],
            )
        )
    su_np = m["singleuser"]["networkPolicy"]
    if su_np.get("enabled"):
        # [security-doc] singleuser: ingress from network-access-singleuser pods (notebook-port);
        # egress to hub 8081, proxy 8000, autohttps 8080/8443, plus the allow rules.
        out.append(
            _policy(
                "singleuser",
                namespace,
                "singleuser-server",
                release,
                [
                    {
                        "ports": [{"port": "notebook-port"}],
                        "from": _access_from("hub.jupyter.org/network-access-singleuser", su_np),
                    },
                    *extra_ingress(su_np),
                ],
                [
                    {"to": [{"podSelector": {"matchLabels": sel("hub", release)}}], "ports": [{"port": 8081}]},
                    {"to": [{"podSelector": {"matchLabels": sel("proxy", release)}}], "ports": [{"port": 8000}]},
                    {
                        "to": [{"podSelector": {"matchLabels": sel("autohttps", release)}}],
                        "ports": [{"port": 8080}, {"port": 8443}],
                    },
                    *_egress_rules(m, su_np),
                ],
            )
        )
    return out
