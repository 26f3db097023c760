"""The admin in a real browser: Playwright drives Debian's chromium against gunicorn.

gunicorn (``tests/gunicorn.py``: several workers, so an edit saved through one is read
by the others, as in production) serves the project, its collected static files
included, on pytest-django's test database; the tests commit their rows (transactional)
so that it sees them.
Playwright's sync API runs an event loop in the test's thread, which Django's
async-safety check would take for async code; ``DJANGO_ALLOW_ASYNC_UNSAFE`` is set for
this module's ORM calls only (the server under test is another process).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.contrib.auth.models import Group
from django.utils import timezone
from playwright.sync_api import Browser, Locator, Page, Response, sync_playwright

from apps.core.events.models import DeadLetter, OutboxEvent, ProcessedEvent
from apps.orders.events import NOTIFY_WAREHOUSE
from apps.orders.models import Order, OrderLine, Product
from apps.ratelimit.models import RateLimitOverride
from apps.users.models import AuthToken, User
from apps.users.tokens import new_token, token_digest
from deploy.local.binaries import find_binary
from deploy.local.processes import ServerError
from tests.events_worker import wait_for
from tests.factories import PASSWORD
from tests.gunicorn import serving

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[1]
# Headless, as root in a container, and quiet: no update checks, sync or first-run UI.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
OVERRIDE_CACHE_SECONDS = 2
# A snapshot whose read was under way as the override committed is up to this much late.
OVERRIDE_SLACK_SECONDS = 1.0
# Every model the admin lists, as its changelist path.
CHANGELISTS = [
    "/admin/auth/group/",
    "/admin/core/deadletter/",
    "/admin/core/outboxevent/",
    "/admin/orders/order/",
    "/admin/orders/product/",
    "/admin/ratelimit/ratelimitoverride/",
    "/admin/users/authtoken/",
    "/admin/users/user/",
]
# The read-only ones (no add page: events and orders are written by services only).
NO_ADD = {
    "/admin/core/deadletter/",
    "/admin/core/outboxevent/",
    "/admin/orders/order/",
    # Tokens are made by logging in, never typed in.
    "/admin/users/authtoken/",
}


@pytest.fixture(scope="module", autouse=True)
def _orm_beside_playwrights_loop() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield


@functools.cache
def _password_hash() -> str:
    """Return PASSWORD hashed the way gunicorn's settings verify (the suite hashes MD5)."""
    hasher = PBKDF2PasswordHasher()
    return hasher.encode(PASSWORD, hasher.salt())


def _user(username: str, *, staff: bool = False) -> User:
    return User.objects.create(
        username=username,
        email=f"{username}@example.com",
        password=_password_hash(),
        is_staff=staff,
        is_superuser=staff,
    )


def _order(owner: User, status: str, *lines: tuple[Product, int]) -> Order:
    """Write an order and its lines directly: no event, so no consumer touches it."""
    order = Order.objects.create(
        owner=owner,
        status=status,
        total=sum((p.price * q for p, q in lines), Decimal("0.00")),
        idempotency_key=str(uuid.uuid4()),
    )
    OrderLine.objects.bulk_create(
        [
            OrderLine(order=order, owner=order.owner, product=p, quantity=q, unit_price=p.price)
            for p, q in lines
        ]
    )
    return order


def _product(sku: str, stock: int = 50) -> Product:
    return Product.objects.create(sku=sku, name=f"Thing {sku}", price=Decimal("2.50"), stock=stock)


@pytest.fixture(scope="module")
def admin_server(
    django_db_setup: None, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Serve the project (static files included) with gunicorn; yield its base URL."""
    home = tmp_path_factory.mktemp("admin-server")
    env = {
        "REDIS_URL": settings.REDIS_URL,
        "RATELIMIT_REDIS_URL": settings.RATELIMIT_REDIS_URL,
        "RATELIMIT_KEY_PREFIX": settings.RATELIMIT_KEY_PREFIX,
        "RATELIMIT_OVERRIDE_CACHE_SECONDS": str(OVERRIDE_CACHE_SECONDS),
        "DJANGO_SERVE_STATIC": "true",
        "DJANGO_STATIC_ROOT": str(home / "static"),
        # Empty is off: the server keeps Django's async-safety check.
        "DJANGO_ALLOW_ASYNC_UNSAFE": "",
    }
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=ROOT, env={**os.environ, **env}, check=True,
    )  # fmt: skip
    with django_db_blocker.unblock(), serving(home, env) as server:
        yield f"http://127.0.0.1:{server.port}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Launch Debian's chromium, headless (installed with apt as root when missing)."""
    try:
        executable = find_binary("chromium")
    except ServerError as missing:
        # As the harness does for a missing server: stop, naming the install command.
        pytest.exit(str(missing), returncode=pytest.ExitCode.USAGE_ERROR)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser, admin_server: str) -> Iterator[Page]:
    """A fresh browser context (no cookies) on the admin server; fails on any 5xx seen."""
    context = browser.new_context(base_url=admin_server)
    context.set_default_timeout(30_000)
    failures: list[str] = []

    def record(response: Response) -> None:
        if response.status >= 500:
            failures.append(f"{response.status} {response.url}")

    context.on("response", record)
    try:
        yield context.new_page()
    finally:
        context.close()
    assert failures == []


def _submit(page: Page, target: Locator) -> None:
    """Click ``target`` and return once the page it leads to has loaded."""
    with page.expect_navigation():
        target.click()


def _log_in(page: Page, username: str) -> None:
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    _submit(page, page.locator("input[type=submit]"))


def _listed_ids(page: Page) -> set[int]:
    return {int(text) for text in page.locator("#result_list tbody th a").all_inner_texts()}


def _cell(field: str, row: Locator) -> str:
    """Return the text of an inline row's read-only ``field``."""
    return row.locator(f"td.field-{field}").inner_text()


def _run_action(page: Page, action: str, *ids: int) -> list[str]:
    """Tick the rows of ``ids`` in the changelist, run ``action``; return the messages."""
    for pk in ids:
        page.check(f"input[name=_selected_action][value='{pk}']")
    page.select_option("select[name=action]", action)
    _submit(page, page.locator("button[name=index]"))
    return page.locator("ul.messagelist li").all_inner_texts()


def test_staff_login_opens_the_admin_and_a_non_staff_login_is_refused(page):
    _user("clerk", staff=True)
    _user("shopper")

    _log_in(page, "shopper")
    assert page.url.endswith("/admin/login/?next=/admin/")
    assert "Please enter the correct username and password for a staff account." in (
        page.inner_text("p.errornote")
    )
    page.goto("/admin/orders/order/")
    assert page.url.endswith("/admin/login/?next=/admin/orders/order/")

    _log_in(page, "clerk")
    assert page.url.endswith("/admin/")
    assert page.inner_text("h1") == "Site administration"


def test_orders_list_filters_by_status_and_by_date(page):
    owner = _user("clerk", staff=True)
    product = _product("F-1")
    pending = _order(owner, "pending", (product, 1))
    today = _order(owner, "confirmed", (product, 1))
    last_week = _order(owner, "confirmed", (product, 2))
    last_year = _order(owner, "confirmed", (product, 3))
    Order.objects.filter(pk=last_week.pk).update(created_at=timezone.now() - timedelta(days=3))
    Order.objects.filter(pk=last_year.pk).update(created_at=timezone.now() - timedelta(days=400))
    _log_in(page, "clerk")

    page.goto("/admin/orders/order/")
    assert _listed_ids(page) == {pending.pk, today.pk, last_week.pk, last_year.pk}
    filters = page.locator("#changelist-filter")
    _submit(page, filters.get_by_role("link", name="Confirmed", exact=True))
    assert _listed_ids(page) == {today.pk, last_week.pk, last_year.pk}
    _submit(page, filters.get_by_role("link", name="Past 7 days", exact=True))
    assert _listed_ids(page) == {today.pk, last_week.pk}
    _submit(page, filters.get_by_role("link", name="Today", exact=True))
    assert _listed_ids(page) == {today.pk}


def test_an_order_page_shows_its_lines_and_no_editable_status(page):
    owner = _user("clerk", staff=True)
    mug, lamp = _product("MUG-1"), _product("LAMP-2")
    order = _order(owner, "confirmed", (mug, 3), (lamp, 1))
    _log_in(page, "clerk")

    page.goto(f"/admin/orders/order/{order.pk}/change/")

    rows = page.locator("#lines-group tbody tr.has_original")
    shown = {(_cell("product", row), _cell("quantity", row)) for row in rows.all()}
    assert shown == {("MUG-1 Thing MUG-1", "3"), ("LAMP-2 Thing LAMP-2", "1")}
    assert page.inner_text("div.field-status div.readonly") == "Confirmed"
    assert page.locator("select[name=status], input[name=status]").count() == 0


def test_the_cancel_action_gives_a_confirmed_orders_stock_back(page):
    owner = _user("clerk", staff=True)
    product = _product("C-1", stock=7)
    order = _order(owner, "confirmed", (product, 3))
    _log_in(page, "clerk")
    page.goto("/admin/orders/order/")

    messages = _run_action(page, "cancel", order.pk)

    assert messages == ["1 order(s) cancelled."]
    order.refresh_from_db()
    assert order.status == "cancelled"
    assert Product.objects.get(pk=product.pk).stock == 10


def test_a_dead_letter_replayed_from_the_admin_is_delivered_once(page, event_worker, warehouse):
    warehouse.reset()
    owner = _user("clerk", staff=True)
    order = _order(owner, "confirmed", (_product("W-1"), 2))
    event_id = str(uuid.uuid4())
    now = timezone.now()
    letter = DeadLetter.objects.create(
        task=NOTIFY_WAREHOUSE,
        message_id=str(uuid.uuid4()),
        payload={"args": [], "kwargs": {"event_id": event_id, "order_id": order.pk}},
        headers={},
        reason="RetryableError: warehouse answered 503",
        attempts=4,
        first_failed_at=now,
        last_failed_at=now,
    )
    _log_in(page, "clerk")
    page.goto("/admin/core/deadletter/")

    assert _run_action(page, "replay", letter.pk) == ["1 dead letter(s) replayed."]
    wait_for(lambda: warehouse.requests_for(order.pk), 30, "the replayed delivery")
    # Replaying it again is refused; nothing else may reach the warehouse.
    assert _run_action(page, "replay", letter.pk) == [
        f"Dead letter {letter.pk} is not pending.",
        "0 dead letter(s) replayed.",
    ]
    event_worker.settle()

    delivered = warehouse.requests_for(order.pk)
    assert [(body["event_id"], headers["Idempotency-Key"]) for _, body, headers in delivered] == [
        (event_id, event_id)
    ]
    assert ProcessedEvent.objects.filter(event_id=event_id, consumer=NOTIFY_WAREHOUSE).count() == 1
    letter.refresh_from_db()
    assert letter.status == DeadLetter.Status.REPLAYED


def _api_policy(base_url: str, token: str) -> str:
    response = requests.get(
        f"{base_url}/api/v1/products", headers={"Authorization": f"Token {token}"}, timeout=10
    )
    assert response.status_code == 200
    return response.headers["RateLimit-Policy"]


def test_a_rate_limit_override_made_in_the_admin_takes_effect_within_its_cache_period(
    page, admin_server
):
    _user("clerk", staff=True)
    partner = _user("partner")
    login = requests.post(
        f"{admin_server}/api/v1/auth/token",
        json={"username": "partner", "password": PASSWORD},
        timeout=10,
    )
    assert login.status_code == 200
    token = login.json()["token"]
    overridden = '"default";q=500;w=60'
    default = _api_policy(admin_server, token)
    assert default.startswith('"default";q=')
    assert default != overridden
    # Both workers hold a snapshot without the override now (requests spread over them).
    for _ in range(4):
        assert _api_policy(admin_server, token) == default
    _log_in(page, "clerk")

    page.goto("/admin/ratelimit/ratelimitoverride/add/")
    page.fill("#id_user", str(partner.pk))
    page.fill("#id_policy", "api")
    page.fill("#id_limit", "500")
    page.fill("#id_window", "60")
    _submit(page, page.locator("input[name=_save]"))
    saved_at = time.monotonic()
    assert RateLimitOverride.objects.filter(user=partner, policy="api", limit=500).exists()

    # Once the period is over every worker answers with the override, not just the one
    # that saved it (that one drops its own snapshot at once). Asked after the period, so
    # how slowly a loaded machine answers does not count against it.
    ready_at = saved_at + OVERRIDE_CACHE_SECONDS + OVERRIDE_SLACK_SECONDS
    time.sleep(max(0.0, ready_at - time.monotonic()))
    assert {_api_policy(admin_server, token) for _ in range(8)} == {overridden}


def test_no_admin_page_answers_a_server_error(page):
    clerk = _user("clerk", staff=True)
    product = _product("P-1")
    order = _order(clerk, "confirmed", (product, 1))
    Group.objects.create(name="warehouse")
    RateLimitOverride.objects.create(user=clerk, policy="api", limit=5, window=60)
    OutboxEvent.objects.create(event_type="order.created", payload={"order_id": order.pk})
    now = timezone.now()
    DeadLetter.objects.create(
        task=NOTIFY_WAREHOUSE, payload={"args": [], "kwargs": {}}, headers={}, reason="x",
        attempts=1, first_failed_at=now, last_failed_at=now,
    )  # fmt: skip
    AuthToken.objects.create(
        user=clerk, digest=token_digest(new_token()), expires_at=now + timedelta(days=1)
    )
    _log_in(page, "clerk")

    links = page.locator("#content-main th[scope=row] a")
    changelists = sorted({str(href) for href in links.evaluate_all("l => l.map(a => a.pathname)")})
    assert changelists == CHANGELISTS
    statuses: dict[str, int] = {}

    def visit(path: str) -> None:
        response = page.goto(path)
        assert response is not None
        statuses[path] = response.status

    for changelist in changelists:
        visit(changelist)
        change = page.locator("#result_list tbody tr").first.locator("a").first
        change_path = str(change.evaluate("a => a.pathname"))
        visit(f"{changelist}?q=a")
        visit(change_path)
        visit(f"{change_path.removesuffix('change/')}history/")
        if changelist not in NO_ADD:
            visit(f"{changelist}add/")

    assert set(statuses.values()) == {200}, statuses
    assert len(statuses) == 4 * len(CHANGELISTS) + len(CHANGELISTS) - len(NO_ADD)
