"""``python -m deploy.region`` (``make region-drill``): the two-region failover drill.

Needs root (network namespaces). Runs each mode asked for (default: async, then sync)
end to end, prints RPO, RTO, the replication lag before the kill and the per-order
latency of each mode against the reference's DR tiers, and exits 1 when a goal is
missed, 2 when it cannot run. Everything it creates is removed, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import traceback
from pathlib import Path
from types import FrameType

NOT_ROOT = (
    "make region-drill: needs root to create network namespaces (ip netns); "
    "run it as root, e.g. sudo make region-drill"
)
if __name__ == "__main__" and os.geteuid() != 0:
    # Refuse before importing the drill and the app's clients, which another user may
    # not be able to load at all.
    print(NOT_ROOT, file=sys.stderr)
    raise SystemExit(2)

from deploy.dr.report import Measurement, render  # noqa: E402
from deploy.local.processes import ServerError  # noqa: E402
from deploy.region.drill import RTO_GOAL_SECONDS, Clock, Result, run_drill, to_json  # noqa: E402


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def report(results: list[Result]) -> str:
    """Return the drill's figures as text: per mode, the tier table, the price of sync."""
    lines = ["", "Region drill (r1 killed whole under order load; r2 promoted):"]
    for r in results:
        lag = "n/a" if r.lag_at_kill_seconds is None else f"{r.lag_at_kill_seconds * 1000:.1f} ms"
        peak = "n/a" if r.lag_max_seconds is None else f"{r.lag_max_seconds * 1000:.1f} ms"
        lines += [
            f"  {r.mode} ({r.delay_ms:.0f} ms each way):",
            f"    RPO: {r.lost} of {r.acked_before_kill} acknowledged orders lost, "
            f"{r.rpo_seconds:.3f} s of writes",
            f"    RTO: {r.rto_seconds:.2f} s from the kill to the next 201 through the front door "
            f"(goal <= {RTO_GOAL_SECONDS:.0f} s)",
            f"    replication lag before the kill: {lag} (peak {peak}, "
            f"{r.lag_bytes_at_kill if r.lag_bytes_at_kill is not None else 'n/a'} bytes behind)",
            *(
                [
                    f"    one-row commit on r1, p50: {r.commit_local_p50_ms:.1f} ms local, "
                    f"{r.commit_remote_apply_p50_ms:.1f} ms with remote_apply to r2"
                ]
                if r.commit_local_p50_ms is not None and r.commit_remote_apply_p50_ms is not None
                else []
            ),
            f"    per-order latency before the kill: p50 {r.latency_p50_ms:.1f} ms, "
            f"p95 {r.latency_p95_ms:.1f} ms",
            f"    exactly once: {r.orders_in_r2} orders in r2, {r.duplicated} duplicated, "
            f"{r.pending_after} unprocessed, reservations {r.reserve_processed} "
            f"({r.reserve_processed_twice} twice), stock taken {r.stock_taken} = "
            f"{r.confirmed} confirmed",
            f"    front door after the kill: {r.served_by_after or 'nothing served'}; "
            f"client retries {r.failed_attempts}",
            f"    invalidation forwarded r1 -> r2: {r.invalidation_forwarded}; fail-back to r1: "
            f"{'not run' if r.failed_back is None else r.failed_back}",
        ]
    by_mode = {r.mode: r for r in results}
    if "async" in by_mode and "sync" in by_mode:
        cost = by_mode["sync"].latency_p50_ms - by_mode["async"].latency_p50_ms
        lines.append(
            f"  per-order p50, sync minus async: {cost:+.1f} ms (separate runs; on a busy "
            "machine the commit figure above is the cleaner price)"
        )
    for r in results:
        if r.commit_local_p50_ms is not None and r.commit_remote_apply_p50_ms is not None:
            price = r.commit_remote_apply_p50_ms - r.commit_local_p50_ms
            lines.append(
                f"  price of sync (remote_apply), per commit: +{price:.1f} ms at p50 "
                f"(one round trip is {2 * r.delay_ms:.0f} ms)"
            )
    measurements = [
        Measurement(r.mode, r.acked_before_kill, r.lost, r.rpo_seconds, r.rto_seconds)
        for r in results
    ]
    return "\n".join(lines) + "\n\n" + render(measurements)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.region")
    parser.add_argument("--modes", default="async,sync", help="comma-separated: async, sync")
    parser.add_argument("--delay-ms", type=float, default=20.0, help="one-way link delay")
    parser.add_argument("--load-seconds", type=float, default=10.0, help="load before the kill")
    parser.add_argument("--rate", type=float, default=20.0, help="orders per second offered")
    parser.add_argument("--no-failback", action="store_true", help="skip the fail-back")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print(NOT_ROOT, file=sys.stderr)
        return 2
    if not shutil.which("ip") and not shutil.which("ip", path="/usr/sbin:/sbin"):
        print(
            "make region-drill: iproute2 is missing: apt-get install -y iproute2", file=sys.stderr
        )
        return 2
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or any(m not in ("async", "sync") for m in modes):
        parser.error("--modes takes async, sync or both")
    signal.signal(signal.SIGTERM, _terminate)
    clock = Clock()
    results: list[Result] = []
    try:
        for mode in modes:
            clock.say(f"=== {mode} replication ===")
            results.append(
                run_drill(
                    mode=mode, delay_ms=args.delay_ms, load_seconds=args.load_seconds,
                    rate=args.rate, failback=not args.no_failback, clock=clock,
                )
            )  # fmt: skip
    except ServerError as error:
        print(f"make region-drill: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("make region-drill: interrupted; everything it made is removed", file=sys.stderr)
        return 130
    except Exception:  # the drill itself broke: say where, after its cleanup ran
        traceback.print_exc()
        print("make region-drill: the drill failed (traceback above)", file=sys.stderr)
        return 2
    print(report(results), flush=True)
    if args.json:
        args.json.write_text(to_json(results))
    problems = [f"{r.mode}: {p}" for r in results for p in r.problems()]
    for problem in problems:
        print(f"GOAL MISSED {problem}", flush=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
