// The live camera: a few frames a second through POST /v1/classify, never more than one request at a time.
//
// Frames are drawn to a canvas, sent as JPEG, and the boxes of the answer are
// drawn over the video. "Take photo" keeps the current frame as a photo like
// an upload, whose faces can then be redrawn.

import { ApiError, classify, plainWords } from "./api.js";
import { count, drawBoxes } from "./dom.js";

const FRAME_INTERVAL_MS = 300; // about three frames a second: live enough, and light on a shared CPU
const FRAME_MAX_SIDE = 640; // faces need no more pixels than this for the detector

const section = document.getElementById("camera");
const video = document.getElementById("camera-video");
const stage = document.getElementById("camera-stage");
const status = document.getElementById("camera-status");
const rateLine = document.getElementById("camera-rate");
const startButton = document.getElementById("camera-start");
let stream = null;

/** Why the camera cannot be used here, or null when it can. */
export function cameraUnavailable() {
  if (!window.isSecureContext) {
    return "The camera works only when this page is opened as http://localhost, http://127.0.0.1 or over HTTPS.";
  }
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return "This browser does not give pages access to a camera.";
  }
  return null;
}

export async function startCamera() {
  const reason = cameraUnavailable();
  section.hidden = false;
  if (reason) {
    status.textContent = reason;
    return;
  }
  status.textContent = "Asking for the camera…";
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "user" }, audio: false });
  } catch (error) {
    status.textContent = error && error.name === "NotAllowedError"
      ? "The camera was not allowed. Allow it in the browser's site settings, then try again."
      : "No camera could be opened (none is connected, or another program is using it).";
    return;
  }
  video.srcObject = stream;
  await video.play();
  startButton.disabled = true;
  section.scrollIntoView({ block: "nearest" });
  document.getElementById("camera-stop").focus();
  loop(stream);
}

/** Stop the camera; `hide` also closes its section (kept open to show why it stopped). */
export function stopCamera({ hide = true } = {}) {
  if (stream) stream.getTracks().forEach((track) => track.stop());
  stream = null;
  video.srcObject = null;
  rateLine.textContent = "";
  stage.querySelectorAll(".face-box").forEach((node) => node.remove());
  startButton.disabled = false;
  if (hide) {
    section.hidden = true;
    startButton.focus();
  }
}

/** The current frame as a JPEG blob (at most FRAME_MAX_SIDE pixels wide or high). */
export function currentFrame(maxSide = FRAME_MAX_SIDE) {
  const scale = Math.min(1, maxSide / Math.max(video.videoWidth, video.videoHeight));
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(video.videoWidth * scale);
  canvas.height = Math.round(video.videoHeight * scale);
  canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.85));
}

async function loop(own) {
  const started = performance.now();
  let frames = 0;
  while (stream === own) {
    const began = performance.now();
    if (video.videoWidth > 0) {
      try {
        const { image } = await classify(await currentFrame(), "frame.jpg");
        if (stream !== own) return;
        drawBoxes(stage, image);
        frames += 1;
        const rate = (1000 * frames) / (performance.now() - started);
        const faces = image.faces.length === 0 ? "No face" : count(image.faces.length, "face");
        // The live status is read aloud on every change: it changes with the faces, the frame rate beside it does not.
        if (status.textContent !== faces) status.textContent = faces;
        rateLine.textContent = `${rate.toFixed(1)} frames a second`;
      } catch (error) {
        if (stream !== own) return;
        status.textContent = plainWords(error);
        if (error instanceof ApiError && error.status === 401) {
          stopCamera({ hide: false });
          return;
        }
        const retry = error instanceof ApiError && error.retryAfter ? Number(error.retryAfter) * 1000 : 1000;
        await sleep(retry);
      }
    }
    await sleep(Math.max(0, FRAME_INTERVAL_MS - (performance.now() - began)));
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
