# ruff: noqa: F821
"""z2jh extraConfig: let each notebook read its owner's fresh access token from the hub.

Users may read their own auth state, and the notebook's API token carries that scope (the
scopes come from `custom.af.serverTokenScopes`); the hub refreshes the token with IAM when
it is close to expiry. Runs inside z2jh's jupyterhub_config.py (`c`, `get_config`)."""

# Appended: z2jh has already added the idle culler's role to this list.
c.JupyterHub.load_roles.append(
    {"name": "user", "description": "Users' own permissions and tokens", "scopes": ["self", "admin:auth_state!user"]}
)
c.Spawner.server_token_scopes = list(get_config("custom.af")["serverTokenScopes"])
