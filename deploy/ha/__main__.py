"""``make stack-ha``: the stack on Patroni, Redis Sentinel and a RabbitMQ cluster.

Starts the engines under ``<STACK_VAR_DIR>/engines`` (default ``var/stack-ha``), then runs
``python -m deploy.stack`` on them with its own files under ``<STACK_VAR_DIR>/app``, in the
foreground. Ctrl-C (or SIGTERM) stops the app tier first, then the engines; nothing is left
running. The engines start afresh each run (Patroni's etcd keeps its members' ports).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from types import FrameType

from deploy.ha.engines import Engines
from deploy.ha.stack import start_app_tier, stop_app_tier
from deploy.local.processes import ServerError
from deploy.stack.layout import ROOT


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def main() -> int:
    var = Path(os.environ.get("STACK_VAR_DIR") or ROOT / "var" / "stack-ha").resolve()
    engines = Engines(var / "engines")
    stack = None
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    try:
        print(f"make stack-ha: starting the HA engines under {engines.root}", flush=True)
        engines.start()
        print(engines.describe(), flush=True)
        stack = start_app_tier(engines, var / "app")
        code = stack.wait()
        print(f"make stack-ha: the app tier exited ({code}); stopping the engines", flush=True)
        return code
    except _Stop:
        print("make stack-ha: stopping the app tier, then the engines", flush=True)
        return 0
    except ServerError as error:
        print(f"make stack-ha: {error}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if stack is not None:
            stop_app_tier(stack)
        engines.stop()


if __name__ == "__main__":
    sys.exit(main())
