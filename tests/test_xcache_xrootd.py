"""The cache's rendered config in a real xrootd: XCache from the shipped cms-bari stack (only origin, issuer URL, ports
and local paths made local) in front of a real origin on loopback. It serves files byte-identical, serves them again
from its own disk, lets only tokens of its issuer whose scope covers the path read (root:// and HTTPS), and serves
the grid URLs notebooks use through the rendered XrdCl proxy-plugin config."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from support.ports import free_port
from support.xrootd import (
    Cache,
    Origin,
    TestCA,
    TokenIssuer,
    cinfo,
    client_env,
    program,
    run_cache,
    run_origin,
    scratch_dir,
    stack_cache_config,
    wait_for,
    xrdcp,
)

from components.cache import client as xcache
from components.cache.config import size_bytes
from components.cache.xrootd import CacheRuntime, render_xrootd_cfg
from components.config.facility import FacilityConfig

pytestmark = pytest.mark.daemon

STACK = "cms-bari"
BASE_PATH = "/store"  # the issuer's basePath: token scopes are relative to it
SCOPE = "storage.read:/mc"  # covers /store/mc/...
BIG = 3 * 2**20 + 12345  # a few MiB of random bytes, not a multiple of the block size


@dataclass
class Site:
    origin: Origin
    cache: Cache
    issuer: TokenIssuer
    stranger: TokenIssuer
    ca: TestCA
    audience: str
    work: Path

    def token(self, scope: str = SCOPE, lifetime: int = 600) -> str:
        return self.issuer.mint(scope, audience=self.audience, lifetime=lifetime)

    def env(self, token: str | None) -> dict[str, str]:
        return client_env(token=token, ca=self.ca, scratch=self.work / "client")

    def read(self, path: str, token: str | None, dest: Path) -> tuple[int, str]:
        proc = xrdcp(self.cache.server.url(path), dest, env=self.env(token))
        return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with ExitStack() as stack:
        work = stack.enter_context(scratch_dir())
        (work / "client").mkdir()
        ca = TestCA(work / "ca")
        issuer = stack.enter_context(TokenIssuer(ca, work / "issuer"))
        stranger = stack.enter_context(TokenIssuer(ca, work / "stranger"))  # an issuer the cache does not know
        origin = stack.enter_context(run_origin(work / "origin", export=BASE_PATH))
        cfg = stack_cache_config(STACK, origin.address, [issuer.url], base_path=BASE_PATH)
        assert cfg.cache.enabled and cfg.cache.token_auth, f"{STACK} should ship a cache with token auth"
        cache = stack.enter_context(run_cache(cfg, work / "cache", ca, issuers=[issuer]))
        yield Site(origin, cache, issuer, stranger, ca, cfg.cache.audiences[0], work)


@pytest.fixture(scope="module")
def https_cache(site: Site) -> Iterator[Cache]:
    """A second cache of the same config with the HTTPS listener on, so a fault there fails only its own test."""
    cfg = stack_cache_config(STACK, site.origin.address, [site.issuer.url], base_path=BASE_PATH)
    with run_cache(cfg, site.work / "https-cache", site.ca, issuers=[site.issuer], https_port=free_port()) as cache:
        yield cache


def test_a_file_read_through_the_cache_is_the_origins(site: Site, tmp_path: Path) -> None:
    path = site.origin.add_file("mc/RunIII/nano-1.root", size=BIG)
    rc, out = site.read(path, site.token(), tmp_path / "copy")
    assert rc == 0, out
    assert (tmp_path / "copy").read_bytes() == site.origin.local(path).read_bytes()
    served = site.origin.transfers(path)
    assert served.opens == 1 and served.bytes >= BIG, served
    assert site.issuer.requests["/jwks"] >= 1, "the issuer's keys were never fetched"


def test_the_second_read_is_served_from_the_cache(site: Site, tmp_path: Path) -> None:
    path = site.origin.add_file("mc/RunIII/nano-2.root", size=BIG)
    assert site.read(path, site.token(), tmp_path / "first")[0] == 0
    after_first = site.origin.transfers(path)
    assert after_first.opens == 1, after_first
    record = site.cache.cinfo_path(path)
    assert wait_for(lambda: cinfo(record)["state_complete"] == "complete"), site.cache.server.log_tail()

    rc, out = site.read(path, site.token(), tmp_path / "second")
    assert rc == 0, out
    assert (tmp_path / "second").read_bytes() == site.origin.local(path).read_bytes()
    assert site.origin.transfers(path) == after_first, "the origin served the file again"
    info = cinfo(record)
    assert (info["file_size"], info["state_percentage"]) == (BIG, 100.0), info
    assert wait_for(lambda: cinfo(record)["n_acc_total"] >= 2), cinfo(record)


def test_a_cached_file_is_served_while_the_origin_is_down(site: Site, tmp_path: Path) -> None:
    path = site.origin.add_file("mc/RunIII/nano-3.root", size=BIG)
    assert site.read(path, site.token(), tmp_path / "first")[0] == 0
    assert wait_for(lambda: cinfo(site.cache.cinfo_path(path))["state_complete"] == "complete")
    site.origin.server.stop()
    try:
        rc, out = site.read(path, site.token(), tmp_path / "offline")
    finally:
        site.origin.server.start()
    assert rc == 0, out
    assert (tmp_path / "offline").read_bytes() == site.origin.local(path).read_bytes()


REFUSED: dict[str, Callable[[Site], str | None]] = {
    "no token": lambda s: None,
    "unknown issuer": lambda s: s.stranger.mint(SCOPE, audience=s.audience),
    "forged signature": lambda s: s.issuer.mint(SCOPE, audience=s.audience, key=s.stranger.key),
    "scope elsewhere": lambda s: s.token("storage.read:/data"),
    "write-only scope": lambda s: s.token("storage.create:/mc"),
    "other audience": lambda s: s.issuer.mint(SCOPE, audience="https://other.example.org"),
    "expired": lambda s: s.token(lifetime=-120),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_read_without_a_valid_covering_token_is_refused(site: Site, tmp_path: Path, case: str) -> None:
    """Refused both for a file the cache holds (authorization comes before the cache) and for one it would have to
    fetch (the origin is never asked)."""
    slug = case.replace(" ", "-")
    cached = site.origin.add_file(f"mc/RunIII/cached-{slug}.root", size=4096)
    assert site.read(cached, site.token(), tmp_path / "warm")[0] == 0
    unfetched = site.origin.add_file(f"mc/RunIII/never-{slug}.root", size=4096)
    token = REFUSED[case](site)
    for path in (cached, unfetched):
        rc, out = site.read(path, token, tmp_path / "copy")
        assert rc != 0, f"{case}: read {path}: {out}"
        assert not (tmp_path / "copy").exists()
    assert site.origin.transfers(unfetched).opens == 0


def test_a_notebooks_usual_url_is_read_through_the_cache(site: Site, tmp_path: Path) -> None:
    """What a notebook does: `xrdcp root://<origin>//store/...` with the rendered XrdCl proxy-plugin config and
    environment (only the cache's URL and the config and CA directories made local) reads through the cache."""
    path = site.origin.add_file("mc/RunIII/nano-6.root", size=BIG)
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    for name, text in xcache.client_files().items():
        (plugins / Path(name).name).write_text(text)
    local = {
        "XRD_PLUGINCONFDIR": str(plugins),
        "XROOT_PROXY": site.cache.server.url("/"),
        "X509_CERT_DIR": str(site.ca.cert_dir),
    }
    notebook = xcache.client_env() | local
    proc = xrdcp(site.origin.server.url(path), tmp_path / "copy", env=site.env(site.token()) | notebook)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "copy").read_bytes() == site.origin.local(path).read_bytes()
    assert site.cache.cinfo_path(path).exists(), "the read did not go through the cache"
    assert site.origin.transfers(path).opens == 1


def test_the_server_serves_a_request_in_pieces_of_the_configured_size(site: Site, tmp_path: Path) -> None:
    """`af:cache.maxBufferSize` as xrootd applied it: the server answers `readv_ior_max`, the largest piece of a
    vector read it serves, with its buffer size less a piece's 16-byte header (XRootD's own default would give 2 MiB
    less 16). XRootD 5.5.3 aborts serving a pgread of more than 2 MiB with such a buffer; xrdcp over TLS sends plain
    reads, so a file of several such pieces is copied whole and the server lives on."""
    cfg = stack_cache_config(STACK, site.origin.address, [site.issuer.url], base_path=BASE_PATH)
    proc = subprocess.run(
        [program("xrdfs"), site.cache.server.url(), "query", "config", "readv_ior_max"],
        env=site.env(site.token()),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    buffer = cfg.cache.buffer_size()
    assert buffer is not None and int(proc.stdout.strip()) == size_bytes(buffer) - 16 > 2 * 2**20
    path = site.origin.add_file("mc/RunIII/nano-big.root", size=3 * size_bytes(buffer) // 2 + 4321)
    rc, out = site.read(path, site.token(), tmp_path / "copy")
    assert rc == 0, out
    assert (tmp_path / "copy").read_bytes() == site.origin.local(path).read_bytes()
    assert site.cache.server.process.poll() is None, site.cache.server.log_tail()


def test_why_plain_root_keeps_xrootds_buffer(site: Site, tmp_path: Path) -> None:
    """The reason `af:cache.maxBufferSize` above 2m needs tokenAuth: a cache with a larger buffer and plain root://
    (its rendered config plus that one directive) dies serving xrdcp's 8 MiB pgreads (XRootD 5.5.3's pgread path
    overflows a stack array). When a newer XRootD fixes it, this fails, and the check can go."""
    cfg = stack_cache_config(
        STACK, site.origin.address, [site.issuer.url], base_path=BASE_PATH, changes={"tokenAuth": False}
    )
    assert cfg.cache.buffer_size() is None

    def render(cfg: FacilityConfig, runtime: CacheRuntime) -> str:
        return render_xrootd_cfg(cfg, runtime) + "xrd.buffers maxbsz 16m\n"

    path = site.origin.add_file("mc/RunIII/nano-plain.root", size=12 * 2**20)
    with run_cache(cfg, site.work / "plain-cache", site.ca, render=render) as cache:
        proc = xrdcp(cache.server.url(path), tmp_path / "copy", env=site.env(None))
        assert proc.returncode != 0, "the read succeeded"
        assert wait_for(lambda: cache.server.process.poll() is not None), "the server lives on"
        assert "stack smashing detected" in cache.server.log_tail(), cache.server.log_tail()


@pytest.mark.parametrize("checksums", [True, False])
def test_the_cache_asks_the_origin_for_page_checksums_as_configured(site: Site, tmp_path: Path, checksums: bool):
    """`af:cache.networkChecksums` as the origin sees it: with checksums the cache's reads arrive as kXR_pgread (a
    CRC32C per page), without them as plain kXR_read; the file is the origin's either way."""
    with ExitStack() as stack:
        work = stack.enter_context(scratch_dir())
        origin = stack.enter_context(run_origin(work / "origin", export=BASE_PATH, trace_requests=True))
        changes = {"networkChecksums": checksums}
        cfg = stack_cache_config(STACK, origin.address, [site.issuer.url], base_path=BASE_PATH, changes=changes)
        cache = stack.enter_context(run_cache(cfg, work / "cache", site.ca, issuers=[site.issuer]))
        path = origin.add_file("mc/RunIII/nano-cschk.root", size=BIG)
        proc = xrdcp(cache.server.url(path), tmp_path / "copy", env=site.env(site.token()))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert (tmp_path / "copy").read_bytes() == origin.local(path).read_bytes()
        log = origin.server.log_text()
    pgreads, reads = log.count(" pgread "), log.count(" read ")
    assert (pgreads > 0, reads > 0) == (checksums, not checksums), (pgreads, reads)


def test_https_reads_with_a_bearer_header(site: Site, https_cache: Cache) -> None:
    path = site.origin.add_file("mc/RunIII/nano-5.root", size=BIG)
    url = f"https://127.0.0.1:{https_cache.runtime.https_port}{path}"
    denied = requests.get(url, verify=site.ca.pem, timeout=30)
    assert denied.status_code in (401, 403), denied.status_code
    got = requests.get(url, headers={"Authorization": f"Bearer {site.token()}"}, verify=site.ca.pem, timeout=30)
    assert got.status_code == 200, (got.status_code, got.text[:200], https_cache.server.log_tail())
    assert got.content == site.origin.local(path).read_bytes()
