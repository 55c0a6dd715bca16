"""What `pulumi preview --policy-pack policy` runs: the pack, serving the rules of `rules.py`.

Constructing `PolicyPack` starts the analyzer's gRPC server and blocks, so this file holds
nothing else and nothing imports it."""

from pulumi_policy import EnforcementLevel, PolicyPack

from policy.rules import PACK_NAME, POLICIES

PolicyPack(name=PACK_NAME, policies=POLICIES, enforcement_level=EnforcementLevel.ADVISORY)
