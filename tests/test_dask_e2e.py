"""Dask Gateway end to end, with real components: a real dask-gateway-server (the pinned PyPI
release) running the program's rendered gateway configuration (JupyterHub auth, the options
handler with the limits per IAM group, the idle timeout), only its Kubernetes backend replaced by
the local-process one; behind the real JupyterHub with the program's hub values, logging users
in through the IAM-like OIDC issuer (over HTTPS); workers reading a ROOT file with uproot through
the real XCache from the rendered cache config, with the user's token.

Only addresses are made local: the issuer's, the cache's origin, the gateway's. The test's own
config changes are a short idle timeout and small limits for /cms, so that caps show with two
workers; users' tokens carry `storage.read:/` (the scope the cache checks)."""

from __future__ import annotations

import contextlib
import secrets
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
import uproot
from dask_gateway import Gateway, GatewayCluster, JupyterHubAuth
from dask_gateway.client import GatewayWarning
from support.dask_site import Site, run_site, start_gateway
from support.dask_tasks import branch_sum, token_file
from support.hub import login
from support.xrootd import Origin, scratch_dir

pytestmark = pytest.mark.daemon

USERS = {"alice": ["/cms"], "carol": ["/atlas"], "dave": ["/cms/af-admins"]}
LIMITS = {"cores": 8, "memoryGib": 12, "workersPerCluster": 2, "clustersPerUser": 2}
IDLE_MINUTES = 0.15  # 9 s
ROOT_PATH = "/store/mc/RunIII/events.root"
N_EVENTS = 200_000
EXPECTED: dict[str, float] = {}


def _root_file(origin: Origin) -> None:
    """A ROOT file written by uproot, on the origin; the sum of its `pt` branch kept as the oracle."""
    rng = np.random.default_rng(17)
    pt = rng.exponential(25.0, N_EVENTS)
    local = origin.root.parent / "events.root"
    with uproot.recreate(local) as out:
        out["Events"] = {"pt": pt, "n": rng.integers(0, 5, N_EVENTS).astype(np.int32)}
    origin.add_file(ROOT_PATH.removeprefix("/store/"), local.read_bytes())
    EXPECTED["pt"] = float(pt.sum())


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[Site]:
    with scratch_dir("dask-e2e-") as work:
        changes = {"idleTimeoutMinutes": IDLE_MINUTES, "limits": {"/cms": LIMITS}}
        with run_site(work, tmp_path_factory.mktemp("hub"), USERS, changes, _root_file) as site:
            yield site


@pytest.fixture
def alice(site: Site, monkeypatch) -> Iterator[dict[str, str]]:
    monkeypatch.setenv("AF_DASK_TOKEN_SECONDS", "1")  # the preload's check for a new token, every second
    with site.as_notebook("alice") as env:
        yield env


def _close(gateway: Gateway) -> None:
    """Close a client once: dask-gateway 2026.3.0's `Gateway.__del__` closes again, and a second
    close raises in the collector (an unraisable exception that upsets the interpreter)."""
    gateway.close()
    _closed(gateway)


def _closed(gateway: Gateway) -> None:
    """Mark a client closed (by a GatewayCluster's close) so that its `__del__` leaves it."""
    with contextlib.suppress(AttributeError):
        del gateway._loop_runner


def _stop_all(gateway: Gateway) -> None:
    for report in gateway.list_clusters():
        gateway.stop_cluster(report.name)


def test_a_login_group_member_computes_on_two_workers_through_the_cache(site: Site, alice) -> None:
    start = time.monotonic()
    with GatewayCluster() as cluster:  # no arguments: the notebook's Dask config
        assert cluster.dashboard_link.startswith("https://hub.example.org/services/dask-gateway/clusters/")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cluster.scale(3)
        capped = [str(w.message) for w in caught if issubclass(w.category, GatewayWarning)]
        assert capped and "limit of 2 workers" in capped[0], capped
        client = cluster.get_client()
        client.wait_for_workers(2, timeout=120)
        assert len(client.scheduler_info()["workers"]) == 2
        url = f"root://127.0.0.1:{site.cache.runtime.port}/{ROOT_PATH}"
        sums = client.gather(
            [client.submit(branch_sum, url, pure=False, workers=[w]) for w in client.scheduler_info()["workers"]]
        )
        assert sums == pytest.approx([EXPECTED["pt"]] * 2, rel=1e-12)
        # Each worker holds the user's current token, in its own file only it can read.
        held = client.run(token_file)
        notebook_token = Path(alice["BEARER_TOKEN_FILE"]).read_text().strip()
        assert {(token, mode) for _, token, mode in held.values()} == {(notebook_token, 0o600)}
        assert len({path for path, _, _ in held.values()}) == 2
        assert site.issuer.verify(notebook_token)["sub"] == site.issuer.users["alice"].sub
        # The hub refreshes the notebook's token (af_token.py rewrites the file): workers follow.
        Path(alice["BEARER_TOKEN_FILE"]).write_text("refreshed-token\n")
        deadline = time.monotonic() + 30
        while {token for _, token, _ in client.run(token_file).values()} != {"refreshed-token"}:
            assert time.monotonic() < deadline, "the workers kept the old token"
            time.sleep(0.5)
    _closed(cluster.gateway)
    assert site.cache.cinfo_path(ROOT_PATH).exists(), "the read did not go through the cache"
    print(f"cluster, two workers, read: {time.monotonic() - start:.1f}s")


def test_requests_beyond_the_groups_limits_are_refused_naming_the_limit_and_group(site: Site, alice) -> None:
    """Through the gateway's API (`Gateway.submit`): dask-gateway's GatewayCluster deadlocks
    collecting its own Gateway when a creation is refused."""
    gateway = Gateway()
    try:
        with pytest.raises(ValueError, match=r"cluster limit of group /cms \(8 cores, 12 GiB"):
            gateway.submit(worker_memory=11)
        with pytest.raises(ValueError, match=r"exceeds the facility's largest worker \(4 cores, 12 GiB\)"):
            gateway.submit(worker_cores=6)
        first, second = gateway.submit(), gateway.submit()
        with pytest.raises(ValueError, match=r"limit of 2 clusters per user of group /cms reached: alice has 2"):
            gateway.submit()
        gateway.stop_cluster(second)
        gateway.stop_cluster(gateway.submit())  # room again
        gateway.stop_cluster(first)
        with pytest.raises(ValueError, match=r"image docker.io/other:1 is not a notebook image"):
            gateway.submit(image="docker.io/other:1")
        with pytest.raises(ValueError, match=r"GPU workers are for members of /cms/ml only"):
            gateway.submit(worker_gpus=1)
    finally:
        _stop_all(gateway)
        _close(gateway)


def test_users_outside_the_login_and_dask_groups_are_refused(site: Site) -> None:
    carol = requests.Session()
    carol.trust_env = False
    carol.verify = str(site.ca.pem)
    assert login(carol, site.hub, site.issuer, "carol").status_code == 403  # /atlas: no hub user, no token
    stranger = Gateway(address=site.gateway.url, auth=JupyterHubAuth(api_token=secrets.token_hex(16)))
    with pytest.raises(Exception, match=r"JupyterHub API token|401|Unauthorized"):  # the hub does not know it
        stranger.list_clusters()
    _close(stranger)
    dave = site.notebook("dave")  # an admin of the hub, in no group with Dask limits
    admin = Gateway(address=site.gateway.url, auth=JupyterHubAuth(api_token=dave["JUPYTERHUB_API_TOKEN"]))
    with pytest.raises(ValueError, match=r"dave is in no group with Dask limits \(groups with Dask: /cms, /cms/ml\)"):
        admin.submit()
    _close(admin)


def test_an_idle_cluster_is_gone_after_the_idle_timeout(site: Site, alice) -> None:
    gateway = Gateway()
    try:
        name = gateway.submit()  # no client, no work
        deadline = time.monotonic() + 120
        while gateway.get_cluster(name).status.name != "RUNNING":
            assert time.monotonic() < deadline, f"{name} did not start:\n{site.gateway.log()[-2000:]}"
            time.sleep(0.2)
        running = time.monotonic()
        while gateway.get_cluster(name).status.name not in ("STOPPED", "FAILED"):
            assert time.monotonic() - running < IDLE_MINUTES * 60 + 60, (
                f"{name} still up:\n{site.gateway.log()[-2000:]}"
            )
            time.sleep(0.5)
        idle = time.monotonic() - running
        assert idle >= IDLE_MINUTES * 60 - 1, f"stopped after {idle:.1f}s, before the idle timeout"
        assert name not in {c.name for c in gateway.list_clusters()}
    finally:
        _stop_all(gateway)
        _close(gateway)


def test_stopping_the_notebook_server_stops_the_users_clusters(site: Site, alice) -> None:
    made = site.hub.admin("POST", "users/alice/tokens", json={"scopes": ["servers!user"], "note": "test: servers"})
    own = {"Authorization": f"token {made.json()['token']}"}  # alice starts and stops her own server
    assert site.hub.admin("POST", "users/alice/server", headers=own).status_code in (201, 202)
    deadline = time.monotonic() + 60
    while not site.hub.admin("GET", "users/alice").json()["servers"].get("", {}).get("ready"):
        assert time.monotonic() < deadline, site.hub.log()[-2000:]
        time.sleep(0.2)
    gateway = Gateway()
    try:
        names = {gateway.submit(), gateway.submit()}
        assert names <= {c.name for c in gateway.list_clusters()}
        assert site.hub.admin("DELETE", "users/alice/server", headers=own).status_code in (202, 204)
        deadline = time.monotonic() + 60
        while names & {c.name for c in gateway.list_clusters()}:
            assert time.monotonic() < deadline, site.hub.log()[-3000:]
            time.sleep(0.5)
        assert {gateway.get_cluster(n).status.name for n in names} <= {"STOPPING", "STOPPED"}
        assert "Stopped the Dask clusters of alice" in site.hub.log()
        notes = [t["note"] for t in site.hub.admin("GET", "users/alice/tokens").json()["api_tokens"]]
        assert not [n for n in notes if "Dask" in (n or "")], notes  # the hook's token is gone
    finally:
        _stop_all(gateway)
        _close(gateway)


def test_a_cluster_is_stopped_at_its_maximum_lifetime_even_when_busy(site: Site, alice, tmp_path) -> None:
    """A second gateway of the same facility whose clusters live 4 seconds (0.001 hours, rounded
    up), shorter than the idle timeout; a connected client does not keep the cluster alive."""
    dask = site.cfg.dask.model_copy(update={"max_lifetime_hours": 0.001})
    cfg = site.cfg.model_copy(update={"dask": dask})
    with scratch_dir("dask-lifetime-") as work, start_gateway(cfg, site.clusters, site.hub, site.ca, work) as short:
        gateway = Gateway(address=short.url, proxy_address=short.proxy_address)
        try:
            name = gateway.submit()
            cluster = gateway.connect(name)
            client = cluster.get_client()  # a client: never idle
            started = time.monotonic()
            while client.status == "running":  # the scheduler ends under its client
                assert time.monotonic() - started < 60, short.log()[-2000:]
                time.sleep(0.1)
            ended = time.monotonic() - started
            assert ended < IDLE_MINUTES * 60, f"the scheduler ended after {ended:.1f}s, not by its lifetime"
            while gateway.get_cluster(name).status.name not in ("STOPPED", "FAILED"):
                assert time.monotonic() - started < 60, short.log()[-2000:]
                time.sleep(0.2)
            assert name not in {c.name for c in gateway.list_clusters()}
            client.close()
            cluster.close()
            _closed(cluster.gateway)
        finally:
            _stop_all(gateway)
            _close(gateway)
