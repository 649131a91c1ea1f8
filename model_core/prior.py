"""The class prior an answer assumes: the training data's, or every expression equally likely.

A classifier learns its training data's class frequencies along with the faces. FER+'s
raters gave a third of their votes to neutral and a quarter to happy, under 2 % each to
disgust and contempt, so a head fitted on those votes is calibrated for faces that come
in those proportions (photos from the web, as FER2013's were) and leans towards neutral
for faces that do not: posed expressions, a person trying each expression at a camera,
an evaluation set with as many faces of each class. Bayes' rule moves calibrated
probabilities from one prior to another without retraining (Saerens, Latinne and
Decaestecker, Neural Computation 2002; the logit form: Menon et al., ICLR 2021): multiply
each class's probability by its new prior over its training frequency, and renormalise.

So a card records the frequencies of the served head's training targets
(:class:`~model_core.card.Prior`), and every answer assumes one of two priors:

- ``natural``: the training data's frequencies, i.e. the calibrated probabilities as they are;
- ``balanced``: every class equally likely, i.e. each probability divided by its class's
  training frequency. Its most probable class is the one that maximises the mean recall
  over classes (balanced accuracy), whatever the proportions of the faces sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

import numpy as np
import torch
from torch import Tensor

from .data import Records

PriorName = Literal["natural", "balanced"]
PRIORS: tuple[PriorName, ...] = get_args(PriorName)


def reweigh(probabilities: Tensor, frequencies: Sequence[float], prior: PriorName) -> Tensor:
    """``probabilities`` (N x classes, calibrated under the training ``frequencies``) as they are under ``prior``."""
    if prior == "natural":
        return probabilities
    if prior != "balanced":
        raise ValueError(f"prior must be one of {PRIORS}, not {prior!r}")
    weights = 1 / torch.as_tensor(frequencies, dtype=probabilities.dtype, device=probabilities.device)
    shifted = probabilities * weights
    return shifted / shifted.sum(-1, keepdim=True)


def class_frequencies(targets: np.ndarray, classes: Sequence[str]) -> dict[str, float]:
    """How often each class occurs in ``targets`` (N x classes distributions: one-hot labels or votes): their mean,
    rounded to six decimals. A class that never occurs is refused: no prior could divide by its frequency."""
    if targets.ndim != 2 or targets.shape[1] != len(classes) or len(targets) == 0:
        raise ValueError(f"targets of shape {targets.shape} for {len(classes)} classes")
    mean = targets.astype(np.float64).mean(0)
    missing = [c for c, f in zip(classes, mean, strict=True) if not f > 0]
    if missing:
        raise ValueError(f"no target of class {', '.join(missing)}: its frequency would be 0")
    return {c: round(float(f / mean.sum()), 6) for c, f in zip(classes, mean, strict=True)}


def split_frequencies(records: Records, classes: Sequence[str]) -> dict[str, float]:
    """:func:`class_frequencies` of a split's targets over ``classes`` (a model's), read from its labels (votes where
    the split has them, as training fits them) without decoding a face. A dataset class the model lacks adds nothing."""
    column = {c: classes.index(c) for c in records.classes if c in classes}
    targets = np.zeros((len(records), len(classes)))
    for i, record in enumerate(records.records):
        shares = record.votes if record.votes is not None else [float(k == record.label) for k in range(len(records.classes))]
        for name, share in zip(records.classes, shares, strict=True):
            if name in column:
                targets[i, column[name]] += share
    return class_frequencies(targets, classes)
