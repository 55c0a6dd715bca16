# ruff: noqa: F821
"""z2jh extraConfig: groups from the token's groups claim, and the hub's own secrets.

Runs inside z2jh's jupyterhub_config.py, where `c` and `get_config` are defined. Values come
from `custom.af` in the Helm values; secrets from environment variables the chart fills from
the facility's Kubernetes Secret, never from the values."""

import os

_af = get_config("custom.af")
_claim = _af["groupsClaim"]


def af_groups_from_claim(auth_state: dict) -> list[str]:
    """The user's groups as the issuer lists them; a callable because the claim name
    (`wlcg.groups`) contains a dot, which a string key would read as nesting."""
    groups = (auth_state.get("oauth_user") or {}).get(_claim) or []
    return sorted(g for g in groups if isinstance(g, str))


c.GenericOAuthenticator.auth_state_groups_key = af_groups_from_claim
c.JupyterHub.cookie_secret = bytes.fromhex(os.environ["AF_COOKIE_SECRET"])
c.CryptKeeper.keys = [os.environ["JUPYTERHUB_CRYPT_KEY"]]
