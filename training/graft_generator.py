"""Give a served checkpoint a newly trained generator, keeping its recogniser and its answer tail exactly.

A generator recipe that freezes everything the recogniser uses
(``training/configs/fer2013_small_smooth.yaml``) trains a network without the
answer tail, since the trainer fits expression networks only. Its trunk is the
served checkpoint's, tensor for tensor, so the tail fitted on that trunk still
reads exactly the features it was fitted on: the tail can be carried over
rather than fitted again (which would change every served answer, by a seed's
worth of noise). This copies the generator's synthesis tensors (the
expression embedding and the decoder) into a copy of the served checkpoint,
after checking that every other tensor the two share is equal. The new card
keeps the served card's calibration, prior, metrics and answer tail, records
the generator's training, and drops the synthesis intensity, which belongs to
the old decoder: choose it again with ``python -m bench.synthesis_quality
--write-intensity``.

    python -m training.graft_generator --generator runs/fer2013_small_smooth/best --into default \\
        --out runs/smooth_default --name fer2013_ferplus_small_smooth
"""

from __future__ import annotations

import argparse
import copy
import shlex
import sys
from pathlib import Path

import torch

from model_core import CheckpointError, load_checkpoint
from model_core.checkpoint import LoadedModel, save_checkpoint
from model_core.data import DataError
from model_core.fersnet import FERSNet

#: The modules only synthesis uses and a generator recipe trains; every other module must be the served one's.
SYNTHESIS_MODULES = ("embedding", "decoder")


def in_generator(name: str) -> bool:
    """Whether the state-dict entry ``name`` belongs to the generator's own modules (:data:`SYNTHESIS_MODULES`)."""
    return name.split(".", 1)[0] in SYNTHESIS_MODULES


def grafted(generator: LoadedModel, served: LoadedModel) -> FERSNet:
    """A copy of ``served``'s network holding ``generator``'s synthesis modules; raises DataError where the two
    networks differ anywhere else, since the served heads would then read other features than they were fitted on."""
    if generator.expressions != served.expressions:
        raise DataError(f"the generator draws {list(generator.expressions)}, the served model {list(served.expressions)}")
    theirs = generator.model.state_dict()
    model = copy.deepcopy(served.model)
    state = model.state_dict()
    if not any(in_generator(name) for name in state):
        raise DataError(f"{served.path}: no generator to replace (a recognition-only network)")
    if missing := [name for name in state if in_generator(name) and name not in theirs]:
        raise DataError(f"{generator.path}: no synthesis tensors to graft ({', '.join(missing[:3])})")
    for name, tensor in state.items():
        if in_generator(name):
            if theirs[name].shape != tensor.shape:
                raise DataError(f"{name}: the generator's is {tuple(theirs[name].shape)}, the served model's {tuple(tensor.shape)}")
            state[name] = theirs[name]
        elif name in theirs and not torch.equal(theirs[name].to(tensor.dtype), tensor):
            raise DataError(f"{name} differs between {generator.path} and {served.path}: the generator's recipe must "
                            "freeze everything the recogniser uses (model.frozen) and start from the served model")
    model.load_state_dict(state)
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.graft_generator", description=__doc__.splitlines()[0])
    parser.add_argument("--generator", required=True, help="the trained generator's checkpoint (runs/<recipe>/best)")
    parser.add_argument("--into", default="default", help="the served checkpoint whose recogniser and tail are kept")
    parser.add_argument("--out", required=True, type=Path, help="folder of the new checkpoint")
    parser.add_argument("--name", required=True, help="the new checkpoint's name on its card")
    args = parser.parse_args(argv)
    try:
        generator, served = load_checkpoint(args.generator), load_checkpoint(args.into)
        model = grafted(generator, served)
    except (CheckpointError, DataError) as e:
        print(f"graft_generator: error: {e}", file=sys.stderr)
        return 1
    training = dict(generator.card.training)
    if "answer_tail" in served.card.training:
        training["answer_tail"] = served.card.training["answer_tail"]
    training["graft"] = {
        "command": "python -m training.graft_generator " + shlex.join(sys.argv[1:] if argv is None else argv),
        "generator": str(generator.path),
        "generator_sha256": generator.sha256,
        "into": str(served.path),
        "into_sha256": served.sha256,
    }
    card = served.card.redraft(name=args.name, training=training, intensity=None)
    half = served.card.weights.dtype == "float16"
    save_checkpoint(args.out, model, card, half=half)
    print(f"{args.out}: {served.card.name}'s recogniser and answer tail, {generator.card.name}'s generator "
          f"({'float16' if half else 'float32'}); choose its intensity with python -m bench.synthesis_quality --write-intensity")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
