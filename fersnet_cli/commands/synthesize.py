"""``fersnet synthesize``: the face in each photo (or crop) redrawn with target expressions.

Each input is framed as the service frames an upload (its largest face where it is photo-sized,
the whole image where it is a crop), redrawn by the network, and either put back into the photo
at its own size and colours (``--format photo``), saved as the bare model-sized face, or laid
out as one grid of faces.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from model_core import CheckpointError
from model_core.card import MAX_INTENSITY
from model_core.data import DataError
from model_core.expressions import canonical
from model_core.faces import Face, LargestFace, crop_faces, face_finder, photo_sized, whole_image
from model_core.figures import synthesis_grid
from model_core.photo_edit import crop_box, encode_like, face_turn, read_photo, redrawn_photos

from .. import args as shared


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synthesize", help="redraw the face in each photo with target expressions")
    p.add_argument("inputs", nargs="+",
                   help="face crops or photos (each face found and framed as the service does: see --detect), or "
                        "folders of them (and their subfolders)")
    p.add_argument("--checkpoint", default="default", help=shared.CHECKPOINT_HELP)
    p.add_argument("--target", default="all", help="comma-separated expressions the model draws (its card's "
                   "expressions), or all (the default: every one)")
    p.add_argument("--out", required=True, help="output folder (or PNG file with --grid)")
    p.add_argument("--format", choices=("photo", "face"),
                   help="photo (the default; not with --grid, whose faces are model-sized): each input at its own size "
                        "and colours with its face redrawn, saved as <name>_<target> in the input's format family; "
                        "face: the bare model-sized face the network drew")
    p.add_argument("--intensity", type=intensity_value, help="how strongly each target shows, 0 (unchanged) to "
                   f"{MAX_INTENSITY:g}; 1 is the edit as trained (default: the model card's)")
    p.add_argument("--grid", action="store_true", help="one PNG of model-sized faces: inputs down, target expressions "
                   "across")
    shared.add_detect(p, help="find the largest face in each input (YuNet) and frame it as the service does: yes (or "
                      "--detect alone) for photos, no for face crops, auto (the default) for inputs at least twice the "
                      "model's input across, redrawn whole (and said so) where no face is found")
    shared.add_device(p)
    p.set_defaults(func=run)


def intensity_value(text: str) -> float:
    """``--intensity``'s value, refused by argparse with the reason when it is not a number in range."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= MAX_INTENSITY:
        raise argparse.ArgumentTypeError(f"{text} is outside 0 to {MAX_INTENSITY:g}")
    return value


def targets(spec: str, classes: Sequence[str]) -> list[str]:
    """``--target``: 'all', or comma-separated expression names in any dataset's spelling, each one of ``classes``
    (the model's expressions: what it draws)."""
    if spec == "all":
        return list(classes)
    wanted = []
    for name in spec.split(","):
        try:
            c = canonical(name)
        except KeyError:
            raise shared.UsageError(f"--target: unknown expression {name!r}; the model draws {', '.join(classes)} "
                                    "(or all, alone)") from None
        if c not in classes:
            raise shared.UsageError(f"--target: the model cannot draw {c!r} (it draws {', '.join(classes)})")
        if c not in wanted:  # happy,happy: one file, written once
            wanted.append(c)
    return wanted


def find_face(path: str, image: Image.Image, finder: LargestFace | None, mode: str, img_size: int) -> Face:
    """The face of one input as ``--detect`` says: its largest face where detection applies and finds one, else the
    whole image (a face crop); ``--detect yes`` without a face is an error naming the file, as the service's 400
    ``no_face``."""
    if finder is None or not (mode == "yes" or photo_sized(max(image.size), img_size)):
        return whole_image(image)
    face = finder.find(image)
    if face is None and mode == "yes":
        raise DataError(f"{path}: no face found; use --detect no if the image already is a face crop")
    if face is None:  # a close crop of a face, as often as a photo without one: redrawn whole, and said so
        shared.note(f"{path}: no face found; redrawing the whole image as a face crop (--detect yes refuses it)")
    return face or whole_image(image)


def output_names(inputs: Sequence[str]) -> list[str]:
    """Each input's file name without its suffix, the stem of what is written for it. A stem met before takes its
    input's suffix (``photo.webp`` beside ``photo.avif`` writes ``photo-webp_happy.webp``, saying which input it came
    from), and then ``-2``, ``-3``... (``a/face.jpg`` and ``b/face.jpg``): no two inputs write the same files."""
    names: list[str] = []
    suffixes: dict[str, set[str]] = {}  # of the inputs met so far, by stem
    for path in inputs:
        stem, suffix = Path(path).stem, Path(path).suffix.lstrip(".").lower()
        seen = suffixes.setdefault(stem, set())
        if seen and suffix and suffix not in seen and f"{stem}-{suffix}" not in names:
            stem = f"{stem}-{suffix}"
        seen.add(suffix)
        n = 1
        while (name := stem if n == 1 else f"{stem}-{n}") in names:
            n += 1
        names.append(name)
    return names


def check_out(out: Path, grid: bool, output_format: str | None = None) -> None:
    """``--out`` is a folder, or with ``--grid`` a PNG file: refused before any work where it cannot be; ``--format``
    names what goes into the folder, so beside ``--grid`` it would be ignored."""
    if grid and output_format is not None:
        raise shared.UsageError(f"--format {output_format}: --grid draws the model-sized faces into one PNG; leave --format out")
    if grid and out.is_dir():
        raise shared.UsageError(f"--out {out}: a folder; --grid writes one PNG file (e.g. --out {out / 'grid.png'})")
    if grid and out.suffix.lower() != ".png":
        raise shared.UsageError(f"--out {out}: --grid writes a PNG file, name it .png")
    if not grid and out.exists() and not out.is_dir():
        raise shared.UsageError(f"--out {out}: a file; the redrawn faces are written into a folder")
    folder = out.parent if grid else out
    try:  # made now, not after the work: a folder that cannot be made (read-only, under a file) is said at once
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise shared.UsageError(f"--out {out}: cannot make folder {folder} ({e.strerror or e})") from None
    if not os.access(folder, os.W_OK):
        raise shared.UsageError(f"--out {out}: cannot write into {folder}")


def run(args: argparse.Namespace) -> None:
    check_out(Path(args.out), args.grid, args.format)
    device, loaded = shared.checkpoint_on_device(args)
    if not loaded.model.has_synthesis:
        raise CheckpointError(f"{loaded.path}: this model has no synthesis branch (sharing='none')")
    wanted, preprocess = targets(args.target, loaded.expressions), loaded.preprocess
    intensity = loaded.intensity if args.intensity is None else args.intensity
    finder = face_finder(args.detect != "no", preprocess)
    photos, boxes, turns, inputs = [], [], [], []
    paths = [path for path, _ in shared.input_files(args.inputs)]  # folders, as classify reads them
    for path in paths:
        photo = read_photo(path)
        face = find_face(path, photo.image, finder, args.detect, preprocess.img_size)
        photos.append(photo)
        boxes.append(crop_box(face, photo.image.size, preprocess))
        turns.append(face_turn(face))
        inputs.append(preprocess.to_tensor(preprocess.prepare(crop_faces(photo.image, [face], preprocess)[0])))
    images, names, out = torch.stack(inputs).to(device), output_names(paths), Path(args.out)
    indices = [loaded.expressions.index(t) for t in wanted]
    if args.grid:
        synthesis_grid(loaded.model, images, loaded.expressions, preprocess, out, names, intensity, indices)
        print(f"wrote {out}")
        return
    with torch.inference_mode():  # each input encoded once, decoded once per target
        redrawn = loaded.model.redraw_each(images, indices, intensity)
    for i, name in enumerate(names):
        if args.format == "face":
            for target, drawn in zip(wanted, redrawn[i], strict=True):
                file = out / f"{name}_{target}.png"
                preprocess.to_image(drawn).save(file)
                print(f"wrote {file}")
            continue
        for target, redrawn_photo in zip(wanted, redrawn_photos(photos[i].image, boxes[i], images[i], redrawn[i], preprocess,
                                                                 turns[i]), strict=True):
            data, media_type = encode_like(redrawn_photo, photos[i].format, photos[i].lossy)
            file = out / f"{name}_{target}.{media_type.removeprefix('image/').replace('jpeg', 'jpg')}"
            file.write_bytes(data)
            print(f"wrote {file}")
