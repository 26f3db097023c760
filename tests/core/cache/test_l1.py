"""Behaviour of the bounded in-process cache."""

from __future__ import annotations

import time

from apps.core.cache.l1 import L1Cache


def test_l1_returns_what_was_set_until_its_ttl_passes():
    l1: L1Cache[str] = L1Cache(max_entries=10, ttl=0.05)
    assert l1.set("a", "one", epoch=l1.epoch())

    assert l1.get("a") == "one"
    time.sleep(0.06)
    assert l1.get("a") is None
    assert len(l1) == 0


def test_l1_evicts_the_least_recently_used_entry_beyond_its_size():
    l1: L1Cache[int] = L1Cache(max_entries=2, ttl=5)
    l1.set("a", 1, epoch=l1.epoch())
    l1.set("b", 2, epoch=l1.epoch())
    assert l1.get("a") == 1

    l1.set("c", 3, epoch=l1.epoch())

    assert l1.get("b") is None
    assert (l1.get("a"), l1.get("c")) == (1, 3)


def test_l1_refuses_a_fill_that_began_before_a_drop():
    l1: L1Cache[str] = L1Cache(max_entries=10, ttl=5)
    epoch = l1.epoch()
    l1.delete("a")  # an invalidation arrives while the fill is reading Redis

    assert not l1.set("a", "old", epoch=epoch)
    assert l1.get("a") is None


def test_l1_refuses_a_fill_that_began_before_a_flush():
    l1: L1Cache[str] = L1Cache(max_entries=10, ttl=5)
    epoch = l1.epoch()
    l1.clear()

    assert not l1.set("a", "old", epoch=epoch)


def test_l1_of_size_zero_stores_nothing():
    l1: L1Cache[str] = L1Cache(max_entries=0, ttl=5)

    assert not l1.set("a", "one", epoch=l1.epoch())
    assert l1.get("a") is None


def test_l1_entry_lives_no_longer_than_the_ttl_it_was_given():
    l1: L1Cache[str] = L1Cache(max_entries=10, ttl=5)
    l1.set("a", "one", epoch=l1.epoch(), ttl=0.02)
    time.sleep(0.03)

    assert l1.get("a") is None
