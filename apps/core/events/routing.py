"""Which tasks consume each event type, and on which queue each runs.

Apps declare their event types (payload fields and consumer tasks) and register them
from ``AppConfig.ready()`` with ``register_events``. The outbox relay calls every
consumer as ``task(**consumer_kwargs(event_id, payload))``; Celery routes the tasks
to their queues through ``route_task`` (named in CELERY_TASK_ROUTES).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class Consumer:
    """A task consuming an event type, and its queue (the name after EVENTS_QUEUE_PREFIX)."""

    task: str
    queue: str


@dataclass(frozen=True)
class EventType:
    """An event type: its name, the fields of every payload, and the tasks consuming it."""

    name: str
    fields: tuple[str, ...]
    consumers: tuple[Consumer, ...] = ()


class EventRegistry:
    """The event types of this process, by name, and the queue of every consumer task."""

    def __init__(self) -> None:
        self._types: dict[str, EventType] = {}
        self._queues: dict[str, str] = {}

    def register(self, *event_types: EventType) -> None:
        """Add event types; raise ImproperlyConfigured when one contradicts another."""
        for event_type in event_types:
            known = self._types.get(event_type.name)
            if known is not None and known != event_type:
                raise ImproperlyConfigured(f"Event type {event_type.name!r} is declared twice.")
            for consumer in event_type.consumers:
                queue = self._queues.get(consumer.task, consumer.queue)
                if queue != consumer.queue:
                    raise ImproperlyConfigured(
                        f"Task {consumer.task!r} is routed to {queue!r} and {consumer.queue!r}."
                    )
            self._types[event_type.name] = event_type
            self._queues.update((c.task, c.queue) for c in event_type.consumers)

    def get(self, name: str) -> EventType | None:
        """Return the event type of this name, or None when no app declared it."""
        return self._types.get(name)

    def queue_of(self, task_name: str) -> str | None:
        """Return the queue of a consumer task, or None for a task that consumes no event."""
        return self._queues.get(task_name)

    def __iter__(self) -> Iterator[EventType]:
        return iter(list(self._types.values()))


def consumer_kwargs(event_id: UUID | str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """Return the keyword arguments every consumer of an event is called with."""
    return {"event_id": str(event_id), **payload}


def route_task(name: str, *_: Any, **__: Any) -> dict[str, str] | None:
    """Route a consumer task to its queue (a Celery router); other tasks take the default."""
    queue = events.queue_of(name)
    if queue is None:
        return None
    return {"queue": f"{settings.EVENTS_QUEUE_PREFIX}.{queue}"}


# The process's registry, filled by the apps' ready().
events = EventRegistry()
register_events = events.register
