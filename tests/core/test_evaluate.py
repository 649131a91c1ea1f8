"""What `fersnet evaluate` scores on a set that lacks some of the model's classes: the plain argmax over all the
model's classes is the headline (an answer the set never uses is wrong), the best of the set's classes is reported
beside it as ``accuracy_restricted``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from model_core import Preprocess, create_model, load_checkpoint
from model_core.calibration import dataset_logits, heads_logits
from model_core.data import load_records
from model_core.evaluate import compute_metrics, correct_per_image, evaluate_dataset, evaluate_records, evaluation_set
from model_core.expressions import CKPLUS_CLASSES, FER2013_CLASSES, FERPLUS_CLASSES

from ..shared_fixtures import MakeCheckpoint


def test_a_neutral_answer_on_a_set_without_neutral_is_wrong_in_the_headline_and_ignored_in_the_restricted_figure(
    ckplus_root: Path,
) -> None:
    """CK+-like: no neutral, and contempt, which a FER2013 model lacks. Half the faces get neutral as the top
    answer and their true class second: wrong in the headline, right in the restricted figure."""
    model = create_model("fersnet_tiny", num_classes=7)
    records = load_records("ckplus", ckplus_root, "all")
    faces = evaluation_set(records, Preprocess(), FER2013_CLASSES)
    # indices into the model's classes, as dataset_logits gives them (contempt dropped: unsupported)
    labels = torch.tensor([FER2013_CLASSES.index(faces.classes[i]) for i in faces.labels])
    logits = torch.zeros(len(labels), 7)
    logits[torch.arange(len(labels)), labels] = 5.0
    neutral_first = torch.arange(len(labels)) % 2 == 0
    logits[neutral_first, FER2013_CLASSES.index("neutral")] = 9.0
    metrics = evaluate_dataset(model, FER2013_CLASSES, faces, logits=(logits, labels))

    n, contempt, supported = len(records), 6, len(labels)
    assert metrics.n == n and metrics.unsupported == contempt == n - supported
    assert metrics.accuracy == pytest.approx(int((~neutral_first).sum()) / n)
    assert metrics.accuracy_restricted == pytest.approx(supported / n)  # every supported face right, contempt still wrong
    assert metrics.extra_classes == ["neutral"] and metrics.predicted_classes == [*CKPLUS_CLASSES, "neutral"]
    assert metrics.outside == int(neutral_first.sum())
    assert [row[-1] for row in metrics.confusion][:6] == [
        int((neutral_first & (labels == FER2013_CLASSES.index(c))).sum()) for c in CKPLUS_CLASSES[:6]
    ]
    assert metrics.confusion[CKPLUS_CLASSES.index("contempt")] == [0] * 8  # never decoded: counted, always wrong

    summary = metrics.summary()
    assert summary["accuracy"] < summary["accuracy_restricted"] and summary["restricted_excludes"] == ["neutral"]
    table = metrics.table()
    assert f"accuracy: {100 * metrics.accuracy:.2f} %" in table
    assert f"accuracy restricted to the set's classes (neutral never an answer): {100 * metrics.accuracy_restricted:.2f} %" in table
    assert f"answers of a class the set never uses (neutral): {metrics.outside}, counted wrong" in table


def test_a_set_with_every_class_of_the_model_scores_the_same_both_ways(fer2013_folder: Path, make_checkpoint: MakeCheckpoint) -> None:
    """FER2013 for a FER2013 model, and FER2013 for a FER+ model whose contempt answers now count wrong."""
    records = load_records("fer2013", fer2013_folder, "test")
    seven = load_checkpoint(make_checkpoint("seven"))
    metrics = evaluate_records(seven.model, seven.classes, seven.preprocess, records)
    assert metrics.extra_classes == [] and metrics.accuracy_restricted == metrics.accuracy
    assert "accuracy_restricted" not in metrics.summary() and "restricted" not in metrics.table()
    assert np.array(metrics.confusion).shape == (7, 7)

    eight = load_checkpoint(make_checkpoint("eight", classes=FERPLUS_CLASSES))
    metrics = evaluate_records(eight.model, eight.classes, eight.preprocess, records)
    assert metrics.extra_classes == ["contempt"] and np.array(metrics.confusion).shape == (7, 8)
    assert metrics.accuracy <= metrics.accuracy_restricted
    correct = correct_per_image(eight, records)
    assert correct.mean() == pytest.approx(metrics.accuracy)
    assert correct_per_image(eight, records, restricted=True).mean() == pytest.approx(metrics.accuracy_restricted)


def test_compute_metrics_puts_the_models_other_classes_in_columns_of_their_own() -> None:
    # classes a, b; the model also knows x. True: a a b b; answers: a x b a; restricted (x masked): a a b a.
    m = compute_metrics(np.array([0, 0, 1, 1]), np.array([0, 2, 1, 0]), ["a", "b"], unsupported=1, extra_classes=["x"],
                        y_pred_restricted=np.array([0, 0, 1, 0]))
    assert m.confusion == [[1, 0, 1], [1, 1, 0]] and m.predicted_classes == ["a", "b", "x"] and m.outside == 1
    assert m.n == 5 and m.accuracy == pytest.approx(2 / 5) and m.accuracy_restricted == pytest.approx(3 / 5)
    assert m.per_class_recall == {"a": 0.5, "b": 0.5}
    # precision of a: 1 of the 2 a answers; of b: 1 of 1. The x answer lowers a's recall, not its precision.
    assert m.per_class_precision == {"a": 0.5, "b": 1.0}
    assert m.per_class_f1["a"] == pytest.approx(0.5) and m.per_class_f1["b"] == pytest.approx(2 / 3)
    assert m.macro_f1 == pytest.approx((0.5 + 2 / 3) / 2)


def test_a_ck_plus_fold_scores_a_ck_plus_model_the_same_both_ways(ckplus_root: Path, make_checkpoint: MakeCheckpoint) -> None:
    """`training.ckplus_cv` trains on CK+'s own seven classes and tests on a fold: every fold declares all seven
    (even one without a contempt subject), so the model has no class the set lacks and nothing changes."""
    loaded = load_checkpoint(make_checkpoint("ck", classes=CKPLUS_CLASSES))
    for fold in range(3):
        records = load_records("ckplus", ckplus_root, f"fold{fold}/test", folds=3)
        assert records.classes == CKPLUS_CLASSES
        metrics = evaluate_records(loaded.model, loaded.classes, loaded.preprocess, records)
        assert metrics.extra_classes == [] and metrics.accuracy_restricted == metrics.accuracy and metrics.unsupported == 0


def test_a_two_head_model_is_measured_on_the_served_head_unless_told_otherwise(
    fer2013_folder: Path, make_checkpoint: MakeCheckpoint
) -> None:
    """FER2013's seven expressions, FER+'s eight answers: served, contempt is a class the set never uses; the
    expression head answers in the set's own seven. Each head's logits come from that head."""
    loaded = load_checkpoint(make_checkpoint(answer=FERPLUS_CLASSES))
    records = load_records("fer2013", fer2013_folder, "test")
    served = evaluate_records(loaded.model, loaded.classes, loaded.preprocess, records)
    expression = evaluate_records(loaded.model, loaded.classes_of("expression"), loaded.preprocess, records, head="expression")
    assert served.extra_classes == ["contempt"] and len(served.confusion[0]) == 8
    assert expression.extra_classes == [] and len(expression.confusion[0]) == 7 and expression.n == served.n

    faces = evaluation_set(records, loaded.preprocess, loaded.expressions)
    logits, labels = dataset_logits(loaded.model, loaded.expressions, faces, head="expression")
    images = torch.stack([faces[i][0] for i in range(len(faces))])
    with torch.inference_mode():
        assert torch.allclose(logits, loaded.model.recognise(images), atol=1e-5)
        assert torch.allclose(dataset_logits(loaded.model, loaded.classes, faces)[0], loaded.model.answer(images), atol=1e-5)
    assert evaluate_dataset(loaded.model, loaded.expressions, faces, logits=(logits, labels)) == expression


def test_both_heads_logits_from_one_pass_are_each_heads_own(fer2013_folder: Path, ferplus_root: Path) -> None:
    """heads_logits gives what dataset_logits gives for each head, labels as indices into that head's classes, and
    refuses a head that lacks a class of the set (FER2013's expression head has no contempt)."""
    torch.manual_seed(0)
    model = create_model("fersnet_tiny", answer_classes=8).eval()
    served = [*FER2013_CLASSES[::-1], "contempt"]  # FER+'s eight, in an order unlike the expression head's
    faces = evaluation_set(load_records("fer2013", fer2013_folder, "test"), Preprocess(), served)
    both = heads_logits(model, {"served": served, "expression": FER2013_CLASSES}, faces)
    for head, classes in (("served", served), ("expression", FER2013_CLASSES)):
        logits, labels = dataset_logits(model, classes, faces, head=head)
        assert torch.allclose(both[head][0], logits, atol=1e-5) and torch.equal(both[head][1], labels)
        assert [classes[i] for i in labels] == [faces.classes[i] for i in faces.labels]
    with pytest.raises(ValueError, match="expression head has no class contempt"):
        heads_logits(model, {"served": FERPLUS_CLASSES, "expression": FER2013_CLASSES},
                     evaluation_set(load_records("ferplus", ferplus_root, "test"), Preprocess(), FERPLUS_CLASSES))
