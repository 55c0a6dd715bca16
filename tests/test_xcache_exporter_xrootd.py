"""The exporter with the real xrootd reporting to it: the cache from the shipped stack's rendered config (its
monitoring directives included, every second) sends its summary report and file-cache g-stream to a running exporter;
a file read twice through the cache shows on the exporter's /metrics as the origin's bytes, then the cache's."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.xcachemon import reporting_site
from support.xrootd import wait_for

from components.cache.files.af_xcache_exporter import Exporter

pytestmark = pytest.mark.daemon

SIZE = 3 * 2**20 + 12345  # a few blocks, not a multiple of the block size


def scrape(exporter: Exporter) -> dict[str, float]:
    url = f"http://127.0.0.1:{exporter.http_address[1]}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples}


def until(exporter: Exporter, ready: Callable[[dict[str, float]], bool], timeout: float = 10) -> dict[str, float]:
    """The metrics once `ready` holds for them (the server reports every second)."""
    assert wait_for(lambda: ready(scrape(exporter)), timeout), scrape(exporter)
    return scrape(exporter)


def test_a_file_read_twice_shows_as_origin_bytes_then_cache_bytes(tmp_path: Path) -> None:
    start = int(time.time())
    with Exporter(("127.0.0.1", 0), ("127.0.0.1", 0)) as exporter, reporting_site(exporter.udp_address[1]) as site:
        exporter.disk = site.cache.runtime.data_dir
        idle = until(exporter, lambda m: m["af_xcache_exporter_last_report_timestamp_seconds"] >= start)
        assert idle["af_xcache_file_closes_total"] == idle["af_xcache_file_opens_total"] == 0

        path = site.origin.add_file("mc/RunIII/exported.root", size=SIZE)
        assert site.read(path, tmp_path / "first").returncode == 0
        first = until(exporter, lambda m: m["af_xcache_file_closes_total"] == 1 and m["af_xcache_file_opens_total"])
        # Every byte read is accounted once; some were fetched from the origin for the read (the rest count as hits:
        # blocks an earlier request of the same read had already asked for).
        hit, miss = first["af_xcache_hit_bytes_total"], first["af_xcache_miss_bytes_total"]
        assert hit + miss + first["af_xcache_bypass_bytes_total"] == SIZE and miss > 0, first
        assert first["af_xcache_origin_opens_total"] == 1

        assert site.wait_cached(path)
        assert site.read(path, tmp_path / "second").returncode == 0
        second = until(
            exporter, lambda m: m["af_xcache_file_closes_total"] == 2 and m["af_xcache_file_opens_total"] == 2
        )
        assert second["af_xcache_hit_bytes_total"] == hit + SIZE, second
        assert second["af_xcache_miss_bytes_total"] == miss and second["af_xcache_bypass_bytes_total"] == 0
        assert second["af_xcache_origin_opens_total"] == 1  # served from disk without asking the origin

        last = until(exporter, lambda m: m["af_xcache_client_sent_bytes_total"] >= 2 * SIZE)
        assert last["af_xcache_exporter_last_report_timestamp_seconds"] <= time.time() + 1
        assert last["af_xcache_server_start_timestamp_seconds"] >= start - 1
        assert last["af_xcache_errors_total"] == last["af_xcache_origin_open_errors_total"] == 0
        assert 0 < last["af_xcache_disk_used_bytes"] <= last["af_xcache_disk_total_bytes"]
        assert last["af_xcache_exporter_malformed_datagrams_total"] == 0  # it read everything the server sent
        assert "af_xcache_written_bytes_total" not in last  # XRootD 5.5 does not report bytes written to disk
