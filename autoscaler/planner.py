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

from .model import Autocluster, Decision, Group, Memory, Plan, Resources, Settings, Trigger, Worker


def candidates(ac: Autocluster, groups: Sequence[Group], triggers: Sequence[Trigger]) -> list[Group]:
    """Groups whose slots the jobs match (both ways: the job's Requirements, the group's
    START), triggered groups first, then by preference."""
    triggered = {t.group for t in triggers if t.constraint.eval(ac.ad) is True}
    matching = [g for g in groups if ac.ad.symmetricMatch(g.machine_ad)]
    return sorted(matching, key=lambda g: (g.name not in triggered, g.preference, g.name))


def _needed_workers(extra: Resources, worker: Resources) -> int:
    """Workers whose whole capacity `extra` takes, dimension by dimension."""
    counts = [
        math.ceil(need / size - 1e-9)
        for need, size in ((extra.cpus, worker.cpus), (extra.memory_mb, worker.memory_mb), (extra.gpus, worker.gpus))
        if need > 0 and size > 0
    ]
    return max(counts, default=0)


def _clip(resources: Resources) -> Resources:
    return Resources(max(0.0, resources.cpus), max(0.0, resources.memory_mb), max(0.0, resources.gpus))


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

    # Capacity there or coming: unclaimed slot resources, and whole pending workers.
    free: dict[str, Resources] = {}
    free_claimed: dict[str, Resources] = {}
    for g in groups:
        running = [w for w in by_group[g.name] if w.phase == "running"]
        pending = len(by_group[g.name]) - len(running)
        free_claimed[g.name] = sum((w.free for w in running if w.claimed), Resources())
        free[g.name] = sum((w.free for w in running), Resources()) + g.worker.times(pending)

    budget_left = settings.budget
    if budget_left is not None:
        budget_left = budget_left - sum((g.worker.times(current[g.name]) for g in groups if g.local), Resources())

    leftover = dict(free)
    used_free = {g.name: Resources() for g in groups}
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
            take = min(remaining, leftover[g.name].copies_of(ac.request))
            if take:
                leftover[g.name] -= ac.request.times(take)
                used_free[g.name] += ac.request.times(take)
                assigned[g.name] += take
                remaining -= take
            per_worker = g.worker.copies_of(ac.request)
            if not remaining or not per_worker:
                if not remaining:
                    break
                continue
            room = g.max_workers - current[g.name] - new[g.name]
            if g.local and budget_left is not None:
                room = min(room, _clip(budget_left).copies_of(g.worker))
            add = min(max(room, 0), math.ceil(remaining / per_worker))
            if add:
                placed = min(remaining, add * per_worker)
                new[g.name] += add
                if g.local and budget_left is not None:
                    budget_left -= g.worker.times(add)
                leftover[g.name] += g.worker.times(add) - ac.request.times(placed)
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
        decisions[g.name] = _decide(
            g, by_group[g.name], new[g.name], assigned[g.name], used_free[g.name], free_claimed[g.name],
            now, settings, surplus_since, last_claimed,
        )  # fmt: skip
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
    used_free: Resources,
    free_claimed: Resources,
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
    unclaimed = [w for w in workers if not w.claimed]
    # Unclaimed workers still hosting demand this cycle: what claimed workers' free room cannot take.
    needed = _needed_workers(_clip(used_free - free_claimed), g.worker)
    surplus = min(len(unclaimed) - needed, current - g.min_workers)
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
        (w for w in unclaimed if idle_for(w) >= settings.scale_down_delay),
        key=lambda w: (w.phase == "running", -idle_for(w), w.name),
    )
    remove = tuple(w.name for w in ready[:surplus])
    if not remove:
        return Decision(g.name, current, current, (), f"{surplus} in surplus, none unclaimed for the delay yet")
    return Decision(
        g.name, current, current - len(remove), remove, f"{len(remove)} workers unclaimed for the delay, removing them"
    )
