"""Fixtures for the command-line tests: the fake datasets and checkpoints of the library's tests, shared as they are.

The commands are run in-process through :func:`fersnet_cli.main.main` (or, where a test needs a
process of its own, as ``python -m fersnet_cli``), so they run this checkout's code whatever
``fersnet`` script is installed.
"""

from __future__ import annotations

from ..core.conftest import (  # noqa: F401  (fixtures, found by pytest by name)
    MakeCheckpoint,
    ckplus_root,
    fer2013_csv,
    fer2013_folder,
    ferplus_root,
    make_checkpoint,
    make_folder,
)

__all__ = ["MakeCheckpoint"]
