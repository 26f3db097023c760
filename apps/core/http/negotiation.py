"""Content negotiation of the API: DRF's, with the common cases answered without parsing."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request


class FastContentNegotiation(DefaultContentNegotiation):
    """Pick the first renderer at once for ``Accept: */*``, none, or its own media type.

    DRF parses and orders the Accept header on every request; for these values its
    answer is always the first renderer with that renderer's media type, so they skip
    the parsing. Anything else (a list, parameters, a format suffix or ``?format=``)
    goes through DRF's own negotiation, 406 included.
    """

    def select_renderer(
        self,
        request: Request,
        renderers: Iterable[BaseRenderer],
        format_suffix: str | None = None,
    ) -> tuple[BaseRenderer, str] | Any:
        renderers = list(renderers)
        if renderers and format_suffix is None:
            override = self.settings.URL_FORMAT_OVERRIDE
            query = str(request.META.get("QUERY_STRING", ""))
            if not override or override not in query:
                # An empty but present header is not "anything": DRF answers it 406.
                accept = request.META.get("HTTP_ACCEPT")
                first = renderers[0]
                if accept is None or accept.strip() in ("*/*", first.media_type):
                    return first, first.media_type
        return super().select_renderer(request, renderers, format_suffix)
