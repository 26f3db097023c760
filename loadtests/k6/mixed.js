// Mixed: 80 % of iterations browse, 20 % place an order (logging in on the VU's first).
import { sleep } from "k6";
import { browse, discover, login, order, vuUsername } from "./lib/api.js";
import { options as profileOptions, SLEEP } from "./lib/config.js";

export { handleSummary } from "./lib/summary.js";
export const options = profileOptions({ orders_settled: ["rate>0.99"] });

let token = null; // per VU: every VU runs its own copy of this module

export function setup() {
  return discover();
}

export default function (data) {
  if (Math.random() < 0.8) {
    browse(data);
  } else {
    token = token || login(vuUsername());
    order(data, token);
  }
  sleep(SLEEP);
}
