"""What answering a redrawn photo in each encoding costs: seconds and bytes for one phone-sized photo.

    python -m bench.encoding                  # a 4000x3000 photo (12 megapixels), median of 3 runs
    python -m bench.encoding --side 2048 --runs 5

``/v1/synthesize`` answers the uploaded photo at its own size, so the encoder
works on every pixel a phone took. Each row encodes the same photo (scikit-image's
public-domain astronaut portrait, enlarged; the ``bench`` extra) the way
:func:`model_core.photo_edit.answer_encoding` would for one kind of upload, or
the way it could have (WebP and AVIF at their encoders' default speeds), and
reports the median time and the size. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

from PIL import Image, features
from skimage import data

from model_core.photo_edit import answer_encoding

Candidate = tuple[str, str, dict[str, object]]


def used(label: str, upload_format: str, lossy: bool) -> Candidate:
    """(row label, Pillow format, options) of the encoding the service answers such an upload with."""
    encoding = answer_encoding(upload_format, lossy)
    return label, encoding.format, encoding.options


#: The encodings the service answers with, then those it chose not to.
CANDIDATES: list[Candidate] = [
    used("JPEG q95 4:4:4 (JPEG and HEIC uploads)", "JPEG", lossy=True),
    used("WebP q95, method 2 (lossy WebP uploads)", "WEBP", lossy=True),
    used("AVIF q90, speed 10 (AVIF uploads)", "AVIF", lossy=True),
    used("WebP lossless (lossless WebP uploads)", "WEBP", lossy=False),
    used("PNG (PNG, BMP, GIF, TIFF uploads)", "PNG", lossy=False),
    ("WebP q95 at its default method 4 (not used)", "WEBP", {"quality": 95}),
    ("AVIF q90 at its default speed 6 (not used)", "AVIF", {"quality": 90}),
]


def photo(width: int, height: int) -> Image.Image:
    """The astronaut portrait enlarged to cover ``width`` x ``height`` and cut to it: a photo's smooth regions and edges."""
    side = max(width, height)
    return Image.fromarray(data.astronaut()).resize((side, side), Image.Resampling.BICUBIC).crop((0, 0, width, height))


def encode_seconds(image: Image.Image, fmt: str, options: dict[str, object], runs: int) -> tuple[float, int]:
    """Median seconds to encode ``image``, and the encoded size in bytes."""
    times, size = [], 0
    for _ in range(runs):
        buffer = io.BytesIO()
        start = time.perf_counter()
        image.save(buffer, format=fmt, **options)
        times.append(time.perf_counter() - start)
        size = buffer.tell()
    return statistics.median(times), size


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", type=int, default=4000, help="the photo's longer side; the shorter is 3/4 of it")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    image = photo(args.side, args.side * 3 // 4)
    print(f"{image.width}x{image.height} RGB, median of {args.runs} runs\n")
    print("| encoding | seconds | MB |")
    print("| --- | ---: | ---: |")
    for label, fmt, options in CANDIDATES:
        if fmt == "AVIF" and not features.check("avif"):
            continue
        seconds, size = encode_seconds(image, fmt, options, args.runs)
        print(f"| {label} | {seconds:.2f} | {size / 1e6:.2f} |")


if __name__ == "__main__":
    main()
