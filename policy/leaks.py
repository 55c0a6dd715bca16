"""Secrets: no credential in plaintext where anyone who can read the object can read it.

A value is judged by the key it sits under and by its shape. Keys whose last word is
`password`, `secret`, `token`, `credential`… (or `key` qualified as private, API, signing…)
are secret-looking; a path, a URL, a reference (`$(X)`, `${X}`, `valueFrom`/`secretKeyRef`), an
empty value and the `[secret]` marker of a Pulumi secret are not literal secrets. So
`BEARER_TOKEN_FILE=/tmp/af-bearer-token` and `secretKeyRef: {key: client-secret}` pass, and
`token: K10…` or a PEM private key fails. The message names where, never the value."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from .facts import Facts
from .walk import (
    INSTANCE,
    SECRET,
    NotApplicable,
    Resource,
    cloud_config,
    config_map_files,
    containers,
    helm_values,
    label,
    leaves,
    opaque,
    pod_spec,
)

SECRET_WORDS = {"password", "passwd", "passphrase", "pwd", "secret", "token", "credential", "credentials", "apikey"}
KEY_QUALIFIERS = {"private", "api", "secret", "access", "signing", "encryption", "crypt", "session", "shared", "hmac"}
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_PEM_PRIVATE = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
_URL_WITH_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@:\s]+:[^/@\s]+@", re.IGNORECASE)
_REFERENCE = re.compile(r"^(\$\(|\$\{|\$[A-Za-z_]|\{\{)")
_TEXT_LINE = re.compile(r"""^\s*["']?([A-Za-z_][A-Za-z0-9_.-]*)["']?\s*[:=]\s*(.*?)\s*,?\s*$""")
FIX = "keep it in a Kubernetes Secret fed from a Pulumi secret (pulumi config set --secret) and reference it"


def secret_key(key: str) -> bool:
    """A key whose value is a credential: its last word names one (`OAUTH_CLIENT_SECRET`,
    `cookieSecret`, `crypt-key`), not a pointer to one (`BEARER_TOKEN_FILE`, `token_url`, and
    Helm's `existingSecret`, the name of a Secret that holds it)."""
    words = [w.lower() for w in _WORD.findall(key)]
    if not words or words[0] == "existing":
        return False
    if words[-1] in SECRET_WORDS:
        return True
    return words[-1] == "key" and len(words) > 1 and words[-2] in KEY_QUALIFIERS


def literal_secret(value: Any) -> bool:
    """A value that is itself the credential (not a path, URL, reference or secret marker)."""
    if not isinstance(value, str) or "\n" in value.strip():
        return False  # file content: judged line by line (text_leaks)
    text = value.strip().strip("'\"")
    if not text or opaque(text) or text.lower() in ("true", "false", "none", "null"):
        return False
    if "://" in text or text.startswith(("/", "./", "~/")) or _REFERENCE.match(text):
        return False
    return not re.fullmatch(r"-?\d+(\.\d+)?", text)


def leaked(key: str, value: Any) -> bool:
    """A credential in plaintext: a literal under a secret-looking key, or a URL with a password."""
    if isinstance(value, str) and _URL_WITH_PASSWORD.match(value.strip()):
        return True
    return secret_key(key) and literal_secret(value)


def structure_leaks(value: Any, where: str) -> Iterator[str]:
    """Secret-looking keys with literal values anywhere below `value`; `{name, value}` pairs
    (container env style) are judged by their name."""
    for path, leaf in leaves(value):
        key = next((step for step in reversed(path) if not step.isdigit()), "")
        if path and path[-1] == "value" and len(path) >= 2:
            parent = _lookup(value, path[:-1])
            if isinstance(parent, Mapping) and isinstance(parent.get("name"), str):
                key = parent["name"]
        if leaked(key, leaf):
            yield f"{where}: {'.'.join(path)} holds a literal secret: {FIX}"
        elif isinstance(leaf, str) and "\n" in leaf.strip():
            yield from text_leaks(leaf, f"{where}: {'.'.join(path)}", python=python_source(leaf))


def _lookup(value: Any, path: tuple[str, ...]) -> Any:
    for step in path:
        value = value[int(step)] if isinstance(value, list) else value[step]
    return value


def python_source(text: str) -> bool:
    return bool(re.search(r"^(import|from|def|class)\s", text, re.MULTILINE))


def text_leaks(text: str, where: str, python: bool = False) -> Iterator[str]:
    """PEM private keys in a file's text, and (outside Python source, where `token = x` is code)
    `key: value` / `key = value` lines with a secret-looking key and a literal value."""
    if _PEM_PRIVATE.search(text):
        yield f"{where} holds a PEM private key: {FIX}"
    stripped = text.lstrip()
    if stripped[:1] in "{[":
        try:
            yield from structure_leaks(json.loads(text), where)
            return
        except json.JSONDecodeError:
            pass
    if python:
        return
    for number, line in enumerate(text.splitlines(), 1):
        match = _TEXT_LINE.match(line)
        if match and leaked(match.group(1), match.group(2)):
            yield f"{where}, line {number} ({match.group(1)}) holds a literal secret: {FIX}"


def helm_values_secrets(resource: Resource, facts: Facts) -> list[str]:
    """No literal secret in a Helm release's values (the release stores them readable)."""
    values = helm_values(resource)
    return [] if values is None else list(structure_leaks(values, f"{label(resource)}: values"))


def config_map_secrets(resource: Resource, facts: Facts) -> list[str]:
    """No literal secret in a ConfigMap (readable by anything that may read the namespace's
    config): neither as an entry nor inside a file it carries."""
    found = []
    for key, text in config_map_files(resource).items():
        where = f"{label(resource)}: data.{key}"
        if leaked(key, text):
            found.append(f"{where} holds a literal secret: {FIX}")
        else:
            found.extend(text_leaks(text, where, python=key.endswith(".py")))
    return found


def env_secrets(resource: Resource, facts: Facts) -> list[str]:
    """No container (init containers too) gets a secret as a literal environment value: use
    `valueFrom.secretKeyRef`, or a mounted Secret and a `*_FILE` variable naming it."""
    pod = pod_spec(resource)
    if pod is None:
        return []
    found = []
    for what, container in containers(pod):
        for entry in container.get("env") or []:
            if not isinstance(entry, Mapping) or "value" not in entry:
                continue
            name = str(entry.get("name", ""))
            if leaked(name, entry["value"]) or _PEM_PRIVATE.search(str(entry["value"])):
                found.append(
                    f"{label(resource)}: {what}: env {name} holds a literal secret: use valueFrom.secretKeyRef "
                    "to a Kubernetes Secret fed from a Pulumi secret"
                )
    return found


K3S_CONFIG = "/etc/rancher/k3s/config.yaml"


def user_data_secrets(resource: Resource, facts: Facts) -> list[str]:
    """User-data that carries credentials (the k3s join token, CA keys) must be a Pulumi
    secret: Nova keeps user-data readable to anyone in the project. A plaintext one must hold
    no secret-looking value."""
    if resource.type != INSTANCE:
        return []
    if not facts.secret_markers:
        # The engine hands policy packs secret values decrypted and unmarked (pulumi-policy#241):
        # the bootstrap credentials in secret user-data would look like leaks.
        raise NotApplicable("secret values reach the pack decrypted; afctl policy checks user-data on the plan")
    user_data = resource.props.get("userData")
    if not isinstance(user_data, str) or user_data == SECRET or opaque(user_data):
        return []
    where = f"instance {resource.name}: userData"
    doc = cloud_config(user_data)
    if doc is None:
        return list(text_leaks(user_data, where))
    found = list(structure_leaks({k: v for k, v in doc.items() if k != "write_files"}, where))
    for entry in doc.get("write_files") or []:
        if isinstance(entry, Mapping) and isinstance(entry.get("content"), str):
            path = str(entry.get("path", "?"))
            found.extend(text_leaks(entry["content"], f"{where}: file {path}", python=path.endswith(".py")))
    return [f"{message} (or pass the whole user-data as a Pulumi secret)" for message in found]
