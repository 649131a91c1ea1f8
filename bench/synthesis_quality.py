"""Measure synthesis, several generators side by side on the same faces: does an edit show its target,
does it keep everything else, and can it be told from a real face?

For faces drawn from a split (the test split by default), every generator
redraws every face with every other expression, and one row per generator says:

* ``judged as target``: how often an *independent* classifier (``--judge``, a
  model trained separately, never one of the generators) recognises the target
  in the edit; ``input judged`` is the control, how often it already sees the
  target in the unedited face.
* ``cycle L1``: mean absolute error (0-255) between a face and its round trip,
  face -> target -> the face's own expression.
* ``changed``: mean absolute change the edit made (0-255). A generator that
  returns its input has a perfect cycle and is useless.
* ``outside the expression``: mean absolute change where a masked generator's
  mask is closed (below 0.05), i.e. away from what the expression moves. Every
  row is measured on the same pixels, those of the first masked generator
  given, so the paper's decoder can be compared with it.
* ``fine change``: mean absolute change (0-255) finer than about three pixels,
  the signed change minus its Gaussian blur (sigma 1): streaks and speckles
  score high, a smoothly redrawn brow or mouth low.
* ``photo outside the face``: the change, in a colour photo redrawn as the
  service redraws it, of the pixels outside the face's square (scikit-image's
  public-domain astronaut portrait, if scikit-image is installed).
* ``real vs edited``: the held-out accuracy of a small CNN trained after the fact
  to tell real faces from edits of *other* faces. 50 % means the edits cannot be
  told from real faces; 100 % that every one can.

    python -m bench.synthesis_quality --checkpoint default --judge fer2013_paper_none_gpu
    python -m bench.synthesis_quality --checkpoint OLD NEW --judge fer2013_paper_none_gpu --grid runs/grids.png \\
        --photo-figure docs/figures/synthesis_photo.png

``--intensity`` measures each generator at several intensities (how strongly an edit is applied:
``FERSNet.decode_parts``); with ``--write-intensity``, on a validation split, the smallest of them that the
judge reads as the target at least ``--min-judged`` of the time becomes the card's default, which
``/v1/synthesize`` and ``fersnet synthesize`` apply when a request names none::

    python -m bench.synthesis_quality --checkpoint default --split val --judge runs/teachers_gpu/vgg_s1/weights \\
        --limit 200 --judge-limit 200 --intensity 1 1.1 1.2 1.3 1.4 1.5 1.75 --write-intensity

``--grid`` draws one real face of each expression (rows) by every target (columns), the generators side by
side. It shows dataset faces, so it is written under ``runs/`` and never committed. ``--photo-figure`` draws
the public-domain portrait before and redrawn with every target by each generator: that one may be committed.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor, nn
from torchvision.transforms.functional import gaussian_blur

from model_core import FERSNet, load_checkpoint
from model_core.card import Intensity
from model_core.checkpoint import LoadedModel, write_card
from model_core.data import load_records
from model_core.data.dataset import decode
from model_core.expressions import one_hot
from model_core.faces import FaceDetector, crop_faces
from model_core.photo_edit import changed_outside, crop_box, face_tile, face_turn, redrawn_photos

GREY = 127.5  # images are in [-1, 1]: a difference of 2 is 255 grey levels
CLOSED = 0.05  # a mask value below which a pixel counts as untouched


def _as_judge_input(images: Tensor, generator: LoadedModel, judge: LoadedModel) -> Tensor:
    """Hand the generator's tensors (faces or edits) to a judge that may expect another size or normalisation."""
    pictures = [generator.preprocess.to_image(x) for x in images.cpu()]
    return judge.preprocess.batch(pictures)


def _faces(args: argparse.Namespace, generator: LoadedModel) -> tuple[Tensor, Tensor, list[str]]:
    """Faces of the split (normalised as the generator expects), their labels as its class indices, the classes."""
    split = load_records(args.dataset, args.root, args.split)
    classes = list(generator.expressions)
    order = np.random.default_rng(args.seed).permutation(len(split.records))
    records = [split.records[int(i)] for i in order if split.classes[split.records[int(i)].label] in classes]
    records = records[: args.limit]
    images = torch.stack([generator.preprocess.to_tensor(decode(r, generator.preprocess)[0]) for r in records])
    labels = torch.tensor([classes.index(split.classes[r.label]) for r in records])
    return images, labels, classes


@torch.inference_mode()
def edits(model: FERSNet, images: Tensor, labels: Tensor, k: int, batch_size: int,
          intensity: float = 1.0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Every face with every other target at ``intensity``: (sources, targets, edits, masks or empty) in a fixed order."""
    sources = torch.arange(len(images)).repeat_interleave(k)
    targets = torch.arange(k).repeat(len(images))
    keep = targets != labels[sources]
    sources, targets = sources[keep], targets[keep]
    fakes, masks = [], []
    for start in range(0, len(sources), batch_size):
        s, t = sources[start : start + batch_size], targets[start : start + batch_size]
        features = model.forward_features(images[s])
        parts = model.decode_parts(features, one_hot(t, k), intensity)
        fakes.append(parts.face)
        if parts.mask is not None:
            masks.append(parts.mask)
    return sources, targets, torch.cat(fakes), torch.cat(masks) if masks else torch.empty(0)


class _RealOrEdited(nn.Module):
    """A small CNN that tries to tell real faces from edited ones: the realism probe."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 2),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def realism(real: Tensor, edited: Tensor, seed: int, epochs: int = 30) -> float:
    """Held-out accuracy of a CNN trained on 70 % of ``real`` (label 0) and ``edited`` (label 1) faces."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    n = min(len(real), len(edited))
    x = torch.cat((real[:n], edited[:n]))
    y = torch.cat((torch.zeros(n, dtype=torch.long), torch.ones(n, dtype=torch.long)))
    order = torch.randperm(2 * n, generator=generator)
    cut = int(0.7 * 2 * n)
    train, test = order[:cut], order[cut:]
    probe = _RealOrEdited()
    optimizer = torch.optim.Adam(probe.parameters(), lr=2e-3)
    with torch.enable_grad():
        for _ in range(epochs):
            for batch in train[torch.randperm(len(train), generator=generator)].split(64):
                loss = F.cross_entropy(probe(x[batch]), y[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    with torch.inference_mode():
        return float((probe(x[test]).argmax(1) == y[test]).float().mean())


def fine_change(change: Tensor) -> float:
    """Mean absolute part (0-255) of signed changes ``change`` (N x 1 x H x W, in the model's [-1, 1] units) that a
    Gaussian blur of sigma 1 removes: the streaks and speckles of an edit rather than its shapes."""
    return float((change - gaussian_blur(change, kernel_size=[5, 5], sigma=[1.0, 1.0])).abs().mean()) * GREY


def _portrait() -> Image.Image | None:
    try:
        from skimage import data
    except ImportError:
        return None
    return Image.fromarray(data.astronaut())


@torch.inference_mode()
def redraw_photo(generator: LoadedModel, photo: Image.Image, targets: list[str],
                 intensity: float | None = None) -> tuple[list[Image.Image], tuple[int, int, int, int]]:
    """The photo's largest face redrawn with each target, as the service answers (at the card's intensity unless
    ``intensity`` says); and its square."""
    faces = FaceDetector().detect(photo)
    if not faces:
        raise SystemExit("no face found in the portrait")
    face, preprocess = faces[0], generator.preprocess
    model_input = preprocess.prepare(crop_faces(photo, [face], preprocess)[0])
    x = preprocess.to_tensor(model_input)[None]
    k = len(generator.expressions)
    onehot = one_hot([generator.expressions.index(t) for t in targets], k)
    out = generator.model.redraw(x, onehot, torch.zeros(len(targets), dtype=torch.long),
                                 generator.intensity if intensity is None else intensity)
    box = crop_box(face, photo.size, preprocess)
    return list(redrawn_photos(photo, box, x[0], out, preprocess, face_turn(face))), box


def measure(args: argparse.Namespace) -> None:
    check_write_intensity(args)
    started = time.time()
    generators = [load_checkpoint(c) for c in args.checkpoint]
    judge = load_checkpoint(args.judge) if args.judge else None
    if judge is not None and judge.sha256 in {g.sha256 for g in generators}:
        raise SystemExit("--judge must be another model than every --checkpoint")
    for g in generators:
        g.model.eval()
    images, labels, classes = _faces(args, generators[0])
    k = len(classes)
    judged_inputs = None
    if judge is not None:
        judge.model.eval()
        with torch.inference_mode():
            judged_inputs = judge.model.classify(_as_judge_input(images[: args.judge_limit], generators[0], judge)).argmax(1)
    # Each generator at each intensity asked for (its card's when none is).
    runs = [(name, g, level) for name, g in zip(args.checkpoint, generators, strict=True)
            for level in (args.intensity or [g.intensity])]
    results = [edits(g.model, images, labels, k, args.batch_size, level) for _, g, level in runs]
    # The first masked generator's closed pixels, at its first intensity.
    region = next((r[3] < CLOSED for r in results if len(r[3])), None)
    half = len(images) // 2  # realism: real faces from the first half, edits of the second half's faces
    portrait = _portrait()
    rows, figures = [], []  # per run: the table's text, and the numbers a card keeps
    for (name, g, level), (sources, targets, fakes, _) in zip(runs, results, strict=True):
        x = images[sources]
        with torch.inference_mode():
            back = g.model.synthesize(fakes, one_hot(labels[sources], k))
        signed = fakes - x
        change = signed.abs()
        numbers = {"cycle_l1": round(float((back - x).abs().mean()) * GREY, 1), "changed": round(float(change.mean()) * GREY, 1),
                   "fine_change": round(fine_change(signed), 2)}
        if region is not None:
            numbers["outside_the_expression"] = round(float(change[region].mean()) * GREY, 2)
        row: dict[str, str] = {
            "generator": _short(name),
            "intensity": f"{level:g}",
            "edits": f"{len(fakes)}",
            "cycle L1": f"{numbers['cycle_l1']:.1f}",
            "changed": f"{numbers['changed']:.1f}",
            "outside the expression": f"{numbers['outside_the_expression']:.2f}" if region is not None else "-",
            "fine change": f"{numbers['fine_change']:.2f}",
        }
        if judge is not None and judged_inputs is not None:
            judged = sources < args.judge_limit
            with torch.inference_mode():
                verdict = torch.cat([judge.model.classify(_as_judge_input(chunk, g, judge)).argmax(1)
                                     for chunk in fakes[judged].split(args.batch_size)])
            wanted = torch.tensor([judge.classes.index(classes[t]) for t in targets[judged].tolist()])
            numbers["judged_as_target"] = float((verdict == wanted).float().mean())
            row["judged as target"] = f"{100 * numbers['judged_as_target']:.1f} %"
            row["input judged"] = f"{100 * float((judged_inputs[sources[judged]] == wanted).float().mean()):.1f} %"
        if portrait is not None:
            photos, box = redraw_photo(g, portrait, classes[:3], level)
            row["photo outside the face"] = f"{max(changed_outside(portrait, p, box) for p in photos):.2f}"
        one_each = torch.stack([torch.nonzero(sources == i)[0, 0] for i in range(half, len(images))])
        row["real vs edited"] = f"{100 * realism(images[:half], fakes[one_each], args.seed):.1f} %"
        rows.append(row)
        figures.append(numbers)
    what = f"{len(images)} faces of {args.dataset}/{args.split}" + (f", judge {args.judge} on the first {args.judge_limit}" if judge else "")
    print(what)
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * (len(columns) - 1))
    for row in rows:
        print("| " + " | ".join(row.get(c, "-") for c in columns) + " |")
    if args.write_intensity:
        write_intensity(args, generators[0], [level for _, _, level in runs], figures)
    if args.grid:
        draw_grid(generators, args.checkpoint, images, labels, classes, args.grid)
        print(f"\ngrid: {args.grid} (dataset faces: not to be committed)")
    if args.photo_figure and portrait is not None:
        draw_photo_figure(generators, args.checkpoint, portrait, classes, args.photo_figure)
        print(f"photo figure: {args.photo_figure}")
    print(f"\n{time.time() - started:.0f} s")


def check_write_intensity(args: argparse.Namespace) -> None:
    """Refuse ``--write-intensity`` without what it needs, before anything is measured."""
    if args.write_intensity and (len(args.checkpoint) != 1 or not args.judge or not args.intensity or args.split == "test"):
        raise SystemExit("--write-intensity needs one --checkpoint, a --judge, several --intensity values and a "
                         "validation --split (never the test split)")


def write_intensity(args: argparse.Namespace, generator: LoadedModel, levels: list[float],
                    figures: list[dict[str, float]]) -> None:
    """Write into the generator's card the smallest intensity whose edits the judge read as the target at least
    ``--min-judged`` of the time, with every intensity's figures: each step up also changes the face more."""
    reaching = [level for level, numbers in zip(levels, figures, strict=True) if numbers["judged_as_target"] >= args.min_judged]
    if not reaching:
        raise SystemExit(f"no intensity tried reached {100 * args.min_judged:g} % judged as target; card unchanged")
    chosen = min(reaching)
    order = ("judged_as_target", "changed", "fine_change", "outside_the_expression", "cycle_l1")
    measured = {f"{level:g}": {key: round(numbers[key], 4) for key in order if key in numbers}
                for level, numbers in zip(levels, figures, strict=True)}
    card = generator.card
    card.intensity = Intensity(
        default=chosen,
        chosen_on=f"{args.dataset}:{args.split}, {args.limit} faces, judge {args.judge} on {args.judge_limit}: the smallest "
                  f"intensity tried whose edits it read as the target at least {100 * args.min_judged:g} % of the time",
        command="python -m bench.synthesis_quality " + shlex.join(sys.argv[1:]),
        measured=measured,
    )
    write_card(generator.path, card)
    print(f"\nintensity {chosen:g} written to {generator.path / 'card.json'}")


def _short(name: str) -> str:
    """A generator's label: a bundled name, or the run folder of a ``runs/<run>/best`` path."""
    path = Path(name)
    return path.parent.name if path.name in ("best", "last") else path.name


def _labelled_rows(rows: list[tuple[str, list[Image.Image]]], header: list[str], tile: int) -> Image.Image:
    """Rows of equal square tiles with a label on the left and a header above."""
    font = ImageFont.load_default()
    label_w, head_h, gap = 170, 16, 2
    cols = max(len(tiles) for _, tiles in rows)
    sheet = Image.new("RGB", (label_w + cols * (tile + gap), head_h + len(rows) * (tile + gap)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for c, text in enumerate(header):
        draw.text((label_w + c * (tile + gap) + 4, 2), text, fill=(0, 0, 0), font=font)
    for r, (label, tiles) in enumerate(rows):
        top = head_h + r * (tile + gap)
        draw.text((4, top + tile // 2 - 6), label, fill=(0, 0, 0), font=font)
        for c, image in enumerate(tiles):
            sheet.paste(image.convert("RGB").resize((tile, tile), Image.Resampling.LANCZOS), (label_w + c * (tile + gap), top))
    return sheet


@torch.inference_mode()
def draw_grid(generators: list[LoadedModel], names: list[str], images: Tensor, labels: Tensor, classes: list[str], out: Path) -> None:
    """One real face of each expression (rows; each generator a block of rows) by every target (columns), each
    generator at its card's intensity."""
    chosen = [int(torch.nonzero(labels == c)[0, 0]) for c in range(len(classes)) if (labels == c).any()]
    rows = []
    for name, g in zip(names, generators, strict=True):
        x = images[chosen]
        for i, face in enumerate(x):
            out_faces = g.model.synthesize(face[None].expand(len(classes), -1, -1, -1), one_hot(range(len(classes)), len(classes)),
                                           g.intensity)
            tiles = [g.preprocess.to_image(face)] + [g.preprocess.to_image(f) for f in out_faces]
            rows.append((f"{_short(name)[:14]}: {classes[int(labels[chosen[i]])]}", tiles))
    out.parent.mkdir(parents=True, exist_ok=True)
    _labelled_rows(rows, ["input", *classes], 72).save(out)


def draw_photo_figure(generators: list[LoadedModel], names: list[str], photo: Image.Image, classes: list[str], out: Path) -> None:
    """The portrait's face before and redrawn with every target, one row per generator, then the whole photo
    before and redrawn as sad by the last generator."""
    rows = []
    for name, g in zip(names, generators, strict=True):
        photos, box = redraw_photo(g, photo, classes)
        rows.append((_short(name)[:26], [face_tile(photo, box)] + [face_tile(p, box) for p in photos]))
    sheet = _labelled_rows(rows, ["input", *classes], 112)
    # A smiling portrait shows the change best with an expression far from a smile.
    redrawn, _ = redraw_photo(generators[-1], photo, ["sad"] if "sad" in classes else classes[:1])
    pair = Image.new("RGB", (2 * 256 + 4, 256), (255, 255, 255))
    pair.paste(photo.resize((256, 256), Image.Resampling.LANCZOS), (0, 0))
    pair.paste(redrawn[0].resize((256, 256), Image.Resampling.LANCZOS), (260, 0))
    figure = Image.new("RGB", (max(sheet.width, pair.width), sheet.height + pair.height + 8), (255, 255, 255))
    figure.paste(sheet, (0, 0))
    figure.paste(pair, (0, sheet.height + 8))
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.save(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", nargs="+", default=["default"], help="the generators, compared on the same faces")
    parser.add_argument("--judge", help="an independently trained classifier checkpoint (never a generator)")
    parser.add_argument("--judge-limit", type=int, default=200, help="faces whose edits the judge sees (it may be slow)")
    parser.add_argument("--dataset", default="fer2013")
    parser.add_argument("--root", default="../shared/data/fer2013")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=600, help="faces drawn at random from the split")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--intensity", type=float, nargs="+",
                        help="measure each generator at each of these intensities (default: the card's)")
    parser.add_argument("--write-intensity", action="store_true",
                        help="write the smallest --intensity that reaches --min-judged into the (one) checkpoint's card "
                             "as its default; on a validation split only")
    parser.add_argument("--min-judged", type=float, default=0.95,
                        help="with --write-intensity: the share of edits the judge must read as the target")
    parser.add_argument("--grid", type=Path, help="real faces (rows) x targets (columns), every generator, to this PNG")
    parser.add_argument("--photo-figure", type=Path, help="the public-domain portrait redrawn by every generator, to this PNG")
    measure(parser.parse_args())


if __name__ == "__main__":
    main()
