"""The ``fersnet`` command line: one entry point for training, measuring, synthesising and serving.

    fersnet info                       variants, parameter counts, FLOPs
    fersnet train --config FILE        run a recipe (training/configs/*.yaml)
    fersnet evaluate --checkpoint ...  accuracy, macro-F1, recall, confusion
    fersnet compare A --against B ...  two models on the same images: the difference and its interval
    fersnet synthesize ...             redraw faces with other expressions
    fersnet balance ...                synthesise rare expressions into a folder
    fersnet teacher-targets ...        a teacher's probabilities for a split, for distillation
    fersnet soup A B ... --out DIR     average fine-tunings of one model into one (greedy on a validation split)
    fersnet export ...                 re-save a checkpoint (float16) or export the classifier (.pt2)
    fersnet serve --host --port        the REST service

Every subcommand is a small function that parses nothing itself; errors the
user can fix (a missing file, a bad recipe, a tampered checkpoint) end with
one line naming the problem and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from model_core import CheckpointError, create_model, list_variants, load_checkpoint
from model_core.checkpoint import bundled_checkpoints
from model_core.data import DataError, load_records
from model_core.fersnet import SHARING_MODES, FERSNet
from model_core.hardware import DeviceError, resolve_device

if TYPE_CHECKING:  # the evaluation module is imported by the commands that need it
    from model_core.checkpoint import LoadedModel
    from model_core.data import Records
    from model_core.evaluate import PairedComparison, SeededComparison
    from model_core.faces import LargestFace

EXIT_USAGE = 2
CHECKPOINT_HELP = "a checkpoint folder, or a bundled one by name: " + ", ".join(bundled_checkpoints())
DETECT_HELP = ("find the largest face in each image (YuNet) and frame it as the service does: yes (or --detect alone) for "
               "photos, no for face crops, auto (the default) for yes when the split's images are at least twice the "
               "model's input across, as photos are and the datasets' crops are not; images without a face are "
               "classified whole and counted")
#: ``--detect auto`` finds faces when a split's typical image is this many times the model's input across or more.
#: The datasets' crops are the input's size (48 pixels); photos and loosely framed faces (JAFFE's 256, KDEF's 562) are
#: larger. Detection on crops costs little either way (FER2013 PrivateTest +0.95, CK+48 -0.71 points, docs/results.md).
PHOTO_SIDE_FACTOR = 2


# --------------------------------------------------------------------------- info


def count_flops(model: FERSNet, synthesis: bool) -> int:
    """FLOPs of one image through ``classify`` (or ``synthesize``), counted by PyTorch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = model.config
    x = torch.zeros(1, cfg.in_chans, cfg.img_size, cfg.img_size)
    model.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        if synthesis:
            model.synthesize(x, torch.zeros(1, cfg.num_classes))
        else:
            model.classify(x)
    return int(counter.get_total_flops())


def cmd_info(args: argparse.Namespace) -> None:
    if args.checkpoint:
        loaded = load_checkpoint(args.checkpoint)
        card = {k: v for k, v in loaded.card.items() if k != "training"}
        print(json.dumps(card, indent=2))
        return
    rows = []
    for variant in [args.variant] if args.variant else list_variants():
        for sharing in SHARING_MODES:
            model = create_model(variant, sharing=sharing)
            cfg = model.config
            rows.append({
                "variant": variant,
                "sharing": sharing,
                "input": f"{cfg.img_size}x{cfg.img_size}x{cfg.in_chans}",
                "parameters": sum(p.numel() for p in model.parameters()),
                "gates": len(model.gates) * 2,
                "classify_gflops": count_flops(model, synthesis=False) / 1e9,
                "synthesize_gflops": count_flops(model, synthesis=True) / 1e9 if model.has_synthesis else None,
            })
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'variant':<15}{'sharing':<11}{'input':<10}{'params':>10}{'ConvFLUs':>9}{'GFLOPs classify':>17}{'GFLOPs synth.':>15}")
    for r in rows:
        synth = f"{r['synthesize_gflops']:.3f}" if r["synthesize_gflops"] is not None else "-"
        print(f"{r['variant']:<15}{r['sharing']:<11}{r['input']:<10}{r['parameters'] / 1e6:>9.2f}M{r['gates']:>9}"
              f"{r['classify_gflops']:>17.3f}{synth:>15}")
    print("\nConvFLUs: gates in both directions, one per stage and direction, each with its own weights."
          "\nFLOPs: per image, as counted by torch.utils.flop_counter (a multiply-add counts as 2).")


# --------------------------------------------------------------------------- train


def cmd_train(args: argparse.Namespace) -> None:
    from model_core.train import Trainer, load_config

    config = load_config(args.config, args.set)
    trainer = Trainer(config, command="fersnet " + " ".join(shlex.quote(a) for a in args.argv))
    if args.resume and not trainer.resume():
        print(f"fersnet: nothing to resume in {config.run_dir / 'last'}; starting fresh", file=sys.stderr)
    best = trainer.fit()
    if trainer.env.is_main:
        print(f"best checkpoint: {best}")


# --------------------------------------------------------------------------- evaluate


def _device(name: str) -> torch.device:
    return resolve_device(name)


def cmd_evaluate(args: argparse.Namespace) -> None:
    from model_core.evaluate import evaluate_records, plot_confusion

    device = _device(args.device)
    loaded = load_checkpoint(args.checkpoint, device)
    records = load_records(args.dataset, args.root, args.split, label_mode=args.label_mode, folds=args.folds, skip_bad=args.skip_bad)
    detect = _detect_faces(args.detect, records, loaded.preprocess.img_size)
    metrics = evaluate_records(loaded.model, loaded.classes, loaded.preprocess, records, device, args.batch_size, args.skip_bad,
                               _face_finder(detect, loaded))
    if args.figure:
        title = f"{args.dataset}/{args.split}: accuracy {100 * metrics.accuracy:.2f} %"
        if metrics.extra_classes and metrics.accuracy_restricted is not None:
            title += f" (restricted to its classes {100 * metrics.accuracy_restricted:.2f} %)"
        plot_confusion(metrics, Path(args.figure), title=title)
    if args.json:
        print(json.dumps({"checkpoint": str(loaded.path), "dataset": args.dataset, "split": args.split, "detect": detect,
                          "skipped": len(records.skipped), **metrics.to_dict()}))
    else:
        print(f"{loaded.card.get('name')} ({loaded.sha256[:12]}) on {args.dataset}/{args.split}")
        print(metrics.table())


def _face_finder(detect: bool, loaded: LoadedModel) -> LargestFace | None:
    """With detection: each image's largest face, framed for this model as the service frames it."""
    if not detect:
        return None
    from model_core.faces import FaceDetector, LargestFace

    return LargestFace(loaded.preprocess, FaceDetector())


def _detect_faces(mode: str, records: Records, img_size: int) -> bool:
    """Whether to find the face in each image of a split: as ``--detect`` says, or under ``auto`` when they look like photos.

    The datasets here are face crops of the model's input size, and their
    published numbers are measured on the crops as they are. A folder of
    photos (or of loosely framed faces) classified whole is mostly background,
    and its score says little about the model, so ``auto`` measures such a
    folder as the service would answer for it, and says so. Only a few image
    headers are read to decide.
    """
    if mode == "yes":
        return True
    side = _typical_side(records)
    if side < PHOTO_SIDE_FACTOR * img_size:
        return False
    if mode == "auto":
        print(f"note: these images are about {side} pixels across, the model's input {img_size}: finding and framing "
              "the face in each as the service does (--detect no classifies them whole)", file=sys.stderr)
        return True
    print(f"note: these images are about {side} pixels across, the model's input {img_size}; "
          "if they are photos rather than face crops, add --detect to find and frame each face as the service does",
          file=sys.stderr)
    return False


def _typical_side(records: Records, sample: int = 20) -> int:
    """The median longest side of a few of a split's images, read from their headers (0 for pixel arrays).

    Images that cannot be opened are left to the evaluation, which names them.
    """
    from PIL import Image

    sides = []
    for record in records.records[:: max(1, len(records.records) // sample)][:sample]:
        if record.pixels is not None:
            return 0
        try:
            with Image.open(record.source) as f:
                sides.append(max(f.size))
        except OSError:
            continue
    return sorted(sides)[len(sides) // 2] if sides else 0


def cmd_compare(args: argparse.Namespace) -> None:
    """Two checkpoints (or two recipes, several seeds each) on the same split: is the difference more than the noise?"""
    from model_core.evaluate import correct_per_image, paired_comparison, seeded_comparison

    device = _device(args.device)
    records = load_records(args.dataset, args.root, args.split, label_mode=args.label_mode, folds=args.folds, skip_bad=args.skip_bad)
    sides = [[load_checkpoint(name, device) for name in names] for names in (args.checkpoint, args.against)]
    detect = _detect_faces(args.detect, records, min(m.preprocess.img_size for side in sides for m in side))
    correct = [[correct_per_image(m, records, device, args.batch_size, args.skip_bad, _face_finder(detect, m), args.restricted)
                for m in side] for side in sides]
    if len(sides[0]) == len(sides[1]) == 1:
        _print_pair(args, [side[0] for side in sides], paired_comparison(correct[0][0], correct[1][0], args.resamples, args.seed))
    else:
        _print_seeds(args, sides, seeded_comparison(*correct, resamples=args.resamples, seed=args.seed))


#: How compare's text names the restricted protocol (``--restricted``).
_RESTRICTED_NOTE = " (restricted to the set's classes)"


def _print_pair(args: argparse.Namespace, models: list[LoadedModel], result: PairedComparison) -> None:
    if args.json:
        print(json.dumps({"a": str(models[0].path), "b": str(models[1].path), "dataset": args.dataset, "split": args.split,
                          "restricted": args.restricted, **result.to_dict()}))
        return
    names = [f"{m.card.get('name')} ({m.sha256[:12]})" for m in models]
    print(f"A: {names[0]}\nB: {names[1]}\non {args.dataset}/{args.split}, {result.n} images")
    print(f"accuracy{_RESTRICTED_NOTE if args.restricted else ''} A {100 * result.accuracy_a:.2f} %, B {100 * result.accuracy_b:.2f} %")
    print(f"A - B: {100 * result.difference:+.2f} points, 95 % interval [{100 * result.low:+.2f}, {100 * result.high:+.2f}] "
          f"({args.resamples:,} paired bootstrap resamples of the images)")
    print(f"right only by A: {result.a_only}, only by B: {result.b_only} (exact McNemar p = {result.mcnemar_p:.3g})")
    print("The interval covers the test images' sampling noise, not the training seed's: "
          "give each side several seeds' checkpoints for that.")


def _print_seeds(args: argparse.Namespace, sides: list[list[LoadedModel]], result: SeededComparison) -> None:
    if args.json:
        print(json.dumps({"a": [str(m.path) for m in sides[0]], "b": [str(m.path) for m in sides[1]],
                          "dataset": args.dataset, "split": args.split,
                          "restricted": args.restricted, **result.to_dict()}))
        return
    print(f"on {args.dataset}/{args.split}, {result.n} images")
    for label, side, mean, accuracies in (("A", sides[0], result.accuracy_a, result.accuracies_a),
                                          ("B", sides[1], result.accuracy_b, result.accuracies_b)):
        print(f"{label}: mean accuracy{_RESTRICTED_NOTE if args.restricted else ''} {100 * mean:.2f} % over {len(side)} checkpoint(s)")
        for model, accuracy in zip(side, accuracies, strict=True):
            print(f"   {100 * accuracy:.2f} %  {model.path}")
    print(f"mean A - mean B: {100 * result.difference:+.2f} points, 95 % interval [{100 * result.low:+.2f}, "
          f"{100 * result.high:+.2f}] ({args.resamples:,} bootstrap rounds, each resampling every side's seeds and the images)")
    print("The interval covers the training seeds' noise and the images'; with few seeds a side it is a rough one.")


# --------------------------------------------------------------------------- synthesize


def _targets(spec: str, classes: Sequence[str]) -> list[str]:
    from model_core.expressions import canonical

    if spec == "all":
        return list(classes)
    wanted = []
    for name in spec.split(","):
        try:
            c = canonical(name)
        except KeyError as e:
            raise SystemExit(f"fersnet: error: --target: {e.args[0]}") from None
        if c not in classes:
            raise SystemExit(f"fersnet: error: --target: the model has no class {c!r} (it knows {', '.join(classes)})")
        wanted.append(c)
    return wanted


def cmd_synthesize(args: argparse.Namespace) -> None:
    from PIL import Image, ImageOps, UnidentifiedImageError

    from model_core.evaluate import synthesis_grid
    from model_core.faces import crop_faces, whole_image
    from model_core.photo_edit import crop_box, encode_like, redrawn_photos
    from model_core.preprocess import viewable

    loaded = load_checkpoint(args.checkpoint, _device(args.device))
    if not loaded.model.has_synthesis:
        raise CheckpointError(f"{loaded.path}: this model has no synthesis branch (sharing='none')")
    targets = _targets(args.target, loaded.classes)
    preprocess = loaded.preprocess
    find_face = _face_finder(args.detect != "no", loaded)
    photo_side = PHOTO_SIDE_FACTOR * preprocess.img_size
    photos, boxes, inputs, names, formats = [], [], [], [], []
    for path in args.inputs:
        try:
            with Image.open(path) as f:
                image, fmt = viewable(ImageOps.exif_transpose(f)), f.format or "PNG"
        except (FileNotFoundError, UnidentifiedImageError, OSError) as e:
            raise DataError(f"{path}: cannot read image ({e})") from None
        image = image if image.mode in ("L", "RGB") else image.convert("RGB")
        face = None
        if find_face is not None and (args.detect == "yes" or max(image.size) >= photo_side):
            face = find_face.find(image)
            if face is None and args.detect == "yes":
                raise DataError(f"{path}: no face found; use --detect no if the image already is a face crop")
            if face is None:
                print(f"note: {path}: no face found; redrawing the whole image as a face crop", file=sys.stderr)
        face = face or whole_image(image)
        photos.append(image)
        boxes.append(crop_box(face, image.size, preprocess))
        inputs.append(preprocess.prepare(crop_faces(image, [face], preprocess)[0]))
        names.append(Path(path).stem)
        formats.append(fmt)
    images = torch.stack([preprocess.to_tensor(face) for face in inputs]).to(_device(args.device))
    out = Path(args.out)
    if args.grid:
        out.parent.mkdir(parents=True, exist_ok=True)
        synthesis_grid(loaded.model, images, loaded.classes, preprocess, out, names)
        print(f"wrote {out}")
        return
    out.mkdir(parents=True, exist_ok=True)
    onehot = torch.eye(len(loaded.classes), device=images.device)[[loaded.classes.index(t) for t in targets]]
    with torch.inference_mode():  # each input encoded once, decoded once per target
        sources = torch.arange(len(images), device=images.device).repeat_interleave(len(targets))
        redrawn = loaded.model.redraw(images, onehot.repeat(len(images), 1), sources).view(len(images), len(targets), *images.shape[1:])
    for i, name in enumerate(names):
        if args.format == "face":
            for target, face in zip(targets, redrawn[i], strict=True):
                file = out / f"{name}_{target}.png"
                preprocess.to_image(face).save(file)
                print(f"wrote {file}")
            continue
        for target, photo in zip(targets, redrawn_photos(photos[i], boxes[i], images[i], redrawn[i], preprocess), strict=True):
            data, media_type = encode_like(photo, formats[i])
            file = out / f"{name}_{target}.{media_type.removeprefix('image/').replace('jpeg', 'jpg')}"
            file.write_bytes(data)
            print(f"wrote {file}")


# --------------------------------------------------------------------------- balance


def cmd_balance(args: argparse.Namespace) -> None:
    from model_core.train import balance

    device = _device(args.device)
    loaded = load_checkpoint(args.checkpoint, device)
    records = load_records(args.dataset, args.root, args.split, label_mode=args.label_mode, skip_bad=args.skip_bad)
    report = balance(loaded, records, args.out, target=args.target, min_confidence=args.min_confidence,
                     seed=args.seed, device=device)
    print(report.table())
    print(f"wrote {sum(report.written.values())} faces and manifest.csv to {report.out_dir}")


def cmd_teacher_targets(args: argparse.Namespace) -> None:
    from model_core.train.teacher import write_teacher_targets

    device = _device(args.device)
    loaded = load_checkpoint(args.checkpoint, device)
    records = load_records(args.dataset, args.root, args.split, label_mode=args.label_mode, folds=args.folds, skip_bad=args.skip_bad)
    out = write_teacher_targets(loaded, records, args.root, args.out, temperature=args.temperature, device=device,
                                batch_size=args.batch_size)
    print(f"wrote {out}: {loaded.card.get('name')} ({loaded.sha256[:12]}) on {args.dataset}/{args.split}, "
          f"{len(records)} images, temperature {args.temperature:g}")


def cmd_soup(args: argparse.Namespace) -> None:
    from model_core.calibration import dataset_logits
    from model_core.checkpoint import build_card, save_checkpoint
    from model_core.evaluate import evaluate_dataset, evaluation_set
    from model_core.train.soup import greedy_soup, uniform_soup

    if "test" in args.split:
        raise DataError(f"--split {args.split}: a soup is chosen on a validation split; measure test splits with --report")
    reports = [_report_spec(spec) for spec in args.report]  # a typo fails now, not after the soup is made
    device = _device(args.device)
    ingredients = [load_checkpoint(path, device) for path in args.checkpoints]
    first = ingredients[0]  # greedy_soup and uniform_soup refuse ingredients that are not the same network
    val_records = load_records(args.dataset, args.root, args.split, label_mode=args.label_mode, skip_bad=args.skip_bad)
    val_set = evaluation_set(val_records, first.preprocess, first.classes, args.skip_bad)

    def accuracy(model: FERSNet) -> float:
        return evaluate_dataset(model, first.classes, val_set, device, args.batch_size).accuracy

    selected_on = f"{args.dataset}:{args.split} from {args.root}"
    trials: list[dict[str, Any]] = []
    if args.method == "greedy":
        result = greedy_soup(ingredients, accuracy)
        model, chosen, own = result.model, result.chosen, result.ingredient_scores
        for i in sorted(range(len(ingredients)), key=lambda i: -own[i]):
            print(f"  {100 * own[i]:6.2f} %  {ingredients[i].path}")
        for candidate, score, kept in result.trials:
            print(f"  + {ingredients[candidate].path}: {100 * score:.2f} % ({'kept' if kept else 'left out'})")
            trials.append({"added": str(ingredients[candidate].path), "accuracy": round(score, 5), "kept": kept})
    else:
        model, chosen, own = uniform_soup(ingredients), list(range(len(ingredients))), [accuracy(i.model) for i in ingredients]

    faces = {f"{args.dataset}/{args.split}": val_set}
    for dataset, split, root in reports:
        records = load_records(dataset, root, split, label_mode=args.label_mode, skip_bad=args.skip_bad)
        faces[f"{dataset}/{split}"] = evaluation_set(records, first.preprocess, first.classes, args.skip_bad)
    # The soup runs over each split once: its logits give the accuracy here and the temperature below.
    logits = {key: dataset_logits(model, first.classes, split_faces, device, args.batch_size) for key, split_faces in faces.items()}
    measured = {key: evaluate_dataset(model, first.classes, split_faces, logits=logits[key]) for key, split_faces in faces.items()}
    for key, m in measured.items():
        print(f"soup of {len(chosen)} on {key}: {m.headline()}")
    metrics = {key: m.summary() for key, m in measured.items()}
    training = {
        "command": "fersnet " + shlex.join(args.argv),
        "soup": {
            "method": args.method,
            "selected_on": selected_on,
            "ingredients": [{"checkpoint": str(i.path), "name": i.card.get("name"), "sha256": i.sha256,
                             "accuracy": round(own[k], 5), "in_soup": k in chosen,
                             "command": i.card.get("training", {}).get("command"),
                             "recipe": i.card.get("training", {}).get("recipe")} for k, i in enumerate(ingredients)],
            "greedy_trials": trials,
        },
        "base": first.card.get("training", {}),
    }
    card = build_card(model, first.classes, first.preprocess, name=args.name or Path(args.out).name,
                      training=training, metrics=metrics)
    save_checkpoint(args.out, model, card)
    print(f"wrote {args.out}: the average of {len(chosen)} of {len(ingredients)} checkpoints")
    _calibrate(load_checkpoint(args.out, device), args, logits, selected_on)


# --------------------------------------------------------------------------- calibrate


def cmd_calibrate(args: argparse.Namespace) -> None:
    """Fit the temperature that calibrates a checkpoint's probabilities on a validation split; write it on its card."""
    from model_core.calibration import dataset_logits, reliability_diagram
    from model_core.evaluate import evaluation_set

    if "test" in args.split:
        raise DataError(f"--split {args.split}: a temperature is fitted on a validation split; measure test splits with --report")
    reports = [_report_spec(spec) for spec in args.report]
    device = _device(args.device)
    loaded = load_checkpoint(args.checkpoint, device)
    faces = {}
    for dataset, split, root in [(args.dataset, args.split, args.root), *reports]:
        records = load_records(dataset, root, split, label_mode=args.label_mode, skip_bad=args.skip_bad)
        faces[f"{dataset}/{split}"] = evaluation_set(records, loaded.preprocess, loaded.classes, args.skip_bad)
    splits = {key: dataset_logits(loaded.model, loaded.classes, split_faces, device, args.batch_size) for key, split_faces in faces.items()}
    _calibrate(loaded, args, splits, f"{args.dataset}:{args.split} from {args.root}")
    calibration = loaded.card["calibration"]
    print(f"{'split':<18}{'images':>8}{'accuracy':>10}{'NLL':>16}{'ECE':>18}{'mean confidence':>22}")
    for key, m in calibration["measured"].items():
        b, a = m["before"], m["after"]
        print(f"{key:<18}{a['images']:>8}{100 * a['accuracy']:>9.2f}%{b['nll']:>8.3f} -> {a['nll']:.3f}"
              f"{100 * b['ece']:>8.2f} -> {100 * a['ece']:5.2f}%{100 * b['mean_confidence']:>10.1f} -> {100 * a['mean_confidence']:.1f}%")
    print(f"wrote the temperature on {loaded.path / 'card.json'} (the weights are unchanged)")
    if args.figure:
        reliability_diagram(splits, calibration["temperature"], Path(args.figure))
        print(f"wrote {args.figure}")


def _calibrate(loaded: LoadedModel, args: argparse.Namespace, logits: dict[str, tuple[torch.Tensor, torch.Tensor]],
               fitted_from: str) -> None:
    """Fit ``loaded``'s temperature on the first split of ``logits`` (the model's logits and labels per split;
    ``fitted_from`` says where that split came from), measure it on all, and write it on the checkpoint's card."""
    from model_core.calibration import calibrate
    from model_core.checkpoint import write_card

    fit_on = next(iter(logits))
    loaded.card["calibration"] = calibrate(logits, fit_on, fitted_from, "fersnet " + shlex.join(args.argv))
    write_card(loaded.path, loaded.card)
    print(f"{loaded.card.get('name')} ({loaded.sha256[:12]}): temperature {loaded.card['calibration']['temperature']:g}, "
          f"fitted on {fit_on}")


def _report_spec(spec: str) -> tuple[str, str, str]:
    """``dataset:split:root`` (the root may itself contain colons)."""
    parts = spec.split(":", 2)
    if len(parts) != 3 or not all(parts):
        raise DataError(f"--report {spec!r}: expected dataset:split:root, e.g. fer2013:test:../shared/data/fer2013")
    return parts[0], parts[1], parts[2]


# --------------------------------------------------------------------------- export


def cmd_export(args: argparse.Namespace) -> None:
    from model_core.checkpoint import save_checkpoint

    loaded = load_checkpoint(args.checkpoint)
    out = Path(args.out)
    if args.format == "safetensors":
        card = {k: v for k, v in loaded.card.items() if k not in ("weights", "created")}
        card["exported_from"] = loaded.sha256
        save_checkpoint(out, loaded.model, card, half=args.half)
        print(f"wrote {out} ({(out / 'model.safetensors').stat().st_size / 1e6:.1f} MB)")
        return
    cfg = loaded.model.config
    example = torch.zeros(2, cfg.in_chans, cfg.img_size, cfg.img_size)
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(_Classifier(loaded.model, loaded.temperature).eval(), (example,), dynamic_shapes=({0: batch},))
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, str(out))
    print(f"wrote {out}: torch.export program (load with torch.export.load), input (N, {cfg.in_chans}, {cfg.img_size}, "
          f"{cfg.img_size}) normalised with mean {loaded.preprocess.mean}, std {loaded.preprocess.std}; "
          f"output: probabilities of {', '.join(loaded.classes)}")


class _Classifier(torch.nn.Module):
    """The recognition path alone, returning calibrated probabilities: what an exported classifier needs."""

    def __init__(self, model: FERSNet, temperature: float = 1.0) -> None:
        super().__init__()
        self.model = model
        self.temperature = temperature

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (self.model.classify(images) / self.temperature).softmax(1)


# --------------------------------------------------------------------------- parser


def _data_args(p: argparse.ArgumentParser, split_default: str | None = None) -> None:
    p.add_argument("--dataset", required=True, choices=["fer2013", "ferplus", "ckplus", "folder"])
    p.add_argument("--root", required=True, help="dataset folder (for fer2013 also a fer2013.csv file)")
    p.add_argument("--split", required=split_default is None, default=split_default,
                   help="train, val, test, all; CK+: fold<i>/train, fold<i>/test")
    p.add_argument("--label-mode", choices=["hard", "soft"], default="hard", help="FER+: majority vote or vote distribution")
    p.add_argument("--folds", type=int, default=10, help="CK+: number of subject folds")
    p.add_argument("--skip-bad", action="store_true", help="skip (and count) missing or corrupt files instead of stopping")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fersnet", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="list variants with parameter counts and FLOPs, or show a checkpoint's card")
    p.add_argument("--variant", choices=list_variants())
    p.add_argument("--checkpoint", help="show this checkpoint's model card instead (" + CHECKPOINT_HELP + ")")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("train", help="train a recipe")
    p.add_argument("--config", required=True, help="YAML recipe, e.g. training/configs/fer2013_small.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe field, e.g. optim.epochs=5 (a number indexes a list: train.0.teacher_weight=0.9)")
    p.add_argument("--resume", action="store_true", help="continue from <out_dir>/last if present")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="measure a checkpoint on a dataset split")
    p.add_argument("--checkpoint", default="default", help=CHECKPOINT_HELP)
    _data_args(p)
    p.add_argument("--detect", nargs="?", const="yes", default="auto", choices=("auto", "yes", "no"), help=DETECT_HELP)
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (keys include accuracy, macro_f1 and accuracy_restricted: the best of the "
                        "model's classes that the set contains)")
    p.add_argument("--figure", help="also save the confusion matrix as this PNG")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("compare", help="two checkpoints (or several seeds a side) on the same split: difference, interval")
    p.add_argument("checkpoint", nargs="+",
                   help="model A: " + CHECKPOINT_HELP + "; several (one recipe's seeds) compare the recipes' mean accuracy")
    p.add_argument("--against", nargs="+", required=True,
                   help="model B: a checkpoint folder or a bundled name, as for A; several for B's seeds")
    _data_args(p)
    p.add_argument("--restricted", action="store_true",
                   help="score the best of each model's classes that the set contains (evaluate's accuracy_restricted) "
                        "instead of the plain argmax over all its classes (evaluate's accuracy, the default)")
    p.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples (of the images, and the seeds)")
    p.add_argument("--seed", type=int, default=0, help="seed of the resampling, so the interval is reproducible")
    p.add_argument("--detect", nargs="?", const="yes", default="auto", choices=("auto", "yes", "no"), help=DETECT_HELP)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("synthesize", help="redraw the face in each photo with target expressions")
    p.add_argument("inputs", nargs="+", help="face crops or photos (each face found and framed as the service does: see --detect)")
    p.add_argument("--checkpoint", default="default", help=CHECKPOINT_HELP)
    p.add_argument("--target", default="all", help="comma-separated expressions, or all")
    p.add_argument("--out", required=True, help="output folder (or PNG file with --grid)")
    p.add_argument("--format", default="photo", choices=("photo", "face"),
                   help="photo (the default): each input at its own size and colours with its face redrawn, saved as "
                        "<name>_<target> in the input's format family; face: the bare model-sized face the network drew")
    p.add_argument("--grid", action="store_true", help="one PNG of model-sized faces: inputs down, target expressions across")
    p.add_argument("--detect", nargs="?", const="yes", default="auto", choices=("auto", "yes", "no"),
                   help="find the largest face in each input (YuNet) and frame it as the service does: yes (or --detect "
                        "alone) for photos, no for face crops, auto (the default) for inputs at least twice the model's "
                        "input across, redrawn whole where no face is found")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.set_defaults(func=cmd_synthesize)

    p = sub.add_parser("balance", help="synthesise faces of rare expressions until every class has --target images")
    p.add_argument("--checkpoint", default="default", help=CHECKPOINT_HELP)
    _data_args(p, split_default="train")
    p.add_argument("--out", required=True, help="output folder (class-per-folder PNGs + manifest.csv)")
    p.add_argument("--target", type=int, help="images per class after balancing (default: the largest class)")
    p.add_argument("--min-confidence", type=float, default=0.0, help="drop fakes the model itself classifies below this")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.set_defaults(func=cmd_balance)

    p = sub.add_parser("teacher-targets", help="write a teacher model's probabilities for a split (distillation targets)")
    p.add_argument("--checkpoint", required=True, help="the teacher: " + CHECKPOINT_HELP)
    _data_args(p, split_default="train")
    p.add_argument("--out", required=True, help="CSV to write: image,<class>,... (a recipe's train[].teacher); "
                   "a name ending in .gz is gzipped")
    p.add_argument("--temperature", type=float, default=1.0, help="softmax temperature; above 1 softens the teacher")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.set_defaults(func=cmd_teacher_targets)

    p = sub.add_parser("soup", help="average fine-tunings of one model into one network, chosen on a validation split")
    p.add_argument("checkpoints", nargs="+",
                   help="the model the others were fine-tuned from (its training is recorded as the soup's base), "
                        "then its fine-tunings: same network, input and classes")
    _data_args(p, split_default="val")
    p.add_argument("--method", choices=["greedy", "uniform"], default="greedy",
                   help="greedy: add ingredients best first while validation accuracy does not drop; uniform: average all")
    p.add_argument("--report", action="append", default=[], metavar="DATASET:SPLIT:ROOT",
                   help="also measure the soup here and write it on its card (test splits: measured, never used to choose)")
    p.add_argument("--out", required=True, help="checkpoint folder to write")
    p.add_argument("--name", help="the card's name (default: the --out folder's name)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.set_defaults(func=cmd_soup)

    p = sub.add_parser("calibrate", help="fit the temperature that makes a checkpoint's probabilities calibrated, on a validation split")
    p.add_argument("checkpoint", help=CHECKPOINT_HELP + "; its card.json is rewritten with the temperature")
    _data_args(p, split_default="val")
    p.add_argument("--report", action="append", default=[], metavar="DATASET:SPLIT:ROOT",
                   help="also measure calibration here, before and after, and write it on the card (never used to fit)")
    p.add_argument("--figure", help="also save a reliability diagram of every split as this PNG")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("export", help="re-save a checkpoint (float16 safetensors) or export the classifier with torch.export")
    p.add_argument("--checkpoint", default="default", help=CHECKPOINT_HELP)
    p.add_argument("--out", required=True)
    p.add_argument("--format", choices=["safetensors", "torch-export"], default="safetensors",
                   help="torch-export: a .pt2 program of the classifier for runtimes without this package")
    p.add_argument("--half", action="store_true", help="safetensors: store float16 weights (half the size)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("serve", help="start the REST service (options as for python -m service)", add_help=False)
    return parser


KNOWN_ERRORS: tuple[type[Exception], ...] = (CheckpointError, DataError, DeviceError, FileNotFoundError)


def main(argv: Sequence[str] | None = None) -> None:
    from model_core.train import ConfigError

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:
        # The service owns its options; argparse's REMAINDER would reject a leading '--host'.
        from service.__main__ import main as serve_main

        serve_main(argv[1:], prog="fersnet serve")
        return
    args = build_parser().parse_args(argv)
    args.argv = argv
    handler: Callable[[argparse.Namespace], Any] = args.func
    try:
        handler(args)
    except (*KNOWN_ERRORS, ConfigError) as e:
        print(f"fersnet: error: {e}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None


if __name__ == "__main__":
    main()
