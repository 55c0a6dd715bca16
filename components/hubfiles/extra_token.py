# ruff: noqa: F821
"""z2jh extraConfig: let each notebook read its owner's fresh access token from the hub.

Users may read their own auth state, and the notebook's API token carries that scope; the
hub refreshes the token with IAM (refresh token grant) when it has expired. Runs inside
z2jh's jupyterhub_config.py (`c`)."""

AF_SERVER_SCOPES = ["users:activity!user", "access:servers!server", "admin:auth_state!user"]

# Appended: z2jh has already added the idle culler's role to this list.
c.JupyterHub.load_roles.append(
    {"name": "user", "description": "Users' own permissions and tokens", "scopes": ["self", "admin:auth_state!user"]}
)
c.Spawner.server_token_scopes = AF_SERVER_SCOPES
