"""Pre-rendered JSON by entity tag: the same bytes DRF renders, without rendering again."""

from __future__ import annotations

import json

import pytest
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory

from apps.core.cache import make_etag
from apps.core.http.api import RenderedByEtag

pytestmark = pytest.mark.django_db


def _negotiated(media_type: str = "application/json") -> Request:
    request = Request(APIRequestFactory().get("/api/v1/users/1"))
    request.accepted_renderer = JSONRenderer()
    request.accepted_media_type = media_type
    return request


def test_body_is_the_bytes_drf_renders_and_is_rendered_once_per_etag():
    rendered = RenderedByEtag()
    data = {"id": 7, "username": "zoë\u2028", "display_name": "", "date_joined": "2026-01-01"}
    etag = make_etag(data)

    first = rendered.response(_negotiated(), etag, data, {"ETag": etag})
    # Another document under the same tag cannot happen; if it did, the stored bytes win.
    second = rendered.response(_negotiated(), etag, {"id": 8}, {"ETag": etag})

    expected = JSONRenderer().render(data, "application/json", {})
    assert first.content == expected
    assert second.content == expected
    assert first["Content-Type"] == "application/json"
    assert first["ETag"] == etag


def test_parameterised_media_type_is_rendered_by_drf():
    data = {"id": 7}

    response = RenderedByEtag().response(
        _negotiated("application/json; indent=4"), make_etag(data), data, {}
    )

    assert isinstance(response, Response)
    assert response.data == data


def test_least_recently_used_body_leaves_first_beyond_the_bound():
    rendered = RenderedByEtag(max_entries=2)
    documents = [{"id": n} for n in range(3)]
    for document in documents:
        rendered.response(_negotiated(), make_etag(document), document, {})
    rendered.response(_negotiated(), make_etag(documents[1]), documents[1], {})

    assert list(rendered._bodies) == [make_etag(documents[2]), make_etag(documents[1])]


def test_profile_response_body_equals_drf_rendering(api_client, user):
    response = api_client.get(f"/api/v1/users/{user.pk}")
    indented = api_client.get(f"/api/v1/users/{user.pk}", HTTP_ACCEPT="application/json; indent=2")

    assert response.status_code == 200
    assert response.content == JSONRenderer().render(response.json(), "application/json", {})
    assert response["Content-Type"] == "application/json"
    assert indented.content.decode() == json.dumps(response.json(), indent=2)
