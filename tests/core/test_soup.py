"""Model soups: the average of several fine-tunings is one network, chosen on a validation split."""

from __future__ import annotations

import pytest
import torch

from model_core import CheckpointError, load_checkpoint
from model_core.fersnet import FERSNet
from model_core.train.soup import (
    average_state_dicts,
    check_compatible,
    greedy_soup,
    scored_uniform_soup,
    soup_card,
    uniform_soup,
)

from ..shared_fixtures import MakeCheckpoint
from .fakes import flat_parameters, perturbed


def test_floating_tensors_are_averaged_and_counters_taken_from_the_first() -> None:
    a = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)}
    b = {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor(7)}
    out = average_state_dicts([a, b])
    assert torch.equal(out["w"], torch.tensor([2.0, 4.0]))
    assert out["n"].item() == 3 and out["n"].dtype == a["n"].dtype


def test_a_soup_of_one_model_with_itself_is_that_model(make_checkpoint: MakeCheckpoint) -> None:
    path = make_checkpoint("a")
    one = load_checkpoint(path)
    soup = uniform_soup([one, load_checkpoint(path)])
    x = torch.randn(3, 1, one.model.config.img_size, one.model.config.img_size)
    with torch.no_grad():
        assert torch.allclose(soup.classify(x), one.model.eval().classify(x), atol=1e-6)


def test_greedy_soup_keeps_ingredients_that_help_and_leaves_out_one_that_hurts(make_checkpoint: MakeCheckpoint) -> None:
    base = make_checkpoint("base", seed=0)
    target = flat_parameters(load_checkpoint(base).model)
    # Two independent perturbations of one model: their average is closer to it than either. A model of
    # another initialisation is far from it, and averaging it in moves the soup away.
    ingredients = [
        perturbed(base, 0.01, seed=1),
        load_checkpoint(make_checkpoint("stranger", seed=5)),
        perturbed(base, 0.01, seed=2),
    ]

    def score(model: FERSNet) -> float:
        return -float((flat_parameters(model) - target).norm())

    result = greedy_soup(ingredients, score)
    assert sorted(result.chosen) == [0, 2]
    (_, _, second_kept), (last, _, last_kept) = result.trials  # the stranger scores worst alone, so it is tried last
    assert second_kept and last == 1 and not last_kept
    assert result.score > max(result.ingredient_scores)
    expected = (flat_parameters(ingredients[0].model) + flat_parameters(ingredients[2].model)) / 2
    assert torch.allclose(flat_parameters(result.model), expected, atol=1e-6)


def test_different_networks_or_classes_cannot_share_a_soup(make_checkpoint: MakeCheckpoint) -> None:
    selective = load_checkpoint(make_checkpoint("selective"))
    hard = load_checkpoint(make_checkpoint("hard", sharing="hard"))
    with pytest.raises(CheckpointError, match=r"hard.*network differs"):
        check_compatible([selective, hard])
    fewer = load_checkpoint(make_checkpoint("six", classes=("angry", "disgust", "fear", "happy", "sad", "surprise")))
    with pytest.raises(CheckpointError, match="differs"):
        check_compatible([selective, fewer])
    with pytest.raises(CheckpointError, match="at least two"):
        check_compatible([selective])


def test_a_uniform_soup_keeps_everyone_and_records_their_scores(make_checkpoint: MakeCheckpoint) -> None:
    base = make_checkpoint("base")
    ingredients = [perturbed(base, 0.01, seed=1), perturbed(base, 0.01, seed=2)]
    result = scored_uniform_soup(ingredients, lambda model: float(flat_parameters(model).sum()))
    assert result.chosen == [0, 1] and result.score is None and result.trials == []
    assert result.ingredient_scores == [float(flat_parameters(i.model).sum()) for i in ingredients]
    assert torch.equal(flat_parameters(result.model), flat_parameters(uniform_soup(ingredients)))


def test_the_soups_card_says_how_to_audit_and_remake_it(make_checkpoint: MakeCheckpoint) -> None:
    base = make_checkpoint("base")
    ingredients = [load_checkpoint(base), perturbed(base, 0.01, seed=1), perturbed(base, 0.01, seed=2)]
    ingredients[0].card.training = {"command": "fersnet train --config base.yaml"}
    result = greedy_soup(ingredients, lambda model: -float(flat_parameters(model).abs().sum()))
    card = soup_card(result, ingredients, method="greedy", selected_on="fer2013:val from data", command="fersnet soup",
                     name="greedy", metrics={"fer2013/val": {"accuracy": 0.5}})
    soup = card.training["soup"]
    assert card.name == "greedy" and card.metrics == {"fer2013/val": {"accuracy": 0.5}}
    assert card.training["command"] == "fersnet soup" and soup["selected_on"] == "fer2013:val from data"
    assert card.training["base"] == {"command": "fersnet train --config base.yaml"}
    assert [i["in_soup"] for i in soup["ingredients"]] == [k in result.chosen for k in range(3)]
    assert [i["accuracy"] for i in soup["ingredients"]] == [round(s, 5) for s in result.ingredient_scores]
    assert [t["kept"] for t in soup["greedy_trials"]] == [kept for _, _, kept in result.trials]
    assert card.classes == list(ingredients[0].classes) and card.parameters == ingredients[0].card.parameters
