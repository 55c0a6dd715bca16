"""Config of the hub layer (`af:hub`): JupyterHub, its notebook sizes and its certificate."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, HttpUrl, PositiveFloat, PositiveInt, SecretStr, StrictBool, field_validator

from ..config.base import DnsLabel, Fqdn, PinnedImage, StrictModel

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
LETSENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"


class NotebookProfile(StrictModel):
    """A CPU server size users pick at spawn time."""

    name: DnsLabel
    """Slug of the profile, used in URLs and logs."""
    display_name: str = Field(min_length=1)
    """What users see in the list."""
    description: str = ""
    """One line under the name."""
    cpu: PositiveFloat
    """CPU limit in cores."""
    memory_gib: PositiveFloat
    """Memory limit in GiB; also guaranteed, so the notebook is never evicted for memory."""
    default: StrictBool = False
    """Pre-selected in the list."""


class GpuProfile(StrictModel):
    """Shape of the GPU profiles generated for every GPU node group that runs notebooks."""

    gpus: PositiveInt = 1
    """GPUs per notebook."""
    cpu: PositiveFloat = 8
    """CPU limit in cores."""
    memory_gib: PositiveFloat = 32
    """Memory limit (and guarantee) in GiB."""


class Tls(StrictModel):
    """The certificate of the hub's HTTPS ingress."""

    mode: Literal["cert-manager", "provided"] = "cert-manager"
    """`cert-manager`: a pinned cert-manager issues it with ACME (Let's Encrypt);
    `provided`: the operator's certificate and key."""
    acme_email: str | None = Field(default=None, pattern=EMAIL_PATTERN)
    """Contact address registered with the ACME server (cert-manager mode)."""
    acme_server: HttpUrl = HttpUrl(LETSENCRYPT)
    """ACME directory URL (cert-manager mode); Let's Encrypt production by default."""
    certificate: str | None = None
    """PEM certificate chain (provided mode)."""
    private_key: SecretStr | None = None
    """PEM private key (provided mode); a Pulumi secret."""

    @field_validator("certificate")
    @classmethod
    def _pem(cls, value: str | None) -> str | None:
        if value is not None and "-----BEGIN CERTIFICATE-----" not in value:
            raise ValueError("a PEM certificate chain (-----BEGIN CERTIFICATE-----)")
        return value


def _default_profiles() -> list[NotebookProfile]:
    sizes = (("small", "Small", 2, 4), ("medium", "Medium", 4, 8), ("large", "Large", 6, 12))
    return [
        NotebookProfile.model_validate(
            {
                "name": name,
                "displayName": title,
                "description": f"{cpu} cores, {mem} GiB",
                "cpu": cpu,
                "memoryGib": mem,
                "default": name == "small",
            }
        )
        for name, title, cpu, mem in sizes
    ]


class Hub(StrictModel):
    """JupyterHub, the single entry point for physicists."""

    enabled: StrictBool = True
    """Deploy the hub."""
    chart_version: str = Field(default="4.2.0", pattern=r"^\d+\.\d+\.\d+$")
    """Pinned zero-to-jupyterhub chart version."""
    host: Fqdn | None = None
    """Public host name of the hub; `af:site.dnsName` when unset."""
    ingress_class: str = Field(default="traefik", pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    """Ingress class serving the hub: `traefik`, built into k3s, is the only one in mode
    `openstack`; `nginx` is Magnum's. Plain HTTP to the hub is redirected to HTTPS for both."""
    tls: Tls = Field(default_factory=Tls)
    """HTTPS certificate."""
    notebook_image: PinnedImage = "quay.io/jupyter/scipy-notebook:2025-03-17"
    """Single-user image with the experiment's tools: `name:tag`, optionally `name:tag@sha256:…`."""
    profiles: list[NotebookProfile] = Field(default_factory=_default_profiles, min_length=1)
    """CPU server sizes offered to every user who may log in."""
    gpu_profile: GpuProfile = Field(default_factory=GpuProfile)
    """Shape of the GPU profiles; one is offered per GPU node group with the `interactive` role,
    to members of `af:identity.roles.gpu` only."""
    cpu_guarantee_fraction: float = Field(default=0.25, gt=0, le=1)
    """Share of a profile's CPU limit that is guaranteed (requested)."""
    idle_cull_minutes: PositiveInt = 120
    """Stop notebook servers idle for this long."""
    home_gib: PositiveInt = 10
    """Persistent home volume per user, in GiB."""
    storage_class: str | None = Field(default=None, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    """Storage class of home volumes; the cluster default when unset."""
    token_refresh_minutes: PositiveInt = 5
    """How often the notebook re-reads the user's access token from the hub (which refreshes
    it with IAM), into the file `$BEARER_TOKEN_FILE`."""

    @field_validator("profiles")
    @classmethod
    def _profile_names(cls, value: list[NotebookProfile]) -> list[NotebookProfile]:
        names = [p.name for p in value]
        if len(set(names)) != len(names):
            raise ValueError("profiles with distinct names")
        if sum(p.default for p in value) > 1:
            raise ValueError("at most one default profile")
        return value
