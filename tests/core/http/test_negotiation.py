"""The API's content negotiation answers exactly as DRF's own does, only sooner."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer, BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from apps.core.http.negotiation import FastContentNegotiation

ACCEPT_VALUES = [
    None,
    "*/*",
    " */* ",
    "application/json",
    "application/json; indent=4",
    "application/json, text/html",
    "text/html",
    "text/html;q=0.9, application/json",
    "application/*",
    "",
    "image/png",
]


def _request(accept: str | None, query: str = "") -> Request:
    factory, url = APIRequestFactory(), f"/api/v1/users/1{query}"
    if accept is None:
        return Request(factory.get(url))
    return Request(factory.get(url, HTTP_ACCEPT=accept))


def _answer(negotiation: Any, request: Request, renderers: list[BaseRenderer]) -> Any:
    try:
        renderer, media_type = negotiation.select_renderer(request, renderers)
    except NotAcceptable:
        return "406"
    return type(renderer), media_type


@pytest.mark.parametrize("accept", ACCEPT_VALUES)
@pytest.mark.parametrize(
    "renderer_classes",
    [[JSONRenderer], [JSONRenderer, BrowsableAPIRenderer]],
    ids=["production", "debug"],
)
def test_every_accept_value_gets_the_answer_drf_gives(accept, renderer_classes):
    renderers = [cls() for cls in renderer_classes]

    fast = _answer(FastContentNegotiation(), _request(accept), renderers)

    assert fast == _answer(DefaultContentNegotiation(), _request(accept), renderers)


def test_any_or_absent_accept_selects_the_first_renderer_and_its_media_type():
    renderers: list[BaseRenderer] = [JSONRenderer(), BrowsableAPIRenderer()]

    for accept in (None, "*/*", "application/json"):
        renderer, media_type = FastContentNegotiation().select_renderer(_request(accept), renderers)
        assert renderer is renderers[0]
        assert media_type == "application/json"


def test_format_query_parameter_still_selects_by_format():
    renderers: list[BaseRenderer] = [JSONRenderer(), BrowsableAPIRenderer()]

    renderer, media_type = FastContentNegotiation().select_renderer(
        _request("*/*", "?format=api"), renderers
    )

    assert isinstance(renderer, BrowsableAPIRenderer)
    assert media_type == "text/html"


def test_api_answers_an_unsatisfiable_accept_header_406_in_the_error_shape(api_client, user):
    response = api_client.get(f"/api/v1/users/{user.pk}", HTTP_ACCEPT="image/png")

    assert response.status_code == 406
    assert response.json()["detail"] == "Could not satisfy the request Accept header."
