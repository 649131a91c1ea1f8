"""Pack FER2013 (and FER+'s labels) into one file that travels to a GPU host beside the checkout: ``.carry/fer2013.npz``.

    python -m training.pack_data                       # ../shared/data/fer2013 and ferplus -> .carry/fer2013.npz
    python -m training.pack_data --no-ferplus --out .carry/fer2013.npz
    python -m training.pack_data --unpack /tmp/data/fer2013    # on a host with the pack alone: FER2013's folders again

It prints the pack's size (at most 64 MiB travel with the working tree) and how
closely each FER+ face matched its FER2013 file. ``.carry/`` is ignored by git:
the pack holds dataset images and must never be committed. See
:mod:`model_core.data.packed` for what is inside and why.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from model_core.data import DataError
from model_core.data.packed import pack, unpack

DATA = Path("../shared/data")
MIB = 1 << 20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.pack_data", description=__doc__.splitlines()[0])
    parser.add_argument("--fer2013", type=Path, default=DATA / "fer2013", help="the FER2013 image-folder copy")
    parser.add_argument("--ferplus", type=Path, default=DATA / "ferplus", help="FER+ (fer2013new.csv and its PNGs)")
    parser.add_argument("--no-ferplus", action="store_true", help="pack FER2013 alone")
    parser.add_argument("--out", type=Path, default=Path(".carry/fer2013.npz"))
    parser.add_argument("--unpack", type=Path, metavar="FOLDER",
                        help="instead: write the pack at --out back as FER2013's image folders here, byte for byte")
    parser.add_argument("--subset", type=int, metavar="N", help="with --unpack: N faces of each split (smoke runs)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    if args.unpack is not None:
        try:
            count = unpack(args.out, args.unpack, args.subset)
        except DataError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"wrote {count:,} FER2013 faces from {args.out} to {args.unpack} in {time.perf_counter() - start:.0f} s")
        return 0
    try:
        report = pack(args.fer2013, args.out, None if args.no_ferplus else args.ferplus)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {report.path}: {report.bytes / MIB:.1f} MiB ({report.bytes:,} bytes), {report.fer2013:,} FER2013 faces"
          + (f", {report.ferplus:,} FER+ faces matched (mean absolute difference to their FER2013 JPEG: median "
             f"{report.match_mad_median:.2f}, worst {report.match_mad_max:.2f} grey levels)" if report.ferplus else "")
          + f" in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
