"""The IAM client a service authenticates as (client-credentials grant)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from ..config.base import HTTPS_URL_PATTERN, StrictModel


class IamClient(StrictModel):
    """An IAM client of the facility's own, with the client-credentials grant enabled; a sidecar
    fetches its token before it expires."""

    client_id: str = Field(min_length=1)
    """The IAM client the service authenticates as (client-credentials grant enabled in IAM)."""
    client_secret: SecretStr | None = None
    """Its secret: a Pulumi secret, set with `pulumi config set --secret --path` on this key."""
    token_url: str | None = Field(default=None, pattern=HTTPS_URL_PATTERN)
    """Token endpoint (HTTPS); that of `af:identity.issuer` when unset."""
    scopes: list[str] = Field(min_length=1)
    """Scopes asked for."""
    audience: str | None = None
    """Audience asked for (what the service on the other side checks); none when unset."""
