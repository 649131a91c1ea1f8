// The page's wiring: photos in (choose, drop, paste, camera), the model's card, the API key form.

import { acceptedFormats, classify, hasKey, modelCard, plainWords, setDetect, setFormats, setKey, setPrior } from "./api.js";
import { cameraUnavailable, currentFrame, startCamera, stopCamera } from "./camera.js";
import { openRedraw, setDefaultIntensity } from "./redraw.js";
import { photoCard } from "./results.js";

const $ = (id) => document.getElementById(id);
const results = $("results");
const drop = $("drop");
const fileInput = $("files");
const keyPanel = $("key-panel");
const keyButton = $("key-button");

let synthesis = true; // whether the served model can redraw faces (its card says)
let queue = Promise.resolve(); // photos are classified one after another, in the order they came
let photoUrls = [];
let shown = []; // {card, photo} of every photo on the page, classified again when the prior changes
const failed = new Set(); // the photos whose last classification failed: tried again once a new API key is set

function addPhotos(files) {
  // Each new card goes on top; made last file first, several chosen at once read in the order they were chosen.
  const added = [...files].reverse().map((file) => {
    const photo = { blob: file, name: file.name || "photo", url: URL.createObjectURL(file) };
    photoUrls.push(photo.url);
    return { card: photoCard(results, photo, { onRedraw: openRedraw, canRedraw: () => synthesis }), photo };
  }).reverse();
  for (const { card, photo } of added) {
    shown.push({ card, photo });
    classifyInto(card, photo);
  }
  $("clear").hidden = false;
}

function classifyInto(card, photo) {
  queue = queue.then(async () => {
    try {
      card.show(await classify(photo.blob, photo.name));
      failed.delete(photo);
    } catch (error) {
      failed.add(photo);
      card.fail(error, () => classifyInto(card, photo));
    }
  });
}

// ------------------------------------------------------------------ photos in

$("choose").addEventListener("click", () => fileInput.click());
fileInput.addEventListener("change", () => {
  addPhotos([...fileInput.files]);
  fileInput.value = ""; // choosing the same file again still counts
});

const carriesFiles = (event) => event.dataTransfer && [...event.dataTransfer.types].includes("Files");
document.addEventListener("dragover", (event) => {
  if (!carriesFiles(event)) return;
  event.preventDefault(); // without it the browser would open the dropped file instead of this page keeping it
  drop.classList.add("over");
});
document.addEventListener("dragleave", (event) => {
  if (!event.relatedTarget) drop.classList.remove("over");
});
document.addEventListener("drop", (event) => {
  if (!carriesFiles(event)) return;
  event.preventDefault();
  drop.classList.remove("over");
  addPhotos([...event.dataTransfer.files]);
});
document.addEventListener("paste", (event) => {
  const files = [...(event.clipboardData ? event.clipboardData.files : [])];
  if (files.length > 0) addPhotos(files);
});

$("clear").addEventListener("click", () => {
  results.replaceChildren();
  photoUrls.forEach((url) => URL.revokeObjectURL(url));
  shown.forEach(({ photo }) => photo.previewUrl && URL.revokeObjectURL(photo.previewUrl)); // the service's previews
  photoUrls = [];
  shown = [];
  failed.clear();
  $("clear").hidden = true;
  $("choose").focus();
});

// The class prior: offered where the model's card records its training class frequencies (/v1/models `prior`).
$("prior").addEventListener("change", () => {
  setPrior($("prior").value);
  for (const { card, photo } of shown) {
    card.busy();
    classifyInto(card, photo);
  }
});

// ------------------------------------------------------------------ camera

const noCamera = cameraUnavailable();
if (noCamera) {
  $("camera-start").disabled = true;
  $("camera-hint").textContent = noCamera;
}
$("camera-start").addEventListener("click", startCamera);
$("camera-stop").addEventListener("click", () => stopCamera());
$("camera-snap").addEventListener("click", async () => {
  const blob = await currentFrame(1600);
  if (!blob) return;
  const stamp = new Date().toTimeString().slice(0, 8).replaceAll(":", "");
  addPhotos([new File([blob], `camera-${stamp}.jpg`, { type: "image/jpeg" })]);
});

// ------------------------------------------------------------------ the model and the API key

async function describeModel() {
  const line = $("model");
  try {
    const card = await modelCard();
    synthesis = card.synthesis;
    setDefaultIntensity(card.intensity);
    // Calibrated (a temperature on the card): a face called 80 % likely was right about 8 times in 10 on held-out faces.
    const calibrated = card.calibration && card.calibration.temperature;
    const confidence = calibrated
      ? "its percentages calibrated on faces it was not trained on"
      : "its percentages not calibrated";
    // The class prior the answers assume (/v1/classify `prior`): a choice, opened at the model's default.
    if (card.prior && card.prior.default) {
      $("prior").value = card.prior.default;
      $("prior-choice").hidden = false;
    }
    // A model with an answer tail recognises classes (contempt, say) it cannot draw: say which it redraws.
    const drawn = card.expressions || card.classes;
    const redraws = drawn.join() === card.classes.join() ? "." : `; redraws ${drawn.join(", ")}.`;
    // A service without a face detector reads each picture as one face crop: say so, and send them that way.
    const findsFaces = !(card.runtime && card.runtime.face_detection === false);
    setDetect(findsFaces);
    setFormats(card.runtime && card.runtime.image_formats);
    $("formats").textContent = acceptedFormats();
    line.textContent = `Model ${card.name}: ${card.classes.length} expressions, ${confidence}`
      + (synthesis ? redraws : ", recognition only (no redrawing).")
      + (findsFaces ? "" : " This server cannot find faces in photos: each picture is read as one face, so send close crops of a single face.");
  } catch (error) {
    if (error.status === 401) {
      line.textContent = hasKey()
        ? "The service refused the API key set for this tab: enter the right one."
        : "This service needs an API key.";
    } else if (error.status === 503) {
      line.textContent = "The model is still starting…";
      setTimeout(describeModel, 2000);
    } else {
      line.textContent = plainWords(error);
    }
  }
}

function showKeyPanel(open) {
  keyPanel.hidden = !open;
  keyButton.setAttribute("aria-expanded", String(open));
  $("key-state").textContent = hasKey() ? "A key is set for this tab." : "No key is set.";
  if (open) $("key").focus();
}

keyButton.addEventListener("click", () => showKeyPanel(keyPanel.hidden));
document.addEventListener("fersnet:key-needed", () => {
  if (keyPanel.hidden) showKeyPanel(true);
});
$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  setKey($("key").value);
  $("key").value = "";
  showKeyPanel(false);
  keyButton.focus();
  describeModel();
  for (const { card, photo } of shown) { // what failed, for want of the key perhaps, is tried with the new one
    if (!failed.has(photo)) continue;
    card.busy();
    classifyInto(card, photo);
  }
});
$("key-forget").addEventListener("click", () => {
  setKey("");
  showKeyPanel(true);
});

describeModel();
