"""kube-prometheus-stack chart 72.6.2 (repository prometheus-community/helm-charts,
charts/kube-prometheus-stack) with its subcharts grafana, kube-state-metrics and
prometheus-node-exporter, and the Prometheus StatefulSet the operator creates from the chart's
Prometheus resource.

Sources:
- [datasources] charts/kube-prometheus-stack/templates/grafana/_helpers datasources template
  (`kube-prometheus-stack.datasources`, index id 17999981467, a 6x/7x text): the Alertmanager
  data source is rendered when `grafana.sidecar.datasources.alertmanager.enabled`, with URL
  `http://<fullname>-alertmanager.<namespace>:<alertmanager.service.port>/<routePrefix>`, with no
  condition on `alertmanager.enabled`. Issue 14 item 11 (72.6.2 rendered with our values): the
  key defaults to true and Alertmanager is off.
- [datasources-2] the later rewrite of that template (`kube-prometheus-stack.grafana.datasources`,
  index id 18427423324): the same single condition, `if
  .Values.grafana.sidecar.datasources.alertmanager.enabled`. Neither text could be matched to
  72.6.2, but both gate on this key alone; the key is the parent chart's (its datasource
  ConfigMap), so which grafana subchart version 72.6.2 pins does not change it.
- [program] components/monitoring.py: "The node exporter keeps the chart's tolerations (every
  NoSchedule taint): a node agent" - the lead's reading of the chart's default.
The index holds no readable 72.6.2 values.yaml; the defaults below that no source names are
listed in `UNVERIFIED` and only carry placement the program sets itself.
"""

from __future__ import annotations

from .helm import Container, StandIn, Values, coalesce, get, resources_of, unread

CHART = "kube-prometheus-stack"
VERSION = "72.6.2"

DEFAULTS: Values = {
    "alertmanager": {"enabled": True, "service": {"port": 9093}, "alertmanagerSpec": {"routePrefix": "/"}},
    "grafana": {
        "enabled": True,
        "nodeSelector": {},
        "tolerations": [],
        "affinity": {},
        "resources": {},
        "sidecar": {
            "dashboards": {"enabled": True},
            "datasources": {
                "enabled": True,
                "defaultDatasourceEnabled": True,
                "alertmanager": {"enabled": True, "name": "Alertmanager", "uid": "alertmanager"},
            },
        },
    },
    "prometheusOperator": {"enabled": True, "nodeSelector": {}, "tolerations": [], "affinity": {}, "resources": {}},
    "prometheus": {
        "enabled": True,
        "prometheusSpec": {"nodeSelector": {}, "tolerations": [], "affinity": {}, "resources": {}},
    },
    "kube-state-metrics": {"nodeSelector": {}, "tolerations": [], "affinity": {}, "resources": {}},
    "kubeStateMetrics": {"enabled": True},
    "nodeExporter": {"enabled": True},
    "prometheus-node-exporter": {"resources": {}, "tolerations": [{"effect": "NoSchedule", "operator": "Exists"}]},
}

UNVERIFIED = {
    "alertmanager.enabled": "default true (the chart deploys Alertmanager unless disabled); values.yaml not read",
    "prometheus-node-exporter.tolerations": "[program] comment; subchart values.yaml not read",
    "prometheus-node-exporter hostNetwork/hostPID/port 9100": "subchart defaults not read",
    "security contexts": "operator, Prometheus, Grafana, kube-state-metrics defaults not read: stand-ins carry none",
    "admission webhook Jobs": "prometheusOperator.admissionWebhooks patch Jobs not modelled (values not read)",
    "network_policies": "none modelled: the chart's and subcharts' networkPolicy toggles not read",
}

READS: set[str] = {
    "alertmanager",
    "grafana",
    "prometheusOperator",
    "prometheus",
    "kube-state-metrics",
    "kubeStateMetrics",
    "nodeExporter",
    "prometheus-node-exporter",
}


def merged(values: Values) -> Values:
    return coalesce(DEFAULTS, values)


def unread_keys(values: Values) -> list[str]:
    return unread(values, READS)


def alertmanager_datasource(values: Values, release: str = CHART, namespace: str = "monitoring") -> str | None:
    """The URL of the Alertmanager data source Grafana is provisioned with, or None ([datasources])."""
    m = merged(values)
    ds = get(m, "grafana.sidecar.datasources.alertmanager") or {}
    if not (get(m, "grafana.enabled") and get(m, "grafana.sidecar.datasources.enabled") and ds.get("enabled")):
        return None
    prefix = str(get(m, "alertmanager.alertmanagerSpec.routePrefix", "/")).lstrip("/")
    return ds.get("url") or f"http://{release}-alertmanager.{namespace}:{get(m, 'alertmanager.service.port')}/{prefix}"


def _placed(section: Values) -> dict:
    return {
        "node_selector": dict(section.get("nodeSelector") or {}),
        "tolerations": list(section.get("tolerations") or []),
        "affinity": dict(section.get("affinity") or {}),
    }


def workloads(values: Values, release: str = CHART, namespace: str = "monitoring") -> list[StandIn]:
    m = merged(values)
    base = release if CHART in release else f"{release}-{CHART}"
    labels = {"release": release}
    out = []
    op = m["prometheusOperator"]
    if op.get("enabled"):
        out.append(
            StandIn(
                chart=CHART,
                kind="Deployment",
                name=f"{base}-operator",
                namespace=namespace,
                labels={**labels, "app": f"{base}-operator"},
                containers=[
                    Container(
                        f"{CHART}", [{"containerPort": 10250, "name": "https"}], resources_of(op.get("resources"))
                    )
                ],
                source="templates/prometheus-operator/deployment.yaml",
                **_placed(op),
            )
        )
    spec = get(m, "prometheus.prometheusSpec") or {}
    if get(m, "prometheus.enabled"):
        out.append(
            StandIn(
                chart=CHART,
                kind="StatefulSet",
                name=f"prometheus-{base}-prometheus",
                namespace=namespace,
                labels={"app.kubernetes.io/name": "prometheus", "prometheus": f"{base}-prometheus"},
                containers=[
                    Container(
                        "prometheus", [{"containerPort": 9090, "name": "http-web"}], resources_of(spec.get("resources"))
                    ),
                    Container("config-reloader", [{"containerPort": 8080, "name": "reloader-web"}]),
                ],
                created_by="prometheus-operator",
                source="templates/prometheus/prometheus.yaml (the Prometheus resource)",
                **_placed(spec),
            )
        )
    g = m["grafana"]
    if g.get("enabled"):
        sidecars = [
            Container(f"grafana-sc-{kind}")
            for kind in ("dashboard", "datasources")
            if get(g, f"sidecar.{kind if kind != 'dashboard' else 'dashboards'}.enabled")
        ]
        out.append(
            StandIn(
                chart=CHART,
                kind="Deployment",
                name=f"{release}-grafana",
                namespace=namespace,
                labels={"app.kubernetes.io/name": "grafana", "app.kubernetes.io/instance": release},
                containers=[
                    *sidecars,
                    Container(
                        "grafana", [{"containerPort": 3000, "name": "grafana"}], resources_of(g.get("resources"))
                    ),
                ],
                source="grafana subchart templates/deployment.yaml",
                **_placed(g),
            )
        )
    if get(m, "kubeStateMetrics.enabled"):
        ksm = m["kube-state-metrics"]
        out.append(
            StandIn(
                chart=CHART,
                kind="Deployment",
                name=f"{release}-kube-state-metrics",
                namespace=namespace,
                labels={"app.kubernetes.io/name": "kube-state-metrics", "app.kubernetes.io/instance": release},
                containers=[
                    Container(
                        "kube-state-metrics",
                        [{"containerPort": 8080, "name": "http"}],
                        resources_of(ksm.get("resources")),
                    )
                ],
                source="kube-state-metrics subchart templates/deployment.yaml",
                **_placed(ksm),
            )
        )
    if get(m, "nodeExporter.enabled"):
        ne = m["prometheus-node-exporter"]
        out.append(
            StandIn(
                chart=CHART,
                kind="DaemonSet",
                name=f"{release}-prometheus-node-exporter",
                namespace=namespace,
                labels={"app.kubernetes.io/name": "prometheus-node-exporter", "app.kubernetes.io/instance": release},
                containers=[
                    Container(
                        "node-exporter",
                        [{"containerPort": 9100, "name": "http-metrics"}],
                        resources_of(ne.get("resources")),
                    )
                ],
                host_network=True,
                host_pid=True,
                source="prometheus-node-exporter subchart templates/daemonset.yaml",
                **_placed(ne),
            )
        )
    return out


def network_policies(values: Values, release: str = CHART, namespace: str = "monitoring") -> list[dict]:
    return []
