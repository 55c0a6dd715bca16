"""Test-only overrides on top of the hub image's config: loopback addresses, state in the workdir, a local proxy.

The hub's only config file (`jupyterhub -f`): it loads jupyterhub_config.py next to it, as the image would, then
changes just what a single-host test needs. run_hub passes the ports as the Kubernetes service-link variables the
image already reads (HUB_SERVICE_PORT, PROXY_API_SERVICE_PORT, PROXY_PUBLIC_SERVICE_PORT) plus HARNESS_* variables.
"""

# ruff: noqa: F821  (`c` and `load_subconfig` are injected by traitlets' config-file loader)

import os
from pathlib import Path

from traitlets.config import Config

load_subconfig(str(Path(__file__).with_name("jupyterhub_config.py")))

workdir = Path(os.environ["HARNESS_WORKDIR"])

# One host instead of three Services: the hub, the proxy's API and its public side on 127.0.0.1.
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = int(os.environ["PROXY_PUBLIC_SERVICE_PORT"])
c.JupyterHub.hub_bind_url = c.JupyterHub.hub_connect_url = f"http://127.0.0.1:{os.environ['HUB_SERVICE_PORT']}"

# The proxy pod becomes a proxy the hub starts itself (CONFIGPROXY_AUTH_TOKEN is in the env, as in the chart).
c.ConfigurableHTTPProxy.should_start = True
c.ConfigurableHTTPProxy.command = [os.environ["HARNESS_CHP"]]
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{os.environ['PROXY_API_SERVICE_PORT']}"
c.ConfigurableHTTPProxy.pid_file = str(workdir / "proxy.pid")

# The sqlite-pvc volume becomes the workdir.
c.JupyterHub.db_url = f"sqlite:///{workdir / 'jupyterhub.sqlite'}"

# The identity provider must send users back to this loopback hub, not to the facility's public hostname; set in
# every section that names a callback, since GenericOAuthenticator's own section would win over OAuthenticator's.
callback_url = os.environ["HARNESS_PUBLIC_URL"] + "/hub/oauth_callback"
c.OAuthenticator.oauth_callback_url = callback_url
for section in [c[name] for name in c if isinstance(c[name], Config)]:
    if "oauth_callback_url" in section:
        section.oauth_callback_url = callback_url

# Managed services would start programs the test venv lacks (jupyterhub-idle-culler): keep them as API identities.
for service in c.JupyterHub.services:
    service.pop("command", None)

# An admin API token for the tests' own checks (user models, groups, auth state).
c.JupyterHub.services.append({"name": "harness", "api_token": os.environ["HARNESS_API_TOKEN"]})
c.JupyterHub.load_roles.append(
    {"name": "harness", "scopes": ["admin:users", "admin:groups", "read:servers", "tokens"], "services": ["harness"]}
)
