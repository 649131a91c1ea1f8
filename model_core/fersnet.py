"""FERSNet: one network that recognises (FER) and synthesises (FES) facial expressions.

Zhao, Liu, Xiao, Lun and Lam, "Deep multi-task learning for facial expression
recognition and synthesis based on selective feature sharing", ICPR 2020.

The layout follows the paper and its authors' model definition::

    image -> stem (2 x conv3x3, max-pool)
          -> FER branch: 4 stages (2 x conv3x3-BN-ReLU, max-pool) -> head -> logits
          -> FES branch: 4 stages (same shape)  -> + target-expression embedding
                                                -> transposed-conv decoder -> face

and, after each stage, a ConvFLU in each direction lets a branch take the
useful features of the other (see :mod:`model_core.gates`). Three sharing
modes reproduce the paper's ablation:

``none``
    single-task FER; there is no FES branch and no decoder.
``hard``
    the first ``hard_shared_stages`` stages are one trunk that both tasks use
    (classic hard parameter sharing); the rest are separate, with no gates.
``selective``
    separate branches joined by ConvFLU gates (the paper's method).

The file reads top to bottom: building blocks, the configuration, the model
(``forward_features`` / ``forward_head`` / ``decode``), then one small
registered constructor per variant.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor, nn

from .expressions import one_hot
from .gates import GatePair
from .views import Views

SharingMode = Literal["none", "hard", "selective"]
SHARING_MODES: tuple[SharingMode, ...] = ("none", "hard", "selective")
SynthesisOutput = Literal["direct", "masked"]
SYNTHESIS_OUTPUTS: tuple[SynthesisOutput, ...] = ("direct", "masked")
Head = Literal["served", "expression"]
"""Which head ``classify`` answers with: ``served``, the one a user gets (the answer tail where there is one, else
the expression head), or ``expression``, the expression head that training fits and the synthesis targets name."""
HEADS: tuple[Head, ...] = ("served", "expression")

#: How strongly a redrawn face shows its target (:meth:`FERSNet.decode_parts`): one number for every face,
#: or a tensor of one per face.
Intensity = float | Tensor

#: The modules of the answer tail (:attr:`FERSNetConfig.answer_classes`): the state-dict prefixes of its tensors.
ANSWER_TAIL: tuple[str, ...] = ("answer_stage", "answer_head")


# --------------------------------------------------------------------------- blocks


class ConvBNAct(nn.Sequential):
    """conv3x3 (no bias) -> BatchNorm -> ReLU, the unit every VGG-style stage repeats."""

    def __init__(self, in_chans: int, out_chans: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_chans, out_chans, kernel_size, padding=padding, bias=False),
            nn.BatchNorm2d(out_chans),
            nn.ReLU(inplace=True),
        )


class Stage(nn.Sequential):
    """Two ConvBNAct units then a 2x2 max-pool: one stage of a branch."""

    def __init__(self, in_chans: int, out_chans: int, pool: bool = True) -> None:
        layers: list[nn.Module] = [ConvBNAct(in_chans, out_chans), ConvBNAct(out_chans, out_chans)]
        if pool:
            layers.append(nn.MaxPool2d(2))
        super().__init__(*layers)


class ExpressionHead(nn.Module):
    """FER head: conv-BN-ReLU over the whole bottleneck map, then a linear layer to logits.

    As in the published model the convolution's kernel covers the entire
    bottleneck (3x3 for the paper's 96x96 input), so it acts as a fully
    connected layer that still knows where on the face a feature was.
    """

    def __init__(self, in_chans: int, width: int, spatial: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.pool = ConvBNAct(in_chans, width, kernel_size=spatial, padding=0)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, features: Tensor) -> Tensor:
        pooled = self.pool(features).flatten(1)
        return self.fc(self.dropout(pooled))


class ExpressionEmbedding(nn.Module):
    """Turns a target-expression vector into a feature map the size of the bottleneck.

    The vector may be one-hot or any distribution over the classes, which lets a
    caller blend expressions (half happy, half surprised).
    """

    def __init__(self, num_classes: int, channels: int, spatial: int, hidden: int = 128) -> None:
        super().__init__()
        self.channels, self.spatial = channels, spatial
        self.net = nn.Sequential(
            nn.Linear(num_classes, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, channels * spatial * spatial),
            nn.ReLU(inplace=True),
        )

    def forward(self, target: Tensor) -> Tensor:
        return self.net(target).view(-1, self.channels, self.spatial, self.spatial)


class UpBlock(nn.Module):
    """One decoder level: transposed conv x2, then conv-BN-ReLU over [upsampled, skip, target map].

    The target expression is broadcast to every level, not only the
    bottleneck, so fine-scale detail (teeth, wrinkles) also knows what to draw.
    """

    def __init__(self, in_chans: int, skip_chans: int, num_classes: int, out_chans: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_chans, out_chans, kernel_size=2, stride=2)
        self.fuse = nn.Sequential(
            ConvBNAct(out_chans + skip_chans + num_classes, out_chans),
            ConvBNAct(out_chans, out_chans),
        )

    def forward(self, x: Tensor, skip: Tensor | None, target: Tensor) -> Tensor:
        x = self.up(x)
        target_map = target[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
        parts = [x, target_map] if skip is None else [x, skip, target_map]
        return self.fuse(torch.cat(parts, dim=1))


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class FERSNetConfig:
    """Everything needed to rebuild a FERSNet; stored verbatim in every checkpoint."""

    variant: str = "custom"
    img_size: int = 96
    in_chans: int = 1
    num_classes: int = 7
    stem_width: int = 256
    widths: tuple[int, ...] = (256, 256, 256, 256)
    stem_pool: bool = True
    last_stage_pool: bool = True
    sharing: SharingMode = "selective"
    hard_shared_stages: int = 2
    gate_last_stage: bool = False
    head_width: int = 512
    head_dropout: float = 0.3
    embed_channels: int = 64
    decoder_skips: bool = True
    synthesis_output: SynthesisOutput = "direct"
    """``direct``: the decoder paints the whole face (the paper). ``masked``: it paints a change and a soft
    mask, and the face is ``mask * change + (1 - mask) * input`` (GANimation), so pixels the expression
    does not touch stay exactly as they were."""
    flip_average: bool = False
    """Recognition averages the logits of each face and its mirror image (test-time augmentation). Faces
    are nearly symmetric, so the mirror is a second, slightly different look at the same expression: the
    default gains 0.3 points on FER2013's validation split for twice the recognition FLOPs."""
    test_time_zooms: tuple[float, ...] = ()
    """Recognition also looks at each face zoomed by these factors about its centre (above 1 enlarges), and averages
    the logits of every look (with ``flip_average``, of each look's mirror image too; :mod:`model_core.views`). Each
    zoom adds as many passes as the face alone takes; the default's one zoom, 1.05, doubles its recognition FLOPs
    and gains it 0.8 to 0.9 points on both validation splits (``python -m bench.looks``)."""
    answer_classes: int = 0
    """Classes of the *answer tail* (0: none). Datasets label the same faces differently (FER2013's seven classes,
    FER+'s eight votes with contempt), and one network may answer both: the expression head keeps ``num_classes``
    (what training, the synthesis targets and the generator's judge use, comparable with the literature) while a
    second head, fed by its own copy of the last FER stage from that stage's input, answers users in its own
    classes. The tail reads the trunk and changes nothing in it, so it can be fitted on a frozen network."""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(self.widths))
        object.__setattr__(self, "test_time_zooms", tuple(float(z) for z in self.test_time_zooms))
        if self.sharing not in SHARING_MODES:
            raise ValueError(f"sharing must be one of {SHARING_MODES}, not {self.sharing!r}")
        if self.synthesis_output not in SYNTHESIS_OUTPUTS:
            raise ValueError(f"synthesis_output must be one of {SYNTHESIS_OUTPUTS}, not {self.synthesis_output!r}")
        if self.in_chans not in (1, 3):
            raise ValueError(f"in_chans must be 1 (grey) or 3 (colour), not {self.in_chans}")
        if self.img_size % self.downsample:
            raise ValueError(
                f"img_size {self.img_size} must be divisible by {self.downsample} "
                f"(one 2x pool per stage, stem_pool={self.stem_pool}, last_stage_pool={self.last_stage_pool})"
            )
        if self.sharing == "hard" and not 0 < self.hard_shared_stages < len(self.widths):
            raise ValueError(f"hard_shared_stages must be in 1..{len(self.widths) - 1}")
        if self.answer_classes < 0:
            raise ValueError(f"answer_classes must be 0 (no answer tail) or a number of classes, not {self.answer_classes}")
        if any(not 0.5 <= z <= 2 or z == 1 for z in self.test_time_zooms):
            raise ValueError(f"test_time_zooms must lie in [0.5, 2] and differ from 1 (the face itself is always looked "
                             f"at), not {list(self.test_time_zooms)}")

    @property
    def downsample(self) -> int:
        """Total stride of the encoder: one 2x pool per stage, one more if the stem pools."""
        return 2 ** (len(self.widths) - 1 + int(self.last_stage_pool) + int(self.stem_pool))

    @property
    def bottleneck_size(self) -> int:
        return self.img_size // self.downsample

    @property
    def has_synthesis(self) -> bool:
        return self.sharing != "none"

    @property
    def has_answer_tail(self) -> bool:
        return self.answer_classes > 0

    @property
    def served_classes(self) -> int:
        """How many classes ``classify`` answers: the answer tail's where there is one, else the expression head's."""
        return self.answer_classes or self.num_classes

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FERSNetConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown FERSNet config keys: {sorted(unknown)}")
        return cls(**data)


# --------------------------------------------------------------------------- the model


class Features(NamedTuple):
    """What the encoder hands to the two heads.

    ``fer`` feeds the classifier; ``fes`` is the synthesis bottleneck (None in
    ``none`` mode or when only classification was asked for); ``skips`` are the
    FES-side feature maps at each resolution, finest first, for the decoder;
    ``images`` is the input itself, which a masked decoder keeps where it draws nothing; ``answer`` the
    features entering the last FER stage, which the answer tail reads, when they were asked for
    (``forward_features(..., answer=True)``).
    """

    fer: Tensor
    fes: Tensor | None
    skips: tuple[Tensor, ...]
    images: Tensor | None = None
    answer: Tensor | None = None


class Synthesis(NamedTuple):
    """A redrawn face in [-1, 1] and, for a masked decoder, where it was redrawn (B x 1 x H x W in [0, 1])."""

    face: Tensor
    mask: Tensor | None


class FERSNetOutput(NamedTuple):
    logits: Tensor
    synthesis: Tensor | None


class FERSNet(nn.Module):
    """The multi-task network. Images are normalised to [-1, 1]; so are synthesised faces."""

    def __init__(self, config: FERSNetConfig) -> None:
        super().__init__()
        self.config = cfg = config
        n_stages = len(cfg.widths)
        n_shared = cfg.hard_shared_stages if cfg.sharing == "hard" else 0
        in_widths = (cfg.stem_width, *cfg.widths[:-1])

        self.stem = nn.Sequential(
            ConvBNAct(cfg.in_chans, cfg.stem_width),
            ConvBNAct(cfg.stem_width, cfg.stem_width),
            nn.MaxPool2d(2) if cfg.stem_pool else nn.Identity(),
        )
        def stage(i: int) -> Stage:
            return Stage(in_widths[i], cfg.widths[i], pool=cfg.last_stage_pool or i < n_stages - 1)

        self.shared_stages = nn.ModuleList(stage(i) for i in range(n_shared))
        self.fer_stages = nn.ModuleList(stage(i) for i in range(n_shared, n_stages))
        self.head = ExpressionHead(cfg.widths[-1], cfg.head_width, cfg.bottleneck_size, cfg.num_classes, cfg.head_dropout)

        self.fes_stages = nn.ModuleList()
        self.gates = nn.ModuleList()
        if cfg.has_synthesis:
            self.fes_stages.extend(stage(i) for i in range(n_shared, n_stages))
            if cfg.sharing == "selective":
                n_gated = n_stages if cfg.gate_last_stage else n_stages - 1
                self.gates.extend(GatePair(cfg.widths[i]) for i in range(n_gated))
            self.embedding = ExpressionEmbedding(cfg.num_classes, cfg.embed_channels, cfg.bottleneck_size)
            self.decoder = self._build_decoder()
        self._init_weights(self)
        if cfg.has_answer_tail:  # built once the rest is initialised: a seed gives every other weight what it gives without a tail
            self.answer_stage = stage(n_stages - 1)
            self.answer_head = ExpressionHead(cfg.widths[-1], cfg.head_width, cfg.bottleneck_size, cfg.answer_classes,
                                              cfg.head_dropout)
            self._init_weights(self.answer_stage, self.answer_head)
        self.views = Views(cfg.img_size, cfg.test_time_zooms, mirror=cfg.flip_average)

    def _pooled_levels(self) -> list[int]:
        """Indices k of the encoder modules that halve the resolution.

        The encoder's FES-side feature maps are F[0] = stem output and
        F[i + 1] = output of stage i. Module k (0 = stem, i + 1 = stage i)
        turns F[k - 1] (the image, for the stem) into F[k]; the decoder undoes
        exactly the modules that pooled, deepest first.
        """
        cfg = self.config
        n = len(cfg.widths)
        stages = [i + 1 for i in range(n) if cfg.last_stage_pool or i < n - 1]
        return ([0] if cfg.stem_pool else []) + stages

    def _level_channels(self, k: int) -> int:
        return self.config.stem_width if k == 0 else self.config.widths[k - 1]

    def _build_decoder(self) -> nn.ModuleDict:
        """Mirror the encoder: one UpBlock per max-pool, from the bottleneck back to full size."""
        cfg = self.config
        blocks = nn.ModuleList()
        in_chans = cfg.widths[-1] + cfg.embed_channels
        for k in reversed(self._pooled_levels()):
            # Back at full resolution (k == 0) half the stem's width suffices to paint
            # grey pixels, and that level is by far the decoder's costliest.
            out_chans = self._level_channels(k - 1) if k > 0 else max(cfg.stem_width // 2, 8)
            skip_chans = self._level_channels(k - 1) if cfg.decoder_skips and k > 0 else 0
            blocks.append(UpBlock(in_chans, skip_chans, cfg.num_classes, out_chans))
            in_chans = out_chans
        # A masked decoder paints one more channel: the mask's logit.
        out_chans = cfg.in_chans + int(cfg.synthesis_output == "masked")
        to_image = nn.Conv2d(in_chans, out_chans, kernel_size=3, padding=1)
        return nn.ModuleDict({"blocks": blocks, "to_image": to_image})

    def _decoder_blocks(self) -> nn.ModuleList:
        """The decoder's UpBlocks, deepest first (a ModuleDict's entries are typed as bare Modules)."""
        blocks = self.decoder["blocks"]
        assert isinstance(blocks, nn.ModuleList), "_build_decoder stores the blocks as a ModuleList"
        return blocks

    @staticmethod
    def _init_weights(*roots: nn.Module) -> None:
        for m in (m for root in roots for m in root.modules()):
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def has_synthesis(self) -> bool:
        return self.config.has_synthesis

    @property
    def has_answer_tail(self) -> bool:
        return self.config.has_answer_tail

    # ------------------------------------------------------------------ forward passes

    def forward_features(self, images: Tensor, synthesis: bool = True, answer: bool = False) -> Features:
        """Run the stem and both branches, exchanging features through the gates.

        With ``synthesis=False`` the FES branch stops as soon as the FER branch
        no longer needs it (the last stage is ungated by default), which saves
        a stage's compute when only classifying. With ``answer`` (a network with
        an answer tail only) ``Features.answer`` holds the gated FER features
        entering the last FER stage: the tail's input (:meth:`answer_from`).
        """
        fer, fes, skips, tail_input = self._branches(images, synthesis, answer, last_fer_stage=True)
        assert fer is not None  # the last FER stage ran
        return Features(fer=fer, fes=fes if synthesis else None, skips=skips, images=images, answer=tail_input)

    def _branches(self, images: Tensor, synthesis: bool, answer: bool,
                  last_fer_stage: bool) -> tuple[Tensor | None, Tensor | None, tuple[Tensor, ...], Tensor | None]:
        """The encoder's loop: (FER output, FES output, skips, tail input). Without ``last_fer_stage`` (only when
        neither synthesis nor the expression head needs it, i.e. :meth:`tail_input`) the loop stops where the tail's
        input is taken, and the FER output is None: the tail has its own copy of that stage."""
        if answer and not self.has_answer_tail:
            raise RuntimeError("this model has no answer tail (answer_classes=0)")
        x = self.stem(images)
        skips: list[Tensor] = [x]
        for stage in self.shared_stages:
            x = stage(x)
            skips.append(x)

        fer: Tensor | None = x
        fes = x if self.has_synthesis else None
        tail_input = None
        for i, fer_stage in enumerate(self.fer_stages):
            if answer and i == len(self.fer_stages) - 1:
                tail_input = fer
                if not last_fer_stage and not synthesis:
                    return None, None, tuple(skips), tail_input
            gate_index = len(self.shared_stages) + i
            gated = gate_index < len(self.gates)
            fer_out = fer_stage(fer)
            fes_out = self.fes_stages[i](fes) if fes is not None and (synthesis or gated) else None
            if gated and fes_out is not None:
                into_fer, into_fes = self.gates[gate_index](fer_out, fes_out)
                fer_out, fes_out = into_fer.features, into_fes.features
            fer, fes = fer_out, fes_out
            if fes is not None:
                skips.append(fes)
        if fes is not None:
            skips.pop()  # the last map is the bottleneck itself, not a skip
        return fer, fes, tuple(skips), tail_input

    def forward_head(self, fer_features: Tensor) -> Tensor:
        return self.head(fer_features)

    def decode(self, features: Features, target: Tensor, intensity: Intensity = 1.0) -> Tensor:
        """Draw the face of ``features`` with the ``target`` expression (B x num_classes), at ``intensity``."""
        return self.decode_parts(features, target, intensity).face

    def decode_parts(self, features: Features, target: Tensor, intensity: Intensity = 1.0) -> Synthesis:
        """The redrawn face and, for a masked decoder, its mask (the losses keep the mask small and smooth).

        ``intensity`` scales the mask that blends the decoder's change into the input face, clipped to [0, 1]:
        below 1 the expression is applied partly (0 returns the input), above 1 the pixels the decoder
        changed only in part are changed more, while the untouched ones (mask 0) stay untouched. The paper's
        direct decoder has no mask (as if it were 1 everywhere): below 1 its face is blended with the input,
        above 1 nothing more changes. Training always decodes at 1.
        """
        if not self.has_synthesis or features.fes is None:
            raise RuntimeError("this model has no synthesis branch (sharing='none'), or features lack it")
        target = target.to(features.fes.dtype)
        if isinstance(intensity, Tensor):  # one per row of ``target``: as a factor of each row's (B x 1 x H x W) mask
            if bool((intensity < 0).any()):
                raise ValueError("intensity must be 0 or more")
            intensity = intensity.to(features.fes.dtype).view(-1, 1, 1, 1)
        elif intensity < 0:
            raise ValueError(f"intensity must be 0 or more, not {intensity}")
        x = torch.cat((features.fes, self.embedding(target)), dim=1)
        levels = reversed(self._pooled_levels())
        for k, block in zip(levels, self._decoder_blocks(), strict=True):
            skip = features.skips[k - 1] if self.config.decoder_skips and k > 0 else None
            x = block(x, skip, target)
        out = self.decoder["to_image"](x)
        if self.config.synthesis_output == "direct":
            face = torch.tanh(out)
            if isinstance(intensity, float | int) and intensity >= 1:
                return Synthesis(face, None)
            if features.images is None:
                raise RuntimeError("an intensity below 1 needs the input images (Features.images)")
            weight = torch.as_tensor(intensity, dtype=face.dtype, device=face.device).clamp(max=1)
            return Synthesis(weight * face + (1 - weight) * features.images.to(face.dtype), None)
        if features.images is None:
            raise RuntimeError("a masked decoder needs the input images (Features.images)")
        change, mask = torch.tanh(out[:, :-1]), torch.sigmoid(out[:, -1:])
        if isinstance(intensity, Tensor) or intensity != 1:
            mask = (mask * intensity).clamp(max=1)
        return Synthesis(mask * change + (1 - mask) * features.images.to(change.dtype), mask)

    def classify(self, images: Tensor, head: Head = "served") -> Tensor:
        """What a user is answered: logits of the ``served`` head (:meth:`answer`: the answer tail where there is one,
        else the expression head), or with ``head="expression"`` the expression head's (:meth:`recognise`), skipping the
        synthesis-only work; averaged over the face's looks (:attr:`views`: its mirror image if ``flip_average``, its
        zoomed copies if ``test_time_zooms``), all in one batch: one pass of each layer."""
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, not {head!r}")
        logits_of = self.answer if head == "served" else self.recognise
        return self.views.average(logits_of(self.views.expand(images)))

    def classify_heads(self, images: Tensor) -> dict[Head, Tensor]:
        """:meth:`classify`'s logits of every head, from one pass of the trunk: what measuring both heads on a split
        costs (the expression head's last stage and the answer tail both read the features below it, computed once).
        A network without an answer tail serves its expression head, so both entries are the same logits."""
        if not self.has_answer_tail:
            logits = self.classify(images, "expression")
            return {"served": logits, "expression": logits}
        features = self.forward_features(self.views.expand(images), synthesis=False, answer=True)
        assert features.answer is not None  # asked for
        return {"served": self.views.average(self.answer_from(features.answer)),
                "expression": self.views.average(self.forward_head(features.fer))}

    def recognise(self, images: Tensor) -> Tensor:
        """Expression logits of the images as they are: what training fits, the generator's judge reads, and
        ``classify(..., head="expression")`` builds on. Never runs the answer tail."""
        return self.forward_head(self.forward_features(images, synthesis=False).fer)

    def answer(self, images: Tensor) -> Tensor:
        """The answer tail's logits of the images as they are (the expression head's where there is no tail): what
        ``classify`` builds on by default."""
        if not self.has_answer_tail:
            return self.recognise(images)
        return self.answer_from(self.tail_input(images))

    def tail_input(self, images: Tensor) -> Tensor:
        """What the answer tail reads (``Features.answer``): the gated FER features entering the last FER stage. The
        expression head's own last stage is not run: the served answer does not pay for a head it does not read."""
        tail_input = self._branches(images, synthesis=False, answer=True, last_fer_stage=False)[3]
        assert tail_input is not None  # the loop takes it when asked
        return tail_input

    def answer_from(self, tail_input: Tensor) -> Tensor:
        """The answer tail's logits from its input (:meth:`tail_input`). Split from :meth:`answer` so a tail can be
        fitted on a frozen trunk whose output is computed once per face (``training/answer_tail.py``)."""
        return self.answer_head(self.answer_stage(tail_input))

    def synthesize(self, images: Tensor, target: Tensor, intensity: Intensity = 1.0) -> Tensor:
        """Faces of ``images`` redrawn with ``target`` expressions at ``intensity`` (:meth:`decode_parts`), in [-1, 1]."""
        return self.decode(self.forward_features(images), target, intensity)

    def redraw(self, images: Tensor, targets: Tensor, sources: Tensor, intensity: Intensity = 1.0) -> Tensor:
        """Face ``sources[i]`` of ``images`` redrawn with ``targets[i]`` at ``intensity``, for every i, in [-1, 1].

        Each image is encoded once however many targets it is redrawn with;
        only the decoder runs once per target.
        """
        f = self.forward_features(images)
        if f.fes is None or f.images is None:
            raise RuntimeError("this model has no synthesis branch (sharing='none')")

        def pick(t: Tensor) -> Tensor:
            return t.index_select(0, sources)

        features = Features(fer=pick(f.fer), fes=pick(f.fes), skips=tuple(pick(s) for s in f.skips), images=pick(f.images))
        return self.decode(features, targets, intensity)

    def redraw_each(self, images: Tensor, targets: Sequence[int], intensity: Intensity = 1.0) -> Tensor:
        """Every image redrawn with every target class index: (N, len(targets), C, H, W), in [-1, 1].

        Each image is encoded once, and only the decoder runs once per image and target (:meth:`redraw`).
        """
        onehot = one_hot(targets, self.config.num_classes, device=images.device)
        sources = torch.arange(len(images), device=images.device).repeat_interleave(len(targets))
        redrawn = self.redraw(images, onehot.repeat(len(images), 1), sources, intensity)
        return redrawn.view(len(images), len(targets), *images.shape[1:])

    def forward(self, images: Tensor, target: Tensor | None = None) -> FERSNetOutput:
        features = self.forward_features(images, synthesis=target is not None)
        logits = self.forward_head(features.fer)
        fake = self.decode(features, target) if target is not None else None
        return FERSNetOutput(logits, fake)

    def class_axes(self) -> dict[str, int]:
        """The tensors indexed by expression class, each with the axis the classes lie along.

        Along that axis the classes are always the *last* entries: the head's outputs, the
        embedding's inputs, and the target map that each decoder block concatenates after its
        other inputs, all ``num_classes`` (the expressions); and the answer head's outputs,
        ``answer_classes`` of them (the tensors under :data:`ANSWER_TAIL`). Knowing this lets a
        checkpoint trained on other classes (FER2013's neutral, CK+'s contempt) initialise this
        model class by class (see :mod:`model_core.transfer`) instead of copying rows by position.
        """
        axes = {"head.fc.weight": 0, "head.fc.bias": 0}
        if self.has_synthesis:
            axes["embedding.net.0.weight"] = 1
            for i in range(len(self._decoder_blocks())):
                axes[f"decoder.blocks.{i}.fuse.0.0.weight"] = 1
        if self.has_answer_tail:
            axes |= {"answer_head.fc.weight": 0, "answer_head.fc.bias": 0}
        return axes

    @staticmethod
    def in_answer_tail(name: str) -> bool:
        """Whether the state-dict entry ``name`` belongs to the answer tail (its classes are ``answer_classes``)."""
        return name.split(".", 1)[0] in ANSWER_TAIL


def count_flops(model: FERSNet, synthesis: bool = False) -> int:
    """FLOPs of one image through ``classify`` (or with ``synthesis``, ``synthesize``), as PyTorch's FlopCounterMode
    counts them (a multiply-add counts as 2): the cost of a variant independent of the machine it runs on."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = model.config
    x = torch.zeros(1, cfg.in_chans, cfg.img_size, cfg.img_size)
    model.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        if synthesis:
            model.synthesize(x, torch.zeros(1, cfg.num_classes))
        else:
            model.classify(x)
    return int(counter.get_total_flops())


# --------------------------------------------------------------------------- variants

_VARIANTS: dict[str, Callable[..., FERSNet]] = {}


def register_variant(fn: Callable[..., FERSNet]) -> Callable[..., FERSNet]:
    """Register a constructor under its function name, timm-style."""
    _VARIANTS[fn.__name__] = fn
    return fn


def list_variants() -> list[str]:
    return sorted(_VARIANTS)


def create_model(variant: str, **overrides: Any) -> FERSNet:
    """Build a registered variant; keyword arguments override its default config."""
    try:
        constructor = _VARIANTS[variant]
    except KeyError:
        raise KeyError(f"unknown variant {variant!r}; registered: {', '.join(list_variants())}") from None
    return constructor(**overrides)


def _create(config: FERSNetConfig, overrides: dict[str, Any]) -> FERSNet:
    return FERSNet(dataclasses.replace(config, **overrides))


@register_variant
def fersnet_paper(**overrides: Any) -> FERSNet:
    """The published network: 96x96 grey input, 256 channels throughout (41M parameters with its gates)."""
    return _create(FERSNetConfig(variant="fersnet_paper"), overrides)


@register_variant
def fersnet_small(**overrides: Any) -> FERSNet:
    """48x48 grey (FER2013's own size), narrow: trains on a 2-core CPU in hours, serves in ms."""
    config = FERSNetConfig(
        variant="fersnet_small",
        img_size=48,
        stem_width=32,
        widths=(32, 64, 128, 256),
        stem_pool=True,
        last_stage_pool=False,
        head_width=256,
        embed_channels=32,
    )
    return _create(config, overrides)


@register_variant
def fersnet_tiny(**overrides: Any) -> FERSNet:
    """A toy size for tests and smoke runs: 48x48 grey, a few thousand channels in all."""
    config = FERSNetConfig(
        variant="fersnet_tiny",
        img_size=48,
        stem_width=8,
        widths=(8, 16, 16, 32),
        stem_pool=True,
        last_stage_pool=False,
        head_width=32,
        head_dropout=0.0,
        embed_channels=8,
    )
    return _create(config, overrides)
