# syntax=docker/dockerfile:1
# highscale: one image for every role; the command picks it (the same commands `make stack` runs):
#   web     gunicorn -c deploy/gunicorn.conf.py config.wsgi        (default)
#   worker  celery -A config worker -l INFO -Q highscale.orders,highscale.default --prefetch-multiplier 4 --concurrency 2
#   webhook celery -A config worker -l INFO -Q highscale.webhooks --prefetch-multiplier 1 --concurrency 2
#           (two pools: deploy/workers.py; size --concurrency to the CPU limit)
#   beat    celery -A config beat -l INFO --schedule /tmp/celerybeat-schedule
#   migrate python manage.py migrate --noinput
# Build: docker build -t highscale:0.1.0 .

ARG PYTHON_IMAGE=python:3.11-slim

# --- builder: the runtime dependencies in a virtualenv ---------------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
# Only what runs (python -m deploy.runtime_lock): no test, lint or load-test tool.
COPY requirements-runtime.lock /tmp/requirements-runtime.lock
# Every pin has a manylinux wheel for CPython 3.11, so no compiler is needed; --no-deps:
# the lock is the whole set, nothing else may come in.
RUN /opt/venv/bin/pip install --no-compile --no-deps -r /tmp/requirements-runtime.lock \
 && /opt/venv/bin/pip check \
 && /opt/venv/bin/python -m compileall -q /opt/venv/lib

# --- runtime: the venv and the code, run as an unprivileged user -----------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=config.settings \
    DJANGO_DEBUG=false \
    DJANGO_SERVE_STATIC=true \
    GUNICORN_BIND=0.0.0.0:8000 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus-multiproc
# A fixed numeric id, so Kubernetes' runAsNonRoot can verify it.
RUN groupadd --system --gid 10001 highscale \
 && useradd --system --uid 10001 --gid highscale --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin highscale
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# Code and static files stay owned by root: the app user can read them, not change them.
COPY . /app
# Collect static files into the image (STATIC_ROOT = var/static). The key exists only for
# this command; without PROMETHEUS_MULTIPROC_DIR (unset, not empty: an empty value makes
# prometheus_client write its files into the working directory) nothing but the static
# files is written, and no root-owned metrics directory is left in /tmp.
RUN env -u PROMETHEUS_MULTIPROC_DIR DJANGO_SECRET_KEY=collectstatic-build-only \
    python manage.py collectstatic --noinput \
 && python -m compileall -q apps config deploy manage.py
USER 10001:10001
EXPOSE 8000 9808
# For the web role (docker-compose.yml replaces it for worker and beat). Django checks the
# Host header, so the probe sends the first of DJANGO_ALLOWED_HOSTS.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request as u; h = (os.environ.get('DJANGO_ALLOWED_HOSTS') or 'localhost').split(',')[0].strip().lstrip('.'); u.urlopen(u.Request('http://127.0.0.1:8000/healthz', headers={'Host': h}), timeout=2)"]
CMD ["gunicorn", "-c", "deploy/gunicorn.conf.py", "config.wsgi"]
