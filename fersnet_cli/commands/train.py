"""``fersnet train``: run a recipe (``training/configs/*.yaml``), on one process or under torchrun."""

from __future__ import annotations

import argparse

from ..args import command_line, note


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a recipe")
    p.add_argument("--config", required=True, help="YAML recipe, e.g. training/configs/fer2013_small.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe field, e.g. optim.epochs=5 (a number indexes a list: "
                        "train.0.teacher_weight=0.9)")
    p.add_argument("--resume", action="store_true", help="continue from <out_dir>/last if present")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from model_core.train import Trainer, load_config

    config = load_config(args.config, args.set)
    trainer = Trainer(config, command=command_line(args))
    if args.resume and not trainer.resume():
        note(f"nothing to resume in {config.run_dir / 'last'}; starting fresh")
    best = trainer.fit()
    if trainer.env.is_main:
        print(f"best checkpoint: {best}")
