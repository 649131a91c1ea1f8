"""``fersnet prior``: record on a checkpoint's card how often each class occurred in its training targets, and which
class prior its answers assume by default (:mod:`model_core.prior`).

The frequencies are read from the labels of the split the served head was fitted on (FER+'s vote distributions with
``--label-mode soft``), never a test split; the weights are unchanged. ``--default balanced`` makes the service, the CLI
and an export answer as if every class were equally likely; a request may still ask for either prior.
"""

from __future__ import annotations

import argparse

from model_core import load_checkpoint
from model_core.card import Prior
from model_core.checkpoint import write_card
from model_core.data import DataError
from model_core.prior import PRIORS, split_frequencies

from .. import args as shared


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prior", help="record a checkpoint's training class frequencies and its default class prior")
    shared.add_card_checkpoint(p, "the prior")
    shared.add_data(p, split_default="train")
    p.add_argument("--default", choices=PRIORS,
                   help="the prior an answer assumes when a request names none: natural (the training data's "
                        "frequencies) or balanced (every class equally likely); default: the card's own, natural "
                        "where it has none")
    shared.add_card_out(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    shared.refuse_test_split(args, "class frequencies are the training data's")
    args.checkpoint = shared.card_checkpoint(args)
    shared.check_card_target(args.checkpoint, args.out, "a prior")
    loaded = load_checkpoint(args.checkpoint)
    previous = loaded.prior
    split = shared.named_split(args)
    try:
        frequencies = split_frequencies(shared.load_split(args), loaded.classes)
    except ValueError as e:  # a class of the model the split never labels: no frequency to divide by
        raise DataError(f"{split.origin}: {e}") from None
    default = args.default or loaded.prior
    loaded.card.prior = Prior(frequencies=frequencies, default=default,
                              measured_on=f"{split.origin}, {args.label_mode} labels", command=shared.command_line(args))
    folder = shared.card_folder(loaded, args.out)
    write_card(folder, loaded.card)
    print(f"{loaded.card.name} ({loaded.sha256[:12]}): class frequencies of {split.key} "
          + ", ".join(f"{c} {100 * f:.2f} %" for c, f in frequencies.items()))
    print(f"default prior: {default}; wrote {folder / 'card.json'} (the weights are unchanged)")
    if default != previous and loaded.card.metrics:  # its served figures were answers under the other prior
        shared.note(f"the card's figures were measured under the {previous} prior; its answers are now under {default}: "
                    "measure them again with fersnet evaluate --record")
