"""Real XRootD servers on loopback for integration tests: an origin that reports what it served, a cache started from
rendered config, and a WLCG token issuer whose keys the cache's SciTokens plugin fetches over HTTPS.

xrootd refuses to run as root, so as root each server runs as the `xrootd` user (`-R`) and owns its workdir; as
anyone else it runs as that user.

How the cache gets the issuer's keys: scitokens-cpp 0.7.3 (Debian's) accepts only `https://` issuers, fetches
`<iss>/.well-known/openid-configuration` and then `jwks_uri` with libcurl, and libcurl trusts only the CA bundle
compiled into it (`/etc/ssl/certs/ca-certificates.crt`): no environment variable (SSL_CERT_FILE, CURL_CA_BUNDLE) or
config option adds a CA. So, as root, the server runs in a private mount namespace (`unshare --mount`) where
`/etc/ssl/certs` is a directory holding the system bundle plus the test CA: a real fetch from the loopback issuer,
and the host's trust store is untouched. Without root (or in a container that may not unshare) there is no private
mount; the harness then fetches the JWKS itself (over HTTPS, trusting the test CA) and stores it in the server's own
key cache (`$XDG_CACHE_HOME/scitokens/scitokens_cpp.sqllite`, in the format scitokens-cpp writes), which scitokens-cpp
reads before going to the network. Every server gets its own `XDG_CACHE_HOME`, so keys cached by an earlier run never
leak into the next.

Clients present tokens over root:// with the `ztn` security protocol (env `BEARER_TOKEN` or `BEARER_TOKEN_FILE`, as a
notebook does). ztn refuses to run without TLS, so the client also needs the server's CA: XrdCl reads only the hashed
directory `X509_CERT_DIR` (`TestCA.cert_dir`). Over HTTPS the token is an `Authorization: Bearer` header.
"""

from __future__ import annotations

import copy
import datetime
import functools
import ipaddress
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.request import urlopen

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from afctl.stackfile import read_stack
from components.cache.xrootd import (
    CacheRuntime,
    NodeCache,
    render_node_xrootd_cfg,
    render_scitokens_cfg,
    render_xrootd_cfg,
)
from components.config.facility import FacilityConfig
from components.config.loader import build_config

from .ports import free_port
from .serving import ThreadedServer
from .wan import Namespace

SERVER_USER = "xrootd"
WLCG_ANY_AUDIENCE = "https://wlcg.cern.ch/jwt/v1/any"
SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
PACKAGES = "xrootd-server xrootd-client xrootd-scitokens-plugins"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
# Environment that would give a server or client a credential the test did not choose.
_AMBIENT_CREDENTIALS = ("BEARER_TOKEN", "BEARER_TOKEN_FILE", "X509_USER_PROXY", "X509_CERT_DIR", "XDG_RUNTIME_DIR")
_STARTED = re.compile(r"^------ xrootd \S+ initialization (completed|failed)\.", re.MULTILINE)
_DIRS = re.compile(r"^\s*(?:oss\.localroot|all\.adminpath|all\.pidpath)\s+(\S+)", re.MULTILINE)
_OPEN = re.compile(r" ofs_open: \S+ fn=(\S+)$", re.MULTILINE)
_READ = re.compile(r" ofs_(?:pg)?read: (\d+)@(\d+) fn=(\S+)$", re.MULTILINE)


def program(name: str) -> str:
    """Absolute path of an XRootD program; a missing one is an error (never a skip: CI must install it)."""
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is not installed: install the Debian packages {PACKAGES} (`make test` does)")
    return path


def as_root() -> bool:
    return os.geteuid() == 0


@contextmanager
def scratch_dir(prefix: str = "xrootd-test-") -> Iterator[Path]:
    """A directory the server user can reach (pytest's tmp_path is under a 0700 directory of root), removed after."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        path.chmod(0o755)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def give_to_server(*paths: Path) -> None:
    """Make `paths` (recursively) the server user's, when servers run as that user."""
    if not as_root():
        return
    account = pwd.getpwnam(SERVER_USER)
    for top in paths:
        for path in (top, *top.rglob("*")) if top.is_dir() else (top,):
            os.lchown(path, account.pw_uid, account.pw_gid)


@functools.cache
def private_mounts() -> bool:
    """Whether servers can get a private mount namespace: root, and allowed to (a container may not be)."""
    if not as_root() or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True, check=False)
    return probe.returncode == 0


def _check_reachable(path: Path) -> None:
    if not as_root():
        return
    for parent in path.resolve().parents:
        if not parent.stat().st_mode & 0o001:
            raise ValueError(f"{path}: the {SERVER_USER} user cannot traverse {parent}; use scratch_dir()")


# -- TLS and tokens -------------------------------------------------------------------------------------------------


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class TestCA:
    """A throwaway certificate authority for the loopback TLS of issuers and servers."""

    __test__ = False

    def __init__(self, directory: Path, name: str = "xrootd test CA") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} {secrets.token_hex(4)}")])
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self._name)
            .issuer_name(self._name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - datetime.timedelta(minutes=5))
            .not_valid_after(_now() + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        self.pem = directory / "ca.pem"
        self.pem.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.cert_dir = directory / "certs"
        """Hashed CA directory (`X509_CERT_DIR`), the only form XrdCl reads."""
        self.cert_dir.mkdir(exist_ok=True)
        shutil.copy(self.pem, self.cert_dir / "ca.pem")
        subject_hash = subprocess.run(
            [program("openssl"), "x509", "-noout", "-subject_hash", "-in", str(self.pem)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        (self.cert_dir / f"{subject_hash}.0").symlink_to("ca.pem")
        for path in (directory, self.cert_dir, self.pem, self.cert_dir / "ca.pem"):
            path.chmod(0o755 if path.is_dir() else 0o644)

    def issue(self, directory: Path, name: str, hosts: Sequence[str] = ("localhost", "127.0.0.1")) -> tuple[Path, Path]:
        """A server certificate and its key (PEM files `name.pem`, `name.key`) for `hosts`."""
        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
            else:
                # XrdCl 6 (the PyPI client) matches an address URL only against DNS entries of the SAN.
                names.append(x509.DNSName(host))
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - datetime.timedelta(minutes=5))
            .not_valid_after(_now() + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        directory.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        key_path.chmod(0o600)
        return cert_path, key_path


class TokenIssuer(ThreadedServer):
    """A WLCG token issuer on https://127.0.0.1:<port>/ serving OIDC discovery and its JWKS while used as a context
    manager; `mint` signs access tokens. `requests` counts the paths fetched, so a test can see the keys were served.

    `url` ends with a slash: pydantic's HttpUrl adds one to a bare host, and `iss` must equal the configured issuer
    exactly. scitokens-cpp then asks for `//.well-known/openid-configuration`, which is served too.
    """

    __test__ = False

    def __init__(self, ca: TestCA, workdir: Path, *, kid: str | None = None) -> None:
        self.ca = ca
        self.kid = kid or f"k-{secrets.token_hex(4)}"
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.requests: Counter[str] = Counter()
        cert, key = ca.issue(workdir, f"issuer-{self.kid}")
        self._server = _IssuerServer(self)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self._server.server_port}/"
        self._thread = threading.Thread(target=self._server.serve_forever, name="token-issuer", daemon=True)

    @property
    def jwks(self) -> dict[str, Any]:
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def mint(
        self,
        scope: str,
        *,
        audience: str = WLCG_ANY_AUDIENCE,
        subject: str = "alice",
        lifetime: int = 600,
        key: rsa.RSAPrivateKey | None = None,
        **claims: Any,
    ) -> str:
        """A WLCG profile access token (`scope` such as `storage.read:/`); `key` forges it with another key."""
        now = int(time.time())
        body = {
            "wlcg.ver": "1.0",
            "iss": self.url,
            "sub": subject,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": str(uuid.uuid4()),
            "scope": scope,
            **claims,
        }
        return jwt.encode(body, key or self.key, algorithm="RS256", headers={"kid": self.kid})

    def _document(self, path: str) -> dict[str, Any] | None:
        path = "/" + path.lstrip("/")
        self.requests[path] += 1
        if path == "/.well-known/openid-configuration":
            return {"issuer": self.url, "jwks_uri": self.url + "jwks", "token_endpoint": self.url + "token"}
        if path == "/jwks":
            return self.jwks
        return None


class _IssuerServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, issuer: TokenIssuer) -> None:
        super().__init__(("127.0.0.1", 0), _IssuerHandler)
        self.issuer = issuer


class _IssuerHandler(BaseHTTPRequestHandler):
    server: _IssuerServer

    def do_GET(self) -> None:
        document = self.server.issuer._document(self.path.partition("?")[0])
        body = json.dumps(document or {"error": "not_found"}).encode()
        self.send_response(200 if document else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: `requests` records what was fetched."""


def seed_key_cache(cache_home: Path, issuers: Sequence[TokenIssuer]) -> Path:
    """Store the issuers' keys, fetched over HTTPS from the issuers, in a scitokens-cpp key cache under `cache_home`
    (what scitokens-cpp itself writes after a fetch: {"jwks", "expires", "next_update"})."""
    directory = cache_home / "scitokens"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / "scitokens_cpp.sqllite"
    now = int(time.time())
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE IF NOT EXISTS keycache (issuer text UNIQUE PRIMARY KEY NOT NULL,keys text NOT NULL)")
        for issuer in issuers:
            context = ssl.create_default_context(cafile=str(issuer.ca.pem))
            with urlopen(issuer.url + ".well-known/openid-configuration", context=context, timeout=10) as meta:
                jwks_uri = json.load(meta)["jwks_uri"]
            with urlopen(jwks_uri, context=context, timeout=10) as response:
                jwks = json.load(response)
            entry = {"jwks": jwks, "expires": now + 86400, "next_update": now + 86400}
            db.execute("INSERT OR REPLACE INTO keycache VALUES (?, ?)", (issuer.url, json.dumps(entry)))
    return path


# -- servers ----------------------------------------------------------------------------------------------------------


@dataclass
class Xrootd:
    """A running xrootd; `stop`/`start` restart it with the same config and port."""

    name: str
    port: int
    workdir: Path
    config: Path
    log: Path
    argv: list[str]
    env: dict[str, str]
    timeout: float = START_TIMEOUT
    host: str = "127.0.0.1"
    """The address clients reach it at."""
    netns: str | None = None
    """The network namespace it runs in (tests/support/wan.py), or the caller's."""
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def url(self, path: str = "", scheme: str = "root") -> str:
        return f"{scheme}://{self.host}:{self.port}/{path}"

    def log_text(self) -> str:
        """The whole log, rotated parts first."""
        parts = [*sorted(self.log.parent.glob(self.log.name + ".*")), self.log]
        return "".join(p.read_text(errors="replace") for p in parts if p.exists())

    def log_tail(self, lines: int = 40) -> str:
        stderr = self.workdir / f"{self.name}.stderr"
        text = self.log_text() + (stderr.read_text(errors="replace") if stderr.exists() else "")
        return "\n".join(text.splitlines()[-lines:])

    def start(self) -> None:
        offset = self.log.stat().st_size if self.log.exists() else 0
        with (self.workdir / f"{self.name}.stderr").open("ab") as stderr:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.workdir,  # xrootd makes its home directory, <cwd>/<name>, here
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.timeout
        while True:
            status = self._started(offset)
            if status == "completed" and _accepts(self.host, self.port, self.netns):
                return
            if status == "failed" or self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"xrootd {self.name} failed to start:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"xrootd {self.name} not serving on port {self.port} after {self.timeout}s:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _started(self, offset: int) -> str | None:
        if not self.log.exists():
            return None
        with self.log.open("rb") as f:
            f.seek(offset)
            match = _STARTED.search(f.read().decode(errors="replace"))
        return match.group(1) if match else None


def _accepts(host: str, port: int, netns: str | None = None) -> bool:
    if netns is not None:
        return Namespace(netns).accepts(host, port)
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _server_env(workdir: Path, env: Mapping[str, str] | None) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in _AMBIENT_CREDENTIALS}
    return {**base, "XDG_CACHE_HOME": str(workdir / "keycache"), **(env or {})}


def _private_trust(workdir: Path, issuers: Sequence[TokenIssuer]) -> Path:
    """A stand-in for /etc/ssl/certs: the system bundle plus the issuers' CAs, as libcurl will read it."""
    trust = workdir / "trust"
    trust.mkdir(exist_ok=True)
    system = SYSTEM_CA_BUNDLE.read_bytes() if SYSTEM_CA_BUNDLE.exists() else b""
    cas = b"".join(issuer.ca.pem.read_bytes() for issuer in issuers)
    (trust / SYSTEM_CA_BUNDLE.name).write_bytes(system + b"\n" + cas)
    return trust


@contextmanager
def run_xrootd(
    config_text: str,
    workdir: Path,
    name: str,
    port: int,
    env: Mapping[str, str] | None = None,
    *,
    issuers: Sequence[TokenIssuer] = (),
    keys: Literal["fetch", "seed"] | None = None,
    timeout: float = START_TIMEOUT,
    netns: str | None = None,
    host: str = "127.0.0.1",
) -> Iterator[Xrootd]:
    """Start `xrootd -c <workdir>/<name>.cfg -l =<workdir>/<name>.log -n <name>` serving on `port`, and stop it after.

    The directories the config names (`oss.localroot`, `all.adminpath`, `all.pidpath`) are created, and `workdir`
    is handed to the server user: put everything the server reads or writes (scitokens.cfg, TLS key) in it first.
    `issuers` are token issuers whose keys the server must get, by `keys`: "fetch" (over HTTPS, trusting their CA
    in a private mount namespace; the default where `private_mounts()`) or "seed" (into its key cache; the default
    otherwise; always in a network namespace, where the loopback issuer is out of reach). With `netns`, the server
    runs in that network namespace (`ip netns exec`) and clients reach it at `host`. Raises RuntimeError with the
    log's tail if the server exits, reports a failed initialisation or does not listen in `timeout` seconds.
    """
    xrootd = program("xrootd")
    _check_reachable(workdir)
    keys = keys or ("fetch" if private_mounts() and netns is None else "seed")
    if issuers and keys == "fetch" and not private_mounts():
        raise ValueError("keys='fetch' needs a private mount namespace (root, allowed to unshare); use keys='seed'")
    workdir.mkdir(parents=True, exist_ok=True)
    dirs = [Path(d) for d in _DIRS.findall(config_text)]
    for directory in dirs:
        directory.mkdir(parents=True, exist_ok=True)
    config = workdir / f"{name}.cfg"
    config.write_text(config_text)
    log = workdir / f"{name}.log"
    argv = [xrootd, "-c", str(config), "-l", f"={log}", "-n", name]
    server_env = _server_env(workdir, env)
    if as_root():
        argv[1:1] = ["-R", SERVER_USER]
    if issuers and keys == "seed":
        seed_key_cache(Path(server_env["XDG_CACHE_HOME"]), issuers)
    elif issuers:
        bind = 'mount --bind "$0" /etc/ssl/certs && exec "$@"'
        trust = _private_trust(workdir, issuers)
        argv = [program("unshare"), "--mount", "--propagation", "private", "--", "sh", "-c", bind, str(trust), *argv]
    if netns is not None:
        argv = Namespace(netns).argv(*argv)
    give_to_server(workdir, *dirs)
    server = Xrootd(name, port, workdir, config, log, argv, server_env, timeout, host, netns)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# -- the origin -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Transfers:
    """What an origin served of one file, from its `ofs.trace open read` log."""

    opens: int
    bytes: int


class Origin:
    """A plain data server exporting `export` from a local directory, with no authentication; it logs every open and
    read (`ofs.trace open read`), which `transfers` sums per file."""

    def __init__(self, server: Xrootd, root: Path, export: str) -> None:
        self.server, self.root, self.export = server, root, export

    @property
    def address(self) -> str:
        """`host:port` for the cache's `pss.origin`."""
        return f"{self.server.host}:{self.server.port}"

    def add_file(self, name: str, data: bytes | None = None, *, size: int = 0) -> str:
        """Store a file under the export (random content of `size` bytes unless `data`); returns its path."""
        path = f"{self.export.rstrip('/')}/{name.lstrip('/')}"
        local = self.local(path)
        local.parent.mkdir(parents=True, exist_ok=True)
        with local.open("wb") as f:
            if data is not None:
                f.write(data)
            else:
                for start in range(0, size, 1 << 24):
                    f.write(os.urandom(min(1 << 24, size - start)))
        give_to_server(self.root)
        return path

    def local(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def transfers(self, path: str) -> Transfers:
        """Opens of `path` and the bytes read from it (requests clipped to the file's end)."""
        log = self.server.log_text()
        size = self.local(path).stat().st_size
        opens = sum(1 for fn in _OPEN.findall(log) if fn == path)
        sent = sum(
            max(0, min(int(length), size - int(offset))) for length, offset, fn in _READ.findall(log) if fn == path
        )
        return Transfers(opens, sent)


def origin_config(root: Path, run_dir: Path, port: int, export: str, trace_requests: bool = False) -> str:
    lines = [
        f"xrd.port {port}",
        f"all.export {export}",
        f"oss.localroot {root}",
        f"all.adminpath {run_dir}",
        f"all.pidpath {run_dir}",
        "# Every open and read is logged: the tests count what the origin served.",
        "ofs.trace open read",
    ]
    if trace_requests:
        lines += ["# Each read request as the client sent it (read, pgread, readV).", "xrootd.trace fsio"]
    return "\n".join([*lines, ""])


@contextmanager
def run_origin(
    workdir: Path,
    port: int | None = None,
    export: str = "/store",
    *,
    netns: str | None = None,
    host: str = "127.0.0.1",
    root: Path | None = None,
    trace_requests: bool = False,
) -> Iterator[Origin]:
    """An origin on loopback (or in `netns`, reached at `host`), in `workdir`, serving `root` (default
    `workdir/data`); add files with `Origin.add_file`. With `trace_requests` its log also has each read request as
    the client sent it (`xrootd.trace fsio`)."""
    port = port or free_port()
    root = root or workdir / "data"
    text = origin_config(root, workdir / "run", port, export, trace_requests)
    with run_xrootd(text, workdir, "origin", port, netns=netns, host=host) as server:
        yield Origin(server, root, export)


# -- the cache --------------------------------------------------------------------------------------------------------


def stack_cache_config(
    stack: str,
    origin: str,
    issuers: Sequence[str],
    base_path: str = "/store",
    changes: Mapping[str, Any] | None = None,
) -> FacilityConfig:
    """A shipped stack's config with only the cache's origin (`host:port`) and accepted issuers made local, and the
    `af:cache` values in `changes` (as in a stack file: `{"prefetch": 0}`) changed."""
    values, secret = read_stack(stack)
    values = copy.deepcopy(values)
    local = {"origin": origin, "issuers": [{"issuer": url, "basePath": base_path} for url in issuers]}
    values["cache"] = {**values.get("cache", {}), **local, **(changes or {})}
    return build_config(values, secret)


@dataclass(frozen=True)
class Cache:
    server: Xrootd
    runtime: CacheRuntime

    def cinfo_path(self, path: str) -> Path:
        """Where the cache keeps the record of a cached file (`<lfn>.cinfo` under `oss.localroot`)."""
        return Path(self.runtime.data_dir) / f"{path.lstrip('/')}.cinfo"


@contextmanager
def run_cache(
    cfg: FacilityConfig,
    workdir: Path,
    ca: TestCA,
    *,
    issuers: Sequence[TokenIssuer] = (),
    port: int | None = None,
    https_port: int | None = None,
    env: Mapping[str, str] | None = None,
    keys: Literal["fetch", "seed"] | None = None,
    report_port: int | None = None,
    report_seconds: int = 1,
    netns: str | None = None,
    host: str = "127.0.0.1",
    name: str = "cache",
    render: Callable[[FacilityConfig, CacheRuntime], str] = render_xrootd_cfg,
) -> Iterator[Cache]:
    """The cache from the renderer's `xrootd.cfg` and `scitokens.cfg` for `cfg`, with a TLS certificate from `ca`;
    only ports and local paths (`CacheRuntime`) come from here. With `report_port`, the server reports about itself
    (summary and file-cache g-stream) to that loopback UDP port every `report_seconds`. With `netns` it runs in that
    network namespace, reached at `host`; `render` is the config renderer (the site cache's, or a node cache's)."""
    workdir.mkdir(parents=True, exist_ok=True)
    cert, key = ca.issue(workdir / "tls", name, hosts=tuple(dict.fromkeys(("localhost", "127.0.0.1", host))))
    runtime = CacheRuntime(
        data_dir=str(workdir / "data"),
        run_dir=str(workdir / "run"),
        scitokens_cfg=str(workdir / "scitokens.cfg"),
        port=port or free_port(),
        https_port=https_port,
        tls_cert=str(cert),
        tls_key=str(key),
        report_port=report_port,
        report_seconds=report_seconds,
    )
    Path(runtime.scitokens_cfg).write_text(render_scitokens_cfg(cfg))
    text = render(cfg, runtime)
    with run_xrootd(
        text, workdir, name, runtime.port, env, issuers=issuers, keys=keys, netns=netns, host=host
    ) as server:
        yield Cache(server, runtime)


@contextmanager
def run_node_cache(
    cfg: FacilityConfig,
    node: NodeCache,
    workdir: Path,
    ca: TestCA,
    *,
    issuers: Sequence[TokenIssuer] = (),
    upstream_token: str | None = None,
    port: int | None = None,
    netns: str | None = None,
    host: str = "127.0.0.1",
    name: str = "node-cache",
) -> Iterator[Cache]:
    """A node-level cache from `render_node_xrootd_cfg`, reading from `node.site_cache` with its own credential:
    `upstream_token` in a token file (`BEARER_TOKEN_FILE`, as the node's pod would mount it), the site cache's CA in
    `X509_CERT_DIR`. Without `upstream_token` it has no credential of its own."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = {"X509_CERT_DIR": str(ca.cert_dir)}
    if upstream_token is not None:
        token_file = workdir / "upstream.token"
        token_file.write_text(upstream_token)
        token_file.chmod(0o600)
        env["BEARER_TOKEN_FILE"] = str(token_file)

    def render(cfg: FacilityConfig, runtime: CacheRuntime) -> str:
        return render_node_xrootd_cfg(cfg, runtime, node)

    with run_cache(
        cfg, workdir, ca, issuers=issuers, port=port, env=env, netns=netns, host=host, name=name, render=render
    ) as cache:
        yield cache


# -- clients ----------------------------------------------------------------------------------------------------------


def client_env(*, token: str | None = None, ca: TestCA | None = None, scratch: Path | None = None) -> dict[str, str]:
    """Environment for xrdcp/xrdfs: the token (ztn reads `BEARER_TOKEN`), the CA of TLS servers, and nothing ambient
    (no token file of the user running the tests, fast failures)."""
    env = {k: v for k, v in os.environ.items() if k not in _AMBIENT_CREDENTIALS}
    env |= {"XRD_CONNECTIONRETRY": "1", "XRD_REQUESTTIMEOUT": "30", "XRD_STREAMTIMEOUT": "30"}
    if token is not None:
        env["BEARER_TOKEN"] = token
    if ca is not None:
        env["X509_CERT_DIR"] = str(ca.cert_dir)
    if scratch is not None:
        env["XDG_RUNTIME_DIR"] = str(scratch)  # the WLCG discovery location after the variables
    return env


def xrdcp(
    source: str, dest: Path | str, *, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`xrdcp --nopbar --force source dest`; the caller checks `returncode` (a refusal is a non-zero exit)."""
    return subprocess.run(
        [program("xrdcp"), "--nopbar", "--force", source, str(dest)],
        env=dict(env) if env is not None else client_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def cinfo(path: Path) -> dict[str, Any]:
    """A cached file's `.cinfo` record as JSON (`xrdpfc_print -j -u B`): size, completeness, accesses."""
    out = subprocess.run(
        [program("xrdpfc_print"), "-j", "-u", "B", str(path)], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out)


def wait_for(predicate: Callable[[], bool], timeout: float = 10, interval: float = 0.05) -> bool:
    """Poll `predicate()` until true or `timeout`; returns its last answer."""
    deadline = time.monotonic() + timeout
    while True:
        with suppress(FileNotFoundError, subprocess.CalledProcessError, json.JSONDecodeError):
            if predicate():
                return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
