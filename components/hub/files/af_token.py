"""Keep the user's IAM access token in `$BEARER_TOKEN_FILE` inside the notebook, then run
the notebook server.

Usage: af_token.py [--once] [COMMAND ...]. The token is fetched once before COMMAND starts,
then a forked child re-reads it every `$AF_TOKEN_REFRESH_SECONDS` while COMMAND runs (the
hub refreshes it with IAM before it expires). Tools find it by the WLCG bearer-token
discovery rules (`BEARER_TOKEN_FILE`). Standard library only: it runs in any notebook image."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import urllib.parse
import urllib.request


def fetch_token(api_url: str, api_token: str, user: str) -> str:
    """The access token in the user's auth state, from the hub's user model (the whoami
    endpoint never includes auth state)."""
    url = f"{api_url.rstrip('/')}/users/{urllib.parse.quote(user)}"
    request = urllib.request.Request(url, headers={"Authorization": f"token {api_token}"})
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
    token = fetch_token(
        os.environ["JUPYTERHUB_API_URL"], os.environ["JUPYTERHUB_API_TOKEN"], os.environ["JUPYTERHUB_USER"]
    )
    write_private(os.environ["BEARER_TOKEN_FILE"], token)


def _log(message: str) -> None:
    print(f"af_token: {message}", file=sys.stderr, flush=True)


def _try_refresh() -> None:
    try:
        refresh_once()
    except Exception as exc:  # the notebook must start even if IAM or the hub hiccups
        _log(f"could not refresh the token: {exc}")


def _refresh_while(parent: int, period: float) -> None:
    """Refresh every `period` seconds for as long as `parent` (the notebook) lives."""
    due = time.monotonic() + period
    while os.getppid() == parent:
        time.sleep(1)
        if time.monotonic() >= due:
            _try_refresh()
            due += period


def main(argv: list[str]) -> int:
    once = argv[:1] == ["--once"]
    if once:
        refresh_once()
        return 0
    _try_refresh()
    if not argv:
        return 0
    notebook = os.getpid()  # exec keeps the pid: the notebook will be the child's parent
    if os.fork() == 0:
        _refresh_while(notebook, float(os.environ.get("AF_TOKEN_REFRESH_SECONDS", "300")))
        os._exit(0)
    os.execvp(argv[0], argv)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
