"""Metrics under real gunicorn: exact over 4 workers and their recycling, bounded on disk."""

from __future__ import annotations

import re
import threading

from apps.observability.multiproc import (
    collect_registry,
    fold_dead_process,
    prepare_directory,
)
from tests.observability.conftest import samples

HEALTHZ = (("endpoint", "/healthz"), ("method", "GET"), ("status", "200"))


def _healthz_total(text: str) -> float:
    return samples(text, "http_requests_total").get(HEALTHZ, 0.0)


def test_counts_are_exact_and_never_decrease_across_recycled_gunicorn_workers(gunicorn):
    # Nothing else in this package sends /healthz to this server: it starts from zero.
    assert _healthz_total(gunicorn.scrape()) == 0.0
    scraped: list[float] = []
    done = threading.Event()

    def scrape_while_traffic_runs() -> None:
        while not done.is_set():
            scraped.append(_healthz_total(gunicorn.scrape()))

    scraper = threading.Thread(target=scrape_while_traffic_runs)
    scraper.start()
    try:
        statuses = gunicorn.get_many(["/healthz"] * 10_000)
    finally:
        done.set()
        scraper.join()
    assert statuses == [200] * 10_000

    after = [_healthz_total(gunicorn.scrape()) for _ in range(50)]

    assert after == [10_000.0] * 50
    assert len(scraped) >= 2
    assert all(a <= b for a, b in zip(scraped, scraped[1:], strict=False)), scraped
    assert scraped[-1] <= 10_000.0
    # Each worker answers at most ~220 requests, so 10,000 took dozens of recycles,
    # and no scrape failed on a file a new worker was still creating.
    assert "Traceback" not in gunicorn.log_path.read_text()


def test_metrics_directory_holds_only_live_workers_and_one_archive_per_type(gunicorn):
    gunicorn.get_many(["/healthz"] * 1_000)

    files = sorted(p.name for p in gunicorn.metrics_dir.glob("*.db"))
    live = gunicorn.worker_pids()
    pids = {int(m[1]) for name in files if (m := re.search(r"_(\d+)\.db$", name))}

    assert len(live) == 4
    assert pids <= live, (files, live)
    assert "counter_archive.db" in files
    assert "histogram_archive.db" in files
    assert len([f for f in files if "archive" in f]) <= 7


def test_histogram_count_matches_counter_after_recycling(gunicorn):
    text = gunicorn.scrape()

    counted = _healthz_total(text)
    observed = samples(text, "http_request_duration_seconds_count")[
        (("endpoint", "/healthz"), ("method", "GET"))
    ]
    buckets = samples(text, "http_request_duration_seconds_bucket")
    infinite = buckets[(("endpoint", "/healthz"), ("le", "+Inf"), ("method", "GET"))]

    assert counted > 0
    assert observed == counted
    assert infinite == counted


def test_folding_a_dead_process_keeps_every_total(tmp_path):
    prepare_directory(tmp_path)
    key_counter = '["hs_test", "hs_test_total", {"kind": "a"}, "help"]'
    _write(tmp_path / "counter_101.db", {key_counter: 3.0})
    _write(tmp_path / "counter_102.db", {key_counter: 4.0})
    _write(tmp_path / "counter_archive.db", {key_counter: 10.0})
    _write(tmp_path / "gauge_all_101.db", {'["g", "g", {}, "h"]': 1.0})
    _write(tmp_path / "gauge_max_101.db", {'["m", "m", {}, "h"]': 7.0})
    _write(tmp_path / "gauge_max_archive.db", {'["m", "m", {}, "h"]': 5.0})

    fold_dead_process(101, tmp_path)

    assert sorted(p.name for p in tmp_path.glob("*.db")) == [
        "counter_102.db",
        "counter_archive.db",
        "gauge_max_archive.db",
    ]
    families = {f.name: f for f in collect_registry(tmp_path).collect()}
    assert [s.value for s in families["hs_test"].samples] == [17.0]
    assert [s.value for s in families["m"].samples] == [7.0]
    assert "g" not in families


def test_folding_a_process_that_left_no_files_changes_nothing(tmp_path):
    prepare_directory(tmp_path)
    _write(tmp_path / "counter_102.db", {'["x", "x_total", {}, "h"]': 2.0})

    fold_dead_process(999_999, tmp_path)

    assert sorted(p.name for p in tmp_path.glob("*.db")) == ["counter_102.db"]


def test_prepare_directory_empties_what_a_previous_server_left(tmp_path):
    (tmp_path / "counter_5.db").write_bytes(b"old")

    prepare_directory(tmp_path)

    assert list(tmp_path.iterdir()) == []


def test_prepare_directory_keeps_only_the_calling_process_files_when_asked(tmp_path):
    for name in ("counter_5.db", "counter_archive.db", "histogram_7.db", "counter_42.db"):
        (tmp_path / name).write_bytes(b"old")
    (tmp_path / "histogram_42.db").write_bytes(b"mine")

    prepare_directory(tmp_path, keep_pid=42)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["counter_42.db", "histogram_42.db"]
    assert (tmp_path / "histogram_42.db").read_bytes() == b"mine"


def test_prepare_directory_creates_a_missing_directory_for_a_worker(tmp_path):
    directory = tmp_path / "worker" / "metrics"

    prepare_directory(directory, keep_pid=42)

    assert directory.is_dir()
    assert list(directory.iterdir()) == []


def _write(path, values):
    from prometheus_client.mmap_dict import MmapedDict

    store = MmapedDict(str(path))
    for key, value in values.items():
        store.write_value(key, value, 1.0)
    store.close()
