"""The project's WSGI app with its URLconf loaded, for a preloading gunicorn (bench only).

Django imports the URLconf, and with it every view module, on a process's first
request. Under ``--max-requests 1`` every request is a first request, so without this
the metrics section would time Django's imports, not the scrape.
"""

from django.urls import get_resolver, resolve

from config.wsgi import application

get_resolver().url_patterns  # noqa: B018 -- evaluated for its imports
resolve("/metrics")
resolve("/healthz")

__all__ = ["application"]
