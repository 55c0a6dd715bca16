"""A node-level cache (components/cache/xrootd.py `render_node_xrootd_cfg`) in a real xrootd, in front of the site cache
of the shipped cms-bari stack, in front of a real origin, all on loopback. It serves files byte-identical through both
caches, refuses every token the site cache refuses (the same cases as tests/test_xcache_xrootd.py), and reads
upstream only with its own credential: XRootD 5.5's proxy does not pass a client's token on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.xrootd import (
    Cache,
    Origin,
    TestCA,
    TokenIssuer,
    cinfo,
    client_env,
    run_cache,
    run_node_cache,
    run_origin,
    scratch_dir,
    stack_cache_config,
    wait_for,
    xrdcp,
)
from test_xcache_xrootd import REFUSED

from components.cache import client as xcache
from components.cache.xrootd import NodeCache
from components.config.facility import FacilityConfig

pytestmark = pytest.mark.daemon

STACK = "cms-bari"
BASE_PATH = "/store"
SCOPE = "storage.read:/mc"
SERVICE_SCOPE = "storage.read:/"  # the node cache's own token: it reads anything below /store from the site cache
SIZE = 2 * 2**20 + 4321


@dataclass
class NodeSite:
    origin: Origin
    site_cache: Cache
    node_cache: Cache
    issuer: TokenIssuer
    stranger: TokenIssuer
    ca: TestCA
    audience: str
    cfg: FacilityConfig
    work: Path

    def token(self, scope: str = SCOPE, lifetime: int = 600) -> str:
        return self.issuer.mint(scope, audience=self.audience, lifetime=lifetime)

    def read(self, cache: Cache, path: str, token: str | None, dest: Path) -> tuple[int, str]:
        env = client_env(token=token, ca=self.ca, scratch=self.work / "client")
        proc = xrdcp(cache.server.url(path), dest, env=env)
        return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def site() -> Iterator[NodeSite]:
    with ExitStack() as stack:
        work = stack.enter_context(scratch_dir())
        (work / "client").mkdir()
        ca = TestCA(work / "ca")
        issuer = stack.enter_context(TokenIssuer(ca, work / "issuer"))
        stranger = stack.enter_context(TokenIssuer(ca, work / "stranger"))
        origin = stack.enter_context(run_origin(work / "origin", export=BASE_PATH))
        cfg = stack_cache_config(STACK, origin.address, [issuer.url], base_path=BASE_PATH)
        audience = cfg.cache.audiences[0]
        site_cache = stack.enter_context(run_cache(cfg, work / "site-cache", ca, issuers=[issuer]))
        node = NodeCache(site_cache=f"127.0.0.1:{site_cache.runtime.port}", files_max="64m")
        service = issuer.mint(SERVICE_SCOPE, audience=audience, lifetime=3600, subject="node-cache")
        node_cache = stack.enter_context(
            run_node_cache(cfg, node, work / "node-cache", ca, issuers=[issuer], upstream_token=service)
        )
        yield NodeSite(origin, site_cache, node_cache, issuer, stranger, ca, audience, cfg, work)


def test_the_rendered_disk_cap_is_xrootds(site: NodeSite) -> None:
    """xrootd parsed the node cache's disk cap as rendered (it prints its effective pfc settings at start)."""
    log = site.node_cache.server.log_text()
    cap = 64 * 2**10  # KiB, as rendered; xrootd prints bytes
    files = f"files {cap * 8 // 10 * 1024} {cap * 9 // 10 * 1024} {cap * 1024} purgeinterval 60 "
    assert files in log, log[-3000:]


def test_a_file_read_through_the_node_cache_comes_through_the_site_cache(site: NodeSite, tmp_path: Path) -> None:
    path = site.origin.add_file("mc/node/nano-1.root", size=SIZE)
    rc, out = site.read(site.node_cache, path, site.token(), tmp_path / "copy")
    assert rc == 0, out + site.node_cache.server.log_tail()
    assert (tmp_path / "copy").read_bytes() == site.origin.local(path).read_bytes()
    assert site.site_cache.cinfo_path(path).exists(), "the node cache did not read through the site cache"
    assert site.origin.transfers(path).opens == 1
    assert wait_for(lambda: cinfo(site.node_cache.cinfo_path(path))["state_complete"] == "complete")
    # Upstream, the node cache is itself: the site cache logged its service token's subject in.
    site_log = site.site_cache.server.log_text
    assert wait_for(lambda: "login as node-cache" in site_log()), site.site_cache.server.log_tail()

    rc, out = site.read(site.node_cache, path, site.token(), tmp_path / "again")
    assert rc == 0, out
    assert (tmp_path / "again").read_bytes() == site.origin.local(path).read_bytes()
    assert site.origin.transfers(path).opens == 1, "the origin served the file again"


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_node_cache_refuses_what_the_site_cache_refuses(site: NodeSite, tmp_path: Path, case: str) -> None:
    """Refused by the node cache itself, for a file it holds and for one it would fetch: the site cache is never
    asked for the unfetched one (the node cache's own credential would have let it read)."""
    slug = case.replace(" ", "-")
    cached = site.origin.add_file(f"mc/node/cached-{slug}.root", size=4096)
    assert site.read(site.node_cache, cached, site.token(), tmp_path / "warm")[0] == 0
    unfetched = site.origin.add_file(f"mc/node/never-{slug}.root", size=4096)
    token = REFUSED[case](site)
    for path in (cached, unfetched):
        for cache in (site.site_cache, site.node_cache):
            rc, out = site.read(cache, path, token, tmp_path / "copy")
            assert rc != 0, f"{case}: read {path} from {cache.server.name}: {out}"
            assert not (tmp_path / "copy").exists()
    assert not site.site_cache.cinfo_path(unfetched).exists()
    assert site.origin.transfers(unfetched).opens == 0


def test_a_node_cache_does_not_pass_the_users_token_upstream(site: NodeSite, tmp_path: Path) -> None:
    """The fact the node tier's design rests on: without a credential of its own, a node cache cannot read from the
    site cache even for a user whose token the site cache would accept."""
    node = NodeCache(site_cache=f"127.0.0.1:{site.site_cache.runtime.port}", files_max="64m")
    path = site.origin.add_file("mc/node/no-credential.root", size=4096)
    user = site.token()
    assert site.read(site.site_cache, path, user, tmp_path / "direct")[0] == 0, "the site cache accepts the user"
    with run_node_cache(
        site.cfg, node, site.work / "bare-node-cache", site.ca, issuers=[site.issuer], name="bare-node-cache"
    ) as bare:
        rc, out = site.read(bare, path, user, tmp_path / "copy")
    assert rc != 0, out
    assert "Unable to open" in out, out  # the node cache let the user in; its read from the site cache failed
    assert not (tmp_path / "copy").exists()
    assert not (tmp_path / "copy").exists()


def forwarded(site: NodeSite, path: str) -> str:
    """The path a grid URL of the origin becomes behind XrdCl's proxy plugin (`/root:/host:port/store/...`)."""
    return f"/root:/{site.origin.address}{path}"


def _proxied_read(site: NodeSite, path: str, token: str | None, plugins: Path, dest: Path) -> tuple[int, str]:
    """What a notebook or a job on a node with a node cache does: `xrdcp root://<origin>//store/...` with the rendered
    XrdCl proxy-plugin config and environment, the node cache's URL as the prefix (only it and the config and CA
    directories made local)."""
    plugins.mkdir(exist_ok=True)
    for name, text in xcache.client_files().items():
        (plugins / Path(name).name).write_text(text)
    local = {
        "XRD_PLUGINCONFDIR": str(plugins),
        "XROOT_PROXY": site.node_cache.server.url("/"),
        "X509_CERT_DIR": str(site.ca.cert_dir),
    }
    env = client_env(token=token, ca=site.ca, scratch=site.work / "client") | xcache.client_env() | local
    proc = xrdcp(site.origin.server.url(path), dest, env=env)
    return proc.returncode, proc.stdout + proc.stderr


def test_a_notebooks_usual_url_is_read_through_the_node_cache(site: NodeSite, tmp_path: Path) -> None:
    """The grid URL, prefixed by the plugin, goes to the node cache, which asks the site cache for the same forwarded
    path (`/root:/<origin>:<port>/store/...`); the site cache forwards it to the origin. Read again, it comes from the
    node cache's disk."""
    path = site.origin.add_file("mc/node/proxied.root", size=SIZE)
    rc, out = _proxied_read(site, path, site.token(), tmp_path / "plugins", tmp_path / "copy")
    assert rc == 0, out + site.node_cache.server.log_tail()
    assert (tmp_path / "copy").read_bytes() == site.origin.local(path).read_bytes()
    # The node cache keeps it under the forwarded name; the site cache, forwarding, under the path itself.
    node_record = site.node_cache.cinfo_path(forwarded(site, path))
    assert node_record.exists(), "the read did not go through the node cache"
    assert site.site_cache.cinfo_path(path).exists(), "the node cache did not read through the site cache"
    assert wait_for(lambda: cinfo(node_record)["state_complete"] == "complete")
    rc, out = _proxied_read(site, path, site.token(), tmp_path / "plugins", tmp_path / "again")
    assert rc == 0, out
    assert (tmp_path / "again").read_bytes() == site.origin.local(path).read_bytes()
    assert site.origin.transfers(path).opens == 1
    assert wait_for(lambda: cinfo(node_record)["n_acc_total"] == 2), cinfo(node_record)
    assert cinfo(site.site_cache.cinfo_path(path))["n_acc_total"] == 1, "the site cache served it again"


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_node_cache_refuses_a_notebooks_usual_url_as_the_site_cache_does(
    site: NodeSite, tmp_path: Path, case: str
) -> None:
    """The forwarded form of a path is held to the same token rules: refused by the node cache itself, the site cache
    never asked."""
    slug = case.replace(" ", "-")
    unfetched = site.origin.add_file(f"mc/node/never-proxied-{slug}.root", size=4096)
    rc, out = _proxied_read(site, unfetched, REFUSED[case](site), tmp_path / "plugins", tmp_path / "copy")
    assert rc != 0, f"{case}: {out}"
    assert not (tmp_path / "copy").exists()
    assert not site.node_cache.cinfo_path(forwarded(site, unfetched)).exists()
    assert not site.site_cache.cinfo_path(unfetched).exists()
    assert site.origin.transfers(unfetched).opens == 0
