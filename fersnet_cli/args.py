"""Options more than one command takes, declared once here, and turned here into what the commands need.

Each ``add_*`` declares an option (or a group) on a subparser; the function beside it reads it:
``--device`` through :func:`device`, the data options through :func:`load_split`, ``--report``
through :func:`report_splits`, ``--detect`` through :func:`detect_faces`, the checkpoint whose card
a command rewrites and its ``--out`` through :func:`card_checkpoint`, :func:`check_card_target` and
:func:`card_folder`. A command that takes the data options honours all of them, ``--folds`` included;
one that takes pictures lists them with :func:`input_files`.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from model_core import registry
from model_core.checkpoint import WEIGHTS_FILE, LoadedModel, load_checkpoint
from model_core.data import DATASETS, DataError, FaceDataset, Records, load_records
from model_core.data.records import image_files
from model_core.evaluate import evaluation_set
from model_core.faces import decide_detection
from model_core.hardware import lay_out_for, resolve_device

CHECKPOINT_HELP = "a checkpoint folder, or a bundled one by name: " + registry.describe()
DETECT_HELP = ("find the largest face in each image (YuNet) and frame it as the service does: yes (or --detect "
               "alone) for photos, no for face crops, auto (the default) for yes when the split's images are at least "
               "twice the model's input across, as photos are and the datasets' crops are not; images without a face "
               "are classified whole and counted")


def note(message: str) -> None:
    """Tell the user something on stderr that is not an error (a file skipped, a choice made for them), with the
    same ``fersnet:`` prefix as the errors, so that a script's log says which program spoke."""
    print(f"fersnet: note: {message}", file=sys.stderr)


class UsageError(Exception):
    """Options that name something the model or the command does not have (an expression it cannot draw, say): one
    line and exit status 2, as argparse's own errors."""


def require_writable(path: str | None, option: str) -> None:
    """Stop before any work where ``option``'s file could not be written (no such folder, a read-only one): a command
    that writes a card and then a figure must not fail between the two."""
    if path is None:
        return
    target, folder = Path(path), Path(path).parent
    if not folder.is_dir():
        raise UsageError(f"{option} {path}: folder {folder} not found")
    if target.is_dir():
        raise UsageError(f"{option} {path}: cannot write a folder")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"{option} {path}: cannot write into {folder}")


# --------------------------------------------------------------------------- inputs


def input_files(inputs: list[str]) -> list[tuple[str, str]]:
    """(path, name) of each input, a folder replaced by the pictures inside it at any depth (by suffix, sorted; hidden
    ones left out), each named by its path inside that folder, as a photo library keeps years and albums apart."""
    files: list[tuple[str, str]] = []
    for name in inputs:
        folder = Path(name)
        if folder.is_dir():
            files += [(str(p), p.relative_to(folder).as_posix()) for p in image_files(folder, recursive=True)]
        else:
            files.append((name, folder.name))
    if not files:
        raise DataError(f"{', '.join(inputs)}: no pictures in it or its subfolders")
    return files


# --------------------------------------------------------------------------- cards

#: Figure files: what matplotlib writes, by suffix (a bad suffix would fail only after the work, and after a card).
FIGURE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg", ".webp")


def require_figure(path: str | None) -> None:
    """Stop before any work where ``--figure`` could not be written: its folder, and a suffix matplotlib writes."""
    if path is not None and Path(path).suffix.lower() not in FIGURE_SUFFIXES:
        raise UsageError(f"--figure {path}: name a {', '.join(s[1:] for s in FIGURE_SUFFIXES)} file")
    require_writable(path, "--figure")


def add_card_checkpoint(p: argparse.ArgumentParser, what: str) -> None:
    """The checkpoint whose card a command rewrites, named as every command names one (``--checkpoint``) or, as these
    commands first took it, as the first argument."""
    p.add_argument("checkpoint", nargs="?", help=f"{CHECKPOINT_HELP}; its card.json is rewritten with {what}")
    p.add_argument("--checkpoint", dest="checkpoint_option", metavar="CHECKPOINT", help="the same, as an option")


def card_checkpoint(args: argparse.Namespace) -> str:
    """The checkpoint named either way (exactly once)."""
    given = [c for c in (args.checkpoint, args.checkpoint_option) if c is not None]
    if len(given) != 1:
        raise UsageError("name the checkpoint once: as the first argument, or with --checkpoint")
    return given[0]


def add_card_out(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", metavar="DIR",
                   help="write a copy of the checkpoint to DIR (its weights as they are) with the new card, instead of "
                        "rewriting the checkpoint's own card; a bundled checkpoint named by its name needs it")


def check_card_target(checkpoint: str | None, out: str | None, what: str, *, has_out: bool = True) -> None:
    """Stop before any work where a command's new card could not, or should not, be written where it would go.

    ``--out``, where given, must be a new or empty folder: one holding a checkpoint already has a card of its own
    (written by an earlier ``--out``, say), which the source's would replace. Without ``--out`` the card is rewritten
    in place, and a bundled checkpoint named by its name is refused. That card is what the service and every command
    answer with (its temperature, its prior, its figures): fitted
    again on a user's few images, it would change every answer of ``default`` in silence, and in an installed wheel
    it lives in site-packages. A copy (``--out``) is what a user wants; naming the bundled folder by its path says
    that the card that ships is to change, as when it is made.
    """
    if out is not None:
        folder = Path(out)
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"--out {out}: a file, not a folder")
        if (folder / "card.json").exists():  # a copy made before: its card, not the source's, is the one to change
            raise UsageError(f"--out {out}: already holds a checkpoint; to change its card, name it as the checkpoint "
                             f"(without --out), or choose a new folder")
        if folder.is_dir() and any(folder.iterdir()):
            raise UsageError(f"--out {out}: a folder holding other files; choose a new or empty one")
        return
    bundled = registry.BUNDLED[registry.DEFAULT] if checkpoint is None else registry.bundled_name(checkpoint)
    if bundled is not None:
        copy = "with --out DIR" if has_out else f"(cp -r {bundled.folder} DIR)"
        raise UsageError(f"{bundled.name} is a bundled checkpoint, and every answer of it reads its card: write {what} "
                         f"on a copy {copy} and use DIR as the checkpoint from then on, or name its folder "
                         f"({bundled.folder}) to change the card that ships")


def card_folder(loaded: LoadedModel, out: str | None) -> Path:
    """Where a command writes its new card: the checkpoint's own folder, or ``out`` holding a copy of its weights
    (a new or empty folder, as :func:`check_card_target` made sure)."""
    if out is None:
        return loaded.path
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(loaded.path / WEIGHTS_FILE, folder / WEIGHTS_FILE)
    return folder


def command_line(args: argparse.Namespace) -> str:
    """The command as typed (quoted for a shell): what a card records, so the run can be repeated."""
    return "fersnet " + shlex.join(args.argv)


# --------------------------------------------------------------------------- device


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])


def device(args: argparse.Namespace) -> torch.device:
    """``--device``, resolved as everywhere else (:func:`model_core.hardware.resolve_device`)."""
    return resolve_device(args.device)


def checkpoint_on_device(args: argparse.Namespace) -> tuple[torch.device, LoadedModel]:
    """``--device`` resolved and ``--checkpoint`` loaded on it, laid out for speed there (as the service lays it
    out: :func:`~model_core.hardware.lay_out_for`): where every command that runs a model starts."""
    on = device(args)
    return on, load_on(args.checkpoint, on)


def load_on(checkpoint: str | None, on: torch.device) -> LoadedModel:
    """``checkpoint`` loaded on ``on`` and laid out for speed there, as the service lays it out."""
    loaded = load_checkpoint(checkpoint, on)
    lay_out_for(loaded.model, on)
    return loaded


def positive_int(text: str) -> int:
    """An option's count (a batch size, resamples), refused by argparse with the reason unless it is 1 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not 1 or more")
    return value


def add_batch_size(p: argparse.ArgumentParser, default: int = 256) -> None:
    p.add_argument("--batch-size", type=positive_int, default=default)


# --------------------------------------------------------------------------- data


def add_data(p: argparse.ArgumentParser, split_default: str | None = None) -> None:
    """The options that name a split of a dataset; :func:`load_split` reads them."""
    p.add_argument("--dataset", required=True, choices=DATASETS)
    p.add_argument("--root", required=True, help="dataset folder (for fer2013 also a fer2013.csv file)")
    p.add_argument("--split", required=split_default is None, default=split_default,
                   help="train, val, test, all; CK+: fold<i>/train, fold<i>/test")
    p.add_argument("--label-mode", choices=["hard", "soft"], default="hard",
                   help="FER+: majority vote or vote distribution")
    p.add_argument("--folds", type=int, default=10, help="CK+: number of subject folds")
    p.add_argument("--skip-bad", action="store_true",
                   help="skip (and count) missing or corrupt files instead of stopping")


@dataclass(frozen=True)
class Split:
    """One split of one dataset in one folder: ``--dataset/--split/--root``, or a ``--report``."""

    dataset: str
    split: str
    root: str

    @property
    def key(self) -> str:
        """How cards and outputs name it: ``dataset/split``."""
        return f"{self.dataset}/{self.split}"

    @property
    def origin(self) -> str:
        """Where it came from, as a card records it (``fitted_on``, ``selected_on``)."""
        return f"{self.dataset}:{self.split} from {self.root}"


def named_split(args: argparse.Namespace) -> Split:
    """The split ``--dataset``, ``--split`` and ``--root`` name."""
    return Split(args.dataset, args.split, args.root)


def load_split(args: argparse.Namespace, split: Split | None = None) -> Records:
    """The records of ``split`` (default: the one the options name), with every data option applied to it."""
    split = split or named_split(args)
    return load_records(split.dataset, split.root, split.split, label_mode=args.label_mode, folds=args.folds,
                        skip_bad=args.skip_bad)


def evaluation_sets(args: argparse.Namespace, splits: list[Split], model: LoadedModel) -> dict[str, FaceDataset]:
    """Each split decoded for ``model``, keyed ``dataset/split``: every file read once, up front."""
    return {s.key: evaluation_set(load_split(args, s), model.preprocess, model.classes, args.skip_bad) for s in splits}


def refuse_test_split(args: argparse.Namespace, why: str) -> None:
    """Stop before any work where ``--split`` is a test split but the command chooses or fits on it (``why``)."""
    if "test" in args.split:
        raise DataError(f"--split {args.split}: {why}; measure test splits with --report")


def add_report(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--report", action="append", default=[], metavar="DATASET:SPLIT:ROOT", help=help)


def report_splits(args: argparse.Namespace) -> list[Split]:
    """Every ``--report dataset:split:root`` (the root may itself contain colons); a typo fails before any work.

    Cards and outputs name a split ``dataset/split`` (:attr:`Split.key`), so a report under the name of the split the
    command fits or chooses on (or of another report) would take that split's place, and the card would say it was
    fitted on one folder when it was fitted on another: refused, naming both.
    """
    taken = {named_split(args).key: named_split(args).origin}
    splits = []
    for spec in args.report:
        parts = spec.split(":", 2)
        if len(parts) != 3 or not all(parts):
            raise DataError(f"--report {spec!r}: expected dataset:split:root, e.g. fer2013:test:../shared/data/fer2013")
        split = Split(*parts)
        if split.key in taken:
            raise DataError(f"--report {spec!r}: {split.key} is already {taken[split.key]}; a card names a split "
                            "dataset/split, so report one folder per split name")
        taken[split.key] = split.origin
        splits.append(split)
    return splits


# --------------------------------------------------------------------------- face detection


def add_detect(p: argparse.ArgumentParser, help: str = DETECT_HELP) -> None:
    p.add_argument("--detect", nargs="?", const="yes", default="auto", choices=("auto", "yes", "no"), help=help)


def detect_faces(mode: str, records: Records, img_size: int) -> bool:
    """Whether to find the face in each image (:func:`model_core.faces.decide_detection`), saying so on stderr
    where the images look like photos: that ``auto`` finds their faces, or that ``no`` might be a mistake."""
    decision = decide_detection(mode, records, img_size)
    if decision.photos and decision.detect:
        note(f"these images are about {decision.side} pixels across, the model's input {img_size}: finding and "
             "framing the face in each as the service does (--detect no classifies them whole)")
    elif decision.photos:
        note(f"these images are about {decision.side} pixels across, the model's input {img_size}; "
             "if they are photos rather than face crops, add --detect to find and frame each face as the service does")
    return decision.detect
