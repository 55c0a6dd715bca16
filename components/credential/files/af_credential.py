"""Keep a service's own credential fresh: the sidecar of every cache server (its upstream
credential) and of every offload gateway's virtual kubelet (its token for the interLink API).

Usage: af_credential.py bearer|x509 [--once]. `bearer` fetches a token with IAM's
client-credentials grant into `$BEARER_TOKEN_FILE`; `x509` makes a proxy from the service
certificate into `$X509_USER_PROXY` (with `voms-proxy-init` when `$AF_VOMS` is set, else
`xrdgsiproxy`). It renews every `$AF_REFRESH_SECONDS`, retrying a failure after a minute; the
service keeps using the previous credential meanwhile. Standard library only."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

RETRY_SECONDS = 60


def write_private(path: str, data: bytes) -> None:
    """Replace `path` atomically with a file only the service's user can read."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".cred-")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def fetch_token(token_url: str, client_id: str, client_secret: str, scopes: str, audience: str | None) -> str:
    """An access token for the service itself (client_secret_basic, as IAM expects)."""
    form = {"grant_type": "client_credentials", "scope": scopes}
    if audience:
        form["audience"] = audience
    basic = base64.b64encode(f"{urllib.parse.quote(client_id)}:{urllib.parse.quote(client_secret)}".encode()).decode()
    request = urllib.request.Request(
        token_url,
        data=urllib.parse.urlencode(form).encode(),
        headers={"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        token = json.load(response).get("access_token")
    if not token:
        raise RuntimeError(f"{token_url} returned no access_token")
    return token


def renew_bearer() -> None:
    with open(os.environ["AF_CLIENT_SECRET_FILE"], encoding="utf-8") as handle:
        secret = handle.read().strip()
    token = fetch_token(
        os.environ["AF_TOKEN_URL"],
        os.environ["AF_CLIENT_ID"],
        secret,
        os.environ.get("AF_SCOPES", "storage.read:/"),
        os.environ.get("AF_AUDIENCE") or None,
    )
    write_private(os.environ["BEARER_TOKEN_FILE"], (token + "\n").encode())


def proxy_command(cert: str, key: str, out: str, hours: int, voms: str | None) -> list[str]:
    """The command that makes a proxy of `hours` from the service certificate."""
    if voms:
        return ["voms-proxy-init", "-voms", voms, "-cert", cert, "-key", key, "-out", out, "-valid", f"{hours}:00"]
    return ["xrdgsiproxy", "init", "-cert", cert, "-key", key, "-f", out, "-valid", f"{hours}:00"]


def renew_x509() -> None:
    out = os.environ["X509_USER_PROXY"]
    directory = os.path.dirname(out) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".proxy-")
    os.close(fd)
    # The tools refuse a key others may read, and a Kubernetes Secret is mounted 0644: they get
    # a private copy, gone when the proxy is made.
    key = os.path.join(directory, ".userkey-" + os.path.basename(tmp))
    try:
        with open(os.environ["AF_KEY_FILE"], "rb") as handle:
            write_private(key, handle.read())
        command = proxy_command(
            os.environ["AF_CERT_FILE"],
            key,
            tmp,
            int(os.environ.get("AF_VALID_HOURS", "96")),
            os.environ.get("AF_VOMS") or None,
        )
        subprocess.run(command, check=True, capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
        os.chmod(tmp, 0o600)
        os.replace(tmp, out)
    finally:
        for path in (tmp, key):
            if os.path.exists(path):
                os.unlink(path)


RENEW = {"bearer": renew_bearer, "x509": renew_x509}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in RENEW:
        print(f"usage: af_credential.py {{{'|'.join(RENEW)}}} [--once]", file=sys.stderr)
        return 2
    renew = RENEW[argv[0]]
    if argv[1:] == ["--once"]:
        renew()
        return 0
    period = float(os.environ.get("AF_REFRESH_SECONDS", "1200"))
    while True:
        try:
            renew()
            wait = period
        except Exception as exc:  # keep serving with the previous credential; try again soon
            print(f"af_credential: renewal failed: {exc}", file=sys.stderr, flush=True)
            wait = min(period, RETRY_SECONDS)
        time.sleep(wait)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
