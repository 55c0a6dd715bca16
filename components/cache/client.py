"""How notebooks and batch jobs read through the cache: the environment and files a client in
the facility needs, so its usual `root://host//path` reads go through the cache."""

from __future__ import annotations

from ..names import CA_CERT_DIR, CACHE_NAMESPACE, CACHE_PORT, CACHE_SERVICE, NODE_CACHE_SERVICE

PLUGIN_CONF_DIR = "/etc/af/xrdcl-plugins"
"""Where clients find the XrdCl plugin config that sends root:// reads through the cache."""


def cache_url() -> str:
    return f"root://{CACHE_SERVICE}.{CACHE_NAMESPACE}.svc.cluster.local:{CACHE_PORT}/"


def node_cache_url() -> str:
    """The node cache of the client's own node (its Service keeps traffic on the node)."""
    return f"root://{NODE_CACHE_SERVICE}.{CACHE_NAMESPACE}.svc.cluster.local:{CACHE_PORT}/"


def client_plugin_conf() -> str:
    """XrdCl's proxy-prefix plugin for root:// URLs only (local files stay local)."""
    return "url = root://*;xroot://*\nlib = libXrdClProxyPlugin-5.so\nenable = true\n"


def client_env(url: str | None = None) -> dict[str, str]:
    """Environment of notebooks and batch jobs: their usual root://host//path reads go through
    the cache at `url` (the site cache's by default; `node_cache_url()` on nodes with a node
    cache), as XrdCl's proxy plugin prefixes them with it. Page reads are off because the plugin
    does not implement them; in-cluster services are reached directly."""
    url = url or cache_url()
    return {
        "AF_XCACHE_URL": url,
        "XRD_PLUGINCONFDIR": PLUGIN_CONF_DIR,
        "XROOT_PROXY": url + "/",
        "XROOT_PROXY_EXCL_DOMAINS": "svc.cluster.local",
        "XRD_CPUSEPGWRTRD": "0",
        # The cache speaks TLS (tokens travel only over TLS); XrdCl trusts what is in here.
        "X509_CERT_DIR": CA_CERT_DIR,
    }


def client_files() -> dict[str, str]:
    """Files clients need, by absolute path."""
    return {f"{PLUGIN_CONF_DIR}/af-xcache.conf": client_plugin_conf()}
