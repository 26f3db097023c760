// Products: the reference's own script, pointed at the catalogue: each VU GETs the
// product list, then thinks for SLEEP seconds (the profile and thresholds of config.js).
import http from "k6/http";
import { check, sleep } from "k6";
import { API, options as profileOptions, SLEEP } from "./lib/config.js";

export { handleSummary } from "./lib/summary.js";
export const options = profileOptions();

export default function () {
  const list = http.get(`${API}/products`, { tags: { name: "GET /products" } });
  check(list, { "products 200": (r) => r.status === 200 });
  sleep(SLEEP);
}
