"""The packages' floors: imports point down only.

``model_core`` (the science) stands alone; ``training`` (recipes and scripts) stands on it;
``service`` (the REST app) stands on it; ``fersnet_cli`` (the console script) stands on all of
them. A module that imports upwards would drag FastAPI into a training run, or the CLI into the
library, so every module's imports are read here (statically, with :mod:`ast`: including those
inside functions and under ``TYPE_CHECKING``).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: What each floor must never import.
FORBIDDEN: dict[str, set[str]] = {
    "model_core": {"training", "service", "fersnet_cli", "fastapi"},
    "training": {"service", "fersnet_cli"},
    "service": {"training", "fersnet_cli"},
}


def imported_packages(source: str, module: tuple[str, ...]) -> set[str]:
    """The top-level packages a module imports; ``module`` is its dotted name as parts (``__init__`` included),
    which resolves its relative imports."""
    package = module[:-1]  # what "from ." means, for a package's __init__ and for its other modules alike
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else ()
            if base:
                names.add(base[0])
            elif node.module:
                names.add(node.module.split(".")[0])
            else:  # "from .. import x" from the top: x is a package of its own
                names |= {alias.name for alias in node.names}
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_module_imports_a_floor_above_its_own(package: str) -> None:
    modules = sorted((REPO / package).rglob("*.py"))
    assert modules
    wrong = {}
    for path in modules:
        found = imported_packages(path.read_text(), path.relative_to(REPO).with_suffix("").parts) & FORBIDDEN[package]
        if found:
            wrong[str(path.relative_to(REPO))] = sorted(found)
    assert not wrong, f"{package} must not import {sorted(FORBIDDEN[package])}: {wrong}"


def test_the_check_sees_every_kind_of_import() -> None:
    """The check itself: imports inside functions, relative ones that stay in the package or climb out of it."""
    source = ("import torch.nn\nfrom . import data\nfrom .train import soup\n"
              "def f():\n    from service.app import create_app\n    from .. import fersnet_cli\n")
    assert imported_packages(source, ("model_core", "module")) == {"torch", "model_core", "service", "fersnet_cli"}
    assert imported_packages("from .. import fersnet\n", ("model_core", "train", "__init__")) == {"model_core"}
    assert imported_packages("from ...service import app\n", ("model_core", "train", "soup")) == {"service"}


def test_serving_and_the_command_line_start_without_what_only_training_needs() -> None:
    """torchvision is imported only to build a training augmentation (``model_core.data.augment``), and matplotlib
    only to draw a figure: importing torchvision pulls in ``torch._dynamo``, about 3 s of every process's start on
    two CPU cores, which the service, ``fersnet evaluate`` and every GPU script's helper processes would pay for
    nothing. Imported in a fresh interpreter, so that nothing this test run loaded counts; the CLI's parser is built,
    as ``fersnet --help`` builds it, so every subcommand's module is imported too."""
    heavy = ("torchvision", "torch._dynamo", "matplotlib")
    probe = ("import sys, service.app, fersnet_cli.main; fersnet_cli.main.build_parser(); "
             f"print(sorted(m for m in {heavy!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
