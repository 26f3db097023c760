"""Fixtures of the order tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from celery import current_app


@pytest.fixture
def eager_tasks() -> Iterator[None]:
    """Run tasks in-process, as the embedded default (no CELERY_BROKER_URL) does."""
    previous = current_app.conf.task_always_eager
    current_app.conf.task_always_eager = True
    yield
    current_app.conf.task_always_eager = previous
