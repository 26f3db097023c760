// Load profiles, thresholds and environment overrides shared by every k6 scenario.
//
// Environment (all optional):
//   BASE_URL       target, default http://127.0.0.1:8080 (the stack's nginx)
//   PROFILE        full (the reference's 1 min -> 50 VUs, 3 min at 100, 1 min -> 0) or short
//   VUS            peak virtual users (full: 100; short: 10)
//   DURATION       how long the peak is held (full: 3m; short: 20s); ramps scale with it
//   RAMP           ramp-up/down time (full: 1m; short: 5s)
//   SLEEP          think time in seconds between iterations (default 1)
//   DEMO_USERS     how many seed_demo users (demo1..demoN) the VUs log in as (default 20)
//   DEMO_PASSWORD  their password (seed_demo's, default demo-password)
//   SUMMARY_JSON   where the summary JSON goes (default var/loadtest/summary.json)
//   SUMMARY_HTML   where the HTML report goes (default var/loadtest/report.html)
//   P95_MS, MAX_FAILED_RATE  the thresholds (default 200 and 0.01, the reference's)

export const BASE_URL = (__ENV.BASE_URL || "http://127.0.0.1:8080").replace(/\/+$/, "");
export const API = `${BASE_URL}/api/v1`;
export const PROFILE = __ENV.PROFILE || "full";
export const SLEEP = Number(__ENV.SLEEP || 1);
export const DEMO_USERS = Number(__ENV.DEMO_USERS || 20);
export const DEMO_PASSWORD = __ENV.DEMO_PASSWORD || "demo-password";
export const SUMMARY_JSON = __ENV.SUMMARY_JSON || "var/loadtest/summary.json";
export const SUMMARY_HTML = __ENV.SUMMARY_HTML || "var/loadtest/report.html";
// How long an order may stay pending before the poll gives up and the check fails.
export const ORDER_SETTLE_SECONDS = Number(__ENV.ORDER_SETTLE_SECONDS || 15);

// The reference's thresholds: a run that breaks one exits non-zero (k6 exit code 99).
// P95_MS and MAX_FAILED_RATE move them, e.g. for a functional run on a busy machine.
export const THRESHOLDS = {
  http_req_duration: [`p(95)<${Number(__ENV.P95_MS || 200)}`],
  http_req_failed: [`rate<${Number(__ENV.MAX_FAILED_RATE || 0.01)}`],
};

function stagesFor(profile) {
  if (profile === "full") {
    const peak = Number(__ENV.VUS || 100);
    const ramp = __ENV.RAMP || "1m";
    return [
      { duration: ramp, target: Math.max(1, Math.round(peak / 2)) },
      { duration: __ENV.DURATION || "3m", target: peak },
      { duration: ramp, target: 0 },
    ];
  }
  if (profile === "short") {
    const peak = Number(__ENV.VUS || 10);
    const ramp = __ENV.RAMP || "5s";
    return [
      { duration: ramp, target: peak },
      { duration: __ENV.DURATION || "20s", target: peak },
      { duration: ramp, target: 0 },
    ];
  }
  throw new Error(`PROFILE must be full or short, not ${JSON.stringify(profile)}`);
}

// Options of a scenario script; `extra` adds thresholds of its own (e.g. order checks).
export function options(extra = {}) {
  return {
    scenarios: {
      load: { executor: "ramping-vus", startVUs: 0, stages: stagesFor(PROFILE), gracefulRampDown: "10s" },
    },
    thresholds: Object.assign({}, THRESHOLDS, extra),
    summaryTrendStats: ["avg", "min", "med", "max", "p(90)", "p(95)", "p(99)"],
  };
}
