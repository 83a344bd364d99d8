// Steps 1 and 2: the mode (text to image, or image to image from an uploaded or existing
// asset), the brief with a live preview of the optimized prompt, style, what to keep fixed and
// the reference images with their roles and weights.

import { getJSON, imageURL, postJSON, savedKey, uploadImage } from "./api.js";
import { $, debounce, element, latestRequest, schemaEnum, showError } from "./ui.js";

const PREVIEW_DELAY_MS = 400;
const PICKER_SIZE = 12;

let source = null;
const references = [];
let roles = [];
const previewRequest = latestRequest();
// What to do after any change (set by setupCompose): the estimate and the prompt preview.
let changed = () => {};

export function mode() {
  return document.querySelector("input[name=mode]:checked").value;
}

// What steps 1 and 2 ask for, as fields of a job request.
export function composeState() {
  return {
    mode: mode(),
    source,
    prompt: $("#prompt").value.trim(),
    style: $("#style").value || null,
    negative: $("#negative").value.trim() || null,
    strength: Number($("#strength").value),
    keep: [...document.querySelectorAll("#keep input:checked")].map((box) => box.value),
    references: references.map(({ assetId, role, weight }) => ({
      image: { asset_id: assetId },
      role: role.value,
      weight: Number(weight.value),
    })),
  };
}

// Fill the choices the request schemas define (style presets, keep items, reference roles).
export function loadChoices(openapi) {
  const schemas = openapi.components.schemas;
  for (const name of schemaEnum(schemas.GenerateRequest.properties.style)) {
    $("#style").append(element("option", { value: name }, name));
  }
  for (const name of schemas.EditRequest.properties.keep.items.enum) {
    const box = element("input", { type: "checkbox", value: name });
    box.addEventListener("change", () => changed());
    $("#keep").append(element("label", {}, box, ` ${name.replace("_", " ")}`));
  }
  roles = schemas.ReferenceInput.properties.role.enum;
}

// Wire the controls; `onChange` runs after any change, `previewTarget` gives the model and
// aspect ratio the prompt is previewed for.
export function setupCompose(onChange, previewTarget) {
  const preview = debounce(() => showPreview(previewTarget()), PREVIEW_DELAY_MS);
  changed = () => {
    onChange();
    preview();
  };
  for (const radio of document.querySelectorAll("input[name=mode]")) {
    radio.addEventListener("change", () => {
      const editing = mode() === "edit";
      $("#source-panel").hidden = !editing;
      $("#edit-options").hidden = !editing;
      $("#run").textContent = editing ? "Edit" : "Generate";
      if (editing && savedKey()) loadAssetPicker();
      changed();
    });
  }
  for (const id of ["#prompt", "#negative", "#style", "#strength"]) {
    $(id).addEventListener("input", () => changed());
  }
  $("#strength").addEventListener("input", () => {
    $("#strength-value").value = $("#strength").value;
  });
  $("#source-file").addEventListener("change", (event) => uploadSource(event.target));
  $("#reference-file").addEventListener("change", (event) => addReference(event.target));
  return changed;
}

async function uploadSource(input) {
  const file = input.files[0];
  if (!file) return;
  try {
    const asset = await uploadImage(file, file.name);
    await chooseSource(asset);
    loadAssetPicker();
  } catch (error) {
    showError(error);
  }
  input.value = "";
}

async function chooseSource(asset) {
  source = asset.id;
  const image = element("img", { alt: "Source image", src: await imageURL(asset.id) });
  $("#source-chosen").replaceChildren(image, ` ${asset.id} (${asset.width}x${asset.height})`);
  for (const button of document.querySelectorAll("#asset-picker button")) {
    button.setAttribute("aria-pressed", String(button.dataset.asset === asset.id));
  }
  changed();
}

// Thumbnails of the tenant's newest image assets, each a button that makes it the source.
export async function loadAssetPicker() {
  try {
    const page = await getJSON(`/v1/assets?limit=${PICKER_SIZE}`);
    const buttons = [];
    for (const asset of page.data.filter((item) => item.format !== "zip")) {
      const image = element("img", { alt: "", src: await imageURL(asset.id) });
      const button = element("button", { type: "button", title: asset.id }, image);
      button.dataset.asset = asset.id;
      button.setAttribute("aria-label", `Use ${asset.source} asset ${asset.id} as the source`);
      button.setAttribute("aria-pressed", String(asset.id === source));
      button.addEventListener("click", () => chooseSource(asset));
      buttons.push(button);
    }
    $("#asset-picker").replaceChildren(...buttons);
  } catch (error) {
    showError(error);
  }
}

async function addReference(input) {
  const file = input.files[0];
  if (!file) return;
  try {
    const asset = await uploadImage(file, file.name);
    const role = element("select", { "aria-label": "Role" });
    role.append(...roles.map((name) => element("option", { value: name }, name)));
    const weight = element("input", {
      type: "range", min: "0", max: "1", step: "0.05", value: "1", "aria-label": "Weight",
    });
    const remove = element("button", { type: "button", class: "quiet" }, "Remove");
    const row = element("div", { class: "reference" },
      element("img", { alt: "Reference image", src: await imageURL(asset.id) }),
      role, weight, remove);
    const entry = { assetId: asset.id, role, weight };
    references.push(entry);
    role.addEventListener("change", () => changed());
    weight.addEventListener("input", () => changed());
    remove.addEventListener("click", () => {
      references.splice(references.indexOf(entry), 1);
      row.remove();
      changed();
    });
    $("#references").append(row);
    changed();
  } catch (error) {
    showError(error);
  }
  input.value = "";
}

// Show what the optimizer makes of the brief for the model: given and filled slots, the prompt.
async function showPreview({ model, aspectRatio }) {
  const isLatest = previewRequest();
  const state = composeState();
  if (!state.prompt) {
    $("#preview").replaceChildren(element("p", { class: "muted" }, "Write a brief to preview its prompt."));
    return;
  }
  if (!savedKey()) {
    $("#preview").replaceChildren(element("p", { class: "muted" }, "Use a key to preview the prompt."));
    return;
  }
  const body = { prompt: state.prompt, keep: state.keep };
  if (model) body.model = model;
  if (aspectRatio) body.aspect_ratio = aspectRatio;
  if (state.style) body.style = state.style;
  try {
    const plan = await postJSON("/v1/prompts/optimize", body);
    if (!isLatest()) return;
    const chips = (names, kind) => names.map((name) => element("li", { class: kind }, name));
    $("#preview").replaceChildren(
      element("p", { class: "muted" }, `For ${plan.model} · use case ${plan.use_case} · ${plan.rendering}`),
      element("ul", { class: "chips", "aria-label": "Slots" },
        ...chips(plan.given, "given"), ...chips(plan.filled, "filled")),
      element("p", { class: "final-prompt" }, plan.prompt),
      plan.negative_prompt ? element("p", { class: "muted" }, `Negative: ${plan.negative_prompt}`) : "",
    );
  } catch (error) {
    if (isLatest()) $("#preview").replaceChildren(element("p", { class: "muted" }, error.message));
  }
}
