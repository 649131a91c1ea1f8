"""bench.head_mix: weight 0 is the served answer exactly, weight 1 the expression head's, on a set with contempt."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.head_mix import both_heads
from model_core import load_checkpoint
from model_core.data import load_records
from model_core.evaluate import evaluate_records
from model_core.expressions import FERPLUS_CLASSES

from ..shared_fixtures import MakeCheckpoint


def test_the_ends_of_the_mix_are_each_heads_own_answer(ckplus_root: Path, make_checkpoint: MakeCheckpoint) -> None:
    """CK+'s contempt is a served class and not an expression-head one: labels index the served classes, and the
    expression head's probabilities sit in the served columns of its seven classes, contempt at zero."""
    loaded = load_checkpoint(make_checkpoint(answer=FERPLUS_CLASSES))
    loaded.model.eval()
    served, spread, labels = both_heads(loaded, "ckplus", str(ckplus_root), "all")
    records = load_records("ckplus", ckplus_root, "all")
    as_served = evaluate_records(loaded.model, loaded.classes, loaded.preprocess, records, answer=loaded.probabilities)
    assert np.isclose((served.argmax(1) == labels).mean(), as_served.accuracy)
    assert np.allclose(served.sum(1), 1, atol=1e-4) and np.allclose(spread.sum(1), 1, atol=1e-4)
    contempt = list(loaded.classes).index("contempt")
    assert (spread[:, contempt] == 0).all() and (labels == contempt).sum() == 6  # 2 of the fixture's 12 subjects, 3 frames each
    as_expression = evaluate_records(loaded.model, loaded.classes_of("expression"), loaded.preprocess, records, head="expression")
    assert np.isclose((spread.argmax(1) == labels).mean(), as_expression.accuracy)
