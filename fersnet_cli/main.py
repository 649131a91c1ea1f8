"""The ``fersnet`` command line: one entry point for training, measuring, synthesising and serving.

    fersnet info                       variants, parameter counts, FLOPs
    fersnet train --config FILE        run a recipe (training/configs/*.yaml)
    fersnet evaluate --checkpoint ...  accuracy, macro-F1, recall, confusion
    fersnet compare A --against B ...  two models on the same images: the difference and its interval
    fersnet classify PHOTO ...         the expression of every face, as the service answers, without a server
    fersnet synthesize ...             redraw faces with other expressions
    fersnet balance ...                synthesise rare expressions into a folder
    fersnet teacher-targets ...        a teacher's probabilities for a split, for distillation
    fersnet soup A B ... --out DIR     average fine-tunings of one model into one (greedy on a validation split)
    fersnet calibrate CHECKPOINT ...   fit the temperature that calibrates a checkpoint's probabilities
    fersnet prior CHECKPOINT ...       record its training class frequencies and the class prior answers assume
    fersnet export ...                 re-save a checkpoint (float16) or export the classifier (.pt2, .onnx)
    fersnet serve --host --port        the REST service

Each subcommand is a module of :mod:`fersnet_cli.commands` whose ``run`` parses nothing itself;
errors the user can fix (a missing file, a bad recipe, a tampered checkpoint, a device that is
not there) end with one line naming the problem and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

#: Exit status of an error the user can fix, as for ``python -m service``.
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    """The ``fersnet`` parser: one subparser per module of :mod:`fersnet_cli.commands`, in their order."""
    from . import commands

    parser = argparse.ArgumentParser(prog="fersnet", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for command in commands.load():
        command.add_parser(sub)
    return parser


def known_errors() -> tuple[type[Exception], ...]:
    """The errors a user can fix, reported as one line: what the library raises for bad input."""
    from model_core import CheckpointError
    from model_core.data import DataError
    from model_core.export import ExportError
    from model_core.faces import DetectorUnavailable
    from model_core.hardware import DeviceError
    from model_core.train import ConfigError

    from .args import UsageError

    return CheckpointError, ConfigError, DataError, DetectorUnavailable, DeviceError, ExportError, UsageError


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:
        # The service owns its options (argparse's REMAINDER would reject a leading '--host'), and is
        # started before PyTorch is imported, as python -m service starts it.
        from .commands import serve

        serve.run(argv[1:])
        return
    args = build_parser().parse_args(argv)
    args.argv = argv
    handler: Callable[[argparse.Namespace], Any] = args.func
    try:
        handler(args)
    except known_errors() as e:
        print(f"fersnet: error: {e}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    except BrokenPipeError:  # `fersnet ... | head`: the reader has what it wanted; nothing went wrong here
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that Python's own flush at exit does not complain again
        raise SystemExit(1) from None
    except OSError as e:  # a path the system refused: read-only, a folder for a file, no space left, no permission
        print(f"fersnet: error: {describe_os_error(e)}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None


def describe_os_error(error: OSError) -> str:
    """``path: reason`` (``path -> other: reason`` for a rename), not Python's ``[Errno 30] ...: 'path'``."""
    if error.filename is None:
        return error.strerror or str(error)
    paths = f"{error.filename} -> {error.filename2}" if error.filename2 is not None else str(error.filename)
    return f"{paths}: {error.strerror or error}"


if __name__ == "__main__":
    main()
