// One card per photo: the photo with a box on every face, and each face's expression with a bar per probability.

import { ApiError, preview } from "./api.js";
import { colourOf, count, drawBoxes, el, errorNodes, faceNumbers, leftToRight, percent } from "./dom.js";

// Worth trying again as they are: no answer, busy (429), not ready (503), too slow (504).
const PASSING = new Set([0, 429, 503, 504]);

/**
 * A card for a photo that is being classified. Returns {busy(), show(result), fail(error, retry)}: busy() while it
 * is classified again.
 * `retry`, when given, is offered as a "Try again" button for errors that may pass.
 * `onRedraw(photo, image, faceIndex, picture)` is called when a face's box or button is chosen.
 */
export function photoCard(container, photo, { onRedraw, canRedraw }) {
  const status = el("p", { className: "status", role: "status" }, "Finding faces…");
  const picture = el("img", { src: photo.url, alt: `${photo.name}, as uploaded` });
  const stage = el("div", { className: "stage" }, picture);
  picture.addEventListener("load", () => {
    // A picture a few dozen pixels across (a face crop) is enlarged to be seen, its pixels kept sharp.
    stage.classList.toggle("small", Math.max(picture.naturalWidth, picture.naturalHeight) < 96);
    stage.classList.remove("no-preview"); // the service's preview, where it came after a refusal
  });
  // A TIFF, or a HEIC outside Safari: the service reads it but the browser cannot show it, so the service is asked
  // for the picture as it reads it, as a JPEG (upright, at most 1024 pixels a side; the boxes are placed in
  // proportion). Until then, or if that fails too (a text file is no picture for either), the boxes go on a blank of
  // its shape. A preview refused for a reason that passes (no API key yet, busy, starting) is asked for again when
  // the photo's classification next succeeds.
  let previewState = "none"; // "none": the browser shows it, or has not failed yet; "asking"; "shown"; "retry"; "failed"
  async function askPreview() {
    previewState = "asking";
    try {
      const url = URL.createObjectURL(await preview(photo.blob, photo.name));
      if (photo.previewUrl) URL.revokeObjectURL(photo.previewUrl);
      photo.previewUrl = url; // freed with the photo's own URL when the page is cleared
      previewState = "shown";
      picture.src = url;
    } catch (error) {
      const passes = error instanceof ApiError && (error.status === 401 || PASSING.has(error.status));
      previewState = passes ? "retry" : "failed";
      stage.classList.add("no-preview");
      picture.alt = `${photo.name}: this browser cannot show this file`;
    }
  }
  picture.addEventListener("error", () => {
    if (previewState === "none") askPreview();
    else if (previewState === "shown") previewState = "failed"; // the service's JPEG itself did not show: stop here
  });
  const faces = el("ol", { className: "faces" });
  const card = el("article", { className: "photo", "aria-busy": "true" },
    el("h2", {}, photo.name), status, el("div", { className: "photo-body" }, stage, faces));
  container.prepend(card);

  return {
    busy() {
      card.setAttribute("aria-busy", "true");
      card.classList.remove("failed");
      status.textContent = "Finding faces…";
    },
    show({ model, image }) {
      card.setAttribute("aria-busy", "false");
      if (previewState === "retry") askPreview(); // refused before (the key came later, say): the service reads it now
      stage.style.aspectRatio = `${image.width} / ${image.height}`; // only matters when the browser cannot show it
      const found = image.faces.length;
      const invite = canRedraw() ? " Choose a face to redraw it." : "";
      status.textContent = found === 0
        ? "No face was found in this photo. Try a sharper photo where the face looks at the camera."
        : `${count(found, "face")} found by ${model}.${invite}`;
      const open = canRedraw() ? (index) => onRedraw(photo, image, index, picture) : null;
      drawBoxes(stage, image, { onOpen: open });
      const numbers = faceNumbers(image.faces);
      faces.replaceChildren(...leftToRight(image.faces).map((index) => faceItem(image.faces[index], index, numbers[index], open)));
      card.classList.toggle("no-face", found === 0);
    },
    fail(error, retry = null) {
      card.setAttribute("aria-busy", "false");
      card.classList.add("failed");
      status.replaceChildren(...errorNodes(error).filter(Boolean));
      if (retry && error instanceof ApiError && PASSING.has(error.status)) {
        const again = el("button", { type: "button", className: "button again" }, "Try again");
        again.addEventListener("click", () => {
          card.classList.remove("failed");
          card.setAttribute("aria-busy", "true");
          status.textContent = "Finding faces…";
          retry();
        });
        status.append(" ", again);
      }
    },
  };
}

function faceItem(face, index, number, open) {
  const bars = el("ul", { className: "bars", "aria-label": `Probabilities of face ${number}` },
    ...Object.entries(face.probabilities).map(([expression, probability]) => {
      const fill = el("span", { className: "fill" });
      fill.style.width = `${probability * 100}%`;
      fill.style.background = colourOf(expression);
      return el("li", { className: expression === face.expression ? "best" : "" },
        el("span", { className: "name" }, expression),
        el("span", { className: "bar", "aria-hidden": "true" }, fill),
        el("span", { className: "value" }, percent(probability)));
    }));
  const swatch = el("span", { className: "swatch", "aria-hidden": "true" });
  swatch.style.background = colourOf(face.expression);
  const heading = el("h3", {}, swatch, `Face ${number}: ${face.expression}`,
    el("span", { className: "confidence" }, ` ${percent(face.confidence)} confident`));
  const button = open ? el("button", { type: "button", className: "button", onclick: () => open(index) },
    `Redraw face ${number}`) : null;
  return el("li", { className: "face", "data-face": String(index) }, heading, bars, button);
}
