"""The image's command starts the app the tests test: service.app.create_app, served by uvicorn."""

from __future__ import annotations

import asyncio
import importlib
from typing import Any

import pytest

from .helpers import SERVICE_PORT, env_pairs, exec_form


def image_argv(runtime_stage) -> list[str]:
    return exec_form(runtime_stage.last("ENTRYPOINT")) + exec_form(runtime_stage.last("CMD"))


def test_image_command_builds_the_app_with_create_app(runtime_stage, monkeypatch):
    argv = image_argv(runtime_stage)
    assert argv[1:3] == ["-m", "service"], "the image must run `python -m service`"
    main_mod = pytest.importorskip("service.__main__", reason="service/__main__.py is not written yet")
    app_mod = pytest.importorskip("service.app", reason="service/app.py is not written yet")
    uvicorn = importlib.import_module("uvicorn")

    built: list[Any] = []
    real_create_app = app_mod.create_app

    def spy_create_app(*args: Any, **kwargs: Any) -> Any:
        app = real_create_app(*args, **kwargs)  # builds the app; the model loads only in the lifespan
        built.append(app)
        return app

    served: dict[str, Any] = {}

    def fake_run(app: Any, *args: Any, **kwargs: Any) -> None:
        served["app"] = app
        served["kwargs"] = kwargs

    monkeypatch.setattr(app_mod, "create_app", spy_create_app)
    if hasattr(main_mod, "create_app"):  # `from service.app import create_app` at import time
        monkeypatch.setattr(main_mod, "create_app", spy_create_app)
    monkeypatch.setattr(uvicorn, "run", fake_run)
    # Start-up checks the port and loads the model before uvicorn.run; here the port may be taken by
    # another server on this host, and the model loads in the service tests: skip both.
    for check in ("check_port", "preload"):
        if hasattr(main_mod, check):
            monkeypatch.setattr(main_mod, check, lambda *args: None)
    if hasattr(main_mod, "uvicorn"):
        monkeypatch.setattr(main_mod.uvicorn, "run", fake_run)

    # The image's environment, so its FERSNET_* defaults are read the way the container reads them.
    image_env = {k: v for e in runtime_stage.all("ENV") for k, v in env_pairs(e).items() if k.startswith("FERSNET_")}
    for key, value in image_env.items():
        monkeypatch.setenv(key, value)

    result = main_mod.main(argv[3:])
    assert result in (None, 0)
    assert served, "python -m service did not call uvicorn.run"
    app = served["app"]
    if isinstance(app, str):  # uvicorn.run("service.app:create_app", factory=True)
        assert app == "service.app:create_app" and served["kwargs"].get("factory") is True
    else:
        assert built and app is built[-1], "uvicorn must serve the app that service.app.create_app built"
    kwargs = served["kwargs"]
    assert kwargs.get("host") == "0.0.0.0"
    assert int(kwargs.get("port")) == SERVICE_PORT
    assert kwargs.get("timeout_graceful_shutdown") == pytest.approx(float(image_env["FERSNET_SHUTDOWN_TIMEOUT_S"])), (
        "uvicorn's graceful-shutdown timeout must come from the image's FERSNET_SHUTDOWN_TIMEOUT_S"
    )


def test_app_serves_the_paths_the_deployment_probes():
    """The probe and scrape paths used by the Dockerfile, compose and Kubernetes answer on the real app.

    Without its lifespan the app never loads the model, which is the state
    probes see during start-up: alive, not ready, metrics served.
    """
    app_mod = pytest.importorskip("service.app", reason="service/app.py is not written yet")
    settings_mod = pytest.importorskip("service.settings")
    httpx = importlib.import_module("httpx")
    app = app_mod.create_app(settings_mod.Settings())

    async def probe() -> dict[str, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://fersnet") as client:
            return {path: await client.get(path) for path in ("/healthz", "/readyz", "/v1/models", "/docs", "/metrics")}

    answers = asyncio.run(probe())
    assert answers["/healthz"].status_code == 200, "liveness must pass while the model loads"
    assert answers["/readyz"].status_code == 503, "readiness must fail until the model is loaded and warmed up"
    assert answers["/docs"].status_code == 200
    assert answers["/v1/models"].status_code in (503, 401)
    metrics = answers["/metrics"]
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    # The dashboard selects API traffic with route=~"/v1/.*": the route label must be the path template.
    assert 'route="/v1/models"' in metrics.text and 'route="/healthz"' in metrics.text
