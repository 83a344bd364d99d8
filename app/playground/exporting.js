// The export panel: the destination presets, format, fit and bundle of POST /v1/export; the
// files it makes are downloaded with the key, one by one or as the zip bundle.

import { downloadAsset, getJSON } from "./api.js";
import { runJob } from "./results.js";
import { $, element, schemaEnum, showError } from "./ui.js";

let assetId = null;

// Fill the presets (GET /v1/export/presets) and the format and fit choices of the schema.
export async function loadExportChoices(openapi) {
  const properties = openapi.components.schemas.ExportRequest.properties;
  const options = (property, chosen) => schemaEnum(property).map((name) => {
    const option = element("option", { value: name }, name);
    option.selected = name === chosen;
    return option;
  });
  $("#export-format").replaceChildren(...options(properties.format, properties.format.default));
  $("#export-fit").replaceChildren(...options(properties.fit, properties.fit.default));
  const presets = (await getJSON("/v1/export/presets")).data;
  $("#presets").replaceChildren(...presets.map((preset) =>
    element("label", {}, element("input", { type: "checkbox", value: preset.name }),
      ` ${preset.name} `, element("span", { class: "muted" }, `${preset.width}x${preset.height}`))));
}

export function openExport(output) {
  assetId = output.asset_id;
  $("#export-asset").textContent = assetId;
  $("#export-files").replaceChildren();
  $("#export").hidden = false;
  $("#presets input")?.focus();
}

function fileName(output) {
  if (output.format === "zip") return `${assetId}-export.zip`;
  const target = output.details.target || `${output.width}x${output.height}`;
  return `${target}.${output.format}`;
}

export function setupExport() {
  $("#export-close").addEventListener("click", () => {
    $("#export").hidden = true;
  });
  $("#export-run").addEventListener("click", async () => {
    const targets = [...document.querySelectorAll("#presets input:checked")].map((box) => box.value);
    if (!targets.length) {
      showError(new Error("Tick at least one destination to export for."));
      return;
    }
    const body = {
      asset_id: assetId,
      targets,
      format: $("#export-format").value,
      fit: $("#export-fit").value,
      bundle: $("#export-bundle").checked,
    };
    try {
      const job = await runJob("/v1/export", body, { show: false });
      $("#export-files").replaceChildren(...job.outputs.map((output) => {
        const name = fileName(output);
        const button = element("button", { type: "button" }, `Download ${name}`);
        button.addEventListener("click", () => downloadAsset(output.asset_id, name).catch(showError));
        return element("li", {}, button,
          output.format === "zip" ? "" : element("span", { class: "muted" }, ` ${output.width}x${output.height}`));
      }));
    } catch (error) {
      showError(error);
    }
  });
}
