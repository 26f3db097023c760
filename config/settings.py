"""Settings for highscale, driven by the environment.

Every setting has a safe development default; production differs only by environment
(see docs/environment.md). With no environment at all the project runs on an
embedded SQLite file under ``var/``, a local-memory cache and in-process tasks.
"""

from __future__ import annotations

from pathlib import Path

import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

from apps.core.db.settings import postgres_database, primary_url, replica_databases
from apps.core.redis_topology import (
    SentinelRedis,
    SingleRedis,
    cache_entry,
    redis_topology_from_env,
)
from config.env import (
    env_bool,
    env_int,
    env_list,
    env_str,
    parse_ratelimit_overrides,
)

# Lets generic classes such as ModelAdmin[Product] be subscripted at run time.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

DEBUG = env_bool("DJANGO_DEBUG", default=True)

# Public and development-only; production mode refuses to start without its own key.
_DEV_SECRET_KEY = "django-insecure-highscale-development-only-key-never-use-in-production"  # noqa: S105
SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is false (production mode)."
        )
    SECRET_KEY = _DEV_SECRET_KEY

ALLOWED_HOSTS = env_list(
    "DJANGO_ALLOWED_HOSTS",
    ["localhost", "127.0.0.1", "[::1]", "testserver"] if DEBUG else [],
)
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_prometheus",
    "apps.core",
    "apps.users",
    "apps.orders",
    "apps.ratelimit",
    "apps.observability",
]

# Metrics and the access log wrap every request; `false` leaves them out (the bench
# measures their cost this way).
OBSERVABILITY_MIDDLEWARE = env_bool("OBSERVABILITY_MIDDLEWARE", default=True)
# Serve STATIC_ROOT from the app itself (WhiteNoise) where no nginx sits in front: the
# container image turns it on; `make stack` leaves it off, its nginx serves /static/.
DJANGO_SERVE_STATIC = env_bool("DJANGO_SERVE_STATIC", default=False)

# Each entry wraps the ones below it: a request passes them top to bottom, its response
# bottom to top.
MIDDLEWARE = [
    # Outermost, so the request's time covers every other middleware.
    *(["apps.observability.middleware.MetricsMiddleware"] if OBSERVABILITY_MIDDLEWARE else []),
    # Before anything asks the request's host or scheme.
    "apps.core.http.proxies.ForwardedHeadersMiddleware",
    "apps.core.http.middleware.RequestIdMiddleware",
    # Inside the request id, so the access line carries it.
    *(["apps.observability.middleware.AccessLogMiddleware"] if OBSERVABILITY_MIDDLEWARE else []),
    # Before anything reads the database: it sets where this request's reads go.
    "apps.core.db.middleware.ReplicaRoutingMiddleware",
    # Refuses an oversized body before anything reads it.
    "apps.core.http.middleware.BodySizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Right after SecurityMiddleware, as WhiteNoise asks: static answers skip the rest.
    *(["whitenoise.middleware.WhiteNoiseMiddleware"] if DJANGO_SERVE_STATIC else []),
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "apps.users.middleware.LastActiveMiddleware",
    # Innermost: it sees the decisions the view's throttles made, whatever answered.
    "apps.ratelimit.middleware.RateLimitHeadersMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------

DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    # Pooling (DATABASE_POOL_MAX_SIZE > 0) replaces persistent connections; see the
    # "Read replicas" section for the replicas, built the same way.
    _DATABASE_POOLING = {
        "conn_max_age": env_int("DATABASE_CONN_MAX_AGE", 60),
        "pool_min": env_int("DATABASE_POOL_MIN_SIZE", 2),
        "pool_max": env_int("DATABASE_POOL_MAX_SIZE", 0),
    }
    # A multi-host URL (libpq failover between servers) is accepted in either form.
    DATABASES = {"default": postgres_database(primary_url(DATABASE_URL), **_DATABASE_POOLING)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django_prometheus.db.backends.sqlite3",
            "NAME": env_str("SQLITE_PATH", str(VAR_DIR / "highscale.sqlite3")),
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        }
    }
DATABASE_REPLICA_URLS = env_list("DATABASE_REPLICA_URLS")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "users.User"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Cache ----------------------------------------------------------------------------

# The one place the Redis topology is read (REDIS_URL, or REDIS_SENTINELS with
# REDIS_SENTINEL_MASTER): the cache, the limiter, pub/sub and sticking all use it.
REDIS = redis_topology_from_env()
REDIS_URL = env_str("REDIS_URL")
CACHES = {
    "default": cache_entry(
        REDIS,
        {
            "CLIENT_CLASS": "apps.observability.cache_metrics.RedisClient",
            # A cache that hangs is worse than a miss: fail fast and fall through.
            "SOCKET_CONNECT_TIMEOUT": 0.1,
            "SOCKET_TIMEOUT": 0.1,
            "CONNECTION_POOL_KWARGS": {"max_connections": env_int("REDIS_MAX_CONNECTIONS", 50)},
        },
    )
}

# --- Celery ---------------------------------------------------------------------------
# The broker-level settings live in "Events and queues" below.

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL")

# --- Application ----------------------------------------------------------------------

WAREHOUSE_WEBHOOK_URL = env_str("WAREHOUSE_WEBHOOK_URL")
RATELIMIT_OVERRIDES = parse_ratelimit_overrides(env_str("RATELIMIT_OVERRIDES"))
# How often a user's `last_active` may be written at most.
USER_LAST_ACTIVE_INTERVAL_SECONDS = env_int("USER_LAST_ACTIVE_INTERVAL_SECONDS", 300, minimum=1)
# API tokens: lifetime, live tokens per user (the oldest goes first), and how often a
# token's `last_used_at` may be written at most.
AUTH_TOKEN_TTL_SECONDS = env_int("AUTH_TOKEN_TTL_SECONDS", 7 * 24 * 3600, minimum=1)
AUTH_TOKENS_PER_USER = env_int("AUTH_TOKENS_PER_USER", 10, minimum=1)
AUTH_TOKEN_LAST_USED_INTERVAL_SECONDS = 60
# A request body above this size is answered 413 before it is read.
REQUEST_BODY_MAX_BYTES = 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_BODY_MAX_BYTES

# --- REST API -------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.users.authentication.TokenAuthentication",
        "apps.users.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        *(["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    ],
    "DEFAULT_PARSER_CLASSES": ["apps.core.http.parsers.JSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "apps.core.http.negotiation.FastContentNegotiation",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "apps.core.http.exceptions.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # The contract's default policy on every view; views name others themselves.
    "DEFAULT_THROTTLE_CLASSES": ["apps.ratelimit.throttles.ApiRateThrottle"],
}

SPECTACULAR_SETTINGS = {
    "TITLE": "highscale API",
    "DESCRIPTION": "Users, products and orders of the high-scale architecture reference.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        # Documents the 429 every throttled operation may answer.
        "apps.ratelimit.schema.add_throttled_responses",
    ],
}

# --- Static files, i18n ---------------------------------------------------------------

STATIC_URL = "static/"
# Where collectstatic writes; `make stack` points it into its nginx prefix.
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(VAR_DIR / "static")))
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

EMAIL_BACKEND = env_str("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")

# --- Security (production mode) -------------------------------------------------------

SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("DJANGO_SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env_bool("DJANGO_CSRF_COOKIE_SECURE", default=True)
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", default=False)
    SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
    if env_bool("DJANGO_BEHIND_TLS_PROXY", default=False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Logging --------------------------------------------------------------------------

# One JSON object per line in production; the plain format when developing.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "apps.core.http.logging.RequestIdFilter"},
        "context": {"()": "apps.observability.logging.ContextFilter"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "apps.observability.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain" if DEBUG else "json",
            "filters": ["request_id", "context"],
        },
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.db.backends": {"level": "WARNING"},
        # One line per request (AccessLogMiddleware); WARNING silences it.
        "highscale.access": {"level": env_str("ACCESS_LOG_LEVEL", "INFO")},
        # Celery's two lines per task ("received", "succeeded in"): each consumer logs
        # its own outcome and the metrics count every task by state, so they repeat
        # what is known, at a cost per task in the worker and in whatever collects the
        # logs. Failures (ERROR) and the consumers' retry warnings are kept; INFO
        # brings the per-task lines back.
        **{
            name: {"level": env_str("CELERY_TASK_LOG_LEVEL", "WARNING")}
            for name in ("celery.app.trace", "celery.worker.strategy")
        },
    },
}

# --- Read replicas -----------------------------------------------------------------------

# One alias per replica URL (replica_1, replica_2, …); `#weight=N` after a URL sets its
# share of the reads. Routing, the read-after token and the health checks: apps/core/db.
DATABASE_REPLICA_WEIGHTS: dict[str, int] = {}
if DATABASE_REPLICA_URLS:
    if not DATABASE_URL:
        raise ImproperlyConfigured("DATABASE_REPLICA_URLS needs DATABASE_URL (the primary).")
    _replicas, DATABASE_REPLICA_WEIGHTS = replica_databases(
        DATABASE_REPLICA_URLS, **_DATABASE_POOLING
    )
    DATABASES.update(_replicas)
DATABASE_ROUTERS = ["apps.core.db.router.ReplicaRouter"]

# --- Shards -------------------------------------------------------------------------------

# Orders partitioned by owner over these servers, DATABASE_URL being the coordinator that
# holds the partitioned parents (postgres_fdw); docs/sharding.md. Absent → no sharding.
DATABASE_SHARD_URLS = env_list("DATABASE_SHARD_URLS")
# Logical partitions (HASH MODULUS), placed round-robin on the shards; fixed at first migrate.
DATABASE_SHARD_PARTITIONS = env_int("DATABASE_SHARD_PARTITIONS", 16, minimum=1)
# A shard that does not answer fails the statement after this long instead of hanging it.
DATABASE_SHARD_CONNECT_TIMEOUT_SECONDS = env_int("DATABASE_SHARD_CONNECT_TIMEOUT_SECONDS", 2)
DATABASE_SHARD_STATEMENT_TIMEOUT_MS = env_int("DATABASE_SHARD_STATEMENT_TIMEOUT_MS", 5000)
if DATABASE_SHARD_URLS:
    if not DATABASE_URL:
        raise ImproperlyConfigured("DATABASE_SHARD_URLS needs DATABASE_URL (the coordinator).")
    for _alias in DATABASES:
        _options = DATABASES[_alias].setdefault("OPTIONS", {})
        _options["options"] = " ".join(
            part
            for part in (
                _options.get("options", ""),
                f"-c statement_timeout={DATABASE_SHARD_STATEMENT_TIMEOUT_MS}",
            )
            if part
        )
# A replica further behind than this is skipped until it catches up.
DATABASE_REPLICA_MAX_LAG_SECONDS = env_int("DATABASE_REPLICA_MAX_LAG_SECONDS", 5)
# How often each process probes its replicas' replay position and lag.
DATABASE_REPLICA_CHECK_INTERVAL_SECONDS = (
    env_int("DATABASE_REPLICA_CHECK_INTERVAL_MS", 500, minimum=50) / 1000
)
DATABASE_REPLICA_PROBE_TIMEOUT_SECONDS = 1.0
# A replica marked down (refused, failed, timed out) is not tried again before this.
DATABASE_REPLICA_RETRY_SECONDS = env_int("DATABASE_REPLICA_RETRY_SECONDS", 2, minimum=1)
# Reads per second per process that may fall back to the primary when no replica is
# usable; beyond it they are answered 503 instead of stampeding the primary (0: no cap).
DATABASE_REPLICA_FALLBACK_RPS = env_int("DATABASE_REPLICA_FALLBACK_RPS", 200)
# How long a browser keeps the read-after cookie; the token itself, not this, decides.
DATABASE_READ_AFTER_COOKIE_SECONDS = env_int("DATABASE_READ_AFTER_COOKIE_SECONDS", 300)
# How long a user's last write position is kept (sticking); past the max lag a usable
# replica has replayed it anyway, so a multiple of it is enough.
DATABASE_STICKING_SECONDS = env_int(
    "DATABASE_STICKING_SECONDS", max(60, 12 * DATABASE_REPLICA_MAX_LAG_SECONDS), minimum=1
)

# --- Multi-level cache -------------------------------------------------------------------

# L1: per-process LRU in front of Redis; 0 entries turns it off. Its TTL is a backstop
# for a lost invalidation message and is capped at 5 s whatever the environment says.
CACHE_L1_MAX_ENTRIES = env_int("CACHE_L1_MAX_ENTRIES", 10_000)
CACHE_L1_TTL_SECONDS = min(env_int("CACHE_L1_TTL_SECONDS", 5), 5)
# How long one filler may hold a key's lease before another caller may take over.
CACHE_LEASE_SECONDS = 2.0
# After a Redis error, reads go straight to the database for this long.
CACHE_REDIS_RETRY_SECONDS = 1.0
# XFetch's beta: above 1 refreshes hot keys earlier; 0 turns early refresh off.
CACHE_EARLY_REFRESH_BETA = 1.0
CACHE_INVALIDATION_CHANNEL = "cache:invalidate"
# Behind Sentinel an invalidation's record (pending.py) is deleted only once a replica
# confirms the drop (WAIT, this long at most): replication is asynchronous, and a drop
# the dying master had not passed on would come back with the promoted replica.
CACHE_INVALIDATION_REPLICAS = 1 if isinstance(REDIS, SentinelRedis) else 0
CACHE_INVALIDATION_REPLICA_WAIT_MS = 30
# Backstop for invalidations Redis missed (pending.py): beat replays what is left this often.
CACHE_PENDING_SWEEP_SECONDS = 5
# Public profile: Redis TTL, and how long browsers and shared caches may reuse it.
USER_PROFILE_CACHE_TTL_SECONDS = 3600
USER_PROFILE_HTTP_MAX_AGE_SECONDS = env_int("USER_PROFILE_HTTP_MAX_AGE_SECONDS", 5)
# Product list and detail: how long the edge may reuse them (browsers: not at all).
PRODUCT_HTTP_MAX_AGE_SECONDS = env_int("PRODUCT_HTTP_MAX_AGE_SECONDS", 5)
# Where cache fills read: the primary, so a lagging replica never feeds the cache.
CACHE_FILL_DATABASE = "default"

# --- Events and queues -------------------------------------------------------------------

# No broker (embedded default): tasks run in-process, right after the order commits.
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
# In-process failures are logged and dead-lettered like a worker's, never raised to a view.
CELERY_TASK_EAGER_PROPAGATES = False
# A broker that does not answer must not hold a request: the outbox sweep publishes later.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
# A worker keeps retrying the broker at start instead of exiting on the first refusal.
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Publisher confirms: a publish returns only once RabbitMQ has taken the message.
    "confirm_publish": True,
}
# JSON only: a pickled message from the network could run code in the worker.
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Consumers record their effects in the database; nobody waits on a result.
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
# Ack after the task ran, so a message whose worker dies is delivered again ...
CELERY_TASK_ACKS_LATE = True
# ... including when the pool process is killed (acks_late alone acks it; celery #1628).
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# One unacked message per process: a slow task never holds others back in its buffer.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Stop a hung task: soft limit raises inside it, the hard limit kills its process.
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 30, minimum=1)
CELERY_TASK_TIME_LIMIT = CELERY_TASK_SOFT_TIME_LIMIT + 15
# Bounded retries with exponential backoff and jitter (apps.core.events.consumers.ReliableTask).
EVENTS_MAX_RETRIES = env_int("EVENTS_MAX_RETRIES", 5)
EVENTS_RETRY_BACKOFF_SECONDS = env_int("EVENTS_RETRY_BACKOFF_SECONDS", 2, minimum=1)
EVENTS_RETRY_BACKOFF_MAX_SECONDS = env_int("EVENTS_RETRY_BACKOFF_MAX_SECONDS", 600, minimum=1)
# Deliveries of one message (worker deaths included) before RabbitMQ dead-letters it.
EVENTS_MAX_DELIVERIES = env_int("EVENTS_MAX_DELIVERIES", 5, minimum=1)
# Prefix of every queue and exchange, so two deployments (or test runs) can share a broker.
EVENTS_QUEUE_PREFIX = env_str("EVENTS_QUEUE_PREFIX", "highscale")
# Celery closes the database connection before and after every task unless this is set,
# so each task paid for a new PostgreSQL backend; config/celery.py closes only broken or
# CONN_MAX_AGE-expired connections around each task instead, as Django does per request.
CELERY_DB_REUSE_MAX = 1_000_000
# Logs keep Django's format (with the request id) in the worker too.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# What a task prints (the console email backend's mails, in development) is output, not
# the WARNING Celery logs it as by default.
CELERY_WORKER_REDIRECT_STDOUTS_LEVEL = "INFO"
# Dead-letter undecodable messages instead of Celery's default of acking (dropping) them.
CELERY_WORKER_CONSUMER = "apps.core.events.consumers:DeadLetteringConsumer"
# Periodic work for `celery beat`: publish outbox events left behind, collect dead letters.
# Short, because the sweep is the safety net for events a process held in its relay's
# memory when it died (the partial index keeps an empty sweep one cheap query).
OUTBOX_SWEEP_SECONDS = env_int("OUTBOX_SWEEP_SECONDS", 5, minimum=1)
CELERY_BEAT_SCHEDULE = {
    "outbox-sweep": {"task": "core.outbox_sweep", "schedule": float(OUTBOX_SWEEP_SECONDS)},
    "dead-letter-drain": {"task": "core.dead_letters_drain", "schedule": 30.0},
    "cache-pending-apply": {
        "task": "core.cache_pending_apply",
        "schedule": float(CACHE_PENDING_SWEEP_SECONDS),
    },
}
# Events left unsent this long are published by the sweep (younger ones by their commit).
OUTBOX_SWEEP_MIN_AGE_SECONDS = 2
# After a failed publish, commits stop trying the broker for this long (the outbox's
# circuit breaker); the sweep catches up.
OUTBOX_PUBLISH_BACKOFF_SECONDS = 5
# Durable quorum queues (replicated, with a delivery limit) on a topic exchange, which
# Celery's native delayed delivery needs for retries with a countdown.
_EVENTS_EXCHANGE = Exchange(EVENTS_QUEUE_PREFIX, type="topic", durable=True)
_EVENTS_DLX = Exchange(f"{EVENTS_QUEUE_PREFIX}.dlx", type="fanout", durable=True)
EVENTS_DEAD_LETTER_QUEUE = f"{EVENTS_QUEUE_PREFIX}.dead"


def _quorum_queue(suffix: str) -> Queue:
    name = f"{EVENTS_QUEUE_PREFIX}.{suffix}"
    arguments = {
        "x-queue-type": "quorum",
        # Counts redeliveries, so a message that kills its worker stops after this many.
        "x-delivery-limit": EVENTS_MAX_DELIVERIES - 1,
        "x-dead-letter-exchange": _EVENTS_DLX.name,
    }
    return Queue(name, _EVENTS_EXCHANGE, routing_key=name, durable=True, queue_arguments=arguments)


CELERY_TASK_QUEUES = [_quorum_queue(suffix) for suffix in ("default", "orders", "webhooks")]
CELERY_TASK_DEFAULT_QUEUE = f"{EVENTS_QUEUE_PREFIX}.default"
CELERY_TASK_DEFAULT_EXCHANGE = _EVENTS_EXCHANGE.name
CELERY_TASK_DEFAULT_EXCHANGE_TYPE = "topic"
CELERY_TASK_DEFAULT_ROUTING_KEY = CELERY_TASK_DEFAULT_QUEUE
# Consumer tasks go to the queue their app's event table names (apps/<app>/events.py).
CELERY_TASK_ROUTES = ["apps.core.events.routing.route_task"]
# Broker-level rejects (delivery limit, undecodable bodies) land here, durably.
EVENTS_DEAD_LETTER_QUEUES = [
    Queue(
        EVENTS_DEAD_LETTER_QUEUE,
        _EVENTS_DLX,
        durable=True,
        queue_arguments={"x-queue-type": "quorum"},
    )
]
WAREHOUSE_WEBHOOK_TIMEOUT_SECONDS = env_int("WAREHOUSE_WEBHOOK_TIMEOUT_SECONDS", 5, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DJANGO_DEFAULT_FROM_EMAIL", "orders@highscale.local")
EMAIL_HOST = env_str("DJANGO_EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("DJANGO_EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("DJANGO_EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("DJANGO_EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("DJANGO_EMAIL_USE_TLS", default=False)
EMAIL_TIMEOUT = 10
# Where the file-based email backend writes (used by the test worker).
EMAIL_FILE_PATH = env_str("DJANGO_EMAIL_FILE_PATH", str(VAR_DIR / "emails"))

# --- Rate limiting -----------------------------------------------------------------------

# Where the counters live: the Redis above unless RATELIMIT_REDIS_URL names another
# server; no Redis at all → per-process counters.
RATELIMIT_REDIS_URL = env_str("RATELIMIT_REDIS_URL", REDIS_URL)
RATELIMIT_REDIS = (
    SingleRedis(env_str("RATELIMIT_REDIS_URL")) if env_str("RATELIMIT_REDIS_URL") else REDIS
)
# Redis socket and connect timeout per decision; past it the policy's fail mode answers.
RATELIMIT_REDIS_TIMEOUT_MS = env_int("RATELIMIT_REDIS_TIMEOUT_MS", 50, minimum=1)
RATELIMIT_KEY_PREFIX = env_str("RATELIMIT_KEY_PREFIX", "rl")
# Addresses or CIDR ranges whose X-Forwarded-For is believed (nginx in the stack).
# Empty by default: a client talking to gunicorn directly cannot pick its identity.
RATELIMIT_TRUSTED_PROXIES = env_list("RATELIMIT_TRUSTED_PROXIES")
# The client's host and port behind those proxies (ForwardedHeadersMiddleware drops the
# headers of any other peer), so absolute URLs lead back through the proxy.
USE_X_FORWARDED_HOST = True
USE_X_FORWARDED_PORT = True
# How stale a process's copy of the admin's per-user overrides may be.
RATELIMIT_OVERRIDE_CACHE_SECONDS = env_int("RATELIMIT_OVERRIDE_CACHE_SECONDS", 5)
# The contract's policies. Both use the exact sliding-window log: "100 per 60 s" means
# no 60 s span ever admits more than 100, which GCRA (burst plus refill) would exceed.
# GCRA is the default for policies that do not name an algorithm.
RATELIMIT_POLICIES: dict[str, dict[str, object]] = {
    "api": {
        "limit": 100,
        "window": 60,
        "scope": "user_or_ip",
        "algorithm": "sliding_window",
        "fail_open": True,
        "header_name": "default",
    },
    "login": {
        "limit": 5,
        "window": 60,
        "scope": "ip_username",
        "algorithm": "sliding_window",
        "fail_open": False,
    },
}

# --- Observability -----------------------------------------------------------------------

# Port of a Celery worker's metrics endpoint (0: none); see apps/observability/celery_signals.py.
CELERY_METRICS_PORT = env_int("CELERY_METRICS_PORT", 0)
# prometheus_client writes to PROMETHEUS_MULTIPROC_DIR from the first metric a module
# defines, which happens while Django loads the apps, before any server hook can run.
if env_str("PROMETHEUS_MULTIPROC_DIR"):
    Path(env_str("PROMETHEUS_MULTIPROC_DIR")).mkdir(parents=True, exist_ok=True)
# Deadline of each /readyz check, in milliseconds: a hung dependency fails its check
# in about this time instead of holding the probe.
READYZ_CHECK_TIMEOUT_SECONDS = env_int("READYZ_CHECK_TIMEOUT_MS", 1000, minimum=50) / 1000
