"""Where the machine's CPU time went during a measured run, read from ``/proc``.

A throughput figure alone does not say whether a goal is out of reach because of the
code under test or because of the servers beside it on the same cores. Two snapshots
around a run give each process's CPU seconds in between (user + system, as the kernel
counts them), grouped by who the process is, plus the machine's busy time; what no
group claims (the load generator, kernel work, anything else) is reported as "other".
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
OTHER = "other"


@dataclass(frozen=True)
class Process:
    """One process as ``/proc/<pid>/stat`` shows it."""

    pid: int
    name: str
    parent: int
    ticks: int


@dataclass(frozen=True)
class Snapshot:
    """Every process's CPU ticks so far, and the whole machine's busy ticks."""

    processes: Mapping[int, Process]
    busy_ticks: int


Group = Callable[[Process], bool]


def snapshot() -> Snapshot:
    """Return the CPU ticks of every process and of the machine, now."""
    processes = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            process = parse_stat(int(stat.parent.name), stat.read_text())
        except (OSError, ValueError):
            # Gone between listing and reading: it spent nothing we could attribute.
            continue
        processes[process.pid] = process
    return Snapshot(processes, machine_busy_ticks(Path("/proc/stat").read_text()))


def parse_stat(pid: int, text: str) -> Process:
    """Return the process a ``/proc/<pid>/stat`` line describes.

    The name sits in parentheses and may itself hold spaces or parentheses, so the
    fields are counted from its last closing parenthesis.
    """
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    # Fields 4, 14 and 15 of proc(5): the parent's pid, user time, system time.
    return Process(pid, name, int(fields[1]), int(fields[11]) + int(fields[12]))


def machine_busy_ticks(proc_stat: str) -> int:
    """Return the ticks all CPUs spent not idle, from the ``cpu`` line of ``/proc/stat``."""
    # user nice system idle iowait irq softirq steal (guest time is inside user).
    values = [int(value) for value in proc_stat.split("\n", 1)[0].split()[1:9]]
    return sum(values) - values[3] - values[4]


def spent(before: Snapshot, after: Snapshot, groups: Mapping[str, Group]) -> dict[str, float]:
    """Return the CPU seconds each group's processes spent between the snapshots.

    A process belongs to the first group that claims it; a process that started in
    between counts from zero, one that ended in between is lost (its time lands in
    "other"). ``OTHER`` holds the machine's busy time that no group claims.
    """
    seconds = dict.fromkeys(groups, 0.0)
    claimed = 0
    for pid, process in after.processes.items():
        earlier = before.processes.get(pid)
        start = earlier.ticks if earlier is not None and earlier.name == process.name else 0
        ticks = process.ticks - start
        for name, belongs in groups.items():
            if belongs(process):
                seconds[name] += ticks / CLOCK_TICKS_PER_SECOND
                claimed += ticks
                break
    busy = after.busy_ticks - before.busy_ticks
    seconds[OTHER] = max(0, busy - claimed) / CLOCK_TICKS_PER_SECOND
    return seconds


def process_tree(root: int) -> Group:
    """Return a group of ``root`` and its direct children (a server's master and workers)."""
    return lambda process: process.pid == root or process.parent == root


def named(*names: str) -> Group:
    """Return a group of the processes with any of these names."""
    wanted = frozenset(names)
    return lambda process: process.name in wanted


def descendants(snap: Snapshot, root: int) -> Group:
    """Return a group of ``root`` and every process below it in ``snap``, at any depth.

    For a server started through a wrapper (PostgreSQL run as its own user): its
    workers are the wrapper's grandchildren. A process that ended before ``snap`` was
    taken is not in it, and its time lands in "other".
    """
    children: dict[int, list[int]] = {}
    for process in snap.processes.values():
        children.setdefault(process.parent, []).append(process.pid)
    found, todo = {root}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return lambda process: process.pid in found


def listening_pid(port: int) -> int | None:
    """Return the pid of the process listening on TCP ``port`` on this machine, if any.

    From the socket's inode in ``/proc/net/tcp`` (and ``tcp6``) and the process whose
    file descriptors hold it: how a server shared with other users (a RabbitMQ node
    already running) is told apart from their servers of the same name.
    """
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                # local address "ADDR:PORT" in hex; state 0A is LISTEN.
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                    inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        with contextlib.suppress(OSError):
            for fd in fd_dir.iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        return int(fd_dir.parent.name)
    return None
