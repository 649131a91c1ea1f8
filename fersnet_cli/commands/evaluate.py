"""``fersnet evaluate``: a checkpoint's accuracy, macro-F1, per-class recall and confusion on a dataset split."""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

from model_core.checkpoint import write_card
from model_core.data import DataError
from model_core.evaluate import evaluate_records
from model_core.faces import face_finder
from model_core.fersnet import HEADS
from model_core.figures import plot_confusion
from model_core.prior import PRIORS

from .. import args as shared


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="measure a checkpoint on a dataset split")
    p.add_argument("--checkpoint", default="default", help=shared.CHECKPOINT_HELP)
    shared.add_data(p)
    shared.add_detect(p)
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (keys include accuracy, macro_f1 and accuracy_restricted: the best of "
                        "the model's classes that the set contains)")
    p.add_argument("--figure", help="also save the confusion matrix as this PNG")
    p.add_argument("--head", choices=HEADS, default="served",
                   help="which recognition head to measure: served (the default) is what the service and classify "
                        "answer; expression is the head training fits and synthesis targets name (FER2013's seven "
                        "classes, comparable with the literature), which differs only for a model with an answer tail")
    p.add_argument("--prior", choices=PRIORS,
                   help="the class prior the served head's answers assume (default: its card's; fersnet prior): "
                        "natural (its training data's class frequencies) or balanced (every class equally likely)")
    p.add_argument("--record", action="store_true",
                   help="also write the figures on the checkpoint's card, as metrics DATASET/SPLIT "
                        "(expression_head/DATASET/SPLIT with --head expression), with this command")
    shared.add_batch_size(p)
    shared.add_device(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    if args.prior and args.head != "served":
        raise DataError(f"--prior is the served head's; the {args.head} head answers under its training data's prior")
    shared.require_figure(args.figure)
    if args.record:
        shared.check_card_target(args.checkpoint, None, "its figures", has_out=False)
    device, loaded = shared.checkpoint_on_device(args)
    prior = args.prior or loaded.prior
    if prior not in loaded.priors:
        raise DataError(f"--prior {prior}: {loaded.card.name}'s card records no class frequencies (fersnet prior writes them)")
    if args.record and prior != loaded.prior:
        raise DataError(f"--record writes the card's figures, which are its answers under its own prior ({loaded.prior}), "
                        f"not under --prior {prior}")
    records = shared.load_split(args)
    detect = shared.detect_faces(args.detect, records, loaded.preprocess.img_size)
    answer = functools.partial(loaded.probabilities, prior=prior) if args.head == "served" else None
    metrics = evaluate_records(loaded.model, loaded.classes_of(args.head), loaded.preprocess, records, device,
                               args.batch_size, args.skip_bad, face_finder(detect, loaded.preprocess), args.head, answer)
    if args.json:
        print(json.dumps({"checkpoint": str(loaded.path), "dataset": args.dataset, "split": args.split,
                          "detect": detect, "head": args.head, "prior": prior if args.head == "served" else None,
                          "skipped": len(records.skipped), **metrics.to_dict()}))
    else:
        head = f", {prior} prior" if args.head == "served" else ", expression head"
        print(f"{loaded.card.name} ({loaded.sha256[:12]}{head}) on {args.dataset}/{args.split}")
        print(metrics.table())
        if records.skipped:
            path, why = records.skipped[0]
            print(f"skipped {len(records.skipped)} file(s) that could not be read (--skip-bad); the first: {path}: {why}")
    # After the answer is printed (a figure that cannot be written loses nothing), and the card after the figure.
    if args.figure:
        title = f"{args.dataset}/{args.split}: accuracy {100 * metrics.accuracy:.2f} %"
        if metrics.extra_classes and metrics.accuracy_restricted is not None:
            title += f" (restricted to its classes {100 * metrics.accuracy_restricted:.2f} %)"
        plot_confusion(metrics, Path(args.figure), title=title)
    if args.record:
        key = f"{args.dataset}/{args.split}" if args.head == "served" else f"expression_head/{args.dataset}/{args.split}"
        prior_used = {"prior": prior} if args.head == "served" else {}
        loaded.card.metrics[key] = {**metrics.summary(), **prior_used, "measured_by": shared.command_line(args)}
        write_card(loaded.path, loaded.card)
