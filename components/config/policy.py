"""`af:policy`: how the policy pack (`policy/`) judges this stack."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StrictBool

from .base import StrictModel

Level = Literal["advisory", "mandatory", "disabled"]
"""What a rule's violation does: print a warning, fail the preview (exit 1), or nothing."""
RuleName = Annotated[str, Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")]


class PolicySettings(StrictModel):
    """Stack-specific inputs of the policy pack: checked by `afctl policy` and handed to
    `pulumi preview --policy-pack policy` through the config file `afctl preview` writes."""

    production: StrictBool = False
    """A production facility: the control plane must be three nodes kept on different
    hypervisors (an anti-affinity server group; with Magnum, three masters behind a load
    balancer)."""
    enforcement: dict[RuleName, Level] = Field(default_factory=dict)
    """Enforcement level per rule, replacing the pack's default for this stack
    (`afctl policy --list` names the rules and their defaults)."""
    public_ports: list[Annotated[int, Field(ge=1, le=65535)]] = Field(default_factory=list)
    """TCP ports besides HTTPS (443) the site deliberately opens to the whole internet, for
    example 1094 for a cache serving other sites. Any other port open to 0.0.0.0/0 or ::/0 is a
    violation."""
