"""Model soups: one network whose weights are the average of several fine-tunings of the same model.

Fine-tunings that start from the same trained checkpoint stay in one basin of
the loss, so the average of their weights is itself a good model, often
better than any of them, and it costs nothing at inference: it is one network
with one forward pass, not an ensemble (Wortsman et al., *Model soups*, ICML
2022; Izmailov et al., *Averaging weights leads to wider optima*, UAI 2018).
Networks trained from scratch do not share a basin, and their average is
useless (measured here: the 30-epoch model averaged with its distilled twin,
same seed and data order, scores 13.8 % on PublicTest).

The *greedy* soup keeps an ingredient only if it helps: ingredients are
sorted by their own validation accuracy, the best starts the soup, and each
next one is added if the average with it scores at least as well on the
validation split. Only a validation split may be used, since the soup is
selected on it::

    fersnet soup runs/fer2013_small_long/best runs/soup/ing_s1_w0.5/best ... \\
        --dataset fer2013 --root ../shared/data/fer2013 --split val --out runs/soup/greedy

Batch-norm running statistics are averaged with the weights, as the soups
paper does; integer buffers (batch counters) are taken from the first
ingredient.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..card import CardDraft
from ..checkpoint import CheckpointError, LoadedModel, build_card
from ..fersnet import FERSNet


@dataclass
class SoupResult:
    """What :func:`greedy_soup` (or :func:`scored_uniform_soup`) chose, and every score it measured on the way."""

    model: FERSNet
    chosen: list[int]
    """Indices (into the ingredients as given) of the models in the soup, in the order they were added."""
    score: float | None
    """The soup's validation score (None for a uniform soup: it is not needed to choose one)."""
    ingredient_scores: list[float]
    trials: list[tuple[int, float, bool]] = field(default_factory=list)
    """(ingredient, score of the soup with it, kept) for every ingredient tried after the first."""


def check_compatible(ingredients: Sequence[LoadedModel]) -> None:
    """Refuse ingredients that are not the same network on the same input with the same classes.

    Averaging tensors of the same shape from different configurations would run,
    and quietly produce nonsense; the error names the first checkpoint that differs.
    """
    if len(ingredients) < 2:
        raise CheckpointError("a soup needs at least two checkpoints")
    first = ingredients[0]
    for other in ingredients[1:]:
        for what, a, b in (
            ("network", first.model.config.to_dict(), other.model.config.to_dict()),
            ("classes", first.classes, other.classes),
            ("expressions", first.expressions, other.expressions),
            ("input", first.preprocess.to_dict(), other.preprocess.to_dict()),
        ):
            if a != b:
                raise CheckpointError(f"{other.path} cannot join a soup with {first.path}: its {what} differs ({b} against {a})")


def average_state_dicts(states: Sequence[Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """The uniform average of floating-point tensors; other tensors (batch counters) from the first state."""
    averaged: dict[str, Tensor] = {}
    for name, first in states[0].items():
        if first.is_floating_point():
            averaged[name] = torch.stack([s[name].float() for s in states]).mean(0).to(first.dtype)
        else:
            averaged[name] = first.clone()
    return averaged


def uniform_soup(ingredients: Sequence[LoadedModel]) -> FERSNet:
    """A copy of the first ingredient's network carrying the average of all their weights."""
    check_compatible(ingredients)
    return _network_with(ingredients[0], average_state_dicts([i.model.state_dict() for i in ingredients]))


def scored_uniform_soup(ingredients: Sequence[LoadedModel], score: Callable[[FERSNet], float]) -> SoupResult:
    """:func:`uniform_soup`, with each ingredient's own ``score`` recorded as :func:`greedy_soup` records it.

    Every ingredient is in; the scores only document the ingredients on the soup's card.
    """
    model = uniform_soup(ingredients)
    return SoupResult(model=model, chosen=list(range(len(ingredients))), score=None,
                      ingredient_scores=[score(i.model) for i in ingredients])


def greedy_soup(ingredients: Sequence[LoadedModel], score: Callable[[FERSNet], float]) -> SoupResult:
    """The greedy soup of Wortsman et al.: add ingredients best first while the score does not drop.

    ``score`` measures a network on the validation split (higher is better);
    it is called once per ingredient and once per trial soup.
    """
    check_compatible(ingredients)
    states = [{k: v.detach().clone() for k, v in i.model.state_dict().items()} for i in ingredients]
    own = [score(i.model) for i in ingredients]
    order = sorted(range(len(ingredients)), key=lambda i: -own[i])
    chosen = [order[0]]
    best_score = own[order[0]]
    trials: list[tuple[int, float, bool]] = []
    for candidate in order[1:]:
        trial = _network_with(ingredients[0], average_state_dicts([states[i] for i in (*chosen, candidate)]))
        trial_score = score(trial)
        kept = trial_score >= best_score
        trials.append((candidate, trial_score, kept))
        if kept:
            chosen.append(candidate)
            best_score = trial_score
    model = _network_with(ingredients[0], average_state_dicts([states[i] for i in chosen]))
    return SoupResult(model=model, chosen=chosen, score=best_score, ingredient_scores=own, trials=trials)


def soup_card(
    result: SoupResult,
    ingredients: Sequence[LoadedModel],
    *,
    method: str,
    selected_on: str,
    command: str,
    name: str,
    metrics: dict[str, Any],
) -> CardDraft:
    """The model card of a soup: enough to audit it, and to make it again.

    Its ``training`` section lists every ingredient (checkpoint, hash, its own validation
    accuracy, whether it is in the soup, and the command and recipe that trained it), every
    greedy trial, the split it was ``selected_on`` (dataset, split, folder), and the ``command``
    that made it; the first ingredient's own training is kept as the soup's ``base``, since the
    others are fine-tunings of it. ``metrics`` are the soup's measurements, keyed by split.
    """
    first = ingredients[0]
    training = {
        "command": command,
        "soup": {
            "method": method,
            "selected_on": selected_on,
            "ingredients": [{"checkpoint": str(i.path), "name": i.card.name, "sha256": i.sha256,
                             "accuracy": round(result.ingredient_scores[k], 5), "in_soup": k in result.chosen,
                             "command": i.card.training.get("command"),
                             "recipe": i.card.training.get("recipe")} for k, i in enumerate(ingredients)],
            "greedy_trials": [{"added": str(ingredients[candidate].path), "accuracy": round(score, 5), "kept": kept}
                              for candidate, score, kept in result.trials],
        },
        "base": first.card.training,
    }
    return build_card(result.model, first.classes, first.preprocess, name=name, training=training, metrics=metrics,
                      expressions=list(first.expressions) if result.model.has_answer_tail else None)


def _network_with(template: LoadedModel, state: Mapping[str, Tensor]) -> FERSNet:
    """A fresh network of ``template``'s configuration, on its device, holding ``state``."""
    device = next(template.model.parameters()).device
    model = FERSNet(template.model.config).to(device)
    model.load_state_dict(state)
    return model.eval()
