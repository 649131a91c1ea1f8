"""``fersnet classify``: every face in photos (or face crops) and its expression, as ``/v1/classify`` answers, offline.

Each input is read upright (:func:`~model_core.photo_edit.read_photo`); with ``--detect yes`` (the default, as
the service's ``detect=true``) every face is found (YuNet, largest first), turned upright and framed as the
service frames it, and with ``--detect no`` each picture is read whole, as one face crop. A photo is let go as soon
as its faces are cut out, so a folder of photos holds only their faces. All the faces then go through the model in
batches, as served: its looks at each face, its temperature and its class prior (``--prior``). The report lists
each input's faces; ``--json`` prints the answer in the service's own schema (``service.schemas.ClassifyResponse``),
so a script written against one reads the other. A photo over 2048 pixels across is read at full size here, where
the service decodes it reduced: its boxes may then differ by a pixel, its probabilities in the fifth decimal.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from PIL import Image

from model_core.checkpoint import LoadedModel
from model_core.data import DataError
from model_core.faces import Face, FaceDetector, crop_faces, faces_or_crop, whole_image
from model_core.photo_edit import read_photo
from model_core.preprocess import Preprocess
from model_core.prior import PRIORS, PriorName

from .. import args as shared

if TYPE_CHECKING:
    from service.schemas import ClassifyResponse, FaceExpression

#: Faces classified per forward pass.
BATCH = 64


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("classify", help="the expression of every face in photos or face crops, as the service answers")
    p.add_argument("inputs", nargs="+", help="photos or face crops in any format the service reads, or folders of them "
                   "(and of their subfolders)")
    p.add_argument("--checkpoint", default="default", help=shared.CHECKPOINT_HELP)
    p.add_argument("--detect", choices=("yes", "no"), default="yes",
                   help="yes (the default, as the service's detect=true): find every face (YuNet) and frame each as the "
                        "service does; no: each picture already is one face crop, read whole")
    p.add_argument("--prior", choices=PRIORS, help="the class prior the answer assumes (default: the model card's; "
                   "balanced for the bundled default, natural for candid photos in FER+'s proportions)")
    p.add_argument("--json", action="store_true", help="print the answer as /v1/classify does, as JSON")
    p.add_argument("--skip-bad", action="store_true", help="leave out (and name on stderr) files that are not "
                   "readable pictures, instead of stopping at the first")
    shared.add_device(p)
    p.set_defaults(func=run)


@dataclass
class Read:
    """One input as far as classifying it needs: its name and size, its faces (largest first) and their crops."""

    path: str
    #: How the answer names it: the file's name, or its path inside the folder that was named (``2024/IMG_1.jpg``).
    name: str
    size: tuple[int, int]
    faces: list[Face]
    crops: list[Image.Image]


def read(path: str, name: str, detector: FaceDetector | None, preprocess: Preprocess) -> Read:
    """One input's faces, as the service finds them: all the detector finds (none is an answer, as the service's
    ``"faces": []``), or without a detector the whole picture as one face crop."""
    image = read_photo(path).image
    faces = [whole_image(image)] if detector is None else faces_or_crop(detector, image, preprocess.img_size)
    return Read(path, name, image.size, faces, crop_faces(image, faces, preprocess))


@torch.inference_mode()
def answers(loaded: LoadedModel, crops: list[Image.Image], prior: PriorName | None, device: torch.device) -> list[list[float]]:
    """The served probabilities of face crops, one row a face: the model's looks, its temperature, ``prior``."""
    preprocess = loaded.preprocess
    rows: list[list[float]] = []
    for start in range(0, len(crops), BATCH):
        batch = torch.stack([preprocess(crop) for crop in crops[start : start + BATCH]])
        rows += loaded.probabilities(loaded.model.classify(batch.to(device)).float().cpu(), prior).tolist()
    return rows


def face_answer(face: Face, probabilities: list[float], classes: tuple[str, ...], detect: bool) -> FaceExpression:
    """One face as the service answers it, in the service's own schema."""
    from service.schemas import Box, FaceExpression  # as in run()

    x, y, width, height = face.box
    best = max(range(len(classes)), key=probabilities.__getitem__)
    return FaceExpression(
        box=Box(x=x, y=y, width=width, height=height),
        detection_score=face.score if detect else None,
        expression=classes[best],
        confidence=probabilities[best],
        probabilities=dict(zip(classes, probabilities, strict=True)),
    )


class Progress:
    """``reading 120 of 1,000: 2024/IMG_0120.heic`` on one line of a terminal's stderr, rewritten as photos are read:
    a folder of phone photos takes minutes, and nothing is printed until every one is read. Silent where stderr is
    not a terminal (a pipe, a log file, a test), and for a single input."""

    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0
        self.shown = total > 1 and sys.stderr.isatty()

    def show(self, name: str) -> None:
        self.done += 1
        if self.shown:
            print(f"\r\033[Kreading {self.done:,} of {self.total:,}: {name}", end="", file=sys.stderr, flush=True)

    def clear(self) -> None:
        if self.shown:
            print("\r\033[K", end="", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> None:
    from service.schemas import ClassifyResponse, ImageExpressions  # here, not at the top: every fersnet command imports this module

    device, loaded = shared.checkpoint_on_device(args)
    if args.prior is not None and args.prior not in loaded.priors:
        raise shared.UsageError(f"--prior {args.prior}: {loaded.card.name}'s card records no class frequencies; "
                                f"it answers under {', '.join(loaded.priors)}")
    files = shared.input_files(args.inputs)
    detect = args.detect == "yes"
    detector = FaceDetector() if detect else None
    inputs: list[Read] = []
    progress = Progress(len(files))
    for path, name in files:  # every input read before anything is printed: a bad one is named first
        progress.show(name)
        try:
            inputs.append(read(path, name, detector, loaded.preprocess))
        except DataError as e:
            progress.clear()
            if not args.skip_bad:
                if len(files) > 1:  # the others were fine: say how to have their answers
                    raise DataError(f"{e} (--skip-bad passes over such files and answers the rest)") from None
                raise
            shared.note(f"skipped {e}")
    progress.clear()
    rows = iter(answers(loaded, [crop for one in inputs for crop in one.crops], args.prior, device))
    answer = ClassifyResponse(model=loaded.card.name, detect=detect, prior=args.prior or loaded.prior, images=[
        ImageExpressions(index=index, filename=one.name, width=one.size[0], height=one.size[1],
                         faces=[face_answer(face, next(rows), loaded.classes, detect) for face in one.faces])
        for index, one in enumerate(inputs)
    ])
    print(answer.model_dump_json(indent=2) if args.json else report([one.path for one in inputs], answer))


def report(paths: list[str], answer: ClassifyResponse) -> str:
    """Each input, then each of its faces: the answer, how sure, the box, and the next two expressions."""
    lines = []
    for path, image in zip(paths, answer.images, strict=True):
        faces = image.faces
        lines.append(f"{path} ({image.width}x{image.height}): "
                     + (f"{len(faces)} face{'s' if len(faces) != 1 else ''}" if faces else "no face found"))
        for number, face in enumerate(faces, start=1):
            box = face.box
            others = sorted(face.probabilities.items(), key=lambda item: -item[1])[1:3]
            lines.append(f"  {number}. {face.expression} {100 * face.confidence:.1f} %"
                         f"  (then {', '.join(f'{name} {100 * p:.1f} %' for name, p in others)})"
                         f"  at x {box.x}, y {box.y}, {box.width}x{box.height}")
    return "\n".join(lines)
