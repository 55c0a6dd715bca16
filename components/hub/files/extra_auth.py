# ruff: noqa: F821
"""z2jh extraConfig: groups from the token's groups claim, tokens refreshed before they
expire, and the hub's own secrets.

Runs inside z2jh's jupyterhub_config.py, where `c` and `get_config` are defined. Values come
from `custom.af` in the Helm values; secrets from environment variables the chart fills from
the facility's Kubernetes Secret, never from the values."""

import base64
import json
import os
import time

_af = get_config("custom.af")
_claim = _af["groupsClaim"]
_margin = float(_af["tokenRefreshMarginSeconds"])


def af_groups_from_claim(auth_state: dict) -> list[str]:
    """The user's groups as the issuer lists them; a callable because the claim name
    (`wlcg.groups`) contains a dot, which a string key would read as nesting."""
    groups = (auth_state.get("oauth_user") or {}).get(_claim) or []
    return sorted(g for g in groups if isinstance(g, str))


def af_seconds_left(token: str) -> float | None:
    """Lifetime left of a JWT access token (IAM issues JWTs); None for an opaque token."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"]) - time.time()
    except (IndexError, KeyError, TypeError, ValueError):
        return None


async def af_refresh_early(authenticator, user, auth_state):
    """Use the refresh token while the access token is still valid but close to expiry.

    OAuthenticator alone refreshes only once the old token is rejected, so a notebook could
    hold an expired token for minutes. None hands over to OAuthenticator's own check."""
    if not auth_state or not auth_state.get("refresh_token"):
        return None
    left = af_seconds_left(auth_state.get("access_token") or "")
    if left is None or left > _margin:
        return None
    params = authenticator.build_refresh_token_request_params(auth_state["refresh_token"])
    try:
        token_info = await authenticator.get_token_info(None, params)
    except Exception as exc:
        authenticator.log.info(f"Early token refresh for {user.name} failed ({exc}); the usual check follows")
        return None
    token_info["refresh_token"] = token_info.get("refresh_token") or auth_state["refresh_token"]
    return await authenticator._token_to_auth_model(token_info)


c.GenericOAuthenticator.auth_state_groups_key = af_groups_from_claim
c.GenericOAuthenticator.refresh_user_hook = af_refresh_early
c.JupyterHub.cookie_secret = bytes.fromhex(os.environ["AF_COOKIE_SECRET"])
c.CryptKeeper.keys = [os.environ["JUPYTERHUB_CRYPT_KEY"]]
