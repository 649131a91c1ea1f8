"""``fersnet export``: a checkpoint re-saved (float16 safetensors), or its classifier as a ``torch.export`` program."""

from __future__ import annotations

import argparse

from model_core import load_checkpoint
from model_core.export import changes_looks, export_classifier, resave_checkpoint

from ..args import CHECKPOINT_HELP


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="re-save a checkpoint (float16 safetensors) or export the classifier with "
                       "torch.export")
    p.add_argument("--checkpoint", default="default", help=CHECKPOINT_HELP)
    p.add_argument("--out", required=True)
    p.add_argument("--format", choices=["safetensors", "torch-export"], default="safetensors",
                   help="torch-export: a .pt2 program of the classifier for runtimes without this package")
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
    out = export_classifier(loaded, args.out)
    cfg, preprocess = loaded.model.config, loaded.preprocess
    print(f"wrote {out}: torch.export program (load with torch.export.load), input (N, {cfg.in_chans}, {cfg.img_size}, "
          f"{cfg.img_size}) normalised with mean {preprocess.mean}, std {preprocess.std}; "
          f"output: probabilities of {', '.join(loaded.classes)}, under the {loaded.prior} class prior")
