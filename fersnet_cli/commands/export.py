"""``fersnet export``: a checkpoint re-saved (float16 safetensors), or its classifier as a ``torch.export`` program
or an ONNX graph (checked against the model with ONNX Runtime before it is called written)."""

from __future__ import annotations

import argparse
from pathlib import Path

from model_core import load_checkpoint
from model_core.export import (
    ONNX_TOLERANCE,
    ExportError,
    changes_looks,
    export_classifier,
    export_onnx,
    onnx_difference,
    require_onnx_extra,
    resave_checkpoint,
)

from ..args import CHECKPOINT_HELP, UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="re-save a checkpoint (float16 safetensors) or export the classifier "
                       "(torch.export or ONNX)")
    p.add_argument("--checkpoint", default="default", help=CHECKPOINT_HELP)
    p.add_argument("--out", required=True)
    p.add_argument("--format", choices=["safetensors", "torch-export", "onnx"], default="safetensors",
                   help="torch-export: a .pt2 program of the classifier for PyTorch without this package; onnx: an "
                        ".onnx graph of it for ONNX Runtime (needs the onnx extra: pip install 'fersnet[onnx]')")
    p.add_argument("--half", action="store_true", help="safetensors: store float16 weights (half the size)")
    p.add_argument("--name", help="safetensors: the copy's name on its card")
    p.add_argument("--test-time-zooms", type=float, nargs="*", metavar="ZOOM",
                   help="safetensors: recognition also looks at each face zoomed by these factors (none: only the face "
                        "and, with flip averaging, its mirror image); the card's metrics and temperature are dropped, "
                        "to be measured again")
    p.set_defaults(func=run)


def check_options(args: argparse.Namespace) -> None:
    """Refuse, before the export's many seconds, options the format ignores and an ``--out`` it could not use."""
    out = Path(args.out)
    if args.format != "safetensors":
        ignored = [flag for flag, value in (("--half", args.half), ("--name", args.name),
                                            ("--test-time-zooms", args.test_time_zooms)) if value not in (None, False)]
        if ignored:
            raise UsageError(f"{', '.join(ignored)}: for --format safetensors only; a {args.format} export is the "
                             "checkpoint's classifier as it is")
        if out.is_dir():
            raise UsageError(f"--out {out}: a folder; --format {args.format} writes one file")
    elif out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: a file; a checkpoint is written into a new folder (or over another checkpoint)")
    elif out.is_dir() and any(out.iterdir()) and not (out / "card.json").exists():
        raise UsageError(f"--out {out}: a folder holding other files; a checkpoint is written into a new folder (or "
                         "over another checkpoint)")


def run(args: argparse.Namespace) -> None:
    check_options(args)
    loaded = load_checkpoint(args.checkpoint)
    if args.format == "safetensors":
        replaced = (Path(args.out) / "card.json").exists()
        out = resave_checkpoint(loaded, args.out, half=args.half, name=args.name, test_time_zooms=args.test_time_zooms)
        print(f"wrote {out} ({(out / 'model.safetensors').stat().st_size / 1e6:.1f} MB)"
              + (", replacing the checkpoint that was there" if replaced else ""))
        if args.test_time_zooms is not None and changes_looks(loaded.model, args.test_time_zooms):
            print("its answers changed: measure them again (fersnet calibrate, fersnet evaluate --record)")
        return
    if args.format == "onnx":
        require_onnx_extra()  # before the export's many seconds, which could not be checked without the runtime
        out = Path(args.out)
        unchecked = export_onnx(loaded, out.with_name(out.name + ".unchecked"))  # a file at --out stays until checked
        try:
            difference = onnx_difference(loaded, unchecked)
            if difference > ONNX_TOLERANCE:  # a graph that answers otherwise must not be left where it would be used
                raise ExportError(f"{out}: ONNX Runtime's probabilities differ from the model's by up to "
                                  f"{difference:.2g} (at most {ONNX_TOLERANCE:g} expected), so the graph was not written")
            unchecked.replace(out)
        finally:
            unchecked.unlink(missing_ok=True)
        kind = (f"ONNX graph (ONNX Runtime: input 'faces', output 'probabilities'; it answers as the model does within "
                f"{difference:.1g})")
    else:
        out = export_classifier(loaded, args.out)
        kind = "torch.export program (load with torch.export.load)"
    cfg, preprocess = loaded.model.config, loaded.preprocess
    print(f"wrote {out}: {kind}, input (N, {cfg.in_chans}, {cfg.img_size}, {cfg.img_size}) normalised with mean "
          f"{preprocess.mean}, std {preprocess.std}; output: probabilities of {', '.join(loaded.classes)}, under the "
          f"{loaded.prior} class prior")
