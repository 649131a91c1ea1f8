"""Health, readiness, the model card, Prometheus metrics and the OpenAPI docs."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from model_core.checkpoint import read_card
from model_core.registry import BUNDLED
from service.metrics import EXPORTED_NAMES
from service.settings import Settings

from .helpers import FER_CLASSES, classify_crop, held_model, noise_png, serve


async def test_health_and_readiness(make_settings: Callable[..., Settings]) -> None:
    async with serve(make_settings()) as (app, client):
        assert (await client.get("/healthz")).json() == {"status": "alive"}
        assert (await client.get("/readyz")).json() == {"status": "ready", "model": "test-tiny", "device": "cpu"}
        # Uptime checkers and load balancers often probe with HEAD.
        assert [(await client.head(path)).status_code for path in ("/healthz", "/readyz")] == [200, 200]


async def test_the_model_card(make_settings: Callable[..., Settings], tiny_checkpoint: Path) -> None:
    card = json.loads((tiny_checkpoint / "card.json").read_text())
    async with serve(make_settings()) as (app, client):
        info = (await client.get("/v1/models")).json()
    assert info["variant"] == "fersnet_tiny" and info["sharing"] == "selective" and info["synthesis"] is True
    assert info["classes"] == list(FER_CLASSES)
    assert info["input"]["img_size"] == 48 and info["input"]["in_chans"] == 1
    assert info["sha256"] == card["weights"]["sha256"]
    assert info["calibration"] == {}  # no temperature fitted: the softmax is served as it is
    assert info["runtime"] == {"device": "cpu", "precision": "float32", "batch_sizes": None, "max_batch_size": 8, "max_wait_ms": 2.0,
                               "face_detection": True, "image_formats": ["JPEG", "PNG", "WebP", "HEIC", "AVIF", "BMP", "GIF", "TIFF"]}


async def test_the_models_page_lists_exactly_the_registry(make_settings: Callable[..., Settings]) -> None:
    """Every bundled checkpoint, in the registry's order, with what its card says; the served one marked."""
    async with serve(make_settings()) as (app, client):
        bundled = (await client.get("/v1/models")).json()["bundled"]
    assert [b["name"] for b in bundled] == list(BUNDLED)
    for entry, listed in zip(BUNDLED.values(), bundled, strict=True):
        card = read_card(entry.folder)
        assert listed == {"name": entry.name, "description": entry.description, "installed": True, "served": False,
                          "variant": card.variant, "sharing": card.sharing, "synthesis": card.config.has_synthesis,
                          "sha256": card.weights.sha256}
    assert [b["synthesis"] for b in bundled] == [True, True, True, False]  # default, the previous one, the paper's network, its branch alone


async def test_the_models_page_marks_the_bundled_checkpoint_it_serves(make_settings: Callable[..., Settings]) -> None:
    async with serve(make_settings(checkpoint="default")) as (app, client):
        info = (await client.get("/v1/models")).json()
    assert [b["name"] for b in info["bundled"] if b["served"]] == ["default"]
    assert info["sha256"] == info["bundled"][0]["sha256"] and info["name"] == read_card(BUNDLED["default"].folder).name


async def test_metrics_page_exports_every_name(make_settings: Callable[..., Settings]) -> None:
    async with serve(make_settings()) as (app, client):
        await client.post("/v1/classify", params={"detect": "false"}, files={"images": ("f.png", noise_png(), "image/png")})
        response = await client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    lines = response.text.splitlines()
    samples = {line.split("{")[0].split(" ")[0] for line in lines if line and not line.startswith("#")}
    for name in EXPORTED_NAMES - {"fersnet_gpu_memory_bytes"}:  # GPU memory has samples on CUDA only
        assert name in samples or f"{name}_count" in samples, name
    assert any(line.startswith("# TYPE fersnet_gpu_memory_bytes") for line in lines)  # declared on the CPU too
    text = response.text
    assert 'fersnet_requests_total{method="POST",route="/v1/classify",status="200"} 1.0' in text
    assert 'fersnet_batch_size_count{endpoint="classify"} 1.0' in text
    assert 'fersnet_queue_depth{endpoint="synthesize"} 0.0' in text
    assert 'fersnet_model_info{device="cpu",name="test-tiny"' in text
    assert "fersnet_model_load_seconds " in text and "fersnet_ready 1.0" in text


async def test_docs_show_every_endpoint_with_schemas_and_examples(make_settings: Callable[..., Settings]) -> None:
    async with serve(make_settings()) as (app, client):
        docs = await client.get("/docs")
        spec = (await client.get("/openapi.json")).json()
        await client.get("/no/such/page")
        spellings = ["/static/api.js", "/static//api.js", "/static///api.js", "/static/%2Fapi.js"]
        served = [(await client.get(path)).status_code for path in spellings]
        metrics = (await client.get("/metrics")).text
    # Route labels are templates, never raw paths (a client could grow the series without bound), files of a mount too.
    assert 'fersnet_requests_total{method="GET",route="/docs",status="200"} 1.0' in metrics
    assert 'fersnet_requests_total{method="GET",route="/openapi.json",status="200"} 1.0' in metrics
    assert 'fersnet_requests_total{method="GET",route="unmatched",status="404"} 1.0' in metrics
    assert served.count(200) >= 2 and f'route="/static/{{path}}",status="200"}} {served.count(200)}.0' in metrics
    assert 'api.js"' not in metrics  # no label names the file
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    assert set(spec["paths"]) == {"/v1/classify", "/v1/synthesize", "/v1/preview", "/v1/models", "/healthz", "/readyz", "/metrics"}
    classify = spec["paths"]["/v1/classify"]["post"]
    assert "multipart/form-data" in classify["requestBody"]["content"]
    assert {"200", "400", "413", "415", "422", "429", "503", "504"} <= set(classify["responses"])
    synthesize = spec["paths"]["/v1/synthesize"]["post"]
    assert {"image/png", "application/json"} <= set(synthesize["responses"]["200"]["content"])
    preview = spec["paths"]["/v1/preview"]["post"]
    assert set(preview["responses"]["200"]["content"]) == {"image/jpeg"} and {"400", "413", "415", "429"} <= set(preview["responses"])
    schemas = spec["components"]["schemas"]
    for name in ("ClassifyResponse", "SynthesizeResponse", "ModelInfo", "ErrorResponse"):
        assert name in schemas
    assert schemas["ClassifyResponse"]["examples"][0]["images"][0]["faces"][0]["expression"] == "happy"
    assert classify["responses"]["400"]["content"]["application/json"]["example"]["error"]["status"] == 400


async def test_every_answer_names_its_request(make_settings: Callable[..., Settings]) -> None:
    """X-Request-ID comes back as the client sent it (so its logs and the service's meet), or new where it sent none
    or one that could break a log line; errors and the admission limit's 429s carry it too."""
    async with serve(make_settings(max_inflight_requests=1)) as (app, client):
        chosen = await client.get("/healthz", headers={"X-Request-ID": "app-7f3a:42"})
        fresh = [await client.get("/healthz") for _ in range(2)]
        unsafe = await client.get("/healthz", headers={"X-Request-ID": "two words\tand a tab"})
        too_long = await client.get("/healthz", headers={"X-Request-ID": "x" * 129})
        missing = await client.get("/no/such/page", headers={"X-Request-ID": "lost-1"})
        async with held_model(app) as gate:
            first = asyncio.create_task(classify_crop(client, 1))
            await gate.wait_entered()
            refused = await client.post("/v1/classify", params={"detect": "false"}, headers={"X-Request-ID": "busy-1"},
                                        files={"images": ("face.png", noise_png(2), "image/png")})
            gate.release()
            assert (await first).status_code == 200
    assert chosen.headers["x-request-id"] == "app-7f3a:42"
    ids = [r.headers["x-request-id"] for r in (*fresh, unsafe, too_long)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids) and len(set(ids)) == len(ids)
    assert missing.status_code == 404 and missing.headers["x-request-id"] == "lost-1"
    assert refused.status_code == 429 and refused.headers["x-request-id"] == "busy-1"


async def test_a_refused_request_is_logged_under_its_request_id(make_settings: Callable[..., Settings],
                                                               caplog: pytest.LogCaptureFixture) -> None:
    """The README's promise: a client that sent X-Request-ID finds its failed request in the service's log by it."""
    async with serve(make_settings()) as (app, client):
        with caplog.at_level(logging.INFO, logger="service.errors"):
            await client.post("/v1/classify", headers={"X-Request-ID": "trace-42"},
                              files={"images": ("text.jpg", b"hello", "image/jpeg")})
            await client.post("/v1/classify", headers={"X-Request-ID": "trace-43"}, params={"detect": "perhaps"},
                              files={"images": ("face.png", noise_png(7), "image/png")})
    lines = [r.getMessage() for r in caplog.records if r.name == "service.errors"]
    assert any("-> 400 bad_image" in line and "[request trace-42]" in line for line in lines), lines
    assert any("-> 422 invalid_parameter" in line and "[request trace-43]" in line for line in lines), lines
