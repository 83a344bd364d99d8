// The API client: every call carries the pasted key; errors become ApiError with the
// problem+json's title and detail; images are fetched as blobs and shown as object URLs.

const KEY_STORAGE = "darkroom.apiKey";

class ApiError extends Error {
  constructor(problem) {
    super(`${problem.title}: ${problem.detail}`);
    this.problem = problem;
  }
}

export function savedKey() {
  return localStorage.getItem(KEY_STORAGE) || "";
}

export function saveKey(key) {
  localStorage.setItem(KEY_STORAGE, key);
  imageURLs.clear();
}

export function forgetKey() {
  localStorage.removeItem(KEY_STORAGE);
  imageURLs.clear();
}

function authHeaders() {
  return { Authorization: `Bearer ${savedKey()}` };
}

async function problemOf(response) {
  const type = response.headers.get("Content-Type") || "";
  if (type.includes("json")) {
    const body = await response.json();
    return { title: body.title || response.statusText, detail: body.detail || "", ...body };
  }
  return { title: `HTTP ${response.status}`, detail: response.statusText };
}

// A fetch with the key; throws ApiError for any answer that is not 2xx.
export async function send(method, path, { json, body, headers = {} } = {}) {
  const init = { method, headers: { ...authHeaders(), ...headers } };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (body !== undefined) {
    init.body = body;
  }
  const response = await fetch(path, init);
  if (!response.ok) throw new ApiError(await problemOf(response));
  return response;
}

export async function getJSON(path) {
  return (await send("GET", path)).json();
}

export async function postJSON(path, json) {
  return (await send("POST", path, { json })).json();
}

// Store an image (a File or a Blob) as an asset through the upload route.
export async function uploadImage(blob, name = "upload.png") {
  const form = new FormData();
  form.append("file", blob, name);
  return (await send("POST", "/v1/assets", { body: form })).json();
}

// The asset's bytes, fetched with the key (an <img> or a download link cannot send it).
async function assetBlob(assetId) {
  return (await send("GET", `/v1/assets/${assetId}/content`)).blob();
}

const imageURLs = new Map();

// An object URL of the asset's bytes, fetched once.
export async function imageURL(assetId) {
  if (!imageURLs.has(assetId)) imageURLs.set(assetId, URL.createObjectURL(await assetBlob(assetId)));
  return imageURLs.get(assetId);
}

// Save the asset's bytes as a file in the browser's downloads.
export async function downloadAsset(assetId, fileName) {
  const url = URL.createObjectURL(await assetBlob(assetId));
  const link = document.createElement("a");
  link.href = url;
  link.download = fileName;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}
