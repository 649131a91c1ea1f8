"""Measure synthesis: does a redrawn face show its target, and does the round trip give the face back?

For faces of a split (the test split by default), the generator redraws every
face with every target expression and prints, per target:

* ``judged as target``: how often an *independent* classifier (``--judge``, a
  model trained separately, for example ``fer2013_ablation_none``) recognises
  the target in the fake. The generator's own FER branch is never the judge:
  it was trained to be fooled by this very generator. Without ``--judge`` the
  column is left out. Beside it, ``input judged as target`` is the control: how
  often the judge already sees the target in the unedited face (its errors).
* ``cycle L1``: the mean absolute pixel error (0-255 scale) between a face and
  its round trip, face -> target -> the face's own expression.
* ``changed``: the mean absolute pixel change the target made (a generator that
  returns its input unchanged has a perfect cycle and is useless).

    python -m bench.synthesis_quality --checkpoint default --limit 500
    python -m bench.synthesis_quality --checkpoint default --judge runs/fer2013_ablation_none/best
    python -m bench.synthesis_quality --checkpoint default --grid runs/synthesis_grid.png

``--grid`` also draws the figure of the issue: one real face of each expression (rows, the
first of each class among the faces drawn) by every target expression (columns). It is written
under ``runs/`` and never committed: the data's terms forbid shipping files derived from its faces.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from model_core import load_checkpoint
from model_core.data import Record, load_records
from model_core.data.dataset import decode
from model_core.evaluate import synthesis_grid


@torch.inference_mode()
def measure(args: argparse.Namespace) -> tuple[list[str], dict[str, dict[str, float]], int]:
    generator = load_checkpoint(args.checkpoint, args.device)
    judge = load_checkpoint(args.judge, args.device) if args.judge else None
    if judge is not None and judge.sha256 == generator.sha256:
        raise SystemExit("--judge must be another model than --checkpoint")
    classes = list(generator.classes)
    k = len(classes)
    pixels = 127.5  # images are in [-1, 1]: a difference of 2 is 255 grey levels
    split = load_records(args.dataset, args.root, args.split)
    records, record_classes = split.records, split.classes
    chosen = np.random.default_rng(args.seed).permutation(len(records))[: args.limit]
    faces = [records[int(i)] for i in chosen]
    # Sources whose label the generator cannot express (contempt, for a 7-class model) are left out.
    faces = [r for r in faces if record_classes[r.label] in classes]
    preprocess = generator.preprocess
    model = generator.model.eval()
    if judge is not None:
        judge.model.eval()

    def load(batch: list[Record]) -> torch.Tensor:
        return torch.stack([preprocess.to_tensor(decode(r, preprocess)[0]) for r in batch]).to(args.device)

    sums: dict[str, dict[str, float]] = {t: {"hit": 0.0, "input_hit": 0.0, "cycle": 0.0, "changed": 0.0, "n": 0.0} for t in classes}
    for start in range(0, len(faces), args.batch_size):
        batch = faces[start : start + args.batch_size]
        images = load(batch)
        own = torch.tensor([classes.index(record_classes[r.label]) for r in batch], device=args.device)
        if judge is not None:  # the control: how often the judge sees the target in the unedited face
            judged_input = judge.model.classify(_as_judge_input(images, generator, judge)).argmax(1)
        for t, target_name in enumerate(classes):
            keep = own != t  # a face already showing the target is not an edit
            if not keep.any():
                continue
            x, source = images[keep], own[keep]
            fake = model.synthesize(x, F.one_hot(torch.full_like(source, t), k).float())
            back = model.synthesize(fake, F.one_hot(source, k).float())
            s = sums[target_name]
            s["cycle"] += float((back - x).abs().mean(dim=(1, 2, 3)).sum()) * pixels
            s["changed"] += float((fake - x).abs().mean(dim=(1, 2, 3)).sum()) * pixels
            s["n"] += int(keep.sum())
            if judge is not None:
                judged = judge.model.classify(_as_judge_input(fake, generator, judge)).argmax(1)
                wanted = judge.classes.index(target_name)
                s["hit"] += int((judged == wanted).sum())
                s["input_hit"] += int((judged_input[keep] == wanted).sum())
    table = {t: {k: v / max(s["n"], 1) for k, v in s.items() if k != "n"} | {"n": s["n"]} for t, s in sums.items()}
    if args.grid:
        rows = {}  # one face per expression, in the model's class order
        for r in faces:
            rows.setdefault(record_classes[r.label], r)
        shown = [rows[c] for c in classes if c in rows]
        images = load(shown)
        args.grid.parent.mkdir(parents=True, exist_ok=True)
        synthesis_grid(model, images, classes, preprocess, args.grid, [record_classes[r.label] for r in shown])
    return classes, table, len(faces)


def _as_judge_input(images: torch.Tensor, generator, judge) -> torch.Tensor:  # noqa: ANN001 (LoadedModel pair)
    """Hand the generator's tensors (faces or fakes) to a judge that may expect another size or normalisation."""
    pictures = [generator.preprocess.to_image(x) for x in images.cpu()]
    return judge.preprocess.batch(pictures).to(images.device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="default", help="the generator")
    parser.add_argument("--judge", help="an independently trained classifier checkpoint (never the generator itself)")
    parser.add_argument("--dataset", default="fer2013")
    parser.add_argument("--root", default="../shared/data/fer2013")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=500, help="faces drawn at random from the split")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--grid", type=Path, help="also draw real faces (rows) x target expressions (columns) to this PNG")
    args = parser.parse_args()
    start = time.time()
    classes, table, n = measure(args)
    judged = args.judge is not None
    print(f"{n} faces of {args.dataset}/{args.split}, generator {args.checkpoint}" + (f", judge {args.judge}" if judged else ""))
    print()
    print("| target | edits |" + (" judged as target | input judged as target |" if judged else "")
          + " cycle L1 (0-255) | changed by the edit (0-255) |")
    print("|---|---:|" + ("---:|---:|" if judged else "") + "---:|---:|")
    for t in classes:
        row = table[t]
        hit = f" {100 * row['hit']:.1f} % | {100 * row['input_hit']:.1f} % |" if judged else ""
        print(f"| {t} | {int(row['n'])} |{hit} {row['cycle']:.1f} | {row['changed']:.1f} |")
    total = sum(table[t]["n"] for t in classes)
    mean = {k: sum(table[t][k] * table[t]["n"] for t in classes) / max(total, 1) for k in ("hit", "input_hit", "cycle", "changed")}
    hit = f" {100 * mean['hit']:.1f} % | {100 * mean['input_hit']:.1f} % |" if judged else ""
    print(f"| all | {int(total)} |{hit} {mean['cycle']:.1f} | {mean['changed']:.1f} |")
    if args.grid:
        print(f"\ngrid: {args.grid}")
    print(f"\n{time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
