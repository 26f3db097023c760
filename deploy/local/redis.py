"""The command line of a local Redis server."""

from __future__ import annotations

from pathlib import Path

from deploy.local.binaries import find_binary


def command(port: int, home: Path, *, save: str = "", bind: str = "127.0.0.1") -> list[str]:
    """Return the command that runs Redis on ``port`` with its files in ``home``.

    ``save`` is Redis's snapshot rule; empty keeps nothing on disk. ``bind`` lists the
    addresses to listen on, separated by spaces.
    """
    return [
        find_binary("redis-server"), "--bind", *bind.split(), "--port", str(port),
        "--dir", str(home), "--save", save, "--appendonly", "no",
    ]  # fmt: skip
