"""Bench-only settings: the textbook Django project that highscale is compared with.

What a Django team would write without highscale's request-path work, on the same
models, database settings and gunicorn config (``loadtests.bench.textbook_urls``):
``startproject``'s middleware inside django-prometheus's pair, DRF with its own session
and token authentication and JSON renderer, django-redis as it comes, and
django-ratelimit on the cached read with its middleware answering 429. Never used in
production; only the bench and its tests load it.

``BENCH_TEXTBOOK_RATE`` (django-ratelimit's syntax, default lifted to ``1000000000/m``)
is the profile read's limit per client address.
"""

from __future__ import annotations

from config.env import env_str
from config.settings import *  # noqa: F403  # config.settings with the textbook's layers instead
from config.settings import DATABASE_ROUTERS, INSTALLED_APPS, REDIS_URL, REST_FRAMEWORK

ROOT_URLCONF = "loadtests.bench.textbook_urls"
INSTALLED_APPS = [*INSTALLED_APPS, "rest_framework.authtoken"]

# startproject's list, with django-prometheus first and last (its documented order) and
# django-ratelimit's middleware turning a refusal into RATELIMIT_VIEW's answer.
MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_ratelimit.middleware.RatelimitMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

# DRF's defaults, JSON only (as highscale in production).
REST_FRAMEWORK = {  # noqa: F811  # replaces the base's on purpose
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: an API client without credentials is told how to authenticate (401).
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
}

# django-redis as its README configures it (without Redis, the base's in-process cache).
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
        }
    }

# One database, no replica routing.
DATABASE_ROUTERS = []  # noqa: F811  # replaces the base's on purpose

# django-ratelimit's own settings (its names): where it counts, what a refusal answers.
RATELIMIT_USE_CACHE = "default"
RATELIMIT_VIEW = "loadtests.bench.textbook_urls.ratelimited"
BENCH_TEXTBOOK_RATE = env_str("BENCH_TEXTBOOK_RATE", "1000000000/m")
