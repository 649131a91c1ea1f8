"""Which looks at a face are worth averaging? Accuracy of a checkpoint's answer over combinations of looks.

    python -m bench.looks                                                                   # FER+ validation, served head
    python -m bench.looks --dataset fer2013 --root ../shared/data/fer2013 --head expression    # FER2013 PublicTest

The network runs once over every face of a validation split for each look (the face zoomed about its
centre by each of ``--zooms``, each with its mirror image; :mod:`model_core.views`), in one thread pool
and in float32. Each combination's answer is the mean of its looks' logits, under the card's temperature
and default prior for the served head (the plain argmax for the expression head), compared with the
face and its mirror image alone (the paired bootstrap of ``fersnet compare``). Prints a markdown table.
A card's own ``test_time_zooms`` are not applied: the looks are exactly those named here.
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Subset

from model_core import load_checkpoint
from model_core.checkpoint import LoadedModel
from model_core.comparison import paired_comparison
from model_core.data import load_records
from model_core.evaluate import evaluation_set
from model_core.fersnet import HEADS
from model_core.views import Views


@torch.inference_mode()
def look_logits(loaded: LoadedModel, images: Tensor, zooms: list[float], head: str, batch: int) -> dict[str, Tensor]:
    """Logits of every look, keyed ``zoom`` and ``zoom mirrored`` (zoom 1 is the face as it is): the looks are those
    ``classify`` would take (:class:`~model_core.views.Views`), kept apart instead of averaged."""
    model = loaded.model.eval()
    logits_of = model.answer if head == "served" else model.recognise
    views = Views(images.shape[-1], zooms, mirror=True)
    expanded = views.expand(images)  # every face's first look, then every second, ...
    logits = torch.cat([logits_of(expanded[i : i + batch]) for i in range(0, len(expanded), batch)]).float()
    names = [f"{z:g}{m}" for m in ("", " mirrored") for z in (1.0, *zooms)]  # the order expand stacks them in
    return dict(zip(names, logits.unflatten(0, (len(views), -1)), strict=True))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="default")
    parser.add_argument("--dataset", default="ferplus")
    parser.add_argument("--root", default="../shared/data/ferplus")
    parser.add_argument("--split", default="val", help="a validation split: looks are chosen here, never on a test split")
    parser.add_argument("--head", choices=HEADS, default="served")
    parser.add_argument("--zooms", type=float, nargs="+", default=[0.9, 0.95, 1.05, 1.1])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--limit", type=int, help="only the split's first faces (a quick look, not a measurement)")
    args = parser.parse_args(argv)
    if args.split == "test":
        parser.error("looks are chosen on a validation split; measure the chosen model's test split with fersnet evaluate")

    loaded = load_checkpoint(args.checkpoint)
    classes = list(loaded.classes_of(args.head))
    faces = evaluation_set(load_records(args.dataset, args.root, args.split), loaded.preprocess, classes)
    chosen = Subset(faces, range(min(args.limit or len(faces), len(faces))))
    batches = list(DataLoader(chosen, batch_size=1024, shuffle=False))
    images = torch.cat([b[0] for b in batches])
    true = np.array([classes.index(faces.classes[i]) for i in torch.cat([b[1] for b in batches]).tolist()])
    looks = look_logits(loaded, images, args.zooms, args.head, args.batch_size)

    def correct(keys: list[str]) -> np.ndarray:
        logits = torch.stack([looks[k] for k in keys]).mean(0)
        scores = loaded.probabilities(logits) if args.head == "served" else logits
        return scores.argmax(1).numpy() == true

    baseline = correct(["1", "1 mirrored"])
    print(f"{loaded.card.name} on {args.dataset}/{args.split} ({len(true)} faces), {args.head} head")
    print("| looks averaged (each with its mirror image) | passes a face | accuracy | against the face and its mirror image, 95 % interval |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| the face alone, no mirror image | 1 | {100 * correct(['1']).mean():.2f} % | "
          f"{_difference(correct(['1']), baseline)} |")
    for n in range(len(args.zooms) + 1):
        for zooms in itertools.combinations(args.zooms, n):
            keys = [f"{z:g}{m}" for z in (1.0, *zooms) for m in ("", " mirrored")]
            right = correct(keys)
            name = "the face" + "".join(f", zoomed {z:g}" for z in zooms)
            print(f"| {name} | {len(keys)} | {100 * right.mean():.2f} % | "
                  f"{'' if not zooms else _difference(right, baseline)} |", flush=True)


def _difference(a: np.ndarray, b: np.ndarray) -> str:
    comparison = paired_comparison(a.astype(float), b.astype(float))
    return f"{100 * comparison.difference:+.2f} [{100 * comparison.low:+.2f}, {100 * comparison.high:+.2f}]"


if __name__ == "__main__":
    main()
