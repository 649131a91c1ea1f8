"""How the served answer holds up when the photo is not taken the way FER2013's were: tilted, darker, flatter,
blurred or heavily compressed.

The faces of a split are pasted into photos as ``bench.photos`` makes them
(enlarged 3-4 times, a flat background), then every photo is changed one way
at a time and classified as the service classifies it: the largest face found
by YuNet, framed as in training, answered under the card's class prior. Each
row is the same faces under one change; the difference is against the
unchanged photos, so it says what that change costs.

    python -m bench.robustness                                   # CK+48's 981 frames, about 3 minutes on 2 cores
    python -m bench.robustness --dataset fer2013 --root ../shared/data/fer2013 --split val --limit 1000
"""

from __future__ import annotations

import io
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageEnhance, ImageFilter

from model_core import load_checkpoint
from model_core.data import load_records
from model_core.evaluate import evaluate_records
from model_core.faces import FaceDetector, LargestFace

from .photos import photo_arguments, write_folders

Change = Callable[[Image.Image, random.Random], Image.Image]


def _gamma(power: float) -> Change:
    table = [round(255 * (v / 255) ** power) for v in range(256)]
    return lambda image, _: image.point(table * len(image.getbands()))


def _tilt(degrees: float) -> Change:
    def tilt(image: Image.Image, rng: random.Random) -> Image.Image:
        return image.rotate(rng.uniform(-degrees, degrees), resample=Image.Resampling.BICUBIC,
                            fillcolor=image.getpixel((0, 0)))
    return tilt


def _jpeg(quality: int) -> Change:
    def compress(image: Image.Image, _: random.Random) -> Image.Image:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality)
        return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return compress


#: Each change, by the name the table gives it. Tilts turn the whole photo by a random angle up to that many degrees
#: either way; a gamma above 1 darkens the mid-tones (2.2: a dim room), below 1 brightens them.
CHANGES: dict[str, Change] = {
    "unchanged": lambda image, _: image,
    "tilted up to 10 degrees": _tilt(10),
    "tilted up to 20 degrees": _tilt(20),
    "tilted up to 30 degrees": _tilt(30),
    "darker (gamma 2.2)": _gamma(2.2),
    "brighter (gamma 0.45)": _gamma(0.45),
    "flatter (contrast 0.4)": lambda image, _: ImageEnhance.Contrast(image).enhance(0.4),
    "blurred (Gaussian, radius 2)": lambda image, _: image.filter(ImageFilter.GaussianBlur(2)),
    "JPEG quality 15": _jpeg(15),
}


def changed_folder(photos: Path, out: Path, change: Change, seed: int) -> Path:
    """Every photo under ``photos/<class>/`` changed into ``out/<class>/``, seeded so each run tilts alike."""
    rng = random.Random(seed)
    for path in sorted(photos.rglob("*.png")):
        target = out / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        change(Image.open(path).convert("RGB"), rng).save(target)
    return out


def main() -> None:
    args = photo_arguments(__doc__.split("\n\n")[0])

    loaded = load_checkpoint(args.checkpoint, "cpu")
    finder = LargestFace(loaded.preprocess, FaceDetector())
    print(f"{loaded.card.name} ({loaded.sha256[:12]}) on {args.dataset}/{args.split}, photos through detection, "
          f"{loaded.prior} prior, seed {args.seed}")
    print("| photos | face found | accuracy | restricted to the set's classes | difference | seconds |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    clean: float | None = None
    with tempfile.TemporaryDirectory() as tmp:
        write_folders(load_records(args.dataset, args.root, args.split), Path(tmp), args.limit, args.seed)
        for i, (name, change) in enumerate(CHANGES.items()):
            start = time.perf_counter()
            folder = changed_folder(Path(tmp) / "photos", Path(tmp) / f"changed_{i}", change, args.seed)
            m = evaluate_records(loaded.model, loaded.classes, loaded.preprocess, load_records("folder", folder, "all"),
                                 find_face=finder, answer=loaded.probabilities)  # as served
            clean = m.accuracy if clean is None else clean
            decoded = m.n - m.unsupported
            found = f"{decoded - (m.faceless or 0)} of {decoded}"
            difference = "" if name == "unchanged" else f"{100 * (m.accuracy - clean):+.2f}"
            restricted = "-" if m.accuracy_restricted is None else f"{100 * m.accuracy_restricted:.2f} %"
            print(f"| {name} | {found} | {100 * m.accuracy:.2f} % | {restricted} | {difference} | "
                  f"{time.perf_counter() - start:.0f} |", flush=True)


if __name__ == "__main__":
    main()
