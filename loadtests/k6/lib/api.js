// The API calls the scenarios are made of: discovery, login, browsing and ordering.

import http from "k6/http";
import { check, fail, sleep } from "k6";
import { Counter, Rate, Trend } from "k6/metrics";
import { API, DEMO_PASSWORD, DEMO_USERS, ORDER_SETTLE_SECONDS } from "./config.js";

const JSON_HEADERS = { "Content-Type": "application/json" };

export const ordersSettled = new Rate("orders_settled");
export const ordersConfirmed = new Counter("orders_confirmed");
export const ordersRejected = new Counter("orders_rejected");
export const orderSettleTime = new Trend("order_settle_ms", true);

function pick(list) {
  return list[Math.floor(Math.random() * list.length)];
}

function tagged(name, extra = {}) {
  return Object.assign({ tags: { name } }, extra);
}

export function login(username) {
  const response = http.post(
    `${API}/auth/token`,
    JSON.stringify({ username, password: DEMO_PASSWORD }),
    tagged("POST /auth/token", { headers: JSON_HEADERS }),
  );
  if (!check(response, { "login 200": (r) => r.status === 200 })) {
    fail(`login as ${username} answered ${response.status}: ${response.body} (seed_demo users and DEMO_PASSWORD?)`);
  }
  return response.json("token");
}

// Once per run: the product ids and the demo users' public profile ids to browse.
export function discover() {
  const products = http.get(`${API}/products?limit=200`, tagged("GET /products"));
  if (products.status !== 200) {
    fail(`GET /products answered ${products.status}; is ${API} up and seeded (seed_demo)?`);
  }
  const productIds = products.json("results").filter((p) => p.stock > 0).map((p) => p.id);
  if (productIds.length === 0) fail("no product in stock: run manage.py seed_demo");
  const token = login("demo1");
  const me = http.get(`${API}/users/me`, tagged("GET /users/me", { headers: auth(token) }));
  const first = me.json("id");
  // seed_demo inserts its users in one bulk batch, so demo1..demoN have consecutive ids.
  const profileIds = [];
  for (let id = first; id < first + DEMO_USERS; id++) profileIds.push(id);
  return { productIds, profileIds };
}

export function auth(token) {
  return { Authorization: `Token ${token}` };
}

// The demo user a VU logs in as: VUs share the DEMO_USERS accounts round-robin.
export function vuUsername() {
  return `demo${((__VU - 1) % DEMO_USERS) + 1}`;
}

export function browse(data) {
  const list = http.get(`${API}/products`, tagged("GET /products"));
  check(list, { "products 200": (r) => r.status === 200 });
  const product = http.get(`${API}/products/${pick(data.productIds)}`, tagged("GET /products/{id}"));
  check(product, { "product 200": (r) => r.status === 200 });
  const profile = http.get(`${API}/users/${pick(data.profileIds)}`, tagged("GET /users/{id}"));
  check(profile, { "profile 200": (r) => r.status === 200 });
  const etag = profile.headers.Etag || profile.headers.ETag;
  if (etag) {
    const again = http.get(`${API}/users/${profile.json("id")}`, tagged("GET /users/{id}", {
      headers: { "If-None-Match": etag },
    }));
    check(again, { "profile revalidated": (r) => r.status === 304 || r.status === 200 });
  }
}

// Place one order with a fresh Idempotency-Key, then poll it until confirmed or rejected.
export function order(data, token) {
  const key = `k6-${__VU}-${__ITER}-${Date.now()}-${Math.random().toString(36).slice(2, 10)}`;
  const body = JSON.stringify({ items: [{ product_id: pick(data.productIds), quantity: 1 }] });
  const headers = Object.assign({ "Idempotency-Key": key }, JSON_HEADERS, auth(token));
  const placed = http.post(`${API}/orders`, body, tagged("POST /orders", { headers }));
  if (!check(placed, { "order 201": (r) => r.status === 201 })) return;
  const id = placed.json("id");
  const started = Date.now();
  let status = placed.json("status");
  while (status === "pending" && Date.now() - started < ORDER_SETTLE_SECONDS * 1000) {
    sleep(0.2);
    const polled = http.get(`${API}/orders/${id}`, tagged("GET /orders/{id}", { headers: auth(token) }));
    if (polled.status !== 200) break;
    status = polled.json("status");
  }
  const settled = status === "confirmed" || status === "rejected";
  ordersSettled.add(settled);
  check(status, { "order confirmed or rejected": () => settled });
  if (settled) orderSettleTime.add(Date.now() - started);
  if (status === "confirmed") ordersConfirmed.add(1);
  if (status === "rejected") ordersRejected.add(1);
}
