"""``fersnet soup``: fine-tunings of one model averaged into one network, chosen on a validation split.

Greedy (the default) adds ingredients best first while validation accuracy does not drop;
uniform averages them all (:mod:`model_core.train.soup`). The soup is measured on the
validation split and every ``--report``, saved with a card that lists its ingredients, and
calibrated on the validation split as ``fersnet calibrate`` would.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from model_core import FERSNet, LoadedModel, load_checkpoint, save_checkpoint
from model_core.calibration import calibrate, dataset_logits
from model_core.evaluate import evaluate_dataset
from model_core.train.soup import SoupResult, greedy_soup, scored_uniform_soup, soup_card

from .. import args as shared
from .calibrate import write_temperature


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("soup", help="average fine-tunings of one model into one network, chosen on a validation split")
    p.add_argument("checkpoints", nargs="+",
                   help="the model the others were fine-tuned from (its training is recorded as the soup's base), "
                        "then its fine-tunings: same network, input and classes")
    shared.add_data(p, split_default="val")
    p.add_argument("--method", choices=["greedy", "uniform"], default="greedy",
                   help="greedy: add ingredients best first while validation accuracy does not drop; uniform: average "
                        "all")
    shared.add_report(p, "also measure the soup here and write it on its card (test splits: measured, never used to "
                      "choose)")
    p.add_argument("--out", required=True, help="checkpoint folder to write")
    p.add_argument("--name", help="the card's name (default: the --out folder's name)")
    shared.add_batch_size(p)
    shared.add_device(p)
    p.set_defaults(func=run)


def print_greedy(result: SoupResult, ingredients: list[LoadedModel]) -> None:
    """Each ingredient's own accuracy, best first, then each trial soup and whether its ingredient stayed."""
    own = result.ingredient_scores
    for i in sorted(range(len(ingredients)), key=lambda i: -own[i]):
        print(f"  {100 * own[i]:6.2f} %  {ingredients[i].path}")
    for candidate, score, kept in result.trials:
        print(f"  + {ingredients[candidate].path}: {100 * score:.2f} % ({'kept' if kept else 'left out'})")


def run(args: argparse.Namespace) -> None:
    shared.refuse_test_split(args, "a soup is chosen on a validation split")
    reports = shared.report_splits(args)  # a typo fails now, not after the soup is made
    device = shared.device(args)
    ingredients = [load_checkpoint(path, device) for path in args.checkpoints]
    first = ingredients[0]  # greedy_soup and uniform_soup refuse ingredients that are not the same network
    val = shared.named_split(args)
    faces = shared.evaluation_sets(args, [val], first)

    def accuracy(model: FERSNet) -> float:
        return evaluate_dataset(model, first.classes, faces[val.key], device, args.batch_size).accuracy

    if args.method == "greedy":
        result = greedy_soup(ingredients, accuracy)
        print_greedy(result, ingredients)
    else:
        result = scored_uniform_soup(ingredients, accuracy)
    faces |= shared.evaluation_sets(args, reports, first)
    # The soup runs over each split once: its logits give the accuracy here and the temperature below.
    logits = {key: dataset_logits(result.model, first.classes, split_faces, device, args.batch_size)
              for key, split_faces in faces.items()}
    measured = {key: evaluate_dataset(result.model, first.classes, split_faces, logits=logits[key])
                for key, split_faces in faces.items()}
    for key, m in measured.items():
        print(f"soup of {len(result.chosen)} on {key}: {m.headline()}")
    card = soup_card(result, ingredients, method=args.method, selected_on=val.origin, command=shared.command_line(args),
                     name=args.name or Path(args.out).name, metrics={key: m.summary() for key, m in measured.items()})
    save_checkpoint(args.out, result.model, card)
    print(f"wrote {args.out}: the average of {len(result.chosen)} of {len(ingredients)} checkpoints")
    write_temperature(load_checkpoint(args.out, device), calibrate(logits, val.key, val.origin, shared.command_line(args)),
                      Path(args.out))
