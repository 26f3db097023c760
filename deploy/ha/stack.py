"""The app tier of ``make stack`` (``python -m deploy.stack``) run on the HA engines."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from deploy.ha.engines import Engines
from deploy.stack.layout import ROOT


def start_app_tier(
    engines: Engines, var: Path, extra: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``python -m deploy.stack`` on ``engines`` with its files under ``var``.

    The stack runs in a session of its own: the caller decides when it gets its Ctrl-C
    (``stop_app_tier``), so the engines are never stopped before the app tier.
    """
    env = {
        **os.environ,
        **(extra or {}),
        **engines.stack_environment(),
        "STACK_VAR_DIR": str(var),
    }
    return subprocess.Popen(  # noqa: S603 -- our own module, fixed arguments
        [sys.executable, "-m", "deploy.stack"], env=env, cwd=ROOT, start_new_session=True
    )


def stop_app_tier(stack: subprocess.Popen[bytes], timeout: float = 180) -> int:
    """Give the stack its Ctrl-C and wait for it (it stops tier by tier)."""
    if stack.poll() is None:
        os.kill(stack.pid, signal.SIGINT)
    try:
        return stack.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(stack.pid, signal.SIGKILL)
        return stack.wait()
