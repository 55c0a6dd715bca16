"""Who users are and what their IAM groups entitle them to: declared once, read by the hub,
HTCondor and the cache."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, HttpUrl, SecretStr, UrlConstraints

from .base import HTTPS_URL_PATTERN, StrictModel

GROUP_PATTERN = r"^[^\s,]+$"
GroupName = Annotated[str, Field(pattern=GROUP_PATTERN, max_length=256)]
"""A group as it appears in the groups claim (WLCG groups start with `/`, e.g. `/cms/ml`)."""

WLCG_GROUPS_CLAIM = "wlcg.groups"
WLCG_ANY_AUDIENCE = "https://wlcg.cern.ch/jwt/v1/any"
"""The audience WLCG tokens carry when meant for any service."""


def _issuer_text(url: HttpUrl) -> HttpUrl:
    """Every layer reads the issuer as text: the cache's token issuer must match the pattern
    of `af:cache.issuers`, so an issuer this model accepts never fails a layer's model later."""
    if not re.match(HTTPS_URL_PATTERN, str(url)):
        raise ValueError("an https:// URL of a host name with an optional port and path (no user, no IP literal)")
    return url


IssuerUrl = Annotated[HttpUrl, UrlConstraints(allowed_schemes=["https"]), AfterValidator(_issuer_text)]
"""An OIDC issuer: HTTPS only (tokens, client secrets and refresh tokens travel to it), normalised
by pydantic as the issuer's tokens name it (`https://host` becomes `https://host/`)."""


class Roles(StrictModel):
    """Which IAM groups may do what. A member of any listed group has the role."""

    login: list[GroupName] = Field(default_factory=list)
    """Groups whose members may log in to the hub. Nobody else gets in."""
    admin: list[GroupName] = Field(default_factory=list)
    """Groups whose members administer the hub (they may also log in)."""
    gpu: list[GroupName] = Field(default_factory=list)
    """Groups offered GPU notebook profiles and allowed GPU batch slots."""
    batch: list[GroupName] = Field(default_factory=list)
    """Groups that may submit to the HTCondor pool."""
    cache: list[GroupName] = Field(default_factory=list)
    """Groups that may read through the XCache."""

    def all_groups(self) -> list[str]:
        """Every group any role names, each once, in a stable order."""
        return sorted({g for role in (self.login, self.admin, self.gpu, self.batch, self.cache) for g in role})


class Identity(StrictModel):
    """The OIDC provider (INDIGO-IAM) users and services authenticate with."""

    issuer: IssuerUrl
    """HTTPS issuer URL of the IAM instance, for example `https://iam.cloud.infn.it/`. The login
    uses IAM's endpoints under it: `authorize`, `token`, `userinfo`."""
    client_id: str = Field(min_length=1)
    """OIDC client id registered in IAM for this facility's hub."""
    client_secret: SecretStr | None = None
    """OIDC client secret issued by IAM; a Pulumi secret
    (`pulumi config set --secret --path af:identity.clientSecret …`). Required by the hub."""
    scopes: list[str] = Field(
        default_factory=lambda: ["openid", "profile", "email", "offline_access", "wlcg", "wlcg.groups"],
        min_length=1,
    )
    """Scopes requested at login. `offline_access` gives the refresh token that keeps users'
    tokens fresh; `wlcg.groups` puts the groups in the token."""
    groups_claim: str = Field(default=WLCG_GROUPS_CLAIM, min_length=1)
    """Userinfo claim that lists the user's groups."""
    username_claim: str = Field(default="preferred_username", min_length=1)
    """Userinfo claim used as the hub user name."""
    roles: Roles = Field(default_factory=Roles)
    """Group-to-role mapping."""

    def endpoint(self, name: str) -> str:
        """An IAM endpoint under the issuer (`authorize`, `token`, `userinfo`, `jwk`)."""
        return f"{str(self.issuer).rstrip('/')}/{name}"
