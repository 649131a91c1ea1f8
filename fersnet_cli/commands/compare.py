"""``fersnet compare``: two checkpoints (or two recipes, several seeds each) on the same split.

Is the difference more than the noise? One checkpoint a side: a paired bootstrap over the images
and McNemar's exact test; several a side: a bootstrap over the seeds and the images.
"""

from __future__ import annotations

import argparse
import json

from model_core import LoadedModel
from model_core.comparison import PairedComparison, SeededComparison, paired_comparison, seeded_comparison
from model_core.evaluate import correct_per_image
from model_core.faces import face_finder

from .. import args as shared

#: How the text names the restricted protocol (``--restricted``).
RESTRICTED_NOTE = " (restricted to the set's classes)"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare",
                       help="two checkpoints (or several seeds a side) on the same split: difference, interval")
    p.add_argument("checkpoint", nargs="+",
                   help="model A: " + shared.CHECKPOINT_HELP + "; several (one recipe's seeds) compare the recipes' "
                        "mean accuracy")
    p.add_argument("--against", nargs="+", required=True,
                   help="model B: a checkpoint folder or a bundled name, as for A; several for B's seeds")
    shared.add_data(p)
    p.add_argument("--restricted", action="store_true",
                   help="score the best of each model's classes that the set contains (evaluate's accuracy_restricted) "
                        "instead of the plain argmax over all its classes (evaluate's accuracy, the default)")
    p.add_argument("--resamples", type=shared.positive_int, default=10_000, help="bootstrap resamples (of the images, and the seeds)")
    p.add_argument("--seed", type=int, default=0, help="seed of the resampling, so the interval is reproducible")
    shared.add_detect(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    shared.add_batch_size(p)
    shared.add_device(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    device = shared.device(args)
    records = shared.load_split(args)
    sides = [[shared.load_on(name, device) for name in names] for names in (args.checkpoint, args.against)]
    detect = shared.detect_faces(args.detect, records, min(m.preprocess.img_size for side in sides for m in side))
    correct = [[correct_per_image(m, records, device, args.batch_size, args.skip_bad, face_finder(detect, m.preprocess),
                                  args.restricted) for m in side] for side in sides]
    if len(sides[0]) == len(sides[1]) == 1:
        print_pair(args, [side[0] for side in sides], paired_comparison(correct[0][0], correct[1][0], args.resamples,
                                                                        args.seed))
    else:
        print_seeds(args, sides, seeded_comparison(correct[0], correct[1], args.resamples, args.seed))


def print_pair(args: argparse.Namespace, models: list[LoadedModel], result: PairedComparison) -> None:
    if args.json:
        print(json.dumps({"a": str(models[0].path), "b": str(models[1].path), "dataset": args.dataset,
                          "split": args.split, "restricted": args.restricted, **result.to_dict()}))
        return
    names = [f"{m.card.name} ({m.sha256[:12]})" for m in models]
    print(f"A: {names[0]}\nB: {names[1]}\non {args.dataset}/{args.split}, {result.n} images")
    print(f"accuracy{RESTRICTED_NOTE if args.restricted else ''} A {100 * result.accuracy_a:.2f} %, "
          f"B {100 * result.accuracy_b:.2f} %")
    print(f"A - B: {100 * result.difference:+.2f} points, 95 % interval [{100 * result.low:+.2f}, "
          f"{100 * result.high:+.2f}] ({args.resamples:,} paired bootstrap resamples of the images)")
    print(f"right only by A: {result.a_only}, only by B: {result.b_only} (exact McNemar p = {result.mcnemar_p:.3g})")
    print("The interval covers the test images' sampling noise, not the training seed's: "
          "give each side several seeds' checkpoints for that.")


def print_seeds(args: argparse.Namespace, sides: list[list[LoadedModel]], result: SeededComparison) -> None:
    if args.json:
        print(json.dumps({"a": [str(m.path) for m in sides[0]], "b": [str(m.path) for m in sides[1]],
                          "dataset": args.dataset, "split": args.split,
                          "restricted": args.restricted, **result.to_dict()}))
        return
    print(f"on {args.dataset}/{args.split}, {result.n} images")
    for label, side, mean, accuracies in (("A", sides[0], result.accuracy_a, result.accuracies_a),
                                          ("B", sides[1], result.accuracy_b, result.accuracies_b)):
        print(f"{label}: mean accuracy{RESTRICTED_NOTE if args.restricted else ''} {100 * mean:.2f} % "
              f"over {len(side)} checkpoint(s)")
        for model, accuracy in zip(side, accuracies, strict=True):
            print(f"   {100 * accuracy:.2f} %  {model.path}")
    print(f"mean A - mean B: {100 * result.difference:+.2f} points, 95 % interval [{100 * result.low:+.2f}, "
          f"{100 * result.high:+.2f}] ({args.resamples:,} bootstrap rounds, each resampling every side's seeds and "
          "the images)")
    print("The interval covers the training seeds' noise and the images'; with few seeds a side it is a rough one.")
