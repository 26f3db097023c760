"""Render the metrics of this server (every worker process) for a scrape."""

from __future__ import annotations

from prometheus_client import REGISTRY
from prometheus_client.exposition import choose_encoder

from apps.observability.multiproc import collect_registry, consistent_view, multiproc_dir


def render_metrics(accept: str | None) -> tuple[bytes, str]:
    """Return the exposition body and its content type for an ``Accept`` header.

    With ``PROMETHEUS_MULTIPROC_DIR`` set the files of every process (and the archives
    of dead ones) are added up, so any worker answers with the whole server's totals;
    without it this process's own registry is the server.
    """
    encoder, content_type = choose_encoder(accept or "")
    directory = multiproc_dir()
    if directory is None:
        return encoder(REGISTRY), content_type
    with consistent_view(directory):
        return encoder(collect_registry(directory)), content_type
