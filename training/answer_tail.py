"""Give a FERSNet checkpoint a second recognition head, fitted on FER+'s votes: the answer tail.

FER2013's labels and FER+'s ten-rater votes disagree on many faces, and a network
trained on one scores lower on the other. This keeps both: the expression head
(FER2013's seven classes, the synthesis targets, the literature's comparison)
stays byte for byte, and a tail of its own (a copy of the last FER stage and a
head, :func:`model_core.transfer.with_answer_tail`) learns FER+'s eight classes,
contempt included, from the same frozen trunk. The card then serves the tail.

Because everything below the tail is frozen, its input is computed once per face
and once for its mirror image, so an epoch over FER+'s 28,389 training faces
takes about 40 s on two CPU cores; the faces go through the same preprocessing as
training and serving (:class:`~model_core.data.dataset.FaceDataset`). The epoch
is selected on FER+'s validation split (majority vote), and the card records the
validation splits only: whether a tail becomes the default is decided on them, so
its test figures are not printed before that choice. The chosen model's test
splits are measured once afterwards, under the class prior it will serve with
(``fersnet prior``, then ``fersnet evaluate --record``).

``--copies K`` adds K changed copies of the training faces (:data:`CHANGES`:
the trunk's own framing changes, plus dim and bright light, flat contrast and
blur, which ``python -m bench.robustness`` found the served answer weakest on);
each copy goes through the trunk once, and epoch e reads the faces, their
mirror images and the next copy in turn.

The bundled default's tail, on the generator of ``fer2013_small_gpu_judged.yaml`` (its trunk frozen there too):

    python -m training.answer_tail --checkpoint runs/fer2013_small_gpu_judged/best --out runs/answer_tail \
        --name fer2013_ferplus_small_robust --half --copies 4
    fersnet calibrate runs/answer_tail --dataset ferplus --root ../shared/data/ferplus --split val \
        --report ferplus:test:../shared/data/ferplus --report fer2013:test:../shared/data/fer2013
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
from torch import Tensor, nn

from model_core import load_checkpoint
from model_core.checkpoint import build_card, save_checkpoint, write_card
from model_core.data import DataError, load_records
from model_core.data.batch_augment import BatchAugment
from model_core.data.dataset import FaceDataset
from model_core.evaluate import evaluate_records
from model_core.expressions import FERPLUS_CLASSES
from model_core.fersnet import FERSNet, Head
from model_core.preprocess import Preprocess
from model_core.train.losses import soft_cross_entropy
from model_core.transfer import with_answer_tail

DATA = Path("../shared/data")

#: The changes drawn for each copy (``--copies``): the framing changes the trunk trained with (shift, zoom, tilt,
#: mirror, erasing), stronger contrast, and the two it never saw, dim or bright mid-tones and blur.
CHANGES = BatchAugment(contrast=0.5, gamma=2.2, blur=0.3)


def faces(split: str, root: Path, label_mode: str, preprocess: Preprocess) -> tuple[Tensor, Tensor, Tensor]:
    """A FER+ split as (images, vote distributions over FERPLUS_CLASSES, majority labels), prepared as served."""
    dataset = FaceDataset(load_records("ferplus", root, split, label_mode=label_mode), preprocess, classes=FERPLUS_CLASSES)
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])
    return images, torch.from_numpy(dataset.targets), torch.from_numpy(dataset.labels)


@torch.inference_mode()
def through_trunk(model: FERSNet, images: Tensor, batch_size: int = 512,
                  change: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """What the answer tail reads for ``images``, a batch at a time, each batch first ``change``d if given."""
    return torch.cat([model.tail_input(change(batch) if change else batch) for batch in images.split(batch_size)])


def tail_inputs(model: FERSNet, images: Tensor, batch_size: int = 512) -> tuple[Tensor, Tensor]:
    """What the answer tail reads, for each face and for its mirror image: the frozen trunk runs once per view."""
    return through_trunk(model, images, batch_size), through_trunk(model, images.flip(3), batch_size)


def changed_copies(model: FERSNet, images: Tensor, copies: int, seed: int, batch_size: int = 512) -> list[Tensor]:
    """What the tail reads for ``copies`` changed copies of ``images``, each face changed anew (:data:`CHANGES`),
    drawn from ``seed`` so that a run repeats."""
    generator = torch.Generator().manual_seed(seed)
    return [through_trunk(model, images, batch_size, lambda batch: CHANGES(batch, generator)) for _ in range(copies)]


def tail_of(model: FERSNet) -> nn.Sequential:
    """The modules that learn: the answer stage, then the answer head (the rest of ``model`` stays frozen)."""
    return nn.Sequential(model.answer_stage, model.answer_head)


@torch.inference_mode()
def served_accuracy(tail: nn.Module, views: tuple[Tensor, Tensor], labels: Tensor) -> float:
    """Accuracy of the mirror-averaged logits, as ``classify`` answers with ``flip_average`` (a network's
    ``test_time_zooms`` are left out here: the epoch is chosen on the face and its mirror image)."""
    tail.eval()
    logits = (tail(views[0]) + tail(views[1])) / 2
    return (logits.argmax(1) == labels).float().mean().item()


def fit(tail: nn.Module, train: tuple[Tensor, Tensor], copies: list[Tensor], votes: Tensor, val: tuple[Tensor, Tensor],
        val_labels: Tensor, epochs: int, lr: float, weight_decay: float, batch_size: int,
        seed: int) -> tuple[dict[str, Tensor], list[dict]]:
    """AdamW with a one-cycle schedule, cross-entropy against the raters' vote distributions (the trainer's own);
    each epoch reads the faces, their mirror images and the next changed copy, if any. Returns the best epoch's
    state and the log."""
    generator = torch.Generator().manual_seed(seed)
    views = len(train) + (1 if copies else 0)
    targets = votes.repeat(views, 1)
    steps = epochs * (views * len(votes) // batch_size)
    optimizer = torch.optim.AdamW(tail.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=steps, pct_start=0.1)
    best: tuple[float, dict[str, Tensor]] = (-1.0, {})
    log = []
    clean = torch.cat(train)  # the faces and their mirror images, which every epoch reads: joined once
    for epoch in range(1, epochs + 1):
        tail.train()
        inputs = torch.cat([clean, copies[(epoch - 1) % len(copies)]]) if copies else clean
        order = torch.randperm(len(inputs), generator=generator)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            batch = order[start:start + batch_size]
            loss = soft_cross_entropy(tail(inputs[batch]), targets[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        accuracy = served_accuracy(tail, val, val_labels)
        log.append({"epoch": epoch, "loss": loss.item(), "val_accuracy": accuracy})
        print(f"epoch {epoch}: loss {loss.item():.3f}, FER+ val accuracy {100 * accuracy:.2f} %", flush=True)
        if accuracy > best[0]:
            best = (accuracy, {k: v.clone() for k, v in tail.state_dict().items()})
    return best[1], log


def measure(args: argparse.Namespace) -> None:
    """Measure the checkpoint as written (float16 weights included) on the validation splits and write it on its
    card: the served head on FER+'s, and the expression head on FER2013's (PublicTest), which choose between
    candidates. Test splits are left to ``fersnet evaluate --record`` on the one chosen."""
    saved = load_checkpoint(args.out)
    splits: dict[str, tuple[str, Path, str, Head]] = {
        "ferplus/val": ("ferplus", args.ferplus, "val", "served"),
        "expression_head/fer2013/val": ("fer2013", args.fer2013, "val", "expression"),
    }
    for key, (dataset, root, split, head) in splits.items():
        if not Path(root).is_dir():
            continue
        result = evaluate_records(saved.model, saved.classes_of(head), saved.preprocess, load_records(dataset, root, split),
                                  head=head)
        saved.card.metrics[key] = {**result.summary(), "measured_by": f"fersnet evaluate --checkpoint {args.out} --head {head} "
                                                                    f"--dataset {dataset} --root {root} --split {split}"}
        print(f"{key}: {result.headline()}", flush=True)
    write_card(args.out, saved.card)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.answer_tail", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="default", help="the network to extend (its expression head stays as it is)")
    parser.add_argument("--out", type=Path, required=True, help="folder of the new checkpoint")
    parser.add_argument("--name", help="the new card's name (default: the folder's)")
    parser.add_argument("--ferplus", type=Path, default=DATA / "ferplus")
    parser.add_argument("--fer2013", type=Path, default=DATA / "fer2013")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--copies", type=int, default=0, help="changed copies of the training faces (CHANGES), one read "
                                                               "per epoch in turn; 0: the faces and their mirror images only")
    parser.add_argument("--half", action="store_true", help="store float16 weights, as the bundled models are")
    args = parser.parse_args(argv)
    if args.copies < 0:
        parser.error(f"--copies is a number of copies, 0 or more, not {args.copies}")
    command = "python -m training.answer_tail " + shlex.join(argv if argv is not None else sys.argv[1:])
    torch.manual_seed(args.seed)

    loaded = load_checkpoint(args.checkpoint)
    model = with_answer_tail(loaded.model, loaded.expressions, FERPLUS_CLASSES).eval().requires_grad_(False)
    tail = tail_of(model)
    tail.requires_grad_(True)
    try:
        start = time.perf_counter()
        train_images, votes, _ = faces("train", args.ferplus, "soft", loaded.preprocess)
        val_images, _, val_labels = faces("val", args.ferplus, "hard", loaded.preprocess)
        train, val = tail_inputs(model, train_images), tail_inputs(model, val_images)
        copies = changed_copies(model, train_images, args.copies, args.seed)
        print(f"{len(train_images)} training faces ({args.copies} changed copies) and {len(val_images)} validation faces "
              f"through the frozen trunk in {time.perf_counter() - start:.0f} s", flush=True)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    state, log = fit(tail, train, copies, votes, val, val_labels, args.epochs, args.lr, args.weight_decay, args.batch_size, args.seed)
    tail.load_state_dict(state)
    model.eval()

    selected = max(log, key=lambda r: r["val_accuracy"])
    training = {**loaded.card.training, "answer_tail": {
        "command": command, "from": str(loaded.path), "from_sha256": loaded.sha256, "epochs": log,
        "selected_epoch": selected["epoch"], "selected_on": "ferplus:val (majority vote)",
        **({"copies": args.copies, "changes": asdict(CHANGES)} if args.copies else {})}}
    card = build_card(model, FERPLUS_CLASSES, loaded.preprocess, name=args.name or args.out.name, training=training,
                      expressions=list(loaded.expressions))
    card.intensity = loaded.card.intensity  # the generator is unchanged, so is the intensity chosen for its edits
    save_checkpoint(args.out, model, card, half=args.half)
    measure(args)
    print(f"saved {args.out}: serves FER+'s {len(FERPLUS_CLASSES)} classes, synthesises FER2013's {len(loaded.expressions)}; "
          f"if it is chosen, measure its test splits once: fersnet evaluate --checkpoint {args.out} --record ...")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
