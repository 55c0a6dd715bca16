"""The cache in the plan and its rendered files, and the sidecar that keeps its upstream
credential fresh (run for real: against the test issuer, and with xrdgsiproxy)."""

from __future__ import annotations

import datetime
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from conftest import by_name, of_type, preview_values, stack_values
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from support.oidc import TestIssuer
from test_hub import hub_values, manifest

from afctl.mocks import _computed
from components.cache.files import HERE as EXPORTERFILES
from components.cache.pod import CONFIG_DIR, RUNTIME
from components.cache.xrootd import CacheRuntime, render_scitokens_cfg, render_xrootd_cfg
from components.certs.component import INTERNAL_CA_NAME, subject_hash
from components.config.loader import build_config
from components.credential.files import HERE as CREDFILES
from components.credential.files.af_credential import proxy_command
from components.names import CACHE_HTTPS_PORT, CACHE_METRICS_PORT, CACHE_PORT, CACHE_SERVICE

STS = "kubernetes:apps/v1:StatefulSet"


def _pod(result) -> dict[str, Any]:
    return by_name(result, "af-cache-servers").inputs["spec"]["template"]["spec"]


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod["initContainers"], *pod["containers"]]


def test_cache_servers_are_a_stateful_set_with_a_disk_each_on_cache_nodes(shipped):
    result = shipped("cms-bari")
    cfg = build_config(*stack_values("cms-bari"))
    sts = by_name(result, "af-cache-servers").inputs["spec"]
    assert sts["replicas"] == cfg.cache.servers
    (claim,) = sts["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == f"{cfg.cache.disk_gib}Gi"
    pod = _pod(result)
    assert pod["nodeSelector"] == {"af.infn.it/role-cache": "true"}
    assert pod["tolerations"] == [{"key": "af.infn.it/cache", "operator": "Exists", "effect": "NoSchedule"}]
    anti = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert (
        anti["topologyKey"] == "kubernetes.io/hostname"
        and anti["labelSelector"]["matchLabels"] == sts["selector"]["matchLabels"]
    )
    server = next(c for c in pod["containers"] if c["name"] == "xrootd")
    mounts = {m["name"]: m["mountPath"] for m in server["volumeMounts"]}
    assert mounts["data"] == RUNTIME.data_dir and mounts["config"] == CONFIG_DIR
    assert server["readinessProbe"]["tcpSocket"]["port"] == CACHE_PORT and "livenessProbe" in server
    for container in _containers(pod):
        for kind in ("requests", "limits"):
            assert set(container["resources"][kind]) == {"cpu", "memory"}, container["name"]


def test_the_config_map_holds_the_rendered_files_at_the_paths_the_config_names(shipped):
    result = shipped("cms-bari")
    data = by_name(result, "af-cache-config").inputs["data"]
    assert data["xrootd.cfg"] == result.files["cache/xrootd.cfg"]
    assert data["scitokens.cfg"] == result.files["cache/scitokens.cfg"]
    assert f"config={CONFIG_DIR}/scitokens.cfg" in data["xrootd.cfg"]
    assert f"oss.localroot {RUNTIME.data_dir}" in data["xrootd.cfg"]
    assert "pss.origin = cms-xrd-global.cern.ch:1094\npss.permit cms-xrd-global.cern.ch\n" in data["xrootd.cfg"]
    assert "issuer = https://cms-auth.cern.ch/\nbase_path = /store" in data["scitokens.cfg"]


def test_services_expose_root_https_and_metrics_and_a_budget_protects_the_servers(shipped):
    result = shipped("cms-bari")
    service = by_name(result, "af-cache-svc").inputs
    assert {(p["name"], p["port"]) for p in service["spec"]["ports"]} == {
        ("root", CACHE_PORT),
        ("https", CACHE_HTTPS_PORT),
        ("metrics", CACHE_METRICS_PORT),
    }
    named = {p["name"] for c in _pod(result)["containers"] for p in c.get("ports", [])}
    assert named == {p["targetPort"] for p in service["spec"]["ports"]}
    labels = by_name(result, "af-cache-servers").inputs["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"] == labels
    pdb = by_name(result, "af-cache-pdb").inputs["spec"]
    assert pdb == {"maxUnavailable": 1, "selector": {"matchLabels": labels}}
    certificate = by_name(result, "af-cache-tls").inputs["spec"]
    assert f"{CACHE_SERVICE}.xcache.svc.cluster.local" in certificate["dnsNames"]
    assert certificate["issuerRef"]["name"] == by_name(result, "af-certs-internal-issuer").inputs["metadata"]["name"]


def test_upstream_credential_is_made_before_the_server_starts_and_kept_fresh(shipped):
    result = shipped("cms-bari")
    pod = _pod(result)
    server = next(c for c in pod["containers"] if c["name"] == "xrootd")
    sidecar = next(c for c in pod["containers"] if c["name"] == "credential")
    first = next(c for c in pod["initContainers"] if c["name"] == "credential-init")
    assert first["command"] == [*sidecar["command"], "--once"]
    assert sidecar["command"][-1] == "bearer"
    env = {e["name"]: e["value"] for e in sidecar["env"]}
    server_env = {e["name"]: e["value"] for e in server["env"]}
    assert server_env["BEARER_TOKEN_FILE"] == env["BEARER_TOKEN_FILE"]
    assert server_env["XDG_CACHE_HOME"].startswith(RUNTIME.run_dir + "/")  # scitokens' key cache, writable
    assert env["AF_TOKEN_URL"] == "https://cms-auth.cern.ch/token"
    assert env["AF_CLIENT_ID"] == "cms-analysis-facility-xcache" and "AF_CLIENT_SECRET" not in env
    secret = by_name(result, "af-cache-upstream")
    assert secret.inputs["stringData"] == "[secret]"
    secret_volume = next(v for v in pod["volumes"] if v["name"] == "credential-secret")
    assert secret_volume["secret"]["secretName"] == secret.inputs["metadata"]["name"]
    assert secret.urn in by_name(result, "af-cache-servers").dependencies


def test_every_cache_server_has_an_exporter_listening_where_the_server_reports(shipped):
    result = shipped("cms-bari")
    cfg = build_config(*stack_values("cms-bari"))
    pod = _pod(result)
    exporter = next(c for c in pod["containers"] if c["name"] == "exporter")
    data = by_name(result, "af-cache-config").inputs["data"]
    assert data["af_xcache_exporter.py"] == (EXPORTERFILES / "af_xcache_exporter.py").read_text()
    assert exporter["image"] == cfg.cache.image
    assert exporter["command"][:2] == ["python3", f"{CONFIG_DIR}/af_xcache_exporter.py"]
    args = dict(zip(exporter["command"][2::2], exporter["command"][3::2], strict=True))
    # The server sends its summary report and the file cache's g-stream to the exporter's loopback port.
    lines = result.files["cache/xrootd.cfg"].splitlines()
    assert args["--udp"].startswith("127.0.0.1:")
    assert f"xrd.report {args['--udp']} every {RUNTIME.report_seconds}s link prot" in lines
    assert f"xrootd.mongstream pfc use flush {RUNTIME.report_seconds}s send nohdr {args['--udp']}" in lines
    assert args["--http"] == f"0.0.0.0:{CACHE_METRICS_PORT}"
    assert exporter["ports"] == [{"name": "metrics", "containerPort": CACHE_METRICS_PORT}]
    mounts = {m["name"]: m for m in exporter["volumeMounts"]}
    assert mounts["data"] == {"name": "data", "mountPath": args["--disk"], "readOnly": True}
    assert args["--disk"] == RUNTIME.data_dir and mounts["config"]["mountPath"] == CONFIG_DIR
    assert set(exporter["resources"]["requests"]) == set(exporter["resources"]["limits"]) == {"cpu", "memory"}
    security = exporter["securityContext"]
    assert security["runAsNonRoot"] and security["runAsUser"] > 0 and security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] and security["capabilities"] == {"drop": ["ALL"]}
    assert "readinessProbe" not in exporter  # metrics trouble must not take the cache out of its Service
    assert exporter["livenessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}


def test_notebooks_read_root_urls_through_the_cache(shipped):
    single = hub_values(shipped("cms-bari"))["singleuser"]
    env = single["extraEnv"]
    assert env["AF_XCACHE_URL"] == f"root://{CACHE_SERVICE}.xcache.svc.cluster.local:{CACHE_PORT}/"
    assert env["XROOT_PROXY"] == env["AF_XCACHE_URL"] + "/"
    (plugin,) = [f for f in single["extraFiles"].values() if f["mountPath"].startswith(env["XRD_PLUGINCONFDIR"] + "/")]
    assert "lib = libXrdClProxyPlugin-5.so" in plugin["stringData"] and "url = root://*" in plugin["stringData"]
    values, secret = stack_values("dev")
    values["cache"] = {"enabled": False}
    without = preview_values("dev", values, secret)
    assert "XROOT_PROXY" not in hub_values(without)["singleuser"]["extraEnv"]
    assert [r.name for r in of_type(without, STS)] == ["af-condor-schedd"]  # the pool's, no cache


def test_notebooks_trust_the_internal_ca_that_signs_the_cache(shipped):
    result = shipped("cms-bari")
    single = hub_values(result)["singleuser"]
    storage = single["storage"]
    (volume,) = [v for v in storage["extraVolumes"] if "configMap" in v]
    (mount,) = [m for m in storage["extraVolumeMounts"] if m["name"] == volume["name"]]
    assert mount["mountPath"] == single["extraEnv"]["X509_CERT_DIR"] and mount["readOnly"]
    trust = by_name(result, "af-hub-ca-certs").inputs
    assert trust["metadata"] == {"name": volume["configMap"]["name"], "namespace": "jupyterhub"}
    ca = by_name(result, "af-certs-ca")
    assert ca.inputs["isCaCertificate"] is True and ca.inputs["subject"]["commonName"] == INTERNAL_CA_NAME
    assert trust["data"] == {f"{subject_hash(INTERNAL_CA_NAME)}.0": _computed(ca.type, ca.name, ca.inputs)["certPem"]}
    # The cache's certificate comes from that CA, through the issuer backed by its key.
    issuer = by_name(result, "af-certs-internal-issuer").inputs
    ca_secret = by_name(result, "af-certs-internal-ca").inputs
    assert issuer["spec"]["ca"]["secretName"] == ca_secret["metadata"]["name"]
    assert ca_secret["stringData"] == "[secret]" and ca_secret["type"] == "kubernetes.io/tls"


@pytest.mark.parametrize("name", [INTERNAL_CA_NAME, "Analysis-Facility   Internal CA", "x"])
def test_subject_hash_matches_openssl(tmp_path, name):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    done = subprocess.run(
        ["openssl", "x509", "-subject_hash", "-noout", "-in", str(tmp_path / "ca.pem")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == subject_hash(name)


@pytest.mark.parametrize("stack", ["cms-bari", "atlas-cnaf"])
def test_cache_manifests_pass_kubernetes_validate(shipped, stack):
    kinds = set()
    for r in shipped(stack).registrations:
        if r.custom and r.name.startswith("af-cache") and r.inputs.get("apiVersion", "").count("cert-manager") == 0:
            kubernetes_validate.validate(manifest(r), "1.36.2", strict=True)
            kinds.add(r.inputs["kind"])
    assert kinds == {"Namespace", "ConfigMap", "Secret", "Service", "StatefulSet", "PodDisruptionBudget"}


def test_an_x509_upstream_mounts_the_certificate_and_renews_a_proxy():
    values, secret = stack_values("dev")
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    upstream = {"kind": "x509-proxy", "certificate": pem, "privateKey": "k", "voms": "cms"}
    values["cache"] = {"enabled": True, "diskGib": 100, "upstream": upstream}
    result = preview_values("dev", values, secret | {"cache"})
    pod = _pod(result)
    sidecar = next(c for c in pod["containers"] if c["name"] == "credential")
    env = {e["name"]: e["value"] for e in sidecar["env"]}
    assert sidecar["command"][-1] == "x509" and env["AF_VOMS"] == "cms"
    assert env["AF_REFRESH_SECONDS"] == str(96 * 3600 // 4)
    server = next(c for c in pod["containers"] if c["name"] == "xrootd")
    assert {"name": "X509_USER_PROXY", "value": env["X509_USER_PROXY"]} in server["env"]
    assert "BEARER_TOKEN_FILE" not in {e["name"] for e in server["env"]}
    # The server drops to `xrootd` (-R): the private proxy must be that user's, made by that user.
    assert server["command"][-2:] == ["-R", "xrootd"]
    for container in [sidecar, next(c for c in pod["initContainers"] if c["name"] == "credential-init")]:
        context = container["securityContext"]
        assert (context["runAsUser"], context["runAsGroup"]) == (10940, 10940), container["name"]


# --- rendering -------------------------------------------------------------------------------------


def _cfg(**cache: Any):
    values, secret = stack_values("cms-bari")
    values["cache"] = {**values.get("cache", {}), **cache}
    return build_config(values, secret)


def test_xrootd_cfg_carries_the_cache_settings():
    text = render_xrootd_cfg(
        _cfg(
            ram="8g",
            blockSize="512k",
            prefetch=0,
            lowWatermark=0.8,
            highWatermark=0.9,
            exports=["/store", "/user"],
            maxBufferSize="32m",
            networkChecksums=False,
        ),
        CacheRuntime(data_dir="/d", run_dir="/r", scitokens_cfg="/s.cfg", port=2094, tls_cert="/c", tls_key="/k"),
    )
    for line in (
        "xrd.port 2094",
        "all.export /store",
        "all.export /user",
        "pfc.ram 8g",
        "pfc.blocksize 512k",
        "pfc.prefetch 0",
        "pfc.diskusage 0.80 0.90",
        "pfc.cschk off",
        "xrd.buffers maxbsz 32m",
        "oss.localroot /d",
        "ofs.authlib libXrdAccSciTokens.so config=/s.cfg",
        "xrd.tls /c /k",  # ztn sends tokens only over TLS
    ):
        assert line in text.splitlines(), line
    assert "XrdHttp" not in text
    assert "xrd.report" not in text and "mongstream" not in text  # no exporter port, no reports
    forwarding = render_xrootd_cfg(_cfg(forwardHosts=["xrootd.ba.infn.it:1095", "cms-xrd-global.cern.ch"]), RUNTIME)
    assert [line for line in forwarding.splitlines() if line.startswith("pss.")] == [
        "pss.cachelib libXrdPfc.so",
        "pss.origin = cms-xrd-global.cern.ch:1094",
        "pss.permit cms-xrd-global.cern.ch",
        "pss.permit xrootd.ba.infn.it",
    ]


def test_token_auth_off_renders_no_authorization_and_tls_needs_a_certificate():
    bare = CacheRuntime(data_dir="/d", run_dir="/r", scitokens_cfg="/s.cfg")
    with pytest.raises(ValueError, match="tls_cert"):
        render_xrootd_cfg(_cfg(), bare)
    assert "xrd.tls" not in render_xrootd_cfg(_cfg(tokenAuth=False), bare)
    text = render_xrootd_cfg(_cfg(tokenAuth=False), RUNTIME)
    assert "ofs.authorize" not in text and "sec.protocol" not in text
    assert "xrd.buffers" not in text  # XRootD's own 2m for plain root:// clients
    assert "xrd.buffers maxbsz 16m" in render_xrootd_cfg(_cfg(), RUNTIME).splitlines()
    assert f"xrd.protocol XrdHttp:{CACHE_HTTPS_PORT} libXrdHttp.so\nhttp.header2cgi Authorization authz" in text


def test_scitokens_cfg_lists_declared_issuers_with_their_paths():
    issuers = [
        {"issuer": "https://cms-auth.cern.ch/", "basePath": "/store", "restrictedPaths": ["/user", "/group"]},
        {"issuer": "https://wlcg.cloud.cnaf.infn.it/", "basePath": "/store/user"},
    ]
    text = render_scitokens_cfg(_cfg(issuers=issuers, audiences=["https://wlcg.cern.ch/jwt/v1/any", "af-xcache"]))
    assert text.startswith("[Global]\naudience = https://wlcg.cern.ch/jwt/v1/any, af-xcache\n")
    # Each base path also in the forwarded form the proxy plugin sends (it always adds the port).
    forwarded = "/root:/cms-xrd-global.cern.ch:1094/store, /xroot:/cms-xrd-global.cern.ch:1094/store"
    first = f"[Issuer af-0]\nissuer = https://cms-auth.cern.ch/\nbase_path = /store, {forwarded}\n"
    assert first + "restricted_path = /user, /group\n" in text
    assert "[Issuer af-1]\nissuer = https://wlcg.cloud.cnaf.infn.it/\nbase_path = /store/user, /root:/" in text


# --- the credential sidecar, for real ----------------------------------------------------------------


def _run_credential(mode: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CREDFILES / "af_credential.py"), mode, "--once"],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_bearer_mode_gets_a_service_token_from_the_issuer(tmp_path):
    with TestIssuer() as issuer:
        issuer.add_client("af-xcache", "cache-secret-7f3a", [])
        (tmp_path / "client-secret").write_text("cache-secret-7f3a\n")
        env = {
            "BEARER_TOKEN_FILE": str(tmp_path / "token"),
            "AF_TOKEN_URL": issuer.url + "token",
            "AF_CLIENT_ID": "af-xcache",
            "AF_CLIENT_SECRET_FILE": str(tmp_path / "client-secret"),
            "AF_SCOPES": "storage.read:/store",
            "AF_AUDIENCE": "https://wlcg.cern.ch/jwt/v1/any",
        }
        done = _run_credential("bearer", env)
        assert done.returncode == 0, done.stderr
        claims = issuer.verify((tmp_path / "token").read_text().strip())
        assert claims["sub"] == "af-xcache" and claims["scope"] == "storage.read:/store"
        assert claims["aud"] == "https://wlcg.cern.ch/jwt/v1/any"
        assert stat.S_IMODE((tmp_path / "token").stat().st_mode) == 0o600
        assert issuer.grants["client_credentials"] == 1
        # A wrong secret fails loudly and leaves the previous token in place.
        (tmp_path / "client-secret").write_text("wrong")
        before = (tmp_path / "token").read_text()
        assert _run_credential("bearer", env).returncode != 0
        assert (tmp_path / "token").read_text() == before


def _robot_certificate(directory: Path) -> tuple[Path, Path]:
    """A CA and a service certificate it signed, as a site's robot certificate would be."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2))
    ca_name = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "AF Test"), x509.NameAttribute(NameOID.COMMON_NAME, "CA")]
    )
    name = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "AF Test"), x509.NameAttribute(NameOID.COMMON_NAME, "xcache")]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = directory / "usercert.pem", directory / "userkey.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    key_file.chmod(0o400)
    return cert_file, key_file


@pytest.mark.daemon
@pytest.mark.parametrize("key_mode", [0o400, 0o644])
def test_x509_mode_makes_a_proxy_with_xrdgsiproxy(tmp_path, key_mode):
    """Also from a key as a Kubernetes Secret mounts it (0644), which xrdgsiproxy itself refuses."""
    cert, key = _robot_certificate(tmp_path)
    key.chmod(key_mode)
    proxy = tmp_path / "x509up"
    env = {"X509_USER_PROXY": str(proxy), "AF_CERT_FILE": str(cert), "AF_KEY_FILE": str(key), "AF_VALID_HOURS": "12"}
    done = _run_credential("x509", env)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(proxy.stat().st_mode) == 0o600
    info = subprocess.run(["xrdgsiproxy", "info", "-f", str(proxy)], capture_output=True, text=True, timeout=30)
    report = info.stdout + info.stderr  # xrdgsiproxy prints its report on stderr
    assert "type        : Proxy" in report and "CN=xcache/CN=" in report
    assert "time left   : 1" in report  # 11h:59m or 12h:0m
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], "no temporary file left"


def test_proxy_command_asks_voms_only_when_declared():
    assert proxy_command("c", "k", "o", 96, None)[:2] == ["xrdgsiproxy", "init"]
    command = proxy_command("c", "k", "o", 96, "cms:/cms/Role=production")
    assert command[:3] == ["voms-proxy-init", "-voms", "cms:/cms/Role=production"] and "96:00" in command
