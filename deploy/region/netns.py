"""Network namespaces and veth pairs: each region's own addresses, made and removed here.

Region ``n`` is the namespace ``highscale-r<n>`` with one veth pair: ``10.77.<n>.2``
inside, ``10.77.<n>.1`` on the host side, a /30 and no default route, so a region reaches
only its own loopback and its host-side address, where the relay and the front door
listen. Nothing routes between the regions except the relay.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass

from deploy.local.processes import ServerError

PREFIX = "highscale-r"


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip`` with ``args``; raise ServerError with its output when ``check`` fails."""
    result = subprocess.run(  # noqa: S603 -- fixed program, arguments built here
        ["ip", *args],  # noqa: S607 -- iproute2 from PATH
        capture_output=True,
        text=True,
        check=False,
    )
    if check and result.returncode != 0:
        raise ServerError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
    return result


@dataclass(frozen=True)
class Namespace:
    """One region's namespace, its veth pair and its two addresses."""

    region: str  # "r1", "r2"
    index: int

    @property
    def name(self) -> str:
        return f"{PREFIX}{self.index}"

    @property
    def address(self) -> str:
        """The region's own address (inside the namespace)."""
        return f"10.77.{self.index}.2"

    @property
    def gateway(self) -> str:
        """The host side of the link: where the region reaches the relay."""
        return f"10.77.{self.index}.1"

    @property
    def host_link(self) -> str:
        return f"hs-r{self.index}"

    def exists(self) -> bool:
        return self.name in ip("netns", "list").stdout.split()

    def create(self) -> None:
        """Create the namespace with loopback up and its veth pair addressed."""
        inner = f"hs-r{self.index}-in"
        ip("netns", "add", self.name)
        ip("-n", self.name, "link", "set", "lo", "up")
        ip("link", "add", self.host_link, "type", "veth", "peer", "name", inner)
        ip("link", "set", inner, "netns", self.name)
        ip("addr", "add", f"{self.gateway}/30", "dev", self.host_link)
        ip("link", "set", self.host_link, "up")
        ip("-n", self.name, "addr", "add", f"{self.address}/30", "dev", inner)
        ip("-n", self.name, "link", "set", inner, "up")

    def command(self, command: list[str], user: str | None = None) -> list[str]:
        """Return ``command`` run inside the namespace, as ``user`` when given."""
        as_user = []
        if user:
            as_user = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"]
        return ["ip", "netns", "exec", self.name, *as_user, *command]

    def pids(self) -> list[int]:
        """Return every process running in the namespace."""
        if not self.exists():
            return []
        return [int(pid) for pid in ip("netns", "pids", self.name, check=False).stdout.split()]

    def kill_all(self, timeout: float = 10) -> None:
        """SIGKILL every process in the namespace and wait until none is left."""
        deadline = time.monotonic() + timeout
        while (pids := self.pids()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        if self.pids():
            raise ServerError(f"processes survived SIGKILL in {self.name}: {self.pids()}")

    def cut_link(self) -> None:
        """Remove the veth pair (both ends go together)."""
        ip("link", "del", self.host_link, check=False)

    def destroy(self) -> None:
        """Kill what runs inside, remove the link and the namespace; safe to repeat."""
        with contextlib.suppress(ServerError):
            self.kill_all()
        self.cut_link()
        if self.exists():
            ip("netns", "del", self.name, check=False)
