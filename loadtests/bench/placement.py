"""Where the bench's processes run: Redis on a core of its own, as on its own host.

On this 2-core machine Redis shares the cores with gunicorn and the bench client, and
the kernel wakes Redis on the CPU of the process that wrote to it (a loopback write is
a synchronous wakeup): the application waits while Redis runs in its place, whatever
the application meant to do meanwhile. In production Redis runs elsewhere. Pinning it
to one core and everything else to the others measures that placement on one box.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _children(pid: int) -> list[int]:
    """Return the ids of the processes whose parent is ``pid`` (a master's workers)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def _threads(pids: list[int]) -> list[int]:
    """Return the thread ids of the processes ``pids``."""
    tids: list[int] = []
    for pid in pids:
        try:
            tids.extend(int(task.name) for task in Path(f"/proc/{pid}/task").iterdir())
        except OSError:
            continue
    return tids


def _pin(tids: list[int], cpus: set[int]) -> dict[int, set[int]]:
    """Pin the threads ``tids`` to ``cpus``; return their previous masks."""
    previous = {}
    for tid in tids:
        try:
            previous[tid] = os.sched_getaffinity(tid)
            os.sched_setaffinity(tid, cpus)
        except OSError:
            # Gone already (a thread that ended): nothing to pin or restore.
            continue
    return previous


def can_separate() -> bool:
    """Return whether this process may use at least two CPUs."""
    return len(os.sched_getaffinity(0)) >= 2


@contextmanager
def redis_on_own_core(redis_pid: int, app_pid: int) -> Iterator[None]:
    """Run the block with Redis on the last allowed CPU, and the app (``app_pid`` and its
    workers) and this process on the others; restore every mask afterwards.
    """
    cpus = sorted(os.sched_getaffinity(0))
    redis_cpus, app_cpus = {cpus[-1]}, set(cpus[:-1])
    previous = _pin(_threads([redis_pid]), redis_cpus)
    previous |= _pin(_threads([app_pid, *_children(app_pid), os.getpid()]), app_cpus)
    try:
        yield
    finally:
        for tid, mask in previous.items():
            try:
                os.sched_setaffinity(tid, mask)
            except OSError:
                continue
