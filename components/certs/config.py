"""Config of the certificates layer (`af:certManager`): the pinned cert-manager."""

from __future__ import annotations

from pydantic import Field

from ..config.base import StrictModel


class CertManager(StrictModel):
    """cert-manager, deployed when the hub's certificate comes from ACME or the cache serves HTTPS."""

    version: str = Field(default="v1.16.2", pattern=r"^v\d+\.\d+\.\d+$")
    """Pinned cert-manager chart version."""
