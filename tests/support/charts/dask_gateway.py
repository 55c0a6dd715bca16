"""dask-gateway chart 2026.3.0 (repository dask/dask-gateway, folder resources/helm/dask-gateway/),
and the clusters' pods its controller creates at run time.

Sources. The search index cannot map the tag to a commit; the text read:
- [values] values.yaml at commit 76bf9f9 (a 0.9-era chart): the `gateway`, `controller`,
  `traefik` and `rbac` sections, their `nodeSelector`/`affinity`/`tolerations`/`resources`,
  `traefik.service.ports.web.port: 80` and `tcp.port: web`.
- [gateway] templates/gateway/deployment.yaml at commit 327e44c: pod labels are the chart's
  labels plus `app.kubernetes.io/component: gateway` and `hub.jupyter.org/network-access-hub:
  "true"`; container port `api` 8000; `env` from `gateway.env`, then `JUPYTERHUB_API_TOKEN` from
  the Secret `gateway.auth.jupyterhub.apiTokenFromSecretName`/`Key` (when no `apiToken`);
  `resources`, `nodeSelector`, `affinity`, `tolerations` with `with`.
- [config] templates/gateway/configmap.yaml at commit b3a8d6a: `dask_gateway_config.py` reads
  `gateway.backend.{image,namespace,environment,scheduler,worker}`, `gateway.auth.*`,
  `gateway.loglevel`, `gateway.prefix` (traefik), and appends `gateway.extraConfig` in key order.
- [traefik] templates/traefik/deployment.yaml at commit 575abe1: component `traefik`, container
  `traefik` with `runAsUser: 1000`, ports `traefik` 9000 and `web` 8000 (`tcp` 8786 only when
  `traefik.service.ports.tcp.port` is not `web`).
- [controller] templates/controller/deployment.yaml at commit 67576fb: component `controller`,
  port `api` 8000.
- [helpers] templates/_helpers.tpl at commit b656eaf: fullname is the release when it contains
  the chart's name; labels `app.kubernetes.io/{name,instance}`, `gateway.dask.org/instance`.
- [backend] dask_gateway_server/backends/kubernetes/controller.py of the pinned PyPI release
  (2026.3.0): `make_pod` labels a cluster's pods with the instance, the cluster and
  `app.kubernetes.io/component: dask-scheduler|dask-worker`, ports 8786/8787/8788 (scheduler) and
  8787 (worker, `--dashboard-address :8787`), and merges `*_extra_pod_config`,
  `*_extra_container_config` and `*_extra_pod_labels` over them, which our options handler sets
  from the settings in `gateway.extraConfig` (`AF_DASK["pods"]`).
"""

from __future__ import annotations

from typing import Any

from .helm import Container, StandIn, Values, coalesce, get, resources_of, unread

CHART = "dask-gateway"
VERSION = "2026.3.0"
COMPONENT = "app.kubernetes.io/component"

DEFAULTS: Values = {
    "gateway": {
        "replicas": 1,
        "prefix": "/",
        "loglevel": "INFO",
        "resources": {},
        "auth": {"type": "simple", "jupyterhub": {}},
        "backend": {"scheduler": {}, "worker": {}},
        "nodeSelector": {},
        "affinity": {},
        "tolerations": [],
        "extraConfig": {},
    },
    "controller": {"enabled": True, "resources": {}, "nodeSelector": {}, "affinity": {}, "tolerations": []},
    "traefik": {
        "replicas": 1,
        "resources": {},
        "service": {"type": "LoadBalancer", "ports": {"web": {"port": 80}, "tcp": {"port": "web"}}},
        "nodeSelector": {},
        "affinity": {},
        "tolerations": [],
    },
    "rbac": {"enabled": True},
}

UNVERIFIED = {
    "values at 2026.3.0": "values.yaml read at an older commit; the keys we set are read by the templates above",
    "network_policies": "the chart has no NetworkPolicy template in the stored versions: none modelled",
}

READS: set[str] = {
    "gateway.replicas",
    "gateway.prefix",
    "gateway.loglevel",
    "gateway.image",
    "gateway.resources",
    "gateway.auth",
    "gateway.env",
    "gateway.backend",
    "gateway.nodeSelector",
    "gateway.affinity",
    "gateway.tolerations",
    "gateway.extraConfig",
    "gateway.annotations",
    "controller",
    "traefik",
    "rbac",
}


def merged(values: Values) -> Values:
    return coalesce(DEFAULTS, values)


def unread_keys(values: Values) -> list[str]:
    return unread(values, READS)


def _settings(m: Values) -> dict[str, Any]:
    """The settings our extraConfig binds (`AF_DASK`), run as the gateway runs them."""
    namespace: dict[str, Any] = {}
    for key in sorted(get(m, "gateway.extraConfig") or {}):
        if key.endswith("-af-settings"):
            exec(compile(m["gateway"]["extraConfig"][key], key, "exec"), namespace)
    return namespace.get("AF_DASK", {})


def _chart_pod(m: Values, section: str, component: str, release: str, namespace: str, ports: list, **extra) -> StandIn:
    values = m[section]
    return StandIn(
        chart=CHART,
        kind="Deployment",
        name=f"{component if component != 'gateway' else 'api'}-{release}",
        namespace=namespace,
        labels={
            "app.kubernetes.io/name": CHART,
            "app.kubernetes.io/instance": release,
            "gateway.dask.org/instance": release,
            COMPONENT: component,
            **extra.pop("labels", {}),
        },
        containers=[Container(component, ports, resources_of(values.get("resources")), extra.pop("security", {}))],
        node_selector=dict(values.get("nodeSelector") or {}),
        tolerations=list(values.get("tolerations") or []),
        affinity=dict(values.get("affinity") or {}),
        source=f"dask/dask-gateway resources/helm/dask-gateway/templates/{section}/deployment.yaml",
    )


def _cluster_pod(settings: dict[str, Any], kind: str, pod: dict[str, Any], release: str, namespace: str) -> StandIn:
    """A cluster's scheduler or worker as the backend makes it with our options handler's config."""
    ports = [{"containerPort": 8787, "name": "dashboard"}]
    if kind == "dask-scheduler":
        ports = [{"containerPort": 8786, "name": "scheduler"}, *ports, {"containerPort": 8788, "name": "api"}]
    container = settings["pods"]["container"]
    return StandIn(
        chart=CHART,
        kind="Pod",
        name=f"{kind}-example",
        namespace=namespace,
        labels={
            "gateway.dask.org/instance": release,
            "gateway.dask.org/cluster": "example",
            COMPONENT: kind,
            settings["userLabel"]: "example",
            **settings["podLabels"],
        },
        containers=[Container(kind, ports, {}, dict(container.get("securityContext") or {}))],
        node_selector=dict(pod.get("nodeSelector") or {}),
        tolerations=list(pod.get("tolerations") or []),
        created_by="dask-gateway controller",
        source="dask_gateway_server 2026.3.0 backends/kubernetes/controller.py make_pod",
    )


def workloads(values: Values, release: str = "dask-gateway", namespace: str = "dask") -> list[StandIn]:
    m = merged(values)
    api = [{"containerPort": 8000, "name": "api"}]
    web = [{"containerPort": 9000, "name": "traefik"}, {"containerPort": 8000, "name": "web"}]
    out = [
        _chart_pod(
            m, "gateway", "gateway", release, namespace, api, labels={"hub.jupyter.org/network-access-hub": "true"}
        ),
        _chart_pod(m, "traefik", "traefik", release, namespace, web, security={"runAsUser": 1000, "runAsGroup": 1000}),
    ]
    if m["controller"].get("enabled", True):
        out.append(_chart_pod(m, "controller", "controller", release, namespace, api))
    settings = _settings(m)
    if settings:
        pods = settings["pods"]
        out.append(_cluster_pod(settings, "dask-scheduler", pods["scheduler"], release, namespace))
        out.append(_cluster_pod(settings, "dask-worker", pods["worker"], release, namespace))
    return out


def network_policies(values: Values, release: str = "dask-gateway", namespace: str = "dask") -> list[dict]:
    """None: the chart renders no NetworkPolicy (see `UNVERIFIED`)."""
    return []
