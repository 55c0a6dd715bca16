"""The cache's metrics exporter: its parser on datagrams captured from the real xrootd 5.5.3 (tests/fixtures/xrootd,
made by `support.xcachemon`), what it does with ones it cannot read, the exposition it serves (read back with
prometheus_client's parser) and the program itself over UDP and HTTP. The real xrootd sending to it is in
test_xcache_exporter_xrootd.py."""

from __future__ import annotations

import ast
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.ports import free_ports
from support.xrootd import wait_for

from components.cache.files import HERE
from components.cache.files.af_xcache_exporter import (
    METRICS,
    SUMMARY_FIELDS,
    Disk,
    Exporter,
    FileClose,
    Summary,
    Totals,
    disk_usage,
    parse_datagram,
    render,
)

FIXTURE = Path(__file__).parent / "fixtures" / "xrootd" / "cache-reports.json"
CAPTURED = json.loads(FIXTURE.read_text())
SIZE: int = CAPTURED["file_size"]
DATAGRAMS: dict[str, bytes] = {name: text.encode() for name, text in CAPTURED["datagrams"].items()}
SCRIPT = HERE / "af_xcache_exporter.py"


def samples(text: str) -> dict[str, float]:
    """Metric name -> value, as Prometheus reads the exposition (every family has one unlabelled sample)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert not sample.labels, sample
            found[sample.name] = sample.value
    return found


def fed(*names: str) -> Totals:
    totals = Totals()
    for name in names:
        totals.add(DATAGRAMS[name])
    return totals


# --- the captured datagrams ------------------------------------------------------------------------------------------


def test_the_summary_report_gives_connections_bytes_opens_and_origin_opens():
    before = parse_datagram(DATAGRAMS["summary_before_reads"])
    after = parse_datagram(DATAGRAMS["summary_after_reads"])
    assert isinstance(before, Summary) and isinstance(after, Summary)
    assert set(before.values) == set(after.values) == set(SUMMARY_FIELDS)
    assert before.values["af_xcache_client_sent_bytes_total"] == 0
    assert before.values["af_xcache_file_opens_total"] == before.values["af_xcache_origin_opens_total"] == 0
    # Two reads of the file: both sent in full, two opens, and the origin opened once (the second came from disk).
    assert after.values["af_xcache_client_sent_bytes_total"] >= 2 * SIZE
    assert after.values["af_xcache_file_opens_total"] == 2
    assert after.values["af_xcache_origin_opens_total"] == 1
    assert after.values["af_xcache_errors_total"] == after.values["af_xcache_origin_open_errors_total"] == 0
    assert after.started == before.started and after.made > before.made >= before.started


def test_the_gstream_accounts_every_byte_read_once_and_a_second_read_is_all_hits():
    (first,) = parse_datagram(DATAGRAMS["gstream_first_read"])
    (second,) = parse_datagram(DATAGRAMS["gstream_second_read"])
    # The first read went to the origin (misses), though blocks an earlier request of the same read had asked for
    # count as hits: XRootD's per-request accounting.
    assert first.hit + first.miss + first.bypass == SIZE and first.miss > 0
    assert second == FileClose(hit=SIZE, miss=0, bypass=0)
    assert first.to_disk is None and second.to_disk is None  # XRootD 5.5 does not report it


def test_records_batched_in_one_datagram_are_each_counted():
    # How the daemon batches records within one flush: newline-separated, the datagram NUL-terminated.
    records = [DATAGRAMS[name].rstrip(b"\0") for name in ("gstream_first_read", "gstream_second_read")]
    totals = Totals()
    totals.add(b"\n".join(records) + b"\0")
    assert totals.sums["af_xcache_file_closes_total"] == 2
    assert totals.sums["af_xcache_hit_bytes_total"] + totals.sums["af_xcache_miss_bytes_total"] == 2 * SIZE


def test_bytes_written_to_disk_are_counted_when_the_server_reports_them():
    """XRootD 5.6 added `b_todisk` to the records: the bytes fetched from the origin onto the disk. Its record here
    is the captured 5.5 one with the field added; until a record carries it, the metric is absent, not zero."""
    old = Totals()
    old.add(DATAGRAMS["gstream_first_read"])
    assert "af_xcache_written_bytes_total" not in old.sums
    record = json.loads(DATAGRAMS["gstream_first_read"].rstrip(b"\0")) | {"b_todisk": SIZE, "b_prefetch": 0}
    new = Totals()
    new.add(json.dumps(record).encode() + b"\0")
    assert new.sums["af_xcache_written_bytes_total"] == SIZE


MALFORMED = {
    "empty": b"",
    "not a report": b"hello",
    "truncated summary": DATAGRAMS["summary_after_reads"][:300],
    "another XML document": b'<stats id="link"><num>1</num></stats>',
    "summary without tod": DATAGRAMS["summary_after_reads"].replace(b' tod="', b' x="'),
    "summary count not a number": DATAGRAMS["summary_after_reads"].replace(b"<num>0</num>", b"<num>-1</num>", 1),
    "summary section without a field": DATAGRAMS["summary_after_reads"]
    .replace(b"<tot>", b"<to>")
    .replace(b"</tot>", b"</to>"),
    "truncated record": DATAGRAMS["gstream_first_read"][:100],
    # A good record then a bad one: nothing of the datagram is counted.
    "record not an object": DATAGRAMS["gstream_second_read"].rstrip(b"\0") + b"\n[1, 2]\0",
    "negative bytes": DATAGRAMS["gstream_first_read"].replace(b'"b_miss":', b'"b_miss":-'),
    "bytes missing": DATAGRAMS["gstream_first_read"].replace(b'"b_bypass":0,', b""),
    "bytes as text": DATAGRAMS["gstream_first_read"].replace(b'"b_bypass":0', b'"b_bypass":"0"'),
    "not UTF-8": b'{"event":"file_close","lfn":"\xff"}',
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_datagram_it_cannot_read_is_counted_and_changes_nothing_else(case):
    totals = fed("summary_before_reads", "gstream_first_read")
    before = render(totals, None)
    totals.add(MALFORMED[case])
    assert totals.malformed == 1
    assert samples(render(totals, None)) == samples(before) | {"af_xcache_exporter_malformed_datagrams_total": 1}


def test_records_of_other_events_are_skipped():
    assert parse_datagram(b'{"event":"file_open","lfn":"/store/x"}\0') == []


# --- the exposition --------------------------------------------------------------------------------------------------


def test_it_emits_exactly_the_declared_metrics_with_their_types_and_help():
    totals = fed(*DATAGRAMS)
    record = json.loads(DATAGRAMS["gstream_second_read"].rstrip(b"\0")) | {"b_todisk": 0}
    totals.add(json.dumps(record).encode())
    totals.add(b"garbage")
    text = render(totals, Disk(total=1000, used=10))
    families = {f.name: f for f in text_string_to_metric_families(text)}
    emitted = {
        s.name: (families[name].type, families[name].documentation) for name in families for s in families[name].samples
    }
    assert emitted == METRICS


def test_before_any_report_only_its_own_counts_show_and_the_report_time_is_zero():
    shown = samples(render(Totals(), None))
    assert shown == {
        "af_xcache_hit_bytes_total": 0,
        "af_xcache_miss_bytes_total": 0,
        "af_xcache_bypass_bytes_total": 0,
        "af_xcache_file_closes_total": 0,
        "af_xcache_exporter_last_report_timestamp_seconds": 0,
        "af_xcache_exporter_malformed_datagrams_total": 0,
    }


def test_values_follow_the_latest_summary_and_add_up_the_gstream():
    shown = samples(render(fed(*DATAGRAMS), disk_usage(str(FIXTURE.parent))))
    after = parse_datagram(DATAGRAMS["summary_after_reads"])
    assert isinstance(after, Summary)
    assert shown["af_xcache_exporter_last_report_timestamp_seconds"] == after.made
    assert shown["af_xcache_server_start_timestamp_seconds"] == after.started
    assert shown["af_xcache_client_sent_bytes_total"] == after.values["af_xcache_client_sent_bytes_total"]
    assert shown["af_xcache_file_closes_total"] == 2
    assert shown["af_xcache_hit_bytes_total"] + shown["af_xcache_miss_bytes_total"] == 2 * SIZE
    assert 0 < shown["af_xcache_disk_used_bytes"] <= shown["af_xcache_disk_total_bytes"]


def test_an_unreadable_disk_is_left_out():
    assert disk_usage("/nonexistent/xcache/data") is None


def test_it_runs_on_python_3_9():
    """The cache image's python3 is EL9's 3.9: no newer syntax (annotations stay strings under the future import)."""
    ast.parse(SCRIPT.read_text(), feature_version=(3, 9))


# --- the program -----------------------------------------------------------------------------------------------------


def scrape(port: int, path: str = "/metrics") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return response.read().decode()


def serving(port: int) -> bool:
    try:
        return "af_xcache_exporter_malformed_datagrams_total" in scrape(port)
    except OSError:  # not listening yet
        return False


@pytest.fixture
def exporter(tmp_path) -> Iterator[Exporter]:
    with Exporter(("127.0.0.1", 0), ("127.0.0.1", 0), disk=str(tmp_path)) as running:
        yield running


def test_datagrams_sent_over_udp_show_on_the_metrics_page(exporter):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for data in (*DATAGRAMS.values(), b"garbage"):
            udp.sendto(data, exporter.udp_address)
    port = exporter.http_address[1]
    assert wait_for(lambda: samples(scrape(port)).get("af_xcache_exporter_malformed_datagrams_total") == 1)
    shown = samples(scrape(port))
    assert shown["af_xcache_file_closes_total"] == 2 and shown["af_xcache_file_opens_total"] == 2
    assert shown["af_xcache_disk_total_bytes"] > 0
    with pytest.raises(urllib.error.HTTPError) as error:
        scrape(port, "/")
    assert error.value.code == 404


def test_the_program_serves_and_exits_on_sigterm():
    """As PID 1 in its container SIGTERM would be ignored without a handler: it must exit at once."""
    udp, http = free_ports(2)
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--udp", f"127.0.0.1:{udp}", "--http", f"127.0.0.1:{http}"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_for(lambda: serving(http), timeout=10)
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        assert time.monotonic() - start < 3
    finally:
        proc.kill()
        proc.wait()


def test_a_bad_address_is_refused():
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--udp", "9930", "--http", ":9102"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2 and "host:port" in done.stderr
