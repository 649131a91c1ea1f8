"""``fersnet balance``: faces of the rarer expressions synthesised until every class has as many as asked."""

from __future__ import annotations

import argparse

from model_core.train import balance

from .. import args as shared


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("balance", help="synthesise faces of rare expressions until every class has --target images")
    p.add_argument("--checkpoint", default="default", help=shared.CHECKPOINT_HELP)
    shared.add_data(p, split_default="train")
    p.add_argument("--out", required=True, help="output folder (class-per-folder PNGs + manifest.csv)")
    p.add_argument("--target", type=int, help="images per class after balancing (default: the largest class)")
    p.add_argument("--min-confidence", type=float, default=0.0,
                   help="drop fakes the model itself classifies below this")
    p.add_argument("--seed", type=int, default=0)
    shared.add_device(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    device, loaded = shared.checkpoint_on_device(args)
    report = balance(loaded, shared.load_split(args), args.out, target=args.target, min_confidence=args.min_confidence,
                     seed=args.seed, device=device)
    print(report.table())
    print(f"wrote {sum(report.written.values())} faces and manifest.csv to {report.out_dir}")
