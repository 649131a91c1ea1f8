"""``fersnet serve``: the REST service, with the options of ``python -m service`` (which owns them).

Unlike the other commands, ``run`` takes the command line after ``serve`` unparsed: the service's
own parser reads it (and answers ``--help``). Nothing here imports PyTorch, so the service is
imported first and its OpenMP setting applies, as under ``python -m service``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Listed in ``fersnet --help``; :func:`fersnet_cli.main.main` hands ``serve`` over before parsing."""
    sub.add_parser("serve", help="start the REST service (options as for python -m service)", add_help=False)


def run(service_args: Sequence[str]) -> None:
    from service.__main__ import main as serve_main

    serve_main(list(service_args), prog="fersnet serve")
