"""The ``make run`` path with no environment: SQLite, in-process cache and tasks, runserver."""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import pytest
import requests

from tests.config.subprocess_env import embedded_environment, manage, runserver

ADMIN_CREATED = "Admin: http://127.0.0.1:8000/admin/ — user admin, password admin\n"
ADMIN_KEPT = "Admin: http://127.0.0.1:8000/admin/ — user admin exists already; left unchanged.\n"
NOT_LOADED = "Demo data not loaded: the database already has products (--if-empty).\n"
# The last lines of seed_demo's output: before them, the console email backend prints
# the confirmation email of every demo order its in-process consumers confirmed.
SEEDED = re.compile(
    r"(?:^|\n)Seeded 3 users, 5 products, 4 orders \(\d+ lines\) in \d+\.\d\d s\.\n"
    r"Demo users log in with the password 'demo-password'\.\n\Z"
)
TIMEOUT = 10


@dataclass(frozen=True)
class EmbeddedRun:
    """The output of each ``make run`` step, and the URL of the server it started."""

    base_url: str
    outputs: dict[str, subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRun]:
    """Run the ``make run`` steps on an empty SQLite file and serve it with runserver."""
    home = tmp_path_factory.mktemp("embedded")
    env = embedded_environment(home / "highscale.sqlite3")
    seed = ("seed_demo", "--users", "3", "--products", "5", "--orders", "4", "--if-empty")
    outputs = {
        "migrate": manage(env, "migrate", "--noinput"),
        "seed": manage(env, *seed),
        "seed again": manage(env, *seed),
        "admin": manage(env, "ensure_demo_admin"),
        "admin again": manage(env, "ensure_demo_admin"),
    }
    with runserver(env, home / "runserver.log") as base_url:
        yield EmbeddedRun(base_url=base_url, outputs=outputs)


def test_make_run_steps_succeed_on_an_empty_embedded_database(embedded):
    results = {step: (r.returncode, r.stderr) for step, r in embedded.outputs.items()}
    # Seeding logs the demo orders' consumers as they run in-process, and nothing worse.
    seed_log = results.pop("seed")[1]
    assert results == {step: (0, "") for step in embedded.outputs if step != "seed"}
    assert embedded.outputs["seed"].returncode == 0
    failures = [line for line in seed_log.splitlines() if " ERROR " in line or "Traceback" in line]
    assert failures == []
    assert "Applying orders.0001_initial... OK" in embedded.outputs["migrate"].stdout
    assert SEEDED.search(embedded.outputs["seed"].stdout) is not None


def test_make_run_steps_are_safe_to_repeat(embedded):
    assert embedded.outputs["seed again"].stdout == NOT_LOADED
    assert embedded.outputs["admin"].stdout == ADMIN_CREATED
    assert embedded.outputs["admin again"].stdout == ADMIN_KEPT


def test_embedded_server_answers_healthz(embedded):
    response = requests.get(f"{embedded.base_url}/healthz", timeout=TIMEOUT)

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_embedded_server_lists_the_seeded_products(embedded):
    response = requests.get(f"{embedded.base_url}/api/v1/products", timeout=TIMEOUT)

    assert response.status_code == 200
    skus = [product["sku"] for product in response.json()["results"]]
    assert skus == [f"DEMO-00000{n}" for n in range(1, 6)]


def test_embedded_api_docs_load_their_assets_from_this_server(embedded):
    response = requests.get(f"{embedded.base_url}/api/docs/", timeout=TIMEOUT)

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    page = response.text
    assert re.findall(r"https?://", page) == []
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sorted(assets) == [
        "/static/drf_spectacular_sidecar/swagger-ui-dist/favicon-32x32.png",
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js",
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-standalone-preset.js",
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui.css",
    ]
    statuses = {a: requests.get(embedded.base_url + a, timeout=TIMEOUT).status_code for a in assets}
    assert statuses == dict.fromkeys(assets, 200)


def test_embedded_readyz_is_ready_with_tasks_in_process(embedded):
    response = requests.get(f"{embedded.base_url}/readyz", timeout=TIMEOUT)

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["broker"] == {
        "ok": True,
        "state": "ok",
        "detail": "in-process (no broker configured)",
        "role": "in-process",
    }
    assert body["checks"]["database"] == {
        "ok": True,
        "state": "ok",
        "detail": "ok",
        "role": "standalone",
    }
    assert body["checks"]["cache"] == {
        "ok": True,
        "state": "ok",
        "detail": "ok",
        "role": "in-process",
    }


def test_embedded_server_takes_and_returns_an_order(embedded):
    api = f"{embedded.base_url}/api/v1"
    credentials = {"username": "embedded-buyer", "password": "correct-horse-battery-staple"}
    signup = requests.post(
        f"{api}/users", json={**credentials, "email": "buyer@example.com"}, timeout=TIMEOUT
    )
    assert signup.status_code == 201
    token = requests.post(f"{api}/auth/token", json=credentials, timeout=TIMEOUT)
    assert token.status_code == 200
    headers = {
        "Authorization": f"Token {token.json()['token']}",
        "Idempotency-Key": str(uuid.uuid4()),
    }
    # The demo orders already took stock at random: order from the best-stocked product
    # (the first one listed once had less than the 2 units ordered, and was rejected).
    products = requests.get(f"{api}/products", timeout=TIMEOUT).json()["results"]
    product = max(products, key=lambda p: p["stock"])
    assert product["stock"] >= 2

    placed = requests.post(
        f"{api}/orders",
        json={"items": [{"product_id": product["id"], "quantity": 2}]},
        headers=headers,
        timeout=TIMEOUT,
    )
    assert placed.status_code == 201
    order_id = placed.json()["id"]
    replayed = requests.post(
        f"{api}/orders",
        json={"items": [{"product_id": product["id"], "quantity": 2}]},
        headers=headers,
        timeout=TIMEOUT,
    )
    read = requests.get(f"{api}/orders/{order_id}", headers=headers, timeout=TIMEOUT)
    listed = requests.get(f"{api}/orders", headers=headers, timeout=TIMEOUT)

    assert (replayed.status_code, replayed.json()["id"]) == (201, order_id)
    assert [o["id"] for o in listed.json()["results"]] == [order_id]

    # The POST answers with the order as placed; with no broker its consumers run
    # in-process right after the commit, so the next read already sees them done.
    assert placed.json()["status"] == "pending"
    assert read.status_code == 200
    order = read.json()
    assert order["status"] == "confirmed"
    assert Decimal(order["total"]) == Decimal(product["price"]) * 2
    assert [(line["product_id"], line["quantity"]) for line in order["lines"]] == [
        (product["id"], 2)
    ]


def test_embedded_demo_orders_are_already_confirmed_or_rejected(embedded):
    api = f"{embedded.base_url}/api/v1"
    statuses: list[str] = []
    for number in (1, 2, 3):
        token = requests.post(
            f"{api}/auth/token",
            json={"username": f"demo{number}", "password": "demo-password"},
            timeout=TIMEOUT,
        )
        assert token.status_code == 200
        orders = requests.get(
            f"{api}/orders",
            headers={"Authorization": f"Token {token.json()['token']}"},
            timeout=TIMEOUT,
        )
        statuses += [order["status"] for order in orders.json()["results"]]

    # seed_demo places them through the outbox; with no broker its consumers ran
    # in-process at once, so none is left pending.
    assert len(statuses) == 4
    assert set(statuses) <= {"confirmed", "rejected"}
