# ruff: noqa: F821
"""dask-gateway `extraConfig`: the cluster options handler, enforcing limits per IAM group.

Runs inside the `dask_gateway_config.py` the chart generates (`c` is the config), after the
settings snippet that binds `AF_DASK` (see components/dask/gateway.py). The user's groups are
the hub's (the gateway asks the hub about the user's token), synced from IAM at login.

What a request beyond a limit gets:
- refused, with a message naming the limit and the group it comes from: a worker larger than
  the facility's largest worker or than the group's cluster allows, GPUs for a user outside the
  GPU groups, an image that is not a notebook image, one cluster more than the group allows;
- capped: scaling beyond the workers (or cores, memory) the group allows per cluster; the
  gateway scales to the limit and warns the client with it.
A user in several groups gets, for each limit, the largest of their groups' values."""

import math

from dask_gateway_server.app import DaskGateway
from dask_gateway_server.models import ClusterStatus
from dask_gateway_server.options import Float, Integer, Options, String

_af = AF_DASK
_ACTIVE = [ClusterStatus.PENDING, ClusterStatus.RUNNING]
_LIMITS = ("cores", "memoryGib", "workersPerCluster", "clustersPerUser")
_GIB = 2**30


class AfLimitError(ValueError):
    """A request the user's groups do not allow; the gateway returns the message to the client."""


def af_user_limits(groups) -> dict:
    """For each limit, the largest value among the user's groups and the group giving it;
    empty when no group of the user has Dask limits."""
    mine = {g: _af["limits"][g] for g in sorted(groups) if g in _af["limits"]}
    best = {}
    for key in _LIMITS:
        for group, limits in mine.items():
            if key not in best or limits[key] > best[key][0]:
                best[key] = (limits[key], group)
    return best


def af_number(value: float):
    """An integral float as an int: the base cluster config counts cores in whole numbers."""
    return int(value) if float(value).is_integer() else value


def af_label_value(text: str) -> str:
    """A Kubernetes label value naming the user (63 characters of [A-Za-z0-9._-])."""
    cleaned = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in text)[:63]
    return cleaned.strip("._-") or "unknown"


def af_lifetime_command(seconds: int) -> list:
    """The scheduler, ended after `seconds` (the cluster's maximum lifetime). `dask scheduler`:
    distributed no longer installs the `dask-scheduler` the gateway runs by default."""
    return [_af["lifetimeCommand"], "--signal=TERM", "--kill-after=60", str(seconds), "dask", "scheduler"]


def af_overrides(options, user, limits: dict, active: int, known: frozenset) -> dict:
    """The cluster's configuration for this request, or AfLimitError."""
    name = user.name
    if not limits:
        groups = ", ".join(sorted(_af["limits"])) or "none"
        raise AfLimitError(f"{name} is in no group with Dask limits (groups with Dask: {groups})")
    clusters, clusters_group = limits["clustersPerUser"]
    if active >= clusters:
        raise AfLimitError(
            f"limit of {clusters} clusters per user of group {clusters_group} reached: "
            f"{name} has {active}; stop one first"
        )
    worker = _af["worker"]
    cores, memory, gpus = options.worker_cores, options.worker_memory, options.worker_gpus
    if cores > worker["maxCores"] or memory > worker["maxMemoryGib"]:
        raise AfLimitError(
            f"a worker of {cores:g} cores and {memory:g} GiB exceeds the facility's largest worker "
            f"({worker['maxCores']:g} cores, {worker['maxMemoryGib']:g} GiB)"
        )
    scheduler = _af["scheduler"]
    max_cores, cores_group = limits["cores"]
    max_memory, memory_group = limits["memoryGib"]
    if scheduler["cores"] + cores > max_cores or scheduler["memoryGib"] + memory > max_memory:
        raise AfLimitError(
            f"a worker of {cores:g} cores and {memory:g} GiB does not fit the cluster limit of group "
            f"{cores_group if scheduler['cores'] + cores > max_cores else memory_group} "
            f"({max_cores:g} cores, {max_memory:g} GiB per cluster, the scheduler's "
            f"{scheduler['cores']:g} cores and {scheduler['memoryGib']:g} GiB included)"
        )
    gpu_groups = sorted(set(user.groups) & set(_af["gpuGroups"]))
    if gpus and not gpu_groups:
        raise AfLimitError(f"GPU workers are for members of {', '.join(_af['gpuGroups']) or 'no group'} only")
    if gpus > worker["maxGpus"]:
        raise AfLimitError(f"at most {worker['maxGpus']} GPUs per worker (group {gpu_groups[0]})")
    image = options.image or _af["images"][0]
    if image not in _af["images"]:
        raise AfLimitError(f"image {image} is not a notebook image of the facility: {', '.join(_af['images'])}")
    workers, _ = limits["workersPerCluster"]
    pods = _af["pods"]
    label = {_af["userLabel"]: af_label_value(name), **_af["podLabels"]}
    worker_pod = pods["gpuWorker"] if gpus else pods["worker"]
    container = dict(pods["container"])
    if gpus:
        resource = _af["gpuResource"]
        container["resources"] = {"limits": {resource: str(gpus)}, "requests": {resource: str(gpus)}}
    overrides = {
        "image": image,
        "environment": dict(_af["environment"]),
        "scheduler_cores": af_number(scheduler["cores"]),
        "scheduler_cores_limit": af_number(scheduler["cores"]),
        "scheduler_memory": int(scheduler["memoryGib"] * _GIB),
        "scheduler_memory_limit": int(scheduler["memoryGib"] * _GIB),
        "worker_cores": af_number(cores),
        "worker_cores_limit": af_number(cores),
        "worker_memory": int(memory * _GIB),
        "worker_memory_limit": int(memory * _GIB),
        "worker_threads": max(1, math.ceil(cores)),
        "cluster_max_cores": max_cores,
        "cluster_max_memory": int(max_memory * _GIB),
        "cluster_max_workers": workers,
        "idle_timeout": _af["idleTimeoutSeconds"],
        "scheduler_cmd": af_lifetime_command(_af["maxLifetimeSeconds"]),
        "worker_cmd": ["dask", "worker"],
        "scheduler_extra_pod_config": pods["scheduler"],
        "scheduler_extra_container_config": pods["container"],
        "scheduler_extra_pod_labels": label,
        "worker_extra_pod_config": worker_pod,
        "worker_extra_container_config": container,
        "worker_extra_pod_labels": label,
    }
    # Keys the backend's cluster config does not have (the Kubernetes ones, on another backend)
    # are left out rather than passed to a class that would ignore them.
    return {key: value for key, value in overrides.items() if key in known}


async def af_cluster_options(user):
    """The options a user may set, with the user's limits and clusters bound in."""
    backend = DaskGateway.instance().backend
    limits = af_user_limits(user.groups)
    active = len(await backend.list_clusters(username=user.name, statuses=_ACTIVE)) if limits else 0
    known = frozenset(backend.cluster_config_class.class_trait_names())
    worker = _af["worker"]

    def handler(options, user):
        return af_overrides(options, user, limits, active, known)

    return Options(
        Float("worker_cores", default=worker["cores"], min=0.1, label="Worker cores"),
        Float("worker_memory", default=worker["memoryGib"], min=0.5, label="Worker memory (GiB)"),
        Integer("worker_gpus", default=0, min=0, label="GPUs per worker"),
        String("image", default=_af["images"][0], label="Image"),
        handler=handler,
    )


c.Backend.cluster_options = af_cluster_options
