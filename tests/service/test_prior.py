"""/v1/classify under a class prior: the model's default from its card, or the request's; the answer names it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import get_args

import httpx
import pytest
from pydantic import ValidationError

from model_core import CheckpointError
from model_core.expressions import FERPLUS_CLASSES
from model_core.prior import PRIORS
from service.engine import Engine
from service.settings import Settings

from .helpers import FREQUENCIES, assert_error, noise_png, serve


async def classify(client: httpx.AsyncClient, **params: str) -> httpx.Response:
    files = {"images": ("face.png", noise_png(5), "image/png")}
    return await client.post("/v1/classify", params={"detect": "false", **params}, files=files)


async def test_the_answer_is_under_the_cards_prior_unless_the_request_names_another(
    make_settings: Callable[..., Settings], balanced_checkpoint: Path
) -> None:
    async with serve(make_settings(checkpoint=str(balanced_checkpoint))) as (_, client):
        default, natural, balanced = await classify(client), await classify(client, prior="natural"), await classify(client, prior="balanced")
        info = (await client.get("/v1/models")).json()
    for response in (default, natural, balanced):
        assert response.status_code == 200, response.text
    assert (default.json()["prior"], natural.json()["prior"], balanced.json()["prior"]) == ("balanced", "natural", "balanced")
    assert default.json() == balanced.json()
    p = natural.json()["images"][0]["faces"][0]["probabilities"]
    q = balanced.json()["images"][0]["faces"][0]["probabilities"]
    total = sum(p[c] / FREQUENCIES[c] for c in FERPLUS_CLASSES)  # Bayes' rule, from the training prior to a uniform one
    for c in FERPLUS_CLASSES:
        assert q[c] == pytest.approx(p[c] / FREQUENCIES[c] / total, rel=1e-4, abs=1e-7)
    assert info["prior"]["default"] == "balanced" and info["prior"]["frequencies"] == pytest.approx(FREQUENCIES)


async def test_a_model_without_frequencies_answers_under_its_natural_prior_only(
    make_settings: Callable[..., Settings], two_head_checkpoint: Path
) -> None:
    async with serve(make_settings(checkpoint=str(two_head_checkpoint))) as (_, client):
        plain = await classify(client)
        balanced = await classify(client, prior="balanced")
        unknown = await classify(client, prior="uniform")
        info = (await client.get("/v1/models")).json()
    assert plain.status_code == 200 and plain.json()["prior"] == "natural" and info["prior"] == {}
    assert "records no class frequencies" in assert_error(balanced, 422, "invalid_parameter")["message"]
    assert_error(unknown, 422, "invalid_parameter")


async def test_an_operator_sets_the_default_prior_for_every_request_that_names_none(
    make_settings: Callable[..., Settings], balanced_checkpoint: Path
) -> None:
    async with serve(make_settings(checkpoint=str(balanced_checkpoint), prior="natural")) as (_, client):
        default, balanced = await classify(client), await classify(client, prior="balanced")
        info = (await client.get("/v1/models")).json()
    assert (default.json()["prior"], balanced.json()["prior"], info["prior"]["default"]) == ("natural", "balanced", "natural")
    assert default.json()["images"] != balanced.json()["images"]


def test_a_balanced_prior_for_a_model_without_frequencies_refuses_to_load(
    make_settings: Callable[..., Settings], two_head_checkpoint: Path
) -> None:
    with pytest.raises(CheckpointError, match="FERSNET_PRIOR=balanced.*records no class frequencies"):
        Engine.load(make_settings(checkpoint=str(two_head_checkpoint), prior="balanced"))
    assert Engine.load(make_settings(checkpoint=str(two_head_checkpoint), prior="natural")).prior == "natural"


def test_the_settings_take_exactly_the_models_priors() -> None:
    """service.settings spells the priors out (model_core.prior loads torch, which the settings must not)."""
    for prior in PRIORS:
        assert Settings(prior=prior).prior == prior
    with pytest.raises(ValidationError):
        Settings(prior="uniform")  # type: ignore[arg-type]
    assert set(get_args(get_args(Settings.model_fields["prior"].annotation)[0])) == set(PRIORS)
