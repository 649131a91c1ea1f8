"""The multi-task objective. The paper did not publish its losses; these are the ones chosen.

Recognition (FER branch)
    cross-entropy against a label *distribution*: a one-hot label for hard
    datasets, the raters' votes for FER+, or either mixed with a stronger
    model's probabilities (offline distillation, :mod:`.teacher`), smoothed by ``label_smoothing``
    (FER2013's labels are noisy; smoothing keeps the net from over-trusting them).

Synthesis (FES branch), the StarGAN recipe for unpaired expression editing, the
standard that works without paired before/after photos:

* adversarial (LSGAN against a PatchGAN): the fake must look like a real face,
  locally everywhere. Least squares trains more stably than the log loss at
  these small batch sizes.
* classification of the fake by the FER branch: the fake must *show* the target
  expression. The FER branch judges with detached weights (:func:`frozen_call`)
  so this loss only moves the generator; otherwise the generator could teach
  the recogniser to read its own artefacts. Frozen *critics* (other classifiers,
  ``loss.critics``) may judge beside it: a strong recogniser alone is easily
  satisfied by faint patterns that no other classifier reads as the expression,
  and ``loss.judge_jitter`` makes every judge look at a randomly moved copy, so
  only an edit that survives resampling (a drawn expression) is rewarded;
  ``loss.judge_blur`` blurs that copy too, so that streaks a pixel or two wide
  do not pay either.
* cycle reconstruction, L1: redrawing the fake with the source expression must
  give back the input. This is what preserves identity without pairs.
* identity, L1: asked for the expression the face already has, the generator
  must return it unchanged (cheap, and it anchors colours and background).
* smoothness of the change (``loss.change_smooth``, off unless set): the total
  variation of fake minus input, which prices streaks and speckles wherever the
  decoder paints them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from ..data.batch_augment import gaussian_blur
from ..expressions import one_hot
from ..fersnet import Features, FERSNet
from .config import LossSpec


def soft_cross_entropy(logits: Tensor, targets: Tensor, smoothing: float = 0.0) -> Tensor:
    """Cross-entropy against distributions (one-hot or votes), with label smoothing."""
    k = logits.shape[1]
    targets = targets.float() * (1 - smoothing) + smoothing / k
    return -(targets * F.log_softmax(logits.float(), dim=1)).sum(1).mean()


def lsgan_loss(scores: Tensor, real: bool) -> Tensor:
    return F.mse_loss(scores.float(), torch.full_like(scores.float(), 1.0 if real else 0.0))


def frozen_call(module: nn.Module, *args: Any) -> Any:
    """Run ``module`` with its parameters detached and its buffers copied.

    Gradients reach the *inputs* (the generated face) but not the module's
    weights, and batch-norm running statistics are left untouched, so a judge
    can score fakes without learning from them.
    """
    state = {k: v.detach() for k, v in module.named_parameters()}
    state |= {k: v.clone() for k, v in module.named_buffers()}
    return functional_call(module, state, args)


def other_labels(labels: Tensor, num_classes: int, generator: torch.Generator | None = None) -> Tensor:
    """A random label different from each input label: the target expression to synthesise."""
    shift = torch.randint(1, num_classes, labels.shape, generator=generator, device="cpu").to(labels.device)
    return (labels + shift) % num_classes


def total_variation(values: Tensor) -> Tensor:
    """Mean absolute difference between neighbouring values (a mask, a change): small for smooth regions."""
    values = values.float()
    return (values[..., 1:, :] - values[..., :-1, :]).abs().mean() + (values[..., :, 1:] - values[..., :, :-1]).abs().mean()


def jitter(images: Tensor, degrees: float = 10.0, scale: float = 0.1, shift: float = 0.08) -> Tensor:
    """Each image mirrored at random, rotated, scaled and shifted a little (bilinear, edges repeated).

    Differentiable, so a generator's gradient passes through: a judge looking at this copy rewards only the
    changes that survive a new framing, which is what an expression is and a pixel-level pattern is not.
    """
    n, device = images.shape[0], images.device
    angle = (torch.rand(n, device=device) * 2 - 1) * degrees * torch.pi / 180
    zoom = 1 + (torch.rand(n, device=device) * 2 - 1) * scale
    mirror = torch.where(torch.rand(n, device=device) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([
        torch.stack([cos * mirror, -sin, (torch.rand(n, device=device) * 2 - 1) * shift], dim=1),
        torch.stack([sin * mirror, cos, (torch.rand(n, device=device) * 2 - 1) * shift], dim=1),
    ], dim=1)
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def blur(images: Tensor, max_sigma: float) -> Tensor:
    """Each image blurred by a Gaussian of its own random width, sigma uniform in [0, ``max_sigma``] pixels
    (differentiable: :func:`~model_core.data.batch_augment.gaussian_blur`); a sigma near 0 leaves an image as it was."""
    if max_sigma <= 0:
        return images
    sigma = (torch.rand(images.shape[0], device=images.device) * max_sigma).clamp_min(1e-3)
    return gaussian_blur(images, sigma)


def _head(features: Features, n: int) -> Features:
    return Features(
        fer=features.fer[:n],
        fes=None if features.fes is None else features.fes[:n],
        skips=tuple(s[:n] for s in features.skips),
        images=None if features.images is None else features.images[:n],
    )


@dataclass
class StepOutput:
    total: Tensor
    logits: Tensor
    losses: dict[str, Tensor] = field(default_factory=dict)
    real: Tensor | None = None
    fake: Tensor | None = None


class MultiTaskObjective(nn.Module):
    """All generator-side losses of one step in one forward call.

    Wrapping the whole objective (not the bare network) in DDP gives exactly
    one forward per backward, which DDP needs, however many times the network
    runs inside. The discriminator is held in a tuple so that it is *not* a
    registered submodule: it has its own optimiser and its own DDP wrapper.
    """

    def __init__(self, model: FERSNet, discriminator: nn.Module | None, weights: LossSpec,
                 critics: tuple[nn.Module, ...] = ()) -> None:
        super().__init__()
        self.model = model
        self._discriminator = (discriminator,)
        self.critics = critics  # a tuple, not submodules: never trained, never saved with the model
        self.weights = weights

    def forward(self, images: Tensor, labels: Tensor, targets: Tensor) -> StepOutput:
        w, model = self.weights, self.model
        synthesising = model.has_synthesis and w.trains_synthesis
        features = model.forward_features(images, synthesis=synthesising)
        logits = model.forward_head(features.fer)
        losses = {"fer": soft_cross_entropy(logits, targets, w.label_smoothing)}
        total = w.fer * losses["fer"]
        if not synthesising:
            return StepOutput(total, logits, losses)

        # At least two faces: batch norm needs more than one value per channel at the 1x1 bottleneck.
        n = min(images.shape[0], max(2, round(images.shape[0] * w.synthesis_fraction)))
        k = model.config.num_classes
        real, source = images[:n], one_hot(labels[:n], k)
        wanted = other_labels(labels[:n], k)
        subset = _head(features, n)
        drawn = model.decode_parts(subset, one_hot(wanted, k))
        kept = model.decode_parts(subset, source)
        fake, same = drawn.face, kept.face
        judged = frozen_call(model, fake, source)  # the FER verdict on the fake, and its way back
        seen = blur(jitter(fake), w.judge_blur) if w.judge_jitter else fake
        own = frozen_call(model, seen).logits if w.judge_jitter else judged.logits
        verdicts = [own, *(critic(seen) for critic in self.critics)]
        losses["cls"] = torch.stack([F.cross_entropy(v.float(), wanted) for v in verdicts]).mean()
        losses["cycle"] = F.l1_loss(judged.synthesis.float(), real.float())
        losses["identity"] = F.l1_loss(same.float(), real.float())
        total = total + w.classification * losses["cls"] + w.cycle * losses["cycle"] + w.identity * losses["identity"]
        if w.change_smooth > 0:
            losses["change_tv"] = total_variation(fake - real)
            total = total + w.change_smooth * losses["change_tv"]
        if drawn.mask is not None and kept.mask is not None:
            masks = torch.cat((drawn.mask, kept.mask))
            losses["mask"] = masks.float().mean()
            losses["mask_tv"] = total_variation(masks)
            total = total + w.mask * losses["mask"] + w.mask_smooth * losses["mask_tv"]
        discriminator = self._discriminator[0]
        if discriminator is not None and w.adversarial > 0:
            losses["adv"] = lsgan_loss(frozen_call(discriminator, fake), real=True)
            total = total + w.adversarial * losses["adv"]
        return StepOutput(total, logits, losses, real=real.detach(), fake=fake.detach())


def discriminator_loss(discriminator: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
    """LSGAN loss of the PatchGAN on real and fake faces, in one call (one forward for DDP)."""
    scores = discriminator(torch.cat((real, fake)))
    return 0.5 * (lsgan_loss(scores[: len(real)], real=True) + lsgan_loss(scores[len(real):], real=False))
