"""Behaviour of the pub/sub invalidation listener, each node standing for a process."""

from __future__ import annotations

import json
import statistics
import time

import pytest

from apps.core.cache import CachedValue
from tests.core.cache.nodes import listening

VALUE = CachedValue({"id": 1}, '"e"', time.time() + 3600, 0.001)


def _fill_l1(node, key: str) -> None:
    assert node.l1.set(key, VALUE, epoch=node.l1.epoch())


def _wait_until_gone(node, key: str, timeout: float = 2.0) -> float:
    """Return the seconds until ``key`` left the node's L1 (fail after ``timeout``)."""
    started = time.perf_counter()
    if not node.l1.wait_absent(key, timeout):
        pytest.fail(f"{key} still in L1 after {timeout} s")
    return time.perf_counter() - started


def test_invalidation_in_one_process_drops_the_entry_in_another_within_100_ms(make_node):
    writer, reader = listening(make_node()), listening(make_node())
    delays = []
    for ident in range(20):
        _fill_l1(reader, f"user:{ident}")
        _fill_l1(reader, "user:other")
        writer.invalidate("user", [ident])
        delays.append(_wait_until_gone(reader, f"user:{ident}"))
        assert "user:other" in reader.l1

    assert statistics.median(delays) < 0.1


def test_contract_message_on_the_channel_drops_the_entry(make_node):
    node = listening(make_node())
    _fill_l1(node, "user:42")
    assert node.client is not None

    node.client.publish("cache:invalidate", json.dumps({"type": "user", "id": 42}))

    _wait_until_gone(node, "user:42")


def test_undecodable_message_flushes_the_whole_l1(make_node):
    node = listening(make_node())
    _fill_l1(node, "user:1")
    _fill_l1(node, "user:2")
    assert node.client is not None

    node.client.publish("cache:invalidate", b"\xff not json")

    _wait_until_gone(node, "user:1")
    assert len(node.l1) == 0


def test_dropped_subscription_flushes_l1_and_resubscribes(make_node):
    node = listening(make_node())
    _fill_l1(node, "user:1")
    assert node.client is not None
    assert node.listener is not None
    clients = node.client.client_list(_type="pubsub")
    ids = [c["id"] for c in clients if c["name"] == node.listener.name]
    assert len(ids) == 1

    node.client.client_kill_filter(_id=ids[0])

    _wait_until_gone(node, "user:1")
    assert node.listener.wait_healthy(5)
    # Subscribed again: invalidations reach it once more.
    _fill_l1(node, "user:3")
    make_node().invalidate("user", [3])
    _wait_until_gone(node, "user:3")


def test_l1_is_not_consulted_while_the_subscription_is_down(make_node):
    node = listening(make_node())
    assert node.listener is not None
    node.listener.stop()  # no subscription: an invalidation now would not reach this node
    _fill_l1(node, "user:1")

    read = node.get("user:1", lambda: {"id": 1, "from": "database"}, ttl=60)

    assert node.peek("user:1") is None
    assert read is not None
    assert read.data == {"id": 1, "from": "database"}
