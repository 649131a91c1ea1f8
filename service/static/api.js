// Talking to the service: the same endpoints and error shape as any other client.
//
// Every request goes to this page's own origin (the Content-Security-Policy
// allows nothing else), by a path relative to the page, so the page also works
// behind a proxy that serves the service under a prefix. The API key, when the service has one, lives in this
// tab's sessionStorage and is sent as the X-API-Key header, never in a URL.
// A 401 answer fires the document event "fersnet:key-needed", which opens the key form.

const KEY_STORAGE = "fersnet-api-key";

/** An answer that was not 2xx, or no answer at all (status 0). */
export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

let apiKey = readStoredKey();

function readStoredKey() {
  try {
    return sessionStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return ""; // storage disabled: the key lives in memory only
  }
}

export function hasKey() {
  return apiKey !== "";
}

/** Remember the key for this tab (an empty key forgets it). */
export function setKey(key) {
  apiKey = key.trim();
  try {
    if (apiKey) sessionStorage.setItem(KEY_STORAGE, apiKey);
    else sessionStorage.removeItem(KEY_STORAGE);
  } catch {
    // storage disabled: keep it in memory
  }
}

async function request(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (apiKey) headers.set("X-API-Key", apiKey);
  let response;
  try {
    response = await fetch(path, { ...options, headers });
  } catch {
    throw new ApiError(0, "network", "no answer from the service");
  }
  if (response.ok) return response;
  if (response.status === 401) document.dispatchEvent(new CustomEvent("fersnet:key-needed"));
  let error = {};
  try {
    error = (await response.json()).error || {};
  } catch {
    // not the service's JSON error (a proxy's page, say): the status alone tells what happened
  }
  throw new ApiError(response.status, error.code || "http_error", error.message || response.statusText,
    response.headers.get("Retry-After"));
}

/** The served model's card (GET /v1/models). */
export async function modelCard() {
  return (await request("v1/models")).json();
}

// The class prior classify asks for (`natural` or `balanced`); null: the model's default.
let prior = null;

/** Ask every later classify request (photos and camera alike) for this class prior; null for the model's default. */
export function setPrior(value) {
  prior = value;
}

// Whether the service finds the faces in each picture; false where it has no face detector (/v1/models
// `runtime.face_detection`), and then every picture is sent as one face crop (`detect=false`).
let detect = true;

/** Send later pictures as face crops (false) or as photos whose faces the service finds (true). */
export function setDetect(value) {
  detect = value;
}

// The image formats the server decodes (GET /v1/models `runtime.image_formats`), as a person reads a list of them.
let formats = "JPEG, PNG, WebP, HEIC, AVIF, BMP, GIF or TIFF";

export function setFormats(names) {
  if (names && names.length) formats = names.length === 1 ? names[0] : `${names.slice(0, -1).join(", ")} or ${names.at(-1)}`;
}

export function acceptedFormats() {
  return formats;
}

/** The faces and expressions of one photo (POST /v1/classify): the `images[0]` of the answer, and the model name. */
export async function classify(blob, filename) {
  const form = new FormData();
  form.append("images", blob, filename);
  if (prior) form.append("prior", prior);
  if (!detect) form.append("detect", "false");
  const body = await (await request("v1/classify", { method: "POST", body: form })).json();
  return { model: body.model, image: body.images[0] };
}

/** The picture as the service reads it, upright, as a JPEG blob any browser shows (POST /v1/preview): for a HEIC,
 * AVIF or TIFF that this browser cannot show itself. Its proportions are the upload's. */
export async function preview(blob, filename, maxSide = 1024) {
  const form = new FormData();
  form.append("image", blob, filename);
  return (await request(`v1/preview?max_side=${maxSide}`, { method: "POST", body: form })).blob();
}

/**
 * One face redrawn with every expression (POST /v1/synthesize, format=json).
 *
 * Returns the face that was used, the intensity drawn at (the model's default
 * when `intensity` is null) and a list of {expression, blob}: each blob is the
 * whole uploaded photo with that face redrawn (`images: [{expression,
 * media_type, image_base64}]`).
 */
export async function synthesize(blob, filename, faceIndex, intensity = null) {
  const form = new FormData();
  form.append("image", blob, filename);
  const query = new URLSearchParams({ targets: "all", format: "json", face: String(faceIndex) });
  if (intensity !== null) query.set("intensity", String(intensity));
  if (!detect) query.set("detect", "false");
  const body = await (await request(`v1/synthesize?${query}`, { method: "POST", body: form })).json();
  return {
    face: body.face || null,
    intensity: body.intensity,
    images: body.images.map((item) => ({
      expression: item.expression,
      blob: base64Blob(item.image_base64, item.media_type),
    })),
  };
}

function base64Blob(text, type) {
  const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  return new Blob([bytes], { type });
}

/** What went wrong, in plain words for a person (the service's own message is shown beside it). */
export function plainWords(error) {
  if (!(error instanceof ApiError)) return "Something went wrong in this page.";
  const seconds = Number(error.retryAfter);
  const wait = seconds > 0 ? ` Try again in ${seconds} second${seconds === 1 ? "" : "s"}.` : "";
  switch (error.code) {
    case "network":
      return "The service did not answer. Is it still running?";
    case "no_face":
      return "No face was found in this photo. Try a sharper photo where the face looks at the camera.";
    case "empty_image":
    case "bad_image":
      return "This file could not be read as a picture.";
    case "too_many_pixels":
      return "This photo has too many pixels for the service. Try a smaller one.";
    case "synthesis_unavailable":
      return "This model only recognises expressions; it cannot redraw faces.";
    case "detection_unavailable":
      return "This server cannot find faces in photos: its Python has no face detector. It reads ready-made face crops only.";
    case "shutting_down":
      return "The service is shutting down.";
    default:
      break;
  }
  switch (error.status) {
    case 401:
      return "The service needs an API key. Enter it under “API key”.";
    case 413:
      return "This photo is too large for the service. Try a smaller one.";
    case 415:
      return `This file is not a picture the service reads: use ${formats}.`;
    case 422:
      return "The service did not understand the request.";
    case 429:
      return `The service is busy right now.${wait || " Try again in a moment."}`;
    case 503:
      return `The model is not ready yet (it may still be starting).${wait || " Try again in a moment."}`;
    case 504:
      return "The service took too long to answer. Try again.";
    default:
      return `The service answered with an error (${error.status}).`;
  }
}
