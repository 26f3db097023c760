"""The region drill: build two regions, kill the primary one under load, fail over, fail back.

See docs/regions.md. ``run_drill`` runs one mode (``async`` or ``sync``) end to end and
returns its figures; ``__main__`` runs the modes asked for and prints the report.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psycopg
import requests

from deploy.dr.report import Commit, Measurement, measure
from deploy.local.postgres import owned_dir, program, run_as
from deploy.local.processes import Process, ServerError, port_open, scratch_dir, wait_until
from deploy.region.client import OrderClient, sign_up
from deploy.region.frontdoor import FrontDoor
from deploy.region.netns import Namespace, ip
from deploy.region.region import NGINX, POSTGRES, REDIS, WRITES, Region
from deploy.stack.layout import ROOT

RTO_GOAL_SECONDS = 30.0
COMMIT_SAMPLES = 40
LAG_SAMPLE_SECONDS = 0.2
SET_COMMIT_LEVEL = {
    "local": "SET synchronous_commit = 'local'",
    "remote_apply": "SET synchronous_commit = 'remote_apply'",
}
# Once a region's veth is gone its addresses must not fall through to the default
# route (off the machine): the whole range is unreachable except over a live veth.
REGION_RANGE = "10.77.0.0/16"
FAILOVER_TIMEOUT = 90.0
DRAIN_TIMEOUT = 90.0
# Events published this long before the kill are published again from the promoted
# primary: the dead region's broker may have held them undelivered. Consumers dedupe.
REPUBLISH_WINDOW = "10 minutes"


class Clock:
    """Progress lines stamped with seconds since the drill started."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def say(self, message: str) -> None:
        print(f"[{time.monotonic() - self.start:7.2f} s] {message}", flush=True)


@dataclass
class Result:
    """What one mode of the drill measured."""

    mode: str
    delay_ms: float
    acked_before_kill: int = 0
    lost: int = 0
    rpo_seconds: float = 0.0
    rto_seconds: float = 0.0
    lag_at_kill_seconds: float | None = None
    lag_max_seconds: float | None = None
    lag_bytes_at_kill: int | None = None
    commit_local_p50_ms: float | None = None
    commit_remote_apply_p50_ms: float | None = None
    latency_p50_ms: float = 0.0
    latency_p95_ms: float = 0.0
    orders_in_r2: int = 0
    acked_total: int = 0
    duplicated: int = 0
    pending_after: int = 0
    reserve_processed: int = 0
    reserve_processed_twice: int = 0
    stock_taken: int = 0
    confirmed: int = 0
    front_door_moved: bool = False
    served_by_after: dict[str, int] = field(default_factory=dict)
    invalidation_forwarded: bool = False
    failed_back: bool | None = None
    failed_attempts: int = 0
    unexpected_statuses: dict[int, int] = field(default_factory=dict)

    def problems(self) -> list[str]:
        """Return every goal this run missed."""
        found = []
        if self.mode == "sync" and self.lost:
            found.append(f"sync lost {self.lost} acknowledged orders")
        if self.mode == "async" and self.lost:
            # The lag is sampled every LAG_SAMPLE_SECONDS; allow one interval of slack.
            bound = max(self.lag_at_kill_seconds or 0.0, self.lag_max_seconds or 0.0)
            if self.rpo_seconds > bound + LAG_SAMPLE_SECONDS:
                found.append(
                    f"async lost {self.rpo_seconds:.3f} s of writes, more than the lag "
                    f"({bound:.3f} s) before the kill"
                )
        if self.duplicated:
            found.append(f"{self.duplicated} orders duplicated")
        if self.pending_after:
            found.append(f"{self.pending_after} orders never processed")
        if self.reserve_processed != self.orders_in_r2 or self.reserve_processed_twice:
            found.append(
                f"reservations applied {self.reserve_processed} times "
                f"for {self.orders_in_r2} orders"
            )
        if self.stock_taken != self.confirmed:
            found.append(f"stock taken {self.stock_taken} for {self.confirmed} confirmed orders")
        if self.rto_seconds > RTO_GOAL_SECONDS:
            found.append(f"RTO {self.rto_seconds:.1f} s over the {RTO_GOAL_SECONDS:.0f} s goal")
        if not self.front_door_moved:
            found.append("the front door did not move to r2")
        if not self.invalidation_forwarded:
            found.append("a cache invalidation in r1 did not reach r2")
        if self.failed_back is False:
            found.append("fail-back did not bring the front door back to r1")
        if self.unexpected_statuses:
            found.append(f"unexpected answers {self.unexpected_statuses}")
        return found


class Drill:
    """Both regions, the link between them and the front door, for one run."""

    def __init__(self, *, mode: str, delay_ms: float, root: Path, clock: Clock) -> None:
        self.mode = mode
        self.delay_ms = delay_ms
        self.root = root
        self.clock = clock
        secret = secrets.token_urlsafe(40)
        self.n1, self.n2 = Namespace("r1", 1), Namespace("r2", 2)
        self.r1 = Region(self.n1, self._home("r1"), secret)
        self.r2 = Region(self.n2, self._home("r2"), secret)
        self.links: list[Process] = []
        self.front: FrontDoor | None = None
        self.result = Result(mode=mode, delay_ms=delay_ms)

    def _home(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(mode=0o755, parents=True, exist_ok=True)
        return path

    # --- building -----------------------------------------------------------------------

    def start_links(self) -> None:
        """Start the relay: r2 reaches r1's PostgreSQL and Redis on its gateway, and back."""
        a, b = self.n1, self.n2
        routes = {
            "to-r1": [f"{b.gateway}:{port}={a.address}:{port}" for port in (POSTGRES, REDIS)],
            "to-r2": [f"{a.gateway}:{port}={b.address}:{port}" for port in (POSTGRES, REDIS)],
        }
        for name, listed in routes.items():
            log = (self.root / f"relay-{name}.log").open("ab")
            command = [
                sys.executable,
                "-m",
                "deploy.region.relay",
                "--delay-ms",
                str(self.delay_ms),
                *listed,
            ]
            popen = subprocess.Popen(  # noqa: S603 -- our relay
                command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
            )
            self.links.append(Process(f"relay-{name}", popen))
        wait_until(
            lambda: port_open(b.gateway, POSTGRES) and port_open(a.gateway, POSTGRES), 30, "relay"
        )

    def cut_links(self) -> None:
        while self.links:
            self.links.pop().stop(timeout=5)

    def build(self) -> int:
        """Build both regions and the front door; return the drill product's id."""
        say = self.clock.say
        for namespace in (self.n1, self.n2):
            namespace.destroy()  # a namespace left by an interrupted run
        ip("route", "replace", "unreachable", REGION_RANGE)
        for namespace in (self.n1, self.n2):
            namespace.create()
        say(f"namespaces {self.n1.name} ({self.n1.address}) and {self.n2.name} ({self.n2.address})")
        self.start_links()
        say(f"relay between the regions: {self.delay_ms:.0f} ms each way")
        for region in (self.r1, self.r2):
            region.start_broker()
        self.r1.init_primary()
        self.r1.start_postgres()
        product_id = self._seed()
        say("r1: PostgreSQL primary, schema migrated")
        self.r2.clone_from(f"{self.n2.gateway}:{POSTGRES}")
        self.r2.start_postgres()
        say("r2: streaming replica of r1 through the relay")
        if self.mode == "sync":
            self.make_synchronous()
            say("r1: synchronous_commit = remote_apply, r2 its synchronous standby")
        self.r1.start_services(
            primary=f"127.0.0.1:{POSTGRES}", peer_redis=f"redis://{self.n1.gateway}:{REDIS}/0"
        )
        self.r2.start_services(
            primary=f"{self.n2.gateway}:{POSTGRES}",
            peer_redis=f"redis://{self.n2.gateway}:{REDIS}/0",
        )
        for region in (self.r1, self.r2):
            region.start_workers()
        self.r1.wait_serving()
        self.r2.wait_serving()
        say("both regions serve: nginx -> gunicorn -> PgBouncer, Redis, RabbitMQ, worker")
        self.front = FrontDoor(
            self.root / "front-door",
            primary=("r1", f"{self.n1.address}:{NGINX}"),
            backup=("r2", f"{self.n2.address}:{NGINX}"),
        )
        self.front.start()
        front = self.front
        wait_until(lambda: front.states().get("r1") == "UP", 60, "front door seeing r1 healthy")
        say(f"front door (HAProxy) {front.url}: {front.states()}")
        return product_id

    def make_synchronous(self) -> None:
        """Make every commit on r1 wait until r2 has applied it (once r2 streams)."""

        def streaming() -> bool:
            with psycopg.connect(self.r1.dsn(), autocommit=True) as connection:
                row = connection.execute(
                    "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
                ).fetchone()
            return bool(row and row[0])

        wait_until(streaming, 60, "r2 streaming from r1")
        with psycopg.connect(self.r1.dsn(), autocommit=True) as connection:
            connection.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
            connection.execute("ALTER SYSTEM SET synchronous_commit = 'remote_apply'")
            connection.execute("SELECT pg_reload_conf()")
            connection.execute("SET synchronous_commit = 'remote_apply'")

            # The reload reaches the walsender a moment later: wait for it to say so.
            def synchronous() -> bool:
                row = connection.execute("SELECT sync_state FROM pg_stat_replication").fetchone()
                return bool(row and row[0] == "sync")

            try:
                wait_until(synchronous, 30, "r2 becoming r1's synchronous standby")
            except ServerError as exc:
                row = connection.execute("SELECT sync_state FROM pg_stat_replication").fetchone()
                raise ServerError(f"r2 is not r1's synchronous standby (sync_state {row})") from exc
            # Commits now wait for r2: one that returns proves the setting is live.
            connection.execute("CREATE TABLE IF NOT EXISTS region_drill_sync_probe (x int)")
            self.measure_commits(connection)

    def measure_commits(self, connection: psycopg.Connection[tuple[object, ...]]) -> None:
        """Time one-row commits on r1, alternately waiting for r2 (remote_apply) and not."""
        timings: dict[str, list[float]] = {"local": [], "remote_apply": []}
        for _ in range(COMMIT_SAMPLES):
            for level, samples in timings.items():
                connection.execute(SET_COMMIT_LEVEL[level])
                started = time.perf_counter()
                connection.execute("INSERT INTO region_drill_sync_probe VALUES (1)")
                samples.append(time.perf_counter() - started)
        self.result.commit_local_p50_ms = statistics.median(timings["local"]) * 1000
        self.result.commit_remote_apply_p50_ms = statistics.median(timings["remote_apply"]) * 1000
        self.clock.say(
            f"r1 commit p50: {self.result.commit_local_p50_ms:.1f} ms local, "
            f"{self.result.commit_remote_apply_p50_ms:.1f} ms waiting for r2 (remote_apply)"
        )

    def _seed(self) -> int:
        env = {**self.r1.environment(), "DATABASE_URL": self.r1.dsn()}
        env.pop("DATABASE_REPLICA_URLS", None)
        out = subprocess.run(  # noqa: S603 -- our seed step
            [sys.executable, "-m", "deploy.region.seed"], env=env, cwd=ROOT,
            capture_output=True, text=True, check=False, timeout=300,
        )  # fmt: skip
        if out.returncode != 0:
            raise ServerError(f"seeding r1 failed:\n{out.stderr[-3000:]}")
        return int(out.stdout.split()[-1])

    # --- measuring ------------------------------------------------------------------------

    def replication_lag(self) -> tuple[float | None, int | None]:
        """Return r2's replay lag (seconds, bytes) as r1's primary reports it."""
        query = (
            "SELECT EXTRACT(EPOCH FROM replay_lag)::float8, "
            "pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint FROM pg_stat_replication"
        )
        with psycopg.connect(self.r1.dsn(), autocommit=True, connect_timeout=2) as connection:
            row = connection.execute(query).fetchone()
        return (row[0], row[1]) if row else (None, None)

    def check_invalidation(self, base_url: str, token: str) -> bool:
        """Warm r2's cache with a profile, change it through r1, watch r2 serve the change."""
        headers = {"Authorization": f"Token {token}"}
        me = requests.get(f"{base_url}/api/v1/users/me", headers=headers, timeout=10).json()
        r2_profile = f"http://{self.n2.address}:{NGINX}/api/v1/users/{me['id']}"
        requests.get(r2_profile, timeout=10)  # r2 caches the old profile
        name = f"moved-{secrets.token_hex(4)}"
        patched = requests.patch(
            f"{base_url}/api/v1/users/me", json={"display_name": name}, headers=headers, timeout=10
        )
        if patched.status_code != 200:
            self.clock.say(f"PATCH /users/me answered {patched.status_code}: {patched.text[:200]}")
            return False
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            # A fresh client each time: no read-your-writes token, so only the
            # forwarded invalidation can make r2 drop its copy.
            if name in requests.get(r2_profile, timeout=10).text:
                return True
            time.sleep(0.05)
        return False

    # --- the failure --------------------------------------------------------------------

    def kill_r1(self) -> None:
        """Kill region r1 whole: every process in its namespace, then its link."""
        self.r1.stop()
        self.cut_links()
        self.n1.cut_link()

    def fail_over(self) -> None:
        """The operator's runbook, automated; every step is logged."""
        say = self.clock.say
        deadline = time.monotonic() + 5
        while port_open(self.n1.address, NGINX, timeout=0.2) and time.monotonic() < deadline:
            time.sleep(0.1)
        say(f"[operator] r1 does not answer on {self.n1.address}: failing over to r2")
        with psycopg.connect(self.r2.dsn(), autocommit=True, connect_timeout=5) as connection:
            connection.execute("SELECT pg_promote(true, 60)")
        say("[operator] r2: SELECT pg_promote() — r2's PostgreSQL is the primary")
        self.r2.write_pgbouncer(f"127.0.0.1:{POSTGRES}")
        for command in ("RELOAD", "RECONNECT highscale"):
            self.pgbouncer_admin(self.r2, command)
        say("[operator] r2: PgBouncer (writes) repointed to 127.0.0.1:5442 (RELOAD, RECONNECT)")
        with psycopg.connect(self.r2.dsn(), autocommit=True) as connection:
            cursor = connection.execute(
                "UPDATE core_outboxevent SET sent_at = NULL WHERE sent_at > now() - %s::interval",
                [REPUBLISH_WINDOW],
            )
        say(
            f"[operator] r2: {cursor.rowcount} outbox events of the last {REPUBLISH_WINDOW} "
            "marked unsent: r1's broker died with them; the sweep publishes them to r2's, "
            "consumers skip what r1 already applied"
        )

    def pgbouncer_admin(self, region: Region, command: str) -> None:
        psql = [
            program("psql"), "-X", "-q", "-h", "127.0.0.1", "-p", str(WRITES), "-U", "postgres",
            "-d", "pgbouncer", "-c", command,
        ]  # fmt: skip
        result = subprocess.run(  # noqa: S603 -- psql against our pooler
            region.namespace.command(psql, run_as()), capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise ServerError(f"{region.name} PgBouncer {command}: {result.stderr.strip()}")

    # --- counting -------------------------------------------------------------------------

    def count(self, acked: set[str]) -> None:
        """Count what r2's database holds once every order has been processed."""
        result = self.result

        def drained() -> bool:
            with psycopg.connect(self.r2.dsn(), autocommit=True) as connection:
                row = connection.execute(
                    "SELECT count(*) FROM orders_order WHERE status = 'pending'"
                ).fetchone()
            return row is not None and row[0] == 0

        with contextlib.suppress(ServerError):
            wait_until(drained, DRAIN_TIMEOUT, "every order processed in r2", interval=0.5)
        with psycopg.connect(self.r2.dsn(), autocommit=True) as connection:

            def one(sql: str) -> int:
                row = connection.execute(sql).fetchone()
                return int(row[0] or 0) if row else 0

            keys = [
                row[0] for row in connection.execute("SELECT idempotency_key FROM orders_order")
            ]
            result.orders_in_r2 = len(keys)
            result.duplicated = len(keys) - len(set(keys))
            result.lost = len(acked - set(keys))
            result.pending_after = one("SELECT count(*) FROM orders_order WHERE status = 'pending'")
            result.confirmed = one("SELECT count(*) FROM orders_order WHERE status = 'confirmed'")
            result.reserve_processed = one(
                "SELECT count(*) FROM core_processedevent WHERE consumer LIKE '%reserve%'"
            )
            result.reserve_processed_twice = result.reserve_processed - one(
                "SELECT count(DISTINCT event_id) FROM core_processedevent "
                "WHERE consumer LIKE '%reserve%'"
            )
            result.stock_taken = one(
                "SELECT 1000000000 - stock FROM orders_product WHERE sku = 'REGION-DRILL'"
            )
        self.recovered = set(keys)

    # --- fail-back ------------------------------------------------------------------------

    def fail_back(self, base_url: str, token: str, product_id: int) -> bool:
        """Bring r1 back as a replica of r2, then, when told, the front door back to r1."""
        say = self.clock.say
        if self.front is None:
            raise ServerError("fail-back needs the front door")
        self.front.hold("r1")
        say("[operator] front door: r1 held out (maintenance) until told")
        self.n1.destroy()
        self.n1.create()
        self.start_links()
        shutil.rmtree(self.r1.home / "postgres", ignore_errors=True)
        self.r1.start_broker()
        self.r1.clone_from(f"{self.n1.gateway}:{POSTGRES}")
        self.r1.start_postgres()
        say("[operator] r1: fresh base backup of r2 through the relay; streaming replica of r2")
        self.r1.start_services(
            primary=f"{self.n1.gateway}:{POSTGRES}",
            peer_redis=f"redis://{self.n1.gateway}:{REDIS}/0",
        )
        self.r1.start_workers()
        self.r1.wait_serving()
        say("r1 serves: reads from its replica, writes to r2's primary through the relay")
        self.front.release("r1")
        say("[operator] front door told to take r1 back (runtime API: state ready)")
        front = self.front
        with contextlib.suppress(ServerError):
            wait_until(lambda: front.states().get("r1") == "UP", 30, "front door seeing r1")
        headers = {
            "Authorization": f"Token {token}",
            "Idempotency-Key": f"failback-{secrets.token_hex(8)}",
        }
        body = {"items": [{"product_id": product_id, "quantity": 1}]}
        response = requests.post(
            f"{base_url}/api/v1/orders", json=body, headers=headers, timeout=15
        )
        region = response.headers.get("X-Region")
        say(f"order after fail-back: {response.status_code}, served by {region}; {front.states()}")
        return response.status_code == 201 and region == "r1"

    def teardown(self) -> None:
        """Remove everything the drill made; safe after any failure."""
        if self.front is not None:
            self.front.stop()
        for region in (self.r2, self.r1):
            with contextlib.suppress(ServerError):
                region.stop()
        self.cut_links()
        for namespace in (self.n1, self.n2):
            namespace.destroy()
        ip("route", "del", "unreachable", REGION_RANGE, check=False)


def run_drill(
    *, mode: str, delay_ms: float, load_seconds: float, rate: float, failback: bool, clock: Clock
) -> Result:
    """Run one mode of the drill end to end and return what it measured."""
    root = scratch_dir("highscale-regions-")
    owned_dir(root)
    drill = Drill(mode=mode, delay_ms=delay_ms, root=root, clock=clock)
    say = clock.say
    clients: list[OrderClient] = []
    try:
        product_id = drill.build()
        base = drill.front.url if drill.front else ""
        token = sign_up(base, f"drill-{secrets.token_hex(4)}")
        try:
            drill.result.invalidation_forwarded = drill.check_invalidation(base, token)
        except requests.RequestException as error:
            say(f"the invalidation check failed: {error}")
        say(f"cache invalidation r1 -> r2 forwarded: {drill.result.invalidation_forwarded}")
        clients = [OrderClient(base, token, product_id, 2 / rate) for _ in range(2)]
        for client in clients:
            client.start()
        lags: list[tuple[float, float | None, int | None]] = []
        until = time.monotonic() + load_seconds
        while time.monotonic() < until:
            with contextlib.suppress(psycopg.Error):
                lags.append((time.monotonic(), *drill.replication_lag()))
            time.sleep(LAG_SAMPLE_SECONDS)
        killed_at = time.monotonic()
        drill.kill_r1()
        say(f"KILLED r1: every process in {drill.n1.name}, the relay and the veth")
        drill.fail_over()
        deadline = time.monotonic() + FAILOVER_TIMEOUT
        first: float | None = None
        while first is None and time.monotonic() < deadline:
            found = [a.at for c in clients for a in c.acks if a.sent_at > killed_at]
            first = min(found) if found else None
            time.sleep(0.05)
        if first is None:
            raise ServerError("no order succeeded through the front door after the failover")
        say(
            f"orders succeed again through the front door, {first - killed_at:.2f} s after the kill"
        )
        time.sleep(min(3.0, load_seconds / 2))
        for client in clients:
            client.stop()
        acks = [ack for client in clients for ack in client.acks]
        result = drill.result
        result.acked_total = len(acks)
        result.failed_attempts = sum(c.failed_attempts for c in clients)
        for client in clients:
            for code, n in client.other_statuses.items():
                result.unexpected_statuses[code] = result.unexpected_statuses.get(code, 0) + n
        after = [a for a in acks if a.sent_at > killed_at]
        for ack in after:
            result.served_by_after[ack.region] = result.served_by_after.get(ack.region, 0) + 1
        result.front_door_moved = bool(after) and all(a.region == "r2" for a in after)
        steady = [a.latency for a in acks if a.at < killed_at and a.attempts == 1]
        if steady:
            result.latency_p50_ms = statistics.median(steady) * 1000
            result.latency_p95_ms = (
                statistics.quantiles(steady, n=20)[-1] * 1000
                if len(steady) > 1
                else steady[0] * 1000
            )
        before = [(at, s, b) for at, s, b in lags if at <= killed_at]
        if before:
            result.lag_at_kill_seconds, result.lag_bytes_at_kill = before[-1][1], before[-1][2]
            seen = [s for _, s, _ in before if s is not None]
            result.lag_max_seconds = max(seen) if seen else None
        drill.count({a.key for a in acks})
        commits = [Commit(key=a.key, at=a.at, connected_at=a.at) for a in acks]
        measured: Measurement = measure(
            scenario=mode, commits=commits, recovered_keys=drill.recovered,
            failed_at=killed_at, served_at=first,
        )  # fmt: skip
        result.acked_before_kill = measured.committed_before_failure
        result.rpo_seconds = measured.rpo_seconds
        result.rto_seconds = measured.rto_seconds
        say(
            f"r2 holds {result.orders_in_r2} orders; {result.lost} acknowledged missing; "
            f"{result.duplicated} duplicated; {result.pending_after} pending; reservations "
            f"{result.reserve_processed} ({result.reserve_processed_twice} twice); stock taken "
            f"{result.stock_taken} for {result.confirmed} confirmed"
        )
        if failback:
            result.failed_back = drill.fail_back(base, token, product_id)
        return result
    finally:
        for client in clients:
            client.stop()
        drill.teardown()
        if not os.environ.get("HIGHSCALE_KEEP_SERVER_DIRS"):
            shutil.rmtree(root, ignore_errors=True)
        say("removed both namespaces, their links, processes and directories")


def to_json(results: list[Result]) -> str:
    return json.dumps([asdict(r) for r in results], indent=2)
