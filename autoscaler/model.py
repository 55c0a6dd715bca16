"""What the planner reasons about: worker groups, idle demand by autocluster, workers, and
the plan it returns. Plain data; ClassAds are `classad2` objects."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import classad2

# classad2 resolves an unscoped reference in one ad against the other (HTCondor's matchmaking
# rule: `START = RequestGPUs > 0` reads the job's RequestGPUs) only once its parser has run in
# the process; until then such matches silently fail. Run it once, here, for every user.
classad2.parseOne('MyType = "Machine"', classad2.ParserType.Old)


@dataclass(frozen=True)
class Resources:
    """Cores, memory (MiB) and GPUs: a worker's size, a job's request, free capacity."""

    cpus: float = 0.0
    memory_mb: float = 0.0
    gpus: float = 0.0

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpus + other.cpus, self.memory_mb + other.memory_mb, self.gpus + other.gpus)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(self.cpus - other.cpus, self.memory_mb - other.memory_mb, self.gpus - other.gpus)

    def times(self, n: float) -> Resources:
        return Resources(self.cpus * n, self.memory_mb * n, self.gpus * n)

    def copies_of(self, request: Resources) -> int:
        """How many `request`s fit in these resources (each dimension it asks for)."""
        fits = [
            math.floor(have / need + 1e-9)
            for have, need in (
                (self.cpus, request.cpus),
                (self.memory_mb, request.memory_mb),
                (self.gpus, request.gpus),
            )
            if need > 0
        ]
        return max(0, min(fits)) if fits else 0

    def covers(self, other: Resources) -> bool:
        return self.cpus >= other.cpus and self.memory_mb >= other.memory_mb and self.gpus >= other.gpus


@dataclass(frozen=True)
class Group:
    """A worker group: pods of one shape, each one partitionable slot. `machine_ad` describes
    a fresh slot of the group, its START expression as `Requirements`, for matchmaking."""

    name: str
    worker: Resources
    machine_ad: classad2.ClassAd
    min_workers: int = 0
    max_workers: int = 0
    preference: int = 0
    """Lower is tried first: local CPU groups, then GPU groups, then offload groups."""
    local: bool = True
    """Counts against the site budget (offload groups do not)."""


@dataclass(frozen=True)
class Autocluster:
    """Idle jobs that HTCondor considers equivalent for matchmaking, with one of their ads."""

    id: int
    idle: int
    request: Resources
    ad: classad2.ClassAd


@dataclass(frozen=True)
class Worker:
    """A worker pod as Kubernetes and the collector see it."""

    name: str
    group: str
    phase: Literal["pending", "running"]
    started: float
    """When the pod was created (seconds since the epoch)."""
    claimed: bool = False
    """Some of its slot is claimed by a job: it must not be removed."""
    free: Resources = field(default_factory=Resources)
    """Unclaimed resources of its partitionable slot (nothing known yet for pending pods)."""
    jobs: int = 0
    """Jobs running in its slot (its dynamic slots)."""


@dataclass(frozen=True)
class Trigger:
    """An operator's rule: idle jobs matching `constraint` go to `group` first."""

    constraint: classad2.ExprTree
    group: str


@dataclass(frozen=True)
class Settings:
    scale_down_delay: float
    """Seconds a worker must have been unclaimed, and its group in surplus, before removal
    while work keeps coming (`af:autoscaler.scaleDownDelaySeconds`, whose default lives in the
    config model only)."""
    budget: Resources | None = None
    """What local groups may use in total (the site's quota for batch); None: no limit."""


@dataclass(frozen=True)
class Memory:
    """What the planner carries from one cycle to the next (it is otherwise stateless)."""

    surplus_since: dict[str, float] = field(default_factory=dict)
    """Per group: since when it has had more workers than demand needs."""
    last_claimed: dict[str, float] = field(default_factory=dict)
    """Per worker: when it was last seen claimed."""
    load: dict[str, tuple[tuple[float, float], ...]] = field(default_factory=dict)
    wanting_since: dict[str, float] = field(default_factory=dict)
    """Per group: since when its idle jobs have needed one new worker (they wait a while for room
    in the group's busy workers first)."""
    """Per group: (time, load in workers' worth) over the last scale-down delay, the latest last."""


@dataclass(frozen=True)
class Decision:
    group: str
    current: int
    desired: int
    remove: tuple[str, ...]
    """Idle workers to drain and delete (ordered); only when `desired < current`."""
    reason: str


@dataclass(frozen=True)
class Plan:
    decisions: dict[str, Decision]
    assigned: dict[str, int]
    """Idle jobs assigned to each group this cycle."""
    unmatched: tuple[tuple[int, int], ...]
    """(autocluster id, idle jobs) that match no group: reported, never scaled for."""
    unserved: tuple[tuple[int, int], ...]
    """(autocluster id, idle jobs) that match groups all at their limits."""
    memory: Memory
