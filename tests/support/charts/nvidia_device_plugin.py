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
- [issue-1325] NVIDIA/k8s-device-plugin issue #1325: at tag v0.17.2 the chart's
  node-feature-discovery dependency is 0.15.3 (0.17.1's was not read).
- [nfd-gc] kubernetes-sigs/node-feature-discovery
  deployment/helm/node-feature-discovery/templates/nfd-gc.yaml at commit 2e6a202 (a 0.1x chart,
  not matched to 0.15.3): `if and .Values.gc.enable (or .Values.enableNodeFeatureApi
  .Values.topologyUpdater.enable)`.
- [values-copy] the device plugin's values.yaml as a user copied it (a 0.14-era chart, with
  `runtimeClassName`): `nfd.enableNodeFeatureApi: false`, which [issue-14]'s render confirms for
  0.17.1 (NFD's own default is true).
- [helpers] deployments/helm/nvidia-device-plugin/templates/_helpers.tpl at commit ff7dc6f:
  `nvidia-device-plugin.fullimage` is `.Values.image.repository:.Values.image.tag | default
  (printf "v%s" .Chart.AppVersion)`; its container securityContext helper adds SYS_ADMIN when a
  config's migStrategy is not `none` (not modelled, see `UNVERIFIED`).
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
        "enableNodeFeatureApi": False,  # [values-copy], [issue-14]
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
    "securityContext": "[helpers] at ff7dc6f, not 0.17.1: SYS_ADMIN if any migStrategy is not none; none modelled",
    "nfd.enableNodeFeatureApi": "false per [values-copy] (0.14-era) and [issue-14]; 0.17.1's values.yaml not read",
    "nfd chart version": "0.15.3 at v0.17.2 [issue-1325]; the gc condition is from [nfd-gc], not matched to it",
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
    "nfd.topologyUpdater.enable",
    "nfd.gc.enable",
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
    """[nfd-gc]: the NFD garbage collector renders with `gc.enable` (NFD's default: true) and the
    NodeFeature API or the topology updater, neither of which the device plugin's values turn on."""
    nfd_api = get(m, "nfd.enableNodeFeatureApi") or get(m, "nfd.topologyUpdater.enable")
    return nfd_deployed(m) and bool(get(m, "nfd.gc.enable", True)) and bool(nfd_api)


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
    `image.tag` equal to `v<appVersion>` ([helpers]: the tag defaults to `v` and the chart's
    appVersion), `image.repository` equal to its default, `nfd.enabled` equal to what the
    dependency condition gives without it."""
    found = []
    if get(values, "image.tag") in (APP_VERSION, f"v{APP_VERSION}"):
        found.append("image.tag")
    if get(values, "image.repository") == DEFAULTS["image"]["repository"]:
        found.append("image.repository")
    if isinstance(get(values, "nfd.enabled"), bool):
        without = coalesce(DEFAULTS, {**values, "nfd": {k: v for k, v in values["nfd"].items() if k != "enabled"}})
        if nfd_deployed(without) == get(values, "nfd.enabled"):
            found.append("nfd.enabled")
    return found


def image(values: Values) -> str:
    """The image the plugin and feature discovery run ([helpers] `nvidia-device-plugin.fullimage`)."""
    m = merged(values)
    return f"{get(m, 'image.repository')}:{get(m, 'image.tag') or f'v{APP_VERSION}'}"


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
