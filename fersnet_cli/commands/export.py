"""``fersnet export``: a checkpoint re-saved (float16 safetensors), or its classifier as a ``torch.export`` program
or an ONNX graph (checked against the model with ONNX Runtime before it is called written)."""

from __future__ import annotations

import argparse

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

from ..args import CHECKPOINT_HELP


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


def run(args: argparse.Namespace) -> None:
    loaded = load_checkpoint(args.checkpoint)
    if args.format == "safetensors":
        out = resave_checkpoint(loaded, args.out, half=args.half, name=args.name, test_time_zooms=args.test_time_zooms)
        print(f"wrote {out} ({(out / 'model.safetensors').stat().st_size / 1e6:.1f} MB)")
        if args.test_time_zooms is not None and changes_looks(loaded.model, args.test_time_zooms):
            print("its answers changed: measure them again (fersnet calibrate, fersnet evaluate --record)")
        return
    if args.format == "onnx":
        require_onnx_extra()  # before the export's many seconds, which could not be checked without the runtime
        out = export_onnx(loaded, args.out)
        difference = onnx_difference(loaded, out)
        if difference > ONNX_TOLERANCE:
            out.unlink()  # a graph that answers otherwise must not be left where it would be used
            raise ExportError(f"{out}: ONNX Runtime's probabilities differ from the model's by up to {difference:.2g} "
                              f"(at most {ONNX_TOLERANCE:g} expected), so the graph was removed")
        kind = (f"ONNX graph (ONNX Runtime: input 'faces', output 'probabilities'; it answers as the model does within "
                f"{difference:.1g})")
    else:
        out = export_classifier(loaded, args.out)
        kind = "torch.export program (load with torch.export.load)"
    cfg, preprocess = loaded.model.config, loaded.preprocess
    print(f"wrote {out}: {kind}, input (N, {cfg.in_chans}, {cfg.img_size}, {cfg.img_size}) normalised with mean "
          f"{preprocess.mean}, std {preprocess.std}; output: probabilities of {', '.join(loaded.classes)}, under the "
          f"{loaded.prior} class prior")
