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
    HTTPS_URL_PATTERN: "an https:// URL such as https://host.example.org:8443/ (tokens travel over HTTPS only)",
    SLURM_NAME_PATTERN: "a Slurm name: letters, digits, '_', '.', '-', at most 64 characters",
    SLURM_FLAG_PATTERN: "a long sbatch flag such as --constraint=gpu, without spaces or quotes",
    # Patterns the layers declare inline, in the words of the error contract (a test holds every
    # pattern of the schema to having one).
    r"^\d+\.\d+\.\d+$": "a chart version such as 1.2.3",
    r"^v\d+\.\d+\.\d+$": "a release tag such as v1.16.2",
    r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$": (
        "a Kubernetes name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
    ),
    r"^[a-z0-9]+(-[a-z0-9]+)*$": "a rule name from afctl policy --list, such as pinned-images",
    r"^[^\s,]+$": "a group name without spaces or commas, such as /cms/ml",
    r"^/([A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*)?$": "an absolute path such as /store, without spaces or '//'",
    r"^[a-z0-9.-]+(:/[A-Za-z0-9/._=-]+)?$": "a VO name such as cms, optionally with a role: cms:/cms/Role=production",
    r"^[a-z0-9.-]+(:\d{1,5})?$": (
        "a host name with an optional port, such as cms-xrd-global.cern.ch:1094 (no root:// or other scheme)"
    ),
    r"^http://[a-z0-9.-]+:\d{1,5}(;http://[a-z0-9.-]+:\d{1,5})*$": (
        "proxy URLs such as http://squid.example.org:3128, several separated by ';'"
    ),
    r"^[^@\s]+@[^@\s]+\.[^@\s]+$": "an e-mail address such as af-admins@example.org",
    r"^([a-z0-9.-]+/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$": (
        "a taint key such as nvidia.com/gpu: an optional DNS prefix and '/', then letters, digits, '-', '_', '.'"
    ),
    r"^[1-7]g\.\d{1,3}gb(\+me)?$": "a MIG profile such as 1g.10gb or 3g.40gb",
    r"^\d{3}(-server)?$": "an NVIDIA driver branch such as 580-server or 580",
    r"^\d+\.\d+\.\d+-\d+$": "a package version such as 1.17.8-1",
    r"^v1\.\d+\.\d+\+k3s\d+$": "a k3s release such as v1.36.2+k3s1",
    r"^v1\.\d+\.\d+$": "a Kubernetes version such as v1.30.4",
    r"^(v1\.\d+|latest)$": "a Pod Security Standards version: v1.<minor> such as v1.36, or latest",
    r"^\d+\.\d+\.\d+-el\d+$": "an HTCondor image tag such as 24.0.7-el9",
    r"^\d{4}\.\d{1,2}\.\d+$": "a dask-gateway chart version such as 2024.1.0",
    r"^[A-Za-z0-9_./+-]+$": "a command or path without spaces, such as python3 or /opt/conda/bin/python",
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
