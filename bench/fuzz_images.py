"""Damaged uploads of every format, decoded as the service decodes them: each must be an image or a 4xx error.

    python -m bench.fuzz_images                      # 10,000 files, seed 7: about 10 s on 2 cores
    python -m bench.fuzz_images --count 1000 --seed 1

One small picture is saved in every format the service reads (JPEG, PNG,
lossy and lossless WebP, TIFF plain and LZW, GIF, BMP, AVIF, and the HEIC
test picture), and each file is damaged at random: bytes overwritten, cut out
or inserted, 1 to 32 times. :func:`service.images.decode_image` must then
return a picture or raise the service's own error (400 or 413); any other
exception would have been a 500, and is listed with its format. A crash of a
native decoder would end the run: its exit status says so. Prints a markdown
table of outcomes per format. libtiff writes its complaints about damaged TIFFs to
stderr itself ("Using code not yet in table"); ``2>/dev/null`` leaves the table alone.
"""

from __future__ import annotations

import argparse
import io
import random
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from service.errors import ServiceError
from service.images import SUPPORTED_FORMATS, Upload, decode_image

#: (label, Pillow format, save options) of the undamaged files.
SEEDS: list[tuple[str, str, dict[str, object]]] = [
    ("JPEG", "JPEG", {}),
    ("PNG", "PNG", {}),
    ("WebP lossy", "WEBP", {}),
    ("WebP lossless", "WEBP", {"lossless": True}),
    ("TIFF", "TIFF", {}),
    ("TIFF LZW", "TIFF", {"compression": "tiff_lzw"}),
    ("GIF", "GIF", {}),
    ("BMP", "BMP", {}),
    ("AVIF", "AVIF", {"quality": 50}),
]
HEIC = Path(__file__).parents[1] / "tests" / "service" / "pictures" / "astronaut.heic"


def originals() -> dict[str, bytes]:
    """Every format's undamaged file: a 128x96 colour picture, and the HEIC test picture (nothing here writes HEIC)."""
    picture = Image.fromarray((np.random.default_rng(0).random((96, 128, 3)) * 255).astype(np.uint8))
    files = {}
    for label, fmt, options in SEEDS:
        if fmt in SUPPORTED_FORMATS:
            buffer = io.BytesIO()
            picture.save(buffer, fmt, **options)
            files[label] = buffer.getvalue()
    if "HEIF" in SUPPORTED_FORMATS:
        files["HEIC"] = HEIC.read_bytes()
    return files


def damage(data: bytes, rng: random.Random) -> bytes:
    """``data`` with 1 to 32 random edits: a byte overwritten (60 %), up to 63 cut out (20 %) or up to 15 inserted."""
    damaged = bytearray(data)
    for _ in range(rng.choice([1, 2, 4, 8, 32])):
        at, kind = rng.randrange(len(damaged)), rng.random()
        if kind < 0.6:
            damaged[at] = rng.randrange(256)
        elif kind < 0.8:
            del damaged[at : at + rng.randrange(1, 64)]
        else:
            damaged[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 16)))
    return bytes(damaged)


def outcome(data: bytes) -> str:
    """What decoding a damaged upload gave: "decoded", the service error's name, or "UNCAUGHT <exception>"."""
    try:
        decode_image(Upload(data, "fuzz"), max_pixels=40_000_000)
    except ServiceError as e:
        return type(e).__name__
    except Exception as e:  # the point is to find what escapes
        return f"UNCAUGHT {type(e).__name__}: {e}"
    return "decoded"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000, help="damaged files in all, shared equally by the formats")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    files, rng, counts = originals(), random.Random(args.seed), Counter[tuple[str, str]]()
    labels = list(files)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns of every corrupt EXIF block it skips
        for i in range(args.count):
            label = labels[i % len(labels)]
            counts[label, outcome(damage(files[label], rng))] += 1
    kinds = sorted({kind for _, kind in counts if not kind.startswith("UNCAUGHT")})
    print(f"{args.count:,} damaged files, seed {args.seed}\n")
    print("| format | " + " | ".join(kinds) + " | other (would be a 500) |")
    print("| --- |" + " ---: |" * (len(kinds) + 1))
    for label in labels:
        other = sum(n for (lab, kind), n in counts.items() if lab == label and kind.startswith("UNCAUGHT"))
        print(f"| {label} | " + " | ".join(str(counts[label, kind]) for kind in kinds) + f" | {other} |")
    for (label, kind), n in sorted(counts.items()):
        if kind.startswith("UNCAUGHT"):
            print(f"\n{label}, {n} times: {kind[:200]}")


if __name__ == "__main__":
    main()
