// The playground's entry point: the key, the four steps wired together, and the history.

import { forgetKey, saveKey, savedKey } from "./api.js";
import { composeState, loadAssetPicker, loadChoices, mode, setupCompose } from "./compose.js";
import { loadExportChoices, openExport, setupExport } from "./exporting.js";
import { loadHistory, openLineage, setupLineage } from "./history.js";
import { openRefine, setupRefine } from "./refine.js";
import { openJob, runJob, setActions } from "./results.js";
import { loadFormats, loadModels, settingsState, setupSettings, showEstimate } from "./settings.js";
import { $, clearError, showError } from "./ui.js";

let openapi = null;
// What runs after any change to the steps: the estimate, then (once setupCompose has wired
// it) the prompt preview too.
let refresh = changed;

// The job the four steps describe: its route, its kind and its request body.
function jobRequest() {
  const compose = composeState();
  const settings = settingsState();
  const body = { prompt: compose.prompt, n: settings.n, output_format: settings.format };
  if (settings.models.length === 1) body.model = settings.models[0];
  if (settings.models.length > 1) body.models = settings.models;
  if (settings.aspectRatio) body.aspect_ratio = settings.aspectRatio;
  if (settings.seed !== null) body.seed = settings.seed;
  if (compose.style) body.style = compose.style;
  if (compose.negative) body.negative_prompt = compose.negative;
  if (compose.mode === "generate") return { path: "/v1/generate", kind: "generate", body };
  Object.assign(body, {
    image: { asset_id: compose.source },
    strength: compose.strength,
    keep: compose.keep,
    references: compose.references,
  });
  return { path: "/v1/edit", kind: "edit", body };
}

function previewTarget() {
  const settings = settingsState();
  return { model: settings.models[0] || null, aspectRatio: settings.aspectRatio };
}

function changed() {
  if (!savedKey()) return;
  const { kind, body } = jobRequest();
  if (kind === "edit" && !body.image.asset_id) return;
  showEstimate(kind, body);
}

// Run a job from the page (runJob refuses a second while one runs) and refresh the history.
async function run(path, body) {
  clearError();
  try {
    await runJob(path, body);
  } catch (error) {
    showError(error);
  } finally {
    loadHistory(reopen);
  }
}

async function reopen(jobId) {
  clearError();
  try {
    await openJob(jobId);
    $("#results").scrollIntoView({ block: "start" });
  } catch (error) {
    showError(error);
  }
}

// Variants of an output, on the model that made it.
function variants(output) {
  const body = { source: { asset_id: output.asset_id }, n: settingsState().n, models: [output.model] };
  return run("/v1/variants", body);
}

// With a key: the models, presets and history it may see.
async function connect() {
  $("#api-key").value = savedKey();
  $("#key-hint").hidden = true;
  try {
    await Promise.all([loadModels(mode()), loadExportChoices(openapi), loadHistory(reopen)]);
    if (mode() === "edit") loadAssetPicker();
    refresh();
  } catch (error) {
    showError(error);
  }
}

function setupKey() {
  $("#key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    clearError();
    saveKey($("#api-key").value.trim());
    connect();
  });
  $("#forget-key").addEventListener("click", () => {
    forgetKey();
    window.location.reload();
  });
}

async function start() {
  setupKey();
  openapi = await (await fetch("/openapi.json")).json();
  loadChoices(openapi);
  loadFormats(openapi);
  refresh = setupCompose(changed, previewTarget);
  setupSettings(refresh);
  for (const radio of document.querySelectorAll("input[name=mode]")) {
    radio.addEventListener("change", () => savedKey() && loadModels(mode()).catch(showError));
  }
  setupRefine((body) => run("/v1/edit", body));
  setupExport();
  setupLineage();
  setActions([
    { label: "Variants", run: variants },
    { label: "Refine", run: openRefine },
    { label: "Lineage", run: openLineage },
    { label: "Export", run: openExport },
  ]);
  $("#run").addEventListener("click", () => {
    const { path, body } = jobRequest();
    run(path, body);
  });
  $("#history-refresh").addEventListener("click", () => loadHistory(reopen));
  if (savedKey()) await connect();
}

start().catch(showError);
