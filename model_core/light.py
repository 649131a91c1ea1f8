"""Evening out the light of a face before it is recognised.

A photo taken in a dim room, or against a bright window, differs from a
well-lit one mostly by a curve over its tones (a *gamma*): its mid-tones are
darker or lighter, its blacks and whites stay where they were. FER2013's faces
are mostly well lit, and a network trained on them loses its way in the dark:
``python -m bench.robustness`` measured the served answer on CK+48's faces at
5.7 points lower under gamma 2.2 than in their own light.

:func:`level_light` undoes such a curve: it raises each face to the power that
takes its mean brightness to a chosen one (the training faces'), which moves
the mid-tones and keeps black black and white white. A face already at that
brightness is left as it is, and a face dimmed or brightened by a gamma reads
nearly as it did before. The answer tail reads its faces through it when
:attr:`~model_core.fersnet.FERSNetConfig.answer_light` is set, in training and
in serving alike, because it is part of the network's forward pass.
"""

from __future__ import annotations

import math

from torch import Tensor

#: How far a face's tones may be bent either way: x**3 at most (a bright face darkened), x**(1/3) at least (a dark
#: face lightened). A face that is almost black or white has no mid-tones to move, and is not stretched further.
MAX_POWER = 3.0


def level_light(images: Tensor, mean: float) -> Tensor:
    """``images`` (N x C x H x W, normalised to [-1, 1]), each face's pixels in [0, 1] raised to the power that takes
    its mean brightness to ``mean`` (in (0, 1)). Black and white pixels stay as they are; the face's new mean lies
    near ``mean`` (a power of the mean is not quite the mean of the powers). Computed in float32, returned in
    ``images``' dtype."""
    if not 0 < mean < 1:
        raise ValueError(f"the mean brightness must lie between 0 and 1, not {mean}")
    pixels = ((images.float() + 1) / 2).clamp(0, 1)
    brightness = pixels.mean((1, 2, 3), keepdim=True).clamp(1e-3, 1 - 1e-3)  # log 0 and log 1 name no power
    power = (math.log(mean) / brightness.log()).clamp(1 / MAX_POWER, MAX_POWER)
    return (pixels.pow(power) * 2 - 1).to(images.dtype)
