"""The WSGI shortcut answers L1 hits exactly as Django's handler does, and nothing else.

Each test calls the WSGI application as a server would (``start_response``, the body
joined, ``close()``), next to Django's handler serving the same request. Whether a
request went through Django's handler shows in ``request_started``: the shortcut does
not send it for a fast answer.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import pytest
from django.conf import settings as django_settings
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from prometheus_client import REGISTRY

from apps.users.fastpath import FAST_PATH_MIDDLEWARE
from apps.users.fastpath_wsgi import PublicProfileFastPathApplication
from apps.users.models import User
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

# Header fields whose value differs between any two responses.
PER_REQUEST = {"X-Request-ID", "RateLimit"}
ENDPOINT = "/api/v1/users/{id}"


@dataclass
class Served:
    """What a WSGI server got for one request."""

    status: str
    headers: list[tuple[str, str]]
    body: bytes
    # The signals of Django's request cycle sent while serving it.
    started: int
    finished: int

    @property
    def fields(self) -> dict[str, str]:
        """Return the header fields that do not change from one request to the next."""
        return {name: value for name, value in self.headers if name not in PER_REQUEST}

    def __getitem__(self, name: str) -> str:
        (value,) = [v for n, v in self.headers if n.lower() == name.lower()]
        return value

    @property
    def through_django(self) -> bool:
        return self.started == 1


class Cycle:
    """Counts of Django's request-cycle signals."""

    def __init__(self) -> None:
        self.started = 0
        self.finished = 0

    def on_started(self, **kwargs: Any) -> None:
        self.started += 1

    def on_finished(self, **kwargs: Any) -> None:
        self.finished += 1


@pytest.fixture
def cycle() -> Iterator[Cycle]:
    counts = Cycle()
    request_started.connect(counts.on_started, dispatch_uid="test-fastpath-wsgi-started")
    request_finished.connect(counts.on_finished, dispatch_uid="test-fastpath-wsgi-finished")
    yield counts
    request_started.disconnect(dispatch_uid="test-fastpath-wsgi-started")
    request_finished.disconnect(dispatch_uid="test-fastpath-wsgi-finished")


@pytest.fixture
def user() -> User:
    return cast(User, UserFactory(display_name="Ada"))


@pytest.fixture
def app(node: Any) -> PublicProfileFastPathApplication:
    """Return the entry point of config/wsgi.py, on a handler of the current settings."""
    application = PublicProfileFastPathApplication(WSGIHandler())
    # The once-a-second Django finish is tested on its own.
    application._next_django_finish = float("inf")
    return application


def _handler(settings: Any, *, fast_path: bool) -> WSGIHandler:
    """Return Django's handler, with or without the fast-path middleware."""
    if not fast_path:
        settings.MIDDLEWARE = [m for m in django_settings.MIDDLEWARE if m != FAST_PATH_MIDDLEWARE]
    return WSGIHandler()


def _environ(path: str, *, method: str = "GET", query: str = "", **meta: str) -> dict[str, Any]:
    """Return the environ a WSGI server passes for a request from 127.0.0.1."""
    return {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SCRIPT_NAME": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "testserver",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        **meta,
    }


def _serve(application: Any, cycle: Cycle, path: str, **request: Any) -> Served:
    before = (cycle.started, cycle.finished)
    got: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        got.update(status=status, headers=headers)

    result = application(_environ(path, **request), start_response)
    try:
        body = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return Served(
        got["status"],
        got["headers"],
        body,
        cycle.started - before[0],
        cycle.finished - before[1],
    )


def _remaining(served: Served) -> int:
    return int(served["RateLimit"].split(";r=")[1].split(";")[0])


def test_an_l1_hit_is_answered_without_djangos_handler_exactly_as_it_answers(
    app, cycle, user, settings
):
    path = f"/api/v1/users/{user.pk}"
    first = _serve(app, cycle, path)  # an L1 miss: the handler, and the view fills L1
    fast = _serve(app, cycle, path)
    in_django = _serve(_handler(settings, fast_path=True), cycle, path)
    slow = _serve(_handler(settings, fast_path=False), cycle, path)

    assert first.through_django
    assert not fast.through_django
    assert (fast.started, fast.finished) == (0, 0)
    assert in_django.through_django
    assert slow.through_django
    assert fast.status == in_django.status == slow.status == "200 OK"
    assert fast.body == in_django.body == slow.body
    assert json.loads(fast.body)["display_name"] == "Ada"
    # The fast-path middleware's own answer, field for field and in the same order.
    assert [n for n, _ in fast.headers] == [n for n, _ in in_django.headers]
    assert fast.fields == in_django.fields == slow.fields
    assert {
        "ETag",
        "Cache-Control",
        "Content-Type",
        "Content-Length",
        "Allow",
        "X-Frame-Options",
        "X-Content-Type-Options",
        "Referrer-Policy",
        "RateLimit-Policy",
        "RateLimit",
        "X-Request-ID",
    } <= {name for name, _ in fast.headers}
    assert fast["Content-Length"] == str(len(fast.body))
    assert _remaining(slow) == _remaining(in_django) - 1 == _remaining(fast) - 2


def test_if_none_match_gets_the_304_from_the_shortcut(app, cycle, user, settings):
    path = f"/api/v1/users/{user.pk}"
    etag = _serve(app, cycle, path)["ETag"]

    fast = _serve(app, cycle, path, HTTP_IF_NONE_MATCH=etag)
    slow = _serve(_handler(settings, fast_path=False), cycle, path, HTTP_IF_NONE_MATCH=etag)

    assert not fast.through_django
    assert fast.status == slow.status == "304 Not Modified"
    assert fast.body == slow.body == b""
    assert fast.fields == slow.fields
    assert "Content-Type" not in fast.fields


def test_a_fast_answer_is_counted_timed_and_logged_under_its_route(app, cycle, user, caplog):
    path = f"/api/v1/users/{user.pk}"
    labels = {"method": "GET", "endpoint": ENDPOINT, "status": "200"}
    _serve(app, cycle, path)
    count = REGISTRY.get_sample_value("http_requests_total", labels) or 0.0
    timed = (
        REGISTRY.get_sample_value(
            "http_request_duration_seconds_count", {"method": "GET", "endpoint": ENDPOINT}
        )
        or 0.0
    )

    caplog.clear()
    fast = _serve(app, cycle, path, HTTP_X_REQUEST_ID="wsgi-fast-0001")

    assert not fast.through_django
    assert fast["X-Request-ID"] == "wsgi-fast-0001"
    assert REGISTRY.get_sample_value("http_requests_total", labels) == count + 1
    assert (
        REGISTRY.get_sample_value(
            "http_request_duration_seconds_count", {"method": "GET", "endpoint": ENDPOINT}
        )
        == timed + 1
    )
    (record,) = [r for r in caplog.records if r.name == "highscale.access"]
    assert record.getMessage() == f"GET {path} 200"
    assert record.__dict__["request_id"] == "wsgi-fast-0001"
    assert record.__dict__["endpoint"] == ENDPOINT
    assert record.__dict__["status"] == 200
    assert record.__dict__["method"] == "GET"


def test_a_fast_answer_without_a_request_id_gets_a_new_one(app, cycle, user):
    path = f"/api/v1/users/{user.pk}"
    _serve(app, cycle, path)

    ids = [_serve(app, cycle, path, HTTP_X_REQUEST_ID="bad id!")["X-Request-ID"] for _ in "ab"]
    ids.append(_serve(app, cycle, path)["X-Request-ID"])

    assert len(set(ids)) == 3
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


@pytest.mark.parametrize(
    ("request_kwargs", "status"),
    [
        ({"HTTP_AUTHORIZATION": "Token nope"}, "401 Unauthorized"),
        ({"HTTP_COOKIE": f"{django_settings.SESSION_COOKIE_NAME}=nope"}, "200 OK"),
        ({"query": "format=json"}, "200 OK"),
        ({"method": "POST"}, "405 Method Not Allowed"),
        ({"method": "HEAD"}, "200 OK"),
        ({"HTTP_ACCEPT": "text/html"}, "406 Not Acceptable"),
        ({"HTTP_HOST": "evil.example"}, "400 Bad Request"),
    ],
)
def test_requests_the_fast_path_does_not_answer_go_through_django_unchanged(
    app, cycle, user, settings, request_kwargs, status
):
    path = f"/api/v1/users/{user.pk}"
    _serve(app, cycle, path)  # L1 holds the profile

    served = _serve(app, cycle, path, **request_kwargs)
    slow = _serve(_handler(settings, fast_path=False), cycle, path, **request_kwargs)

    assert served.through_django
    assert served.finished == 1
    assert served.status == slow.status == status
    assert served.body == slow.body
    assert served.fields.keys() == slow.fields.keys()


def test_an_l1_miss_and_an_unknown_id_go_through_django(app, cycle, user, node):
    path = f"/api/v1/users/{user.pk}"
    miss = _serve(app, cycle, path)
    node.l1.clear()
    cleared = _serve(app, cycle, path)
    unknown = _serve(app, cycle, "/api/v1/users/999999999")
    hit = _serve(app, cycle, path)

    assert [s.through_django for s in (miss, cleared, unknown, hit)] == [True, True, True, False]
    assert [s.status[:3] for s in (miss, cleared, unknown, hit)] == ["200", "200", "404", "200"]
    assert json.loads(unknown.body) == {"detail": "User not found."}
    assert miss.body == cleared.body == hit.body
    # Each request counted once, whichever way it went.
    remaining = [_remaining(s) for s in (miss, cleared, unknown, hit)]
    assert remaining == list(range(remaining[0], remaining[0] - 4, -1))


def test_an_id_too_long_for_an_integer_is_the_routes_404(app, cycle):
    served = _serve(app, cycle, "/api/v1/users/" + "9" * 5000)

    assert served.through_django
    assert served.status == "404 Not Found"


def test_a_refused_request_gets_the_views_429_in_a_whole_django_cycle(
    app, cycle, user, settings, caplog
):
    settings.RATELIMIT_OVERRIDES = {"api": (2, 60)}
    settings.RATELIMIT_KEY_PREFIX = f"rl-fastpath-wsgi-{user.pk}"
    path = f"/api/v1/users/{user.pk}"
    labels = {"method": "GET", "endpoint": ENDPOINT, "status": "429"}
    allowed = [_serve(app, cycle, path) for _ in range(2)]
    refusals = REGISTRY.get_sample_value("http_requests_total", labels) or 0.0

    caplog.clear()
    refused = _serve(app, cycle, path)
    records = list(caplog.records)
    refusals_after = REGISTRY.get_sample_value("http_requests_total", labels)
    slow = _serve(_handler(settings, fast_path=False), cycle, path)

    assert [a.status for a in allowed] == ["200 OK", "200 OK"]
    assert not allowed[1].through_django
    # Claimed, then handed to the view: Django's cycle was started before the view ran.
    assert (refused.started, refused.finished) == (1, 1)
    assert refused.status == slow.status == "429 Too Many Requests"
    assert refused.body == slow.body
    assert refused.fields.keys() == slow.fields.keys()
    assert int(refused["Retry-After"]) >= 1
    # Counted once: the fast path's decision is the one the view reports.
    assert refused["RateLimit"].startswith('"default";r=0;')
    assert refusals_after == refusals + 1
    access = [r for r in records if r.name == "highscale.access"]
    assert [r.__dict__["status"] for r in access] == [429]
    # Django's handler logs a 4xx response; so does the shortcut's hand-over.
    assert [r.getMessage() for r in records if r.name == "django.request"] == [
        f"Too Many Requests: {path}"
    ]


def test_one_fast_answer_a_second_is_finished_the_django_way(app, cycle, user):
    path = f"/api/v1/users/{user.pk}"
    _serve(app, cycle, path)

    app._next_django_finish = 0.0
    due = _serve(app, cycle, path)
    next_one = _serve(app, cycle, path)

    assert (due.started, due.finished) == (0, 1)
    assert (next_one.started, next_one.finished) == (0, 0)
    assert due.body == next_one.body
    assert due.fields == next_one.fields


def test_the_shortcut_is_off_behind_a_middleware_it_does_not_know(
    node, cycle, user, settings, caplog
):
    settings.MIDDLEWARE = ["django.middleware.gzip.GZipMiddleware", *django_settings.MIDDLEWARE]
    application = PublicProfileFastPathApplication(WSGIHandler())
    path = f"/api/v1/users/{user.pk}"

    with caplog.at_level(logging.WARNING, logger="apps.users.fastpath_wsgi"):
        served = [_serve(application, cycle, path) for _ in range(2)]

    assert [s.through_django for s in served] == [True, True]
    assert [s.status for s in served] == ["200 OK", "200 OK"]
    assert served[0].body == served[1].body
    (warning,) = [r for r in caplog.records if r.name == "apps.users.fastpath_wsgi"]
    assert "GZipMiddleware" in warning.getMessage()


def test_config_wsgi_serves_through_the_shortcut():
    from config import wsgi

    assert isinstance(wsgi.application, PublicProfileFastPathApplication)
    assert wsgi.application.handler is wsgi.django_application


def test_a_claim_that_fails_leaves_the_request_to_djangos_handler(app, cycle, user, monkeypatch):
    path = f"/api/v1/users/{user.pk}"
    _serve(app, cycle, path)

    def broken(request: Any) -> None:
        raise RuntimeError("claim failed")

    monkeypatch.setattr(app.fast_path, "claim", broken)
    served = _serve(app, cycle, path)

    # The handler's own fast-path middleware answers it, in Django's cycle.
    assert served.through_django
    assert served.status == "200 OK"
    assert json.loads(served.body)["display_name"] == "Ada"


def test_a_path_that_is_not_ascii_reaches_django_as_it_came(node):
    # PEP 3333: PATH_INFO holds the URL's bytes decoded as ISO-8859-1 (here U+0100 in UTF-8).
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/api/v1/users/\u00c4\u0080",
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "HTTP_HOST": "testserver",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
        "SERVER_PROTOCOL": "HTTP/1.1",
    }
    statuses: list[str] = []

    application = PublicProfileFastPathApplication(WSGIHandler())
    body = b"".join(application(environ, lambda status, headers, *rest: statuses.append(status)))

    assert statuses == ["404 Not Found"]
    assert b"detail" in body
