// Step 4: run a job and follow its progress over the event stream, then show its outputs in a
// grid, grouped by model when models were compared, each with its latency and cost and the
// actions that work from it.

import { getJSON, imageURL, postJSON } from "./api.js";
import { FINAL, followJob } from "./sse.js";
import { $, element, milliseconds, money, showError } from "./ui.js";

// Actions offered on every output: label and what it does with the output (its model
// filled in from its group).
let actions = [];

export function setActions(list) {
  actions = list;
}

function showProgress(text, fraction) {
  $("#progress").hidden = false;
  $("#progress-text").textContent = text;
  if (fraction === null) $("#progress-bar").removeAttribute("value");
  else $("#progress-bar").value = fraction;
}

function onEvent(event, data) {
  if (event === "progress") {
    showProgress(`Running: ${data.completed} of ${data.total}`, data.completed / data.total);
  } else if (event === "queued" || event === "started") {
    showProgress(event === "queued" ? "Queued" : "Running", null);
  } else {
    showProgress(`Job ${data.status}`, 1);
  }
}

// One job is followed at a time: a second would share the progress bar and the results with
// the first, so starting one while another runs is refused (and the primary buttons are off).
let following = false;

async function oneAtATime(follow) {
  if (following) {
    const error = new Error("A job is already running");
    error.problem = { title: "A job is already running", detail: "Wait until it finishes to start another." };
    throw error;
  }
  following = true;
  for (const button of document.querySelectorAll("button.primary")) button.disabled = true;
  try {
    return await follow();
  } finally {
    following = false;
    for (const button of document.querySelectorAll("button.primary")) button.disabled = false;
  }
}

// Submit a job to `path` and follow it to the end (see followToEnd for `show`).
export function runJob(path, body, options) {
  return oneAtATime(async () => {
    showProgress("Submitting", null);
    const job = await postJSON(path, body);
    return followToEnd(job.id, options);
  });
}

// Reopen a job (from the history): follow it if it is still running, then show it.
export function openJob(jobId) {
  return oneAtATime(() => followToEnd(jobId));
}

// Follow a job to the end; resolves with the finished job, which replaces the results unless
// `show` is false (an export's files are listed in its panel).
async function followToEnd(jobId, { show = true } = {}) {
  const finished = await finishedJob(jobId);
  if (show) await showJob(finished);
  if (finished.status === "failed" && finished.error) showError({ problem: finished.error });
  return finished;
}

const POLL_MS = 1000;

// The job once finished: followed over its event stream or, when the stream is refused (too
// many open, or live events unavailable), by polling GET /v1/jobs/{id}.
async function finishedJob(jobId) {
  try {
    const job = await followJob(jobId, onEvent);
    if (job) return job;
  } catch (error) {
    if (!error.problem) throw error;
  }
  for (;;) {
    const job = await getJSON(`/v1/jobs/${jobId}`);
    showProgress(`Job ${job.status}`, FINAL.has(job.status) ? 1 : null);
    if (FINAL.has(job.status)) return job;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

// The job's outputs as groups: its compare groups, or one group of its model, with the median
// of its outputs' latencies.
function groupsOf(job) {
  if (job.groups) return job.groups;
  const latencies = job.outputs
    .map((output) => output.latency_ms)
    .filter((ms) => ms !== null)
    .sort((a, b) => a - b);
  return [{
    model: job.model,
    outputs: job.outputs,
    latency_ms: latencies.length ? latencies[Math.floor(latencies.length / 2)] : job.timings.provider_ms,
    cost_usd: job.cost_usd,
    failures: [],
  }];
}

async function showJob(job) {
  const heading = element("p", { class: "job-line" },
    element("strong", {}, `${job.kind} ${job.status}`), ` · ${job.id} · ${milliseconds(job.timings.total_ms)} total`);
  const sections = [];
  for (const group of groupsOf(job)) sections.push(await groupSection(group));
  const groups = element("div", { class: job.groups ? "groups compare" : "groups" }, ...sections);
  $("#results").replaceChildren(heading, groups);
  $("#results").dataset.job = job.id;
}

async function groupSection(group) {
  const cards = [];
  for (const output of group.outputs) cards.push(await outputCard(group, output));
  const failures = group.failures.map((failure) =>
    element("li", {}, `Output ${failure.index} failed: ${failure.error.title}. ${failure.error.detail}`));
  return element("section", { class: "group", "data-model": group.model },
    element("h3", {}, group.model, " ",
      element("span", { class: "latency" }, milliseconds(group.latency_ms)), " ",
      element("span", { class: "cost" }, money(group.cost_usd))),
    element("div", { class: "grid" }, ...cards),
    failures.length ? element("ul", { class: "failures" }, ...failures) : null);
}

async function outputCard(group, output) {
  const image = element("img", {
    src: await imageURL(output.asset_id),
    alt: `Output of ${group.model}, seed ${output.seed}`,
    width: String(output.width || ""),
    height: String(output.height || ""),
  });
  const facts = [`${output.width}x${output.height}`, `seed ${output.seed}`];
  if (output.latency_ms !== null && output.latency_ms !== undefined) facts.push(milliseconds(output.latency_ms));
  if (output.cost_usd !== null && output.cost_usd !== undefined) facts.push(money(output.cost_usd));
  const buttons = actions.map(({ label, run }) => {
    const button = element("button", { type: "button", class: "quiet" }, label);
    button.addEventListener("click", () => run({ ...output, model: output.model || group.model }));
    return button;
  });
  return element("figure", { class: "card", "data-asset": output.asset_id },
    image,
    element("figcaption", {}, facts.join(" · ")),
    element("div", { class: "actions" }, ...buttons));
}
