"""The batch-system adapter: HTCondor's view of demand and workers as planner data.

`read_demand` and `read_slots` query the schedd and the collector (I/O); the conversions are
pure functions of ClassAds, tested with `condor_q -long` / `condor_status -long` text."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import classad2

from .model import Autocluster, Resources

GROUP_ATTRIBUTE = "AfWorkerGroup"
"""Machine attribute naming a slot's worker group (set in the workers' config)."""
POD_ATTRIBUTE = "AfPodName"
"""Machine attribute with the worker's pod name (set in the workers' config)."""
IN_CLUSTER_ATTRIBUTE = "AfInCluster"
"""Machine attribute: the slot runs in the cluster (False on offload gateways)."""
SIGNIFICANT = (
    "RequestCpus",
    "RequestMemory",
    "RequestGPUs",
    "Requirements",
    "WantOffload",
    "AcctGroup",
    "AuthTokenGroups",
    "MaxWallTimeMins",
)
"""Job attributes the groups' START and the jobs' Requirements read: what an autocluster carries."""


def parse_ads(text: str) -> list[classad2.ClassAd]:
    """Ads in the long format (`condor_q -long`, `condor_status -long`): blank-line separated."""
    return list(classad2.parseAds(text))


def _number(ad: classad2.ClassAd, name: str, default: float = 0.0) -> float:
    value = ad.eval(name) if name in ad else default
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def machine_ad(group: str, worker: Resources, start: str, in_cluster: bool = True) -> classad2.ClassAd:
    """What a fresh slot of a worker group looks like to matchmaking; START as Requirements."""
    ad = classad2.ClassAd(
        {
            "MyType": "Machine",
            "Arch": "X86_64",
            "OpSys": "LINUX",
            "Cpus": int(worker.cpus),
            "Memory": int(worker.memory_mb),
            "GPUs": int(worker.gpus),
            "Disk": 100_000_000,
            "HasFileTransfer": True,
            "PartitionableSlot": True,
            GROUP_ATTRIBUTE: group,
            IN_CLUSTER_ATTRIBUTE: in_cluster,
        }
    )
    ad["Requirements"] = classad2.ExprTree(start)
    return ad


def autocluster(ad: classad2.ClassAd) -> Autocluster:
    """One ad of `Schedd.query(opts=QueryOpt.AutoCluster)` over idle jobs."""
    request = Resources(_number(ad, "RequestCpus", 1), _number(ad, "RequestMemory"), _number(ad, "RequestGPUs"))
    return Autocluster(id=int(ad["AutoClusterId"]), idle=int(ad.get("JobCount", 0)), request=request, ad=ad)


def autoclusters(ads: Iterable[classad2.ClassAd]) -> list[Autocluster]:
    return [autocluster(ad) for ad in ads if int(ad.get("JobCount", 0)) > 0]


@dataclass(frozen=True)
class Slot:
    """A worker's partitionable slot as the collector reports it."""

    pod: str
    group: str
    claimed: bool
    free: Resources
    name: str
    """The startd's name, for draining it."""
    jobs: int = 0
    """Running claims (dynamic slots): one per running job."""
    cpus: float = 0.0
    """Cores of the whole slot, claimed or not."""


def slot_worker(ad: classad2.ClassAd) -> Slot | None:
    """The partitionable slot of a worker; None for other slots."""
    if ad.get("PartitionableSlot") is not True or GROUP_ATTRIBUTE not in ad:
        return None
    pod = str(ad.get(POD_ATTRIBUTE) or str(ad.get("Machine", ad.get("Name", ""))).split("@")[-1].split(".")[0])
    free = Resources(_number(ad, "Cpus"), _number(ad, "Memory"), _number(ad, "GPUs"))
    jobs = int(ad.get("NumDynamicSlots", 0))
    total = _number(ad, "TotalSlotCpus", free.cpus)
    claimed = jobs > 0 or free.cpus < total
    return Slot(pod, str(ad[GROUP_ATTRIBUTE]), claimed, free, str(ad.get("Name", pod)), jobs, total)


class HTCondorBatch:  # pragma: no cover - needs a pool; the conversions above are tested
    """Demand from the schedds (aggregated by autocluster), slots from the collector, and
    peaceful drains, authenticated with the autoscaler's IDTOKEN."""

    def __init__(self, collector: str, schedds: list[str]) -> None:
        import htcondor2

        self._htcondor = htcondor2
        self._collector = htcondor2.Collector(collector)
        self._schedds = schedds
        self._startds: dict[str, classad2.ClassAd] = {}

    def demand(self) -> list[Autocluster]:
        htcondor2 = self._htcondor
        projection = ["AutoClusterId", "JobCount", *SIGNIFICANT]
        found: list[Autocluster] = []
        for name in self._schedds:
            schedd = htcondor2.Schedd(self._collector.locate(htcondor2.DaemonType.Schedd, name))
            ads = schedd.query(constraint="JobStatus == 1", opts=htcondor2.QueryOpt.AutoCluster, projection=projection)
            # Autocluster ids are per schedd: keep them distinct across schedds.
            found += [Autocluster(len(found) + i, a.idle, a.request, a.ad) for i, a in enumerate(autoclusters(ads))]
        return found

    def slots(self) -> list[Slot]:
        htcondor2 = self._htcondor
        ads = self._collector.query(
            htcondor2.AdType.Startd, constraint=f"PartitionableSlot && !isUndefined({GROUP_ATTRIBUTE})"
        )
        pairs = [(slot_worker(ad), ad) for ad in ads]
        self._startds = {s.pod: ad for s, ad in pairs if s is not None}
        return [s for s, _ in pairs if s is not None]

    def drain(self, pod: str) -> None:
        htcondor2 = self._htcondor
        ad = self._startds.get(pod)
        if ad is not None:
            location = self._collector.locate(htcondor2.DaemonType.Startd, str(ad["Machine"]))
            htcondor2.Startd(location).drainJobs(
                htcondor2.DrainType.Graceful, start_expr="false", reason="af-autoscaler: scale-in of an idle worker"
            )
