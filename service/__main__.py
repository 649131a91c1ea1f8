"""``python -m service``: run the service with uvicorn (``fersnet serve`` calls :func:`main` too).

Command-line options override ``FERSNET_*`` environment variables, which
override the defaults in :class:`service.settings.Settings`::

    python -m service --host 0.0.0.0 --port 8000 --checkpoint runs/best --device cuda
"""

from __future__ import annotations

import argparse
import logging
import math
import sys

from pydantic import ValidationError

from .settings import Settings


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog or "python -m service",
        description="Serve FERSNet expression recognition and synthesis over HTTP. "
        "Every option can also be set as a FERSNET_* environment variable (e.g. FERSNET_MAX_BATCH_SIZE).",
    )
    parser.add_argument("--host", help="interface to listen on (default 127.0.0.1; 0.0.0.0 in a container)")
    parser.add_argument("--port", type=int, help="TCP port (default 8000)")
    parser.add_argument("--checkpoint", help="checkpoint folder, or a bundled one by name: 'default', 'fer2013_paper_gpu' or "
                        "'fer2013_paper_none_gpu' (classification only)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where the model runs (default auto)")
    parser.add_argument("--precision", choices=["float16", "bfloat16", "float32"], help="dtype on CUDA (default float16)")
    parser.add_argument("--max-batch-size", type=int, help="most images per forward pass (default 32)")
    parser.add_argument("--max-wait-ms", type=float, help="longest wait for a batch to fill (default 10)")
    parser.add_argument("--api-key", help="require this key in X-API-Key (prefer FERSNET_API_KEY: arguments show in ps)")
    parser.add_argument("--log-level", choices=["critical", "error", "warning", "info", "debug"], help="default info")
    return parser


def load_settings(argv: list[str] | None = None, prog: str | None = None) -> Settings:
    """Settings from the environment, overridden by the given command-line arguments."""
    args = build_parser(prog).parse_args(argv)
    overrides = {key: value for key, value in vars(args).items() if value is not None}
    return Settings(**overrides)


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def main(argv: list[str] | None = None, prog: str | None = None) -> None:
    """Parse options, build the app, and serve it until SIGINT/SIGTERM (then drain gracefully)."""
    try:
        settings = load_settings(argv, prog)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}" for err in e.errors())
        print(f"invalid settings: {problems}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log_level)

    import uvicorn  # deferred: --help and bad settings answer without importing the server stack

    from .app import create_app

    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        lifespan="on",
        timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout_s),
    )


if __name__ == "__main__":
    main()
