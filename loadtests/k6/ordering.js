// Ordering: each VU logs in once, then places orders with Idempotency-Keys and polls
// each until it is confirmed or rejected.
import { sleep } from "k6";
import { discover, login, order, vuUsername } from "./lib/api.js";
import { options as profileOptions, SLEEP } from "./lib/config.js";

export { handleSummary } from "./lib/summary.js";
export const options = profileOptions({ orders_settled: ["rate>0.99"] });

let token = null; // per VU: every VU runs its own copy of this module

export function setup() {
  return discover();
}

export default function (data) {
  token = token || login(vuUsername());
  order(data, token);
  sleep(SLEEP);
}
