"""DATABASE_URL in libpq's multi-host forms, as the settings turn it into DATABASES."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from apps.core.db.settings import postgres_database, primary_url


def _options(url: str) -> dict[str, object]:
    database = postgres_database(primary_url(url), conn_max_age=0, pool_min=0, pool_max=0)
    return {key: database[key] for key in ("HOST", "PORT", "NAME", "USER", "PASSWORD")} | {
        key: database["OPTIONS"].get(key) for key in ("host", "port", "target_session_attrs")
    }


def test_the_query_form_passes_hosts_and_ports_to_libpq() -> None:
    url = "postgres://u:p@/db?host=h1,h2&port=5432,5433&target_session_attrs=read-write"

    assert _options(url) == {
        "HOST": "", "PORT": "", "NAME": "db", "USER": "u", "PASSWORD": "p",
        "host": "h1,h2", "port": "5432,5433", "target_session_attrs": "read-write",
    }  # fmt: skip


def test_the_authority_form_is_rewritten_into_the_query_form() -> None:
    url = "postgres://u:p@h1:5432,h2:5433/db?sslmode=disable"

    assert primary_url(url) == (
        "postgres://u:p@/db?sslmode=disable&host=h1,h2&port=5432,5433"
        "&target_session_attrs=read-write"
    )
    assert _options(url)["host"] == "h1,h2"


def test_several_hosts_without_session_attrs_ask_for_the_writable_one() -> None:
    assert _options("postgres://u@/db?host=h1,h2&port=1")["target_session_attrs"] == "read-write"


def test_a_given_target_session_attrs_is_kept() -> None:
    url = "postgres://u@/db?host=h1,h2&target_session_attrs=primary"

    assert _options(url)["target_session_attrs"] == "primary"


def test_a_host_without_its_port_gets_the_default_port() -> None:
    assert _options("postgres://u@h1:6000,h2/db")["port"] == "6000,5432"


def test_ipv6_hosts_lose_their_brackets() -> None:
    assert _options("postgres://u@[::1]:6000,[::2]:6001/db")["host"] == "::1,::2"


def test_a_single_host_url_is_left_as_it_is() -> None:
    assert primary_url("postgres://u:p@h:5432/db") == "postgres://u:p@h:5432/db"


def test_hosts_and_ports_that_do_not_pair_up_are_refused() -> None:
    with pytest.raises(ImproperlyConfigured, match="3 hosts but 2 ports"):
        primary_url("postgres://u@/db?host=a,b,c&port=1,2")


def test_hosts_in_both_places_are_refused() -> None:
    with pytest.raises(ImproperlyConfigured, match="not both"):
        primary_url("postgres://u@h1,h2/db?host=h3")
