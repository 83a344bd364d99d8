// The job history (GET /v1/jobs), each job a button that reopens it, and an output's lineage
// (GET /v1/assets/{id}/lineage): every asset it was made from, oldest first.

import { getJSON, imageURL } from "./api.js";
import { $, element, showError } from "./ui.js";

const HISTORY_SIZE = 15;

// List the newest jobs; `onOpen(jobId)` reopens one.
export async function loadHistory(onOpen) {
  try {
    const page = await getJSON(`/v1/jobs?limit=${HISTORY_SIZE}`);
    $("#history").replaceChildren(...page.data.map((job) => {
      const when = new Date(job.created_at).toLocaleTimeString();
      const models = job.groups ? job.groups.map((group) => group.model).join(" vs ") : job.model;
      const button = element("button", { type: "button", class: "quiet" },
        element("strong", {}, job.kind), ` ${job.status} · ${models} · ${job.outputs.length} outputs · ${when}`);
      button.dataset.job = job.id;
      button.addEventListener("click", () => onOpen(job.id));
      return element("li", {}, button);
    }));
  } catch (error) {
    showError(error);
  }
}

export async function openLineage(output) {
  try {
    const lineage = (await getJSON(`/v1/assets/${output.asset_id}/lineage`)).data;
    const items = [];
    for (const asset of lineage) {
      const roles = asset.parents.map((parent) => `${parent.role} ${parent.asset_id}`).join(", ");
      const image = asset.format === "zip" ? "" : element("img", { alt: "", src: await imageURL(asset.id) });
      items.push(element("li", {}, image,
        element("span", {}, element("strong", {}, asset.source), ` ${asset.id}`,
          roles ? element("span", { class: "muted" }, ` from ${roles}`) : "")));
    }
    $("#lineage-list").replaceChildren(...items);
    $("#lineage").hidden = false;
    $("#lineage-close").focus();
  } catch (error) {
    showError(error);
  }
}

export function setupLineage() {
  $("#lineage-close").addEventListener("click", () => {
    $("#lineage").hidden = true;
  });
}
