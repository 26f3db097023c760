"""The disaster-recovery drill: its restore path on real PostgreSQL, and its RPO/RTO report.

The restore test runs the drill's own steps (deploy/dr/cluster.py) in reduced form: a
private primary with WAL archiving, a base backup, a few commits before and after it,
the primary killed and its data directory removed, then a restore from the base backup
plus the archive. Every server is stopped and every directory removed afterwards.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from deploy.dr import cluster
from deploy.dr.report import (
    DAY,
    HOUR,
    MINUTE,
    Commit,
    best_tier,
    measure,
    render,
    tiers_met,
)
from deploy.local.postgres import PostgresServer, owned_dir

ROOT = Path(__file__).resolve().parents[1]

# --- the restore path on real PostgreSQL ------------------------------------------------


@pytest.fixture
def dr_root() -> Iterator[Path]:
    """Yield a scratch directory the postgres user can traverse; stop nothing left over."""
    root = Path(tempfile.mkdtemp(prefix="highscale-dr-"))
    os.chmod(root, 0o755)  # noqa: S103 -- PostgreSQL runs as another user inside it
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def nodes() -> Iterator[list[PostgresServer]]:
    """Collect the nodes a test starts and stop every one of them afterwards."""
    started: list[PostgresServer] = []
    try:
        yield started
    finally:
        for node in reversed(started):
            node.stop(immediate=True)  # the data is thrown away anyway


def _execute(node: PostgresServer, sql: str, *params: object) -> list[tuple[object, ...]]:
    with psycopg.connect(node.url, autocommit=True) as connection:
        cursor = connection.execute(sql, params or None)
        return cursor.fetchall() if cursor.description else []


def _insert(node: PostgresServer, label: str, count: int) -> None:
    with psycopg.connect(node.url) as connection:  # one transaction, committed on exit
        for number in range(count):
            connection.execute(
                "INSERT INTO drill_orders (note) VALUES (%s)", (f"{label}-{number}",)
            )


def _wait_archived(node: PostgresServer, segment: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        [(archived,)] = _execute(node, "SELECT last_archived_wal FROM pg_stat_archiver")
        if isinstance(archived, str) and archived >= segment:
            return
        time.sleep(0.05)
    raise AssertionError(f"WAL segment {segment} was not archived within 60 s")


def test_restore_from_base_backup_and_archive_loses_nothing_committed_before_the_failure_point(
    dr_root: Path, nodes: list[PostgresServer]
) -> None:
    archive = owned_dir(dr_root / "wal_archive", 0o700)
    primary = cluster.create_primary(dr_root / "primary", archive, durable=False)
    nodes.append(primary)
    _execute(primary, "CREATE TABLE drill_orders (id serial PRIMARY KEY, note text NOT NULL)")
    _insert(primary, "before-backup", 40)
    backup = dr_root / "base_backup"
    cluster.base_backup(primary, backup, durable=False)
    _insert(primary, "after-backup", 25)
    # Close the segment holding those commits and wait until the archive has it.
    [(segment,)] = _execute(primary, "SELECT pg_walfile_name(pg_switch_wal())")
    assert isinstance(segment, str)
    _wait_archived(primary, segment)

    primary.kill()
    shutil.rmtree(primary.data)
    assert not primary.data.exists()
    cluster.restore(primary, backup, archive)

    notes = {row[0] for row in _execute(primary, "SELECT note FROM drill_orders")}
    assert {f"before-backup-{n}" for n in range(40)} <= notes
    assert {f"after-backup-{n}" for n in range(25)} <= notes
    assert len(notes) == 65
    # Recovery ended on its own at the end of the archive: the node serves writes again.
    assert _execute(primary, "SELECT pg_is_in_recovery()") == [(False,)]
    _insert(primary, "after-restore", 1)
    assert _execute(primary, "SELECT count(*) FROM drill_orders") == [(66,)]

    # The control: the same base backup with the archive lost too keeps only its own rows.
    control = PostgresServer("control", owned_dir(dr_root / "control"))
    nodes.append(control)
    cluster.restore(control, backup, owned_dir(dr_root / "empty_archive", 0o700))
    notes = {row[0] for row in _execute(control, "SELECT note FROM drill_orders")}
    assert notes == {f"before-backup-{n}" for n in range(40)}


# --- RPO, RTO and the tier table ----------------------------------------------------------


def _commit(key: str, at: float, connected_at: float = 0.0) -> Commit:
    return Commit(key=key, at=at, connected_at=connected_at)


def test_measure_counts_lost_orders_and_the_window_since_the_last_recovered_commit() -> None:
    commits = [_commit("a", 1.0), _commit("b", 2.0), _commit("c", 3.0), _commit("d", 4.0)]

    result = measure(
        scenario="restore",
        commits=commits,
        recovered_keys={"a", "b"},
        failed_at=4.5,
        served_at=10.0,
    )

    assert result.committed_before_failure == 4
    assert result.lost == 2
    assert result.rpo_seconds == 2.5  # from b, the last recovered commit, to the failure
    assert result.rto_seconds == 5.5


def test_measure_reports_zero_rpo_when_nothing_was_lost() -> None:
    commits = [_commit("a", 1.0), _commit("b", 2.0)]

    result = measure(
        scenario="promote", commits=commits, recovered_keys={"a", "b"}, failed_at=2.25, served_at=3
    )

    assert (result.lost, result.rpo_seconds, result.rto_seconds) == (0, 0.0, 0.75)


def test_measure_without_any_recovered_commit_counts_from_the_first_lost_one() -> None:
    commits = [_commit("a", 1.0), _commit("b", 2.0)]

    result = measure(
        scenario="restore", commits=commits, recovered_keys=set(), failed_at=5.0, served_at=6.0
    )

    assert (result.lost, result.rpo_seconds) == (2, 4.0)


def test_measure_counts_commits_by_the_server_they_reached_not_by_their_time() -> None:
    # "late" was acknowledged by the old primary while it was being killed; "new" went
    # to the recovered server. Only "late" can be lost; "new" is never counted.
    commits = [_commit("a", 1.0), _commit("late", 5.01), _commit("new", 7.0, connected_at=6.0)]

    result = measure(
        scenario="promote",
        commits=commits,
        recovered_keys={"a", "new"},
        failed_at=5.0,
        served_at=7.0,
    )

    assert (result.committed_before_failure, result.lost) == (2, 1)
    assert result.rpo_seconds == 4.0


def test_measure_refuses_a_recovery_before_the_failure() -> None:
    with pytest.raises(ValueError, match="served_at"):
        measure(scenario="x", commits=[], recovered_keys=set(), failed_at=2.0, served_at=1.0)


def test_measure_refuses_a_failure_before_any_commit() -> None:
    commits = [_commit("late", 3.0, connected_at=2.5)]  # reached the recovered server only

    with pytest.raises(ValueError, match="nothing to measure"):
        measure(scenario="x", commits=commits, recovered_keys={"late"}, failed_at=2, served_at=3)


@pytest.mark.parametrize(
    ("rto", "rpo", "expected"),
    [
        (0.0, 0.0, ["Critical", "High", "Medium", "Low"]),
        (HOUR - 0.001, 5 * MINUTE - 0.001, ["Critical", "High", "Medium", "Low"]),
        (HOUR, 0.0, ["High", "Medium", "Low"]),  # RTO < 1 h is strict
        (0.0, 5 * MINUTE, ["High", "Medium", "Low"]),  # RPO < 5 min is strict
        (4 * HOUR - 0.001, HOUR - 0.001, ["High", "Medium", "Low"]),
        (4 * HOUR, 0.0, ["Medium", "Low"]),
        (0.0, HOUR, ["Medium", "Low"]),
        (24 * HOUR, 0.0, ["Low"]),
        (0.0, 24 * HOUR, ["Low"]),
        (72 * HOUR - 0.001, 7 * DAY - 0.001, ["Low"]),
        (72 * HOUR, 0.0, []),
        (0.0, 7 * DAY, []),
    ],
)
def test_tiers_met_applies_both_objectives_strictly(
    rto: float, rpo: float, expected: list[str]
) -> None:
    assert [tier.name for tier in tiers_met(rto_seconds=rto, rpo_seconds=rpo)] == expected


def test_best_tier_is_the_strictest_met_or_none() -> None:
    best = best_tier(rto_seconds=2 * HOUR, rpo_seconds=30 * MINUTE)
    assert best is not None
    assert best.name == "High"
    assert best_tier(rto_seconds=80 * HOUR, rpo_seconds=0.0) is None


def test_render_prints_each_figure_and_the_tier_verdicts() -> None:
    fast = measure(
        scenario="(b) promote", commits=[_commit("a", 1.0)], recovered_keys={"a"}, failed_at=2,
        served_at=2.5,
    )  # fmt: skip
    slow = measure(
        scenario="(a) restore", commits=[_commit("a", 1.0)], recovered_keys=set(), failed_at=2,
        served_at=2 + 5 * HOUR,
    )  # fmt: skip

    text = render([fast, slow])

    assert "(b) promote: RPO 0 of 1 orders lost, 0.00 s of data; RTO 0.50 s" in text
    assert "(a) restore: RPO 1 of 1 orders lost, 1.00 s of data; RTO 18000.00 s" in text
    assert "  Critical  < 1 h    < 5 min   meets              misses" in text
    assert "  Medium    < 24 h   < 24 h    meets              meets" in text
    assert "(b) promote: meets Critical and every looser tier" in text
    assert "(a) restore: meets Medium and every looser tier" in text


# --- the whole drill, through the app's order service -------------------------------------

SCENARIO_LINE = re.compile(
    r"^  \((?P<name>a|b)\) (?:restore|promote): RPO (?P<lost>\d+) of (?P<committed>\d+) orders "
    r"lost, (?P<rpo>[0-9.]+) s of data; RTO (?P<rto>[0-9.]+) s$",
    re.MULTILINE,
)


def _processes_under(path: Path) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if proc.name.isdigit():
                command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                if str(path) in command:
                    found.append(command)
    return found


def test_the_drill_restores_and_promotes_while_orders_are_written(dr_root: Path) -> None:
    workdir = dr_root / "drill"
    result = subprocess.run(
        [
            sys.executable, "-m", "deploy.dr.drill", "--workdir", str(workdir),
            "--write-seconds", "3", "--after-seconds", "0.5", "--no-fsync",
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    figures = {m["name"]: m for m in SCENARIO_LINE.finditer(result.stdout)}
    assert sorted(figures) == ["a", "b"], result.stdout
    for figure in figures.values():
        assert int(figure["committed"]) > 0
        assert 0 <= int(figure["lost"]) <= int(figure["committed"])
        assert float(figure["rto"]) > 0
    assert "(a) primary killed (SIGKILL)" in result.stdout
    assert "(b) replica promoted (pg_ctl promote)" in result.stdout
    assert "  Critical  < 1 h    < 5 min" in result.stdout
    # Every server it started is stopped; the destroyed data directory is really gone.
    assert _processes_under(workdir) == []
    assert not (workdir / "primary" / "data.destroyed").exists()
    # A drill that succeeded leaves its logs, not its clusters, backup and archive.
    assert (workdir / "primary" / "postgres.log").is_file()
    assert (workdir / "replica" / "postgres.log").is_file()
    assert not (workdir / "primary" / "data").exists()
    assert not (workdir / "base_backup").exists()
    assert not (workdir / "wal_archive").exists()


def test_the_drill_refuses_a_directory_it_did_not_make(dr_root: Path) -> None:
    (dr_root / "precious.txt").write_text("someone's data")

    result = subprocess.run(
        [sys.executable, "-m", "deploy.dr.drill", "--workdir", str(dr_root)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert result.returncode == 1
    assert "was not made by the drill" in result.stderr
    assert (dr_root / "precious.txt").read_text() == "someone's data"
