"""cvmfs-csi chart 2.3.2 (repository cvmfs-contrib/cvmfs-csi, folder deployments/helm/cvmfs-csi;
the program pulls it from CERN's registry, oci://registry.cern.ch/kubernetes/charts/cvmfs-csi).

Sources:
- [pr-143] cvmfs-contrib/cvmfs-csi pull request #143 (merged 2024-05, released in 2.4.0): "The
  resource block in the automount container was referencing the plugin values instead of the
  automount" - in 2.3.2 the automount container renders `nodeplugin.plugin.resources`; issue 14
  item 9 renders 2.3.2 with the same result.
- [values-2.1] deployments/helm/cvmfs-csi/values.yaml at commit 40d3c67 (chart 2.1.x):
  `nodeplugin.priorityClassName: system-node-critical`, `nodeplugin.hostPID: true`,
  `nodeSelector`/`tolerations`/`affinity` empty for both plugins, `cache.local.cvmfsQuotaLimit:
  1000`, the default `default.local` that interpolates `{{ .Values.cache.local.cvmfsQuotaLimit }}`
  (extraConfigMaps data "supports go-template expressions").
- [daemonset-2.0] deployments/helm/cvmfs-csi/templates/nodeplugin-daemonset.yaml at commit 417877e:
  `hostPID` from values, the `nodeplugin` container privileged with SYS_ADMIN, registrar and
  plugin resources with `with`, affinity/nodeSelector/tolerations/priorityClassName with `with`.
- [issue-173] cvmfs-contrib/cvmfs-csi issue #173 (2.x values): `extraConfigMaps` is a map of
  ConfigMap name to data (`cvmfs-csi-default-local: {default.local: ...}`), mounted by the
  automount and automount-reconciler containers.
The automount-reconciler and singlemount containers' resources keys could not be read at 2.3.2:
they are modelled on the program's keys and flagged in `UNVERIFIED`.
"""

from __future__ import annotations

from .helm import Container, StandIn, Values, coalesce, get, resources_of, unread

CHART = "cvmfs-csi"
VERSION = "2.3.2"
QUOTA_REFERENCE = ".Values.cache.local.cvmfsQuotaLimit"
_PRIVILEGED = {"privileged": True, "capabilities": {"add": ["SYS_ADMIN"]}, "allowPrivilegeEscalation": True}

DEFAULTS: Values = {
    "extraConfigMaps": {
        "cvmfs-csi-default-local": {
            # [values-2.1] the default client config; its quota line is the only reader of
            # cache.local.cvmfsQuotaLimit.
            "default.local": 'CVMFS_USE_GEOAPI=yes\nCVMFS_HTTP_PROXY="http://ca-proxy.cern.ch:3128"\n'
            "CVMFS_QUOTA_LIMIT={{ .Values.cache.local.cvmfsQuotaLimit }}\n"
            "CVMFS_CACHE_BASE=/cvmfs-localcache\n",
        },
    },
    "cache": {"local": {"volumeSpec": {"emptyDir": {}}, "cvmfsQuotaLimit": 1000}, "alien": {"enabled": False}},
    "nodeplugin": {
        "plugin": {"resources": {}},
        "automount": {"resources": {}},
        "automountReconciler": {"resources": {}},
        "singlemount": {"resources": {}},
        "registrar": {"resources": {}},
        "priorityClassName": "system-node-critical",
        "nodeSelector": {},
        "tolerations": [],
        "affinity": {},
        "hostPID": True,
    },
    "controllerplugin": {
        "replicas": 1,
        "plugin": {"resources": {}},
        "provisioner": {"resources": {}},
        "priorityClassName": "",
        "nodeSelector": {},
        "tolerations": [],
        "affinity": {},
    },
    "automountStorageClass": {"create": True},
}

UNVERIFIED = {
    "nodeplugin.automountReconciler.resources": "read by the automount-reconciler container (not read at 2.3.2)",
    "nodeplugin.singlemount.resources": "read by the singlemount container (not read at 2.3.2)",
    "automountStorageClass.create": "gates the chart's StorageClass (not read at 2.3.2)",
    "network_policies": "templates/*-networkpolicy.yaml exist in the repository, not read: none modelled",
    "labels": "pod labels app/component/release follow the 2.0 templates' helpers, not read at 2.3.2",
}

STATIC_READS: set[str] = {
    "extraConfigMaps",
    "cache.local.volumeSpec",
    "cache.alien",
    "nodeplugin.plugin",
    "nodeplugin.registrar",
    "nodeplugin.priorityClassName",
    "nodeplugin.nodeSelector",
    "nodeplugin.tolerations",
    "nodeplugin.affinity",
    "nodeplugin.hostPID",
    "nodeplugin.extraVolumes",
    "nodeplugin.automount.image",
    "nodeplugin.automountReconciler",
    "nodeplugin.singlemount",
    "controllerplugin",
    "automountStorageClass",
}


def merged(values: Values) -> Values:
    return coalesce(DEFAULTS, values)


def reads(values: Values) -> set[str]:
    """What the templates read with these values: `cache.local.cvmfsQuotaLimit` only through the
    extraConfigMaps data that mentions it (rendered with `tpl`); `nodeplugin.automount.resources`
    never ([pr-143])."""
    m = merged(values)
    found = set(STATIC_READS)
    texts = [text for data in (m.get("extraConfigMaps") or {}).values() for text in (data or {}).values()]
    if any(QUOTA_REFERENCE in str(text) for text in texts):
        found.add("cache.local.cvmfsQuotaLimit")
    return found


def unread_keys(values: Values) -> list[str]:
    return unread(values, reads(values))


def _labels(component: str, release: str) -> dict[str, str]:
    return {"app": CHART, "component": component, "release": release}


def workloads(values: Values, release: str = "cvmfs-csi", namespace: str = "cvmfs") -> list[StandIn]:
    m = merged(values)
    base = release if CHART in release else f"{release}-{CHART}"
    node, ctrl = m["nodeplugin"], m["controllerplugin"]
    plugin = resources_of(get(node, "plugin.resources"))
    return [
        StandIn(
            chart=CHART,
            kind="DaemonSet",
            name=f"{base}-nodeplugin",
            namespace=namespace,
            labels=_labels("nodeplugin", release),
            containers=[
                Container("registrar", [], resources_of(get(node, "registrar.resources"))),
                Container("nodeplugin", [], plugin, dict(_PRIVILEGED)),
                # [pr-143]: 2.3.2's automount container renders nodeplugin.plugin.resources.
                Container("automount", [], plugin, dict(_PRIVILEGED)),
                Container(
                    "automount-reconciler",
                    [],
                    resources_of(get(node, "automountReconciler.resources")),
                    dict(_PRIVILEGED),
                ),
                Container("singlemount", [], resources_of(get(node, "singlemount.resources")), dict(_PRIVILEGED)),
            ],
            node_selector=dict(node.get("nodeSelector") or {}),
            tolerations=list(node.get("tolerations") or []),
            affinity=dict(node.get("affinity") or {}),
            host_pid=bool(node.get("hostPID")),
            priority_class_name=node.get("priorityClassName") or None,
            source="cvmfs-csi deployments/helm/cvmfs-csi/templates/nodeplugin-daemonset.yaml",
        ),
        StandIn(
            chart=CHART,
            kind="Deployment",
            name=f"{base}-controllerplugin",
            namespace=namespace,
            labels=_labels("controllerplugin", release),
            containers=[
                Container("provisioner", [], resources_of(get(ctrl, "provisioner.resources"))),
                Container("controllerplugin", [], resources_of(get(ctrl, "plugin.resources"))),
            ],
            node_selector=dict(ctrl.get("nodeSelector") or {}),
            tolerations=list(ctrl.get("tolerations") or []),
            affinity=dict(ctrl.get("affinity") or {}),
            priority_class_name=ctrl.get("priorityClassName") or None,
            source="cvmfs-csi deployments/helm/cvmfs-csi/templates/controllerplugin-deployment.yaml",
        ),
    ]


def network_policies(values: Values, release: str = "cvmfs-csi", namespace: str = "cvmfs") -> list[dict]:
    """None modelled: the repository has controllerplugin-/nodeplugin-networkpolicy.yaml templates
    that were not read (see `UNVERIFIED`)."""
    return []
