from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "apps.orders"
    label = "orders"
    verbose_name = "Orders"

    def ready(self) -> None:
        from apps.core.events.routing import register_events
        from apps.orders.events import ORDER_EVENTS

        register_events(*ORDER_EVENTS)
        # Register the consumer tasks in every process, not only in workers (where Celery
        # autodiscovers them): without a broker they run in-process from the outbox.
        from apps.orders import tasks  # noqa: F401 -- imported for its registrations
