"""Policies are declared in settings and refuse to start when malformed."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from apps.ratelimit.policies import get_policy, validate_policies


def test_contract_policies_are_declared_as_the_contract_says():
    api, login = get_policy("api"), get_policy("login")

    assert (api.limit, api.window, api.scope, api.fail_open, api.label) == (
        100,
        60,
        "user_or_ip",
        True,
        "default",
    )
    assert (login.limit, login.window, login.scope, login.fail_open, login.label) == (
        5,
        60,
        "ip_username",
        False,
        "login",
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"limit": 1, "window": 1, "algorithm": "fixed"}, "algorithm 'fixed' is not one of"),
        ({"limit": 0, "window": 1}, "must be at least 1"),
        ({"limit": 1, "window": 1, "scope": "everyone"}, "scope 'everyone' is neither"),
        ({"limit": 1, "window": 1, "rate": 5}, "unexpected keyword argument 'rate'"),
    ],
)
def test_a_malformed_policy_stops_the_process_naming_it(set_policy, config, message):
    set_policy("broken", **config)

    with pytest.raises(ImproperlyConfigured, match="RATELIMIT_POLICIES\\['broken'\\]") as excinfo:
        validate_policies()

    assert message in str(excinfo.value)


def test_an_undeclared_policy_is_refused():
    with pytest.raises(ImproperlyConfigured, match="'nope' is not in RATELIMIT_POLICIES"):
        get_policy("nope")


def test_an_environment_rate_scales_a_fixed_burst(set_policy, settings):
    set_policy("bursty", limit=100, window=60, burst=20)
    settings.RATELIMIT_OVERRIDES = {"bursty": (200, 60)}

    assert get_policy("bursty").effective_burst == 40


def test_resolved_policy_is_reused_until_a_rate_limit_setting_changes(settings):
    first = get_policy("api")

    assert get_policy("api") is first
    settings.RATELIMIT_OVERRIDES = {"api": (7, 30)}
    changed = get_policy("api")

    assert (changed.limit, changed.window) == (7, 30)
    assert (first.limit, first.window) == (100, 60)
