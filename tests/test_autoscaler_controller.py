"""The controller around the planner: what it reads, what it changes and in which order, the
Kubernetes calls it makes (against a fake API server speaking the real REST paths), its
settings document and its Prometheus metrics."""

from __future__ import annotations

import datetime
import itertools
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from autoscaler.condor import Slot, autoclusters, parse_ads, slot_worker
from autoscaler.controller import cycle, observe
from autoscaler.kube import DELETION_COST, GROUP_LABEL, KubeApi, Pod
from autoscaler.metrics import Metrics, serve
from autoscaler.model import Autocluster, Memory, Resources
from autoscaler.settings import ControllerSettings, GroupSettings, TriggerSettings

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "condor"
NOW = 1_800_000_000.0

SETTINGS = ControllerSettings(
    namespace="condor",
    collector="af-condor-cm.condor.svc:9618",
    schedds=["af-condor-schedd"],
    groups=[
        GroupSettings("cpu", "af-condor-cpu", 8, 30000, 0, "true", 0, 10, 0),
        GroupSettings("gpu-a100", "af-condor-gpu-a100", 16, 60000, 1, "RequestGPUs > 0", 0, 2, 10),
    ],
    interval_seconds=30,
    scale_down_delay_seconds=600,
    metrics_port=9100,
    triggers=[TriggerSettings('RequestGPUs > 0 && AcctGroup == "cms.ml"', "gpu-a100")],
)
DRAINING = Memory(
    surplus_since={"cpu": NOW - 700}, load={"cpu": tuple((NOW - age, 0.75) for age in range(700, 0, -30))}
)
"""A cpu group whose load (the claimed worker's 6 of 8 cores) has not grown for over ten minutes."""


class FakeBatch:
    def __init__(self, demand, slots):
        self._demand, self._slots, self.drained = demand, slots, []

    def demand(self):
        return self._demand

    def slots(self):
        return self._slots

    def drain(self, pod):
        self.drained.append(pod)
        if pod in self.unreachable:
            raise RuntimeError(f"{pod}: AUTHENTICATE:1003:Failed to authenticate")

    unreachable: frozenset[str] = frozenset()


class FakeCluster:
    def __init__(self, pods):
        self.pods, self.calls = pods, []

    def worker_pods(self):
        return self.pods

    def set_deletion_cost(self, pod, cost):
        self.calls.append(("cost", pod, cost))

    def scale(self, deployment, replicas):
        self.calls.append(("scale", deployment, replicas))


def test_settings_round_trip_through_json():
    assert ControllerSettings.from_json(SETTINGS.to_json()) == SETTINGS
    budget = ControllerSettings(**{**SETTINGS.__dict__, "budget": Resources(64, 256000, 2)})
    assert ControllerSettings.from_json(budget.to_json()).budget == Resources(64, 256000, 2)


def test_a_running_pod_without_a_slot_yet_counts_as_coming():
    pods = [
        Pod("a", "cpu", "Running", NOW, False),
        Pod("b", "cpu", "Running", NOW, False),
        Pod("c", "cpu", "Failed", NOW, False),
    ]
    slots = [Slot("a", "cpu", True, Resources(2, 1000), "slot1@a")]
    workers = observe(pods, slots)
    assert [(w.name, w.phase, w.claimed) for w in workers] == [("a", "running", True), ("b", "pending", False)]


def test_scale_up_sets_replicas_from_the_queue():
    batch = FakeBatch(autoclusters(parse_ads((FIXTURES / "queue_mixed.txt").read_text())), [])
    cluster = FakeCluster([])
    metrics = Metrics()
    cycle(SETTINGS, batch, cluster, Memory(), NOW, metrics)
    assert ("scale", "af-condor-cpu", 10) in cluster.calls and ("scale", "af-condor-gpu-a100", 2) in cluster.calls
    assert batch.drained == [] and not [c for c in cluster.calls if c[0] == "cost"]
    text = metrics.render()
    assert 'af_autoscaler_workers_desired{group="cpu"} 10' in text
    assert "af_autoscaler_unmatched_jobs 9" in text  # autoclusters 3 (7 jobs) and 4 (2 jobs)


def test_running_jobs_and_cores_are_exported_per_group():
    slots = [s for s in map(slot_worker, parse_ads((FIXTURES / "slots_busy.txt").read_text())) if s]
    pods = [Pod(s.pod, "cpu", "Running", NOW - 7200, False) for s in slots]
    # What the pool runs, per group, from the partitionable slots' ads.
    metrics = Metrics()
    cycle(SETTINGS, FakeBatch([], slots), FakeCluster(pods), Memory(), NOW, metrics)
    text = metrics.render()
    jobs = sum(s.jobs for s in slots)
    assert jobs > 0 and f'af_autoscaler_running_jobs{{group="cpu"}} {jobs}' in text
    busy = sum(s.cpus - s.free.cpus for s in slots)
    assert f'af_autoscaler_busy_cores{{group="cpu"}} {busy:g}' in text and busy > 0
    assert f'af_autoscaler_cores{{group="cpu"}} {sum(s.cpus for s in slots):g}' in text


def test_a_failed_drain_or_a_remote_group_does_not_stop_the_scale_in():
    slots = [s for s in map(slot_worker, parse_ads((FIXTURES / "slots_busy.txt").read_text())) if s]
    pods = [Pod(s.pod, "cpu", "Running", NOW - 7200, False) for s in slots]
    batch, cluster = FakeBatch([], slots), FakeCluster(pods)
    batch.unreachable = frozenset({"af-condor-cpu-7d9f-bbbb2"})
    cycle(SETTINGS, batch, cluster, DRAINING, NOW, Metrics())
    assert len(batch.drained) == 3 and cluster.calls[-1] == ("scale", "af-condor-cpu", 1)
    # The same workers in an offload group: nobody is asked to drain, the scale-in happens.
    remote = ControllerSettings(
        **{
            **SETTINGS.__dict__,
            "groups": [GroupSettings("cpu", "af-condor-cpu", 8, 30000, 0, "true", 0, 10, 100, local=False)],
        }
    )
    batch, cluster = FakeBatch([], slots), FakeCluster(pods)
    cycle(remote, batch, cluster, DRAINING, NOW, Metrics())
    assert batch.drained == [] and cluster.calls[-1] == ("scale", "af-condor-cpu", 1)


# --- the Kubernetes adapter against a fake API server --------------------------------------------


class FakeApi(BaseHTTPRequestHandler):
    pods: list[dict] = []
    requests: list[tuple[str, str, str, dict | None, str]] = []

    def _reply(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        FakeApi.requests.append(
            (method, self.path, self.headers.get("Content-Type", ""), body, self.headers.get("Authorization", ""))
        )

    def do_GET(self) -> None:
        self._record("GET")
        self._reply({"kind": "PodList", "items": FakeApi.pods})

    def do_PATCH(self) -> None:
        self._record("PATCH")
        self._reply({})

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def api():
    FakeApi.requests = []
    FakeApi.pods = [
        {
            "metadata": {"name": "w1", "labels": {GROUP_LABEL: "cpu"}, "creationTimestamp": "2026-11-24T10:00:00Z"},
            "status": {"phase": "Running"},
        },
        {
            "metadata": {
                "name": "w2",
                "labels": {GROUP_LABEL: "cpu"},
                "creationTimestamp": "2026-11-24T10:00:00Z",
                "deletionTimestamp": "2026-11-24T11:00:00Z",
            },
            "status": {"phase": "Running"},
        },
        {
            "metadata": {"name": "other", "labels": {}, "creationTimestamp": "2026-11-24T10:00:00Z"},
            "status": {"phase": "Running"},
        },
    ]
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield KubeApi(f"http://127.0.0.1:{server.server_port}", "sa-token", "condor", None)
    server.shutdown()
    server.server_close()


def test_kube_adapter_lists_worker_pods_by_label_and_skips_deleting_ones(api):
    pods = api.worker_pods()
    assert [(p.name, p.group, p.phase) for p in pods] == [("w1", "cpu", "Running")]
    assert pods[0].created == datetime.datetime(2026, 11, 24, 10, tzinfo=datetime.UTC).timestamp()
    method, path, _, _, auth = FakeApi.requests[0]
    assert (method, auth) == ("GET", "Bearer sa-token")
    assert path == "/api/v1/namespaces/condor/pods?labelSelector=af.infn.it%2Fworker-group"


def test_kube_adapter_patches_only_annotations_and_the_scale_subresource(api):
    api.set_deletion_cost("w1", -1000)
    api.scale("af-condor-cpu", 3)
    cost, scale = FakeApi.requests
    assert cost[:4] == (
        "PATCH",
        "/api/v1/namespaces/condor/pods/w1",
        "application/merge-patch+json",
        {"metadata": {"annotations": {DELETION_COST: "-1000"}}},
    )
    assert scale[:4] == (
        "PATCH",
        "/apis/apps/v1/namespaces/condor/deployments/af-condor-cpu/scale",
        "application/merge-patch+json",
        {"spec": {"replicas": 3}},
    )


def test_metrics_are_served_in_the_exposition_format():
    metrics = Metrics()
    metrics.error()
    server = serve(metrics, 0)
    try:
        text = requests.get(f"http://127.0.0.1:{server.server_port}/metrics", timeout=5).text
    finally:
        server.shutdown()
    assert "# TYPE af_autoscaler_cycle_errors_total counter\naf_autoscaler_cycle_errors_total 1\n" in text
    for name in ("idle_jobs", "workers_desired", "workers_actual", "decisions_total", "cycle_seconds"):
        assert f"# TYPE af_autoscaler_{name} " in text


# --- a scale-in as the Kubernetes API receives it ------------------------------------------------

INT32 = range(-(2**31), 2**31)


def replicaset_victims(costs: dict[str, int], count: int) -> list[set[str]]:
    """Which Running, ready pods a ReplicaSet scaling down by `count` may delete, by Kubernetes' rule for
    pods equal in phase and readiness: lowest `controller.kubernetes.io/pod-deletion-cost` first (0 when
    unset); pods of equal cost may go in any order. Returns every set it may pick."""
    ordered = sorted(costs.values())
    if count == 0:
        return [set()]
    threshold = ordered[count - 1]
    sure = {p for p, c in costs.items() if c < threshold}
    tied = [p for p, c in costs.items() if c == threshold]
    need = count - len(sure)
    return [sure | set(pick) for pick in itertools.combinations(sorted(tied), need)]


def test_a_scale_in_reaches_the_api_as_costs_that_make_kubernetes_remove_only_idle_workers(api):
    """Through the real Kubernetes adapter: drains first, then deletion costs, then the replicas. From
    what the API server received alone, a ReplicaSet scaling down removes exactly the chosen idle
    workers, and any further scale-down takes another idle worker before a claimed one."""
    slots = [s for s in map(slot_worker, parse_ads((FIXTURES / "slots_busy.txt").read_text())) if s]
    claimed = {s.pod for s in slots if s.claimed}
    FakeApi.pods = [
        {
            "metadata": {"name": s.pod, "labels": {GROUP_LABEL: "cpu"}, "creationTimestamp": f"2026-11-24T10:0{i}:00Z"},
            "status": {"phase": "Running"},
        }
        for i, s in enumerate(slots)
    ]
    # Eight one-core jobs queued: one idle worker takes them and stays; the group has been at that load long.
    ad = autoclusters(parse_ads((FIXTURES / "queue_mixed.txt").read_text()))[0].ad
    demand = [Autocluster(1, 8, Resources(1, 2000), ad)]
    load = 0.75 + 1.0
    memory = Memory(load={"cpu": tuple((NOW - age, load) for age in range(700, 0, -30))})
    events: list[tuple[str, ...]] = []

    class Batch(FakeBatch):
        def drain(self, pod):
            events.append(("drain", pod, str(len(FakeApi.requests))))
            super().drain(pod)

    batch = Batch(demand, slots)
    cycle(SETTINGS, batch, api, memory, NOW, Metrics())
    patches = [r for r in FakeApi.requests if r[0] == "PATCH"]
    costs = {
        path.rsplit("/", 1)[-1]: body["metadata"]["annotations"][DELETION_COST]
        for _, path, kind, body, _ in patches
        if path.startswith("/api/v1/namespaces/condor/pods/") and kind == "application/merge-patch+json"
    }
    scales = [(path, body) for _, path, _, body, _ in patches if path.endswith("/scale")]
    assert scales == [("/apis/apps/v1/namespaces/condor/deployments/af-condor-cpu/scale", {"spec": {"replicas": 2}})]
    assert patches[-1][1].endswith("/scale"), "replicas go down only after every pod is marked"
    # Every pod of the group is marked, with an int32 as Kubernetes requires of this annotation.
    assert set(costs) == {s.pod for s in slots}
    assert all(isinstance(c, str) and int(c) in INT32 for c in costs.values())
    cost = {pod: int(c) for pod, c in costs.items()}
    removed = {pod for pod in cost if pod not in claimed} - {"af-condor-cpu-7d9f-bbbb2"}
    # Drains before any change to Kubernetes, and only of the workers that go.
    assert {pod for _, pod, _ in events} == removed and all(at == "1" for *_, at in events)  # after the one GET
    # What a ReplicaSet makes of those costs: the two chosen, exactly.
    assert replicaset_victims(cost, 2) == [removed]
    # One more (a scale-down racing this one) takes the idle worker that stays, never the claimed one.
    assert replicaset_victims(cost, 3) == [removed | {"af-condor-cpu-7d9f-bbbb2"}]
    assert all(cost[c] > cost[p] for c in claimed for p in cost if p not in claimed)


# --- the Python the controller runs on -----------------------------------------------------------

IMAGE_PYTHON = "3.9"
"""Python of the pool's pinned HTCondor images (htcondor/<role>:<version>-el9): AlmaLinux 9 based since
23.8.1, with `condor` requiring `python3-condor` (htcondor2 and classad2 for the system python3, 3.9 on
EL9); the controller runs there from a ConfigMap."""


def _vermin(*paths: str) -> subprocess.CompletedProcess:
    code = 'import sys; from vermin import main; sys.argv[0] = "vermin"; sys.exit(main())'
    args = [sys.executable, "-c", code, f"-t={IMAGE_PYTHON}-", "--no-tips", "--violations", *paths]
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def test_the_controller_needs_no_python_newer_than_the_htcondor_images(tmp_path):
    done = _vermin(str(ROOT / "autoscaler"))
    assert done.returncode == 0 and "Target versions not met" not in done.stdout, done.stdout + done.stderr
    # The check does catch what 3.9 lacks.
    newer = tmp_path / "newer.py"
    newer.write_text("import itertools\npairs = list(itertools.pairwise([1, 2, 3]))\nzip([1], [2], strict=True)\n")
    done = _vermin(str(newer))
    assert done.returncode != 0 and "itertools.pairwise" in done.stdout and "zip(strict)" in done.stdout
