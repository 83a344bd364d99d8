// Refine a result: paint the area to change on a canvas over the image, then send an edit with
// that mask. The mask is a PNG of the image's size whose fully transparent pixels mark the area
// to change and whose opaque pixels stay as they are.

import { imageURL, uploadImage } from "./api.js";
import { $, showError } from "./ui.js";

let target = null;
let painting = false;

function canvasPoint(canvas, event) {
  const box = canvas.getBoundingClientRect();
  return [
    ((event.clientX - box.left) * canvas.width) / box.width,
    ((event.clientY - box.top) * canvas.height) / box.height,
  ];
}

function paint(event) {
  const canvas = $("#refine-canvas");
  const context = canvas.getContext("2d");
  const [x, y] = canvasPoint(canvas, event);
  // The brush is sized in screen pixels, so it feels the same on any image size.
  const radius = (Number($("#brush").value) * canvas.width) / canvas.getBoundingClientRect().width / 2;
  context.fillStyle = "#ff2d55";
  context.beginPath();
  context.arc(x, y, radius, 0, Math.PI * 2);
  context.fill();
}

// The painted canvas as a mask: opaque everywhere, transparent where painted.
async function maskBlob() {
  const painted = $("#refine-canvas");
  const mask = document.createElement("canvas");
  mask.width = painted.width;
  mask.height = painted.height;
  const context = mask.getContext("2d");
  context.fillStyle = "#000";
  context.fillRect(0, 0, mask.width, mask.height);
  context.globalCompositeOperation = "destination-out";
  context.drawImage(painted, 0, 0);
  return new Promise((resolve) => mask.toBlob(resolve, "image/png"));
}

// Paint the whole image: the keyboard's way to refine it all.
function paintAll() {
  const canvas = $("#refine-canvas");
  const context = canvas.getContext("2d");
  context.fillStyle = "#ff2d55";
  context.fillRect(0, 0, canvas.width, canvas.height);
}

function clearMask() {
  const canvas = $("#refine-canvas");
  canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
}

// Open the refine panel on an output.
export async function openRefine(output) {
  target = output;
  try {
    const image = $("#refine-image");
    image.src = await imageURL(output.asset_id);
    await image.decode();
    const canvas = $("#refine-canvas");
    canvas.width = image.naturalWidth;
    canvas.height = image.naturalHeight;
    $("#refine-asset").textContent = output.asset_id;
    $("#refine").hidden = false;
    $("#refine-prompt").focus();
  } catch (error) {
    showError(error);
  }
}

// Wire the panel; `submit(body)` runs the edit job.
export function setupRefine(submit) {
  const canvas = $("#refine-canvas");
  canvas.addEventListener("pointerdown", (event) => {
    painting = true;
    canvas.setPointerCapture(event.pointerId);
    paint(event);
  });
  canvas.addEventListener("pointermove", (event) => painting && paint(event));
  canvas.addEventListener("pointerup", () => {
    painting = false;
  });
  $("#brush").addEventListener("input", () => {
    $("#brush-value").value = $("#brush").value;
  });
  $("#refine-clear").addEventListener("click", clearMask);
  $("#refine-all").addEventListener("click", paintAll);
  $("#refine-close").addEventListener("click", () => {
    $("#refine").hidden = true;
  });
  $("#refine-run").addEventListener("click", async () => {
    try {
      const mask = await uploadImage(await maskBlob(), "mask.png");
      await submit({
        image: { asset_id: target.asset_id },
        mask: { asset_id: mask.id },
        prompt: $("#refine-prompt").value.trim(),
        model: target.model,
      });
      clearMask();
    } catch (error) {
      showError(error);
    }
  });
}
