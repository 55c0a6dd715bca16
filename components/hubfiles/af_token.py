"""Keep the user's IAM access token in `$BEARER_TOKEN_FILE` inside the notebook, then run
the notebook server.

Usage: af_token.py [--once] [COMMAND ...]. The token is fetched once before COMMAND starts,
then a forked child re-reads it every `$AF_TOKEN_REFRESH_SECONDS` while COMMAND runs (the
hub refreshes it with IAM when it has expired). Tools find it by the WLCG bearer-token
discovery rules (`BEARER_TOKEN_FILE`). Standard library only: it runs in any notebook image."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import urllib.request


def fetch_token(api_url: str, api_token: str) -> str:
    """The access token in the user's auth state, from the hub's whoami endpoint."""
    request = urllib.request.Request(f"{api_url.rstrip('/')}/user", headers={"Authorization": f"token {api_token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        model = json.load(response)
    token = (model.get("auth_state") or {}).get("access_token")
    if not token:
        raise RuntimeError("the hub returned no access token (is auth state enabled and readable?)")
    return token


def write_private(path: str, text: str) -> None:
    """Replace `path` atomically with a file only the user can read."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".bt-")
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def refresh_once() -> None:
    token = fetch_token(os.environ["JUPYTERHUB_API_URL"], os.environ["JUPYTERHUB_API_TOKEN"])
    write_private(os.environ["BEARER_TOKEN_FILE"], token)


def _log(message: str) -> None:
    print(f"af_token: {message}", file=sys.stderr, flush=True)


def _try_refresh() -> None:
    try:
        refresh_once()
    except Exception as exc:  # the notebook must start even if IAM or the hub hiccups
        _log(f"could not refresh the token: {exc}")


def main(argv: list[str]) -> int:
    once = argv[:1] == ["--once"]
    command = argv[1:] if once else argv
    if once:
        refresh_once()
        return 0
    _try_refresh()
    if command and os.fork() == 0:
        period = int(os.environ.get("AF_TOKEN_REFRESH_SECONDS", "300"))
        while True:
            time.sleep(period)
            _try_refresh()
    if command:
        os.execvp(command[0], command)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
