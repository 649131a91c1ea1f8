"""Measure how FER2013 frames a face, in units of the service's face detector box.

The service finds faces with YuNet (the ``yuface`` package) and must crop them
the way the training images were cropped. FER2013's crops are the whole
48x48 image, so: enlarge a FER2013 face, paste it into a larger grey photo,
detect it, and express the training crop (the pasted square) in terms of the
detector's box. The medians over many faces are ``Preprocess.face_scale``
(crop side / box side) and ``face_shift`` (how far the crop's centre sits
below the box's centre, in box heights).

    python -m bench.face_framing --root ../shared/data/fer2013 --n 400
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import yuface
from PIL import Image

from model_core.data import load_records


def measure(root: Path, n: int, upscale: int, seed: int) -> dict[str, float]:
    records = load_records("fer2013", root, "val").records
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(records), size=min(n, len(records)), replace=False)
    scales, shifts, found = [], [], 0
    for i in chosen:
        face = Image.open(records[int(i)].source).convert("L")
        side = face.width * upscale
        canvas = Image.new("L", (side * 2, side * 2), 128)
        offset = side // 2
        canvas.paste(face.resize((side, side), Image.Resampling.BICUBIC), (offset, offset))
        bgr = np.repeat(np.asarray(canvas)[:, :, None], 3, axis=2)
        confs, boxes, _ = yuface.detect(bgr, conf=0.5)
        if len(boxes) == 0:
            continue
        found += 1
        x, y, w, h = (float(v) for v in boxes[int(np.argmax(confs))])
        scales.append(side / max(w, h))
        shifts.append((offset + side / 2 - (y + h / 2)) / h)
    return {
        "faces": len(chosen),
        "detected": found,
        "face_scale": float(np.median(scales)),
        "face_scale_iqr": float(np.subtract(*np.percentile(scales, [75, 25]))),
        "face_shift": float(np.median(shifts)),
        "face_shift_iqr": float(np.subtract(*np.percentile(shifts, [75, 25]))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="../shared/data/fer2013")
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--upscale", type=int, default=4, help="enlarge the 48 px faces this many times before pasting")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    result = measure(Path(args.root), args.n, args.upscale, args.seed)
    print("| faces | detected | face_scale (median) | IQR | face_shift (median) | IQR |")
    print("|---|---|---|---|---|---|")
    print(f"| {result['faces']} | {result['detected']} | {result['face_scale']:.3f} | {result['face_scale_iqr']:.3f} "
          f"| {result['face_shift']:.3f} | {result['face_shift_iqr']:.3f} |")


if __name__ == "__main__":
    main()
