"""The pack's config for one stack: each rule's enforcement level (`af:policy.enforcement`, or
the rule's default) and the facts it reads. The same document is the Pulumi CLI's
`--policy-pack-config` file and the offline runner's input."""

from __future__ import annotations

import json
from typing import Any

from components.config.errors import ConfigError, Problem, key_path, show_value
from components.config.facility import FacilityConfig

from .facts import stack_facts
from .rules import RULE_NAMES, RULES


def pack_config(cfg: FacilityConfig) -> dict[str, dict[str, Any]]:
    """`{rule: {"enforcementLevel": level, <fact>: value, …}}` for every rule. An unknown rule
    name in `af:policy.enforcement` is a config error (exit 2), like any other bad key."""
    levels = cfg.policy.enforcement
    unknown = sorted(set(levels) - set(RULE_NAMES))
    if unknown:
        raise ConfigError(
            [
                Problem(key_path(("policy", "enforcement", name)), show_value(name), f"a rule: {', '.join(RULE_NAMES)}")
                for name in unknown
            ]
        )
    facts = stack_facts(cfg)
    return {
        rule.name: {
            "enforcementLevel": levels.get(rule.name, rule.level.value),
            **{f: facts[f] for f in rule.facts if f in facts},
        }
        for rule in RULES
    }


def pack_config_json(cfg: FacilityConfig) -> str:
    return json.dumps(pack_config(cfg), indent=2, sort_keys=True) + "\n"
