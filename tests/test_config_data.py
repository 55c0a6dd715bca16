"""Config of the data layer (af:cache): XRootD 5.5's rules and the cross checks, as clean errors."""

from __future__ import annotations

from typing import Any

import pytest
from test_config import DELETE, edit, only_problem, problems_of

from components.cache.config import size_bytes, under
from components.config.loader import build_config, stand_in_secrets


def cache_base() -> dict[str, Any]:
    """`test_config.base()` with the cache on, its disk on a tainted cache node group."""
    from test_config import base

    cache = {"enabled": True, "origin": "xrootd.example.org:1094", "exports": ["/store"], "diskGib": 80}
    cfg = edit(base(), "cache", cache)
    cfg = edit(cfg, "cluster.nodeGroups.cpu.roles", ["system", "batch", "cache"])
    return cfg


def test_cache_base_is_valid_and_defaults_follow_xrootd() -> None:
    cache = build_config(cache_base()).cache
    assert (cache.ram, cache.block_size, cache.low_watermark, cache.high_watermark) == ("4g", "64k", 0.90, 0.95)
    assert cache.max_buffer_size is None and cache.buffer_size() == "16m"  # 16m over TLS
    assert cache.token_auth and cache.issuers == [] and cache.upstream is None


@pytest.mark.parametrize(
    ("path", "value", "reported", "allowed"),
    [
        ("cache.ram", "512m", "af:cache.ram", "at least 1g"),
        ("cache.ram", "4gb", "af:cache.ram", "a size such as"),
        ("cache.blockSize", "6k", "af:cache.blockSize", "a multiple of 4k"),
        ("cache.blockSize", "32m", "af:cache.blockSize", "between 4k and 16m"),
        ("cache.maxBufferSize", "1m", "af:cache.maxBufferSize", "from 2m (XRootD's default) to 1g"),
        ("cache.maxBufferSize", "2g", "af:cache.maxBufferSize", "from 2m (XRootD's default) to 1g"),
        ("cache.maxBufferSize", "16", "af:cache.maxBufferSize", "a size such as"),
        ("cache.prefetch", 500, "af:cache.prefetch", "a number of at most 128"),
        ("cache.lowWatermark", 0.97, "af:cache.highWatermark", "above lowWatermark (0.97)"),
        ("cache.highWatermark", 0.9, "af:cache.highWatermark", "above lowWatermark (0.9)"),
        ("cache.highWatermark", 1.5, "af:cache.highWatermark", "a number below 1"),
        ("cache.exports", ["store"], "af:cache.exports", "absolute paths such as /store"),
        ("cache.exports", ["/store", "/store"], "af:cache.exports", "each path once"),
        (
            "cache.issuers",
            [{"issuer": "https://cms-auth.cern.ch/", "basePath": "/data"}],
            "af:cache.issuers[0].basePath",
            "a path under an export: /store",
        ),
        (
            "cache.issuers",
            [{"issuer": "https://cms-auth.cern.ch/", "basePath": "/store2"}],
            "af:cache.issuers[0].basePath",
            "a path under an export",
        ),
        ("cache.issuers", [{"issuer": "cms-auth", "basePath": "/store"}], "af:cache.issuers[0].issuer", "https://"),
        (
            "cache.issuers",
            [{"issuer": "http://iam.example.org/", "basePath": "/store"}],
            "af:cache.issuers[0].issuer",
            "tokens travel over HTTPS only",
        ),
        ("cache.servers", 3, "af:cache.servers", "at most 2, one per node of the cache node groups"),
        ("cache.diskGib", 200, "af:cache.diskGib", "at most 100, the cache nodes' data volume"),
        ("cache.forwardHosts", ["xrootd.example.org", "bad host"], "af:cache.forwardHosts", "host[:port] such as"),
        ("cache.image", "xcache:latest", "af:cache.image", "never `latest`"),
        ("cache.image", "xcache", "af:cache.image", "pinned by tag"),
        ("cache.upstream", {"kind": "kerberos"}, "af:cache.upstream", "'x509-proxy', 'bearer-token'"),
        ("cache.upstream", {"kind": "x509-proxy", "certificate": "x"}, "af:cache.upstream.", "PEM"),
        (
            "cache.upstream",
            {"kind": "bearer-token", "clientId": "xcache"},
            "af:cache.upstream.clientSecret",
            "pulumi config set --secret --path 'af:cache.upstream.clientSecret'",
        ),
        (
            "cache.upstream",
            {"kind": "bearer-token", "clientId": "xcache", "tokenUrl": "http://iam.example.org/token"},
            "af:cache.upstream.tokenUrl",
            "tokens travel over HTTPS only",
        ),
    ],
)
def test_bad_cache_config(path: str, value: Any, reported: str, allowed: str) -> None:
    found = problems_of(edit(cache_base(), path, value))
    assert any(p.path.startswith(reported) and allowed in p.allowed for p in found), [p.line() for p in found]
    assert all(p.path.startswith(reported) for p in found), [p.line() for p in found]


def test_issuers_default_to_the_identity_and_need_one() -> None:
    only_problem(edit(cache_base(), "identity", DELETE), "af:cache.issuers", "a token issuer, or af:identity")
    assert build_config(edit(edit(cache_base(), "identity", DELETE), "cache.tokenAuth", False)).cache.enabled


def test_buffers_above_xrootds_need_tls_clients() -> None:
    """Unset, the buffer is 16m with token auth (TLS) and XRootD's 2m without; more than 2m without TLS is refused
    (XRootD 5.5 aborts serving a large pgread, which xrdcp sends over plain root://)."""
    plain = edit(cache_base(), "cache.tokenAuth", False)
    assert build_config(plain).cache.buffer_size() is None
    assert build_config(edit(plain, "cache.maxBufferSize", "2m")).cache.buffer_size() is None
    assert build_config(edit(cache_base(), "cache.maxBufferSize", "2m")).cache.buffer_size() is None
    assert build_config(edit(cache_base(), "cache.maxBufferSize", "64m")).cache.buffer_size() == "64m"
    only_problem(edit(plain, "cache.maxBufferSize", "16m"), "af:cache.maxBufferSize", "2m without tokenAuth")


def test_a_disabled_cache_is_not_cross_checked() -> None:
    assert not build_config(edit(edit(cache_base(), "cache.enabled", False), "cache.servers", 9)).cache.enabled


def test_upstream_secrets_must_be_pulumi_secrets() -> None:
    upstream = {"kind": "bearer-token", "clientId": "xcache", "clientSecret": "s3cr3t-value"}
    found = problems_of(edit(cache_base(), "cache.upstream", upstream))
    assert [p.line() for p in found] == [
        "af:cache.upstream.clientSecret: got plaintext; allowed: a Pulumi secret: "
        "pulumi config set --secret --path 'af:cache.upstream.clientSecret' …"
    ]
    assert "s3cr3t" not in str(found)
    assert build_config(edit(cache_base(), "cache.upstream", upstream), {"cache"}).cache.upstream.kind == "bearer-token"


def test_the_offline_preview_stands_in_for_the_cache_client_secret() -> None:
    values = edit(cache_base(), "cache.upstream", {"kind": "bearer-token", "clientId": "xcache"})
    filled, secret, paths = stand_in_secrets(values, set())
    assert paths == ["af:cache.upstream.clientSecret"] and secret == {"cache"}
    assert build_config(filled, secret).cache.upstream.client_id == "xcache"
    assert stand_in_secrets(edit(values, "cache.enabled", False), set())[2] == []


def test_sizes_and_paths() -> None:
    assert size_bytes("64k") == 65536 and size_bytes("2g") == 2 << 30
    with pytest.raises(ValueError):
        size_bytes("2 GB")
    assert under("/store/user", "/store") and under("/store", "/store") and under("/x", "/")
    assert not under("/store2", "/store") and not under("/sto", "/store")
