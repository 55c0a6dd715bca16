"""What the CVMFS layer renders: the client's `default.local`, the cvmfs-csi chart's values and
the optional squid's config. Pure functions of the config."""

from __future__ import annotations

from typing import Any

from ..common.kube import resources
from ..names import CVMFS_NAMESPACE, GPU_TOLERATION, SQUID_PORT, SQUID_SERVICE, SYSTEM_NODES
from .config import Cvmfs


def squid_url() -> str:
    return f"http://{SQUID_SERVICE}.{CVMFS_NAMESPACE}.svc.cluster.local:{SQUID_PORT}"


def http_proxy_chain(cvmfs: Cvmfs) -> str:
    """`CVMFS_HTTP_PROXY`: the local squid, then the site's proxies, then (only without a site
    proxy) direct connections to the Stratum-1s. `;` separates failover groups."""
    chain = [squid_url()] if cvmfs.squid_proxy else []
    chain.append(cvmfs.http_proxy or "DIRECT")
    return ";".join(chain)


def render_default_local(cvmfs: Cvmfs) -> str:
    """The client's `/etc/cvmfs/default.local`."""
    lines = [
        f"CVMFS_REPOSITORIES={','.join(cvmfs.repositories)}",
        f'CVMFS_HTTP_PROXY="{http_proxy_chain(cvmfs)}"',
        "CVMFS_USE_GEOAPI=yes",
        f"CVMFS_QUOTA_LIMIT={cvmfs.cache_gib * 1024}",
        "CVMFS_CACHE_BASE=/cvmfs-localcache",
    ]
    return "\n".join(lines) + "\n"


def cvmfs_values(cvmfs: Cvmfs, gpu_nodes: bool) -> dict[str, Any]:
    """The chart's values. With `gpu_nodes`, the node plugin also runs on GPU nodes, so GPU
    notebooks get /cvmfs too; the storage class is ours, not the chart's, so consumers can
    depend on it. The client's cache quota is in `default.local` (`CVMFS_QUOTA_LIMIT`): the
    chart's `cache.local.cvmfsQuotaLimit` only fills its own default.local, which ours replaces."""
    small = resources("10m", "32Mi", "200m", "128Mi")
    client = resources("100m", "256Mi", "2", "2Gi")
    nodeplugin: dict[str, Any] = {
        # cvmfs-csi 2.3.2 renders `nodeplugin.plugin.resources` for its `automount` container,
        # the CVMFS client (cvmfs-contrib/cvmfs-csi#143, fixed in 2.4.0), as well as for the
        # `nodeplugin` container: the client's resources go here, and the plugin container, which
        # only serves CSI calls, gets (and reserves) the same.
        "plugin": {"resources": client},
        "automountReconciler": {"resources": small},
        "singlemount": {"resources": client},
        "registrar": {"resources": small},
    }
    if gpu_nodes:
        nodeplugin["tolerations"] = [dict(GPU_TOLERATION)]
    return {
        "extraConfigMaps": {"cvmfs-csi-default-local": {"default.local": render_default_local(cvmfs)}},
        "nodeplugin": nodeplugin,
        # The provisioner is a system service; the node plugin runs on every node.
        "controllerplugin": {
            "nodeSelector": dict(SYSTEM_NODES),
            "plugin": {"resources": small},
            "provisioner": {"resources": small},
        },
        "automountStorageClass": {"create": False},
    }


def render_squid_conf(allowed_cidrs: list[str]) -> str:
    acl = " ".join(allowed_cidrs)
    return "\n".join(
        [
            f"http_port {SQUID_PORT}",
            f"acl facility src {acl}",
            "http_access allow facility",
            "http_access deny all",
            "cache_mem 256 MB",
            "maximum_object_size 1024 MB",
            "cache_dir ufs /var/spool/squid 8000 16 256",
            "",
        ]
    )
