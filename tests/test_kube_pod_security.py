"""Pod Security, judged by the API server's own PodSecurity admission (tests/support/kube.py): each namespace of a
stack's plan carries the level `af:policy.podSecurity` declares for it, pinned to the cluster's minor; every pod of
the plan and every chart stand-in (tests/support/charts, as our values render them) is admitted under its
namespace's labels, which do refuse what their level forbids; and the policy pack's privileged-workload rule reads
a pod as Pod Security's `baseline` level does.

The shipped stacks, and cms-bari with what they leave off (offload gateways, the cache's upstream credential, the
squid). Pods are created with a server-side dry run in namespaces labelled like the plan's (nothing to clean up)."""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import pytest
from conftest import SHIPPED_STACKS
from support.kube import Kube, admission_refusal, enforcing, labelled_namespace
from support.kubecharts import chart_workloads
from support.kubeplan import plan_objects, pod_spec_of, preview, workloads
from test_wiring import plan_of, variant

from components.config.facility import FacilityConfig
from components.config.loader import build_config
from policy.workloads import needs_privileged

STACKS = [*SHIPPED_STACKS, "cms-bari-full"]
ENFORCE, VERSION = "pod-security.kubernetes.io/enforce", "pod-security.kubernetes.io/enforce-version"
RESTRICTED_CONTAINER = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
LOOSER = {
    "restricted": {"containers": [{"name": "c", "image": "x:1"}]},  # root, capabilities, no seccomp: baseline
    "baseline": {"hostNetwork": True, "containers": [{"name": "c", "image": "x:1"}]},  # privileged
}
"""For a namespace's level, a pod only the next looser level admits."""


@cache
def stack_plan(stack: str) -> dict[str, Any]:
    """The plan the Kubernetes tests deploy (autoscaler on where the pool runs), or the variant's."""
    return preview(stack).plan if stack in SHIPPED_STACKS else plan_of(stack)


def stack_config(stack: str) -> FacilityConfig:
    if stack in SHIPPED_STACKS:
        return preview(stack).config
    _, values, secret = variant(stack)
    return build_config(values, secret)


def pods(plan: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(namespace, what, pod spec) of every workload of the plan and every chart stand-in."""
    objects, _ = plan_objects(plan)
    found = [(o.namespace or "", o.ref, pod_spec_of(o.manifest)) for o in workloads(objects)]
    for chart in chart_workloads(plan):
        found.append((chart.stand_in.namespace, chart.ref, chart.stand_in.pod(default_scheduler=True)["spec"]))
    return found


def namespace_labels(plan: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {
        r["inputs"]["metadata"]["name"]: dict(r["inputs"]["metadata"].get("labels") or {})
        for r in plan["resources"]
        if r["type"] == "kubernetes:core/v1:Namespace"
    }


@pytest.mark.parametrize("stack", STACKS)
def test_every_namespace_enforces_the_level_its_config_declares(stack: str) -> None:
    plan, cfg = stack_plan(stack), stack_config(stack)
    labels = namespace_labels(plan)
    homeless = sorted({what for namespace, what, _ in pods(plan) if namespace not in labels})
    assert not homeless, f"pods in a namespace the plan does not create (so nothing labels it): {homeless}"
    version = cfg.pod_security_version()
    if cfg.cluster.mode == "openstack":
        assert cfg.cluster.k3s.version.startswith(version + ".")  # the cluster's minor
    for namespace, given in labels.items():
        assert given.get(ENFORCE) == cfg.policy.pod_security.level(namespace), namespace
        assert given.get(VERSION) == version, namespace
    privileged = {n for n, given in labels.items() if given[ENFORCE] == "privileged"}
    assert privileged <= {"cvmfs", "nvidia-device-plugin", "monitoring"}  # the node agents' namespaces


@pytest.mark.parametrize("stack", STACKS)
def test_pod_security_admits_every_pod_and_refuses_a_looser_one(stack: str, kube: Kube) -> None:
    """Every pod of the plan and every chart stand-in, dry-run in a namespace labelled like its own; and, in each
    namespace not `privileged`, a pod that needs the next looser level is refused: the labels enforce."""
    plan = stack_plan(stack)
    labels = namespace_labels(plan)
    by_namespace: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for namespace, what, spec in pods(plan):
        by_namespace.setdefault(namespace, []).append((what, spec))
    refused, admitted, enforced = [], 0, 0
    for namespace, given in sorted(labels.items()):
        with labelled_namespace(kube, given) as probe:
            for what, spec in by_namespace.get(namespace, []):
                verdict = admission_refusal(kube, probe, spec)
                if verdict is None:
                    admitted += 1
                else:
                    refused.append(f"{what} in {namespace} ({given[ENFORCE]}): {verdict}")
            if given[ENFORCE] in LOOSER:
                assert admission_refusal(kube, probe, LOOSER[given[ENFORCE]]) is not None, namespace
                enforced += 1
    assert not refused, "pods the PodSecurity admission refuses:\n" + "\n".join(refused)
    assert admitted and enforced
    print(f"{stack}: {admitted} pods admitted in {len(labels)} namespaces, {enforced} of which refuse a looser pod")


def _spec(**fields: Any) -> dict[str, Any]:
    container = {"name": "c", "image": "x:1", **fields.pop("container", {})}
    return {"containers": [container], **fields}


SAFE_SYSCTL = {"name": "net.ipv4.ip_local_port_range", "value": "1024 65000"}
RUNTIME_DEFAULT = {"seccompProfile": {"type": "RuntimeDefault"}}
ADD = {"capabilities": {"add": ["NET_BIND_SERVICE", "CHOWN"]}}
UNMASKED = {"procMount": "Unmasked"}
BASELINE_CASES = {
    "plain": _spec(),
    "restricted": _spec(securityContext=RUNTIME_DEFAULT, container={"securityContext": RESTRICTED_CONTAINER}),
    "allowed capabilities": _spec(container={"securityContext": ADD}),
    "safe sysctl": _spec(securityContext={"sysctls": [SAFE_SYSCTL]}),
    "unmasked /proc in a user namespace": _spec(hostUsers=False, container={"securityContext": UNMASKED}),
    "hostNetwork": _spec(hostNetwork=True),
    "hostPID": _spec(hostPID=True),
    "hostIPC": _spec(hostIPC=True),
    "hostPath": _spec(volumes=[{"name": "h", "hostPath": {"path": "/var/run"}}]),
    "privileged": _spec(container={"securityContext": {"privileged": True}}),
    "SYS_ADMIN": _spec(container={"securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}),
    "NET_ADMIN": _spec(container={"securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}),
    "hostPort": _spec(container={"ports": [{"containerPort": 80, "hostPort": 80}]}),
    "seccomp Unconfined": _spec(securityContext={"seccompProfile": {"type": "Unconfined"}}),
    "AppArmor Unconfined": _spec(container={"securityContext": {"appArmorProfile": {"type": "Unconfined"}}}),
    "SELinux type": _spec(securityContext={"seLinuxOptions": {"type": "spc_t"}}),
    "SELinux user": _spec(container={"securityContext": {"seLinuxOptions": {"user": "root"}}}),
    "unsafe sysctl": _spec(securityContext={"sysctls": [{"name": "kernel.msgmax", "value": "65536"}]}),
}  # fmt: skip
"""One pod per check of Pod Security's `baseline` level (and pods within it)."""


def test_the_packs_privileged_rule_reads_pods_as_pod_security_baseline_does(kube: Kube) -> None:
    """`policy.workloads.needs_privileged` (what the pack's no-privileged-workloads rule reports) finds something in
    a pod exactly when the real admission refuses it under `baseline`: for a pod per check of the level, and for
    every pod and chart stand-in of every stack."""
    specs = list(BASELINE_CASES.items())
    for stack in STACKS:
        specs += [(f"{stack}: {what}", copy.deepcopy(spec)) for _, what, spec in pods(stack_plan(stack))]
    disagree = []
    with labelled_namespace(kube, enforcing("baseline")) as probe:
        for what, spec in specs:
            pack, admission = needs_privileged(spec), admission_refusal(kube, probe, spec)
            if bool(pack) != (admission is not None):
                disagree.append(f"{what}: the pack finds {pack or 'nothing'}; the admission: {admission or 'admitted'}")
    assert not disagree, "\n".join(disagree)
    flagged = sum(bool(needs_privileged(spec)) for _, spec in specs)
    assert 10 < flagged < len(specs)  # both verdicts reached, on the cases and on the stacks' node agents
