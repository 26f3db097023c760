"""Run one process of the stack under honcho: ``python -m deploy.stack.supervise <name>``.

honcho starts every process at once and, on Ctrl-C, sends SIGTERM to all of them at
once. This wrapper gives the stack its order on both ends:

- start: wait for what the process needs (its ``waits_for`` checks), run its one-off
  ``prepare`` step (initdb, pg_basebackup, migrate …), then start it in a session of its
  own, so that honcho's signal reaches this wrapper only;
- stop: wait until every process of a lower tier has exited, then send the process its
  own stop signal (SIGINT for PostgreSQL's fast shutdown, SIGQUIT for nginx's graceful
  one, SIGTERM to the Celery main process only, for a warm shutdown), wait for it, and
  kill what is left of its process group.

Each wrapper records its pid and its child's in ``<STACK_VAR_DIR>/run/<name>.json``; the
launcher reads these records to refuse a second stack and to sweep after the last exit.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from deploy.local.processes import ServerError
from deploy.stack.layout import Layout
from deploy.stack.services import Service, services

# How long a process may wait for its dependencies before the stack gives up.
START_TIMEOUT = 180.0
# A process of a lower tier that is still running after this no longer holds up the rest.
LOWER_TIER_TIMEOUT = 75.0
# A web instance that fails sooner than this after its start is not started again.
MIN_UPTIME = 10.0


def record_path(layout: Layout, name: str) -> Path:
    return layout.run_dir / f"{name}.json"


def read_records(layout: Layout) -> dict[str, dict[str, int | None]]:
    """Return every process record under the run directory, by process name."""
    records: dict[str, dict[str, int | None]] = {}
    for path in sorted(layout.run_dir.glob("*.json")):
        with contextlib.suppress(OSError, ValueError):
            records[path.stem] = json.loads(path.read_text())
    return records


def alive(pid: int | None) -> bool:
    """Return whether ``pid`` is a running (not zombie) process."""
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Supervisor:
    """Start, watch and stop one service."""

    def __init__(self, layout: Layout, service: Service) -> None:
        self.layout = layout
        self.service = service
        self.stopping = threading.Event()
        self.child: subprocess.Popen[bytes] | None = None

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping.set()

    def _record(self) -> None:
        path = record_path(self.layout, self.service.name)
        record = {
            "wrapper": os.getpid(),
            "child": self.child.pid if self.child else None,
            "tier": self.service.tier,
        }
        path.write_text(json.dumps(record))

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        self._record()
        if not self._wait_for_dependencies():
            return 0 if self.stopping.is_set() else 1
        if self.service.prepare is not None:
            try:
                self.service.prepare()
            except (subprocess.CalledProcessError, OSError, ServerError) as error:
                print(f"{self.service.name}: preparation failed: {error}", flush=True)
                return 1
        while True:
            child = self._start()
            started = time.monotonic()
            while child.poll() is None and not self.stopping.is_set():
                self.stopping.wait(0.2)
            if self.stopping.is_set():
                return self._stop(child)
            code = child.returncode
            print(f"{self.service.name} exited with status {code}", flush=True)
            # A clean exit is an instance stopped on purpose (SIGTERM); a crash soon after
            # the start would only crash again.
            crashed_early = code != 0 and time.monotonic() - started < MIN_UPTIME
            if not self.service.restart or crashed_early:
                return code or 1
            print(f"restarting {self.service.name}", flush=True)

    def _wait_for_dependencies(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        for what, check in self.service.waits_for:
            announced = False
            while not check():
                if self.stopping.is_set():
                    return False
                if time.monotonic() > deadline:
                    print(f"{self.service.name}: gave up waiting for {what}", flush=True)
                    return False
                if not announced:
                    print(f"waiting for {what}", flush=True)
                    announced = True
                self.stopping.wait(0.2)
        return not self.stopping.is_set()

    def _start(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, **self.service.env}
        self.child = subprocess.Popen(  # noqa: S603 -- the service's fixed argument list
            self.service.command,
            env=env,
            user=self.service.user,
            start_new_session=True,
            stdin=subprocess.DEVNULL,
        )
        self._record()
        return self.child

    def _stop(self, child: subprocess.Popen[bytes]) -> int:
        self._wait_for_lower_tiers()
        with contextlib.suppress(ProcessLookupError):
            if self.service.signal_group:
                os.killpg(child.pid, self.service.stop_signal)
            else:
                os.kill(child.pid, self.service.stop_signal)
        try:
            child.wait(self.service.stop_timeout)
        except subprocess.TimeoutExpired:
            print(f"{self.service.name} did not stop in time; killing it", flush=True)
        # Whatever the process left in its session (workers of a killed master) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        return 0

    def _wait_for_lower_tiers(self) -> None:
        deadline = time.monotonic() + LOWER_TIER_TIMEOUT
        names = {s.name for s in services(self.layout) if s.tier < self.service.tier}
        announced = False
        while time.monotonic() < deadline:
            records = read_records(self.layout)
            running = [
                name for name in names if name in records and alive(records[name].get("wrapper"))
            ]
            if not running:
                return
            if not announced:
                print(f"stops after: {', '.join(sorted(running))}", flush=True)
                announced = True
            time.sleep(0.1)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m deploy.stack.supervise <process name>", file=sys.stderr)
        return 2
    layout = Layout.from_env()
    by_name = {service.name: service for service in services(layout)}
    if argv[0] not in by_name:
        print(f"unknown process {argv[0]!r}; one of {', '.join(by_name)}", file=sys.stderr)
        return 2
    return Supervisor(layout, by_name[argv[0]]).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
