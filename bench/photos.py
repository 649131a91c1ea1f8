"""How a model scores faces that arrive inside photos rather than as ready-made crops.

Every face of a dataset split is enlarged (3-4x) and pasted at a random place
into a larger photo of a random flat colour. Four measurements on the same
faces:

* the crops, classified whole (how the training data was framed);
* the crops through face detection (the service's default path on a crop);
* the photos, classified whole (what ``fersnet evaluate --detect no`` does);
* the photos through face detection (``fersnet evaluate``, which detects on images this large, and the service).

    python -m bench.photos --dataset ckplus --root ../shared/data/ckplus48 --split all
    python -m bench.photos --dataset fer2013 --root ../shared/data/fer2013 --split test --limit 2000
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from PIL import Image

from model_core import load_checkpoint
from model_core.data import load_records
from model_core.data.records import Records
from model_core.evaluate import evaluate_records
from model_core.faces import FaceDetector, LargestFace


def write_folders(records: Records, out: Path, limit: int | None, seed: int) -> None:
    """``out/crops/<class>/`` the faces as they are, ``out/photos/<class>/`` each pasted into a larger photo."""
    rng = random.Random(seed)
    chosen = list(records.records)
    rng.shuffle(chosen)
    for i, record in enumerate(chosen[:limit]):
        name = records.classes[record.label]
        face = (Image.fromarray(record.pixels) if record.pixels is not None else Image.open(record.source)).convert("RGB")
        side = rng.randrange(3 * face.width, 4 * face.width + 1)
        width, height = side * 5 // 2, side * 2
        photo = Image.new("RGB", (width, height), tuple(rng.randrange(40, 220) for _ in range(3)))
        photo.paste(face.resize((side, side), Image.Resampling.BICUBIC), (rng.randrange(width - side + 1), rng.randrange(height - side + 1)))
        for kind, image in (("crops", face), ("photos", photo)):
            (out / kind / name).mkdir(parents=True, exist_ok=True)
            image.save(out / kind / name / f"{i:05d}.png")


def photo_arguments(description: str) -> argparse.Namespace:
    """The options of the benches that paste a split's faces into photos (this one, ``bench.robustness``): the
    checkpoint, the split, a random sample of it, the seed."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--checkpoint", default="default")
    parser.add_argument("--dataset", default="ckplus")
    parser.add_argument("--root", default="../shared/data/ckplus48")
    parser.add_argument("--split", default="all")
    parser.add_argument("--limit", type=int, help="at most this many faces (a random sample)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def main() -> None:
    args = photo_arguments(__doc__.split("\n\n")[0])

    loaded = load_checkpoint(args.checkpoint, "cpu")
    finder = LargestFace(loaded.preprocess, FaceDetector())
    print(f"{loaded.card.name} ({loaded.sha256[:12]}) on {args.dataset}/{args.split}, seed {args.seed}")
    # accuracy: the argmax over all the model's classes; restricted: the best of those the set contains (the same
    # number unless the set lacks some of the model's classes, as CK+48 lacks neutral)
    print("| faces arrive as | face detection | images | face found | accuracy | restricted to the set's classes | macro-F1 | seconds |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        write_folders(load_records(args.dataset, args.root, args.split), Path(tmp), args.limit, args.seed)
        for kind in ("crops", "photos"):
            records = load_records("folder", Path(tmp) / kind, "all")
            for detect in (False, True):
                start = time.perf_counter()
                m = evaluate_records(loaded.model, loaded.classes, loaded.preprocess, records,
                                     find_face=finder if detect else None, answer=loaded.probabilities)  # as served
                decoded = m.n - m.unsupported  # a class the model lacks is scored wrong without being decoded
                found = "-" if m.faceless is None else f"{decoded - m.faceless} of {decoded}"
                restricted = "-" if m.accuracy_restricted is None else f"{100 * m.accuracy_restricted:.2f} %"
                print(f"| {kind} | {'yes' if detect else 'no'} | {m.n} | {found} | {100 * m.accuracy:.2f} % | "
                      f"{restricted} | {100 * m.macro_f1:.2f} % | {time.perf_counter() - start:.0f} |")


if __name__ == "__main__":
    main()
