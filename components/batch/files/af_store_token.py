"""Store a minted IDTOKEN in an existing Kubernetes Secret: the last step of the Job that gives
offloaded workers their token (the pool's signing key never leaves the cluster).

Usage: af_store_token.py TOKEN_FILE NAMESPACE SECRET KEY. It PATCHes the Secret through the API
server with the pod's service account, which may patch that one Secret and nothing else.
Standard library only: it runs with the HTCondor images' python3."""

from __future__ import annotations

import base64
import json
import os
import ssl
import sys
import urllib.request

ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


def patch_request(api: str, namespace: str, secret: str, key: str, token: bytes, bearer: str) -> urllib.request.Request:
    """The merge PATCH that sets `key` of the Secret to `token`."""
    body = json.dumps({"data": {key: base64.b64encode(token).decode()}}).encode()
    return urllib.request.Request(
        f"{api}/api/v1/namespaces/{namespace}/secrets/{secret}",
        data=body,
        method="PATCH",
        headers={"Authorization": f"Bearer {bearer}", "Content-Type": "application/merge-patch+json"},
    )


def store(
    token_file: str, namespace: str, secret: str, key: str, api: str, bearer: str, context: ssl.SSLContext
) -> int:
    """Patch the Secret; the HTTP status."""
    with open(token_file, "rb") as handle:
        token = handle.read().strip()
    if not token:
        raise RuntimeError(f"{token_file} is empty: the token was not minted")
    request = patch_request(api, namespace, secret, key, token, bearer)
    with urllib.request.urlopen(request, timeout=30, context=context) as response:
        return response.status


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print("usage: af_store_token.py TOKEN_FILE NAMESPACE SECRET KEY", file=sys.stderr)
        return 2
    api = f"https://{os.environ['KUBERNETES_SERVICE_HOST']}:{os.environ['KUBERNETES_SERVICE_PORT']}"
    with open(f"{ACCOUNT}/token", encoding="utf-8") as handle:
        bearer = handle.read().strip()
    context = ssl.create_default_context(cafile=f"{ACCOUNT}/ca.crt")
    status = store(*argv, api=api, bearer=bearer, context=context)
    print(f"af_store_token: {argv[1]}/{argv[2]} updated (HTTP {status})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
