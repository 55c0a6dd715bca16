"""NVIDIA device plugin chart 0.17.1 (repository NVIDIA/k8s-device-plugin, folder
deployments/helm/nvidia-device-plugin), with its node-feature-discovery (alias `nfd`) and the
GPU feature discovery DaemonSet the chart renders itself when `gfd.enabled`.

Sources:
- [chart-0.12] deployments/helm/nvidia-device-plugin/Chart.yaml at commit 7683849: the `nfd`
  dependency's condition is `nfd.enabled,gfd.enabled` (Helm takes the first path that is set),
  the `gfd` one `gfd.enabled`.
- [values-0.12] deployments/helm/nvidia-device-plugin/values.yaml at commit 58f2197: the plugin's
  default `tolerations` (CriticalAddonsOnly Exists; nvidia.com/gpu Exists NoSchedule),
  `priorityClassName: system-node-critical`, `nodeSelector`/`affinity`/`resources`/
  `securityContext`/`podSecurityContext` empty, `image.tag: ""` ("defaults to the chart
  appVersion"), `nfd.worker.tolerations` (node-role.kubernetes.io/master; nvidia.com/gpu=present),
  `gfd.enabled: false`.
- [issue-14] project issue 14 item 10 (0.17.1 rendered with our values): node-feature-discovery's
  garbage collector renders only with `nfd.enableNodeFeatureApi`, so with our values `nfd.gc.*`
  does nothing; `image.tag` and `nfd.enabled` restate what the chart derives.
"""

from __future__ import annotations

from .helm import Container, StandIn, Values, coalesce, get, resources_of, unread

CHART = "nvidia-device-plugin"
VERSION = "0.17.1"
APP_VERSION = "0.17.1"

DEFAULTS: Values = {
    "config": {"name": "", "map": {}, "default": ""},
    "image": {"repository": "nvcr.io/nvidia/k8s-device-plugin", "pullPolicy": "IfNotPresent", "tag": ""},
    "podSecurityContext": {},
    "securityContext": {},
    "resources": {},
    "nodeSelector": {},
    "affinity": {},
    "tolerations": [
        {"key": "CriticalAddonsOnly", "operator": "Exists"},
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    ],
    "priorityClassName": "system-node-critical",
    "nfd": {
        "nameOverride": "node-feature-discovery",
        "master": {"extraLabelNs": ["nvidia.com"]},
        "worker": {
            "tolerations": [
                {"key": "node-role.kubernetes.io/master", "operator": "Equal", "value": "", "effect": "NoSchedule"},
                {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"},
            ],
        },
    },
    "gfd": {"enabled": False, "nameOverride": "gpu-feature-discovery"},
}

UNVERIFIED = {
    "nfd.master/worker pod placement keys": "node-feature-discovery subchart templates not read at the pinned version",
    "securityContext": "0.17.1's default container securityContext helper not read: stand-ins carry none",
    "network_policies": "none modelled: no NetworkPolicy template seen in the chart's file list",
}

READS: set[str] = {
    "config",
    "image.repository",
    "image.pullPolicy",
    "image.tag",
    "podSecurityContext",
    "securityContext",
    "resources",
    "nodeSelector",
    "affinity",
    "tolerations",
    "priorityClassName",
    "gfd.enabled",
    "nfd.enabled",
    "nfd.nameOverride",
    "nfd.master",
    "nfd.worker",
    "nfd.enableNodeFeatureApi",
}


def merged(values: Values) -> Values:
    return coalesce(DEFAULTS, values)


def nfd_deployed(m: Values) -> bool:
    """[chart-0.12] condition `nfd.enabled,gfd.enabled`: the first of the paths that is set."""
    for path in ("nfd.enabled", "gfd.enabled"):
        value = get(m, path)
        if isinstance(value, bool):
            return value
    return True


def gc_renders(m: Values) -> bool:
    """[issue-14] item 10: the NFD garbage collector renders only with `nfd.enableNodeFeatureApi`."""
    return bool(get(m, "nfd.enableNodeFeatureApi")) and nfd_deployed(m)


def reads(values: Values) -> set[str]:
    m = merged(values)
    found = set(READS)
    if gc_renders(m):
        found.add("nfd.gc")
    return found


def unread_keys(values: Values) -> list[str]:
    return unread(values, reads(values))


def restated(values: Values) -> list[str]:
    """Keys whose value is what the chart would derive without them ([issue-14] item 10):
    `image.tag` equal to `v<appVersion>` ([values-0.12]: the tag "defaults to the chart
    appVersion"), `nfd.enabled` equal to what the dependency condition gives without it."""
    found = []
    if get(values, "image.tag") in (APP_VERSION, f"v{APP_VERSION}"):
        found.append("image.tag")
    if isinstance(get(values, "nfd.enabled"), bool):
        without = coalesce(DEFAULTS, {**values, "nfd": {k: v for k, v in values["nfd"].items() if k != "enabled"}})
        if nfd_deployed(without) == get(values, "nfd.enabled"):
            found.append("nfd.enabled")
    return found


def workloads(
    values: Values, release: str = "nvidia-device-plugin", namespace: str = "nvidia-device-plugin"
) -> list[StandIn]:
    m = merged(values)
    base = release if CHART in release else f"{release}-{CHART}"
    pod = {
        "node_selector": dict(m.get("nodeSelector") or {}),
        "tolerations": list(m.get("tolerations") or []),
        "affinity": dict(m.get("affinity") or {}),
        "pod_security_context": dict(m.get("podSecurityContext") or {}),
        "priority_class_name": m.get("priorityClassName") or None,
    }
    out = [
        StandIn(
            chart=CHART,
            kind="DaemonSet",
            name=base,
            namespace=namespace,
            labels={"app.kubernetes.io/name": CHART, "app.kubernetes.io/instance": release},
            containers=[
                Container(
                    "nvidia-device-plugin-ctr",
                    [],
                    resources_of(m.get("resources")),
                    dict(m.get("securityContext") or {}),
                )
            ],
            source="deployments/helm/nvidia-device-plugin/templates/daemonset-device-plugin.yml",
            **pod,
        )
    ]
    if get(m, "gfd.enabled"):
        out.append(
            StandIn(
                chart=CHART,
                kind="DaemonSet",
                name=f"{base}-gpu-feature-discovery",
                namespace=namespace,
                labels={"app.kubernetes.io/name": "gpu-feature-discovery", "app.kubernetes.io/instance": release},
                containers=[
                    Container(
                        "gpu-feature-discovery-ctr",
                        [],
                        resources_of(m.get("resources")),
                        dict(m.get("securityContext") or {}),
                    )
                ],
                source="deployments/helm/nvidia-device-plugin/templates/daemonset-gfd.yml",
                **pod,
            )
        )
    if nfd_deployed(m):
        nfd = m["nfd"]
        name = f"{release}-{nfd.get('nameOverride') or 'node-feature-discovery'}"
        for component, kind, port in (
            ("master", "Deployment", 8080),
            ("worker", "DaemonSet", None),
            ("gc", "Deployment", None),
        ):
            if component == "gc" and not gc_renders(m):
                continue
            section = nfd.get(component) or {}
            out.append(
                StandIn(
                    chart=CHART,
                    kind=kind,
                    name=f"{name}-{component}",
                    namespace=namespace,
                    labels={
                        "app.kubernetes.io/name": "node-feature-discovery",
                        "app.kubernetes.io/instance": release,
                        "role": component,
                    },
                    containers=[
                        Container(
                            component, [{"containerPort": port}] if port else [], resources_of(section.get("resources"))
                        )
                    ],
                    node_selector=dict(section.get("nodeSelector") or {}),
                    tolerations=list(section.get("tolerations") or []),
                    affinity=dict(section.get("affinity") or {}),
                    source="node-feature-discovery subchart (templates not read; placement as our values set it)",
                )
            )
    return out


def network_policies(
    values: Values, release: str = "nvidia-device-plugin", namespace: str = "nvidia-device-plugin"
) -> list[dict]:
    return []
