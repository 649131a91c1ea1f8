"""Settings come from FERSNET_* variables; python -m service's options override them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import service.__main__ as cli
from model_core import registry
from service.settings import Settings


def test_environment_variables_with_one_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FERSNET_CHECKPOINT", "runs/best")
    monkeypatch.setenv("FERSNET_DEVICE", "cuda")
    monkeypatch.setenv("FERSNET_MAX_BATCH_SIZE", "24")
    monkeypatch.setenv("FERSNET_MAX_WAIT_MS", "3.5")
    monkeypatch.setenv("FERSNET_BATCH_SIZES", "1,4,16,64")
    monkeypatch.setenv("FERSNET_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("FERSNET_API_KEY", "zq-secret-9")
    monkeypatch.setenv("FERSNET_LOG_LEVEL", "DEBUG")
    s = Settings()
    assert (s.checkpoint, s.device, s.max_batch_size, s.max_wait_s) == ("runs/best", "cuda", 24, 0.0035)
    assert s.batch_sizes == [1, 4, 16, 24]  # capped at max_batch_size, which is always a shape
    assert s.cors_origins == ["https://a.example", "https://b.example"]
    assert s.api_key is not None and s.api_key.get_secret_value() == "zq-secret-9"
    assert "zq-secret-9" not in repr(s)  # the key never shows in logs
    assert s.log_level == "debug"


def test_defaults_and_json_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FERSNET_CORS_ORIGINS", '["*"]')
    monkeypatch.setenv("FERSNET_API_KEY", "")
    s = Settings()
    assert s.cors_origins == ["*"] and s.api_key is None
    assert (s.checkpoint, s.device, s.port, s.batch_sizes) == ("default", "auto", 8000, None)


@pytest.mark.parametrize(
    "bad",
    [{"device": "tpu"}, {"max_batch_size": 0}, {"batch_sizes": [1, 2], "max_batch_size": 8}, {"max_wait_ms": -1}, {"precision": "int8"}],
)
def test_invalid_settings_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Settings(**bad)


def test_the_checkpoint_setting_knows_the_bundled_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default and the names come from model_core.registry; a misspelt name fails with the settings, naming them."""
    assert Settings.model_fields["checkpoint"].default == registry.DEFAULT
    description = Settings.model_fields["checkpoint"].description or ""
    assert all(f"'{name}'" in description for name in registry.BUNDLED)
    assert Settings(checkpoint="fer2013_paper_none_gpu").checkpoint == "fer2013_paper_none_gpu"
    with pytest.raises(ValidationError, match="'defualt' is neither a checkpoint folder here nor a bundled checkpoint"):
        Settings(checkpoint="defualt")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my-model").mkdir()
    assert Settings(checkpoint="my-model").checkpoint == "my-model"  # a folder here is a path, not a name
    assert Settings(checkpoint="/models/mounted").checkpoint == "/models/mounted"  # paths are checked when loaded


def test_command_line_overrides_environment_and_runs_uvicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FERSNET_PORT", "9000")
    monkeypatch.setenv("FERSNET_SHUTDOWN_TIMEOUT_S", "12.5")
    monkeypatch.setenv("FERSNET_DEVICE", "cpu")
    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: calls.append((app, kw)))
    checked: list[tuple[str, int]] = []
    monkeypatch.setattr(cli, "check_port", lambda host, port: checked.append((host, port)))  # the real port may be taken here
    monkeypatch.setattr(cli, "preload", lambda app: None)  # loading the model is tested below
    cli.main(["--host", "0.0.0.0", "--port", "8123", "--log-level", "warning"])
    assert checked == [("0.0.0.0", 8123)]
    ((app, kw),) = calls
    assert kw["host"] == "0.0.0.0" and kw["port"] == 8123 and kw["log_level"] == "warning"
    assert kw["timeout_graceful_shutdown"] == 13 and kw["lifespan"] == "on"
    assert app.state.runtime.settings.device == "cpu"


def test_bad_options_exit_with_a_message(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: pytest.fail("must not start"))
    with pytest.raises(SystemExit) as exited:
        cli.main(["--max-batch-size", "0"])
    assert exited.value.code == 2
    assert "--max-batch-size=0: " in capsys.readouterr().err  # named as the operator set it
