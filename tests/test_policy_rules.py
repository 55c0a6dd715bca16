"""Every rule of the policy pack on real plans: the resource the program emits passes, and the
same resource with one property changed is reported, with a message naming it.

Plans are the shipped stacks' (previewed once per session) and cms-bari with the autoscaler
enabled (the only RBAC the program emits). Rules run through the `pulumi_policy` objects the
pack serves, called as the engine calls them."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import preview_values, stack_values
from pulumi_policy import PolicyCustomTimeouts, PolicyResourceOptions, ResourceValidationArgs, StackValidationArgs
from pulumi_policy.policy import _NotApplicableError
from test_autoscaler_component import with_autoscaler

from afctl import plan
from afctl.mocks import SECRET
from components.config.loader import build_config
from components.infra.quota import usage
from policy import walk
from policy.capacity import usage as plan_usage
from policy.facts import facts_from
from policy.leaks import leaked
from policy.offline import stack_resources
from policy.packconfig import pack_config
from policy.rules import POLICIES, RULE_NAMES

POLICY = {p.name: p for p in POLICIES}
OPTIONS = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])
PEM_KEY = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n"
    "-----END PRIVATE KEY-----\n"
)


@pytest.fixture(scope="module")
def runs(shipped) -> Callable[[str], Any]:
    """Preview results by name: the shipped stacks, and `autoscaler` (cms-bari with it on)."""
    cache: dict[str, Any] = {}

    def get(name: str) -> Any:
        if name not in cache:
            cache[name] = preview_values("cms-bari", *with_autoscaler()) if name == "autoscaler" else shipped(name)
        return cache[name]

    return get


def _values(name: str) -> tuple[dict[str, Any], set[str]]:
    return with_autoscaler() if name == "autoscaler" else stack_values(name)


@pytest.fixture(scope="module")
def plans(runs) -> Callable[[str], dict[str, Any]]:
    cache: dict[str, dict[str, Any]] = {}

    def get(name: str) -> dict[str, Any]:
        if name not in cache:
            cache[name] = plan.plan_document(runs(name))
        return cache[name]

    return get


@pytest.fixture(scope="module")
def configs() -> Callable[[str], dict[str, dict[str, Any]]]:
    cache: dict[str, dict[str, dict[str, Any]]] = {}

    def get(name: str) -> dict[str, dict[str, Any]]:
        if name not in cache:
            cache[name] = pack_config(build_config(*_values(name)))
        return cache[name]

    return get


def properties(config: dict[str, dict[str, Any]], rule: str, offline: bool = True) -> dict[str, Any]:
    """The rule's pack config as the engine hands it (no level), plus the offline plan's marker."""
    props = {k: v for k, v in config[rule].items() if k != "enforcementLevel"}
    return props | {"secretMarkers": True} if offline else props


def judge(rule: str, resource: dict[str, Any], props: dict[str, Any]) -> list[str]:
    found: list[str] = []
    args = ResourceValidationArgs(
        resource["type"], resource["inputs"], resource["urn"], resource["name"], OPTIONS, None, props
    )
    POLICY[rule].validate(args, lambda message, urn=None: found.append(message))
    return found


def judge_stack(rule: str, resources: list[dict[str, Any]], props: dict[str, Any]) -> list[tuple[str | None, str]]:
    found: list[tuple[str | None, str]] = []
    args = StackValidationArgs(stack_resources(resources), props)
    POLICY[rule].validate(args, lambda message, urn=None: found.append((urn, message)))
    return found


def named(document: dict[str, Any], name: str) -> dict[str, Any]:
    (resource,) = [r for r in document["resources"] if r["name"] == name]
    return resource


def replace(text: str, old: str, new: str) -> str:
    assert old in text, f"{old!r} is not in the text the program emits"
    return text.replace(old, new)


def container(inputs: dict[str, Any], name: str) -> dict[str, Any]:
    spec = inputs["spec"]["template"]["spec"]
    (found,) = [c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == name]
    return found


def env_entry(inputs: dict[str, Any], container_name: str, variable: str) -> dict[str, Any]:
    (entry,) = [e for e in container(inputs, container_name)["env"] if e["name"] == variable]
    return entry


def condor_client(inputs: dict[str, Any]) -> dict[str, Any]:
    files = inputs["values"]["singleuser"]["extraFiles"].values()
    (found,) = [f for f in files if "SEC_CLIENT_AUTHENTICATION_METHODS" in f["stringData"]]
    return found


def _swap_env(inputs: dict[str, Any], container_name: str) -> None:
    entries = container(inputs, container_name)["env"]
    index = next(i for i, e in enumerate(entries) if e["name"] == "AF_CLIENT_SECRET_FILE")
    entries[index] = {"name": "AF_CLIENT_SECRET", "value": "Zx81-literal-client-secret"}


@dataclass(frozen=True)
class Case:
    """One property of one real resource changed so that `rule` must report it."""

    rule: str
    plan: str
    resource: str
    change: Callable[[dict[str, Any]], None]
    expect: str
    """A fragment of the message: the resource it names and what is wrong."""
    id: str


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    *parents, last = path.split("/")

    def change(inputs: dict[str, Any]) -> None:
        target = inputs
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return change


def _edit(path: str, old: str, new: str) -> Callable[[dict[str, Any]], None]:
    *parents, last = path.split("/")

    def change(inputs: dict[str, Any]) -> None:
        target = inputs
        for key in parents:
            target = target[key]
        target[last] = replace(target[last], old, new)

    return change


def _spec(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return _set(f"spec/template/spec/{path}", value)


GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
CASES = [
    Case(
        "no-world-open-ports",
        "cms-bari",
        "af-network-public-443-0-0-0-0-0",
        _set("portRangeMax", 8443),
        "security group rule af-network-public-443-0-0-0-0-0 opens tcp 443-8443 to 0.0.0.0/0",
        "https-rule-widened",
    ),
    Case(
        "no-world-open-ports",
        "dev",
        "af-network-public-80-0-0-0-0-0",
        _set("portRangeMax", 81),
        "security group rule af-network-public-80-0-0-0-0-0 opens tcp 80-81 to 0.0.0.0/0",
        "http-rule-widened",
    ),
    Case(
        "no-world-open-ports",
        "dev",
        "af-network-admin-22-212-189-205-0-24",
        _set("remoteIpPrefix", "::/0"),
        "af-network-admin-22-212-189-205-0-24 opens tcp 22 to ::/0",
        "ssh-to-the-ipv6-world",
    ),
    Case(
        "admin-ports-from-admin-cidrs",
        "cms-bari",
        "af-network-admin-22-212-189-205-0-24",
        _set("remoteIpPrefix", "10.0.0.0/8"),
        "af-network-admin-22-212-189-205-0-24 opens ssh (tcp 22) to 10.0.0.0/8, outside the admin networks",
        "ssh-from-elsewhere",
    ),
    Case(
        "admin-ports-from-admin-cidrs",
        "atlas-cnaf",
        "af-network-admin-6443-131-154-128-0-17",
        _set("remoteIpPrefix", "131.154.0.0/16"),
        "opens the Kubernetes API (tcp 6443) to 131.154.0.0/16",
        "api-from-a-wider-network",
    ),
    Case(
        "hub-oidc-login",
        "dev",
        "af-hub-chart",
        _set("values/hub/config/JupyterHub/authenticator_class", "dummy"),
        "Helm release jupyterhub/jupyterhub: hub.config.JupyterHub.authenticator_class is 'dummy'",
        "dummy-authenticator",
    ),
    Case(
        "hub-oidc-login",
        "cms-bari",
        "af-hub-chart",
        _set("values/hub/config/GenericOAuthenticator/allowed_groups", []),
        "allowed_groups is empty",
        "no-allowed-groups",
    ),
    Case(
        "hub-oidc-login",
        "atlas-cnaf",
        "af-hub-chart",
        _set("values/hub/config/Authenticator/allow_all", True),
        "hub.config.Authenticator.allow_all is true",
        "open-sign-up",
    ),
    Case(
        "condor-authenticated",
        "cms-bari",
        "af-condor-config",
        _edit(
            "data/pool.conf",
            "AUTHENTICATION_METHODS = FS, IDTOKENS",
            "AUTHENTICATION_METHODS = FS, CLAIMTOBE, IDTOKENS",
        ),
        "ConfigMap condor/af-condor-config: pool.conf: SEC_DEFAULT_AUTHENTICATION_METHODS offers CLAIMTOBE",
        "claimtobe",
    ),
    Case(
        "condor-authenticated",
        "cms-bari",
        "af-condor-config",
        _edit("data/submit.conf", "ALLOW_WRITE = $(ALLOW_WRITE) $(AF_USERS)", "ALLOW_WRITE = *"),
        "submit.conf: ALLOW_WRITE admits anyone",
        "anyone-writes",
    ),
    Case(
        "condor-authenticated",
        "atlas-cnaf",
        "af-condor-config",
        _edit("data/pool.conf", "SEC_DEFAULT_AUTHENTICATION = REQUIRED", "SEC_DEFAULT_AUTHENTICATION = OPTIONAL"),
        "pool.conf: SEC_DEFAULT_AUTHENTICATION = OPTIONAL admits unauthenticated clients",
        "authentication-optional",
    ),
    Case(
        "condor-authenticated",
        "cms-bari",
        "af-condor-config",
        _edit("data/pool.conf", "DENY_WRITE = *@unmapped", "ALLOW_WRITE = *@unmapped"),
        "ALLOW_WRITE admits unauthenticated users",
        "unmapped-writes",
    ),
    Case(
        "condor-authenticated",
        "cms-bari",
        "af-hub-chart",
        lambda inputs: condor_client(inputs).update(
            stringData=replace(
                condor_client(inputs)["stringData"], "METHODS = SCITOKENS\nSEC_DEF", "METHODS = CLAIMTOBE\nSEC_DEF"
            )
        ),
        "SEC_CLIENT_AUTHENTICATION_METHODS offers CLAIMTOBE",
        "notebook-client-claimtobe",
    ),
    Case(
        "cache-token-auth",
        "cms-bari",
        "af-cache-config",
        _edit("data/xrootd.cfg", "ofs.authorize 1\n", ""),
        "ConfigMap xcache/af-xcache-config: xrootd.cfg does not authorize requests",
        "no-authorization",
    ),
    Case(
        "cache-token-auth",
        "atlas-cnaf",
        "af-cache-config",
        _edit("data/xrootd.cfg", "sec.protocol ztn", "sec.protocol host"),
        "xrootd.cfg authenticates clients by host",
        "host-auth",
    ),
    Case(
        "no-secrets-in-helm-values",
        "cms-bari",
        "af-hub-chart",
        _set("values/hub/extraEnv/OAUTH_CLIENT_SECRET", "Zx81-literal-client-secret"),
        "Helm release jupyterhub/jupyterhub: values: hub.extraEnv.OAUTH_CLIENT_SECRET holds a literal secret",
        "client-secret-in-values",
    ),
    Case(
        "no-secrets-in-helm-values",
        "dev",
        "af-certs-chart",
        _set("values/webhook/tlsKey", PEM_KEY),
        "Helm release cert-manager/cert-manager: values: webhook.tlsKey holds a PEM private key",
        "pem-key-in-values",
    ),
    Case(
        "no-secrets-in-configmaps",
        "cms-bari",
        "af-cache-config",
        _edit("data/scitokens.cfg", "[Global]\n", "[Global]\npassword = Zx81-literal\n"),
        "ConfigMap xcache/af-xcache-config: data.scitokens.cfg, line 2 (password) holds a literal secret",
        "password-in-a-file",
    ),
    Case(
        "no-secrets-in-configmaps",
        "atlas-cnaf",
        "af-condor-config",
        _set("data/token", "Zx81-literal-pool-token"),
        "ConfigMap condor/af-condor-config: data.token holds a literal secret",
        "token-entry",
    ),
    Case(
        "no-secrets-in-configmaps",
        "cms-bari",
        "af-hub-ca-certs",
        lambda inputs: inputs["data"].update({k: v + PEM_KEY for k, v in inputs["data"].items()}),
        "ConfigMap jupyterhub/af-ca-certs: data.2d21d59b.0 holds a PEM private key",
        "ca-key-next-to-the-ca",
    ),
    Case(
        "no-secrets-in-container-env",
        "cms-bari",
        "af-cache-servers",
        lambda inputs: _swap_env(inputs, "credential"),
        "StatefulSet xcache/af-xcache: container credential: env AF_CLIENT_SECRET holds a literal secret",
        "container-env",
    ),
    Case(
        "no-secrets-in-container-env",
        "atlas-cnaf",
        "af-cache-servers",
        lambda inputs: _swap_env(inputs, "credential-init"),
        "init container credential-init: env AF_CLIENT_SECRET holds a literal secret",
        "init-container-env",
    ),
    Case(
        "container-resources",
        "cms-bari",
        "af-condor-cm",
        lambda inputs: container(inputs, "condor")["resources"].pop("limits"),
        "Deployment condor/af-condor-cm: container condor has no limits.cpu, limits.memory",
        "no-limits",
    ),
    Case(
        "container-resources",
        "atlas-cnaf",
        "af-condor-schedd",
        lambda inputs: container(inputs, "condor")["resources"]["requests"].pop("memory"),
        "StatefulSet condor/af-condor-schedd: container condor has no requests.memory",
        "no-memory-request",
    ),
    Case(
        "container-resources",
        "cms-bari",
        "af-cache-servers",
        lambda inputs: container(inputs, "prepare").pop("resources"),
        "StatefulSet xcache/af-xcache: init container prepare has no requests.cpu",
        "init-container-unsized",
    ),
    Case(
        "container-resources",
        "autoscaler",
        "af-autoscaler-controller",
        lambda inputs: container(inputs, "mint-token")["resources"]["limits"].pop("cpu"),
        "init container mint-token has no limits.cpu",
        "autoscaler-init-unsized",
    ),
    Case(
        "pinned-images",
        "cms-bari",
        "af-cache-servers",
        lambda inputs: container(inputs, "xrootd").update(image="hub.opensciencegrid.org/opensciencegrid/xcache"),
        "container xrootd: image hub.opensciencegrid.org/opensciencegrid/xcache has no tag",
        "no-tag",
    ),
    Case(
        "pinned-images",
        "cms-bari",
        "af-condor-worker-cpu",
        lambda inputs: container(inputs, "condor").update(image="docker.io/htcondor/execute:latest"),
        "image docker.io/htcondor/execute:latest is tagged latest",
        "latest",
    ),
    Case(
        "pinned-images",
        "atlas-cnaf",
        "af-hub-chart",
        _set("values/singleuser/image/tag", "latest"),
        "Helm release jupyterhub/jupyterhub: values singleuser.image is tagged latest",
        "notebook-image-latest",
    ),
    Case(
        "pinned-charts",
        "cms-bari",
        "af-hub-chart",
        lambda inputs: inputs.pop("version"),
        "Helm release jupyterhub/jupyterhub (chart jupyterhub) has chart version None",
        "no-chart-version",
    ),
    Case(
        "pinned-charts",
        "dev",
        "af-cvmfs-chart",
        _set("version", "^2.3"),
        "Helm release cvmfs/cvmfs-csi (chart oci://registry.cern.ch/kubernetes/charts/cvmfs-csi) has chart version",
        "chart-version-range",
    ),
    Case(
        "no-privileged-workloads",
        "cms-bari",
        "af-cache-servers",
        _spec("volumes/2", {"name": "run", "hostPath": {"path": "/var/run"}}),
        "StatefulSet xcache/af-xcache: volume run is a hostPath (/var/run)",
        "host-path",
    ),
    Case(
        "no-privileged-workloads",
        "atlas-cnaf",
        "af-condor-cm",
        lambda inputs: container(inputs, "condor").update(securityContext={"privileged": True}),
        "Deployment condor/af-condor-cm: container condor is privileged",
        "privileged",
    ),
    Case(
        "no-privileged-workloads",
        "cms-bari",
        "af-condor-worker-cpu",
        _spec("hostNetwork", True),
        "Deployment condor/af-condor-worker-cpu: hostNetwork is true",
        "host-network",
    ),
    Case(
        "gpu-nodes-tainted",
        "cms-bari",
        "af-cluster-gpu-a100-1",
        lambda inputs: inputs["metadata"].pop("af-node-taints"),
        "instance af-cluster-gpu-a100-1 has 1 GPUs (g1-a100) but does not register with the nvidia.com/gpu",
        "gpu-node-untainted",
    ),
    Case(
        "gpu-nodes-tainted",
        "cms-bari",
        "af-cluster-gpu-a100-0",
        _set("metadata/af-node-taints", "nvidia.com/gpu=present:PreferNoSchedule"),
        "instance af-cluster-gpu-a100-0 has 1 GPUs",
        "gpu-taint-only-preferred",
    ),
    Case(
        "gpu-toleration-needs-gpu-request",
        "cms-bari",
        "af-cache-servers",
        lambda inputs: inputs["spec"]["template"]["spec"]["tolerations"].append(GPU_TOLERATION),
        "StatefulSet xcache/af-xcache tolerates the nvidia.com/gpu taint but requests no nvidia.com/gpu",
        "cache-on-gpu-nodes",
    ),
    Case(
        "gpu-toleration-needs-gpu-request",
        "cms-bari",
        "af-condor-worker-cpu",
        _spec("tolerations", [{"operator": "Exists"}]),
        "Deployment condor/af-condor-worker-cpu tolerates the nvidia.com/gpu taint",
        "tolerates-everything",
    ),
    Case(
        "gpu-toleration-needs-gpu-request",
        "cms-bari",
        "af-hub-chart",
        _set("values/custom/af/profiles/0/profile/kubespawner_override/tolerations", [GPU_TOLERATION]),
        "values custom.af.profiles.0.profile.kubespawner_override tolerates the nvidia.com/gpu taint without",
        "cpu-profile-on-gpu-nodes",
    ),
    Case(
        "gpu-toleration-needs-gpu-request",
        "dev",
        "af-hub-chart",
        _set("values/singleuser/extraTolerations", [GPU_TOLERATION]),
        "values singleuser.extraTolerations lets every notebook onto GPU nodes",
        "every-notebook-on-gpu-nodes",
    ),
    Case(
        "rbac-namespaced",
        "autoscaler",
        "af-autoscaler-binding",
        _set("roleRef/kind", "ClusterRole"),
        "RoleBinding condor/af-autoscaler binds ClusterRole af-autoscaler",
        "binds-a-cluster-role",
    ),
    Case(
        "rbac-no-wildcards",
        "autoscaler",
        "af-autoscaler-role",
        _set("rules/0/verbs", ["*"]),
        "Role condor/af-autoscaler: rules[0].verbs has '*'",
        "wildcard-verbs",
    ),
    Case(
        "rbac-no-wildcards",
        "autoscaler",
        "af-autoscaler-role",
        _set("rules/1/resources", ["*"]),
        "Role condor/af-autoscaler: rules[1].resources has '*'",
        "wildcard-resources",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c.rule}:{c.id}" for c in CASES])
def test_rule_reports_one_changed_property_of_a_real_resource(case, plans, configs):
    original = named(plans(case.plan), case.resource)
    props = properties(configs(case.plan), case.rule)
    assert judge(case.rule, original, props) == []
    changed = copy.deepcopy(original)
    case.change(changed["inputs"])
    assert changed != original
    found = judge(case.rule, changed, props)
    assert any(case.expect in message for message in found), found


def test_a_cluster_role_is_reported_where_the_program_emits_a_role(plans, configs):
    role = named(plans("autoscaler"), "af-autoscaler-role")
    props = properties(configs("autoscaler"), "rbac-namespaced")
    assert judge("rbac-namespaced", role, props) == []
    cluster_wide = {**copy.deepcopy(role), "type": "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole"}
    (message,) = judge("rbac-namespaced", cluster_wide, props)
    assert message.startswith("ClusterRole condor/af-autoscaler grants rights in every namespace")
    assert judge("rbac-namespaced", cluster_wide, {**props, "clusterRbacAllowList": ["af-autoscaler"]}) == []


def test_a_declared_public_port_may_be_open_to_the_world(plans, configs):
    https = named(plans("cms-bari"), "af-network-public-443-0-0-0-0-0")
    cache_port = copy.deepcopy(https)
    cache_port["inputs"].update(portRangeMin=1094, portRangeMax=1094)
    props = properties(configs("cms-bari"), "no-world-open-ports")
    assert judge("no-world-open-ports", cache_port, props)
    assert judge("no-world-open-ports", cache_port, {**props, "publicPorts": [1094]}) == []


def test_http_declared_public_is_not_judged_and_nginx_redirects_pass(plans, configs):
    resources = plans("cms-bari")["resources"]
    props = properties(configs("cms-bari"), "http-redirects-to-https")
    bare = [r for r in resources if r["name"] != "af-hub-https-redirect"]
    assert judge_stack("http-redirects-to-https", bare, props)
    assert judge_stack("http-redirects-to-https", bare, {**props, "publicPorts": [80]}) == []
    # ingress-nginx (Magnum's) redirects by the Ingress's own annotation.
    nginx = {"ingressClassName": "nginx", "annotations": {"nginx.ingress.kubernetes.io/ssl-redirect": "true"}}
    chart = _mutated(plans("cms-bari"), "af-hub-chart", lambda inputs: inputs["values"]["ingress"].update(nginx))
    assert (
        judge_stack("http-redirects-to-https", [r for r in chart if r["name"] != "af-hub-https-redirect"], props) == []
    )


def test_an_ingress_object_is_judged_like_a_charts(plans, configs):
    props = properties(configs("dev"), "http-redirects-to-https")
    ingress = {
        "type": "kubernetes:networking.k8s.io/v1:Ingress",
        "name": "grafana-ingress",
        "urn": "urn:pulumi:dev::analysis-facility::kubernetes:networking.k8s.io/v1:Ingress::grafana-ingress",
        "inputs": {"metadata": {"name": "grafana", "namespace": "monitoring"}, "spec": {"ingressClassName": "traefik"}},
    }
    resources = [*copy.deepcopy(plans("dev")["resources"]), ingress]
    ((urn, message),) = judge_stack("http-redirects-to-https", resources, props)
    assert urn == ingress["urn"] and message.startswith("Ingress monitoring/grafana is served on HTTP")
    # The hub's Middleware is in another namespace: the rule wants one in the Ingress's own.
    ingress["inputs"]["metadata"]["annotations"] = {
        "traefik.ingress.kubernetes.io/router.middlewares": "jupyterhub-af-https-redirect@kubernetescrd"
    }
    ((_, message),) = judge_stack("http-redirects-to-https", resources, props)
    assert "in namespace monitoring" in message
    middleware = copy.deepcopy(named(plans("dev"), "af-hub-https-redirect"))
    middleware["inputs"]["metadata"]["namespace"] = "monitoring"
    middleware.update(name="grafana-https-redirect", urn=middleware["urn"].replace("af-hub-", "grafana-"))
    refs = "x-y@kubernetescrd, monitoring-af-https-redirect@kubernetescrd"
    ingress["inputs"]["metadata"]["annotations"] = {"traefik.ingress.kubernetes.io/router.middlewares": refs}
    assert judge_stack("http-redirects-to-https", [*resources, middleware], props) == []


def test_admin_ports_without_admin_cidrs_in_the_config_are_reported(plans):
    ssh = named(plans("dev"), "af-network-admin-22-212-189-205-0-24")
    (message,) = judge("admin-ports-from-admin-cidrs", ssh, {})
    assert "none in the pack config: pass the file afctl preview writes" in message


def test_the_allow_list_admits_a_node_agent_in_a_namespace_enforcing_privileged(plans, configs):
    """The rule agrees with the namespaces' Pod Security labels: an allow-listed workload that needs `privileged`
    is still refused where its namespace enforces less (the API server would refuse its pods)."""
    cache = copy.deepcopy(named(plans("cms-bari"), "af-cache-servers"))
    cache["inputs"]["spec"]["template"]["spec"]["hostNetwork"] = True
    props = properties(configs("cms-bari"), "no-privileged-workloads")
    assert props["podSecurity"]["xcache"] == "baseline"
    assert judge("no-privileged-workloads", cache, props)
    allowed = {**props, "privilegedAllowList": [*props["privilegedAllowList"], "xcache/af-xcache"]}
    (message,) = judge("no-privileged-workloads", cache, allowed)
    assert "hostNetwork is true: its namespace enforces Pod Security baseline" in message
    privileged = {**allowed, "podSecurity": {**props["podSecurity"], "xcache": "privileged"}}
    assert judge("no-privileged-workloads", cache, privileged) == []


def test_namespaces_enforce_the_declared_pod_security_levels(plans, configs):
    props = properties(configs("cms-bari"), "no-privileged-workloads")
    namespaces = [r for r in plans("cms-bari")["resources"] if r["type"] == "kubernetes:core/v1:Namespace"]
    assert {r["inputs"]["metadata"]["name"] for r in namespaces} <= props["podSecurity"].keys()
    for namespace in namespaces:
        assert judge("no-privileged-workloads", namespace, props) == [], namespace["name"]
    condor = copy.deepcopy(next(r for r in namespaces if r["inputs"]["metadata"]["name"] == "condor"))
    condor["inputs"]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] = "privileged"
    assert judge("no-privileged-workloads", condor, props) == [
        "Namespace condor enforces Pod Security privileged (pod-security.kubernetes.io/enforce), the stack declares "
        "baseline (af:policy.podSecurity): label it baseline",
        "Namespace condor enforces Pod Security privileged but runs no node agent of the pack's privilegedAllowList: "
        "enforce baseline or restricted",
    ]
    del condor["inputs"]["metadata"]["labels"]
    (missing,) = judge("no-privileged-workloads", condor, props)
    assert "Namespace condor enforces Pod Security nothing" in missing


def test_token_auth_off_means_no_cache_token_rule(plans, configs):
    config = copy.deepcopy(named(plans("cms-bari"), "af-cache-config"))
    config["inputs"]["data"]["xrootd.cfg"] = replace(config["inputs"]["data"]["xrootd.cfg"], "ofs.authorize 1\n", "")
    props = properties(configs("cms-bari"), "cache-token-auth")
    assert judge("cache-token-auth", config, props)
    assert judge("cache-token-auth", config, {**props, "cacheTokenAuth": False}) == []


def test_gpu_workers_tolerate_the_taint_because_they_request_gpus(plans, configs):
    worker = named(plans("cms-bari"), "af-condor-worker-gpu-a100")
    pod = worker["inputs"]["spec"]["template"]["spec"]
    assert pod["tolerations"] == [GPU_TOLERATION]
    assert (
        judge(
            "gpu-toleration-needs-gpu-request",
            worker,
            properties(configs("cms-bari"), "gpu-toleration-needs-gpu-request"),
        )
        == []
    )
    hub = named(plans("cms-bari"), "af-hub-chart")
    profiles = [e["profile"] for e in hub["inputs"]["values"]["custom"]["af"]["profiles"]]
    assert any(p["kubespawner_override"].get("tolerations") for p in profiles), "the GPU profile is checked and passes"


# User-data: the program passes it as a Pulumi secret; its rendered (redacted) copy is what a
# plaintext user-data would be, with the redacted values standing in for the credentials.


def _plaintext_user_data(runs, filename: str, token: str, key: str) -> str:
    text = runs("cms-bari").files[f"cluster/cloud-init/{filename}"]
    text = replace(text, "token: '[secret]'", f"token: {token}")
    return text.replace("content: '[secret]'", "content: |\n    " + key.replace("\n", "\n    ").rstrip())


def test_user_data_that_is_a_secret_passes_and_plaintext_credentials_do_not(runs, plans, configs):
    instance = named(plans("cms-bari"), "af-cluster-control-plane-0")
    props = properties(configs("cms-bari"), "no-secrets-in-user-data")
    assert instance["inputs"]["userData"] == SECRET == walk.SECRET
    assert judge("no-secrets-in-user-data", instance, props) == []
    plaintext = copy.deepcopy(instance)
    plaintext["inputs"]["userData"] = _plaintext_user_data(
        runs, "control-plane-0.yaml", "K10d1e2::server:pw0rd9", PEM_KEY
    )
    found = judge("no-secrets-in-user-data", plaintext, props)
    assert any(
        "instance af-cluster-control-plane-0: userData: file /etc/rancher/k3s/config.yaml, line" in m for m in found
    )
    assert any("/var/lib/rancher/k3s/server/tls/server-ca.key holds a PEM private key" in m for m in found)
    redacted = copy.deepcopy(instance)
    redacted["inputs"]["userData"] = runs("cms-bari").files["cluster/cloud-init/cpu.yaml"]
    assert judge("no-secrets-in-user-data", redacted, props) == [], "[secret] placeholders are not literals"


def test_under_the_cli_user_data_is_not_judged(plans, configs):
    """The engine hands packs secret values decrypted (pulumi-policy#241): the rule steps aside."""
    instance = named(plans("cms-bari"), "af-cluster-control-plane-0")
    with pytest.raises(_NotApplicableError):
        judge(
            "no-secrets-in-user-data",
            instance,
            properties(configs("cms-bari"), "no-secrets-in-user-data", offline=False),
        )


def test_gpu_taint_is_read_from_readable_user_data_too(runs, plans, configs):
    gpu = copy.deepcopy(named(plans("cms-bari"), "af-cluster-gpu-a100-0"))
    props = properties(configs("cms-bari"), "gpu-nodes-tainted")
    text = runs("cms-bari").files["cluster/cloud-init/gpu-a100.yaml"]
    gpu["inputs"]["userData"] = text
    assert judge("gpu-nodes-tainted", gpu, props) == []
    gpu["inputs"]["userData"] = replace(text, "    node-taint:\n    - nvidia.com/gpu=present:NoSchedule\n", "")
    (message,) = judge("gpu-nodes-tainted", gpu, props)
    assert "the k3s config its user-data installs has no nvidia.com/gpu:NoSchedule node-taint" in message


def test_a_gpu_flavor_unknown_to_the_pack_is_reported(plans, configs):
    gpu = named(plans("cms-bari"), "af-cluster-gpu-a100-0")
    (message,) = judge("gpu-nodes-tainted", gpu, {})
    assert "flavor g1-a100 is not in the pack's flavors" in message


@pytest.mark.parametrize(
    ("key", "value", "leak"),
    [
        ("BEARER_TOKEN_FILE", "/tmp/af-bearer-token", False),
        ("AF_TOKEN_URL", "https://cms-auth.cern.ch/token", False),
        ("tokenRefreshMarginSeconds", "900", False),
        ("serverTokenScopes", "access:servers!server", False),
        ("secretKeyRef", "af-hub-secrets", False),
        ("existingSecret", "af-grafana-admin", False),
        ("passwordKey", "admin-password", False),
        ("adminSecret", "af-grafana-admin", True),
        ("publicKeyOpenssh", "ssh-ed25519 AAAAC3Nza", False),
        ("key", "nvidia.com/gpu", False),
        ("OAUTH_CLIENT_SECRET", SECRET, False),
        ("password", "$(POOL_PASSWORD)", False),
        ("token", "", False),
        ("OAUTH_CLIENT_SECRET", "Zx81-literal", True),
        ("crypt-key", "9f86d081884c7d65", True),
        ("privateKey", "AAAA", True),
        ("password", "hunter2", True),
        ("url", "postgres://hub@db/hub", False),
        ("url", "postgres://hub:hunter2@db/hub", True),
        ("db_password", "postgres://hub:hunter2@db/hub", True),
    ],
)
def test_secret_heuristic(key, value, leak):
    assert leaked(key, value) is leak


# Stack rules: one resource of the plan changed (or removed).


def _mutated(document: dict[str, Any], name: str, change: Callable[[dict[str, Any]], None]) -> list[dict[str, Any]]:
    resources = copy.deepcopy(document["resources"])
    (target,) = [r for r in resources if r["name"] == name]
    change(target["inputs"])
    return resources


@dataclass(frozen=True)
class StackCase:
    rule: str
    plan: str
    resource: str
    change: Callable[[dict[str, Any]], None] | None
    """None: the resource is removed from the plan."""
    expect: str
    urn_of: str | None
    """The resource the finding is reported on (None: the stack)."""
    id: str


HUB_INGRESS = "Helm release jupyterhub/jupyterhub: values ingress is served on HTTP, open to the internet by "
STACK_CASES = [
    StackCase(
        "http-redirects-to-https",
        "cms-bari",
        "af-hub-chart",
        _set("values/ingress/annotations", {"cert-manager.io/cluster-issuer": "af-acme"}),
        HUB_INGRESS + "af-network-public-80-0-0-0-0-0, without a redirect: no Middleware of the plan",
        "af-hub-chart",
        "hub-ingress-without-the-middleware",
    ),
    StackCase(
        "http-redirects-to-https",
        "dev",
        "af-hub-https-redirect",
        _set("spec/redirectScheme/scheme", "http"),
        "no Middleware of the plan with redirectScheme https",
        "af-hub-chart",
        "middleware-redirects-elsewhere",
    ),
    StackCase(
        "http-redirects-to-https",
        "dev",
        "af-hub-https-redirect",
        None,
        "no Middleware of the plan with redirectScheme https",
        "af-hub-chart",
        "middleware-gone",
    ),
    StackCase(
        "http-redirects-to-https",
        "cms-bari",
        "af-hub-chart",
        _set("values/ingress/ingressClassName", "haproxy"),
        "ingress class 'haproxy', whose redirect to HTTPS the rule does not know",
        "af-hub-chart",
        "unknown-ingress-class",
    ),
    StackCase(
        "http-redirects-to-https",
        "dev",
        "af-hub-chart",
        None,
        "security group rule af-network-public-80-0-0-0-0-0 opens tcp 80 to the internet and no Ingress",
        "af-network-public-80-0-0-0-0-0",
        "http-open-with-nothing-behind-it",
    ),
    StackCase(
        "disruption-budgets",
        "cms-bari",
        "af-condor-cm-pdb",
        _set("spec/selector/matchLabels", {"app.kubernetes.io/name": "af-condor-cm-old"}),
        "Deployment condor/af-condor-cm has no PodDisruptionBudget selecting its pods",
        "af-condor-cm",
        "budget-selects-nothing",
    ),
    StackCase(
        "disruption-budgets",
        "atlas-cnaf",
        "af-cache-pdb",
        None,
        "StatefulSet xcache/af-xcache has no PodDisruptionBudget",
        "af-cache-servers",
        "cache-budget-gone",
    ),
    StackCase(
        "disruption-budgets",
        "dev",
        "af-hub-chart",
        _set("values/hub/pdb/enabled", False),
        "Helm release jupyterhub/jupyterhub: values hub.pdb.enabled is not true",
        "af-hub-chart",
        "hub-budget-off",
    ),
    StackCase(
        "site-quota",
        "cms-bari",
        "af-cluster-cache-0-data",
        _set("size", 20001),
        "the plan needs 20001 GiB of volumes and the project's quota allows 20000 (af:site.quotas.volumeGib)",
        None,
        "volume-over-quota",
    ),
    StackCase(
        "site-quota",
        "atlas-cnaf",
        "af-cluster-default",
        _set("nodeCount", 15),
        "the plan needs 260 vCPUs and the project's quota allows 256 (af:site.quotas.vcpus)",
        None,
        "magnum-group-over-quota",
    ),
    StackCase(
        "site-quota",
        "dev",
        "af-cluster-cpu-0",
        _set("flavorName", "8xlarge"),
        "af-cluster-cpu-0: flavor 8xlarge is not in the pack's flavors",
        "af-cluster-cpu-0",
        "unknown-flavor",
    ),
    StackCase(
        "production-control-plane",
        "cms-bari",
        "af-cluster-control-plane-spread",
        _set("policies", "soft-anti-affinity"),
        "control-plane instance af-cluster-control-plane-1 is not in an anti-affinity server group",
        "af-cluster-control-plane-1",
        "soft-anti-affinity",
    ),
    StackCase(
        "production-control-plane",
        "atlas-cnaf",
        "af-cluster-magnum",
        _set("masterCount", 1),
        "Magnum cluster af-cluster-magnum has 1 master(s)",
        "af-cluster-magnum",
        "magnum-single-master",
    ),
    StackCase(
        "production-control-plane",
        "atlas-cnaf",
        "af-cluster-template",
        _set("masterLbEnabled", False),
        "Magnum cluster af-cluster-magnum has no load balancer in front of its masters",
        "af-cluster-magnum",
        "magnum-without-api-balancer",
    ),
]


@pytest.mark.parametrize("case", STACK_CASES, ids=[f"{c.rule}:{c.id}" for c in STACK_CASES])
def test_stack_rule_reports_one_changed_resource_of_a_real_plan(case, plans, configs):
    document = plans(case.plan)
    props = properties(configs(case.plan), case.rule)
    assert judge_stack(case.rule, document["resources"], props) == []
    if case.change is None:
        resources = [copy.deepcopy(r) for r in document["resources"] if r["name"] != case.resource]
        assert len(resources) == len(document["resources"]) - 1
    else:
        resources = _mutated(document, case.resource, case.change)
    found = judge_stack(case.rule, resources, props)
    matching = [(urn, m) for urn, m in found if case.expect in m]
    assert matching, found
    urns = {urn for urn, _ in matching}
    assert urns == ({named(document, case.urn_of)["urn"]} if case.urn_of else {None})


def test_production_needs_three_control_plane_nodes(plans, configs):
    document = plans("dev")
    props = properties(configs("dev"), "production-control-plane")
    assert props["production"] is False and judge_stack("production-control-plane", document["resources"], props) == []
    found = judge_stack("production-control-plane", document["resources"], {**props, "production": True})
    assert [m for _, m in found] == [
        "a production stack has 1 control-plane instance(s): set af:cluster.controlPlane.count to 3, "
        "or af:policy.production to false"
    ]


@pytest.mark.parametrize("stack", ["dev", "cms-bari"])
def test_quota_use_from_the_plan_matches_the_configs_arithmetic(stack, plans):
    """Two computations of one thing: the policy's from the plan, the config check's from the config."""
    cfg = build_config(*stack_values(stack))
    facts = facts_from(pack_config(cfg)["site-quota"])
    used, unknown = plan_usage(
        [walk.Resource(r["type"], r["name"], r["inputs"], r["urn"]) for r in plans(stack)["resources"]], facts
    )
    expected = usage(cfg.site, cfg.cluster)
    assert unknown == []
    assert dict(used) == {
        k: v
        for k, v in {
            "vcpus": expected.vcpus,
            "ramGib": expected.ram_gib,
            "instances": expected.instances,
            "volumes": expected.volumes,
            "volumeGib": expected.volume_gib,
            "floatingIps": expected.floating_ips,
            "gpus": expected.gpus,
        }.items()
        if v
    }


def test_magnum_quota_counts_masters_workers_and_their_container_volumes(plans):
    cfg = build_config(*stack_values("atlas-cnaf"))
    facts = facts_from(pack_config(cfg)["site-quota"])
    resources = [
        walk.Resource(r["type"], r["name"], r["inputs"], r["urn"], tuple(r["dependencies"]))
        for r in plans("atlas-cnaf")["resources"]
    ]
    used, unknown = plan_usage(resources, facts)
    # 3 large masters, 3 xlarge (default group), 8 2xlarge (batch); a 50 GiB docker volume each.
    assert unknown == [] and dict(used) == {
        "vcpus": 3 * 4 + 3 * 8 + 8 * 16,
        "ramGib": 3 * 8 + 3 * 16 + 8 * 32,
        "instances": 14,
        "volumes": 14,
        "volumeGib": 14 * 50,
    }


def test_every_rule_has_a_violating_and_a_passing_case():
    covered = {c.rule for c in CASES} | {c.rule for c in STACK_CASES} | {"no-secrets-in-user-data"}
    assert covered == set(RULE_NAMES)
