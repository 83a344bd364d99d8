// Step 3: the models (availability, price, observed latency; one, or up to four to compare),
// aspect ratio, number of images, format and seed; and the estimate of what the job would cost
// and take before it runs.

import { getJSON, postJSON } from "./api.js";
import { $, debounce, element, latestRequest, milliseconds, money, schemaEnum } from "./ui.js";

const MAX_COMPARED = 4;
const ESTIMATE_DELAY_MS = 400;

let models = [];
const estimateRequest = latestRequest();

export function settingsState() {
  const seed = $("#seed").value;
  return {
    models: [...document.querySelectorAll("#models input:checked")].map((box) => box.value),
    aspectRatio: $("#aspect").value || null,
    n: Number($("#n").value) || 1,
    format: $("#format").value,
    seed: seed === "" ? null : Number(seed),
  };
}

export function loadFormats(openapi) {
  const property = openapi.components.schemas.GenerateRequest.properties.output_format;
  $("#format").replaceChildren(...schemaEnum(property).map((name) => element("option", { value: name }, name)));
}

export function setupSettings(onChange) {
  for (const id of ["#aspect", "#n", "#format", "#seed"]) {
    $(id).addEventListener("input", onChange);
  }
  $("#models").addEventListener("change", () => {
    limitChoices();
    onChange();
  });
}

// Only MAX_COMPARED models may be ticked: the rest are disabled until one is unticked.
function limitChoices() {
  const boxes = [...document.querySelectorAll("#models input")];
  const full = boxes.filter((box) => box.checked).length >= MAX_COMPARED;
  for (const box of boxes) {
    box.disabled = box.dataset.unavailable === "true" || (full && !box.checked);
  }
}

// A model's price an image: its list price, or the range over its quality levels.
function price(model) {
  if (model.price_per_image_usd !== null) return money(model.price_per_image_usd);
  const ranges = Object.values(model.prices_by_quality || {});
  if (!ranges.length) return "price unknown";
  const low = Math.min(...ranges.map((range) => range.min_usd));
  const high = Math.max(...ranges.map((range) => range.max_usd));
  return `${money(low)} to ${money(high)}`;
}

function modelFacts(model) {
  if (!model.available) return "not configured on this server";
  const latency = model.observed_latency_ms ?? model.typical_latency_ms;
  const source = model.observed_latency_ms !== null ? "observed" : "typical";
  return `${price(model)} an image · ${latency === null ? "latency unknown" : `${milliseconds(latency)} ${source}`}`;
}

function modelRow(model, ticked) {
  const box = element("input", { type: "checkbox", value: model.id });
  box.dataset.unavailable = String(!model.available);
  box.checked = model.available && (ticked.size ? ticked.has(model.id) : model.id === "local/draft");
  const row = element("label", { class: model.available ? "model" : "model unavailable" },
    box,
    element("span", { class: "model-id" }, model.id),
    element("span", { class: "muted" }, modelFacts(model)));
  if (model.pricing) row.title = model.pricing;
  return row;
}

// List the models that do this mode (generate or edit), the default model ticked.
export async function loadModels(mode) {
  if (!models.length) models = (await getJSON("/v1/models")).data;
  const ticked = new Set(settingsState().models);
  const kind = mode === "edit" ? "edit" : "generate";
  const fitting = models.filter((model) => model.capabilities.modes.includes(kind));
  const available = fitting.filter((model) => model.available).map((model) => modelRow(model, ticked));
  const unavailable = fitting.filter((model) => !model.available).map((model) => modelRow(model, ticked));
  // Models this server has no key for are listed, folded away, so the choice stays short.
  const folded = unavailable.length
    ? element("details", {}, element("summary", {}, `${unavailable.length} more not configured here`), ...unavailable)
    : null;
  $("#models").replaceChildren(...available, ...(folded ? [folded] : []));
  limitChoices();
}

// Ask POST /v1/estimate what the job would cost and take, and show it (or why it would be
// refused).
export const showEstimate = debounce(async (kind, body) => {
  const isLatest = estimateRequest();
  const target = $("#estimate");
  if (!body.prompt && kind === "generate") {
    target.textContent = "";
    return;
  }
  try {
    const estimate = await postJSON("/v1/estimate", { kind, ...body });
    if (!isLatest()) return;
    if (!estimate.accepted) {
      target.textContent = `Would be refused: ${estimate.refusal.title}. ${estimate.refusal.detail}`;
      return;
    }
    const cost = estimate.cost_usd;
    const costText = cost
      ? cost.min_usd === cost.max_usd ? money(cost.min_usd) : `${money(cost.min_usd)} to ${money(cost.max_usd)}`
      : "price unknown";
    const latencies = estimate.models.map((model) => model.latency_ms).filter((ms) => ms !== null);
    const time = latencies.length ? `about ${milliseconds(Math.max(...latencies))} an image` : "time unknown";
    target.textContent = `Estimate: ${costText}, ${time}.`;
  } catch (error) {
    if (isLatest()) target.textContent = `No estimate: ${error.message}`;
  }
}, ESTIMATE_DELAY_MS);
