"""Shared building blocks of the config models: strictness, naming and common value types."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

# Patterns double as JSON Schema and as the "allowed" text of the error contract.
DNS_LABEL_PATTERN = r"^[a-z]([-a-z0-9]{0,30}[a-z0-9])?$"
FQDN_PATTERN = r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
IMAGE_PATTERN = r"^[^:@\s]+:[^:@\s]+(@sha256:[0-9a-f]{64})?$"
HTTPS_URL_PATTERN = r"^https://[a-z0-9.-]+(:\d{1,5})?(/\S*)?$"
SLURM_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
SLURM_FLAG_PATTERN = r"^--[a-z][a-z-]*(=[^\s'\"]+)?$"

PATTERN_HELP = {
    DNS_LABEL_PATTERN: (
        "a DNS label: lowercase letters, digits and '-', starting with a letter, "
        "ending with a letter or digit, at most 32 characters"
    ),
    FQDN_PATTERN: "a fully qualified lowercase DNS name such as af.example.org",
    SHA256_PATTERN: "64 lowercase hexadecimal digits (a SHA-256 digest)",
    IMAGE_PATTERN: "an image pinned by tag, name:tag or name:tag@sha256:<digest>",
    HTTPS_URL_PATTERN: "an https:// URL (token issuers must use HTTPS)",
    SLURM_NAME_PATTERN: "a Slurm name: letters, digits, '_', '.', '-', at most 64 characters",
    SLURM_FLAG_PATTERN: "a long sbatch flag such as --constraint=gpu, without spaces or quotes",
}


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors, keys are camelCase, docstrings
    of attributes become the JSON Schema descriptions users read."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=False,
        frozen=True,
        use_attribute_docstrings=True,
        str_strip_whitespace=True,
        hide_input_in_errors=False,
    )


DnsLabel = Annotated[str, Field(pattern=DNS_LABEL_PATTERN)]
Fqdn = Annotated[str, Field(pattern=FQDN_PATTERN, max_length=253)]
Sha256 = Annotated[str, Field(pattern=SHA256_PATTERN)]


def _restricted_cidr(value: str) -> str:
    net = ipaddress.ip_network(value, strict=True)
    if net.prefixlen == 0:
        raise ValueError("a CIDR narrower than the whole internet (not 0.0.0.0/0 or ::/0)")
    return str(net)


def _cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError as exc:
        raise ValueError(f"a network in CIDR notation with host bits zero ({exc})") from None


def _node_cidr(value: str) -> str:
    net = ipaddress.ip_network(value)
    if net.version != 4 or net.prefixlen > 26:
        raise ValueError("an IPv4 network of /26 or larger (fixed control-plane addresses plus a DHCP pool)")
    return value


def _not_latest(value: str) -> str:
    if value.endswith(":latest") or ":latest@" in value:
        raise ValueError("an image pinned to a version tag or digest, never `latest`")
    return value


PinnedImage = Annotated[str, Field(pattern=IMAGE_PATTERN), AfterValidator(_not_latest)]
"""A container image `name:tag[@sha256:…]`, never `latest`."""

Cidr = Annotated[str, AfterValidator(_cidr)]
"""A network in CIDR notation, host bits zero."""

NodeCidr = Annotated[str, AfterValidator(_cidr), AfterValidator(_node_cidr)]
"""The VMs' private IPv4 subnet."""

RestrictedCidr = Annotated[str, AfterValidator(_cidr), AfterValidator(_restricted_cidr)]
"""A CIDR that is not the whole internet: for admin access."""
