"""The network: shapes in every mode and size, the gates' wiring, and config validation."""

from __future__ import annotations

import pytest
import torch

from model_core import FERSNetConfig, create_model, list_variants
from model_core.expressions import one_hot
from model_core.fersnet import FERSNet, count_flops
from model_core.gates import ConvFLU


@pytest.mark.parametrize("sharing", ["none", "hard", "selective"])
@pytest.mark.parametrize("img_size,in_chans,stem_pool,last_pool", [(48, 1, True, False), (96, 1, True, True), (48, 3, False, True)])
def test_shapes_in_every_mode(sharing: str, img_size: int, in_chans: int, stem_pool: bool, last_pool: bool) -> None:
    model = create_model("fersnet_tiny", sharing=sharing, img_size=img_size, in_chans=in_chans,
                         stem_pool=stem_pool, last_stage_pool=last_pool, num_classes=8).eval()
    x = torch.randn(3, in_chans, img_size, img_size)
    target = torch.eye(8)[:3] if model.has_synthesis else None
    out = model(x, target)
    assert out.logits.shape == (3, 8)
    if sharing == "none":
        assert out.synthesis is None
        with pytest.raises(RuntimeError, match="no synthesis branch"):
            model.synthesize(x, torch.eye(8)[:3])
    else:
        assert out.synthesis.shape == x.shape
        assert out.synthesis.abs().max() <= 1.0  # tanh output, same range as the normalised input


def test_registered_variants() -> None:
    assert {"fersnet_paper", "fersnet_small", "fersnet_tiny"} <= set(list_variants())
    paper = FERSNetConfig(variant="fersnet_paper")
    assert (paper.img_size, paper.in_chans, paper.stem_width, paper.widths) == (96, 1, 256, (256, 256, 256, 256))
    assert paper.bottleneck_size == 3  # 96 / 2^5, as in the published model
    with pytest.raises(KeyError, match="unknown variant"):
        create_model("fersnet_huge")


def test_each_stage_and_direction_has_its_own_gate() -> None:
    model = create_model("fersnet_tiny", sharing="selective")
    gates = [m for m in model.modules() if isinstance(m, ConvFLU)]
    n_stages = len(model.config.widths)
    assert len(gates) == 2 * (n_stages - 1)  # both directions after every stage but the last
    weights = [g.w_r.weight for g in gates]
    assert len({w.data_ptr() for w in weights}) == len(gates), "gates must not share parameters"
    for pair, width in zip(model.gates, model.config.widths, strict=False):
        assert pair.into_fer is not pair.into_fes
        assert pair.into_fer.channels == width
    with_last = create_model("fersnet_tiny", sharing="selective", gate_last_stage=True)
    assert len(with_last.gates) == n_stages


def test_hard_sharing_shares_the_first_stages_and_has_no_gates() -> None:
    model = create_model("fersnet_tiny", sharing="hard", hard_shared_stages=2)
    assert len(model.shared_stages) == 2
    assert len(model.fer_stages) == len(model.fes_stages) == len(model.config.widths) - 2
    assert len(model.gates) == 0


def test_single_task_has_no_synthesis_parts() -> None:
    model = create_model("fersnet_tiny", sharing="none")
    names = {n.split(".")[0] for n, _ in model.named_parameters()}
    assert names == {"stem", "fer_stages", "head"}


def test_classify_skips_synthesis_work_but_gives_the_same_logits() -> None:
    model = create_model("fersnet_tiny").eval()
    x = torch.randn(2, 1, 48, 48)
    full = model(x, torch.eye(7)[:2]).logits
    assert torch.allclose(model.classify(x), full, atol=1e-6)


def test_synthesis_depends_on_the_target() -> None:
    model = create_model("fersnet_tiny").eval()
    x = torch.randn(1, 1, 48, 48)
    happy, sad = model.synthesize(x, torch.eye(7)[[3]]), model.synthesize(x, torch.eye(7)[[4]])
    assert not torch.allclose(happy, sad)


@pytest.mark.parametrize("bad", [{"img_size": 50}, {"in_chans": 2}, {"sharing": "soft"}, {"sharing": "hard", "hard_shared_stages": 4}])
def test_invalid_configs_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        FERSNet(FERSNetConfig(**bad))


def test_config_round_trips_through_a_dict() -> None:
    config = create_model("fersnet_small").config
    assert FERSNetConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown"):
        FERSNetConfig.from_dict({**config.to_dict(), "colour": True})


def test_a_masked_decoder_keeps_the_input_where_its_mask_is_closed() -> None:
    model = create_model("fersnet_tiny", synthesis_output="masked").eval()
    x = torch.rand(2, 1, 48, 48) * 2 - 1
    parts = model.decode_parts(model.forward_features(x), torch.eye(7)[:2])
    assert parts.mask is not None and parts.mask.shape == (2, 1, 48, 48)
    assert 0 <= parts.mask.min() and parts.mask.max() <= 1
    with torch.no_grad():
        model.decoder["to_image"].bias[-1] = -40.0  # the mask's logit: closed everywhere
    closed = model.synthesize(x, torch.eye(7)[:2])
    assert torch.allclose(closed, x, atol=1e-6)  # nothing redrawn: the input, exactly
    direct = create_model("fersnet_tiny").eval()
    assert direct.decode_parts(direct.forward_features(x), torch.eye(7)[:2]).mask is None


def test_intensity_scales_the_mask_and_leaves_closed_pixels_alone() -> None:
    """0 gives the input back, 1 is the decoder as trained, above 1 the mask opens further where it was partly open,
    never where it was closed; one intensity per row does what one number does to each row."""
    torch.manual_seed(0)
    model = create_model("fersnet_tiny", synthesis_output="masked").eval()
    x = torch.rand(3, 1, 48, 48) * 2 - 1
    targets = torch.eye(7)[[1, 3, 5]]
    with torch.no_grad():
        features = model.forward_features(x)
        trained = model.decode_parts(features, targets)
        assert torch.equal(model.decode_parts(features, targets, 1.0).face, trained.face)
        assert torch.allclose(model.decode_parts(features, targets, 0.0).face, x, atol=1e-6)
        strong = model.decode_parts(features, targets, 2.0)
        assert trained.mask is not None and strong.mask is not None
        assert torch.allclose(strong.mask, (2 * trained.mask).clamp(max=1))
        assert (strong.face - x).abs().mean() > (trained.face - x).abs().mean()
        per_row = model.decode_parts(features, targets, torch.tensor([0.0, 1.0, 2.0])).face
        assert torch.allclose(per_row[0], x[0], atol=1e-6)
        assert torch.allclose(per_row[1], trained.face[1]) and torch.allclose(per_row[2], strong.face[2])
        with pytest.raises(ValueError, match="0 or more"):
            model.decode_parts(features, targets, -0.5)
        direct = create_model("fersnet_tiny").eval()
        f = direct.forward_features(x)
        full = direct.decode(f, targets)
        assert torch.equal(direct.decode(f, targets, 2.0), full)  # no mask to open further
        assert torch.allclose(direct.decode(f, targets, 0.5), (full + x) / 2, atol=1e-6)


def test_redraw_encodes_each_face_once_and_matches_synthesize() -> None:
    torch.manual_seed(0)
    model = create_model("fersnet_tiny", synthesis_output="masked").eval()
    faces = torch.rand(2, 1, 48, 48) * 2 - 1
    targets = torch.eye(7)[[3, 4, 5, 0]]
    sources = torch.tensor([0, 0, 0, 1])
    with torch.inference_mode():
        redrawn = model.redraw(faces, targets, sources)
        one_by_one = torch.cat([model.synthesize(faces[[s]], targets[[i]]) for i, s in enumerate(sources.tolist())])
    assert torch.allclose(redrawn, one_by_one, atol=1e-5)


def test_one_hot_rows_are_the_identitys_rows() -> None:
    """The synthesis targets every caller builds from class indices: float32 rows of the identity, on the device asked for."""
    assert torch.equal(one_hot([3, 5, 0], 7), torch.eye(7)[[3, 5, 0]])
    assert torch.equal(one_hot(torch.tensor([1, 1]), 3), torch.eye(3)[[1, 1]])
    assert one_hot([2], 4, device="cpu").dtype == torch.float32
    assert one_hot([], 7).shape == (0, 7)


def test_redraw_each_gives_every_face_with_every_target() -> None:
    torch.manual_seed(0)
    model = create_model("fersnet_tiny").eval()
    faces = torch.rand(2, 1, 48, 48) * 2 - 1
    with torch.inference_mode():
        redrawn = model.redraw_each(faces, [3, 5, 0])
        expected = [[model.synthesize(faces[[i]], torch.eye(7)[[t]])[0] for t in (3, 5, 0)] for i in range(2)]
    assert redrawn.shape == (2, 3, 1, 48, 48)
    assert torch.allclose(redrawn, torch.stack([torch.stack(row) for row in expected]), atol=1e-5)


def test_flops_grow_with_the_work() -> None:
    """Selective sharing runs two branches and their gates; synthesis adds the decoder."""
    single, selective = create_model("fersnet_tiny", sharing="none"), create_model("fersnet_tiny")
    assert 0 < count_flops(single) < count_flops(selective) < count_flops(selective, synthesis=True)


def test_an_unknown_synthesis_output_is_refused() -> None:
    with pytest.raises(ValueError, match="synthesis_output"):
        FERSNetConfig(synthesis_output="painted")  # type: ignore[arg-type]


def test_flip_average_recognises_a_face_and_its_mirror_image_as_one() -> None:
    torch.manual_seed(0)
    plain = create_model("fersnet_tiny").eval()
    flipped = create_model("fersnet_tiny", flip_average=True).eval()
    flipped.load_state_dict(plain.state_dict())
    x = torch.rand(3, 1, 48, 48) * 2 - 1
    with torch.inference_mode():
        assert torch.equal(plain.classify(x), plain.recognise(x))
        both = flipped.classify(x)
        expected = (plain.recognise(x) + plain.recognise(x.flip(3))) / 2
        assert torch.allclose(both, expected, atol=1e-5)
        assert torch.allclose(both, flipped.classify(x.flip(3)), atol=1e-5)  # a mirror image gets the same answer
        assert not torch.allclose(plain.classify(x), plain.classify(x.flip(3)), atol=1e-5)
    assert FERSNetConfig.from_dict(flipped.config.to_dict()).flip_average


# --------------------------------------------------------------------------- the answer tail


def _with_and_without_tail(**overrides: object) -> tuple[FERSNet, FERSNet]:
    """The same seeded fersnet_tiny twice, the second with an eight-class answer tail (built last: the rest is equal)."""
    torch.manual_seed(0)
    plain = create_model("fersnet_tiny", **overrides).eval()
    torch.manual_seed(0)
    tailed = create_model("fersnet_tiny", answer_classes=8, **overrides).eval()
    return plain, tailed


@pytest.mark.parametrize("overrides", [{}, {"sharing": "none"}, {"sharing": "hard"}, {"gate_last_stage": True}])
def test_the_answer_tail_answers_in_its_own_classes_and_leaves_the_rest_alone(overrides: dict) -> None:
    """classify and answer use the tail (8 classes); recognise, forward and synthesis are the network without it."""
    plain, tailed = _with_and_without_tail(**overrides)
    assert tailed.has_answer_tail and not plain.has_answer_tail
    shared = plain.state_dict()
    assert {k: v for k, v in tailed.state_dict().items() if not FERSNet.in_answer_tail(k)}.keys() == shared.keys()
    assert all(torch.equal(tailed.state_dict()[k], v) for k, v in shared.items())
    assert {n.split(".")[0] for n in tailed.state_dict()} - {n.split(".")[0] for n in shared} == {"answer_stage", "answer_head"}
    x = torch.rand(3, 1, 48, 48) * 2 - 1
    with torch.inference_mode():
        answered, recognised = tailed.classify(x), tailed.recognise(x)
        assert answered.shape == (3, 8) and recognised.shape == (3, 7)
        assert torch.equal(answered, tailed.answer(x))
        assert torch.equal(tailed.classify(x, head="expression"), recognised)
        assert torch.equal(recognised, plain.recognise(x)) and torch.equal(plain.classify(x), plain.answer(x))
        assert torch.equal(tailed(x).logits, plain(x).logits)
        assert tailed.forward_features(x).answer is None  # only when asked for
        if plain.has_synthesis:
            target = torch.eye(7)[[3, 4, 5]]
            assert torch.equal(tailed.synthesize(x, target), plain.synthesize(x, target))
            assert torch.equal(tailed(x, target).synthesis, plain(x, target).synthesis)
    with pytest.raises(RuntimeError, match="no answer tail"):
        plain.forward_features(x, answer=True)
    with pytest.raises(ValueError, match="head must be one of"):
        tailed.classify(x, head="answer")  # type: ignore[arg-type]


def test_the_served_answer_skips_the_expression_heads_last_stage() -> None:
    """The tail has its own copy of the last FER stage, so serving it never runs the expression head's."""
    _, tailed = _with_and_without_tail()
    x = torch.rand(2, 1, 48, 48) * 2 - 1
    calls: list[str] = []
    tailed.fer_stages[-1].register_forward_hook(lambda *_: calls.append("last FER stage"))
    with torch.inference_mode():
        tail_input = tailed.tail_input(x)
        assert calls == []
        assert torch.equal(tail_input, tailed.forward_features(x, synthesis=False, answer=True).answer)
        assert calls == ["last FER stage"]  # the full pass runs it, as the expression head needs it
        tailed.classify(x)
        assert calls == ["last FER stage"]
        tailed.classify(x, head="expression")
        assert calls == ["last FER stage"] * 2


def test_the_answer_tail_reads_the_input_of_the_last_fer_stage_not_its_output() -> None:
    """Changing the last FER stage changes the expression head's answer and not the tail's; changing the tail's stage
    changes only the tail's."""
    _, tailed = _with_and_without_tail()
    x = torch.rand(2, 1, 48, 48) * 2 - 1
    with torch.inference_mode():
        before_answer, before_recognised = tailed.answer(x), tailed.recognise(x)
        for p in tailed.fer_stages[-1].parameters():
            p.add_(torch.randn_like(p))
        assert torch.equal(tailed.answer(x), before_answer) and not torch.allclose(tailed.recognise(x), before_recognised)
        for p in tailed.answer_stage.parameters():
            p.add_(torch.randn_like(p))
        assert not torch.allclose(tailed.answer(x), before_answer)


def test_flip_average_applies_to_both_heads() -> None:
    _, tailed = _with_and_without_tail(flip_average=True)
    x = torch.rand(2, 1, 48, 48) * 2 - 1
    with torch.inference_mode():
        assert torch.allclose(tailed.classify(x), (tailed.answer(x) + tailed.answer(x.flip(3))) / 2, atol=1e-5)
        expression = tailed.classify(x, head="expression")
        assert torch.allclose(expression, (tailed.recognise(x) + tailed.recognise(x.flip(3))) / 2, atol=1e-5)


def test_the_answer_tail_is_in_the_config_the_class_axes_and_the_flops() -> None:
    plain, tailed = _with_and_without_tail()
    assert FERSNetConfig.from_dict(tailed.config.to_dict()) == tailed.config
    old = {k: v for k, v in plain.config.to_dict().items() if k != "answer_classes"}  # a card written before the tail
    assert FERSNetConfig.from_dict(old) == plain.config and not plain.config.has_answer_tail
    assert (tailed.config.served_classes, plain.config.served_classes) == (8, 7)
    assert tailed.class_axes() == {**plain.class_axes(), "answer_head.fc.weight": 0, "answer_head.fc.bias": 0}
    assert count_flops(tailed) > count_flops(plain)  # classify runs the tail
    with pytest.raises(ValueError, match="answer_classes must be 0"):
        FERSNetConfig(answer_classes=-1)
