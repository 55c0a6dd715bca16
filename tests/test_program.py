"""The program's resource graph for every shipped stack, and for each cluster mode."""

from __future__ import annotations

import ipaddress

import pytest
from conftest import SHIPPED_STACKS, by_name, of_type, preview_values, stack_values

from afctl.stackfile import PLACEHOLDER
from components.config.loader import PROJECT_ROOT, build_config
from components.infra.network import API_PORT, HTTP_PORT, HTTPS_PORT, SSH_PORT

INSTANCE = "openstack:compute/instance:Instance"
SERVER_GROUP = "openstack:compute/serverGroup:ServerGroup"
RULE = "openstack:networking/secGroupRule:SecGroupRule"
K8S_PROVIDER = "pulumi:providers:kubernetes"
OPENSTACK_PROVIDER = "pulumi:providers:openstack"
WORLD = {"0.0.0.0/0", "::/0"}


def test_the_shipped_stacks_are_there():
    assert set(SHIPPED_STACKS) == {"dev", "cms-bari", "atlas-cnaf", "single"}
    assert all((PROJECT_ROOT / f"Pulumi.{stack}.yaml").is_file() for stack in SHIPPED_STACKS)


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_secrets_are_secret_outputs(shipped, stack):
    outputs = shipped(stack).outputs
    assert outputs["kubeconfig"] == "[secret]"
    assert outputs.get("sshPrivateKey", "[secret]") == "[secret]"
    assert outputs["dnsName"] == build_config(*stack_values(stack)).site.dns_name


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_kubernetes_provider_is_built_from_the_cluster(shipped, stack):
    result = shipped(stack)
    (provider,) = of_type(result, K8S_PROVIDER)
    assert provider.inputs["kubeconfig"] == "[secret]"
    assert provider.parent.endswith("af:cluster:Cluster::af-cluster")
    mode = build_config(*stack_values(stack)).cluster.mode
    if mode == "openstack":
        association = by_name(result, "af-cluster-api-fip-assoc")
        first_cp = by_name(result, "af-cluster-control-plane-0")
        assert {association.urn, first_cp.urn} <= set(provider.dependencies)
    elif mode == "magnum":
        assert by_name(result, "af-cluster-magnum").urn in provider.dependencies


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_openstack_resources_use_the_explicit_provider(shipped, stack):
    result = shipped(stack)
    (provider,) = of_type(result, OPENSTACK_PROVIDER)
    openstack = [r for r in result.registrations if r.custom and r.type.startswith("openstack:")]
    assert openstack
    assert {r.provider for r in openstack} == {provider.urn}
    assert provider.inputs["region"] == build_config(*stack_values(stack)).site.region


@pytest.mark.parametrize(
    "stack", [s for s in SHIPPED_STACKS if build_config(*stack_values(s)).cluster.mode == "openstack"]
)
def test_vms_per_node_group(shipped, stack):
    result = shipped(stack)
    cfg = build_config(*stack_values(stack))
    instances = of_type(result, INSTANCE)
    groups = {n: (g.flavor, g.count, g.image or cfg.site.image) for n, g in cfg.cluster.node_groups.items()}
    groups["control-plane"] = (cfg.cluster.control_plane.flavor, cfg.cluster.control_plane.count, cfg.site.image)
    assert len(instances) == sum(count for _, count, _ in groups.values())
    for group, (flavor, count, image) in groups.items():
        members = [i for i in instances if i.inputs["metadata"]["af-role"] == group]
        assert len(members) == count, group
        spread = by_name(result, f"af-cluster-{group}-spread")
        for vm in members:
            assert vm.inputs["flavorName"] == flavor
            assert vm.inputs["imageName"] == image
            assert vm.inputs["userData"] == "[secret]"
            assert spread.urn in vm.dependencies
            assert vm.inputs["schedulerHints"][0]["group"].startswith(f"af-cluster-{group}-spread-")


@pytest.mark.parametrize(
    "stack", [s for s in SHIPPED_STACKS if build_config(*stack_values(s)).cluster.mode == "openstack"]
)
def test_control_plane_is_spread_and_pinned(shipped, stack):
    result = shipped(stack)
    cfg = build_config(*stack_values(stack))
    spread = by_name(result, "af-cluster-control-plane-spread")
    assert spread.inputs["policies"] == "anti-affinity"  # a single policy in pulumi-openstack 5.x
    subnet = ipaddress.ip_network(cfg.site.node_cidr)
    addresses = []
    for index in range(cfg.cluster.control_plane.count):
        port = by_name(result, f"af-cluster-control-plane-{index}-port")
        address = port.inputs["fixedIps"][0]["ipAddress"]
        assert ipaddress.ip_address(address) in subnet
        addresses.append(address)
    assert len(set(addresses)) == cfg.cluster.control_plane.count
    pool_start = ipaddress.ip_address(by_name(result, "af-network-subnet").inputs["allocationPools"][0]["start"])
    assert all(ipaddress.ip_address(a) < pool_start for a in addresses), "fixed IPs must be outside DHCP"


@pytest.mark.parametrize(
    "stack", [s for s in SHIPPED_STACKS if build_config(*stack_values(s)).cluster.mode != "existing"]
)
def test_no_world_open_ssh_or_api(shipped, stack):
    result = shipped(stack)
    cfg = build_config(*stack_values(stack))
    rules = of_type(result, RULE)
    world = [r for r in rules if r.inputs.get("remoteIpPrefix") in WORLD]
    assert world, "the HTTPS entry point should be open"
    # HTTP only where k3s's traefik serves the hub: the ACME challenge and the redirect.
    public = {HTTPS_PORT, HTTP_PORT} if cfg.cluster.mode == "openstack" else {HTTPS_PORT}
    assert {r.inputs["portRangeMin"] for r in world} == public
    assert all(r.inputs["portRangeMin"] == r.inputs["portRangeMax"] for r in world)
    for port in (SSH_PORT, API_PORT):
        sources = {r.inputs.get("remoteIpPrefix") for r in rules if r.inputs.get("portRangeMin") == port}
        assert sources == set(cfg.site.admin_cidrs), port
    # Only control-plane ports (where the floating IP lands) are in the public group.
    if cfg.cluster.mode == "openstack":
        ports = of_type(result, "openstack:networking/port:Port")
        exposed = {
            p.name for p in ports if any(g.startswith("af-network-public-") for g in p.inputs["securityGroupIds"])
        }
        assert exposed == {f"af-cluster-control-plane-{i}-port" for i in range(cfg.cluster.control_plane.count)}
    internal = [r for r in rules if "remoteGroupId" in r.inputs]
    assert internal and all(r.inputs["remoteGroupId"].startswith("af-network-nodes-") for r in internal)


@pytest.mark.parametrize(
    "stack", [s for s in SHIPPED_STACKS if build_config(*stack_values(s)).cluster.mode == "openstack"]
)
def test_the_hubs_acme_http01_challenge_reaches_it_on_port_80_with_the_defaults(shipped, stack):
    """Let's Encrypt validates HTTP-01 on port 80 of the hub's host, the floating IP on the first
    control-plane node (where k3s's traefik listens): that port's security groups must admit
    tcp 80 from anywhere. Before, only 443 was open and the certificate could never be issued."""
    result = shipped(stack)
    cfg = build_config(*stack_values(stack))
    assert cfg.hub.tls.mode == "cert-manager" and "tls" not in stack_values(stack)[0].get("hub", {}), "the default"
    (solver,) = by_name(result, "af-hub-acme-issuer").inputs["spec"]["acme"]["solvers"]
    assert solver == {"http01": {"ingress": {"ingressClassName": "traefik"}}}
    entry = by_name(result, "af-cluster-api-fip-assoc").property_dependencies["portId"]
    (port,) = [p for p in of_type(result, "openstack:networking/port:Port") if p.urn in entry]
    groups = set(port.property_dependencies["securityGroupIds"])
    http = [
        r
        for r in of_type(result, RULE)
        if set(r.property_dependencies["securityGroupId"]) <= groups
        and r.inputs.get("protocol") == "tcp"
        and r.inputs["portRangeMin"] <= 80 <= r.inputs["portRangeMax"]
        and r.inputs.get("remoteIpPrefix") == "0.0.0.0/0"
        and r.inputs["direction"] == "ingress"
    ]
    assert len(http) == 1, [r.name for r in http]


def test_port_80_stays_closed_without_a_hub():
    values, secret = stack_values("dev")
    values["hub"] = {"enabled": False}
    values["dask"] = {"enabled": False}  # the Dask gateway needs the hub
    rules = of_type(preview_values("dev", values, secret), RULE)
    assert not [r for r in rules if r.inputs.get("portRangeMin") == HTTP_PORT]


def test_gpu_group_is_tainted_and_labelled(shipped):
    result = shipped("cms-bari")
    text = result.files["cluster/cloud-init/gpu-a100.yaml"]
    assert "nvidia.com/gpu=present:NoSchedule" in text
    assert "nvidia.com/gpu.present=true" in text
    assert "af.infn.it/gpu-model=a100" in text
    assert "nvidia.com/gpu" not in result.files["cluster/cloud-init/cpu.yaml"]


def test_a_group_image_replaces_the_site_image_for_that_group_only():
    values, secret = stack_values("dev")
    values["cluster"]["nodeGroups"]["gpu"] = {
        "flavor": "g1-a100",
        "count": 1,
        "roles": ["batch"],
        "image": "ubuntu-24.04-nvidia-580",
        "gpu": {"count": 1, "model": "a100", "driver": "preinstalled"},
        "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
    }
    result = preview_values("dev", values, secret)
    images = {i.inputs["metadata"]["af-role"]: i.inputs["imageName"] for i in of_type(result, INSTANCE)}
    site = build_config(values, secret).site.image
    assert images == {"control-plane": site, "cpu": site, "gpu": "ubuntu-24.04-nvidia-580"}


def test_data_volumes_only_where_asked(shipped):
    result = shipped("cms-bari")
    volumes = of_type(result, "openstack:blockstorage/volume:Volume")
    assert [v.name for v in volumes] == ["af-cluster-cache-0-data"]
    assert volumes[0].inputs["size"] == 2000
    attach = by_name(result, "af-cluster-cache-0-data-attach")
    assert volumes[0].urn in attach.dependencies
    assert "LABEL=af-data" in result.files["cluster/cloud-init/cache.yaml"]


def test_magnum_mode_builds_template_cluster_and_node_groups(shipped):
    result = shipped("atlas-cnaf")
    assert of_type(result, INSTANCE) == []
    (template,) = of_type(result, "openstack:containerinfra/clusterTemplate:ClusterTemplate")
    (cluster,) = of_type(result, "openstack:containerinfra/cluster:Cluster")
    groups = of_type(result, "openstack:containerinfra/nodeGroup:NodeGroup")
    assert template.inputs["masterLbEnabled"] is True
    assert cluster.inputs["masterCount"] == 3
    assert cluster.inputs["nodeCount"] == 8 and cluster.inputs["flavor"] == "2xlarge"
    assert [(g.inputs["name"], g.inputs["nodeCount"]) for g in groups] == [("default", 3)]


def test_existing_mode_builds_no_cloud_resources():
    values, secret = stack_values("dev")
    values["cluster"]["mode"] = "existing"
    values["cluster"]["existing"] = {"kubeconfig": PLACEHOLDER}
    # Node sizes are unknown on a cluster that exists: the pool's workers are sized explicitly.
    values["condor"] = {"enabled": True, "groups": {"cpu": {"cpus": 7, "memoryGib": 14}}}
    result = preview_values("existing", values, secret | {"cluster"})
    assert [r for r in result.registrations if r.type.startswith(("openstack:", "pulumi:providers:openstack"))] == []
    (provider,) = of_type(result, K8S_PROVIDER)
    assert provider.inputs["kubeconfig"] == "[secret]"
    assert result.outputs["kubeconfig"] == "[secret]"
