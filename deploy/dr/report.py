"""RPO and RTO from a drill's commit log, and the disaster-recovery tiers they meet.

Pure functions: the drill records each committed order (id, monotonic time), the moment
of the failure and the first successful write afterwards; this module turns that into
figures and compares them with the reference's tier table.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

MINUTE = 60.0
HOUR = 60 * MINUTE
DAY = 24 * HOUR


@dataclass(frozen=True)
class Tier:
    """A recovery tier: both objectives must hold (strictly below) to meet it."""

    name: str
    rto_seconds: float
    rpo_seconds: float
    rto_text: str
    rpo_text: str


# The reference's table, strictest first.
TIERS: tuple[Tier, ...] = (
    Tier("Critical", 1 * HOUR, 5 * MINUTE, "< 1 h", "< 5 min"),
    Tier("High", 4 * HOUR, 1 * HOUR, "< 4 h", "< 1 h"),
    Tier("Medium", 24 * HOUR, 24 * HOUR, "< 24 h", "< 24 h"),
    Tier("Low", 72 * HOUR, 7 * DAY, "< 72 h", "< 1 week"),
)


@dataclass(frozen=True)
class Commit:
    """An order the writer saw committed: when, and when its connection was opened.

    ``key`` is the order's Idempotency-Key, unique per order: ids are not, because a
    restored sequence can hand out again the ids of orders that were lost. Times are
    ``time.monotonic()``; ``connected_at`` tells which server acknowledged the commit:
    one reached before the failure, or one reached after it.
    """

    key: str
    at: float
    connected_at: float


@dataclass(frozen=True)
class Measurement:
    """What one failure cost: orders lost and seconds of data (RPO), seconds down (RTO)."""

    scenario: str
    committed_before_failure: int
    lost: int
    rpo_seconds: float
    rto_seconds: float


def measure(
    *,
    scenario: str,
    commits: Sequence[Commit],
    recovered_keys: Collection[str],
    failed_at: float,
    served_at: float,
) -> Measurement:
    """Return RPO and RTO of one failure.

    RPO counts the orders acknowledged by the server that failed (on a connection opened
    before ``failed_at``) that are missing afterwards; its seconds are the window of lost
    data: from the last recovered commit before the failure (or, when none was
    recovered, the first lost one) to the failure, and 0 when nothing was lost. RTO is
    ``served_at - failed_at``: until the first write on the recovered server succeeded.
    """
    if served_at < failed_at:
        raise ValueError("served_at must not be before failed_at")
    before = [commit for commit in commits if commit.connected_at <= failed_at]
    if not before:
        raise ValueError("no order was committed before the failure: nothing to measure")
    recovered = set(recovered_keys)
    lost = [commit for commit in before if commit.key not in recovered]
    rpo_seconds = 0.0
    if lost:
        kept = [commit.at for commit in before if commit.key in recovered]
        since = max(kept) if kept else min(commit.at for commit in lost)
        # A commit acknowledged while the kill was under way may postdate failed_at.
        rpo_seconds = max(0.0, failed_at - since)
    return Measurement(
        scenario=scenario,
        committed_before_failure=len(before),
        lost=len(lost),
        rpo_seconds=rpo_seconds,
        rto_seconds=served_at - failed_at,
    )


def tiers_met(*, rto_seconds: float, rpo_seconds: float) -> list[Tier]:
    """Return the tiers whose RTO and RPO objectives both hold, strictest first."""
    return [
        tier for tier in TIERS if rto_seconds < tier.rto_seconds and rpo_seconds < tier.rpo_seconds
    ]


def best_tier(*, rto_seconds: float, rpo_seconds: float) -> Tier | None:
    """Return the strictest tier met, or None when not even the loosest one is."""
    met = tiers_met(rto_seconds=rto_seconds, rpo_seconds=rpo_seconds)
    return met[0] if met else None


def render(measurements: Sequence[Measurement]) -> str:
    """Return the measured figures and, for each, the tiers it meets, as text."""
    lines = ["Measured (RPO: orders committed before the failure and missing after it):"]
    for m in measurements:
        lines.append(
            f"  {m.scenario}: RPO {m.lost} of {m.committed_before_failure} orders lost, "
            f"{m.rpo_seconds:.2f} s of data; RTO {m.rto_seconds:.2f} s"
        )
    header = f"  {'tier':<9} {'RTO':<8} {'RPO':<9}"
    lines += [
        "",
        "Tier table (both objectives must hold):",
        (header + "".join(f" {m.scenario:<18}" for m in measurements)).rstrip(),
    ]
    for tier in TIERS:
        row = f"  {tier.name:<9} {tier.rto_text:<8} {tier.rpo_text:<9}"
        for m in measurements:
            met = tier in tiers_met(rto_seconds=m.rto_seconds, rpo_seconds=m.rpo_seconds)
            row += f" {'meets' if met else 'misses':<18}"
        lines.append(row.rstrip())
    lines.append("")
    for m in measurements:
        best = best_tier(rto_seconds=m.rto_seconds, rpo_seconds=m.rpo_seconds)
        verdict = f"meets {best.name} and every looser tier" if best else "meets no tier"
        lines.append(f"  {m.scenario}: {verdict}")
    return "\n".join(lines) + "\n"
