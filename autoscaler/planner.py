"""The planner: from idle demand (by autocluster), worker groups and workers to the desired
size of each group. Pure: the same inputs and memory give the same plan.

Demand is matched to groups with real ClassAd matchmaking, one match per autocluster and
group (never per job). Capacity already there or coming (free slot resources, pending pods)
is used first; then new workers, within each group's maximum and the site budget, in the
order of preference (operator triggers first), so demand a group cannot take overflows to
the next matching one (offload groups come last). Scale-up is immediate; scale-in only
removes workers that have been unclaimed for the scale-down delay, while the group has been
in surplus for as long, and never a claimed one."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .model import Autocluster, Decision, Group, Memory, Plan, Resources, Settings, Trigger, Worker


def candidates(ac: Autocluster, groups: Sequence[Group], triggers: Sequence[Trigger]) -> list[Group]:
    """Groups whose slots the jobs match (both ways: the job's Requirements, the group's
    START), triggered groups first, then by preference."""
    triggered = {t.group for t in triggers if t.constraint.eval(ac.ad) is True}
    matching = [g for g in groups if ac.ad.symmetricMatch(g.machine_ad)]
    return sorted(matching, key=lambda g: (g.name not in triggered, g.preference, g.name))


@dataclass
class _Bin:
    """Room on one worker (existing, pending or planned): jobs are placed worker by worker,
    never on room summed across workers that no single one has."""

    free: Resources
    worker: str | None = None
    """The existing worker, or None for a planned one."""
    claimed: bool = False
    used: bool = False


def _clip(resources: Resources) -> Resources:
    return Resources(max(0.0, resources.cpus), max(0.0, resources.memory_mb), max(0.0, resources.gpus))


def _place(bins: list[_Bin], request: Resources, jobs: int) -> int:
    """Put up to `jobs` of `request` into `bins` in order; how many were placed."""
    placed = 0
    for b in bins:
        n = min(jobs - placed, b.free.copies_of(request))
        if n:
            b.free -= request.times(n)
            b.used = True
            placed += n
            if placed == jobs:
                break
    return placed


def plan(
    groups: Sequence[Group],
    workers: Iterable[Worker],
    demand: Sequence[Autocluster],
    now: float,
    memory: Memory | None = None,
    settings: Settings | None = None,
    triggers: Sequence[Trigger] = (),
) -> Plan:
    memory = memory or Memory()
    settings = settings or Settings()
    by_group: dict[str, list[Worker]] = defaultdict(list)
    for worker in workers:
        by_group[worker.group].append(worker)
    current = {g.name: len(by_group[g.name]) for g in groups}

    # Capacity there or coming, worker by worker: claimed workers' spare room first (so idle
    # ones can go), then idle running workers, then pending ones (whole).
    bins: dict[str, list[_Bin]] = {}
    for g in groups:
        ordered = sorted(by_group[g.name], key=lambda w: (not w.claimed, w.phase == "pending", w.name))
        bins[g.name] = [_Bin(w.free if w.phase == "running" else g.worker, w.name, w.claimed) for w in ordered]

    budget_left = settings.budget
    if budget_left is not None:
        budget_left = budget_left - sum((g.worker.times(current[g.name]) for g in groups if g.local), Resources())

    new = {g.name: 0 for g in groups}
    assigned = {g.name: 0 for g in groups}
    unmatched: list[tuple[int, int]] = []
    unserved: list[tuple[int, int]] = []
    for ac in sorted(demand, key=lambda a: a.id):
        options = candidates(ac, groups, triggers)
        if not options:
            unmatched.append((ac.id, ac.idle))
            continue
        remaining = ac.idle
        for g in options:
            taken = _place(bins[g.name], ac.request, remaining)
            assigned[g.name] += taken
            remaining -= taken
            per_worker = g.worker.copies_of(ac.request)
            if not remaining:
                break
            if not per_worker:
                continue
            room = g.max_workers - current[g.name] - new[g.name]
            if g.local and budget_left is not None:
                room = min(room, _clip(budget_left).copies_of(g.worker))
            add = min(max(room, 0), math.ceil(remaining / per_worker))
            if add:
                planned = [_Bin(g.worker) for _ in range(add)]
                placed = _place(planned, ac.request, remaining)
                bins[g.name] += planned
                new[g.name] += add
                if g.local and budget_left is not None:
                    budget_left -= g.worker.times(add)
                assigned[g.name] += placed
                remaining -= placed
            if not remaining:
                break
        if remaining:
            unserved.append((ac.id, remaining))

    live = {w.name for ws in by_group.values() for w in ws}
    last_claimed = {name: t for name, t in memory.last_claimed.items() if name in live}
    for ws in by_group.values():
        for w in ws:
            if w.claimed:
                last_claimed[w.name] = now
    surplus_since = dict(memory.surplus_since)
    decisions = {}
    for g in groups:
        hosting = {b.worker for b in bins[g.name] if b.used and b.worker is not None and not b.claimed}
        decisions[g.name] = _decide(
            g, by_group[g.name], new[g.name], assigned[g.name], hosting, now, settings, surplus_since, last_claimed
        )
    return Plan(
        decisions=decisions,
        assigned=assigned,
        unmatched=tuple(unmatched),
        unserved=tuple(unserved),
        memory=Memory(surplus_since=surplus_since, last_claimed=last_claimed),
    )


def _decide(
    g: Group,
    workers: list[Worker],
    new: int,
    assigned: int,
    hosting: set[str],
    now: float,
    settings: Settings,
    surplus_since: dict[str, float],
    last_claimed: dict[str, float],
) -> Decision:
    current = len(workers)
    if current < g.min_workers:
        surplus_since.pop(g.name, None)
        return Decision(g.name, current, g.min_workers, (), f"below the minimum of {g.min_workers}")
    if new:
        surplus_since.pop(g.name, None)
        return Decision(g.name, current, current + new, (), f"{assigned} idle jobs need {new} more workers")
    # Unclaimed workers not hosting any of this cycle's demand are the surplus.
    spare = [w for w in workers if not w.claimed and w.name not in hosting]
    surplus = min(len(spare), current - g.min_workers)
    if surplus <= 0:
        surplus_since.pop(g.name, None)
        why = f"{assigned} idle jobs fit in free slots" if assigned else "no surplus"
        return Decision(g.name, current, current, (), why)
    since = surplus_since.setdefault(g.name, now)
    if now - since < settings.scale_down_delay:
        return Decision(
            g.name, current, current, (), f"{surplus} workers in surplus for {now - since:.0f}s, waiting for the delay"
        )

    def idle_for(w: Worker) -> float:
        return now - last_claimed.get(w.name, w.started)

    ready = sorted(
        (w for w in spare if idle_for(w) >= settings.scale_down_delay),
        key=lambda w: (w.phase == "running", -idle_for(w), w.name),
    )
    remove = tuple(w.name for w in ready[:surplus])
    if not remove:
        return Decision(g.name, current, current, (), f"{surplus} in surplus, none unclaimed for the delay yet")
    return Decision(
        g.name, current, current - len(remove), remove, f"{len(remove)} workers unclaimed for the delay, removing them"
    )
