// The redraw dialog: one face of a photo redrawn with every expression (POST /v1/synthesize), each downloadable.
//
// The service answers with the whole photo redrawn (same size as the upload,
// the face in the same place): each is shown as a crop around the face, with
// a link to download the whole picture. The slider redraws the same face more
// or less strongly; it opens at the model's default intensity. It stays usable
// while a redraw runs, so a keyboard user keeps its focus: a newer value simply
// replaces the answer being waited for.

import { synthesize } from "./api.js";
import { el, errorNodes, faceNumbers } from "./dom.js";

const dialog = document.getElementById("redraw");
const title = document.getElementById("redraw-title");
const status = document.getElementById("redraw-status");
const tiles = document.getElementById("redraw-tiles");
const slider = document.getElementById("redraw-intensity");
const sliderValue = document.getElementById("redraw-intensity-value");
let urls = []; // object URLs of the open dialog, freed when it closes
let current = 0; // which request the dialog shows: an older answer arriving late is dropped
let shown = null; // the arguments of the open dialog, for the slider to redraw the same face
let defaultIntensity = null; // the model's (/v1/models `intensity`), where the page has read it

/** The intensity the slider opens at before the service says which it drew at (its card's default). */
export function setDefaultIntensity(value) {
  defaultIntensity = typeof value === "number" ? value : null;
}

slider.addEventListener("input", () => { sliderValue.textContent = slider.value; });
slider.addEventListener("change", () => {
  if (shown) openRedraw(...shown, Number(slider.value));
});

document.getElementById("redraw-close").addEventListener("click", () => dialog.close());
dialog.addEventListener("close", () => {
  current += 1;
  urls.forEach((url) => URL.revokeObjectURL(url));
  urls = [];
  tiles.replaceChildren();
});

/** Open the dialog for face `faceIndex` of `photo` (`image` is its /v1/classify answer, `picture` its <img>),
 * redrawn at `intensity` (null: the model's default). */
export async function openRedraw(photo, image, faceIndex, picture, intensity = null) {
  const request = ++current;
  shown = [photo, image, faceIndex, picture];
  const asked = intensity ?? defaultIntensity;
  if (asked !== null) {
    slider.value = String(asked);
    sliderValue.textContent = slider.value;
  }
  const face = image.faces[faceIndex];
  const number = faceNumbers(image.faces)[faceIndex]; // as the page numbers it, from the left
  title.textContent = `Face ${number} of ${photo.name}, redrawn`;
  status.classList.remove("error");
  status.textContent = "Redrawing the face with every expression…";
  tiles.replaceChildren();
  if (picture.naturalWidth > 0) {
    // The picture on the page may be the service's smaller preview of a file this browser cannot show.
    tiles.append(tile(`as photographed (${face.expression})`, crop(picture, face.box, "Face as photographed", image.width), null));
  }
  if (!dialog.open) dialog.showModal();
  dialog.setAttribute("aria-busy", "true");
  try {
    // Both endpoints number faces the same way (largest first), so classify's index is synthesize's `face`.
    const answer = await synthesize(photo.blob, photo.name, faceIndex, intensity);
    if (request !== current) return;
    slider.value = String(answer.intensity);
    sliderValue.textContent = slider.value;
    const box = answer.face ? answer.face.box : face.box;
    for (const item of answer.images) {
      tiles.append(await redrawnTile(item, box, photo, number, image.width));
      if (request !== current) return;
    }
    status.textContent = `${answer.images.length} expressions at intensity ${answer.intensity}. Each photo can be downloaded.`;
  } catch (error) {
    if (request !== current) return;
    const again = el("button", { type: "button", className: "button again" }, "Try again");
    again.addEventListener("click", () => openRedraw(photo, image, faceIndex, picture, intensity));
    status.replaceChildren(...errorNodes(error).filter(Boolean), " ", again);
    status.classList.add("error");
  } finally {
    if (request === current) dialog.setAttribute("aria-busy", "false");
  }
}

async function redrawnTile(item, box, photo, number, width) {
  const url = URL.createObjectURL(item.blob);
  urls.push(url);
  const picture = el("img", { src: url, alt: `Face ${number} redrawn as ${item.expression}` });
  await picture.decode().catch(() => {});
  const stem = `${photo.name.replace(/\.[^.]*$/, "")}-face${number}-${item.expression}`;
  const extension = { "image/jpeg": "jpg", "image/webp": "webp", "image/avif": "avif" }[item.blob.type] || "png";
  const view = crop(picture, box, `Face ${number} redrawn as ${item.expression}`, width);
  const link = el("a", { href: url, download: `${stem}.${extension}` }, `Download the ${item.expression} photo`);
  return tile(item.expression, view, link);
}

function tile(caption, view, link) {
  return el("figure", { className: "tile" }, view, el("figcaption", {}, el("span", {}, caption), link));
}

/** A square canvas around a face box of a picture, framed about as the model sees the face. The box is in the
 * pixels of the upload, `width` pixels wide; the picture may be drawn at another size (a preview). */
function crop(picture, box, label, width) {
  const scale = picture.naturalWidth / width;
  const side = Math.min(Math.max(box.width, box.height) * 1.25 * scale, picture.naturalWidth, picture.naturalHeight);
  const cx = (box.x + box.width / 2) * scale;
  const cy = (box.y + box.height / 2) * scale;
  const left = Math.min(Math.max(0, cx - side / 2), picture.naturalWidth - side);
  const top = Math.min(Math.max(0, cy - side / 2), picture.naturalHeight - side);
  const size = Math.max(1, Math.round(Math.min(side, 384)));
  const canvas = el("canvas", { width: size, height: size, role: "img", "aria-label": label });
  canvas.getContext("2d").drawImage(picture, left, top, side, side, 0, 0, size, size);
  return canvas;
}
