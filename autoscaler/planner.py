"""The planner: from idle demand (by autocluster), worker groups and workers to the desired
size of each group. Pure: the same inputs and memory give the same plan.

Demand is matched to groups with real ClassAd matchmaking, one match per autocluster and
group (never per job). Capacity already there or coming (free slot resources, pending pods)
in every group the jobs match is used first, worker by worker in the order the negotiator
fills them (the packing policy rendered for the central manager), as the negotiator puts
jobs on any matching slot with room rather than wait for new ones; then new workers, within
each group's maximum and the site budget, in the order of preference (operator triggers
first), so demand a group cannot take overflows to the next matching one (offload groups
come last). A group whose START reads the slot's free room (its Cpus, Memory, GPUs or Disk,
as a GPU group's reserve for GPU jobs does) is matched slot by slot and job by job against
that room, as the startd checks each claim of a partitionable slot's leftovers.

Scale-up is immediate for a burst, and a group taking one (its load grew by more than a worker
since the last cycle) gets as many workers again for the jobs still arriving. Jobs that one
new worker would take, in a group whose workers run jobs, first wait up to PATIENCE seconds
for those jobs to end and free room (they would wait for a new worker's start-up anyway): a
worker started for a few small jobs would stay mostly idle for as long as they run.

Scale-in removes only unclaimed workers that none of this cycle's demand lands on, the
newest first (packing leaves them to drain), never a claimed one:
- at once when the group is draining: its load (what its jobs hold plus its queued jobs) has
  not grown for GROWTH_WINDOW seconds, so nothing new is coming;
- otherwise once unclaimed for the scale-down delay, with the group in surplus for as long,
  and only those beyond what its load needed at its peak of the last delay (at least
  GROWTH_WINDOW), or as many as the load has fallen below that peak: while the load holds near
  its peak an idle worker it needed is kept for the next jobs rather than removed and started
  again (less flapping), but one it never needed in that time goes."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import classad2

from .model import Autocluster, Decision, Group, Memory, Plan, Resources, Settings, Trigger, Worker

PATIENCE = 300.0
"""Seconds idle jobs that one new worker would take wait for room to come free in the group's
busy workers before that worker is started."""
GROWTH_WINDOW = 600.0
"""Seconds without any growth of a group's load after which the group is draining."""

Load = tuple[tuple[float, float], ...]
"""(time, load in workers' worth) samples of a group, oldest first."""


ROOM = frozenset({"cpus", "memory", "gpus", "disk"})
"""Attributes of a partitionable slot that hold its free room (what is left unclaimed)."""


def room_sensitive(g: Group) -> bool:
    """The group's START reads the slot's own free room (`MY.Cpus`, `GPUs`, ...): whether a job
    may start depends on what the slot has left, not only on the job."""
    start = g.machine_ad.lookup("Requirements")
    return any(ref.lower() in ROOM for ref in g.machine_ad.internalRefs(start))


def _order(groups: Iterable[Group], ac: Autocluster, triggers: Sequence[Trigger]) -> list[Group]:
    triggered = {t.group for t in triggers if t.constraint.eval(ac.ad) is True}
    return sorted(groups, key=lambda g: (g.name not in triggered, g.preference, g.name))


def candidates(ac: Autocluster, groups: Sequence[Group], triggers: Sequence[Trigger]) -> list[Group]:
    """Groups whose fresh slots the jobs match (both ways: the job's Requirements, the group's
    START): where new workers may be added for them; triggered groups first, then by preference."""
    return _order((g for g in groups if ac.ad.symmetricMatch(g.machine_ad)), ac, triggers)


class _Matcher:
    """Matchmaking of an autocluster with a slot of a room-sensitive group in a given state (its
    free room as Cpus, Memory and GPUs), cached per state: what the negotiator and the startd
    evaluate for each claim of the slot's leftovers."""

    def __init__(self) -> None:
        self._ads: dict[tuple[str, Resources], classad2.ClassAd] = {}
        self._matches: dict[tuple[int, str, Resources], bool] = {}

    def check(self, ac: Autocluster, g: Group) -> Callable[[Resources], bool]:
        """Whether a slot of `g` with this free room admits one more job of `ac`."""
        return lambda free: self.admits(ac, g, free)

    def admits(self, ac: Autocluster, g: Group, free: Resources) -> bool:
        key = (ac.id, g.name, free)
        found = self._matches.get(key)
        if found is None:
            ad = self._ads.get((g.name, free))
            if ad is None:
                ad = classad2.ClassAd(str(g.machine_ad))
                ad.update({"Cpus": int(free.cpus), "Memory": int(free.memory_mb), "GPUs": int(free.gpus)})
                self._ads[g.name, free] = ad
            found = self._matches[key] = bool(ac.ad.symmetricMatch(ad))
        return found


def packing_order(w: Worker) -> tuple[bool, bool, int, float, str]:
    """Sort key of a group's workers in the order the negotiator fills them: its packing rank
    (`NEGOTIATOR_PRE_JOB_RANK`, rendered by components/batch/htcondor.py) prefers the slot running
    the most jobs, then the oldest; pending workers have no slot yet."""
    return (w.phase == "pending", not w.claimed, -w.jobs, w.started, w.name)


def removal_order(w: Worker) -> tuple[bool, float, str]:
    """Sort key of surplus workers, first to go first: pending ones nobody needs, then the
    newest, the ones packing leaves to drain."""
    return (w.phase == "running", -w.started, w.name)


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


def _place(bins: list[_Bin], request: Resources, jobs: int, admits: Callable[[Resources], bool] | None = None) -> int:
    """Put up to `jobs` of `request` into `bins` in order; how many were placed. With `admits`
    (a room-sensitive START), each job is checked against the room its bin has left."""
    if admits is not None:
        return _place_checked(bins, request, jobs, admits)
    placed = 0
    # A bin without room for one job is skipped before counting copies (most are, once full).
    least = Resources(request.cpus, request.memory_mb, request.gpus).times(1 - 1e-9)
    for b in bins:
        free = b.free
        if free.cpus < least.cpus or free.memory_mb < least.memory_mb or free.gpus < least.gpus:
            continue
        n = min(jobs - placed, free.copies_of(request))
        if n:
            b.free -= request.times(n)
            b.used = True
            placed += n
            if placed == jobs:
                break
    return placed


def _place_checked(bins: list[_Bin], request: Resources, jobs: int, admits: Callable[[Resources], bool]) -> int:
    placed = 0
    for b in bins:
        while placed < jobs and b.free.copies_of(request) and admits(b.free):
            b.free -= request
            b.used = True
            placed += 1
        if placed == jobs:
            break
    return placed


def in_workers(resources: Resources, worker: Resources) -> float:
    """`resources` in workers' worth: the dimension that needs the most workers."""
    sizes = ((resources.cpus, worker.cpus), (resources.memory_mb, worker.memory_mb), (resources.gpus, worker.gpus))
    return max((have / size for have, size in sizes if size > 0), default=0.0)


def plan(
    groups: Sequence[Group],
    workers: Iterable[Worker],
    demand: Sequence[Autocluster],
    now: float,
    memory: Memory | None,
    settings: Settings,
    triggers: Sequence[Trigger] = (),
) -> Plan:
    memory = memory or Memory()
    by_group: dict[str, list[Worker]] = defaultdict(list)
    for worker in workers:
        by_group[worker.group].append(worker)
    current = {g.name: len(by_group[g.name]) for g in groups}

    # Capacity there or coming, worker by worker in the order the negotiator fills it: claimed
    # workers' spare room first (so idle ones can go), then idle running ones, then pending
    # ones (whole).
    bins: dict[str, list[_Bin]] = {}
    for g in groups:
        ordered = sorted(by_group[g.name], key=packing_order)
        bins[g.name] = [_Bin(w.free if w.phase == "running" else g.worker, w.name, w.claimed) for w in ordered]

    budget_left = settings.budget
    if budget_left is not None:
        budget_left = budget_left - sum((g.worker.times(current[g.name]) for g in groups if g.local), Resources())

    def room_for(g: Group) -> int:
        """New workers the group may still get: its maximum, and the site budget if local."""
        room = g.max_workers - current[g.name] - new[g.name]
        if g.local and budget_left is not None:
            room = min(room, _clip(budget_left).copies_of(g.worker))
        return max(room, 0)

    def add(g: Group, count: int) -> None:
        nonlocal budget_left
        new[g.name] += count
        if g.local and budget_left is not None:
            budget_left -= g.worker.times(count)

    new = {g.name: 0 for g in groups}
    assigned = {g.name: 0 for g in groups}
    # What each group carries: the resources its jobs hold, then the idle jobs assigned to it.
    load = {
        g.name: sum((g.worker - w.free for w in by_group[g.name] if w.phase == "running"), Resources()) for g in groups
    }
    unmatched: list[tuple[int, int]] = []
    unserved: list[tuple[int, int]] = []
    sensitive = {g.name for g in groups if room_sensitive(g)}
    matcher = _Matcher()
    for ac in sorted(demand, key=lambda a: a.id):
        options = candidates(ac, groups, triggers)
        # Room there or coming in every group the jobs may land on (a room-sensitive group's
        # slots are matched in their own state), then new workers where fresh slots match.
        landing = _order([*options, *(g for g in groups if g.name in sensitive and g not in options)], ac, triggers)
        remaining = ac.idle
        for g in landing:
            check = matcher.check(ac, g) if g.name in sensitive else None
            taken = _place(bins[g.name], ac.request, remaining, check)
            assigned[g.name] += taken
            load[g.name] += ac.request.times(taken)
            remaining -= taken
            if not remaining:
                break
        for g in options if remaining else ():
            check = matcher.check(ac, g) if g.name in sensitive else None
            per_worker = _place([_Bin(g.worker)], ac.request, remaining, check)  # what one fresh worker takes
            if not per_worker:
                continue
            count = min(room_for(g), math.ceil(remaining / per_worker))
            planned = [_Bin(g.worker) for _ in range(count)]
            taken = _place(planned, ac.request, remaining, check)
            planned = [b for b in planned if b.used]
            bins[g.name] += planned
            add(g, len(planned))
            assigned[g.name] += taken
            load[g.name] += ac.request.times(taken)
            remaining -= taken
            if not remaining:
                break
        if remaining == ac.idle and not options:
            unmatched.append((ac.id, ac.idle))
        elif remaining:
            unserved.append((ac.id, remaining))

    history: dict[str, Load] = {}
    for g in groups:
        # Samples of the last delay (at least GROWTH_WINDOW), and the one before, so they span it.
        window = max(GROWTH_WINDOW, settings.scale_down_delay)
        past = [(t, x) for t, x in memory.load.get(g.name, ()) if t < now]
        first = next((i for i, (t, _) in enumerate(past) if t >= now - window), len(past))
        before = tuple(past[max(first - 1, 0) :])
        history[g.name] = (*before, (now, in_workers(load[g.name], g.worker)))
        # A burst: the load grew by more than a worker since the last cycle and needs new
        # workers; the jobs still arriving get as many workers again, one start-up sooner.
        growth = history[g.name][-1][1] - before[-1][1] if before else 0.0
        if new[g.name] > 1 and growth > 1 + 1e-9:
            add(g, min(room_for(g), math.floor(growth + 1e-9)))

    # Patience: a group whose workers run jobs, short of room for no more than one new worker's
    # worth of jobs, waits for its jobs to end and free room before starting one (the jobs would
    # wait for its start-up anyway); a burst, or a group with nothing running, scales at once.
    wanting_since = {}
    waiting: dict[str, int] = {}
    for g in groups:
        busy = any(w.claimed and w.phase == "running" for w in by_group[g.name])
        if new[g.name] == 1 and current[g.name] >= g.min_workers and busy:
            wanting_since[g.name] = since = memory.wanting_since.get(g.name, now)
            if now - since < PATIENCE:
                waiting[g.name], new[g.name] = new[g.name], 0

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
        if g.name in waiting:
            surplus_since.pop(g.name, None)
            since = wanting_since[g.name]
            waited = f"{now - since:.0f}s of {PATIENCE:.0f}s"
            why = f"{assigned[g.name]} idle jobs wait for room ({waited}), then get a new worker"
            decisions[g.name] = Decision(g.name, current[g.name], current[g.name], (), why)
            continue
        decisions[g.name] = _decide(
            g,
            by_group[g.name],
            new[g.name],
            assigned[g.name],
            hosting,
            history[g.name],
            now,
            settings,
            surplus_since,
            last_claimed,
        )
    return Plan(
        decisions=decisions,
        assigned=assigned,
        unmatched=tuple(unmatched),
        unserved=tuple(unserved),
        memory=Memory(
            surplus_since=surplus_since, last_claimed=last_claimed, load=history, wanting_since=wanting_since
        ),
    )


def draining(history: Load, now: float) -> bool:
    """The load has not grown for GROWTH_WINDOW seconds, and was watched for that long: no
    sample is above the one before it, from the last sample before the window on."""
    if history[0][0] > now - GROWTH_WINDOW:
        return False
    return all(
        later <= earlier + 1e-9 for (_, earlier), (t, later) in zip(history, history[1:]) if t > now - GROWTH_WINDOW
    )


def decline(history: Load) -> float:
    """How far the load is below its peak over the history, in workers."""
    return max(x for _, x in history) - history[-1][1]


def _decide(
    g: Group,
    workers: list[Worker],
    new: int,
    assigned: int,
    hosting: set[str],
    history: Load,
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
    spare.sort(key=removal_order)
    if draining(history, now):
        remove = tuple(w.name for w in spare[:surplus])
        why = f"its load has not grown for {GROWTH_WINDOW:.0f}s"
    elif now - since < settings.scale_down_delay:
        return Decision(
            g.name, current, current, (), f"{surplus} workers in surplus for {now - since:.0f}s, waiting for the delay"
        )
    else:
        delay = settings.scale_down_delay
        ready = [w.name for w in spare if now - last_claimed.get(w.name, w.started) >= delay]
        # Kept: the workers the load's recent peak needed (for the next jobs of a load that holds).
        peak = math.ceil(max(x for _, x in history) - 1e-9)
        fallen = max(math.floor(decline(history) + 1e-9), current - peak)
        remove = tuple(ready[: min(surplus, fallen)])
        why = f"unclaimed for the delay, more than the load's recent peak of {peak} workers needs"
        if ready and not remove:
            return Decision(g.name, current, current, (), f"{len(ready)} idle for the delay, kept: the load holds")
    if not remove:
        return Decision(g.name, current, current, (), f"{surplus} in surplus, none unclaimed for the delay yet")
    return Decision(g.name, current, current - len(remove), remove, f"{len(remove)} workers go: {why}")
