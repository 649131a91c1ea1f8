"""What a newcomer meets first: start-up errors as one line, the port checked first, poisoned weights refused, /docs offline."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import service.__main__ as cli
from model_core import CheckpointError
from model_core.checkpoint import sha256_file
from service.engine import Engine
from service.errors import BadImage
from service.images import Upload, decode_image
from service.settings import Settings

from .helpers import assert_error, noise_png, serve


def poisoned_copy(source: Path, folder: Path, key_part: str, value: float) -> Path:
    """A copy of a checkpoint with one tensor set to ``value`` everywhere and the card's hash updated to match."""
    folder.mkdir()
    tensors = load_file(str(source / "model.safetensors"))
    key = next(k for k in sorted(tensors) if key_part in k and tensors[k].is_floating_point())
    tensors[key] = torch.full_like(tensors[key], value)
    save_file(tensors, str(folder / "model.safetensors"))
    card = json.loads((source / "card.json").read_text())
    card["weights"]["sha256"] = sha256_file(folder / "model.safetensors")
    (folder / "card.json").write_text(json.dumps(card))
    return folder


@pytest.fixture
def nan_checkpoint(tiny_checkpoint: Path, tmp_path: Path) -> Path:
    """The tiny checkpoint with its classifier's weights set to NaN, and a card whose sha256 matches (as in the issue)."""
    return poisoned_copy(tiny_checkpoint, tmp_path / "nan", "head.fc.weight", float("nan"))


def test_a_nan_checkpoint_exits_with_one_line_and_status_2(
    nan_checkpoint: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: pytest.fail("must not start serving"))
    with pytest.raises(SystemExit) as exited:
        cli.main(["--checkpoint", str(nan_checkpoint), "--device", "cpu", "--port", "0"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fersnet: error: "), err
    assert "NaN or infinite" in err and "Traceback" not in err


def test_outputs_that_overflow_are_refused_at_load(tiny_checkpoint: Path, tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    # Finite weights (each 3e38) whose products overflow: the hash and the finiteness of the weights both pass.
    huge = poisoned_copy(tiny_checkpoint, tmp_path / "huge", "head.fc.weight", 3e38)
    with pytest.raises(CheckpointError, match="outputs are NaN or infinite on a test input"):
        Engine.load(make_settings(checkpoint=str(huge)))


def test_a_busy_port_is_refused_before_the_model_loads(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    loaded: list[object] = []
    monkeypatch.setattr(cli, "preload", lambda app: loaded.append(app))
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: pytest.fail("must not start serving"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(SystemExit) as exited:
            cli.main(["--host", "127.0.0.1", "--port", str(port), "--device", "cpu"])
    assert exited.value.code == 2
    assert loaded == []  # refused before loading anything
    err = capsys.readouterr().err
    assert err == f"fersnet: error: port {port} on 127.0.0.1 is already in use; stop what listens there or choose another --port\n"


def test_a_free_port_passes_the_check() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cli.check_port("127.0.0.1", port)


def test_decode_errors_name_no_python_objects() -> None:
    with pytest.raises(BadImage) as refused:
        decode_image(Upload(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "x.png"), max_pixels=10_000)
    assert not re.search(r"0x[0-9a-f]{6,}|<_io\.|object at", refused.value.message), refused.value.message
    assert refused.value.message.startswith("image 0 (x.png) could not be decoded as PNG")


async def test_a_non_finite_probability_is_a_500_never_null(make_settings: Callable[..., Settings]) -> None:
    async with serve(make_settings()) as (app, client):
        engine = app.state.runtime.engine
        engine.classify = lambda images: torch.full((images.shape[0], 7), float("nan"))  # type: ignore[method-assign]
        response = await client.post("/v1/classify", params={"detect": "false"}, files={"images": ("f.png", noise_png(1), "image/png")})
    assert_error(response, 500, "inference_failed")
    assert "null" not in response.text


async def test_docs_load_every_asset_from_the_service_itself(make_settings: Callable[..., Settings]) -> None:
    """/docs names no other host: with the network cut it still renders. /redoc is not served: ReDoc's bundle itself
    names a CDN (its logo), so no page of it could keep that promise."""
    async with serve(make_settings()) as (app, client):
        assert (await client.get("/redoc")).status_code == 404
        for page in ("/docs",):
            html = (await client.get(page)).text
            urls = re.findall(r"""(?:src|href)=["']([^"']+)["']|url:\s*["']([^"']+)["']""", html)
            assets = [a or b for a, b in urls]
            assert assets, html
            assert not [u for u in assets if "://" in u or u.startswith("//")], assets
            assert "cdn" not in html.lower() and "fonts.googleapis" not in html
            for url in assets:
                if url.endswith((".js", ".css", ".png")):
                    asset = await client.get(url)
                    assert asset.status_code == 200 and len(asset.content) > 1000, url


def test_each_option_is_read_off_its_setting() -> None:
    """Help, choices and default come from Settings, so the command line cannot drift from the environment variables."""
    parser = cli.build_parser()
    actions = {a.dest: a for a in parser._actions if a.dest != "help"}
    assert list(actions) == list(cli.FLAGS)
    for name, action in actions.items():
        field = Settings.model_fields[name]
        assert action.help is not None and str(field.description) in action.help.replace("%%", "%")
        assert f"FERSNET_{name.upper()}" in action.help
        assert f"(default {'unset' if field.default is None else field.default};" in action.help
    assert actions["device"].choices == ["auto", "cpu", "cuda"] and actions["port"].type is int
    assert cli.load_settings(["--max-wait-ms", "2.5", "--log-level", "debug"]).max_wait_ms == 2.5
    with pytest.raises(SystemExit):
        cli.load_settings(["--device", "tpu"])


def test_a_bad_setting_is_named_as_the_operator_set_it(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """FERSNET_PORT=notaport in a compose file: the message names the variable, not a field of a Python class."""
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: pytest.fail("must not start serving"))
    monkeypatch.setenv("FERSNET_PORT", "notaport")
    with pytest.raises(SystemExit) as exited:
        cli.main(["--max-batch-size", "0"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("fersnet: error: invalid settings: ") and err.count("\n") == 1, err
    assert "FERSNET_PORT=notaport: Input should be a valid integer" in err and "--max-batch-size=0: " in err
