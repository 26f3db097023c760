"""The Python API: exact counting, window edges, refusals, same-microsecond requests.

Timelines are replayed with an explicit clock (``now_us``), so they are exact and
instant; each runs on Redis and on the in-process store.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings
from prometheus_client import REGISTRY

from apps.ratelimit.limiter import counter_key, hit
from apps.ratelimit.policies import get_policy

SECOND = 1_000_000
# A window boundary, as a fixed-window limiter would have it: a multiple of 60 s.
BOUNDARY = 1_800_000_000 * SECOND


def decisions_of(policy: str, outcome: str) -> float:
    labels = {"policy": policy, "outcome": outcome}
    return REGISTRY.get_sample_value("ratelimit_decisions_total", labels) or 0.0


def admitted(policy: str, key: str, times_us: list[int]) -> int:
    return sum(hit(policy, key, now_us=t).allowed for t in times_us)


@pytest.mark.usefixtures("backend")
@pytest.mark.parametrize("algorithm", ["sliding_window", "gcra"])
def test_bursts_either_side_of_a_window_boundary_admit_no_more_than_the_limit(
    set_policy, algorithm
):
    set_policy("edge", limit=100, window=60, algorithm=algorithm)
    before = [BOUNDARY - SECOND // 10] * 100
    after = [BOUNDARY + SECOND // 10] * 100

    total = admitted("edge", "client", before) + admitted("edge", "client", after)

    # A fixed window would admit 200 here. GCRA may add one request per 0.6 s of
    # elapsed time; 0.2 s elapsed, so none.
    assert total == 100


@pytest.mark.usefixtures("backend")
def test_sliding_window_admits_again_exactly_when_the_oldest_request_leaves(set_policy):
    set_policy("log", limit=3, window=10, algorithm="sliding_window")
    for offset in (0, 1, 2):
        assert hit("log", "k", now_us=BOUNDARY + offset * SECOND).allowed

    refused = hit("log", "k", now_us=BOUNDARY + 9 * SECOND)

    assert (refused.allowed, refused.remaining, refused.retry_after) == (False, 0, 1.0)
    assert not hit("log", "k", now_us=BOUNDARY + 10 * SECOND - 1).allowed
    assert hit("log", "k", now_us=BOUNDARY + 10 * SECOND).allowed


@pytest.mark.usefixtures("backend")
@pytest.mark.parametrize(
    ("algorithm", "free_at"),
    # The log frees a slot when the first request is a window old; GCRA one emission
    # interval (60 s / 5 = 12 s) after the burst.
    [("sliding_window", 60 * SECOND), ("gcra", 12 * SECOND)],
)
def test_refused_requests_do_not_extend_the_block(set_policy, algorithm, free_at):
    set_policy("strict", limit=5, window=60, algorithm=algorithm)
    assert admitted("strict", "k", [BOUNDARY] * 5) == 5
    first_refusal = hit("strict", "k", now_us=BOUNDARY + SECOND)

    # A client that keeps retrying every 10 ms until just before the slot frees.
    retries = range(BOUNDARY + SECOND, BOUNDARY + free_at, SECOND // 100)
    assert admitted("strict", "k", list(retries)) == 0

    assert first_refusal.retry_after == (free_at - SECOND) / SECOND
    assert hit("strict", "k", now_us=BOUNDARY + free_at).allowed


@pytest.mark.usefixtures("backend")
@pytest.mark.parametrize("algorithm", ["sliding_window", "gcra"])
def test_requests_in_the_same_microsecond_each_count(set_policy, algorithm):
    set_policy("same", limit=10, window=60, algorithm=algorithm)

    decisions = [hit("same", "k", now_us=BOUNDARY) for _ in range(11)]

    assert [d.remaining for d in decisions[:10]] == list(range(9, -1, -1))
    assert [d.allowed for d in decisions] == [True] * 10 + [False]


@pytest.mark.usefixtures("backend")
def test_gcra_spaces_requests_after_the_burst_at_the_emission_interval(set_policy):
    set_policy("smooth", limit=10, window=10, burst=2, algorithm="gcra")
    assert admitted("smooth", "k", [BOUNDARY] * 3) == 2

    refused = hit("smooth", "k", now_us=BOUNDARY + SECOND // 2)

    assert (refused.allowed, refused.retry_after) == (False, 0.5)
    assert hit("smooth", "k", now_us=BOUNDARY + SECOND).allowed
    assert not hit("smooth", "k", now_us=BOUNDARY + SECOND).allowed
    assert hit("smooth", "k", now_us=BOUNDARY + 2 * SECOND).allowed


@pytest.mark.usefixtures("backend")
def test_keys_count_separately(set_policy):
    set_policy("per_key", limit=1, window=60, algorithm="sliding_window")

    assert hit("per_key", "a", now_us=BOUNDARY).allowed
    assert hit("per_key", "b", now_us=BOUNDARY).allowed
    assert not hit("per_key", "a", now_us=BOUNDARY).allowed


@pytest.mark.parametrize("algorithm", ["sliding_window", "gcra"])
def test_concurrent_callers_on_one_key_get_exactly_the_limit(set_policy, algorithm):
    # GCRA with a long window, so no quota returns while the threads run.
    set_policy("race", limit=100, window=3600 if algorithm == "gcra" else 60, algorithm=algorithm)
    start = threading.Barrier(50)

    def burst(_: int) -> int:
        start.wait()
        return sum(hit("race", "shared").allowed for _ in range(20))

    with ThreadPoolExecutor(50) as pool:
        total = sum(pool.map(burst, range(50)))

    assert total == 100


@pytest.mark.parametrize("algorithm", ["sliding_window", "gcra"])
def test_every_key_the_limiter_writes_expires(set_policy, redis_client, algorithm):
    set_policy("ttl", limit=3, window=30, algorithm=algorithm)
    for _ in range(5):
        hit("ttl", "k")

    key = counter_key(get_policy("ttl"), "k")
    keys = list(redis_client.scan_iter(f"{settings.RATELIMIT_KEY_PREFIX}:*"))

    assert keys == [key.encode()]
    assert 0 < redis_client.pttl(key) <= 30_000


def test_decisions_are_counted_per_policy_and_outcome(set_policy):
    set_policy("counted", limit=2, window=60, algorithm="gcra")
    before = (decisions_of("counted", "allowed"), decisions_of("counted", "refused"))

    for _ in range(5):
        hit("counted", "k", now_us=BOUNDARY)

    after = (decisions_of("counted", "allowed"), decisions_of("counted", "refused"))
    assert (after[0] - before[0], after[1] - before[1]) == (2, 3)


def test_environment_override_replaces_a_policy_rate(settings):
    settings.RATELIMIT_OVERRIDES = {"api": (7, 30)}

    policy = get_policy("api")

    assert (policy.name, policy.limit, policy.window, policy.algorithm) == (
        "api",
        7,
        30,
        "sliding_window",
    )
