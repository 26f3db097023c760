from django.apps import AppConfig


class ObservabilityConfig(AppConfig):
    name = "apps.observability"
    label = "observability"
    verbose_name = "Observability"

    def ready(self) -> None:
        from apps.observability import celery_signals, scrape_gauges

        celery_signals.connect()
        scrape_gauges.register()
