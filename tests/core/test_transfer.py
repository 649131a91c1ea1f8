"""Initialising a model from a checkpoint with other classes: matched by name, never by position."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model_core import Preprocess, create_model, load_checkpoint, save_checkpoint
from model_core.checkpoint import build_card
from model_core.expressions import CKPLUS_CLASSES, FER2013_CLASSES, FERPLUS_CLASSES
from model_core.train.teacher_nets import student_of
from model_core.transfer import init_from_checkpoint, with_answer_tail, without_answer_tail

from ..shared_fixtures import MakeCheckpoint


def _class_slice(tensor: torch.Tensor, axis: int, n_classes: int, index: int) -> torch.Tensor:
    rest = tensor.shape[axis] - n_classes
    return tensor.narrow(axis, rest + index, 1)


@pytest.mark.parametrize("source_classes", [FER2013_CLASSES, FERPLUS_CLASSES])
def test_class_tensors_are_copied_by_class_name(make_checkpoint: MakeCheckpoint, source_classes: tuple[str, ...]) -> None:
    """FER2013 (7 classes, neutral) or FER+ (8) into CK+ (7, contempt): the six shared classes carry
    over entry by entry, whatever their position; contempt keeps the fresh model's values unless
    the source knows it; every other tensor is copied whole."""
    folder = make_checkpoint(classes=source_classes)
    torch.manual_seed(1)
    target = create_model("fersnet_tiny", sharing="selective", num_classes=len(CKPLUS_CLASSES))
    fresh = {k: v.clone() for k, v in target.state_dict().items()}

    report = init_from_checkpoint(target, CKPLUS_CLASSES, folder)

    src, dst = load_checkpoint(folder).model.state_dict(), target.state_dict()
    axes = target.class_axes()
    assert {"head.fc.weight", "embedding.net.0.weight", "decoder.blocks.0.fuse.0.0.weight"} <= set(axes)
    for name, axis in axes.items():
        for j, cls in enumerate(CKPLUS_CLASSES):
            got = _class_slice(dst[name], axis, len(CKPLUS_CLASSES), j)
            if cls in source_classes:
                want = _class_slice(src[name], axis, len(source_classes), source_classes.index(cls))
            else:
                want = _class_slice(fresh[name], axis, len(CKPLUS_CLASSES), j)
            assert torch.equal(got, want), (name, cls)
        rest = dst[name].shape[axis] - len(CKPLUS_CLASSES)
        assert torch.equal(dst[name].narrow(axis, 0, rest), src[name].narrow(axis, 0, rest)), name
    for name in set(dst) - set(axes):
        assert torch.equal(dst[name], src[name]), name
    assert report["kept_fresh"] == []
    assert report["classes_copied"] == [c for c in CKPLUS_CLASSES if c in source_classes]
    assert report["classes_fresh"] == ([] if "contempt" in source_classes else ["contempt"])


def test_tensors_the_checkpoint_lacks_are_left_fresh(make_checkpoint: MakeCheckpoint) -> None:
    """A hard-sharing checkpoint into a selective model: the gates it lacks stay fresh and are reported."""
    folder = make_checkpoint(sharing="hard")
    torch.manual_seed(1)
    target = create_model("fersnet_tiny", sharing="selective", num_classes=len(CKPLUS_CLASSES))
    gates_before = {k: v.clone() for k, v in target.state_dict().items() if k.startswith("gates.")}

    report = init_from_checkpoint(target, CKPLUS_CLASSES, folder)

    assert gates_before and all(name in report["kept_fresh"] for name in gates_before)
    for name, value in gates_before.items():
        assert torch.equal(target.state_dict()[name], value)



@pytest.mark.parametrize("sharing", ["selective", "none"])
def test_a_grown_answer_tail_answers_as_the_expression_head_on_the_shared_classes(sharing: str) -> None:
    """FER2013's head grown a FER+ tail: every weight kept, the tail's logits equal the head's class by class (by name,
    whatever the order), and the class the head lacks (contempt) a constant: the lowest bias, weight zero."""
    torch.manual_seed(0)
    model = create_model("fersnet_tiny", sharing=sharing).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):  # trained-looking statistics, so copying them matters
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
        model.head.fc.bias.uniform_(-1, 1)
    answer_classes = ("contempt", *reversed(FER2013_CLASSES))  # another order: matched by name, not position
    grown = with_answer_tail(model, FER2013_CLASSES, answer_classes)
    assert grown.config.answer_classes == 8 and not grown.training
    for name, tensor in model.state_dict().items():
        assert torch.equal(grown.state_dict()[name], tensor), name
    x = torch.rand(4, 1, 48, 48) * 2 - 1
    with torch.inference_mode():
        answered, recognised = grown.answer(x), model.recognise(x)
        assert torch.equal(grown.recognise(x), recognised)
    shared = [answer_classes.index(c) for c in FER2013_CLASSES]
    torch.testing.assert_close(answered[:, shared], recognised, rtol=1e-5, atol=1e-5)
    contempt = answered[:, answer_classes.index("contempt")]
    assert torch.equal(contempt, torch.full_like(contempt, float(model.head.fc.bias.detach().min())))
    assert torch.equal(grown.answer_head.fc.weight[answer_classes.index("contempt")], torch.zeros(model.config.head_width))


def test_with_answer_tail_refuses_classes_that_do_not_fit() -> None:
    model = create_model("fersnet_tiny")
    with pytest.raises(ValueError, match="6 classes but the expression head has num_classes=7"):
        with_answer_tail(model, FER2013_CLASSES[:6], FERPLUS_CLASSES)
    with pytest.raises(ValueError, match="each once"):
        with_answer_tail(model, FER2013_CLASSES, ("happy", "happy"))


def test_without_answer_tail_gives_back_the_one_head_network() -> None:
    """Growing a tail and taking it off again leaves every other tensor and the expression head's answers as they were."""
    torch.manual_seed(0)
    model = create_model("fersnet_tiny").eval()
    bare = without_answer_tail(with_answer_tail(model, FER2013_CLASSES, FERPLUS_CLASSES))
    assert not bare.has_answer_tail and bare.config == model.config and not bare.training
    assert bare.state_dict().keys() == model.state_dict().keys()
    for name, tensor in model.state_dict().items():
        assert torch.equal(bare.state_dict()[name], tensor), name


def test_a_student_of_the_two_head_default_learns_and_saves_the_expression_head(tmp_path: Path) -> None:
    """A distillation student started from a checkpoint with an answer tail trains FER2013's seven classes: the tail
    is dropped, so the student's card (seven classes) matches its network and saves."""
    torch.manual_seed(0)
    source = with_answer_tail(create_model("fersnet_tiny"), FER2013_CLASSES, FERPLUS_CLASSES)
    folder = save_checkpoint(tmp_path / "two-heads", source, build_card(source, FERPLUS_CLASSES, Preprocess(),
                                                                        expressions=FER2013_CLASSES))
    student = student_of(folder)
    assert not student.fersnet.has_answer_tail
    assert student(torch.zeros(2, 1, 48, 48)).shape == (2, len(FER2013_CLASSES))
    card = build_card(student.fersnet, FER2013_CLASSES, Preprocess())
    saved = load_checkpoint(save_checkpoint(tmp_path / "student", student.fersnet, card))
    assert saved.classes == FER2013_CLASSES


def test_a_two_head_checkpoint_transfers_each_head_by_its_own_classes(tmp_path: Path) -> None:
    """The source's expression head (and synthesis) by its expressions, its tail by its served classes; a target that
    names no answer classes keeps its tail's class tensors fresh and says so."""
    torch.manual_seed(0)
    source = with_answer_tail(create_model("fersnet_tiny"), FER2013_CLASSES, FERPLUS_CLASSES)
    card = build_card(source, FERPLUS_CLASSES, Preprocess(), expressions=FER2013_CLASSES)
    folder = save_checkpoint(tmp_path / "two-heads", source, card)

    torch.manual_seed(1)
    target = create_model("fersnet_tiny", num_classes=len(CKPLUS_CLASSES), answer_classes=len(CKPLUS_CLASSES))
    report = init_from_checkpoint(target, CKPLUS_CLASSES, folder, answer_classes=CKPLUS_CLASSES)
    src, dst = source.state_dict(), target.state_dict()
    angry, contempt = CKPLUS_CLASSES.index("angry"), CKPLUS_CLASSES.index("contempt")
    assert torch.equal(dst["head.fc.weight"][angry], src["head.fc.weight"][FER2013_CLASSES.index("angry")])
    assert torch.equal(dst["answer_head.fc.weight"][contempt], src["answer_head.fc.weight"][FERPLUS_CLASSES.index("contempt")])
    assert torch.equal(dst["answer_stage.0.0.weight"], src["answer_stage.0.0.weight"])
    assert report["kept_fresh"] == [] and report["classes_fresh"] == ["contempt"]

    fresh = create_model("fersnet_tiny", answer_classes=len(CKPLUS_CLASSES))
    report = init_from_checkpoint(fresh, FER2013_CLASSES, folder)
    assert report["kept_fresh"] == ["answer_head.fc.bias", "answer_head.fc.weight"]


def test_fresh_submodules_keep_their_initialisation(make_checkpoint: MakeCheckpoint) -> None:
    """A new generator on a trained recogniser: the decoder and embedding start fresh, everything else is copied."""
    folder = make_checkpoint(synthesis_output="masked")
    torch.manual_seed(1)
    target = create_model("fersnet_tiny", synthesis_output="masked")
    before = {k: v.clone() for k, v in target.state_dict().items()}
    report = init_from_checkpoint(target, FER2013_CLASSES, folder, fresh=("embedding", "decoder"))
    src, dst = load_checkpoint(folder).model.state_dict(), target.state_dict()
    generator = [k for k in dst if k.split(".")[0] in ("embedding", "decoder")]
    assert generator and report["kept_fresh"] == sorted(generator)
    assert all(torch.equal(dst[k], before[k]) for k in generator)
    assert all(torch.equal(dst[k], src[k]) for k in dst if k not in generator)
