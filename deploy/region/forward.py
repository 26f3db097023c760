"""Forward cache invalidations from the other region into this one.

``python -m deploy.region.forward --region r2 --local redis://… --peer redis://… \\
--writes postgres://… --reads postgres://…``

The app's processes listen on their own region's Redis only. This process subscribes
to the other region's ``cache:invalidate`` channel (through the relay) and replays each
message into the local Redis with the cache's own INVALIDATE script: the value and its
lease are dropped, the drop is remembered, and the message is published locally with
``"origin"`` added, which the other region's forwarder skips (no echo).

A message is applied only once this region's database has replayed what the primary
held when the message arrived: otherwise a local reader could refill the cache from a
replica that has not yet seen the change, and keep the stale copy for its TTL. Pub/sub
delivers at most once, so whenever the subscription is (re)made the local cache's
generation moves on (every copy becomes a miss) and local L1s are told to flush.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

import psycopg
from redis import Redis, RedisError

from apps.core.cache import scripts

CHANNEL = "cache:invalidate"
PREFIX = "hs:c:"
INVALIDATION_MEMORY_SECONDS = 300
REPLAY_WAIT_SECONDS = 10.0
PING_SECONDS = 1.0

logger = logging.getLogger("deploy.region.forward")


class Forwarder:
    """Replays the peer region's invalidations into the local Redis."""

    def __init__(self, *, region: str, local: Redis, peer: Redis, writes: str, reads: str) -> None:
        self.region = region
        self.local = local
        self.peer = peer
        self.writes = writes
        self.reads = reads
        self.invalidate = local.register_script(scripts.INVALIDATE)
        self.forwarded = 0

    def flush_local(self) -> None:
        """Make every locally cached copy a miss and tell local processes to drop L1."""
        seconds, micros = self.local.time()
        self.local.set(f"{PREFIX}gen", f"{seconds}{micros:06d}")
        self.local.publish(CHANNEL, json.dumps({"type": "all", "origin": self.region}))

    def wait_replayed(self) -> None:
        """Wait until the local database has replayed the primary's current WAL position."""
        deadline = time.monotonic() + REPLAY_WAIT_SECONDS
        with psycopg.connect(self.writes, autocommit=True, connect_timeout=3) as primary:
            row = primary.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        target = row[0] if row else "0/0"
        with psycopg.connect(self.reads, autocommit=True, connect_timeout=3) as local:
            while time.monotonic() < deadline:
                row = local.execute(
                    "SELECT NOT pg_is_in_recovery() OR pg_last_wal_replay_lsn() >= %s::pg_lsn",
                    [target],
                ).fetchone()
                if row and row[0]:
                    return
                time.sleep(0.005)
        logger.warning("local replay did not reach %s in time; applying anyway", target)

    def apply(self, data: bytes) -> None:
        payload = json.loads(data)
        if payload.get("origin"):
            return
        kind, ident = payload.get("type"), payload.get("id")
        try:
            self.wait_replayed()
        except psycopg.Error as error:
            logger.warning("cannot compare WAL positions (%s); applying at once", error)
        message = json.dumps({**payload, "origin": self.region})
        if kind == "all" or ident is None:
            self.flush_local()
            return
        key = f"{PREFIX}{kind}:{ident}"
        self.invalidate(
            keys=[key, key + ":lease", key + ":inv"],
            args=[message, CHANNEL, INVALIDATION_MEMORY_SECONDS],
        )
        self.forwarded += 1

    def run_once(self) -> None:
        """Subscribe, flush, and forward until the subscription fails."""
        pubsub = self.peer.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        try:
            pubsub.subscribe(CHANNEL)
            self.flush_local()
            logger.warning("%s: subscribed to the peer's %s", self.region, CHANNEL)
            last_ping = time.monotonic()
            while True:
                message = pubsub.get_message(timeout=PING_SECONDS)
                if message is not None and message["type"] == "message":
                    self.apply(message["data"])
                if time.monotonic() - last_ping >= PING_SECONDS:
                    pubsub.ping()
                    last_ping = time.monotonic()
        finally:
            pubsub.close()

    def run(self) -> None:
        while True:
            try:
                self.run_once()
            except (RedisError, OSError, ValueError) as error:
                logger.warning(
                    "%s: forwarding interrupted (%s); subscribing again", self.region, error
                )
                time.sleep(0.5)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.region.forward")
    for name in ("--region", "--local", "--peer", "--writes", "--reads"):
        parser.add_argument(name, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s forward %(message)s")
    timeouts = {"socket_timeout": 3.0, "socket_connect_timeout": 3.0}
    Forwarder(
        region=args.region,
        local=Redis.from_url(args.local, **timeouts),
        peer=Redis.from_url(args.peer, socket_connect_timeout=3.0, socket_timeout=PING_SECONDS * 3),
        writes=args.writes,
        reads=args.reads,
    ).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
