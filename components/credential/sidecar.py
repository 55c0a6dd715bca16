"""The container that keeps a service's credential fresh (`files/af_credential.py`): beside the
service as a sidecar, and before it as an init container (`--once`) so the first credential
exists when the service starts."""

from __future__ import annotations

from typing import Any

from ..common.kube import resources
from ..common.shipped import shipped
from .config import IamClient

SCRIPT = "af_credential.py"


def script() -> str:
    """The sidecar's program, to ship in the service's ConfigMap."""
    return shipped("credential", SCRIPT)


def bearer_env(
    client: IamClient, token_url: str, token_file: str, secret_file: str, refresh_seconds: int
) -> dict[str, str]:
    """What `af_credential.py bearer` reads: the client, its secret's file, where the token goes."""
    return {
        "BEARER_TOKEN_FILE": token_file,
        "AF_TOKEN_URL": client.token_url or token_url,
        "AF_CLIENT_ID": client.client_id,
        "AF_CLIENT_SECRET_FILE": secret_file,
        "AF_SCOPES": " ".join(client.scopes),
        "AF_AUDIENCE": client.audience or "",
        "AF_REFRESH_SECONDS": str(refresh_seconds),
    }


def credential_container(
    name: str, image: str, script_path: str, mode: str, env: dict[str, str], mounts: list[dict[str, Any]], once: bool
) -> dict[str, Any]:
    """The sidecar (or, `once`, the init container) running `script_path` in `mode` (`bearer`,
    `x509`); the image needs only python3. It needs no privilege and no capability (its pods run
    it as a non-root user)."""
    return {
        "name": name,
        "image": image,
        "command": ["python3", script_path, mode, *(["--once"] if once else [])],
        "env": [{"name": k, "value": v} for k, v in env.items()],
        "resources": resources("10m", "32Mi", "200m", "128Mi"),
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": mounts,
    }
