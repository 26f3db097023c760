"""The case registry: one entry per line of the ``make bench`` report.

To benchmark something new, append a ``Case``: its name (the report line), the target
that serves it (a key of ``targets.TARGETS``), the path, optional request headers, and
an optional setup that runs once after the target answers. A setup receives the
started ``Site`` (with ``site.manage(...)`` for data) and the case's request, and
returns the request to send, e.g. with a token header or a created object's id.

The first entry is the floor: every ratio is measured against it, so it always runs.
A case may also name a ``peer`` case (what a Django team would otherwise write) and the
least ratio to it that is the goal; selecting the case selects its peer too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from loadtests.bench import replicas
from loadtests.bench.site import Request, Site
from loadtests.bench.targets import TARGETS

Setup = Callable[[Site, Request], Request]


@dataclass(frozen=True)
class Case:
    """One benchmark line."""

    name: str
    target: str
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)
    setup: Setup | None = None
    # The name of the case this one is compared with, and the goal for that ratio.
    peer: str | None = None
    peer_goal: float | None = None

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"case {self.name!r}: unknown target {self.target!r}")
        if (self.peer is None) != (self.peer_goal is None):
            raise ValueError(f"case {self.name!r}: a peer goes with its goal")

    @property
    def request(self) -> Request:
        """Return the request as declared, before any setup."""
        return Request(self.path, self.headers)


def profile_user(site: Site, request: Request) -> Request:
    """Create one user and point the request at its public profile."""
    code = (
        "from apps.users.models import User; "
        "print(User.objects.create_user('bench', 'bench@example.com', 'bench-pass-123').pk)"
    )
    user_id = int(site.manage("shell", "-c", code).strip().splitlines()[-1])
    return Request(request.path.format(id=user_id), request.headers)


TEXTBOOK_PROFILE = "cached read, textbook peer (DRF + django-redis, -prometheus, -ratelimit)"

CASES: tuple[Case, ...] = (
    Case("bare WSGI (floor)", "bare", "/"),
    Case("django JSON view (/healthz, full middleware)", "django", "/healthz"),
    # Both on deploy/gunicorn.conf.py behind get_wsgi_application(); ours is the ordinary
    # view: an L1 hit, our limiter (a sliding-window log in Redis) and our metrics.
    Case("cached read, ours (L1 hit, our limiter and metrics)", "profile-ours",
         "/api/v1/users/{id}", setup=profile_user, peer=TEXTBOOK_PROFILE, peer_goal=1.2),
    Case(TEXTBOOK_PROFILE, "profile-textbook", "/api/v1/users/{id}", setup=profile_user),
    Case("/healthz without metrics + access-log middleware", "django-no-obs", "/healthz"),
    Case("profile from L1 (/api/v1/users/{id})", "profile-l1", "/api/v1/users/{id}",
         setup=profile_user),
    Case("profile from Redis, L1 off", "profile-redis", "/api/v1/users/{id}",
         setup=profile_user),
    Case("profile uncached (database, no Redis)", "profile-db", "/api/v1/users/{id}",
         setup=profile_user),
    Case("profile uncached, primary only", "replica-none", "/api/v1/users/{id}",
         setup=replicas.user_setup),
    Case("profile uncached, primary + replica", "replica-one", "/api/v1/users/{id}",
         setup=replicas.user_setup),
    Case("product read, primary only", "replica-none", "/api/v1/products/{id}",
         setup=replicas.product_setup),
    Case("product read, routed to the replica", "replica-one", "/api/v1/products/{id}",
         setup=replicas.product_setup),
    # DRF's throttle is left out here: under one key and a lifted limit its history list
    # grows with every request; the ratelimit section compares it at the real limit.
    Case("rate limit: trivial view, unlimited", "ratelimit-peers", "/bench/ratelimit/plain"),
    Case("rate limit: same view, ours (sliding window)", "ratelimit-peers",
         "/bench/ratelimit/ours"),
    Case("rate limit: same view, ours (GCRA)", "ratelimit-peers", "/bench/ratelimit/ours-gcra"),
    Case("rate limit: same view, django-ratelimit", "ratelimit-peers",
         "/bench/ratelimit/django-ratelimit"),
)  # fmt: skip

FLOOR = CASES[0]


def select_cases(only: str | None) -> list[Case]:
    """Return the floor, every case whose name contains ``only`` (case-insensitive), and
    the peers of those.

    Raise ValueError when ``only`` matches no case, naming the cases there are.
    """
    if not only:
        return list(CASES)
    needle = only.lower()
    matches = [case for case in CASES if needle in case.name.lower()]
    if not matches:
        names = "\n  ".join(case.name for case in CASES)
        raise ValueError(f"no case name contains {only!r}; the cases are:\n  {names}")
    wanted = {case.name for case in matches} | {case.peer for case in matches if case.peer}
    return [case for case in CASES if case is FLOOR or case.name in wanted]
