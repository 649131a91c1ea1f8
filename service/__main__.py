"""``python -m service``: run the service with uvicorn (``fersnet serve`` calls :func:`main` too).

Command-line options override ``FERSNET_*`` environment variables, which
override the defaults in :class:`service.settings.Settings`::

    python -m service --host 0.0.0.0 --port 8000 --checkpoint runs/best --device cuda

Start-up checks what a user can get wrong in the order that costs least:
settings, then whether the port is free, then the checkpoint (loaded,
hash-checked, finite, and run once on a test input). Each failure ends with
one line, ``fersnet: error: ...``, and exit status 2, never a traceback; only
then does uvicorn start serving the already loaded model.
"""

from __future__ import annotations

import argparse
import errno
import logging
import math
import socket
import sys
from collections.abc import Callable
from types import UnionType
from typing import TYPE_CHECKING, Any, Literal, Union, get_args, get_origin

from pydantic import ValidationError

from .memory import tune_malloc
from .settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

#: Exit status of a start-up the user can fix (bad settings, busy port, bad checkpoint), as for every ``fersnet`` command.
EXIT_USAGE = 2


class StartupError(Exception):
    """A problem found before serving, reported as one line."""


#: The settings that are also command-line options (``--max-batch-size`` for ``max_batch_size``); every other one is
#: set through its environment variable. Each option's help, choices and default are read off :class:`Settings`.
FLAGS: tuple[str, ...] = ("host", "port", "checkpoint", "device", "precision", "cpu_precision", "torch_threads",
                          "max_batch_size", "max_wait_ms", "api_key", "log_level")


def _option(parser: argparse.ArgumentParser, name: str) -> None:
    """Add ``name``'s option as :class:`Settings` declares the field: one place for its meaning, type and default."""
    field = Settings.model_fields[name]
    kind = field.annotation
    if get_origin(kind) in (Union, UnionType):  # an optional setting: the type it takes when set
        kind = next(a for a in get_args(kind) if a is not type(None))
    choices = list(get_args(kind)) if get_origin(kind) is Literal else None
    default = "unset" if field.default is None else field.default
    help_text = f"{field.description} (default {default}; FERSNET_{name.upper()})"
    convert: Callable[[str], Any] = int if kind is int else float if kind is float else str
    parser.add_argument(f"--{name.replace('_', '-')}", type=convert, choices=choices, help=help_text.replace("%", "%%"))


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog or "python -m service",
        description="Serve FERSNet expression recognition and synthesis over HTTP. "
        "Every option can also be set as a FERSNET_* environment variable (e.g. FERSNET_MAX_BATCH_SIZE).",
    )
    for name in FLAGS:
        _option(parser, name)
    return parser


class SettingsError(Exception):
    """Settings that do not validate, each named as the operator set it: ``--port`` or ``FERSNET_PORT``."""


#: Settings whose values are never echoed in a message (logs and terminals are often shared).
SECRET = frozenset({"api_key"})


def load_settings(argv: list[str] | None = None, prog: str | None = None) -> Settings:
    """Settings from the environment, overridden by the given command-line arguments."""
    args = build_parser(prog).parse_args(argv)
    overrides = {key: value for key, value in vars(args).items() if value is not None}
    try:
        return Settings(**overrides)
    except ValidationError as e:
        raise SettingsError("; ".join(_problem(err, set(overrides)) for err in e.errors())) from None


def _problem(error: Any, flags: set[str]) -> str:
    """One validation error, as ``FERSNET_PORT=notaport: Input should be a valid integer`` (or ``--port``)."""
    field = str(error["loc"][0]) if error["loc"] else ""
    if not field:
        return f"settings: {error['msg']}"
    where = f"--{field.replace('_', '-')}" if field in flags else f"FERSNET_{field.upper()}"
    value = "" if field in SECRET or isinstance(error.get("input"), dict) else f"={error.get('input')}"
    return f"{where}{value}: {error['msg']}"


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def check_port(host: str, port: int) -> None:
    """Raise StartupError if ``host:port`` cannot be listened on, before minutes go into loading a model.

    It binds a throw-away socket the way uvicorn will (SO_REUSEADDR, so a port
    left in TIME_WAIT by a previous run counts as free) and closes it at once.
    """
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise StartupError(f"cannot listen on {host}:{port}: unknown host ({e.strerror})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise StartupError(f"port {port} on {host} is already in use; stop what listens there or choose another --port") from None
            raise StartupError(f"cannot listen on {host}:{port}: {e.strerror}") from None


def preload(app: FastAPI) -> None:
    """Load and self-test the app's model now, so a bad checkpoint is one line, not a lifespan traceback."""
    from model_core import CheckpointError

    try:
        app.state.runtime.load()
    except (CheckpointError, RuntimeError, OSError) as e:  # RuntimeError: FERSNET_DEVICE=cuda without a GPU
        raise StartupError(str(e)) from None


def _fail(message: str) -> None:
    print(f"fersnet: error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


def main(argv: list[str] | None = None, prog: str | None = None) -> None:
    """Parse options, check the port, load the model, and serve until SIGINT/SIGTERM (then drain gracefully)."""
    try:
        settings = load_settings(argv, prog)
    except SettingsError as e:
        _fail(f"invalid settings: {e}")
        return
    configure_logging(settings.log_level)
    try:
        check_port(settings.host, settings.port)  # before importing PyTorch: a busy port answers in a fraction of a second
    except StartupError as e:
        _fail(str(e))

    tune_malloc()  # before the first big buffer: see service/memory.py

    import uvicorn  # deferred: --help, bad settings and a busy port answer without importing the server stack

    from .app import create_app

    app = create_app(settings)
    try:
        preload(app)
    except StartupError as e:
        _fail(str(e))
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        lifespan="on",
        timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout_s),
    )


if __name__ == "__main__":
    main()
