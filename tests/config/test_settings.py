"""The environment-driven settings: production refusals, the deploy check, and overrides."""

from __future__ import annotations

import re
import secrets

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import parse_ratelimit_overrides
from tests.config.subprocess_env import embedded_environment, manage

HTTPS_ENVIRONMENT = {
    "DJANGO_DEBUG": "false",
    "DJANGO_ALLOWED_HOSTS": "example.com",
    "DJANGO_SECURE_SSL_REDIRECT": "true",
    "DJANGO_SECURE_HSTS_SECONDS": "31536000",
    "DJANGO_SECURE_HSTS_PRELOAD": "true",
}
NO_ISSUES = "System check identified no issues (0 silenced).\n"


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def test_production_mode_without_a_secret_key_refuses_to_start(tmp_path):
    env = embedded_environment(tmp_path / "db.sqlite3", DJANGO_DEBUG="false")

    result = manage(env, "check")

    assert result.returncode == 1
    assert last_line(result.stderr) == (
        "django.core.exceptions.ImproperlyConfigured: DJANGO_SECRET_KEY must be set when "
        "DJANGO_DEBUG is false (production mode)."
    )
    assert result.stdout == ""


def test_deploy_check_passes_with_an_https_production_environment(tmp_path):
    env = embedded_environment(
        tmp_path / "db.sqlite3", DJANGO_SECRET_KEY=secrets.token_urlsafe(45), **HTTPS_ENVIRONMENT
    )
    assert len(env["DJANGO_SECRET_KEY"]) == 60

    result = manage(env, "check", "--deploy", "--fail-level", "WARNING")

    assert (result.returncode, result.stdout, result.stderr) == (0, NO_ISSUES, "")


def test_deploy_check_fails_without_https_redirect_and_hsts(tmp_path):
    env = embedded_environment(
        tmp_path / "db.sqlite3",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(45),
        DJANGO_DEBUG="false",
        DJANGO_ALLOWED_HOSTS="example.com",
    )

    result = manage(env, "check", "--deploy", "--fail-level", "WARNING")

    assert result.returncode == 1
    assert "(security.W004)" in result.stderr
    assert "(security.W008)" in result.stderr


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            "bogus",
            "RATELIMIT_OVERRIDES: 'bogus' is not of the form policy=LIMIT/SECONDS "
            "(e.g. api=100/60).",
        ),
        ("nope=1/60", "RATELIMIT_OVERRIDES: unknown policy 'nope' (known: api, login)."),
        ("api=0/60", "RATELIMIT_OVERRIDES: 'api=0/60' needs a limit and a window of at least 1."),
    ],
)
def test_bad_ratelimit_overrides_refuse_to_start(tmp_path, overrides, message):
    env = embedded_environment(tmp_path / "db.sqlite3", RATELIMIT_OVERRIDES=overrides)

    result = manage(env, "check")

    assert result.returncode == 1
    assert last_line(result.stderr) == f"django.core.exceptions.ImproperlyConfigured: {message}"


def test_valid_ratelimit_overrides_are_accepted_into_settings(tmp_path):
    env = embedded_environment(tmp_path / "db.sqlite3", RATELIMIT_OVERRIDES="api=100/60,login=5/60")

    checked = manage(env, "check")
    printed = manage(
        env,
        "shell",
        "--no-imports",
        "-c",
        "from django.conf import settings; print(settings.RATELIMIT_OVERRIDES)",
    )

    assert (checked.returncode, checked.stdout) == (0, NO_ISSUES)
    assert (printed.returncode, printed.stdout) == (0, "{'api': (100, 60), 'login': (5, 60)}\n")


def test_a_debug_flag_that_is_not_a_boolean_refuses_to_start(tmp_path):
    env = embedded_environment(tmp_path / "db.sqlite3", DJANGO_DEBUG="maybe")

    result = manage(env, "check")

    assert result.returncode == 1
    assert last_line(result.stderr) == (
        "django.core.exceptions.ImproperlyConfigured: "
        "DJANGO_DEBUG='maybe' is not a boolean (use true or false)."
    )


def test_parse_ratelimit_overrides_reads_every_policy():
    assert parse_ratelimit_overrides("api=100/60,login=5/60") == {
        "api": (100, 60),
        "login": (5, 60),
    }


def test_parse_ratelimit_overrides_of_nothing_is_empty():
    assert parse_ratelimit_overrides("") == {}


def test_parse_ratelimit_overrides_ignores_blanks_around_pairs():
    assert parse_ratelimit_overrides(" login=5/60 , ,api=7/1 ") == {"login": (5, 60), "api": (7, 1)}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("bogus", "RATELIMIT_OVERRIDES: 'bogus' is not of the form policy=LIMIT/SECONDS"),
        ("api=100", "RATELIMIT_OVERRIDES: 'api=100' is not of the form policy=LIMIT/SECONDS"),
        ("api=-1/60", "RATELIMIT_OVERRIDES: 'api=-1/60' is not of the form policy=LIMIT/SECONDS"),
        ("api=1.5/60", "RATELIMIT_OVERRIDES: 'api=1.5/60' is not of the form policy=LIMIT/"),
        ("API=1/60", "RATELIMIT_OVERRIDES: 'API=1/60' is not of the form policy=LIMIT/SECONDS"),
        ("nope=1/60", "RATELIMIT_OVERRIDES: unknown policy 'nope' (known: api, login)."),
        ("api=0/60", "RATELIMIT_OVERRIDES: 'api=0/60' needs a limit and a window of at least 1."),
        ("api=5/0", "RATELIMIT_OVERRIDES: 'api=5/0' needs a limit and a window of at least 1."),
        (
            "api=100/60,login=five/60",
            "RATELIMIT_OVERRIDES: 'login=five/60' is not of the form policy=LIMIT/SECONDS",
        ),
    ],
)
def test_parse_ratelimit_overrides_refuses_bad_pairs_by_name(raw, message):
    with pytest.raises(ImproperlyConfigured, match=f"^{re.escape(message)}"):
        parse_ratelimit_overrides(raw)


_TASK_LOGGERS = (
    "import logging; "
    "print([logging.getLogger(n).isEnabledFor(logging.INFO) "
    "for n in ('celery.app.trace', 'celery.worker.strategy', 'apps.orders.events')])"
)


def test_celery_logs_no_line_per_task_unless_asked_while_the_consumers_still_log(tmp_path):
    quiet = manage(
        embedded_environment(tmp_path / "a.sqlite3"), "shell", "--no-imports", "-c", _TASK_LOGGERS
    )
    asked = manage(
        embedded_environment(tmp_path / "b.sqlite3", CELERY_TASK_LOG_LEVEL="INFO"),
        "shell",
        "--no-imports",
        "-c",
        _TASK_LOGGERS,
    )

    assert (quiet.returncode, quiet.stdout) == (0, "[False, False, True]\n")
    assert (asked.returncode, asked.stdout) == (0, "[True, True, True]\n")
