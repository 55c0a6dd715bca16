"""How notebooks and batch jobs read through the cache: the environment and files a client in
the facility needs, so its usual `root://host//path` reads go through the cache."""

from __future__ import annotations

from ..names import CA_CERT_DIR, CACHE_NAMESPACE, CACHE_PORT, CACHE_SERVICE

PLUGIN_CONF_DIR = "/etc/af/xrdcl-plugins"
"""Where clients find the XrdCl plugin config that sends root:// reads through the cache."""


def cache_url() -> str:
    return f"root://{CACHE_SERVICE}.{CACHE_NAMESPACE}.svc.cluster.local:{CACHE_PORT}/"


def client_plugin_conf() -> str:
    """XrdCl's proxy-prefix plugin for root:// URLs only (local files stay local)."""
    return "url = root://*;xroot://*\nlib = libXrdClProxyPlugin-5.so\nenable = true\n"


def client_env() -> dict[str, str]:
    """Environment of notebooks and batch jobs: their usual root://host//path reads go through
    the cache (XrdCl's proxy plugin prefixes them with the cache's URL). Page reads are off
    because the plugin does not implement them; in-cluster services are reached directly."""
    return {
        "AF_XCACHE_URL": cache_url(),
        "XRD_PLUGINCONFDIR": PLUGIN_CONF_DIR,
        "XROOT_PROXY": cache_url() + "/",
        "XROOT_PROXY_EXCL_DOMAINS": "svc.cluster.local",
        "XRD_CPUSEPGWRTRD": "0",
        # The cache speaks TLS (tokens travel only over TLS); XrdCl trusts what is in here.
        "X509_CERT_DIR": CA_CERT_DIR,
    }


def client_files() -> dict[str, str]:
    """Files clients need, by absolute path."""
    return {f"{PLUGIN_CONF_DIR}/af-xcache.conf": client_plugin_conf()}
