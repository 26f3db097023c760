from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from apps.core.cache import checks  # noqa: F401 -- registers the system check
        from apps.core.db.task_routing import connect_task_signals
        from apps.core.db.writes import install_raw_write_detector

        connection_created.connect(
            install_raw_write_detector, dispatch_uid="core-db-raw-write-detector"
        )
        connect_task_signals()
