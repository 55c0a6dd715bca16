"""The Kubernetes test harness itself: the control plane enforces what k3s enforces (authentication, RBAC,
PodSecurity admission), kwok runs pods without containers, the stand-in provisioner binds claims, and np-guard's
analyzer reports what a set of NetworkPolicies allows, checked on cases whose answers are known by hand."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from support.kube import ApiError, ControlPlane, Kube, Pki, pod_security_verdict, strictest_level, unique, wait_for
from support.kubestack import LOCAL_PATH, provisioner
from support.npguard import Connection, Peer, allowed_connections, ports

RESTRICTED_POD: dict[str, Any] = {
    "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [
        {
            "name": "app",
            "image": "registry.example.org/app:1.0",
            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        }
    ],
}
PRIVILEGED_POD: dict[str, Any] = {
    "hostNetwork": True,
    "containers": [
        {"name": "agent", "image": "registry.example.org/agent:1.0", "securityContext": {"privileged": True}}
    ],
}


def test_requests_without_credentials_or_with_a_foreign_certificate_are_refused(kube: Kube, tmp_path: Path) -> None:
    session = requests.Session()
    session.trust_env = False
    anonymous = session.get(f"{kube.server}/api/v1/namespaces", verify=str(kube.ca), timeout=10)
    assert anonymous.status_code == 401  # anonymous-auth=false, as in k3s
    foreign = Pki(tmp_path).issue("intruder", "af-test-admin", ("system:masters",))  # same name, another CA
    stranger = session.get(
        f"{kube.server}/api/v1/namespaces", verify=str(kube.ca), cert=tuple(map(str, foreign)), timeout=10
    )
    assert stranger.status_code == 401
    assert kube.call("GET", "/api/v1/namespaces")["items"]  # while the session's own admin gets in


def test_a_service_account_without_a_role_may_do_nothing(kube: Kube) -> None:
    namespace = unique("rbac")
    kube.namespace(namespace)
    kube.apply({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "nobody", "namespace": namespace}})
    anybody = kube.with_token(kube.create_token(namespace, "nobody"))
    with pytest.raises(ApiError) as refused:
        anybody.list("v1", "Pod", namespace)
    assert refused.value.status == 403
    assert f"system:serviceaccount:{namespace}:nobody" in refused.value.message
    kube.delete("v1", "Namespace", namespace)


def test_pod_security_admits_a_restricted_pod_and_rejects_a_privileged_one(kube: Kube) -> None:
    assert pod_security_verdict(kube, "restricted", RESTRICTED_POD) is None
    assert pod_security_verdict(kube, "privileged", PRIVILEGED_POD) is None
    for level in ("baseline", "restricted"):
        verdict = pod_security_verdict(kube, level, PRIVILEGED_POD)
        assert verdict is not None and f'violates PodSecurity "{level}:latest"' in verdict
        assert "privileged" in verdict and "host namespaces" in verdict
    # Missing only the seccomp profile is enough for `restricted`, and fine for `baseline`.
    lax = {**RESTRICTED_POD, "securityContext": {"runAsNonRoot": True, "runAsUser": 65534}}
    assert "seccompProfile" in (pod_security_verdict(kube, "restricted", lax) or "")
    assert pod_security_verdict(kube, "baseline", lax) is None
    assert [strictest_level(kube, p) for p in (RESTRICTED_POD, lax, PRIVILEGED_POD)] == [
        "restricted",
        "baseline",
        "privileged",
    ]


def test_kwok_runs_a_deployment_on_a_node_that_fits_and_the_scheduler_refuses_one_that_does_not(kube: Kube) -> None:
    namespace, node = unique("kwok"), unique("node")
    kube.namespace(namespace)
    kube.create_node(
        node, {"kubernetes.io/hostname": node, "pool": namespace}, [], {"cpu": "2", "memory": "4Gi", "pods": "110"}
    )
    spec: dict[str, Any] = {"nodeSelector": {"pool": namespace}, "containers": [{"name": "c", "image": "x"}]}

    def deployment(name: str, cpu: str) -> dict[str, Any]:
        container = {"name": "c", "image": "x", "resources": {"requests": {"cpu": cpu}}}
        template = {"metadata": {"labels": {"app": name}}, "spec": {**spec, "containers": [container]}}
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}}, "template": template},
        }

    kube.apply(deployment("fits", "500m"))
    kube.apply(deployment("too-big", "3"))

    def two_running() -> list[dict[str, Any]] | None:
        pods = [p for p in kube.list("v1", "Pod", namespace, "app=fits") if p["status"].get("phase") == "Running"]
        return pods if len(pods) == 2 else None

    running = wait_for("two Running pods", two_running)
    assert len(running) == 2 and {p["spec"]["nodeName"] for p in running} == {node}
    assert all(p["status"].get("podIP", "").startswith("10.42.") for p in running)
    too_big = wait_for(
        "the scheduler's verdict",
        lambda: [
            c
            for p in kube.list("v1", "Pod", namespace, "app=too-big")
            for c in p["status"].get("conditions", [])
            if c.get("reason") == "Unschedulable"
        ],
    )
    assert "Insufficient cpu" in too_big[0]["message"]
    kube.delete("v1", "Namespace", namespace)  # unique: no need to wait
    kube.delete("v1", "Node", node)


def test_the_stand_in_provisioner_binds_a_claim_on_the_node_the_scheduler_chose(kube: Kube) -> None:
    namespace, node = unique("pvc"), unique("node")
    kube.namespace(namespace)
    kube.apply(LOCAL_PATH)
    kube.create_node(
        node, {"kubernetes.io/hostname": node, "pool": namespace}, [], {"cpu": "2", "memory": "4Gi", "pods": "110"}
    )
    claim = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": namespace},
            "spec": claim,
        }
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "user", "namespace": namespace},
        "spec": {
            "nodeSelector": {"pool": namespace},
            "containers": [{"name": "c", "image": "x", "volumeMounts": [{"name": "d", "mountPath": "/d"}]}],
            "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}],
        },
    }
    with provisioner(kube):
        kube.apply(pod)
        wait_for(
            "the pod to run",
            lambda: (kube.get("v1", "Pod", "user", namespace) or {}).get("status", {}).get("phase") == "Running",
        )
    bound = kube.get("v1", "PersistentVolumeClaim", "data", namespace)
    assert bound is not None and bound["status"]["phase"] == "Bound"
    assert bound["spec"]["storageClassName"] == "local-path"  # the default class, as k3s has it
    volume = kube.get("v1", "PersistentVolume", bound["spec"]["volumeName"])
    assert volume is not None
    term = volume["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]
    assert term["values"] == [node]
    kube.delete("v1", "Namespace", namespace)  # unique: no need to wait
    kube.delete("v1", "Node", node)
    kube.delete("v1", "PersistentVolume", volume["metadata"]["name"])


ORPHAN_PROBE = """
import os, signal, sys
sys.path.insert(0, sys.argv[1])
from support.kube import ControlPlane, find_tools
from support.ports import free_port
plane = ControlPlane(find_tools())
peer = free_port()
etcd = plane._start("etcd", [str(plane.tools.etcd), f"--data-dir={plane.dir}/etcd",
    f"--listen-client-urls=http://127.0.0.1:{free_port()}", "--advertise-client-urls=http://127.0.0.1:2379",
    f"--listen-peer-urls=http://127.0.0.1:{peer}", f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
    f"--initial-cluster=default=http://127.0.0.1:{peer}"])
print(etcd.popen.pid, plane.dir, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_test_process_leaves_no_orphan(kube_plane: ControlPlane) -> None:
    """A test run killed outright (no teardown) takes its servers with it: each gets a parent-death signal."""
    run = subprocess.run(
        [sys.executable, "-c", ORPHAN_PROBE, str(Path(__file__).parent)], capture_output=True, text=True, check=False
    )
    assert run.returncode == -signal.SIGKILL, run.stderr
    pid, folder = run.stdout.split()
    shutil.rmtree(folder, ignore_errors=True)

    def gone() -> bool:
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(f"etcd ({pid}) to die with its parent", gone, timeout=10)


# -- network policies -------------------------------------------------------------------------------------------


def workload(namespace: str, name: str, port: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": port}]}]},
            },
        },
    }


def policy(namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


APP = [
    {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "app", "labels": {"kubernetes.io/metadata.name": "app"}},
    },
    workload("app", "web", 8080),
    workload("app", "db", 5432),
]
WEB, DB = Peer("app", "web", "Deployment"), Peer("app", "db", "Deployment")
ANYWHERE = Peer("", "0.0.0.0-255.255.255.255", "IP")


def test_without_policies_everything_is_allowed() -> None:
    found = allowed_connections(APP)
    assert Connection(WEB, DB, None) in found and Connection(DB, WEB, None) in found
    assert all(c.ports is None for c in found)


def test_default_deny_with_one_allow_lets_exactly_that_flow_in() -> None:
    """Ingress denied to every pod of `app`, then web -> db on TCP 5432 allowed: that is the only way in; egress,
    which no policy restricts, goes anywhere."""
    policies = [
        policy("app", "default-deny", {"podSelector": {}, "policyTypes": ["Ingress"]}),
        policy(
            "app",
            "web-to-db",
            {
                "podSelector": {"matchLabels": {"app": "db"}},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                        "ports": [{"port": 5432, "protocol": "TCP"}],
                    }
                ],
            },
        ),
    ]
    found = allowed_connections(APP + policies)
    assert found == {
        Connection(WEB, DB, frozenset({("TCP", 5432, 5432)})),
        Connection(WEB, ANYWHERE, None),
        Connection(DB, ANYWHERE, None),
    }
    (web_to_db,) = [c for c in found if c.dst == DB]
    assert web_to_db.allows("TCP", 5432) and not web_to_db.allows("TCP", 5433) and not web_to_db.allows("UDP", 5432)


def test_the_analyzers_port_lists_are_read_as_ranges_per_protocol() -> None:
    assert ports("All Connections") is None
    assert ports("TCP 80,443,9000-9010,UDP 53") == frozenset(
        {("TCP", 80, 80), ("TCP", 443, 443), ("TCP", 9000, 9010), ("UDP", 53, 53)}
    )
