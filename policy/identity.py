"""Identity: who gets into the hub, the HTCondor pool and the cache."""

from __future__ import annotations

import re
from collections.abc import Mapping

from .facts import Facts
from .walk import (
    Resource,
    chart_name,
    condor_settings,
    config_map_files,
    dig,
    helm_values,
    is_condor_config,
    label,
    leaves,
)

OIDC_AUTHENTICATORS = {"generic-oauth", "oauthenticator.generic.GenericOAuthenticator"}
"""z2jh authenticator classes that log users in with OIDC (IAM is a generic OIDC provider)."""
_HUB_SECTIONS = ("Authenticator", "OAuthenticator", "GenericOAuthenticator")


def hub_oidc_login(resource: Resource, facts: Facts) -> list[str]:
    """The hub logs in with OIDC and admits members of the allowed groups only."""
    values = helm_values(resource)
    if values is None or chart_name(resource) != "jupyterhub":
        return []
    where = label(resource)
    config = dig(values, "hub", "config") or {}
    found = []
    authenticator = dig(config, "JupyterHub", "authenticator_class")
    if authenticator not in OIDC_AUTHENTICATORS:
        found.append(
            f"{where}: hub.config.JupyterHub.authenticator_class is {authenticator!r}, not an OIDC login: "
            "use generic-oauth against the experiment's IAM (af:identity)"
        )
    groups = dig(config, "GenericOAuthenticator", "allowed_groups")
    if not (isinstance(groups, list) and groups):
        found.append(
            f"{where}: hub.config.GenericOAuthenticator.allowed_groups is empty, so group membership admits "
            "nobody or everybody: list the login groups in af:identity.roles.login"
        )
    for section in _HUB_SECTIONS:
        for key in ("allow_all", "allow_existing_users", "open_signup"):
            if dig(config, section, key) is True:
                found.append(
                    f"{where}: hub.config.{section}.{key} is true, so anyone with an account at the provider gets "
                    "in: remove it; membership of af:identity.roles.login is the only way in"
                )
    return found


_ANONYMOUS = re.compile(r"(^|[\s,@])(anonymous|unauthenticated|unmapped)\b", re.IGNORECASE)
_ANYONE = {"*", "*/*", "*@*", "*@*/*"}
_WEAK = {"OPTIONAL", "PREFERRED", "NEVER"}
_READ_LEVELS = {"ALLOW_READ"}


def _expand(value: str, macros: Mapping[str, str], depth: int = 0) -> str:
    """Substitute `$(NAME)` from `macros` (self-references stay as they are)."""
    if depth > 8:
        return value
    return re.sub(
        r"\$\(([A-Za-z0-9_.]+)\)",
        lambda m: _expand(macros[m.group(1).upper()], macros, depth + 1) if m.group(1).upper() in macros else "",
        value,
    )


def _condor_problems(name: str, files: Mapping[str, str]) -> list[str]:
    texts = {key: text for key, text in files.items() if is_condor_config(text)}
    if not texts:
        return []
    settings = [(key, setting, value) for key, text in texts.items() for setting, value in condor_settings(text)]
    macros = {setting: value for _, setting, value in settings if f"$({setting})" not in value.upper()}
    found = []
    for key, setting, value in settings:
        where = f"{name}: {key}: {setting}"
        if setting.startswith("SEC_") and setting.endswith("_AUTHENTICATION_METHODS"):
            methods = {m.strip().upper() for m in re.split(r"[\s,]+", value) if m.strip()}
            for bad in sorted(methods & {"CLAIMTOBE", "ANONYMOUS"}):
                found.append(
                    f"{where} offers {bad}, which lets a client claim any identity: keep IDTOKENS, SCITOKENS "
                    "and FS only"
                )
        elif setting.startswith("SEC_") and setting.endswith("_AUTHENTICATION") and value.upper() in _WEAK:
            found.append(f"{where} = {value} admits unauthenticated clients: set it to REQUIRED")
        elif setting.startswith(("ALLOW_", "DENY_")):
            if setting.startswith("DENY_"):
                continue
            principals = [p for p in re.split(r"[\s,]+", _expand(value, macros)) if p]
            if any(_ANONYMOUS.search(p) for p in principals):
                found.append(f"{where} admits unauthenticated users: name authenticated identities only")
            elif setting not in _READ_LEVELS and _ANYONE & set(principals):
                found.append(f"{where} admits anyone ({value}): name the daemons, admins and mapped users only")
    daemons = any(re.search(r"^\s*use\s+ROLE\b", text, re.MULTILINE | re.IGNORECASE) for text in texts.values())
    required = any(s == "SEC_DEFAULT_AUTHENTICATION" and v.upper() == "REQUIRED" for _, s, v in settings)
    if daemons and not required:
        found.append(
            f"{name}: the daemons' config never sets SEC_DEFAULT_AUTHENTICATION = REQUIRED, so HTCondor's "
            "default lets unauthenticated clients in: require authentication in the pool fragment"
        )
    return found


def condor_authenticated(resource: Resource, facts: Facts) -> list[str]:
    """HTCondor config shipped in a ConfigMap or in Helm values (the notebooks' client config)
    requires authentication, never trusts a claimed identity (CLAIMTOBE) and gives nobody
    anonymous write access."""
    files = config_map_files(resource)
    values = helm_values(resource)
    if values is not None:
        files = {".".join(path): text for path, text in leaves(values) if isinstance(text, str)}
    return _condor_problems(label(resource), files)


_XROOTD_HINT = re.compile(r"^\s*(pss\.origin|ofs\.osslib|xrd\.port)\b", re.MULTILINE)


def _directives(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def cache_token_auth(resource: Resource, facts: Facts) -> list[str]:
    """With token auth declared, the cache's xrootd.cfg authorizes every request from a
    SciTokens/WLCG token over ztn, and never by host or local user."""
    if not facts.cache_token_auth:
        return []
    found = []
    for key, text in config_map_files(resource).items():
        if not _XROOTD_HINT.search(text):
            continue
        where = f"{label(resource)}: {key}"
        lines = _directives(text)
        authorize = [d for d in lines if d[0] == "ofs.authorize"]
        if not authorize or any(len(d) > 1 and d[1] != "1" for d in authorize):
            found.append(f"{where} does not authorize requests (ofs.authorize 1): without it any client reads")
        if not any(d[0] == "ofs.authlib" and any("libXrdAccSciTokens" in part for part in d[1:]) for d in lines):
            found.append(f"{where} has no SciTokens authorization (ofs.authlib libXrdAccSciTokens.so config=…)")
        protocols = {d[1] for d in lines if d[0] == "sec.protocol" and len(d) > 1}
        if "ztn" not in protocols or not any(d[0] == "xrootd.seclib" for d in lines):
            found.append(f"{where} does not accept tokens over root:// (xrootd.seclib and sec.protocol ztn)")
        for weak in sorted(protocols & {"host", "unix"}):
            found.append(f"{where} authenticates clients by {weak} (sec.protocol {weak}): tokens only")
    return found
