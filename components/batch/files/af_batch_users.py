"""HTCondor SciTokens mapping plugin: admit members of the facility's batch-role groups.

HTCondor runs it (`SEC_SCITOKENS_PLUGIN_<NAME>_COMMAND`) after it has verified a user's token
(signature by the issuer's keys, expiry, audience) and the map file has matched the issuer. The
token's payload arrives as JSON on stdin. Exit 0 and print the identity: accepted; exit 1:
declined (the user stays unmapped and every ALLOW list refuses them); exit 2: malformed input,
authentication fails. Standard library only: it runs with the images' python3.

Usage: af_batch_users.py CONFIG, where CONFIG is JSON with `issuer`, `groupsClaim`, `groups`
(who may submit) and `domain` (of the mapped identities)."""

from __future__ import annotations

import json
import re
import sys

SUBJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
RESERVED = {"condor", "root", "autoscaler"}
ACCEPT, DECLINE, FAIL = 0, 1, 2


def identity(claims: dict, config: dict) -> str | None:
    """`<sub>@<domain>` if the token is of the configured issuer and lists a batch-role group."""
    if claims.get("iss") != config["issuer"]:
        return None
    subject = claims.get("sub")
    if not isinstance(subject, str) or not SUBJECT.match(subject) or subject.lower() in RESERVED:
        return None
    groups = claims.get(config["groupsClaim"])
    if isinstance(groups, str):
        groups = groups.split()
    if not isinstance(groups, list) or not set(g for g in groups if isinstance(g, str)) & set(config["groups"]):
        return None
    return f"{subject}@{config['domain']}"


def main(argv: list[str], stdin: str) -> tuple[int, str]:
    try:
        with open(argv[1], encoding="utf-8") as handle:
            config = json.load(handle)
        claims = json.loads(stdin)
    except (IndexError, OSError, ValueError) as exc:
        return FAIL, f"af_batch_users: {exc}"
    if not isinstance(claims, dict):
        return FAIL, "af_batch_users: the token payload is not a JSON object"
    try:
        mapped = identity(claims, config)
    except (KeyError, TypeError) as exc:
        return FAIL, f"af_batch_users: bad config {argv[1]}: {exc!r}"
    return (ACCEPT, mapped) if mapped else (DECLINE, "")


if __name__ == "__main__":
    code, out = main(sys.argv, sys.stdin.read())
    if out:
        (sys.stdout if code == ACCEPT else sys.stderr).write(out + "\n")
    sys.exit(code)
