// Small helpers shared by the page's modules: building elements, words, and the colour of each expression.

import { ApiError, plainWords } from "./api.js";

/** A new element: el("p", {className: "hint"}, "text", child, ...). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name.startsWith("data-") || name.startsWith("aria-") || name === "role") node.setAttribute(name, value);
    else node[name] = value;
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

// Okabe-Ito colours: told apart by people with the common colour-vision deficiencies.
const COLOURS = {
  angry: "#d55e00",
  disgust: "#009e73",
  fear: "#cc79a7",
  happy: "#e69f00",
  sad: "#0072b2",
  surprise: "#56b4e9",
  neutral: "#a0a0a0",
  contempt: "#f0e442",
};

export function colourOf(expression) {
  return COLOURS[expression] || "#f0e442";
}

/** Black or white, whichever reads better on the expression's colour. */
export function inkOn(expression) {
  const hex = colourOf(expression);
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  return 0.299 * r + 0.587 * g + 0.114 * b > 140 ? "#000" : "#fff";
}

/** "1 face", "2 faces". */
export function count(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** An error for people: what went wrong in plain words, then the service's own message in small print. */
export function errorNodes(error) {
  const detail = error instanceof ApiError && error.status !== 0 ? ` (${error.message})` : "";
  return [el("strong", {}, plainWords(error)), detail ? el("span", { className: "detail" }, detail) : null];
}

export function percent(probability) {
  return `${Math.round(probability * 100)} %`;
}

/** Position a box (in the image's pixels) over a picture shown at any size, in percentages. */
export function placeBox(node, box, width, height) {
  node.style.left = `${(100 * box.x) / width}%`;
  node.style.top = `${(100 * box.y) / height}%`;
  node.style.width = `${(100 * box.width) / width}%`;
  node.style.height = `${(100 * box.height) / height}%`;
}

/**
 * The indices of `faces` from left to right: the order people read a photo in, and so the order its faces are
 * numbered, listed and reached with Tab. (The service lists them largest first; its index stays what a redraw asks
 * for.)
 */
export function leftToRight(faces) {
  return faces.map((_, index) => index).sort((a, b) => faces[a].box.x - faces[b].box.x || faces[a].box.y - faces[b].box.y);
}

/** The number a person sees for the face at each of the service's indices: its place from the left, from 1. */
export function faceNumbers(faces) {
  const numbers = new Array(faces.length);
  leftToRight(faces).forEach((index, place) => { numbers[index] = place + 1; });
  return numbers;
}

/** Boxes of one image's faces over a stage (the photo, or the live camera), labelled with the expression. */
export function drawBoxes(stage, image, { onOpen = null } = {}) {
  stage.querySelectorAll(".face-box").forEach((node) => node.remove());
  stage.classList.toggle("crowded", image.faces.length > 2);
  const numbers = faceNumbers(image.faces);
  leftToRight(image.faces).forEach((index) => {
    const face = image.faces[index];
    // The number always shows; the rest of the label gives way where faces crowd a small screen (the list below
    // and the box's accessible name still say it).
    const box = el(onOpen ? "button" : "div", { className: "face-box" },
      el("span", { className: "tag" }, String(numbers[index]),
        el("span", { className: "tag-rest" }, ` ${face.expression} ${percent(face.confidence)}`)));
    if (onOpen) {
      box.type = "button";
      box.setAttribute("aria-label", `Face ${numbers[index]}: ${face.expression}, ${percent(face.confidence)}. Redraw it`);
      box.addEventListener("click", () => onOpen(index));
    }
    box.dataset.face = String(index);
    box.style.setProperty("--colour", colourOf(face.expression));
    box.style.setProperty("--ink", inkOn(face.expression));
    // Keep the label on the picture: inside the box at the top edge, leftwards near the right edge.
    if (face.box.y < image.height * 0.08) box.classList.add("tag-inside");
    if (face.box.x + face.box.width > image.width * 0.8) box.classList.add("tag-right");
    placeBox(box, face.box, image.width, image.height);
    stage.append(box);
  });
}
