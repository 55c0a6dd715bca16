"""cert-manager chart v1.16.2 (repository cert-manager/cert-manager, deploy/charts/cert-manager).

Sources:
- [values-1.1x] deploy/charts/cert-manager/values.yaml at commit 95d6fc4 (a 1.14/1.15 text):
  controller `securityContext` {runAsNonRoot, seccompProfile RuntimeDefault},
  `containerSecurityContext` {allowPrivilegeEscalation false, capabilities.drop [ALL],
  readOnlyRootFilesystem true}, `nodeSelector: {kubernetes.io/os: linux}`, `tolerations: []`,
  `affinity: {}`, `resources: {}`, `prometheus.enabled: true`, `prometheus.servicemonitor.targetPort:
  9402`. The webhook, cainjector and startupapicheck sections follow the same pattern in that text.
- `crds.enabled` replaced `installCRDs` in 1.15 (the program sets `crds.enabled`; the text read
  still has `installCRDs`), listed in `UNVERIFIED`.
"""

from __future__ import annotations

from .helm import Container, StandIn, Values, coalesce, get, resources_of, unread

CHART = "cert-manager"
VERSION = "v1.16.2"

_POD = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
_CONTAINER = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": True}
_LINUX = {"kubernetes.io/os": "linux"}


def _component(enabled: bool | None = None) -> Values:
    section: Values = {
        "securityContext": dict(_POD),
        "containerSecurityContext": dict(_CONTAINER),
        "nodeSelector": dict(_LINUX),
        "tolerations": [],
        "affinity": {},
        "resources": {},
    }
    if enabled is not None:
        section["enabled"] = enabled
    return section


DEFAULTS: Values = {
    **_component(),
    "crds": {"enabled": False, "keep": True},
    "prometheus": {"enabled": True},
    "webhook": _component(),
    "cainjector": _component(enabled=True),
    "startupapicheck": _component(enabled=True),
}

UNVERIFIED = {
    "crds.enabled": "added in 1.15; the values text read predates it",
    "ports": "controller 9402 (metrics, prometheus.servicemonitor.targetPort); webhook 10250 and "
    "cainjector metrics not read at v1.16.2",
    "network_policies": "webhook.networkPolicy (networkpolicy-webhooks.yaml) not read: none modelled",
}

READS: set[str] = {
    "resources",
    "securityContext",
    "containerSecurityContext",
    "nodeSelector",
    "tolerations",
    "affinity",
    "crds",
    "prometheus",
    "webhook.resources",
    "webhook.securityContext",
    "webhook.containerSecurityContext",
    "webhook.nodeSelector",
    "webhook.tolerations",
    "webhook.affinity",
    "cainjector.enabled",
    "cainjector.resources",
    "cainjector.securityContext",
    "cainjector.containerSecurityContext",
    "cainjector.nodeSelector",
    "cainjector.tolerations",
    "cainjector.affinity",
    "startupapicheck",
}


def merged(values: Values) -> Values:
    return coalesce(DEFAULTS, values)


def unread_keys(values: Values) -> list[str]:
    return unread(values, READS)


def _standin(
    section: Values, kind: str, name: str, component: str, release: str, namespace: str, ports: list[dict]
) -> StandIn:
    return StandIn(
        chart=CHART,
        kind=kind,
        name=name,
        namespace=namespace,
        labels={
            "app.kubernetes.io/name": name.removeprefix(f"{release}-") if name != release else CHART,
            "app.kubernetes.io/instance": release,
            "app.kubernetes.io/component": component,
        },
        containers=[
            Container(
                f"cert-manager-{component}",
                ports,
                resources_of(section.get("resources")),
                dict(section.get("containerSecurityContext") or {}),
            )
        ],
        node_selector=dict(section.get("nodeSelector") or {}),
        tolerations=list(section.get("tolerations") or []),
        affinity=dict(section.get("affinity") or {}),
        pod_security_context=dict(section.get("securityContext") or {}),
        source=f"deploy/charts/cert-manager/templates/*{component}* ({VERSION})",
    )


def workloads(values: Values, release: str = "cert-manager", namespace: str = "cert-manager") -> list[StandIn]:
    m = merged(values)
    out = [
        _standin(
            m,
            "Deployment",
            release,
            "controller",
            release,
            namespace,
            [{"containerPort": 9402, "name": "http-metrics"}],
        ),
        _standin(m["webhook"], "Deployment", f"{release}-webhook", "webhook", release, namespace, []),
    ]
    if get(m, "cainjector.enabled"):
        out.append(
            _standin(m["cainjector"], "Deployment", f"{release}-cainjector", "cainjector", release, namespace, [])
        )
    if get(m, "startupapicheck.enabled"):
        out.append(
            _standin(
                m["startupapicheck"], "Job", f"{release}-startupapicheck", "startupapicheck", release, namespace, []
            )
        )
    return out


def network_policies(values: Values, release: str = "cert-manager", namespace: str = "cert-manager") -> list[dict]:
    return []
