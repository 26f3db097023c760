// Browsing: anonymous reads of the catalogue and public profiles (cache-heavy).
import { sleep } from "k6";
import { browse, discover } from "./lib/api.js";
import { options as profileOptions, SLEEP } from "./lib/config.js";

export { handleSummary } from "./lib/summary.js";
export const options = profileOptions();

export function setup() {
  return discover();
}

export default function (data) {
  browse(data);
  sleep(SLEEP);
}
