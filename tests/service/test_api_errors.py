"""Every error answers the one JSON shape with its 4xx/5xx, and the service keeps serving after it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import Message

from service import errors
from service.app import create_app
from service.engine import Engine
from service.schemas import error_responses
from service.settings import Settings

from .helpers import Gate, assert_error, blank_photo, classify_crop, encode, held_model, noise_image, noise_png, png_header_only, runtime_of, serve, until

GOOD = {"images": ("face.png", noise_png(7), "image/png")}


def _bad_requests() -> Iterator[tuple[str, dict[str, Any], int, str]]:
    """(what, request arguments, status, code) for every bad input the default limits catch."""
    heic = b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64  # an iPhone's format, its first box and nothing more
    jpeg = encode(noise_image(2, (120, 120), "RGB"), "JPEG")
    yield "empty image", {"url": "/v1/classify", "files": {"images": ("empty.jpg", b"", "image/jpeg")}}, 400, "empty_image"
    yield "corrupt image", {"url": "/v1/classify", "files": {"images": ("x.jpg", b"\x13\x37" * 500, "image/jpeg")}}, 400, "bad_image"
    yield "truncated jpeg", {"url": "/v1/classify", "files": {"images": ("t.jpg", jpeg[: len(jpeg) // 3], "image/jpeg")}}, 400, "bad_image"
    yield "damaged heic", {"url": "/v1/classify", "files": {"images": ("photo.heic", heic, "image/heic")}}, 400, "bad_image"
    avif = encode(noise_image(4, (64, 64), "RGB"), "AVIF", quality=60)
    payload = avif.index(b"mdat") + 4
    avif = avif[:payload] + b"\xff" * (len(avif) - payload)  # its AV1 stream overwritten: the decoder raises RuntimeError
    yield "damaged avif", {"url": "/v1/classify", "files": {"images": ("photo.avif", avif, "image/avif")}}, 400, "bad_image"
    yield "pdf", {"url": "/v1/classify", "files": {"images": ("scan.pdf", b"%PDF-1.7\n" + b"\x00" * 64, "application/pdf")}}, 415, "unsupported_media_type"
    yield "text file", {"url": "/v1/classify", "files": {"images": ("notes.txt", b"hello", "text/plain")}}, 415, "unsupported_media_type"
    yield "json body", {"url": "/v1/classify", "json": {"image": "aGVsbG8="}}, 415, "unsupported_media_type"
    yield (
        "pixel bomb",
        {"url": "/v1/classify", "files": {"images": ("bomb.png", png_header_only(20_000, 20_000), "image/png")}},
        413,
        "too_many_pixels",
    )
    yield "no image part", {"url": "/v1/classify", "files": {"other": ("a.png", noise_png(), "image/png")}}, 422, "invalid_parameter"
    yield "bad detect flag", {"url": "/v1/classify", "params": {"detect": "perhaps"}, "files": GOOD}, 422, "invalid_parameter"
    yield "misspelt option", {"url": "/v1/classify", "params": {"detct": "false"}, "files": GOOD}, 422, "invalid_parameter"
    yield "unknown form field", {"url": "/v1/classify", "data": {"mode": "fast"}, "files": GOOD}, 422, "invalid_parameter"
    yield (
        "detect sent twice, differently",
        {"url": "/v1/classify", "params": {"detect": "false"}, "data": {"detect": "true"}, "files": GOOD},
        422,
        "invalid_parameter",
    )
    yield "bad form detect flag", {"url": "/v1/classify", "data": {"detect": "perhaps"}, "files": GOOD}, 422, "invalid_parameter"
    synth = {"image": ("face.png", noise_png(3), "image/png")}
    yield (
        "no face in photo",
        {"url": "/v1/synthesize", "params": {"targets": "happy"}, "files": {"image": ("p.jpg", blank_photo(), "image/jpeg")}},
        400,
        "no_face",
    )
    yield (
        "unknown target",
        {"url": "/v1/synthesize", "params": {"targets": "smug", "detect": "false"}, "files": synth},
        422,
        "invalid_parameter",
    )
    yield "missing targets", {"url": "/v1/synthesize", "params": {"detect": "false"}, "files": synth}, 422, "invalid_parameter"
    yield (
        "empty targets",
        {"url": "/v1/synthesize", "params": {"targets": " , ", "detect": "false"}, "files": synth},
        422,
        "invalid_parameter",
    )
    yield (
        "png for two targets",
        {"url": "/v1/synthesize", "params": {"targets": "happy,sad", "format": "png", "detect": "false"}, "files": synth},
        422,
        "invalid_parameter",
    )
    yield "negative face", {"url": "/v1/synthesize", "params": {"targets": "happy", "face": "-1"}, "files": synth}, 422, "invalid_parameter"
    yield (
        "face out of range",
        {"url": "/v1/synthesize", "params": {"targets": "happy", "face": "3", "detect": "false"}, "files": synth},
        422,
        "invalid_parameter",
    )


BAD_REQUESTS = list(_bad_requests())


async def test_bad_input_gets_its_4xx_and_the_next_request_succeeds(make_settings: Callable[..., Settings]) -> None:
    async with serve(make_settings()) as (app, client):
        for what, arguments, status, code in BAD_REQUESTS:
            response = await client.post(**arguments)
            error = assert_error(response, status, code)
            assert error["message"], what
            if status == 422:  # every 422 lists what offended, whichever check caught it: a client reads one shape
                assert error["details"] and all(set(d) == {"loc", "msg", "type"} and d["loc"] for d in error["details"]), what
            after = await classify_crop(client)
            assert after.status_code == 200, f"after {what}: {after.text}"
        metrics = (await client.get("/metrics")).text
    assert 'fersnet_requests_total{method="POST",route="/v1/classify",status="415"}' in metrics
    assert 'status="500"' not in metrics


async def test_validation_errors_list_the_offending_fields(make_settings: Callable[..., Settings]) -> None:
    async with serve(make_settings()) as (app, client):
        response = await client.post("/v1/classify", params={"detect": "perhaps"}, files=GOOD)
        error = assert_error(response, 422, "invalid_parameter")
        assert error["details"][0]["loc"] == ["query", "detect"]


async def test_a_value_the_route_itself_refuses_names_its_parameter_in_details(make_settings: Callable[..., Settings]) -> None:
    synth = {"image": ("face.png", noise_png(3), "image/png")}
    async with serve(make_settings()) as (app, client):
        target = await client.post("/v1/synthesize", params={"targets": "joy2", "detect": "false"}, files=synth)
        face = await client.post("/v1/synthesize", params={"targets": "happy", "face": "3", "detect": "false"}, files=synth)
        twice = await client.post("/v1/classify", params={"detect": "false"}, data={"detect": "true"}, files=GOOD)
    assert assert_error(target, 422, "invalid_parameter")["details"] == [
        {"loc": ["targets"], "msg": target.json()["error"]["message"], "type": "invalid_value"}]
    assert [d["loc"] for d in assert_error(face, 422, "invalid_parameter")["details"]] == [["face"]]
    assert [d["loc"] for d in assert_error(twice, 422, "invalid_parameter")["details"]] == [["query", "detect"], ["body", "detect"]]


async def test_the_framework_s_own_errors_say_what_to_do(make_settings: Callable[..., Settings]) -> None:
    async with serve(make_settings()) as (app, client):
        missing = await client.get("/v1/clasify")
        method = await client.get("/v1/classify")
        broken = await client.post("/v1/classify", content=b"--x\r\nnot a part", headers={"content-type": "multipart/form-data"})
    assert assert_error(missing, 404, "not_found")["message"] == "no route GET /v1/clasify; the API is listed at /docs"
    assert assert_error(method, 405, "method_not_allowed")["message"] == "/v1/classify does not take GET; the API is listed at /docs"
    message = assert_error(broken, 400, "bad_request")["message"]
    assert message.startswith("the body is not valid multipart/form-data (") and "curl -F" in message, message


async def test_a_missing_picture_says_which_form_part_to_send(make_settings: Callable[..., Settings]) -> None:
    """A multipart request with its options but no picture: the answer names the part to send, as curl sends it."""
    async with serve(make_settings()) as (app, client):
        answers = [await client.post(url, files={name: (None, value)})
                   for url, name, value in (("/v1/classify", "detect", "false"), ("/v1/preview", "max_side", "100"))]
    assert [assert_error(answer, 422, "invalid_parameter")["message"] for answer in answers] == [
        "body.images: missing: send the picture as a form part named images (curl -F images=@photo.jpg)",
        "body.image: missing: send the picture as a form part named image (curl -F image=@photo.jpg)",
    ]


async def test_unknown_parameters_are_named_with_what_the_route_reads(make_settings: Callable[..., Settings]) -> None:
    """?target=happy (singular) would otherwise be dropped in silence; the answer names it and the right names."""
    synth = {"image": ("face.png", noise_png(3), "image/png")}
    async with serve(make_settings()) as (app, client):
        response = await client.post("/v1/synthesize", params={"target": "happy", "detect": "false"}, files=synth)
        form = await client.post("/v1/synthesize", data={"targets": "happy", "detect": "false", "size": "96"}, files=synth)
    error = assert_error(response, 422, "invalid_parameter")
    assert error["message"] == "unknown query parameter 'target'; /v1/synthesize reads detect, face, format, image, intensity, targets"
    assert error["details"] == [{"loc": ["query", "target"], "msg": "unknown parameter", "type": "unknown_parameter"}]
    assert assert_error(form, 422, "invalid_parameter")["message"].startswith("unknown form field 'size';")


async def test_a_part_sent_twice_where_the_route_reads_one_is_refused(make_settings: Callable[..., Settings]) -> None:
    """Two photos under ``image``: the route would redraw the last alone; several ``images`` or ``targets`` are fine."""
    two = [("image", ("a.png", noise_png(3), "image/png")), ("image", ("b.png", noise_png(4), "image/png"))]
    async with serve(make_settings()) as (app, client):
        twice = await client.post("/v1/synthesize", params={"targets": "happy", "detect": "false"}, files=two)
        detect_twice = await client.post("/v1/classify", params=[("detect", "false"), ("detect", "true")], files=GOOD)
        several = await client.post("/v1/synthesize", params=[("targets", "happy"), ("targets", "sad"), ("detect", "false")],
                                    files=two[:1])
        images = await client.post("/v1/classify", params={"detect": "false"},
                                   files=[("images", ("a.png", noise_png(3), "image/png")), ("images", ("b.png", noise_png(4), "image/png"))])
        text = await client.post("/v1/synthesize", params={"targets": "happy"}, files={"image": (None, b"hello")})
        banana = await client.post("/v1/synthesize", params={"targets": "all,banana", "format": "grid", "detect": "false"},
                                   files=two[:1])
    error = assert_error(twice, 422, "invalid_parameter")
    assert error["message"] == "form field 'image' sent 2 times; /v1/synthesize reads one"
    assert assert_error(detect_twice, 422)["message"] == "query parameter 'detect' sent 2 times; /v1/classify reads one"
    assert several.status_code == 200 and len(several.json()["images"]) == 2
    assert images.status_code == 200 and len(images.json()["images"]) == 2
    message = assert_error(text, 422, "invalid_parameter")["message"]
    assert message.startswith("body.image: expected a file (a form part with a filename") and "class" not in message
    assert "unknown expression 'banana'" in assert_error(banana, 422)["message"]  # 'all' does not hide a typo beside it


async def test_messages_state_the_problem_without_the_decoders_words(make_settings: Callable[..., Settings]) -> None:
    """Past PIL's own bomb guard the message still states the one limit the client must meet; no body, no 'not no'."""
    bomb = {"images": ("bomb.png", png_header_only(20_000, 20_000), "image/png")}
    async with serve(make_settings()) as (app, client):
        huge = assert_error(await client.post("/v1/classify", files=bomb), 413, "too_many_pixels")["message"]
        bare = assert_error(await client.post("/v1/classify"), 415, "unsupported_media_type")["message"]
        long = await client.post("/v1/synthesize", params={"targets": "x" * 5000, "detect": "false"},
                                 files={"image": ("face.png", noise_png(3), "image/png")})
        nan = await client.post("/v1/synthesize", params={"targets": "happy", "intensity": "nan", "detect": "false"},
                                files={"image": ("face.png", noise_png(3), "image/png")})
    assert huge == "image 0 (bomb.png) is 400,000,000 pixels; the limit is 40,000,000"
    assert bare == "send the image(s) as multipart/form-data (the request named no Content-Type)"
    assert len(assert_error(long, 422, "invalid_parameter")["message"]) < 200
    assert assert_error(nan, 422, "invalid_parameter")["message"] == "query.intensity: Input should be a finite number"


async def test_unknown_routes_and_methods_answer_the_same_shape(make_settings: Callable[..., Settings]) -> None:
    async with serve(make_settings()) as (app, client):
        assert_error(await client.get("/v1/nothing-here"), 404, "not_found")
        assert_error(await client.get("/v1/classify"), 405, "method_not_allowed")


async def test_bodies_over_the_limit_are_413(make_settings: Callable[..., Settings]) -> None:
    big = encode(noise_image(9, (300, 300), "RGB"), "PNG")  # ~270 KB of incompressible noise
    async with serve(make_settings(max_upload_bytes=64 * 1024)) as (app, client):
        response = await client.post("/v1/classify", files={"images": ("big.png", big, "image/png")})
        assert "over the limit" in assert_error(response, 413, "payload_too_large")["message"]

        # The same body streamed without a Content-Length is cut off once it passes the limit.
        request = client.build_request("POST", "/v1/classify", files={"images": ("big.png", big, "image/png")})
        body = request.read()

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(body), 16 * 1024):
                yield body[start : start + 16 * 1024]

        headers = {"content-type": request.headers["content-type"]}
        streamed = await client.post("/v1/classify", content=chunks(), headers=headers)
        assert "content-length" not in streamed.request.headers
        assert_error(streamed, 413, "payload_too_large")
        assert (await classify_crop(client)).status_code == 200


async def test_pixel_and_image_count_limits(make_settings: Callable[..., Settings]) -> None:
    async with serve(make_settings(max_image_pixels=48 * 48, max_images_per_request=2)) as (app, client):
        big = {"images": ("big.png", noise_png(1, (49, 48)), "image/png")}
        assert "pixels" in assert_error(await client.post("/v1/classify", files=big), 413, "too_many_pixels")["message"]
        three = [("images", (f"{i}.png", noise_png(i), "image/png")) for i in range(3)]
        assert_error(await client.post("/v1/classify", params={"detect": "false"}, files=three), 413, "payload_too_large")
        assert (await classify_crop(client)).status_code == 200


async def test_api_key(make_settings: Callable[..., Settings]) -> None:
    async with serve(make_settings(api_key="s3cret")) as (app, client):
        files = {"images": ("face.png", noise_png(), "image/png")}
        missing = await client.post("/v1/classify", params={"detect": "false"}, files=files)
        assert assert_error(missing, 401, "unauthorized") and missing.headers["www-authenticate"] == "Bearer"
        wrong = await client.post("/v1/classify", params={"detect": "false"}, files=files, headers={"X-API-Key": "guess"})
        assert_error(wrong, 401, "unauthorized")
        assert_error(await client.get("/v1/models"), 401, "unauthorized")
        ok = await client.post("/v1/classify", params={"detect": "false"}, files=files, headers={"X-API-Key": "s3cret"})
        assert ok.status_code == 200
        bearer = await client.get("/v1/models", headers={"Authorization": "Bearer s3cret"})
        assert bearer.status_code == 200
        for open_path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):  # probes and scrapers need no key
            assert (await client.get(open_path)).status_code == 200


async def test_a_model_without_synthesis_answers_501(make_settings: Callable[..., Settings], classify_only_checkpoint: Path) -> None:
    async with serve(make_settings(checkpoint=str(classify_only_checkpoint))) as (app, client):
        response = await client.post(
            "/v1/synthesize", params={"targets": "happy", "detect": "false"}, files={"image": ("f.png", noise_png(), "image/png")}
        )
        assert_error(response, 501, "synthesis_unavailable")
        assert (await classify_crop(client)).status_code == 200
        assert (await client.get("/v1/models")).json()["synthesis"] is False


# --------------------------------------------------------------------------- the error classes: the one list of codes


def _error_classes(root: type[errors.ServiceError] = errors.ServiceError) -> list[type[errors.ServiceError]]:
    return [root, *(c for sub in root.__subclasses__() for c in _error_classes(sub))]


def test_every_error_class_documents_a_code_of_its_own() -> None:
    classes = _error_classes()
    codes = [c.code for c in classes]
    assert len(codes) == len(set(codes)) and len(classes) >= 19
    for c in classes:
        assert {"code", "summary", "example"} <= set(vars(c)), f"{c.__name__} inherits what it should say itself"


def test_framework_errors_answer_the_codes_of_the_error_classes() -> None:
    """The codes of HTTP errors FastAPI raises itself, derived from the classes: the table as it was written out before."""
    assert errors._FRAMEWORK_CODES == {
        400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
        413: "payload_too_large", 415: "unsupported_media_type", 422: "invalid_parameter", 429: "queue_full",
        503: "not_ready", 504: "timeout",
    }  # fmt: skip


def test_the_reference_documents_each_status_from_the_classes_a_route_lists() -> None:
    responses = error_responses(errors.QueueFull, errors.BadImage, errors.NoFaceFound)
    assert list(responses) == [400, 429]
    first = responses[400]["content"]["application/json"]["example"]
    assert first == {"error": {"code": "bad_image", "message": errors.BadImage.example, "status": 400}}
    assert responses[400]["description"] == f"`bad_image`: {errors.BadImage.summary}; `no_face`: {errors.NoFaceFound.summary}"


# --------------------------------------------------------------------------- 429, 504 and 503: the service's own limits


async def test_a_full_queue_answers_429_with_retry_after(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(max_batch_size=1, max_wait_ms=0, max_queue=2, retry_after_s=2)
    async with serve(settings) as (app, client), held_model(app) as gate:
        first = asyncio.create_task(classify_crop(client, 1))
        await gate.wait_entered()  # the first image is inside the model
        queued = [asyncio.create_task(classify_crop(client, seed)) for seed in (2, 3)]
        batcher = runtime_of(app).classifier
        assert batcher is not None
        await until(lambda: batcher.queued == 2)
        refused = await classify_crop(client, 4)
        assert_error(refused, 429, "queue_full")
        assert refused.headers["retry-after"] == "2"
        gate.release()
        assert [r.status_code for r in await asyncio.gather(first, *queued)] == [200, 200, 200]
        assert (await classify_crop(client, 5)).status_code == 200


async def test_a_request_past_its_timeout_answers_504(make_settings: Callable[..., Settings]) -> None:
    async with serve(make_settings(request_timeout_s=0.5)) as (app, client):
        async with held_model(app) as gate:
            late = await classify_crop(client, 1)
            assert_error(late, 504, "timeout")
            assert gate.entered.is_set()
        assert (await classify_crop(client, 2)).status_code == 200


def upload_scope() -> dict[str, Any]:
    """The ASGI scope of a classify upload of 100,000 bytes, for tests that play the client's side by hand."""
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/v1/classify", "raw_path": b"/v1/classify", "query_string": b"", "root_path": "",
        "headers": [(b"content-type", b"multipart/form-data; boundary=x"), (b"content-length", b"100000")],
        "client": ("127.0.0.1", 1), "server": ("testserver", 80),
    }


async def test_an_upload_that_stalls_is_answered_408_in_time_and_frees_its_place(make_settings: Callable[..., Settings]) -> None:
    """A client that sends its headers and part of its body, then nothing, holds a place among the requests in flight
    (here the only one) until its body's time is up; then it gets 408 and the next client gets in."""
    async with serve(make_settings(max_inflight_requests=1, body_timeout_s=0.5)) as (app, client):
        sent: list[Message] = []
        stalled = asyncio.Event()

        async def receive() -> Message:
            if not stalled.is_set():
                stalled.set()
                return {"type": "http.request", "body": b"--x\r\n", "more_body": True}
            await asyncio.Event().wait()  # the rest never comes
            raise AssertionError("unreachable")

        async def send(message: Message) -> None:
            sent.append(message)

        upload = asyncio.create_task(app(upload_scope(), receive, send))
        await stalled.wait()
        assert_error(await classify_crop(client, 1), 429, "queue_full")  # the stalled upload holds the one place
        await asyncio.wait_for(upload, timeout=10)
        start, body = sent[0], json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
        assert start["status"] == 408 and body["error"]["code"] == "body_timeout"
        assert "within 0.5 s (5 of 100,000 bytes received)" in body["error"]["message"]
        assert (await classify_crop(client, 2)).status_code == 200


async def test_a_client_that_leaves_mid_upload_is_counted_499_not_400(make_settings: Callable[..., Settings]) -> None:
    """The unfinished body makes the app answer 400 to nobody; the metrics count what happened: the client left."""
    async with serve(make_settings()) as (app, client):
        messages = iter([{"type": "http.request", "body": b"--x\r\n", "more_body": True}, {"type": "http.disconnect"}])

        async def receive() -> Message:
            return next(messages, {"type": "http.disconnect"})

        async def send(message: Message) -> None:
            pass

        await app(upload_scope(), receive, send)
        metrics = (await client.get("/metrics")).text
    assert 'fersnet_requests_total{method="POST",route="/v1/classify",status="499"} 1.0' in metrics
    assert 'route="/v1/classify",status="400"' not in metrics


async def test_not_ready_until_warm_then_ready(make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch) -> None:
    warm_up = Gate(Engine.warm_up)
    monkeypatch.setattr(Engine, "warm_up", lambda self: warm_up(self))
    async with serve(make_settings(retry_after_s=1), wait=False) as (app, client):
        try:
            await warm_up.wait_entered()
            assert (await client.get("/healthz")).status_code == 200  # alive while warming up
            not_ready = await client.get("/readyz")
            assert_error(not_ready, 503, "not_ready")
            assert not_ready.headers["retry-after"] == "1"
            assert_error(await classify_crop(client), 503, "not_ready")
            metrics = (await client.get("/metrics")).text
            assert "fersnet_ready 0.0" in metrics
        finally:
            warm_up.release()
        await runtime_of(app).wait_warm()
        ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        assert (await classify_crop(client)).status_code == 200
        assert "fersnet_ready 1.0" in (await client.get("/metrics")).text


async def test_shutdown_finishes_accepted_work_and_refuses_new_work(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings(max_batch_size=1, max_wait_ms=0))
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    runtime = runtime_of(app)
    await runtime.wait_warm()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        async with held_model(app) as gate:
            accepted = [asyncio.create_task(classify_crop(client, seed)) for seed in range(3)]
            await gate.wait_entered()
            await until(lambda: runtime.classifier is not None and runtime.classifier.queued == 2)
            stopping = asyncio.create_task(lifespan.__aexit__(None, None, None))
            await until(lambda: runtime.state == "stopping")
            assert_error(await classify_crop(client, 9), 503, "shutting_down")
            assert_error(await client.get("/readyz"), 503, "shutting_down")
            gate.release()
            await stopping
        assert [r.status_code for r in await asyncio.gather(*accepted)] == [200, 200, 200]
