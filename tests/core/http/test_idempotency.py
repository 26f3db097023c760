"""run_idempotent and its helpers, called directly against PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import pytest

from apps.core.http.errors import Conflict, InvalidInput, Unprocessable
from apps.core.http.idempotency import (
    IdempotentResult,
    request_fingerprint,
    run_idempotent,
    validate_idempotency_key,
)
from apps.core.models import IdempotencyRecord
from apps.orders.models import Product
from apps.users.models import User
from tests.factories import UserFactory

SCOPE = "tests.scope"
FINGERPRINT = request_fingerprint({"items": [1]})


class Recorder:
    """An action that counts its calls and returns a fixed response."""

    def __init__(self, status: int = 201, body: Any = None) -> None:
        self.calls = 0
        self.status = status
        self.body = body if body is not None else {"id": 1, "items": ["a", "b"]}

    def __call__(self) -> tuple[int, Any]:
        self.calls += 1
        return self.status, self.body


def run(
    owner_id: int,
    action: Callable[[], tuple[int, Any]],
    *,
    key: str = "k",
    fingerprint: str = FINGERPRINT,
) -> IdempotentResult:
    return run_idempotent(
        owner_id=owner_id, scope=SCOPE, key=key, fingerprint=fingerprint, action=action
    )


def test_first_call_runs_the_action_and_stores_its_response(user):
    action = Recorder(status=201, body={"id": 7, "total": "1.00"})

    result = run(user.pk, action)

    assert result == IdempotentResult(
        status=201, body=b'{"id":7,"total":"1.00"}', content_type="application/json", replayed=False
    )
    assert action.calls == 1
    record = IdempotencyRecord.objects.get()
    assert (record.owner_id, record.scope, record.key, record.request_hash) == (
        user.pk,
        SCOPE,
        "k",
        FINGERPRINT,
    )
    assert (record.response_status, bytes(record.response_body), record.response_content_type) == (
        201,
        b'{"id":7,"total":"1.00"}',
        "application/json",
    )


def test_replay_returns_the_first_bodys_bytes_in_their_key_order(user):
    # jsonb would hand these keys back sorted by length, then bytes: {"a":..,"zz":..}.
    run(user.pk, Recorder(body={"zz": 1, "a": [{"y": 2, "x": 1}], "é": "ü"}))

    replay = run(user.pk, Recorder())

    assert replay.body == '{"zz":1,"a":[{"y":2,"x":1}],"é":"ü"}'.encode()
    assert (replay.content_type, replay.replayed) == ("application/json", True)


def test_second_call_replays_the_first_response_without_running_the_action(user):
    first = run(user.pk, Recorder(status=201, body={"id": 7}))
    second_action = Recorder(status=200, body={"id": 8})

    second = run(user.pk, second_action)

    assert second == IdempotentResult(
        status=first.status, body=first.body, content_type=first.content_type, replayed=True
    )
    assert second_action.calls == 0
    assert IdempotencyRecord.objects.count() == 1


def test_same_key_with_another_fingerprint_is_unprocessable(user):
    run(user.pk, Recorder())
    action = Recorder()

    with pytest.raises(Unprocessable):
        run(user.pk, action, fingerprint=request_fingerprint({"items": [2]}))

    assert action.calls == 0
    assert IdempotencyRecord.objects.get().request_hash == FINGERPRINT


def test_failing_action_releases_the_key_and_commits_nothing(user):
    def fail() -> tuple[int, Any]:
        Product.objects.create(sku="ROLLED-BACK", name="never", price="1.00")
        raise InvalidInput("refused")

    with pytest.raises(InvalidInput, match="refused"):
        run(user.pk, fail)

    assert IdempotencyRecord.objects.exists() is False
    assert Product.objects.filter(sku="ROLLED-BACK").exists() is False
    # The key is free again, for any body.
    action = Recorder(body={"id": 3})
    result = run(user.pk, action, fingerprint=request_fingerprint({"fixed": True}))
    assert (result.replayed, action.calls) == (False, 1)


def test_keys_are_separate_per_owner_and_per_scope(user):
    other = cast(User, UserFactory())
    mine, theirs, elsewhere = (
        Recorder(body={"n": 1}),
        Recorder(body={"n": 2}),
        Recorder(body={"n": 3}),
    )

    results = [
        run(user.pk, mine),
        run(other.pk, theirs),
        run_idempotent(
            owner_id=user.pk,
            scope="tests.other",
            key="k",
            fingerprint=FINGERPRINT,
            action=elsewhere,
        ),
    ]

    assert [(r.body, r.replayed) for r in results] == [
        (b'{"n":1}', False),
        (b'{"n":2}', False),
        (b'{"n":3}', False),
    ]
    assert IdempotencyRecord.objects.count() == 3


def test_fingerprint_ignores_key_order_but_not_values():
    assert request_fingerprint({"a": 1, "b": [{"x": 1, "y": 2}]}) == request_fingerprint(
        {"b": [{"y": 2, "x": 1}], "a": 1}
    )
    assert request_fingerprint({"a": 1}) != request_fingerprint({"a": 2})
    assert request_fingerprint({"items": [1, 2]}) != request_fingerprint({"items": [2, 1]})


def test_valid_key_is_returned_stripped():
    assert validate_idempotency_key("  abc-123  ") == "abc-123"
    assert validate_idempotency_key("k" * 255) == "k" * 255


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (None, "This header is required."),
        ("", "This header is required."),
        ("   ", "This header is required."),
        ("k" * 256, "Use at most 255 printable characters."),
        ("bad\x00key", "Use at most 255 printable characters."),
    ],
)
def test_missing_or_malformed_key_is_invalid_input(raw, message):
    with pytest.raises(InvalidInput) as raised:
        validate_idempotency_key(raw)

    assert raised.value.errors == {"Idempotency-Key": [message]}


@pytest.mark.django_db(transaction=True)
def test_key_held_by_a_running_request_conflicts_at_once_and_replays_after_it_commits():
    import threading

    from django.db import connection

    user = cast(User, UserFactory())
    inside, release = threading.Event(), threading.Event()
    first: list[IdempotentResult] = []

    def slow_action() -> tuple[int, Any]:
        inside.set()
        assert release.wait(10)
        return 201, {"id": 11}

    def first_request() -> None:
        try:
            first.append(run(user.pk, slow_action))
        finally:
            connection.close()

    thread = threading.Thread(target=first_request)
    thread.start()
    try:
        assert inside.wait(10)
        # Nothing of the first request is committed yet, and the second does not wait.
        assert IdempotencyRecord.objects.exists() is False
        second_action = Recorder()
        with pytest.raises(Conflict):
            run(user.pk, second_action)
        assert second_action.calls == 0
    finally:
        release.set()
        thread.join(10)

    assert first == [
        IdempotentResult(
            status=201, body=b'{"id":11}', content_type="application/json", replayed=False
        )
    ]
    third = run(user.pk, Recorder(body={"id": 12}))
    assert third == IdempotentResult(
        status=201, body=b'{"id":11}', content_type="application/json", replayed=True
    )
