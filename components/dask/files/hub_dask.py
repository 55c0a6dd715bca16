# ruff: noqa: F821
"""z2jh extraConfig: the Dask gateway as a JupyterHub service, notebooks' tokens good for it,
and a notebook server's Dask clusters stopped when the server stops.

Runs inside z2jh's jupyterhub_config.py (`c`, `get_config`), after the facility's token
snippet. Values come from `custom.af.dask`; the service's API token from the environment
(`AF_DASK_GATEWAY_TOKEN`, filled from a Kubernetes Secret), never from the values."""

import json
import os

from tornado.httpclient import AsyncHTTPClient, HTTPRequest

_dask = get_config("custom.af.dask")
_service = _dask["service"]
_access = f"access:services!service={_service}"

c.JupyterHub.services.append(
    {
        "name": _service,
        "url": _dask["serviceUrl"],
        "api_token": os.environ["AF_DASK_GATEWAY_TOKEN"],
        "display": False,
    }
)
# Users may use the gateway (its own options handler decides what each group gets).
_user_role = next((r for r in c.JupyterHub.load_roles if r.get("name") == "user"), None)
if _user_role is None:
    _user_role = {"name": "user", "scopes": ["self"]}
    c.JupyterHub.load_roles.append(_user_role)
_user_role["scopes"] = [*_user_role.get("scopes", ["self"]), _access]
# The notebook's token: the gateway admits it, and reads the user's groups with it.
c.Spawner.server_token_scopes = [*c.Spawner.server_token_scopes, *_dask["serverTokenScopes"]]


async def af_dask_stop_clusters(spawner) -> list[str]:
    """Stop every Dask cluster of the server's user, with a short-lived token of that user
    (the gateway acts for users only on their own tokens). Returns the clusters stopped."""
    user = spawner.user
    token = user.new_api_token(
        note="af: stop Dask clusters of a stopped server",
        expires_in=int(_dask["stopTokenSeconds"]),
        scopes=[_access, "read:users:name!user", "read:users:groups!user"],
    )
    headers = {"Authorization": f"jupyterhub {token}"}
    client = AsyncHTTPClient()
    base = _dask["gatewayUrl"].rstrip("/") + "/api/v1/clusters/"
    stopped = []
    try:
        listing = await client.fetch(HTTPRequest(base, headers=headers, request_timeout=30))
        for name in sorted(json.loads(listing.body)):
            await client.fetch(HTTPRequest(base + name, method="DELETE", headers=headers, request_timeout=30))
            stopped.append(name)
    except Exception as exc:  # a stopping server must stop even if the gateway is away
        spawner.log.warning(f"Could not stop the Dask clusters of {user.name}: {exc}")
    finally:
        for orm_token in list(user.api_tokens):
            if orm_token.note == "af: stop Dask clusters of a stopped server":
                user.db.delete(orm_token)
        user.db.commit()
    if stopped:
        spawner.log.info(f"Stopped the Dask clusters of {user.name}: {', '.join(stopped)}")
    return stopped


c.Spawner.post_stop_hook = af_dask_stop_clusters
