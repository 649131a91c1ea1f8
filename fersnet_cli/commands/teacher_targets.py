"""``fersnet teacher-targets``: a teacher model's probabilities for every image of a split (offline distillation).

The file is what a recipe's ``train[].teacher`` reads: one row per image, the teacher's
probabilities over its classes at ``--temperature``.
"""

from __future__ import annotations

import argparse

from model_core.train.teacher import write_teacher_targets

from .. import args as shared


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("teacher-targets",
                       help="write a teacher model's probabilities for a split (distillation targets)")
    p.add_argument("--checkpoint", required=True, help="the teacher: " + shared.CHECKPOINT_HELP)
    shared.add_data(p, split_default="train")
    p.add_argument("--out", required=True, help="CSV to write: image,<class>,... (a recipe's train[].teacher); "
                   "a name ending in .gz is gzipped")
    p.add_argument("--temperature", type=float, default=1.0, help="softmax temperature; above 1 softens the teacher")
    shared.add_batch_size(p, default=128)
    shared.add_device(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    device, loaded = shared.checkpoint_on_device(args)
    records = shared.load_split(args)
    out = write_teacher_targets(loaded, records, args.root, args.out, temperature=args.temperature, device=device,
                                batch_size=args.batch_size)
    print(f"wrote {out}: {loaded.card.name} ({loaded.sha256[:12]}) on {args.dataset}/{args.split}, "
          f"{len(records)} images, temperature {args.temperature:g}")
