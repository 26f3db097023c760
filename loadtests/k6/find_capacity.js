// find-capacity: raise the request rate step by step until the reference's thresholds
// (p(95)<200 ms, failed < 1 %) break, and report the highest rate that held them.
//
// An open model (ramping-arrival-rate): k6 starts iterations at the target rate whether
// or not the server keeps up, so a saturated server shows as latency, errors or
// iterations k6 could not start, never as a quietly lower rate. One iteration is one
// request: 80 % anonymous reads (products list, a product, a public profile) and 20 %
// orders by logged-in demo users (ORDER_SHARE), like the mixed scenario.
//
// Every request is tagged with its step; each step has its own thresholds, which abort
// the run as soon as one breaks (k6 then exits 99: the expected end of a search). A step
// holds when its p95 and failure rate pass and it achieved at least 95 % of its planned
// requests. The answer, the last step that held with every step before it, goes to
// CAPACITY_JSON (default var/loadtest/capacity.json), which
// `manage.py capacity_plan --from-k6 var/loadtest/capacity.json` reads as the per-pod RPS.
//
// Environment (all optional; see also lib/config.js for BASE_URL, DEMO_USERS, P95_MS, ...):
//   START_RPS      rate of the first step (default 10)
//   STEP_RPS       added per step (default 10)
//   STEPS          number of steps at most (default 50: up to 500 RPS with the defaults)
//   STEP_SECONDS   how long each step holds its rate (default 20)
//   RAMP_SECONDS   ramp from one step's rate to the next (default 2)
//   MAX_VUS        most concurrent requests k6 may have in flight (default 300)
//   ORDER_SHARE    fraction of requests that are orders (default 0.2)
//   MIN_ACHIEVED   share of a step's planned requests it must make to hold (default 0.95)
//   SETUP_SECONDS  time allowed for setup() (logging in DEMO_USERS) before any step may
//                  abort the run (default 30); a step broken earlier still counts as broken
//   SETTLE_SECONDS requests a step makes before its thresholds may abort (default 5 s)

import exec from "k6/execution";
import http from "k6/http";
import { check } from "k6";
import { Counter, Gauge } from "k6/metrics";
import { API, BASE_URL, DEMO_USERS, SUMMARY_JSON } from "./lib/config.js";
import { auth, discover, login } from "./lib/api.js";

const START_RPS = Number(__ENV.START_RPS || 10);
const STEP_RPS = Number(__ENV.STEP_RPS || 10);
const STEPS = Number(__ENV.STEPS || 50);
const STEP_SECONDS = Number(__ENV.STEP_SECONDS || 20);
const RAMP_SECONDS = Number(__ENV.RAMP_SECONDS || 2);
const MAX_VUS = Number(__ENV.MAX_VUS || 300);
const ORDER_SHARE = Number(__ENV.ORDER_SHARE === undefined ? 0.2 : __ENV.ORDER_SHARE);
const P95_MS = Number(__ENV.P95_MS || 200);
const MAX_FAILED_RATE = Number(__ENV.MAX_FAILED_RATE || 0.01);
const MIN_ACHIEVED = Number(__ENV.MIN_ACHIEVED || 0.95);
const SETUP_SECONDS = Number(__ENV.SETUP_SECONDS || 30);
const SETTLE_SECONDS = Number(__ENV.SETTLE_SECONDS || 5);
const CAPACITY_JSON = __ENV.CAPACITY_JSON || "var/loadtest/capacity.json";
const RAW_SUMMARY_JSON = __ENV.SUMMARY_JSON
  ? SUMMARY_JSON
  : "var/loadtest/find_capacity_summary.json";

for (const [name, value] of Object.entries({ START_RPS, STEP_RPS, STEPS, STEP_SECONDS, MAX_VUS })) {
  if (!(value > 0)) throw new Error(`${name} must be a number greater than zero`);
}
if (!(RAMP_SECONDS >= 0)) throw new Error("RAMP_SECONDS must be zero or more");
if (!(ORDER_SHARE >= 0 && ORDER_SHARE <= 1)) throw new Error("ORDER_SHARE must be between 0 and 1");

const STEP_MS = (RAMP_SECONDS + STEP_SECONDS) * 1000;
// When the scenario began (Unix ms), so that loadtests/capacity_cpu.py can find each
// step's seconds on this machine's CPU clock; setup() runs before it and is not a step.
const scenarioStart = new Gauge("capacity_scenario_start_ms");
let scenarioStartAdded = false; // per VU: module state is each VU's own
// Refusals by the rate limiter, per step: a step that broke on them measured the limits,
// not the capacity.
const rateLimited = new Counter("capacity_rate_limited");
const JSON_HEADERS = { "Content-Type": "application/json" };

function rateOf(step) {
  return START_RPS + (step - 1) * STEP_RPS;
}

function stages() {
  const list = [];
  for (let step = 1; step <= STEPS; step++) {
    if (RAMP_SECONDS > 0) list.push({ duration: `${RAMP_SECONDS}s`, target: rateOf(step) });
    list.push({ duration: `${STEP_SECONDS}s`, target: rateOf(step) });
  }
  return list;
}

// Requests a step should have made: its ramp (linear from the previous rate) plus its hold.
function plannedRequests(step) {
  const previous = step === 1 ? rateOf(1) : rateOf(step - 1);
  return ((previous + rateOf(step)) / 2) * RAMP_SECONDS + rateOf(step) * STEP_SECONDS;
}

function thresholds() {
  const list = {};
  for (let step = 1; step <= STEPS; step++) {
    // A step may abort the run only once it has had SETTLE_SECONDS of requests, not on its
    // first handful. k6 counts the delay from the start of the test, setup() included.
    const delay = SETUP_SECONDS + ((step - 1) * STEP_MS) / 1000 + Math.min(SETTLE_SECONDS, STEP_SECONDS);
    const delayAbortEval = `${Math.round(delay)}s`;
    const abort = { abortOnFail: true, delayAbortEval };
    list[`http_req_duration{step:${step}}`] = [{ threshold: `p(95)<${P95_MS}`, ...abort }];
    list[`http_req_failed{step:${step}}`] = [{ threshold: `rate<${MAX_FAILED_RATE}`, ...abort }];
    // Never fails: it only makes k6 keep the step's request count for the summary.
    list[`http_reqs{step:${step}}`] = ["count>=0"];
    list[`capacity_rate_limited{step:${step}}`] = ["count>=0"];
  }
  return list;
}

export const options = {
  scenarios: {
    capacity: {
      executor: "ramping-arrival-rate",
      startRate: START_RPS,
      timeUnit: "1s",
      preAllocatedVUs: Math.min(MAX_VUS, Math.max(10, START_RPS)),
      maxVUs: MAX_VUS,
      stages: stages(),
    },
  },
  thresholds: thresholds(),
  summaryTrendStats: ["avg", "med", "p(95)", "p(99)", "max"],
};

export function setup() {
  const data = discover();
  data.tokens = [];
  if (ORDER_SHARE > 0) {
    for (let n = 1; n <= DEMO_USERS; n++) data.tokens.push(login(`demo${n}`));
  }
  return data;
}

function pick(list) {
  return list[Math.floor(Math.random() * list.length)];
}

function currentStep() {
  const elapsed = Date.now() - exec.scenario.startTime;
  return String(Math.min(STEPS, Math.floor(elapsed / STEP_MS) + 1));
}

export default function (data) {
  if (!scenarioStartAdded) {
    scenarioStart.add(exec.scenario.startTime);
    scenarioStartAdded = true;
  }
  const step = currentStep();
  const roll = Math.random();
  if (roll < ORDER_SHARE) {
    const key = `k6-capacity-${exec.scenario.iterationInTest}-${Math.random().toString(36).slice(2, 10)}`;
    const headers = Object.assign({ "Idempotency-Key": key }, JSON_HEADERS, auth(pick(data.tokens)));
    const body = JSON.stringify({ items: [{ product_id: pick(data.productIds), quantity: 1 }] });
    const response = http.post(`${API}/orders`, body, { headers, tags: { name: "POST /orders", step } });
    check(response, { "order 201": (r) => r.status === 201 });
    if (response.status === 429) rateLimited.add(1, { step });
    return;
  }
  const share = (roll - ORDER_SHARE) / (1 - ORDER_SHARE);
  let response;
  if (share < 0.3) {
    response = http.get(`${API}/products`, { tags: { name: "GET /products", step } });
  } else if (share < 0.6) {
    response = http.get(`${API}/products/${pick(data.productIds)}`, { tags: { name: "GET /products/{id}", step } });
  } else {
    response = http.get(`${API}/users/${pick(data.profileIds)}`, { tags: { name: "GET /users/{id}", step } });
  }
  check(response, { "read 200": (r) => r.status === 200 });
  if (response.status === 429) rateLimited.add(1, { step });
}

function stepResults(metrics) {
  const steps = [];
  for (let step = 1; step <= STEPS; step++) {
    const requests = metrics[`http_reqs{step:${step}}`];
    if (!requests || requests.values.count === 0) break;
    const duration = metrics[`http_req_duration{step:${step}}`].values;
    const failed = metrics[`http_req_failed{step:${step}}`].values;
    const limited = metrics[`capacity_rate_limited{step:${step}}`];
    const planned = plannedRequests(step);
    const achieved = requests.values.count / planned;
    const p95 = duration["p(95)"];
    const result = {
      step,
      target_rps: rateOf(step),
      achieved_rps: Math.round((requests.values.count / (RAMP_SECONDS + STEP_SECONDS)) * 100) / 100,
      requests: requests.values.count,
      planned_requests: Math.round(planned),
      p95_ms: Math.round(p95 * 100) / 100,
      failed_rate: failed.rate,
      rate_limited: limited ? limited.values.count : 0,
      held: p95 < P95_MS && failed.rate < MAX_FAILED_RATE && achieved >= MIN_ACHIEVED,
    };
    result.reason = result.held ? "" : [
      p95 < P95_MS ? "" : `p95 ${result.p95_ms} ms >= ${P95_MS} ms`,
      failed.rate < MAX_FAILED_RATE ? "" : `failed ${(failed.rate * 100).toFixed(2)} % >= ${MAX_FAILED_RATE * 100} %`,
      result.rate_limited === 0 ? "" : `${result.rate_limited} answered 429 (the rate limits, not the capacity: lift them with RATELIMIT_OVERRIDES, see docs/load-tests.md)`,
      achieved >= MIN_ACHIEVED ? "" : `only ${Math.round(achieved * 100)} % of the planned requests`,
    ].filter(Boolean).join(", ");
    steps.push(result);
  }
  return steps;
}

export function handleSummary(data) {
  const steps = stepResults(data.metrics);
  const brokenIndex = steps.findIndex((s) => !s.held);
  const held = brokenIndex === -1 ? steps : steps.slice(0, brokenIndex);
  const best = held.length ? held[held.length - 1] : null;
  const broken = brokenIndex === -1 ? null : steps[brokenIndex];
  const capacity = {
    found: best !== null,
    base_url: BASE_URL,
    thresholds: { p95_ms: P95_MS, max_failed_rate: MAX_FAILED_RATE, min_achieved: MIN_ACHIEVED },
    order_share: ORDER_SHARE,
    step_seconds: RAMP_SECONDS + STEP_SECONDS,
    ramp_seconds: RAMP_SECONDS,
    scenario_start_ms: data.metrics.capacity_scenario_start_ms
      ? data.metrics.capacity_scenario_start_ms.values.value
      : null,
    highest_sustained_rps: best ? best.achieved_rps : 0,
    highest_sustained_target_rps: best ? best.target_rps : 0,
    broke_at_target_rps: broken ? broken.target_rps : null,
    broke_because: broken ? broken.reason : null,
    steps,
    // The shape `capacity_plan --from-k6` reads: the sustained rate as http_reqs' rate.
    metrics: { http_reqs: { values: { rate: best ? best.achieved_rps : 0 } } },
  };
  const lines = [`find-capacity against ${BASE_URL} (p95 < ${P95_MS} ms, failed < ${MAX_FAILED_RATE * 100} %)`];
  for (const s of steps) {
    lines.push(
      `  step ${String(s.step).padStart(2)}: target ${String(s.target_rps).padStart(5)} RPS, ` +
      `achieved ${s.achieved_rps.toFixed(1).padStart(7)} RPS, p95 ${s.p95_ms.toFixed(1).padStart(7)} ms, ` +
      `failed ${(s.failed_rate * 100).toFixed(2)} %: ${s.held ? "held" : `BROKE (${s.reason})`}`,
    );
  }
  if (steps.length === 0) {
    lines.push("highest sustained: none - no step ran (setup() failed: see k6's error)");
  } else if (best) {
    lines.push(`highest sustained: ${best.achieved_rps} RPS (step ${best.step}, target ${best.target_rps} RPS)`);
  } else {
    lines.push("highest sustained: none - even the first step broke; lower START_RPS");
  }
  if (!broken && steps.length > 0) lines.push("every step held: raise STEPS or STEP_RPS to find the limit");
  lines.push(`  capacity: ${CAPACITY_JSON}, summary: ${RAW_SUMMARY_JSON}`);
  return {
    stdout: lines.join("\n") + "\n",
    [CAPACITY_JSON]: JSON.stringify(capacity, null, 2) + "\n",
    [RAW_SUMMARY_JSON]: JSON.stringify(data, null, 2),
  };
}
