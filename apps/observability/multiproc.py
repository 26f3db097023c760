"""Multiprocess metrics that stay exact, and bounded, over worker recycling.

In multiprocess mode ``prometheus_client`` gives every process its own files
(``counter_<pid>.db``, ``histogram_<pid>.db``, ...) in ``PROMETHEUS_MULTIPROC_DIR`` and
adds all of them up at scrape time. Left alone, every recycled worker leaves its files
behind, so the directory and the scrape time grow without bound; deleting the files
instead would make counters go down. So when a process dies its files are folded into
one archive file per type (``counter_archive.db``, ...) and removed: the directory
holds the live processes' files plus at most one archive per type, and the totals
never move.

A scrape reading the directory while a fold is half done would count the dead process
twice or not at all, so folds hold an exclusive ``flock`` on ``.lock`` in the directory
and scrapes a shared one.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client import multiprocess as _multiprocess
from prometheus_client.mmap_dict import MmapedDict as _MmapedDict

# prometheus_client leaves these untyped.
multiprocess: Any = _multiprocess
MmapedDict: Any = _MmapedDict

ARCHIVE = "archive"
LOCK_FILE = ".lock"
# File-name prefix → how two readings of one series combine into one.
# ``live*`` gauges are not here: ``mark_process_dead`` deletes them first.
_SUMMED = ("counter", "histogram", "summary", "gauge_sum")
_MAXED = ("gauge_max",)
_MINNED = ("gauge_min",)
_LATEST = ("gauge_mostrecent",)


def multiproc_dir() -> Path | None:
    """Return the multiprocess directory from the environment, or None when unset."""
    raw = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(raw) if raw else None


@contextlib.contextmanager
def _locked(directory: Path, operation: int) -> Iterator[None]:
    with (directory / LOCK_FILE).open("a") as handle:
        fcntl.flock(handle, operation)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def prepare_directory(directory: Path, *, keep_pid: int | None = None) -> None:
    """Empty ``directory`` (creating it if needed) so that a new server starts from zero.

    ``keep_pid``: keep that process's own files. A Celery worker's main process has
    created its metric files (while loading Django) by the time it can prepare the
    directory; removing them under it would lose what it counts afterwards.
    """
    if keep_pid is None:
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
        return
    directory.mkdir(parents=True, exist_ok=True)
    own = f"_{keep_pid}.db"
    for path in directory.iterdir():
        if path.name == LOCK_FILE or path.name.endswith(own):
            continue
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def fold_dead_process(pid: int, directory: Path | None = None) -> None:
    """Fold the files of the dead process ``pid`` into the archives, then remove them.

    Gauges whose mode keeps one series per process (``all``, ``liveall``) describe a
    process that no longer exists and are dropped, as ``mark_process_dead`` drops the
    ``live*`` ones.
    """
    directory = directory or multiproc_dir()
    if directory is None or not directory.is_dir():
        return
    with _locked(directory, fcntl.LOCK_EX):
        multiprocess.mark_process_dead(pid, str(directory))
        for path in glob.glob(str(directory / f"*_{pid}.db")):
            prefix = os.path.basename(path)[: -len(f"_{pid}.db")]
            if prefix in (*_SUMMED, *_MAXED, *_MINNED, *_LATEST):
                _fold_file(Path(path), directory / f"{prefix}_{ARCHIVE}.db", prefix)
            os.remove(path)


def _fold_file(source: Path, archive: Path, prefix: str) -> None:
    target = MmapedDict(str(archive))
    try:
        for key, value, timestamp, _ in MmapedDict.read_all_values_from_file(str(source)):
            old_value, old_timestamp = target.read_value(key)
            if prefix in _SUMMED:
                target.write_value(key, old_value + value, max(timestamp, old_timestamp))
            elif prefix in _MAXED:
                target.write_value(key, max(old_value, value), timestamp)
            elif prefix in _MINNED:
                fresh = old_timestamp == 0.0 and old_value == 0.0
                target.write_value(key, value if fresh else min(old_value, value), timestamp)
            elif timestamp >= old_timestamp:
                target.write_value(key, value, timestamp)
    finally:
        target.close()


class _Collector(_multiprocess.MultiProcessCollector):
    """``MultiProcessCollector`` that skips files a new process is still creating.

    A process creates its file empty and then sizes it; read in between, the file has
    no header and the stock collector fails the whole scrape. Such a file holds no value
    yet, so leaving it out is exact.
    """

    def collect(self) -> Any:
        files = [
            path
            for path in glob.glob(os.path.join(self._path, "*.db"))
            if _size(path) >= _HEADER_BYTES
        ]
        merge: Any = self.merge
        return merge(files, accumulate=True)


_HEADER_BYTES = 8


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


def collect_registry(directory: Path) -> CollectorRegistry:
    """Return a registry that adds up every process's files in ``directory``."""
    registry = CollectorRegistry()
    collector: Any = _Collector
    collector(registry, path=str(directory))
    return registry


@contextlib.contextmanager
def consistent_view(directory: Path) -> Iterator[None]:
    """Hold off folds while the caller reads ``directory``."""
    with _locked(directory, fcntl.LOCK_SH):
        yield
