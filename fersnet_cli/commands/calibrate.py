"""``fersnet calibrate``: the temperature that calibrates a checkpoint's probabilities, fitted on a validation split.

The temperature is written on the checkpoint's card (the weights are unchanged), with its
calibration measured before and after on every split; ``fersnet soup`` calibrates its soup the
same way, through :func:`write_temperature`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from model_core import LoadedModel
from model_core.calibration import calibrate, dataset_logits, reliability_diagram
from model_core.card import Calibration
from model_core.checkpoint import write_card

from .. import args as shared


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="fit the temperature that makes a checkpoint's probabilities calibrated, "
                       "on a validation split")
    shared.add_card_checkpoint(p, "the temperature")
    shared.add_data(p, split_default="val")
    shared.add_report(p, "also measure calibration here, before and after, and write it on the card (never used to "
                      "fit)")
    p.add_argument("--figure", help="also save a reliability diagram of every split as this PNG")
    shared.add_card_out(p)
    shared.add_batch_size(p)
    shared.add_device(p)
    p.set_defaults(func=run)


def write_temperature(loaded: LoadedModel, calibration: Calibration, folder: Path) -> None:
    """Put ``calibration`` on ``loaded``'s card and write the card into ``folder`` (its own, or a copy's), saying so."""
    loaded.card.calibration = calibration
    write_card(folder, loaded.card)
    print(f"{loaded.card.name} ({loaded.sha256[:12]}): temperature {calibration.temperature:g}, "
          f"fitted on {next(iter(calibration.measured))}")


def run(args: argparse.Namespace) -> None:
    shared.refuse_test_split(args, "a temperature is fitted on a validation split")
    args.checkpoint = shared.card_checkpoint(args)
    shared.check_card_target(args.checkpoint, args.out, "a temperature")
    shared.require_figure(args.figure)
    reports = shared.report_splits(args)
    device, loaded = shared.checkpoint_on_device(args)
    fit_on = shared.named_split(args)
    faces = shared.evaluation_sets(args, [fit_on, *reports], loaded)
    logits = {key: dataset_logits(loaded.model, loaded.classes, split_faces, device, args.batch_size)
              for key, split_faces in faces.items()}
    calibration = calibrate(logits, next(iter(logits)), fit_on.origin, shared.command_line(args))
    if args.figure:  # first: a figure that cannot be written leaves the card as it was
        reliability_diagram(logits, calibration.temperature, Path(args.figure))
    folder = shared.card_folder(loaded, args.out)
    write_temperature(loaded, calibration, folder)
    print(f"{'split':<18}{'images':>8}{'accuracy':>10}{'NLL':>16}{'ECE':>18}{'mean confidence':>22}")
    for key, m in calibration.measured.items():
        b, a = m["before"], m["after"]
        print(f"{key:<18}{a['images']:>8}{100 * a['accuracy']:>9.2f}%{b['nll']:>8.3f} -> {a['nll']:.3f}"
              f"{100 * b['ece']:>8.2f} -> {100 * a['ece']:5.2f}%{100 * b['mean_confidence']:>10.1f} -> "
              f"{100 * a['mean_confidence']:.1f}%")
    print(f"wrote the temperature on {folder / 'card.json'} (the weights are unchanged)")
    if args.figure:
        print(f"wrote {args.figure}")
