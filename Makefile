# highscale — every command a user runs. See README.md.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | cksum | cut -d' ' -f1)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: help install run test lint format bench stack stack-ha stack-sharded failover-drill loadtest find-capacity dr-drill region-drill clean

help:
	@echo "make run       serve the app on http://$(HOST):$(PORT) (embedded SQLite unless DATABASE_URL is set)"
	@echo "make test      run the whole suite against real PostgreSQL, Redis and RabbitMQ"
	@echo "make lint      ruff (lint + format check), mypy and hadolint (Dockerfile)"
	@echo "make bench     throughput ratios against a bare WSGI floor"
	@echo "make stack     nginx :8080 -> gunicorn x2 -> PgBouncer -> PostgreSQL + replica; Redis, RabbitMQ, Celery (Ctrl-C stops all)"
	@echo "make stack-ha  the same on Patroni + etcd + HAProxy, Redis Sentinel, 3 RabbitMQ nodes"
	@echo "make failover-drill  kill each HA engine's leader under order load; table of windows"
	@echo "make stack-sharded  make stack with orders sharded over 2 shard servers, cache on a 3+3 Redis Cluster"
	@echo "make loadtest  k6 against BASE_URL (default the stack, http://127.0.0.1:8080)"
	@echo "make find-capacity  k6 steps up the request rate until p95/failure thresholds break"
	@echo "make dr-drill  restore + replica promotion on private PostgreSQL under var/dr; RPO/RTO"
	@echo "make region-drill  two regions in network namespaces (root): kill r1 under load, fail over; RPO/RTO async and sync"

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

run: install
	@mkdir -p var
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo --users 20 --products 50 --orders 40 --if-empty
	$(BIN)/python manage.py ensure_demo_admin
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/hadolint Dockerfile

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python -m loadtests.bench $(BENCH_ARGS)

# nginx :8080 → gunicorn ×2 → PgBouncer → PostgreSQL primary + replica; Redis; RabbitMQ;
# Celery worker + beat. Foreground; Ctrl-C stops all. Ports and data dir: STACK_* (docs/environment.md).
stack: install
	$(BIN)/python -m deploy.stack

# The same app tier on Patroni (3 etcd, HAProxy), Redis Sentinel and 3 RabbitMQ nodes.
stack-ha: install
	$(BIN)/python -m deploy.ha

# Its own HA topology under var/failover-drill: kills each engine's leader under order load.
failover-drill: install
	$(BIN)/python -m deploy.failover $(DRILL_ARGS)

# make stack plus 2 shard servers behind the coordinator and a 3+3 Redis Cluster
# (data under var/stack-sharded; Ctrl-C stops all).
stack-sharded: install
	$(BIN)/python -m deploy.stack --sharded

# k6 reads BASE_URL, PROFILE, VUS, DURATION, ... from the environment (loadtests/k6/lib/config.js).
SCENARIO ?= mixed
loadtest: install
	@mkdir -p var/loadtest
	BASE_URL=$${BASE_URL:-http://127.0.0.1:8080} $(BIN)/k6 run loadtests/k6/$(SCENARIO).js

# Steps the request rate up (START_RPS, STEP_RPS, STEPS, STEP_SECONDS: find_capacity.js)
# until a threshold breaks; k6 exits 99 then, which is the search ending, not a failure.
# Writes var/loadtest/capacity.json for `manage.py capacity_plan --from-k6`, with the cores
# this machine kept busy in each step (loadtests/capacity_cpu.py: CPU-bound or waiting).
find-capacity: install
	@mkdir -p var/loadtest
	BASE_URL=$${BASE_URL:-http://127.0.0.1:8080} $(BIN)/python -m loadtests.capacity_cpu -- \
	  $(BIN)/k6 run loadtests/k6/find_capacity.js; \
	  status=$$?; [ $$status -eq 0 ] || [ $$status -eq 99 ] || exit $$status
	@grep -q '"found": true' $${CAPACITY_JSON:-var/loadtest/capacity.json} || \
	  { echo "find-capacity: no step held the thresholds (see above)" >&2; exit 1; }

# Its own PostgreSQL primary + replica under var/dr (never the stack's data): restore from
# base backup + archived WAL, then replica promotion, each while orders are written.
dr-drill: install
	$(BIN)/python -m deploy.dr.drill $(DR_ARGS)

# Two regions in network namespaces (root), a 20 ms relay between them, HAProxy in front;
# kills r1 under order load, promotes r2, fails back (docs/regions.md). REGION_ARGS: e.g.
# --modes sync --delay-ms 50 --load-seconds 20 --no-failback.
region-drill: install
	$(BIN)/python -m deploy.region $(REGION_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
