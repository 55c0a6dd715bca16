"""`afctl diff`: what a config change creates, updates, replaces and deletes, by URN and path."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from conftest import preview_values, secret_leaves, stack_values

from afctl import diff, plan
from afctl.diff import Kind, Side
from afctl.propertypath import contains, format_path, parse_path
from afctl.replacements import RULES, replace_paths

CPU_VMS = [f"af-cluster-cpu-{i}" for i in range(10)]
WORKERS = [*CPU_VMS, "af-cluster-cache-0", "af-cluster-gpu-a100-0", "af-cluster-gpu-a100-1"]
WORKERS += ["af-cluster-system-0", "af-cluster-system-1"]


def _variant(change: Callable[[dict[str, Any]], None], stack: str = "cms-bari") -> Side:
    values, secret = stack_values(stack)
    change(values)
    return Side.of_run(f"{stack}*", preview_values(stack, values, secret))


def _kinds(result: diff.PlanDiff) -> dict[str, str]:
    return {r.name: r.kind.value for r in result.resources}


def _resource(result: diff.PlanDiff, name: str) -> diff.ResourceDiff:
    (found,) = [r for r in result.resources if r.name == name]
    return found


def _paths(resource: diff.ResourceDiff) -> set[str]:
    return {c.path for c in resource.changes}


@pytest.fixture(scope="module")
def bari(shipped) -> Side:
    return Side.of_run("cms-bari", shipped("cms-bari"))


def test_a_stack_against_itself_changes_nothing(shipped, bari):
    result = diff.diff(bari, Side.of_run("cms-bari", shipped("cms-bari")))
    assert result.resources == () and result.outputs == () and result.ignored == {}
    every = len([r for r in bari.document["resources"] if r["custom"]])  # resources, not components
    assert result.counts() == {"create": 0, "replace": 0, "update": 0, "delete": 0, "unchanged": every}
    assert result.match == "urn" and result.uncompared_secrets == 0


def test_two_more_workers_are_created_and_nothing_else(bari):
    result = diff.diff(bari, _variant(lambda v: v["cluster"]["nodeGroups"]["cpu"].update(count=12)))
    assert _kinds(result) == {
        "af-cluster-cpu-10": "create",
        "af-cluster-cpu-11": "create",
        "af-cluster-cpu-10-port": "create",
        "af-cluster-cpu-11-port": "create",
        # The group's new bound reaches the autoscaler's settings, which roll the controller.
        "af-autoscaler-settings": "replace",
        "af-autoscaler-controller": "update",
    }
    created = [r for r in result.resources if r.name.startswith("af-cluster-cpu-1")]
    assert all(r.urn.startswith("urn:pulumi:cms-bari::") and r.changes == () for r in created)


def test_a_smaller_flavor_resizes_the_vms_and_replaces_the_worker_config(bari):
    result = diff.diff(bari, _variant(lambda v: v["cluster"]["nodeGroups"]["cpu"].update(flavor="xlarge")))
    # Nova resizes in place (flavorName is not ForceNew); the HTCondor config is a ConfigMap whose
    # data the Kubernetes provider replaces; the workers' pods shrink with the flavor.
    assert _kinds(result) == {
        **dict.fromkeys(CPU_VMS, "update"),
        "af-condor-config": "replace",
        "af-condor-worker-cpu": "update",
        "af-autoscaler-settings": "replace",
        "af-autoscaler-controller": "update",
    }
    for vm in CPU_VMS:
        (change,) = _resource(result, vm).changes
        assert (change.path, change.before, change.after, change.replaces) == ("flavorName", "2xlarge", "xlarge", False)
    config = _resource(result, "af-condor-config")
    assert config.reasons == ['data["execute-cpu.conf"]']
    worker = _paths(_resource(result, "af-condor-worker-cpu"))
    assert 'spec.template.metadata.annotations["af.infn.it/config-sha256"]' in worker
    assert "spec.template.spec.containers[0].resources.limits.cpu" in worker


def test_a_new_chart_version_updates_the_release_in_place(bari):
    after = _variant(lambda v: v.setdefault("hub", {}).update(chartVersion="4.3.0"))
    result = diff.diff(bari, after)
    assert _kinds(result) == {"af-hub-chart": "update"}
    (change,) = _resource(result, "af-hub-chart").changes
    assert (change.path, change.op, change.before, change.after, change.replaces) == (
        "version",
        "update",
        "4.2.0",
        "4.3.0",
        False,
    )


def _rename_namespace(document: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    document = copy.deepcopy(document)
    for r in document["resources"]:
        metadata = r["inputs"].get("metadata", {})
        if r["type"] == "kubernetes:core/v1:Namespace" and metadata.get("name") == old:
            metadata["name"] = new
        elif metadata.get("namespace") == old:
            metadata["namespace"] = new
    return document


def test_a_renamed_namespace_replaces_it_and_everything_in_it(bari):
    renamed = _rename_namespace(bari.document, "xcache", "cache")
    result = diff.diff(Side("before.json", bari.document), Side("after.json", renamed))
    inside = ["af-cache-servers", "af-cache-tls", "af-cache-config", "af-cache-upstream"]
    inside += ["af-cache-headless", "af-cache-svc", "af-cache-pdb"]
    inside += ["af-network-policies-xcache-default-deny-ingress", "af-network-policies-xcache-allow-cache"]
    assert _kinds(result) == dict.fromkeys(["af-cache-ns", *inside], "replace")
    assert _resource(result, "af-cache-ns").reasons == ["metadata.name"]
    for name in inside:
        assert _resource(result, name).reasons == ["metadata.namespace"], name


def test_secrets_are_compared_in_process_and_never_shown(bari):
    """A new node subnet changes every VM's cloud-init (a secret): the workers are replaced
    (userData is ForceNew), the control plane keeps its bootstrap (ignoreChanges), the subnet is
    replaced (cidr), and what hangs off replaced resources follows."""
    after = _variant(lambda v: v.setdefault("site", {}).update(nodeCidr="10.20.0.0/24"))
    result = diff.diff(bari, after)
    kinds = _kinds(result)
    ports = [f"{vm}-port" for vm in WORKERS] + [f"af-cluster-control-plane-{i}-port" for i in range(3)]
    replaced = [*WORKERS, "af-network-subnet", "af-network-router-if", "af-cluster-cache-0-data-attach"]
    # The pool's policies admit offloaded workers through the nodes' subnet (the gateway to Leonardo).
    policies = [f"af-network-policies-condor-allow-{t}" for t in ("central-manager", "schedd")]
    assert kinds == dict.fromkeys(replaced, "replace") | dict.fromkeys(ports + policies, "update")
    user_data = [c for c in _resource(result, "af-cluster-cpu-0").changes if c.path == "userData"]
    assert [(c.before, c.after, c.replaces) for c in user_data] == [("[secret]", "[secret]", True)]
    assert _resource(result, "af-network-subnet").reasons == ["cidr"]
    (attach,) = _resource(result, "af-cluster-cache-0-data-attach").changes
    assert attach.path == "instanceId" and attach.after == "[unknown]" and attach.cause.endswith("::af-cluster-cache-0")
    (router_if,) = _resource(result, "af-network-router-if").changes
    assert router_if.path == "subnetId" and router_if.cause.endswith("::af-network-subnet")
    assert {urn.rsplit("::", 1)[-1]: paths for urn, paths in result.ignored.items()} == {
        f"af-cluster-control-plane-{i}": ("userData",) for i in range(3)
    }
    # The same plans as files cannot see the secret change, and say so.
    blind = diff.diff(Side("a", bari.document), Side("b", after.document))
    # Every secret of the plan (a "[secret]" leaf of some resource's inputs) goes uncompared.
    assert blind.uncompared_secrets == secret_leaves(after.document["resources"]) > 0
    assert _kinds(blind) == {"af-network-subnet": "replace", "af-network-router-if": "replace"} | dict.fromkeys(
        ports + policies, "update"
    )


def test_two_stacks_are_matched_by_type_and_name(shipped, bari):
    result = diff.diff(Side.of_run("dev", shipped("dev")), bari)
    assert result.match == "type+name"
    kinds = _kinds(result)
    assert "analysis-facility-dev" not in kinds and "analysis-facility-cms-bari" not in kinds  # the stacks' roots pair
    # What cms-bari has is named in cms-bari; what only dev has (its workers' data volumes) is deleted from dev.
    assert all(r.urn.startswith("urn:pulumi:cms-bari::") for r in result.resources if r.kind != diff.Kind.DELETE)
    assert all(r.urn.startswith("urn:pulumi:dev::") for r in result.resources if r.kind == diff.Kind.DELETE)
    assert kinds["af-cluster-cpu-2"] == "create" and kinds["af-hub-chart"] == "update"
    # The key pair is named after the stack: a new key pair, so every VM is rebuilt.
    assert _resource(result, "af-cluster-keypair").reasons == ["name"]
    cpu0 = _resource(result, "af-cluster-cpu-0")
    assert {"keyPair", "userData", "schedulerHints"} <= set(cpu0.reasons)
    (hint,) = [c for c in cpu0.changes if c.path == "schedulerHints"]
    assert hint.cause.endswith("::af-cluster-cpu-spread") and hint.after == "[unknown]"
    # Port names follow the stack too; a port renames in place.
    assert _paths(_resource(result, "af-cluster-cpu-0-port")) == {"name"}


def _one(type_: str, inputs: dict[str, Any], provider: dict[str, Any] | None = None) -> dict[str, Any]:
    urn = f"urn:pulumi:s::p::{type_}::r"
    resources = [
        {
            "urn": urn,
            "type": type_,
            "name": "r",
            "parent": "",
            "custom": True,
            "provider": "urn:pulumi:s::p::pulumi:providers:kubernetes::k" if provider is not None else "",
            "dependencies": [],
            "inputs": inputs,
        }
    ]
    if provider is not None:
        resources.append(
            {
                "urn": "urn:pulumi:s::p::pulumi:providers:kubernetes::k",
                "type": "pulumi:providers:kubernetes",
                "name": "k",
                "parent": "",
                "custom": True,
                "provider": "",
                "dependencies": [],
                "inputs": provider,
            }
        )
    return {"project": "p", "stack": "s", "resources": resources, "outputs": {}}


_DEPLOYMENT = {
    "metadata": {"name": "w", "namespace": "n"},
    "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "1"}}},
}
_STS = {"metadata": {"name": "s"}, "spec": {"serviceName": "h", "volumeClaimTemplates": [{"spec": {"size": "1Gi"}}]}}
_PVC = {"spec": {"storageClassName": "a", "resources": {"requests": {"storage": "1Gi"}}}}
_VM = {"flavorName": "a", "imageName": "u", "keyPair": "k", "userData": "[secret]", "networks": [{"port": "p1"}]}


@pytest.mark.parametrize(
    ("type_", "before", "change", "kind"),
    [
        ("kubernetes:apps/v1:Deployment", _DEPLOYMENT, ("spec", "replicas", 3), Kind.UPDATE),
        ("kubernetes:apps/v1:Deployment", _DEPLOYMENT, ("spec", "selector", "matchLabels", "a", "2"), Kind.REPLACE),
        ("kubernetes:apps/v1:Deployment", _DEPLOYMENT, ("metadata", "namespace", "m"), Kind.REPLACE),
        ("kubernetes:apps/v1:StatefulSet", _STS, ("spec", "serviceName", "g"), Kind.REPLACE),
        (
            "kubernetes:apps/v1:StatefulSet",
            _STS,
            ("spec", "volumeClaimTemplates", 0, "spec", "size", "2Gi"),
            Kind.REPLACE,
        ),
        (
            "kubernetes:core/v1:PersistentVolumeClaim",
            _PVC,
            ("spec", "resources", "requests", "storage", "2Gi"),
            Kind.UPDATE,
        ),
        ("kubernetes:core/v1:PersistentVolumeClaim", _PVC, ("spec", "storageClassName", "b"), Kind.REPLACE),
        (
            "kubernetes:core/v1:Service",
            {"spec": {"clusterIP": "None", "ports": []}},
            ("spec", "clusterIP", "1.2.3.4"),
            Kind.REPLACE,
        ),
        (
            "kubernetes:core/v1:Service",
            {"spec": {"clusterIP": "None", "ports": []}},
            ("spec", "ports", [1]),
            Kind.UPDATE,
        ),
        (
            "kubernetes:policy/v1:PodDisruptionBudget",
            {"spec": {"maxUnavailable": 1}},
            ("spec", "maxUnavailable", 2),
            Kind.UPDATE,
        ),
        ("kubernetes:batch/v1:Job", {"spec": {"template": {"x": 1}}}, ("spec", "template", "x", 2), Kind.REPLACE),
        ("kubernetes:helm.sh/v3:Release", {"version": "1", "namespace": "a"}, ("version", "2"), Kind.UPDATE),
        ("kubernetes:helm.sh/v3:Release", {"version": "1", "namespace": "a"}, ("namespace", "b"), Kind.REPLACE),
        (
            "kubernetes:cert-manager.io/v1:Certificate",
            {"metadata": {"name": "c"}, "spec": {"d": 1}},
            ("spec", "d", 2),
            Kind.UPDATE,
        ),
        (
            "kubernetes:cert-manager.io/v1:Certificate",
            {"metadata": {"name": "c"}},
            ("metadata", "name", "e"),
            Kind.REPLACE,
        ),
        ("openstack:compute/instance:Instance", _VM, ("flavorName", "b"), Kind.UPDATE),
        ("openstack:compute/instance:Instance", _VM, ("imageName", "v"), Kind.UPDATE),
        ("openstack:compute/instance:Instance", _VM, ("keyPair", "l"), Kind.REPLACE),
        ("openstack:compute/instance:Instance", _VM, ("availabilityZone", "z"), Kind.REPLACE),
        ("openstack:compute/instance:Instance", _VM, ("networks", 0, "port", "p2"), Kind.REPLACE),
        ("openstack:compute/instance:Instance", _VM, ("userData", "plain"), Kind.REPLACE),
        ("openstack:networking/secGroupRule:SecGroupRule", {"description": "a"}, ("description", "b"), Kind.REPLACE),
        ("openstack:networking/port:Port", {"networkId": "n", "fixedIps": []}, ("fixedIps", [{"a": 1}]), Kind.UPDATE),
        ("openstack:networking/port:Port", {"networkId": "n", "fixedIps": []}, ("networkId", "m"), Kind.REPLACE),
        ("openstack:blockstorage/volume:Volume", {"size": 10}, ("size", 20), Kind.UPDATE),
        ("openstack:blockstorage/volume:Volume", {"size": 10}, ("availabilityZone", "z"), Kind.REPLACE),
        ("openstack:networking/floatingIpAssociate:FloatingIpAssociate", {"portId": "a"}, ("portId", "b"), Kind.UPDATE),
        ("openstack:containerinfra/nodeGroup:NodeGroup", {"nodeCount": 1}, ("nodeCount", 2), Kind.UPDATE),
        ("openstack:containerinfra/nodeGroup:NodeGroup", {"flavorId": "a"}, ("flavorId", "b"), Kind.REPLACE),
        ("tls:index/selfSignedCert:SelfSignedCert", {"earlyRenewalHours": 1}, ("earlyRenewalHours", 2), Kind.UPDATE),
        (
            "tls:index/selfSignedCert:SelfSignedCert",
            {"validityPeriodHours": 1},
            ("validityPeriodHours", 2),
            Kind.REPLACE,
        ),
        ("random:index/randomPassword:RandomPassword", {"length": 32}, ("special", False), Kind.REPLACE),
        ("random:index/randomBytes:RandomBytes", {"length": 32}, ("length", 64), Kind.REPLACE),
    ],
)
def test_replacement_table(type_, before, change, kind):
    *path, value = change
    after = copy.deepcopy(before)
    target = after
    for part in path[:-1]:
        target = target.setdefault(part, {}) if isinstance(part, str) else target[part]
    target[path[-1]] = value
    result = diff.diff(Side("a", _one(type_, before)), Side("b", _one(type_, after)))
    (resource,) = result.resources
    assert resource.kind == kind


@pytest.mark.parametrize(
    ("type_", "provider", "data", "kind"),
    [
        ("kubernetes:core/v1:Secret", {}, "stringData", Kind.REPLACE),
        ("kubernetes:core/v1:Secret", {"enableSecretMutable": "true"}, "stringData", Kind.UPDATE),
        ("kubernetes:core/v1:ConfigMap", {}, "data", Kind.REPLACE),
        ("kubernetes:core/v1:ConfigMap", {"enableConfigMapMutable": "true"}, "data", Kind.UPDATE),
    ],
)
def test_secrets_and_config_maps_replace_unless_the_provider_makes_them_mutable(type_, provider, data, kind):
    before = {"metadata": {"name": "x"}, data: {"k": "1"}}
    after = {"metadata": {"name": "x"}, data: {"k": "2"}}
    result = diff.diff(Side("a", _one(type_, before, provider)), Side("b", _one(type_, after, provider)))
    assert [r.kind for r in result.resources] == [kind]
    immutable = diff.diff(
        Side("a", _one(type_, before | {"immutable": True}, provider)),
        Side("b", _one(type_, after | {"immutable": True}, provider)),
    )
    assert [r.kind for r in immutable.resources] == [Kind.REPLACE]


def test_adding_a_whole_subtree_that_holds_an_immutable_field_replaces():
    before = {"metadata": {"name": "w"}}
    after = {"metadata": {"name": "w"}, "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "1"}}}}
    t = "kubernetes:apps/v1:Deployment"
    (resource,) = diff.diff(Side("a", _one(t, before)), Side("b", _one(t, after))).resources
    assert resource.kind == Kind.REPLACE and resource.reasons == ["spec"]
    assert diff.triggers([("spec", "selector")], ("spec",), diff.ABSENT, {"replicas": 1}) is False


def test_a_new_provider_replaces():
    document = _one("kubernetes:core/v1:Namespace", {"metadata": {"name": "n"}}, {})
    moved = copy.deepcopy(document)
    moved["resources"][0]["provider"] = "urn:pulumi:s::p::pulumi:providers:kubernetes::other"
    (resource,) = diff.diff(Side("a", document), Side("b", moved)).resources
    assert resource.kind == Kind.REPLACE and resource.reasons == ["provider"] and resource.changes == ()


def test_every_emitted_type_has_a_replacement_rule(shipped):
    """A new resource type must come with its replacement facts (a Kubernetes custom resource
    gets the metadata rule without an entry)."""
    for stack in ("dev", "cms-bari", "atlas-cnaf"):
        for r in plan.plan_document(shipped(stack))["resources"]:
            if r["custom"]:
                assert replace_paths(r["type"], r["inputs"], {}) is not None, r["type"]
    for type_, rule in RULES.items():
        assert rule.source, type_
        for text in rule.paths:
            assert text == "*" or format_path(parse_path(text)) == text, (type_, text)


def test_property_paths_read_and_write_like_pulumi():
    path = ("metadata", "labels", "app.kubernetes.io/name")
    assert format_path(path) == 'metadata.labels["app.kubernetes.io/name"]'
    assert parse_path('metadata.labels["app.kubernetes.io/name"]') == path
    assert parse_path("spec.containers[*].image") == ("spec", "containers", "*", "image")
    assert parse_path("networks[0].port") == ("networks", 0, "port")
    assert contains(("spec", "containers", "*", "image"), ("spec", "containers", 2, "image"))
    assert contains(("spec", "selector"), ("spec", "selector", "matchLabels", "a"))
    assert not contains(("spec", "selector"), ("spec",))
    for bad in ("", ".a", "a[", 'a["b]'):
        with pytest.raises(ValueError):
            parse_path(bad)


def _with_engine(document: dict[str, Any], **options: Any) -> Side:
    return Side("b", document, {r["urn"]: diff.Engine(**options) for r in document["resources"]})


def test_the_programs_own_options_count():
    t = "openstack:compute/instance:Instance"
    before, after = _one(t, _VM), _one(t, _VM | {"flavorName": "b", "keyPair": "l"})
    # ignoreChanges: Pulumi keeps the old value, so the key pair change replaces nothing.
    result = diff.diff(Side("a", before), _with_engine(after, ignore_changes=("keyPair",)))
    (resource,) = result.resources
    assert resource.kind == Kind.UPDATE and _paths(resource) == {"flavorName"}
    assert result.ignored == {"urn:pulumi:s::p::openstack:compute/instance:Instance::r": ("keyPair",)}
    # replaceOnChanges: a resize the provider would do in place becomes a replacement.
    result = diff.diff(Side("a", before), _with_engine(after, replace_on_changes=("flavorName",)))
    assert result.resources[0].reasons == ["flavorName", "keyPair"]
    only_flavor = _one(t, _VM | {"flavorName": "b"})
    (resource,) = diff.diff(Side("a", before), _with_engine(only_flavor, replace_on_changes=("flavorName",))).resources
    assert resource.kind == Kind.REPLACE and resource.reasons == ["flavorName"]


def test_secret_digests_decide_whether_a_secret_changed():
    t = "kubernetes:core/v1:Secret"
    document = _one(t, {"metadata": {"name": "x"}, "stringData": "[secret]"}, {})
    urn = document["resources"][0]["urn"]

    def side(label: str, digest: str) -> Side:
        return Side(label, document, {urn: diff.Engine(secrets={"stringData": digest})})

    assert diff.diff(side("a", "1"), side("b", "1")).resources == ()
    (resource,) = diff.diff(side("a", "1"), side("b", "2")).resources
    assert resource.kind == Kind.REPLACE
    assert [(c.path, c.before, c.after) for c in resource.changes] == [("stringData", "[secret]", "[secret]")]
    blind = diff.diff(Side("a", document), side("b", "2"))
    assert blind.resources == () and blind.uncompared_secrets == 1
