"""The controller's settings: one JSON document the autoscaler component renders into a
ConfigMap from the stack config, and the controller reads at start."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import classad2

from .condor import machine_ad
from .model import Group, Resources, Settings, Trigger


@dataclass(frozen=True)
class GroupSettings:
    name: str
    deployment: str
    cpus: float
    memory_mb: float
    gpus: float
    start: str
    min_workers: int
    max_workers: int
    preference: int
    local: bool = True

    def group(self) -> Group:
        worker = Resources(self.cpus, self.memory_mb, self.gpus)
        return Group(
            name=self.name,
            worker=worker,
            machine_ad=machine_ad(self.name, worker, self.start, in_cluster=self.local),
            min_workers=self.min_workers,
            max_workers=self.max_workers,
            preference=self.preference,
            local=self.local,
        )


@dataclass(frozen=True)
class TriggerSettings:
    constraint: str
    group: str


@dataclass(frozen=True)
class ControllerSettings:
    namespace: str
    collector: str
    """host:port of the central manager."""
    schedds: list[str]
    """Names of the schedds whose queues are read."""
    groups: list[GroupSettings]
    interval_seconds: float
    scale_down_delay_seconds: float
    metrics_port: int
    """These three come from `af:autoscaler` (their defaults live in the config model only)."""
    triggers: list[TriggerSettings] = field(default_factory=list)
    budget: Resources | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ControllerSettings:
        data = json.loads(text)
        budget = data.pop("budget", None)
        return cls(
            groups=[GroupSettings(**g) for g in data.pop("groups")],
            triggers=[TriggerSettings(**t) for t in data.pop("triggers", [])],
            budget=Resources(**budget) if budget else None,
            **data,
        )

    def planner_groups(self) -> list[Group]:
        return [g.group() for g in self.groups]

    def planner_triggers(self) -> list[Trigger]:
        return [Trigger(classad2.ExprTree(t.constraint), t.group) for t in self.triggers]

    def planner_settings(self) -> Settings:
        return Settings(scale_down_delay=self.scale_down_delay_seconds, budget=self.budget)
