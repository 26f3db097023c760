from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from apps.core.db.counters import install_counter
        from apps.core.db.task_routing import connect_task_signals

        connection_created.connect(install_counter, dispatch_uid="core-db-query-counter")
        connect_task_signals()
