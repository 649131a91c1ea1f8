"""One module per ``fersnet`` subcommand; each is read on its own, in one screen.

A command module has ``add_parser(subparsers)``, which declares the subcommand and its options
(shared ones through :mod:`fersnet_cli.args`) with ``func=run``, and ``run(args)``, which calls
the library. The modules are imported only when the parser is built, so ``fersnet serve`` hands
over to the service before PyTorch is loaded (as ``python -m service`` does).
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: The subcommands' modules, in the order ``fersnet --help`` lists them.
NAMES: tuple[str, ...] = (
    "info", "train", "evaluate", "compare", "classify", "synthesize", "balance", "teacher_targets", "soup", "calibrate", "prior", "export",
    "serve",
)


def load() -> list[ModuleType]:
    """Every command module, imported (this loads PyTorch and the library)."""
    return [importlib.import_module(f"{__name__}.{name}") for name in NAMES]
