"""The rate-limit bench: its peer settings load, and every peer view answers and limits.

Runs the ``ratelimit`` section's measurement on a small scenario (real gunicorn with
four workers, a private Redis); it asserts behaviour, never speed.
"""

from __future__ import annotations

import os

import pytest

from loadtests.bench import ratelimit
from loadtests.bench.ratelimit import BURSTS, LATENCY_VIEWS, Scenario
from loadtests.bench.sections import SECTIONS

SCENARIO = Scenario(workers=4, requests=3, total=40, clients=10, limit=5)


@pytest.fixture(scope="module")
def measured() -> tuple[ratelimit.Latencies, list[ratelimit.BurstResult]]:
    return ratelimit.measure_peers(SCENARIO)


def test_every_peer_view_answers_200_within_its_quota(measured):
    # measure_latency raises unless each of the 7 views answered 200 every time.
    latency, _ = measured
    for medians in (latency.shared, latency.apart):
        assert medians is not None  # This machine has two cores.
        assert set(medians) == {view.path for view in LATENCY_VIEWS}
        assert all(median > 0 for median in medians.values())


def test_pinning_redis_to_its_own_core_is_undone_afterwards(measured):
    # The bench process itself was pinned to the application's cores meanwhile.
    assert len(os.sched_getaffinity(0)) >= 2


def test_ours_admits_exactly_the_limit_and_every_peer_limits_too(measured):
    _, results = measured
    by_label = {result.burst.label: result for result in results}
    assert [result.burst for result in results] == list(BURSTS)
    for result in results:
        # Every request was answered: admitted or refused with the peer's own status.
        assert result.admitted + result.refused == SCENARIO.total
        assert result.admitted >= SCENARIO.limit
    assert by_label["ours: decorator, sliding window"].admitted == 5
    assert by_label["ours: DRF throttle, sliding window"].admitted == 5
    gcra = by_label["ours: decorator, GCRA (burst 100, refills)"]
    assert gcra.over_admitted == 0
    assert by_label["django-ratelimit (django-redis), 403"].burst.refused == 403


def test_the_section_prints_each_limited_view_next_to_its_unlimited_twin(measured):
    latency, results = measured

    lines = ratelimit.report(latency, results, SCENARIO)

    added = [line for line in lines if "ms  added " in line]
    # Five limited views, with Redis sharing the cores and on its own.
    assert len(added) == 10
    assert latency.apart is not None
    ours = [line for line in added if "+ ours: decorator, sliding window" in line]
    assert ours[0].endswith(f"added {latency.shared['ours'] - latency.shared['plain']:+.3f} ms")
    assert ours[1].endswith(f"added {latency.apart['ours'] - latency.apart['plain']:+.3f} ms")
    exactness = [line for line in lines if "admitted" in line]
    assert len(exactness) == len(BURSTS)
    assert "over-admitted   0" in exactness[0]


def test_make_bench_runs_the_ratelimit_section():
    assert SECTIONS["ratelimit"] is ratelimit.section
