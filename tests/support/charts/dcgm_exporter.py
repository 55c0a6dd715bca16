"""NVIDIA dcgm-exporter chart 3.6.1 (repository NVIDIA/dcgm-exporter, folder deployment/).

Sources. The search index cannot map the tag to a commit; the text read:
- [values] deployment/values.yaml at commit 9190a38 (a 4.x chart: its image tag is
  4.2.3-4.1.3) and at commit 000ca0f (a 2.4 chart). `securityContext` is the same in both
  (`runAsNonRoot: false`, `runAsUser: 0`, `capabilities.add: [SYS_ADMIN]`), as are
  `podSecurityContext: {}`, `nodeSelector: {}`, `tolerations: []`, `affinity: {}`,
  `resources: {}`, `service.port: 9400`, `serviceMonitor.enabled: true`; issue 14 item 8 renders
  3.6.1 with the same container securityContext.
- [daemonset] deployment/templates/daemonset.yaml at commit 9190a38: pod labels are the selector
  labels (+ podLabels); `priorityClassName: {{ .Values.priorityClassName | default
  "system-node-critical" }}`; `hostNetwork` only if set; pod securityContext, affinity and
  nodeSelector only if non-empty; `tolerations` with `with`; the `exporter` container's
  securityContext is `toYaml .Values.securityContext` (the MERGED map); resources if set; port
  `metrics` = service.port; a hostPath volume of `kubeletPath`.
- [helpers] deployment/templates/_helpers.tpl at commit b3abe37: fullname is the release name
  when it contains the chart name; selector labels app.kubernetes.io/{name,instance}.
"""

from __future__ import annotations

from .helm import Container, StandIn, Values, coalesce, get, resources_of, unread

CHART = "dcgm-exporter"
VERSION = "3.6.1"

DEFAULTS: Values = {
    "image": {"repository": "nvcr.io/nvidia/k8s/dcgm-exporter", "pullPolicy": "IfNotPresent"},
    "arguments": ["-f", "/etc/dcgm-exporter/dcp-metrics-included.csv"],
    "podSecurityContext": {},
    "securityContext": {"runAsNonRoot": False, "runAsUser": 0, "capabilities": {"add": ["SYS_ADMIN"]}},
    "service": {"enable": True, "type": "ClusterIP", "port": 9400, "address": ":9400"},
    "resources": {},
    "serviceMonitor": {"enabled": True, "interval": "15s"},
    "nodeSelector": {},
    "tolerations": [],
    "affinity": {},
    "extraHostVolumes": [],
    "extraConfigMapVolumes": [],
    "extraVolumeMounts": [],
    "extraEnv": [],
    "kubeletPath": "/var/lib/kubelet/pod-resources",
}

UNVERIFIED = {
    "network_policies": "deployment/templates/networkpolicy.yaml not read: none modelled",
    "priorityClassName": "the `system-node-critical` default is in the 4.x template; not read at 3.6.1",
}

READS: set[str] = {
    # [daemonset] and the service/servicemonitor templates.
    "image",
    "arguments",
    "podSecurityContext",
    "securityContext",
    "service",
    "resources",
    "serviceMonitor",
    "nodeSelector",
    "tolerations",
    "affinity",
    "extraHostVolumes",
    "extraConfigMapVolumes",
    "extraVolumeMounts",
    "extraEnv",
    "kubeletPath",
    "podLabels",
    "podAnnotations",
    "priorityClassName",
    "hostNetwork",
    "imagePullSecrets",
    "nameOverride",
    "fullnameOverride",
    "namespaceOverride",
    "serviceAccount",
    "rollingUpdate",
    "runtimeClassName",
    "tlsServerConfig",
    "basicAuth",
    "kubernetes",
}


def merged(values: Values) -> Values:
    return coalesce(DEFAULTS, values)


def unread_keys(values: Values) -> list[str]:
    return unread(values, READS)


def workloads(values: Values, release: str = "dcgm-exporter", namespace: str = "monitoring") -> list[StandIn]:
    m = merged(values)
    name = release if CHART in release else f"{release}-{CHART}"  # [helpers] fullname
    return [
        StandIn(
            chart=CHART,
            kind="DaemonSet",
            name=name,
            namespace=namespace,
            labels={
                "app.kubernetes.io/name": CHART,
                "app.kubernetes.io/instance": release,
                **(m.get("podLabels") or {}),
            },
            containers=[
                Container(
                    "exporter",
                    [{"containerPort": get(m, "service.port"), "name": "metrics"}],
                    resources_of(m.get("resources")),
                    dict(m.get("securityContext") or {}),
                )
            ],
            node_selector=dict(m.get("nodeSelector") or {}),
            tolerations=list(m.get("tolerations") or []),
            affinity=dict(m.get("affinity") or {}),
            pod_security_context=dict(m.get("podSecurityContext") or {}),
            host_network=bool(m.get("hostNetwork")),
            # [daemonset]: the kubelet's pod-resources socket, to map GPUs to pods.
            volumes=[{"name": "kubelet-path", "hostPath": {"path": m["kubeletPath"]}}],
            priority_class_name=m.get("priorityClassName") or "system-node-critical",
            source="NVIDIA/dcgm-exporter deployment/templates/daemonset.yaml",
        )
    ]


def network_policies(values: Values, release: str = "dcgm-exporter", namespace: str = "monitoring") -> list[dict]:
    """None modelled: deployment/templates/networkpolicy.yaml exists in the repository (one
    stored version, not read); see `UNVERIFIED`."""
    return []
