"""A model with two recognition heads served: /v1/classify answers the answer tail's classes (FER+'s eight, with
contempt), /v1/synthesize draws the expression head's (FER2013's seven), and /v1/models says which is which."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest

from model_core.expressions import FERPLUS_CLASSES
from service.settings import Settings

from .helpers import FER_CLASSES, assert_error, classify_crop, noise_png, serve

CROP = {"image": ("face.png", noise_png(11), "image/png")}


@pytest.fixture
def two_heads(make_settings: Callable[..., Settings], two_head_checkpoint: Path) -> Settings:
    return make_settings(checkpoint=str(two_head_checkpoint))


async def test_classify_answers_with_the_answer_tail(two_heads: Settings) -> None:
    """Eight probabilities, contempt among them: the tail's (the expression head has seven outputs)."""
    async with serve(two_heads) as (_, client):
        response = await classify_crop(client)
    assert response.status_code == 200, response.text
    probabilities = response.json()["images"][0]["faces"][0]["probabilities"]
    assert list(probabilities) == list(FERPLUS_CLASSES) and "contempt" in probabilities
    assert math.isclose(sum(probabilities.values()), 1.0, abs_tol=1e-5)


async def test_synthesize_draws_the_expressions_and_refuses_a_class_only_the_tail_knows(two_heads: Settings) -> None:
    async with serve(two_heads) as (_, client):
        every = await client.post("/v1/synthesize", params={"targets": "all", "detect": "false", "format": "json"}, files=CROP)
        sad = await client.post("/v1/synthesize", params={"targets": "sad,neutral", "detect": "false"}, files=CROP)
        contempt = await client.post("/v1/synthesize", params={"targets": "happy,contempt", "detect": "false"}, files=CROP)
    assert every.status_code == 200, every.text
    assert [image["expression"] for image in every.json()["images"]] == list(FER_CLASSES)
    assert sad.status_code == 200, sad.text
    error = assert_error(contempt, 422, "invalid_parameter")
    assert "'contempt'" in error["message"] and ", ".join(FER_CLASSES) in error["message"]


async def test_the_model_card_names_the_classes_it_answers_and_the_expressions_it_draws(
    two_heads: Settings, make_settings: Callable[..., Settings]
) -> None:
    async with serve(two_heads) as (_, client):
        info = (await client.get("/v1/models")).json()
    assert info["classes"] == list(FERPLUS_CLASSES) and info["expressions"] == list(FER_CLASSES)
    assert info["config"]["answer_classes"] == 8 and info["synthesis"] is True
    async with serve(make_settings()) as (_, client):
        plain = (await client.get("/v1/models")).json()
    assert plain["classes"] == plain["expressions"] == list(FER_CLASSES)
