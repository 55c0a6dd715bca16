"""Config of the interactive layer: identity, hub and CVMFS, and their cross checks."""

from __future__ import annotations

from typing import Any

import pytest
from test_config import DELETE, HUB_SECRET, edit, hub_base, only_problem, problems_of

from components.config.loader import STAND_IN, build_config, stand_in_secrets


def test_hub_base_is_valid_with_the_client_secret_as_a_pulumi_secret() -> None:
    cfg = build_config(hub_base(), HUB_SECRET)
    assert cfg.hub.enabled and cfg.identity.client_secret.get_secret_value() == "from-pulumi-secret"
    assert [p.name for p in cfg.hub.profiles] == ["small", "medium", "large"]


def bad(cfg: dict[str, Any], path: str, allowed: str) -> None:
    only_problem(cfg, path, allowed, HUB_SECRET)


@pytest.mark.parametrize(
    ("path", "value", "reported", "allowed"),
    [
        ("identity.clientSecret", DELETE, "af:identity.clientSecret", "pulumi config set --secret --path"),
        ("identity.roles.login", [], "af:identity.roles.login", "the hub admits members of these only"),
        ("identity.roles.gpu", ["users/gpu"], "af:identity.roles.gpu[0]", "a WLCG group path such as /users/gpu"),
        ("identity.roles.admin", ["/ok", "bad group"], "af:identity.roles.admin[1]", "such as"),
        ("identity.scopes", ["profile", "wlcg.groups"], "af:identity.scopes", "include openid"),
        ("identity.scopes", ["openid", "offline_access"], "af:identity.scopes", "include wlcg.groups"),
        ("identity.groupsClaim", "", "af:identity.groupsClaim", "at least 1 character"),
        ("hub.tls.acmeEmail", DELETE, "af:hub.tls.acmeEmail", "a contact address"),
        ("hub.tls.acmeEmail", "ops-at-example", "af:hub.tls.acmeEmail", "such as"),
        ("hub.tls.mode", "self-signed", "af:hub.tls.mode", "'cert-manager' or 'provided'"),
        ("hub.host", "Hub.Example.org", "af:hub.host", "fully qualified"),
        ("hub.ingressClass", "Traefik", "af:hub.ingressClass", "lowercase letters"),
        ("hub.cpuGuaranteeFraction", 0, "af:hub.cpuGuaranteeFraction", "a number above 0"),
        ("hub.tokenRefreshMinutes", 0, "af:hub.tokenRefreshMinutes", "a number above 0"),
        ("hub.profiles", [], "af:hub.profiles", "at least 1 item"),
        (
            "cluster.nodeGroups.cpu.roles",
            ["system", "batch"],
            "af:cluster.nodeGroups",
            "a CPU node group for notebooks",
        ),
        ("cvmfs.repositories", ["cms.cern.ch", "cms.cern.ch"], "af:cvmfs.repositories", "each repository once"),
        ("cvmfs.httpProxy", "squid.example.org:3128", "af:cvmfs.httpProxy", "such as"),
        ("cvmfs.chartVersion", "latest", "af:cvmfs.chartVersion", "such as"),
    ],
)
def test_bad_interactive_config(path: str, value: Any, reported: str, allowed: str) -> None:
    bad(edit(hub_base(), path, value), reported, allowed)


def test_client_secret_in_plaintext_is_refused() -> None:
    found = problems_of(hub_base(), {"site"})
    assert [p.line() for p in found] == [
        "af:identity.clientSecret: got plaintext; allowed: a Pulumi secret: "
        "pulumi config set --secret --path 'af:identity.clientSecret' …"
    ]


def test_bare_group_names_are_fine_with_a_plain_groups_claim() -> None:
    cfg = edit(hub_base(), "identity.groupsClaim", "groups")
    cfg = edit(cfg, "identity.roles", {"login": ["users"], "admin": ["admins"]})
    assert build_config(cfg, HUB_SECRET).identity.roles.login == ["users"]


def _profile(name: str, cpu: float, mem: float, default: bool = False) -> dict[str, Any]:
    return {"name": name, "displayName": name.title(), "cpu": cpu, "memoryGib": mem, "default": default}


def test_profiles_must_fit_an_interactive_cpu_node() -> None:
    # The only CPU group is flavor big: 8 vCPUs, 32 GiB. 7.5 cores and 28.8 GiB fit, no more.
    fits = [_profile("a", 7.5, 28.8, True), _profile("b", 1, 2)]
    assert len(build_config(edit(hub_base(), "hub.profiles", fits), HUB_SECRET).hub.profiles) == 2
    found = only_problem(
        edit(hub_base(), "hub.profiles", [*fits, _profile("c", 8, 16)]), "af:hub.profiles[2]", "fits", HUB_SECRET
    )
    assert found.value == '"c: 8.0 cores, 16.0 GiB"'
    bad(edit(hub_base(), "hub.profiles", [_profile("a", 2, 30)]), "af:hub.profiles[0]", "room for system pods")


def test_profile_names_are_distinct_and_one_default_at_most() -> None:
    twice = [_profile("a", 1, 2), _profile("a", 2, 4)]
    bad(edit(hub_base(), "hub.profiles", twice), "af:hub.profiles", "distinct names")
    defaults = [_profile("a", 1, 2, True), _profile("b", 2, 4, True)]
    bad(edit(hub_base(), "hub.profiles", defaults), "af:hub.profiles", "at most one default")


def _gpu_notebooks(cfg: dict[str, Any]) -> dict[str, Any]:
    return edit(cfg, "cluster.nodeGroups.gpu.roles", ["batch", "interactive"])


def test_gpu_profile_must_fit_every_gpu_group_that_runs_notebooks() -> None:
    cfg = _gpu_notebooks(hub_base())  # flavor gpu: 16 vCPUs, 64 GiB, 2 GPUs
    assert build_config(edit(cfg, "hub.gpuProfile", {"gpus": 2, "cpu": 15, "memoryGib": 57}), HUB_SECRET)
    for shape in ({"gpus": 3}, {"cpu": 16}, {"memoryGib": 60}):
        bad(edit(cfg, "hub.gpuProfile", shape), "af:hub.gpuProfile", "fits a node of GPU group gpu")
    # Groups that do not run notebooks get no profile: a shape declared for none is a mistake.
    bad(edit(hub_base(), "hub.gpuProfile", {"gpus": 3}), "af:hub.gpuProfile", "no node group has a gpu spec")


def test_existing_clusters_skip_the_size_checks() -> None:
    cfg = edit(hub_base(), "cluster.mode", "existing")
    cfg = edit(cfg, "cluster.existing", {"kubeconfig": "apiVersion: v1"})
    cfg = edit(cfg, "hub.profiles", [_profile("huge", 64, 512)])
    assert build_config(cfg, {"cluster", "identity"}).hub.profiles[0].cpu == 64


def test_provided_certificate_needs_both_parts_and_a_secret_key() -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    provided = edit(hub_base(), "hub.tls", {"mode": "provided", "certificate": pem})
    bad(provided, "af:hub.tls.privateKey", "the PEM certificate and key")
    with_key = edit(provided, "hub.tls.privateKey", "k")
    assert build_config(with_key, HUB_SECRET | {"hub"}).hub.tls.private_key is not None
    bad(with_key, "af:hub.tls.privateKey", "a Pulumi secret")
    bad(edit(with_key, "hub.tls.certificate", "not pem"), "af:hub.tls.certificate", "a PEM certificate chain")


def test_hub_disabled_needs_no_client_secret_or_login_groups() -> None:
    cfg = edit(edit(hub_base(), "identity.clientSecret", DELETE), "identity.roles.login", [])
    assert not build_config(edit(cfg, "hub.enabled", False)).hub.enabled


# --- offline stand-ins ----------------------------------------------------------------------------


def test_stand_in_fills_the_client_secret_only_where_the_hub_needs_it() -> None:
    values = edit(hub_base(), "identity.clientSecret", DELETE)
    filled_values, secret, filled = stand_in_secrets(values, set())
    assert filled == ["af:identity.clientSecret"] and secret == {"identity"}
    assert filled_values["identity"]["clientSecret"] == STAND_IN
    assert "clientSecret" not in values["identity"], "the input is not modified"
    assert build_config(filled_values, secret).identity.client_secret.get_secret_value() == STAND_IN

    assert stand_in_secrets(edit(values, "hub.enabled", False), set())[2] == []
    assert stand_in_secrets(edit(values, "identity", DELETE), set())[2] == []
    assert stand_in_secrets(hub_base(), HUB_SECRET)[2] == [], "a value that is set is kept"


def test_stand_in_fills_the_tls_key_only_in_provided_mode() -> None:
    values = edit(edit(hub_base(), "hub.tls", {"mode": "provided"}), "identity.clientSecret", DELETE)
    assert stand_in_secrets(values, set())[2] == ["af:identity.clientSecret", "af:hub.tls.privateKey"]
    assert stand_in_secrets(edit(values, "hub.tls.mode", "cert-manager"), set())[2] == ["af:identity.clientSecret"]


def test_stand_in_follows_profiles() -> None:
    """The shipped stacks set no identity themselves: the experiment profile does."""
    values = {"profiles": ["sites/infn-cloud-bari", "experiments/cms"], "cluster": {}}
    filled_values, secret, filled = stand_in_secrets(values, set())
    assert filled == ["af:identity.clientSecret", "af:cache.upstream.clientSecret"]
    assert secret == {"identity", "cache"}
    assert filled_values["identity"] == {"clientSecret": STAND_IN}
    assert filled_values["cache"] == {"upstream": {"clientSecret": STAND_IN}}
