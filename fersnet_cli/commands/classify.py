"""``fersnet classify``: every face in photos (or face crops) and its expression, as ``/v1/classify`` answers, offline.

Each input is read upright (:func:`~model_core.photo_edit.read_photo`); in a photo every face is found
(YuNet, largest first), turned upright and framed as the service frames it, and a face crop is read whole
(``--detect``). All the faces go through the model in batches, as served: its looks at each face, its
temperature and its class prior (``--prior``). The report lists each input's faces; ``--json`` prints
the answer in the service's own shape, so a script written against one reads the other.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from model_core.checkpoint import LoadedModel
from model_core.faces import Face, FaceDetector, crop_faces, photo_sized, whole_image
from model_core.photo_edit import read_photo
from model_core.prior import PRIORS, PriorName

from .. import args as shared

#: Faces classified per forward pass.
BATCH = 64


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("classify", help="the expression of every face in photos or face crops, as the service answers")
    p.add_argument("inputs", nargs="+", help="photos or face crops, in any format the service reads")
    p.add_argument("--checkpoint", default="default", help=shared.CHECKPOINT_HELP)
    p.add_argument("--prior", choices=PRIORS, help="the class prior the answer assumes (default: the model card's; "
                   "balanced for the bundled default, natural for candid photos in FER+'s proportions)")
    p.add_argument("--json", action="store_true", help="print the answer as /v1/classify does, as JSON")
    shared.add_detect(p, help="find every face (YuNet) and frame each as the service does: yes (or --detect alone) "
                      "for photos, no for face crops (each read whole), auto (the default) for inputs at least twice "
                      "the model's input across")
    shared.add_device(p)
    p.set_defaults(func=run)


def detects(image: Image.Image, mode: str, img_size: int) -> bool:
    """Whether ``--detect`` looks for faces in this input: always (yes), never (no), or in photo-sized ones (auto)."""
    return mode == "yes" or (mode == "auto" and photo_sized(max(image.size), img_size))


def faces_of(image: Image.Image, detector: FaceDetector | None) -> list[Face]:
    """One input's faces, largest first: all the detector finds (none is an answer, as the service's
    ``"faces": []``), or without a detector the whole image as one face crop."""
    return [whole_image(image)] if detector is None else detector.detect(image.convert("RGB"))


@torch.inference_mode()
def answers(loaded: LoadedModel, crops: list[Image.Image], prior: PriorName | None, device: torch.device) -> torch.Tensor:
    """The served probabilities (faces x classes) of face crops: the model's looks, its temperature, ``prior``."""
    preprocess = loaded.preprocess
    batches = [torch.stack([preprocess(crop) for crop in crops[i : i + BATCH]]) for i in range(0, len(crops), BATCH)]
    logits = [loaded.model.classify(batch.to(device)).float().cpu() for batch in batches]
    return loaded.probabilities(torch.cat(logits), prior) if logits else torch.empty(0, len(loaded.classes))


def face_answer(face: Face, probabilities: list[float], classes: tuple[str, ...], detected: bool) -> dict[str, Any]:
    """One face as the service answers it."""
    x, y, width, height = face.box
    best = max(range(len(classes)), key=probabilities.__getitem__)
    return {
        "box": {"x": x, "y": y, "width": width, "height": height},
        "detection_score": face.score if detected else None,
        "expression": classes[best],
        "confidence": probabilities[best],
        "probabilities": dict(zip(classes, probabilities, strict=True)),
    }


def run(args: argparse.Namespace) -> None:
    device, loaded = shared.checkpoint_on_device(args)
    if args.prior is not None and args.prior not in loaded.priors:
        raise shared.UsageError(f"--prior {args.prior}: {loaded.card.name}'s card records no class frequencies; "
                                f"it answers under {', '.join(loaded.priors)}")
    photos = [read_photo(path).image for path in args.inputs]  # every file read before any work: a bad one is named first
    detected = [detects(image, args.detect, loaded.preprocess.img_size) for image in photos]
    detector = FaceDetector() if any(detected) else None  # crops alone need no YuNet (nor its Python 3.11)
    found = [faces_of(image, detector if looked else None) for image, looked in zip(photos, detected, strict=True)]
    crops = [crop for image, faces in zip(photos, found, strict=True) for crop in crop_faces(image, faces, loaded.preprocess)]
    probabilities = answers(loaded, crops, args.prior, device).tolist()
    images, n = [], 0
    for index, (path, image, faces, looked) in enumerate(zip(args.inputs, photos, found, detected, strict=True)):
        answered = [face_answer(face, probabilities[n + i], loaded.classes, looked) for i, face in enumerate(faces)]
        n += len(faces)
        images.append({"index": index, "filename": Path(path).name, "width": image.width, "height": image.height,
                       "faces": answered})
    if args.json:
        print(json.dumps({"model": loaded.card.name, "prior": args.prior or loaded.prior, "images": images}, indent=2))
    else:
        print(report(args.inputs, images))


def report(paths: list[str], images: list[dict[str, Any]]) -> str:
    """Each input, then each of its faces: the answer, how sure, the box, and the next two expressions."""
    lines = []
    for path, image in zip(paths, images, strict=True):
        faces = image["faces"]
        lines.append(f"{path} ({image['width']}x{image['height']}): "
                     + (f"{len(faces)} face{'s' if len(faces) != 1 else ''}" if faces else "no face found"))
        for number, face in enumerate(faces, start=1):
            box = face["box"]
            others = sorted(face["probabilities"].items(), key=lambda item: -item[1])[1:3]
            lines.append(f"  {number}. {face['expression']} {100 * face['confidence']:.1f} %"
                         f"  (then {', '.join(f'{name} {100 * p:.1f} %' for name, p in others)})"
                         f"  at x {box['x']}, y {box['y']}, {box['width']}x{box['height']}")
    return "\n".join(lines)
