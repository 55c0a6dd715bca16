"""The interactive layer in the plan: hub and CVMFS releases, their wiring, secrets and manifests."""

from __future__ import annotations

import json
import re
from typing import Any

import kubernetes_validate
import pytest
import yaml
from conftest import SHIPPED_STACKS, by_name, of_type, preview_values, stack_values

from afctl import plan
from afctl.mocks import Registration
from afctl.runner import RunResult
from components.config.loader import build_config
from components.dask.gateway import TOKEN_KEY as DASK_TOKEN_KEY
from components.dask.gateway import TOKEN_SECRET as DASK_TOKEN_SECRET
from components.hub.values import HUB_SECRET, TLS_SECRET
from components.names import BEARER_TOKEN_FILE

RELEASE = "kubernetes:helm.sh/v3:Release"
K8S_PROVIDER = "pulumi:providers:kubernetes"
PVC = "kubernetes:core/v1:PersistentVolumeClaim"
STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"
SECRET = "kubernetes:core/v1:Secret"
PINNED = re.compile(r"^v?\d+\.\d+\.\d+$")


def hub_values(result: RunResult) -> dict[str, Any]:
    values = by_name(result, "af-hub-chart").inputs["values"]
    assert isinstance(values, dict), "hub values must not be a secret blob: nothing secret belongs in them"
    return values


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_charts_are_pinned_and_deployed_on_the_cluster_provider(shipped, stack):
    result = shipped(stack)
    (provider,) = of_type(result, K8S_PROVIDER)
    releases = {r.name: r for r in of_type(result, RELEASE)}
    assert {"af-hub-chart", "af-cvmfs-chart"} <= set(releases)
    for release in releases.values():
        assert PINNED.match(release.inputs["version"]), release.name
        assert release.provider == provider.urn, release.name
    cfg = build_config(*stack_values(stack))
    assert releases["af-hub-chart"].inputs["version"] == cfg.hub.chart_version
    assert releases["af-hub-chart"].inputs["repositoryOpts"]["repo"] == "https://hub.jupyter.org/helm-chart/"
    assert releases["af-cvmfs-chart"].inputs["version"] == cfg.cvmfs.chart_version
    assert releases["af-cvmfs-chart"].inputs["chart"].startswith("oci://registry.cern.ch/")
    # Every Kubernetes object of these layers goes to the facility's cluster, none to an ambient one.
    for r in result.registrations:
        if r.custom and r.type.startswith("kubernetes:"):
            assert r.provider == provider.urn, r.name


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_user_pods_mount_cvmfs_read_only(shipped, stack):
    result = shipped(stack)
    storage = hub_values(result)["singleuser"]["storage"]
    (volume,) = [v for v in storage["extraVolumes"] if "persistentVolumeClaim" in v]
    (mount,) = [m for m in storage["extraVolumeMounts"] if m["name"] == volume["name"]]
    assert mount == {
        "name": volume["name"],
        "mountPath": "/cvmfs",
        "readOnly": True,
        "mountPropagation": "HostToContainer",
    }
    claim = by_name(result, "af-hub-cvmfs")
    assert claim.type == PVC
    assert claim.inputs["metadata"] == {"name": volume["persistentVolumeClaim"]["claimName"], "namespace": "jupyterhub"}
    assert claim.inputs["spec"]["accessModes"] == ["ReadOnlyMany"]
    (storage_class,) = of_type(result, STORAGE_CLASS)
    assert claim.inputs["spec"]["storageClassName"] == storage_class.inputs["metadata"]["name"]
    assert storage_class.inputs["provisioner"] == "cvmfs.csi.cern.ch"
    # The hub waits for the claim, the claim for the class, the class for the driver.
    assert claim.urn in by_name(result, "af-hub-chart").dependencies
    assert storage_class.urn in claim.dependencies
    assert by_name(result, "af-cvmfs-chart").urn in storage_class.dependencies


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_cvmfs_client_config_lists_the_experiment_repositories(shipped, stack):
    result = shipped(stack)
    cfg = build_config(*stack_values(stack))
    default_local = result.files["cvmfs/default.local"]
    assert f"CVMFS_REPOSITORIES={','.join(cfg.cvmfs.repositories)}\n" in default_local
    values = by_name(result, "af-cvmfs-chart").inputs["values"]
    assert values["extraConfigMaps"]["cvmfs-csi-default-local"]["default.local"] == default_local
    assert yaml.safe_load(result.files["cvmfs/values.yaml"]) == values


def test_cms_gets_cms_software():
    values, secret = stack_values("cms-bari")
    repos = build_config(values, secret).cvmfs.repositories
    assert {"cms.cern.ch", "grid.cern.ch", "unpacked.cern.ch"} <= set(repos)


def test_local_squid_is_first_in_the_proxy_chain():
    values, secret = stack_values("dev")
    values["cvmfs"] = {"squidProxy": True, "httpProxy": "http://squid.ba.infn.it:3128"}
    result = preview_values("dev", values, secret)
    assert (
        'CVMFS_HTTP_PROXY="http://af-squid.cvmfs.svc.cluster.local:3128;http://squid.ba.infn.it:3128"'
        in (result.files["cvmfs/default.local"])
    )
    service = by_name(result, "af-cvmfs-squid-svc")
    assert service.inputs["metadata"] == {"name": "af-squid", "namespace": "cvmfs"}
    assert service.urn in by_name(result, "af-cvmfs-chart").dependencies
    conf = result.files["cvmfs/squid.conf"]
    assert "acl facility src 10.42.0.0/16 10.10.0.0/24" in conf and "http_access deny all" in conf


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_hub_values_reference_secrets_by_name_only(shipped, stack):
    result = shipped(stack)
    values = hub_values(result)
    env = values["hub"]["extraEnv"]
    refs = {name: e["valueFrom"]["secretKeyRef"] for name, e in env.items() if "valueFrom" in e}
    dask = refs.pop("AF_DASK_GATEWAY_TOKEN", None)  # the Dask gateway's service token, its own Secret
    assert (dask is not None) == build_config(*stack_values(stack)).dask.enabled
    assert dask in (None, {"name": DASK_TOKEN_SECRET, "key": DASK_TOKEN_KEY})
    assert set(refs) == {"OAUTH_CLIENT_SECRET", "AF_COOKIE_SECRET", "JUPYTERHUB_CRYPT_KEY"}
    assert {r["name"] for r in refs.values()} == {HUB_SECRET}
    secret = by_name(result, "af-hub-secrets")
    assert secret.inputs["metadata"] == {"name": HUB_SECRET, "namespace": "jupyterhub"}
    assert secret.inputs["stringData"] == "[secret]"
    assert secret.urn in by_name(result, "af-hub-chart").dependencies
    assert yaml.safe_load(result.files["hub/values.yaml"]) == values
    assert "client_secret" not in json.dumps(values)


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_hub_is_reached_over_tls_from_cert_manager(shipped, stack):
    result = shipped(stack)
    cfg = build_config(*stack_values(stack))
    ingress = hub_values(result)["ingress"]
    host = cfg.hub.host or cfg.site.dns_name
    assert ingress["hosts"] == [host] and ingress["tls"] == [{"hosts": [host], "secretName": TLS_SECRET}]
    assert ingress["ingressClassName"] == cfg.hub.ingress_class
    issuer = by_name(result, "af-hub-acme-issuer")
    assert ingress["annotations"]["cert-manager.io/cluster-issuer"] == issuer.inputs["metadata"]["name"]
    assert issuer.inputs["spec"]["acme"]["email"] == cfg.hub.tls.acme_email
    assert by_name(result, "af-certs-chart").urn in issuer.dependencies
    callback = hub_values(result)["hub"]["config"]["GenericOAuthenticator"]["oauth_callback_url"]
    assert callback == f"https://{host}/hub/oauth_callback"
    assert result.outputs["hubUrl"] == f"https://{host}/"


TRAEFIK_MIDDLEWARES = "traefik.ingress.kubernetes.io/router.middlewares"
MIDDLEWARE = "kubernetes:traefik.io/v1alpha1:Middleware"


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_plain_http_to_the_hub_is_redirected_to_https_but_not_the_acme_challenge(shipped, stack):
    """Port 80 answers the ACME HTTP-01 challenge and redirects everything else. traefik (k3s):
    a `redirectScheme` Middleware in the hub's namespace, named from the Ingress as
    `<namespace>-<name>@kubernetescrd` (traefik's Ingress annotations reference); ingress-nginx
    (Magnum): `ssl-redirect: "true"`. Only the hub's Ingress carries it: cert-manager's solver
    makes its own Ingress from the issuer's template, which adds nothing."""
    result = shipped(stack)
    cfg = build_config(*stack_values(stack))
    release = by_name(result, "af-hub-chart")
    annotations = hub_values(result)["ingress"]["annotations"]
    if cfg.hub.ingress_class == "traefik":
        (middleware,) = of_type(result, MIDDLEWARE)
        meta = middleware.inputs["metadata"]
        assert meta["namespace"] == release.inputs["namespace"], "an Ingress references its own namespace's"
        assert annotations[TRAEFIK_MIDDLEWARES] == f"{meta['namespace']}-{meta['name']}@kubernetescrd"
        assert middleware.inputs["apiVersion"] == "traefik.io/v1alpha1"
        assert middleware.inputs["spec"] == {"redirectScheme": {"scheme": "https", "permanent": True}}
        assert middleware.urn in release.dependencies
        assert by_name(result, "af-hub-ns").urn in middleware.dependencies
    else:
        assert cfg.hub.ingress_class == "nginx"
        assert annotations["nginx.ingress.kubernetes.io/ssl-redirect"] == "true"
        assert not of_type(result, MIDDLEWARE)
    (solver,) = by_name(result, "af-hub-acme-issuer").inputs["spec"]["acme"]["solvers"]
    assert solver["http01"] == {"ingress": {"ingressClassName": cfg.hub.ingress_class}}


def _provided_tls_stack() -> tuple[dict[str, Any], set[str]]:
    values, secret = stack_values("dev")
    values["identity"] = {"clientSecret": "iam-client-secret-0b5e7c"}
    pem = "-----BEGIN CERTIFICATE-----\nMIIBcertificate\n-----END CERTIFICATE-----\n"
    values["hub"] = {"tls": {"mode": "provided", "certificate": pem, "privateKey": "tls-private-key-91c2d4"}}
    return values, secret | {"identity", "hub"}


def test_provided_certificate_and_client_secret_never_appear_in_plaintext():
    values, secret = _provided_tls_stack()
    result = preview_values("dev", values, secret)
    texts = [plan.plan_json(result), *result.files.values()]
    for value in ("iam-client-secret-0b5e7c", "tls-private-key-91c2d4"):
        assert not any(value in text for text in texts), value
    tls = by_name(result, "af-hub-tls")
    assert tls.inputs["type"] == "kubernetes.io/tls" and tls.inputs["stringData"] == "[secret]"
    issuers = [r.name for r in of_type(result, "kubernetes:cert-manager.io/v1:ClusterIssuer")]
    assert not [name for name in issuers if "acme" in name], issuers  # the internal CA's stays
    # No ACME issuer on the Ingress; HTTP is still redirected to HTTPS.
    assert set(hub_values(result)["ingress"]["annotations"]) == {TRAEFIK_MIDDLEWARES}


def _gpu_entries(result: RunResult) -> list[dict[str, Any]]:
    entries = hub_values(result)["custom"]["af"]["profiles"]
    return [e for e in entries if "extra_resource_limits" in e["profile"]["kubespawner_override"]]


def test_gpu_profiles_exist_only_with_gpu_groups_and_only_for_gpu_groups(shipped):
    cfg = build_config(*stack_values("cms-bari"))
    (entry,) = _gpu_entries(shipped("cms-bari"))
    assert entry["groups"] == cfg.identity.roles.gpu == ["/cms/ml"]
    override = entry["profile"]["kubespawner_override"]
    assert override["extra_resource_limits"] == {"nvidia.com/gpu": "1"}
    assert override["node_selector"] == {"af.infn.it/node-group": "gpu-a100"}
    assert override["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    for stack in ("dev", "atlas-cnaf"):
        assert _gpu_entries(shipped(stack)) == []
    # CPU profiles never tolerate the GPU taint, so CPU notebooks stay off GPU nodes.
    for e in hub_values(shipped("cms-bari"))["custom"]["af"]["profiles"]:
        if e not in _gpu_entries(shipped("cms-bari")):
            assert e["groups"] is None and "tolerations" not in e["profile"]["kubespawner_override"]


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_notebooks_get_a_fresh_token_file(shipped, stack):
    single = hub_values(shipped(stack))["singleuser"]
    script = single["extraFiles"]["af-token"]
    assert single["cmd"] == ["python3", script["mountPath"], "jupyterhub-singleuser"]
    assert single["extraEnv"]["BEARER_TOKEN_FILE"] == BEARER_TOKEN_FILE
    assert int(single["extraEnv"]["AF_TOKEN_REFRESH_SECONDS"]) > 0
    compile(script["stringData"], "af_token.py", "exec")


def manifest(r: Registration) -> dict[str, Any]:
    """The object the provider would send, from the recorded inputs. Under the mocks a Secret's
    data is one secret blob; its keys are unknown here, so it is checked as empty."""
    body = {k: v for k, v in r.inputs.items() if k not in {"metadata"}}
    for key in ("data", "stringData"):
        if body.get(key) == "[secret]":
            body[key] = {}
    return {"metadata": r.inputs.get("metadata", {}), **body}


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_generated_manifests_pass_kubernetes_validate(shipped, stack):
    cfg = build_config(*stack_values(stack))
    version = cfg.cluster.k3s.version.removeprefix("v").split("+")[0]
    checked = 0
    for r in shipped(stack).registrations:
        if not r.custom or not r.type.startswith("kubernetes:") or r.type == RELEASE:
            continue
        if r.inputs.get("apiVersion", "").startswith(("cert-manager.io/", "traefik.io/")):
            continue  # a CRD: no schema in kubernetes-validate; its shape is asserted above
        kubernetes_validate.validate(manifest(r), version, strict=True)
        checked += 1
    assert checked >= 5


def test_squid_manifests_pass_kubernetes_validate():
    values, secret = stack_values("dev")
    values["cvmfs"] = {"squidProxy": True}
    result = preview_values("dev", values, secret)
    kinds = set()
    for r in result.registrations:
        if r.custom and r.name.startswith("af-cvmfs-squid"):
            kubernetes_validate.validate(manifest(r), "1.36.2", strict=True)
            kinds.add(r.inputs["kind"])
    assert kinds == {"ConfigMap", "Deployment", "Service"}


def test_kubernetes_validate_catches_a_broken_claim(shipped):
    claim = manifest(by_name(shipped("dev"), "af-hub-cvmfs"))
    claim["spec"]["accessModes"] = "ReadOnlyMany"  # a string where a list belongs
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(claim, "1.36.2", strict=True)


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_the_hub_and_its_proxy_have_disruption_budgets(shipped, stack):
    """The chart leaves both budgets off; a node drain must not evict the single hub or proxy."""
    values = by_name(shipped(stack), "af-hub-chart").inputs["values"]
    assert values["hub"]["pdb"] == {"enabled": True, "minAvailable": 1}
    assert values["proxy"]["chp"]["pdb"] == {"enabled": True, "minAvailable": 1}
